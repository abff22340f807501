/** The bridge plugin's network configuration, field names as in the reference plugin. */
import { CniError, CniErrorCode } from '../../cni/errors.js';
import type { NetConf } from '../../cni/types.js';

export interface BridgeConf {
  bridge: string;
  isGateway: boolean;
  isDefaultGateway: boolean;
  forceAddress: boolean;
  ipMasq: boolean;
  mtu?: number;
  hairpinMode: boolean;
  promiscMode: boolean;
  /** MAC for the container interface (runtimeConfig.mac or CNI_ARGS MAC=). */
  mac?: string;
  ipamType: string;
}

export const DEFAULT_BRIDGE = 'cni0';

function invalid(message: string): CniError {
  return new CniError(CniErrorCode.InvalidNetworkConfig, `invalid bridge config: ${message}`);
}

function flag(config: NetConf, field: string): boolean {
  const value = config[field];
  if (value === undefined) return false;
  if (typeof value !== 'boolean') throw invalid(`"${field}" must be true or false`);
  return value;
}

export function parseBridgeConf(config: NetConf, cniArgs: ReadonlyMap<string, string>): BridgeConf {
  const bridge = config['bridge'] ?? DEFAULT_BRIDGE;
  if (typeof bridge !== 'string' || !/^[^/:\s]{1,15}$/.test(bridge) || bridge === '.' || bridge === '..') {
    throw invalid(`"bridge" must be a valid interface name (1-15 characters), got ${JSON.stringify(bridge)}`);
  }
  const ipamType = config.ipam?.type;
  if (typeof ipamType !== 'string' || ipamType === '') throw invalid('"ipam.type" is required: the bridge plugin needs an IPAM plugin');
  const isDefaultGateway = flag(config, 'isDefaultGateway');
  const conf: BridgeConf = {
    bridge,
    // A default gateway must be a gateway (reference plugin behaviour).
    isGateway: flag(config, 'isGateway') || isDefaultGateway,
    isDefaultGateway,
    forceAddress: flag(config, 'forceAddress'),
    ipMasq: flag(config, 'ipMasq'),
    hairpinMode: flag(config, 'hairpinMode'),
    promiscMode: flag(config, 'promiscMode'),
    ipamType,
  };
  const mtu = config['mtu'];
  if (mtu !== undefined && mtu !== 0) {
    if (typeof mtu !== 'number' || !Number.isInteger(mtu) || mtu < 68 || mtu > 65535) throw invalid(`"mtu" must be an integer from 68 to 65535, got ${JSON.stringify(mtu)}`);
    conf.mtu = mtu;
  }
  const backend = config['ipMasqBackend'];
  if (backend !== undefined && backend !== 'iptables') {
    throw new CniError(CniErrorCode.UnsupportedField, `ipMasqBackend ${JSON.stringify(backend)} is not supported: use "iptables" or leave it out`);
  }
  if (config['vlan'] !== undefined && config['vlan'] !== 0) {
    throw new CniError(CniErrorCode.UnsupportedField, '"vlan" is not supported by pontoon-bridge');
  }
  const mac = config.runtimeConfig?.['mac'] ?? cniArgs.get('MAC');
  if (mac !== undefined) {
    if (typeof mac !== 'string' || !/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(mac)) throw invalid(`MAC ${JSON.stringify(mac)} is not a MAC address`);
    conf.mac = mac.toLowerCase();
  }
  return conf;
}
