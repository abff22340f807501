/**
 * `resourceFieldRef` values (env and downwardAPI files), as upstream's
 * ExtractContainerResourceValue: cpu as ceil(millicores / divisor millicores), memory and
 * ephemeral-storage as ceil(bytes / divisor bytes), divisor "1" by default. An unset limit is
 * the node's allocatable (upstream merges node allocatable into unset limits); an unset
 * request is 0.
 */
import { quantityMilliValue, quantityValue } from '../api/quantity.js';
import type { Container, Quantity, ResourceFieldSelector } from '../api/types.js';
import { ContainerConfigError } from './config-error.js';

export interface NodeAllocatable {
  cpu: Quantity;
  memory: Quantity;
  'ephemeral-storage': Quantity;
}

const RESOURCES = new Set(['limits.cpu', 'limits.memory', 'limits.ephemeral-storage', 'requests.cpu', 'requests.memory', 'requests.ephemeral-storage']);

export function resourceFieldValue(selector: ResourceFieldSelector, container: Container | undefined, allocatable: NodeAllocatable): string {
  if (!RESOURCES.has(selector.resource)) throw new ContainerConfigError(`unsupported container resource: ${selector.resource}`);
  if (!container) throw new ContainerConfigError(`container "${selector.containerName ?? ''}" not found for resourceFieldRef ${selector.resource}`);
  const [kind, name] = selector.resource.split('.') as ['limits' | 'requests', keyof NodeAllocatable];
  const set = kind === 'limits' ? container.resources?.limits?.[name] : container.resources?.requests?.[name];
  const value: Quantity = set ?? (kind === 'limits' ? allocatable[name] : 0);
  const divisor = selector.divisor ?? '1';
  if (name === 'cpu') {
    const per = quantityMilliValue(divisor);
    if (per <= 0) throw new ContainerConfigError(`invalid divisor "${String(divisor)}" for ${selector.resource}`);
    return String(Math.ceil(quantityMilliValue(value) / per));
  }
  const per = quantityValue(divisor);
  if (per <= 0) throw new ContainerConfigError(`invalid divisor "${String(divisor)}" for ${selector.resource}`);
  return String(Math.ceil(quantityValue(value) / per));
}
