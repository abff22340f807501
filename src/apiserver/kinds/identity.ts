/**
 * Secret and ServiceAccount (core/v1), with upstream's rules (pkg/apis/core/validation
 * ValidateSecret, ValidateServiceAccount).
 *
 * `stringData` is a write-only convenience: upstream merges it into `data` while converting
 * the request (stringData wins over data for the same key) and never stores or returns it.
 * Here that happens in applyDefaults, which runs before validation on create and update, so
 * a key given either way is validated as `data[key]` and only `data` is stored.
 */
import type { KubeObject } from '../../api/meta.js';
import {
  SECRET_TYPE_BASIC_AUTH,
  SECRET_TYPE_DOCKER_CONFIG_JSON,
  SECRET_TYPE_DOCKERCFG,
  SECRET_TYPE_OPAQUE,
  SECRET_TYPE_SERVICE_ACCOUNT_TOKEN,
  SECRET_TYPE_SSH_AUTH,
  SECRET_TYPE_TLS,
  SERVICE_ACCOUNT_NAME_ANNOTATION,
} from '../../api/serviceaccount.js';
import { FieldPath, forbidden, invalid, invalidEach, required, tooLong, type FieldCause } from './field.js';
import { GenericStrategy } from './generic.js';
import { configMapKeyErrors, dns1123SubdomainErrors } from './names.js';
import { asObject, jsonEqual, TypeChecker } from './values.js';

/** Upstream's MaxSecretSize: the decoded values of data together (one etcd value). */
export const SECRET_MAX_BYTES = 1024 * 1024;

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function isBase64(value: string): boolean {
  return value.length % 4 === 0 && BASE64.test(value);
}

/** Keys a Secret of a known type must carry in data (upstream's per-type checks). */
const REQUIRED_KEYS: Readonly<Record<string, readonly string[]>> = {
  [SECRET_TYPE_TLS]: ['tls.crt', 'tls.key'],
  [SECRET_TYPE_DOCKER_CONFIG_JSON]: ['.dockerconfigjson'],
  [SECRET_TYPE_DOCKERCFG]: ['.dockercfg'],
  [SECRET_TYPE_SSH_AUTH]: ['ssh-privatekey'],
};

const IMMUTABLE_WHEN_SET = 'field is immutable when `immutable` is set';

export class SecretStrategy extends GenericStrategy {
  constructor() {
    super({ namespaced: true });
  }

  override applyDefaults(object: KubeObject): void {
    if (object['type'] === undefined || object['type'] === null || object['type'] === '') object['type'] = SECRET_TYPE_OPAQUE;
    const stringData = asObject(object['stringData']);
    if (!stringData) return;
    const data = { ...(asObject(object['data']) ?? {}) };
    let merged = true;
    for (const [key, value] of Object.entries(stringData)) {
      if (typeof value === 'string') data[key] = Buffer.from(value, 'utf8').toString('base64');
      else merged = false;
    }
    object['data'] = data;
    // A non-string value stays for validate to report; the object is then refused, not stored.
    if (merged) delete object['stringData'];
  }

  protected override validateBody(object: KubeObject): FieldCause[] {
    const causes: FieldCause[] = [];
    const check = new TypeChecker(causes);
    check.stringMap(object['stringData'], FieldPath.of('stringData'));
    const type = check.string(object['type'], FieldPath.of('type')) ?? SECRET_TYPE_OPAQUE;
    const dataPath = FieldPath.of('data');
    const data = check.stringMap(object['data'], dataPath);
    const decoded = new Map<string, Buffer>();
    let totalBytes = 0;
    for (const [key, value] of Object.entries(data)) {
      causes.push(...invalidEach(dataPath.key(key), key, configMapKeyErrors(key)));
      if (!isBase64(value)) {
        causes.push(invalid(dataPath.key(key), '<secret contents redacted>', 'must be base64-encoded'));
        continue;
      }
      const bytes = Buffer.from(value, 'base64');
      decoded.set(key, bytes);
      totalBytes += bytes.length;
    }
    if (totalBytes > SECRET_MAX_BYTES) causes.push(tooLong(dataPath, SECRET_MAX_BYTES));
    check.boolean(object['immutable'], FieldPath.of('immutable'));

    for (const key of REQUIRED_KEYS[type] ?? []) if (!(key in data)) causes.push(required(dataPath.key(key)));
    switch (type) {
      case SECRET_TYPE_SERVICE_ACCOUNT_TOKEN: {
        const name = object.metadata.annotations?.[SERVICE_ACCOUNT_NAME_ANNOTATION];
        if (!name) causes.push(required(FieldPath.of('metadata', 'annotations').key(SERVICE_ACCOUNT_NAME_ANNOTATION)));
        break;
      }
      case SECRET_TYPE_DOCKER_CONFIG_JSON:
      case SECRET_TYPE_DOCKERCFG: {
        const key = type === SECRET_TYPE_DOCKERCFG ? '.dockercfg' : '.dockerconfigjson';
        const bytes = decoded.get(key);
        if (bytes !== undefined) {
          try {
            JSON.parse(bytes.toString('utf8'));
          } catch (err) {
            causes.push(invalid(dataPath.key(key), '<secret contents redacted>', (err as Error).message));
          }
        }
        break;
      }
      case SECRET_TYPE_BASIC_AUTH:
        // Either may be empty, but one of the keys must be there.
        if (!('username' in data) && !('password' in data)) causes.push(required(dataPath.key('username')), required(dataPath.key('password')));
        break;
      default:
        break;
    }
    return causes;
  }

  protected override validateBodyUpdate(object: KubeObject, old: KubeObject): FieldCause[] {
    const causes: FieldCause[] = [];
    if ((object['type'] ?? SECRET_TYPE_OPAQUE) !== (old['type'] ?? SECRET_TYPE_OPAQUE)) {
      causes.push(invalid(FieldPath.of('type'), object['type'], 'field is immutable'));
    }
    if (old['immutable'] === true) {
      if (object['immutable'] !== true) causes.push(forbidden(FieldPath.of('immutable'), IMMUTABLE_WHEN_SET));
      if (!jsonEqual(object['data'], old['data'])) causes.push(forbidden(FieldPath.of('data'), IMMUTABLE_WHEN_SET));
    }
    return causes;
  }
}

export class ServiceAccountStrategy extends GenericStrategy {
  constructor() {
    super({ namespaced: true });
  }

  protected override validateBody(object: KubeObject): FieldCause[] {
    const causes: FieldCause[] = [];
    const check = new TypeChecker(causes);
    check.boolean(object['automountServiceAccountToken'], FieldPath.of('automountServiceAccountToken'));
    for (const [i, ref] of check.objects(object['secrets'], FieldPath.of('secrets'))) {
      for (const key of ['kind', 'namespace', 'name', 'uid', 'apiVersion', 'resourceVersion', 'fieldPath']) {
        check.string(ref[key], FieldPath.of('secrets').index(i).child(key));
      }
    }
    for (const [i, ref] of check.objects(object['imagePullSecrets'], FieldPath.of('imagePullSecrets'))) {
      const at = FieldPath.of('imagePullSecrets').index(i).child('name');
      const name = check.string(ref['name'], at);
      if (name) causes.push(...invalidEach(at, name, dns1123SubdomainErrors(name)));
    }
    return causes;
  }
}
