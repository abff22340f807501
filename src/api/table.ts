/**
 * meta.k8s.io/v1 Table: what the apiserver answers when a client (kubectl get) asks for
 * `application/json;as=Table;v=v1;g=meta.k8s.io`. Columns with `priority: 0` are what
 * `kubectl get` prints; `priority: 1` columns appear only with `-o wide`. Rows always carry
 * every column's cell, in column order; kubectl hides the wide ones itself.
 */
import type { KubeObject, ListMeta, ObjectMeta } from './meta.js';

/** The `includeObject` query parameter: what each row's `object` holds. */
export type IncludeObjectPolicy = 'None' | 'Object' | 'Metadata';

export interface TableColumnDefinition {
  /** Title case as upstream sends it ("Cluster-IP"); kubectl prints it upper-cased. */
  name: string;
  /** OpenAPI type of the cells: string, integer, number, boolean, date. */
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  /** "name" marks the column that names the object; otherwise "". */
  format: string;
  description: string;
  /** 0: always shown; higher: shown with `-o wide`. */
  priority: number;
}

export type TableCell = string | number | boolean | null;

/** Row conditions: upstream marks finished pods `Completed` so clients may hide them. */
export interface TableRowCondition {
  type: 'Completed';
  status: 'True' | 'False' | 'Unknown';
  reason?: string;
  message?: string;
}

/** A row's object under `includeObject=Metadata` (the server default). */
export interface PartialObjectMetadata {
  apiVersion: 'meta.k8s.io/v1';
  kind: 'PartialObjectMetadata';
  metadata: ObjectMeta;
}

export interface TableRow {
  cells: TableCell[];
  conditions?: TableRowCondition[];
  /** Absent under `includeObject=None`. */
  object?: KubeObject | PartialObjectMetadata;
}

export interface Table {
  apiVersion: 'meta.k8s.io/v1';
  kind: 'Table';
  metadata: ListMeta;
  columnDefinitions: TableColumnDefinition[];
  rows: TableRow[];
}
