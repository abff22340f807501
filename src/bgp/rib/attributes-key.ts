/**
 * A string identity for a PathAttributes value: equal strings ⇔ the same attributes on the
 * wire. The Adj-RIB-Out groups prefixes into UPDATEs by it and the Loc-RIB uses it to tell a
 * real change of best path from a re-announcement of the same one.
 *
 * Built once per attributes object (WeakMap), because a decoded UPDATE shares one attributes
 * object among all of its NLRI and the exporters share one exported object per distinct
 * input: 100k prefixes usually come down to a few hundred keys.
 */
import type { Ip } from '../../lib/ip.js';
import type { PathAttributes } from '../types.js';

const keys = new WeakMap<PathAttributes, string>();

export function attributesKey(attributes: PathAttributes): string {
  let key = keys.get(attributes);
  if (key === undefined) {
    key = buildKey(attributes);
    keys.set(attributes, key);
  }
  return key;
}

export function sameAttributes(a: PathAttributes, b: PathAttributes): boolean {
  return a === b || attributesKey(a) === attributesKey(b);
}

function ipText(ip: Ip | undefined): string {
  return ip === undefined ? '' : `${ip.family}:${ip.value.toString(16)}`;
}

/** An empty list is an attribute on the wire, so it must differ from an absent one. */
function list(values: readonly number[] | undefined): string {
  return values === undefined ? '' : `[${values.join(',')}]`;
}

function buildKey(a: PathAttributes): string {
  const hex = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
  return [
    a.origin,
    a.asPath.map((segment) => `${segment.type}:${segment.asns.join(',')}`).join(' '),
    ipText(a.nextHop),
    ipText(a.linkLocalNextHop),
    a.med ?? '',
    a.localPref ?? '',
    a.atomicAggregate === true ? 'A' : '',
    a.aggregator === undefined ? '' : `${a.aggregator.asn}@${ipText(a.aggregator.address)}`,
    list(a.communities),
    a.originatorId ?? '',
    list(a.clusterList),
    a.unknown?.map((raw) => `${raw.flags}.${raw.typeCode}.${hex(raw.value)}`).join(',') ?? '',
  ].join('|');
}
