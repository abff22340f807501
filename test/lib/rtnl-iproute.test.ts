/**
 * Our rtnetlink encoders and decoders against iproute2 as the outside judge, in a scratch
 * namespace: what we create, `ip -json` must read back field for field; what `ip` creates,
 * we must decode to the same values. Nothing here is compared with tables of our own.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { formatIp, formatIpNet, parseIp, parseIpNet } from '../../src/lib/ip.js';
import { NUD_PERMANENT, RTPROT_STATIC, type Rtnl } from '../../src/lib/netlink/rtnl.js';
import { openRtnl } from '../../src/lib/netns.js';
import { Lab } from '../helpers/lab.js';

const lab = new Lab('rtip');
after(() => lab.cleanup());

const AF_INET = 2;

interface IpLink {
  ifname: string;
  mtu: number;
  address: string;
  operstate: string;
  flags: string[];
  link_index?: number;
  linkinfo?: { info_kind?: string };
}
interface IpAddr {
  ifname: string;
  addr_info: { family: string; local: string; prefixlen: number }[];
}
interface IpRoute {
  dst: string;
  gateway?: string;
  dev: string;
  protocol?: string;
  metric?: number;
  flags: string[];
}
interface IpNeigh {
  dst: string;
  dev: string;
  lladdr?: string;
  state: string[];
}

function ipJson<T>(ns: string, ...args: string[]): T {
  return JSON.parse(lab.exec(ns, 'ip', ['-json', ...args])) as T;
}

function withRtnl<T>(ns: string, fn: (rtnl: Rtnl) => T): T {
  const rtnl = openRtnl(lab.path(ns));
  try {
    return fn(rtnl);
  } finally {
    rtnl.close();
  }
}

describe('rtnetlink against iproute2', () => {
  test('a veth pair, an address, a route and a neighbour we write: ip -json reads each back', () => {
    const ns = lab.netns('ours');
    withRtnl(ns, (rtnl) => {
      rtnl.createLink({ name: 'ra0', kind: 'veth', mtu: 1400, mac: '02:00:5e:10:00:01', peer: { name: 'ra1', mtu: 1400, mac: '02:00:5e:10:00:02' } });
      const link = rtnl.linkByName('ra0');
      const peer = rtnl.linkByName('ra1');
      assert.ok(link && peer);
      rtnl.setUp(peer.index);
      rtnl.setUp(link.index);
      rtnl.addAddress(link.index, parseIpNet('10.9.0.1/24'));
      rtnl.addRoute({ family: 4, dst: parseIpNet('10.10.0.0/16'), gateway: parseIp('10.9.0.2'), oif: link.index, protocol: RTPROT_STATIC, priority: 7 });
      rtnl.setNeighbour({ family: AF_INET, index: link.index, ip: parseIp('10.9.0.3'), mac: '02:00:5e:10:00:03', state: NUD_PERMANENT, flags: 0 });
    });

    const [link] = ipJson<IpLink[]>(ns, '-details', 'link', 'show', 'ra0');
    assert.equal(link?.ifname, 'ra0');
    assert.equal(link.mtu, 1400);
    assert.equal(link.address, '02:00:5e:10:00:01');
    assert.equal(link.linkinfo?.info_kind, 'veth');
    assert.ok(link.flags.includes('UP'), JSON.stringify(link.flags));
    const [peer] = ipJson<IpLink[]>(ns, 'link', 'show', 'ra1');
    assert.equal(peer?.address, '02:00:5e:10:00:02');
    assert.equal(peer.mtu, 1400);

    const [addr] = ipJson<IpAddr[]>(ns, 'address', 'show', 'dev', 'ra0');
    assert.deepEqual(addr?.addr_info.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`), ['10.9.0.1/24']);

    const routes = ipJson<IpRoute[]>(ns, 'route', 'show', '10.10.0.0/16');
    assert.deepEqual(
      routes.map((r) => ({ dst: r.dst, gateway: r.gateway, dev: r.dev, protocol: r.protocol, metric: r.metric })),
      [{ dst: '10.10.0.0/16', gateway: '10.9.0.2', dev: 'ra0', protocol: 'static', metric: 7 }],
    );

    const neighbours = ipJson<IpNeigh[]>(ns, 'neigh', 'show', 'dev', 'ra0');
    assert.deepEqual(
      neighbours.filter((n) => n.dst === '10.9.0.3').map((n) => ({ lladdr: n.lladdr, state: n.state })),
      [{ lladdr: '02:00:5e:10:00:03', state: ['PERMANENT'] }],
    );
  });

  test('what ip writes, we decode to the same values', () => {
    const ns = lab.netns('theirs');
    const ip = (...args: string[]): string => lab.exec(ns, 'ip', args);
    ip('link', 'add', 'rb0', 'mtu', '1380', 'address', '02:00:5e:20:00:01', 'type', 'veth', 'peer', 'name', 'rb1');
    ip('link', 'set', 'rb1', 'up');
    ip('link', 'set', 'rb0', 'up');
    ip('address', 'add', '10.19.0.1/24', 'dev', 'rb0');
    ip('route', 'add', '10.20.0.0/16', 'via', '10.19.0.2', 'dev', 'rb0', 'proto', 'static', 'metric', '9');
    ip('neigh', 'add', '10.19.0.3', 'lladdr', '02:00:5e:20:00:03', 'dev', 'rb0', 'nud', 'permanent');

    withRtnl(ns, (rtnl) => {
      const link = rtnl.linkByName('rb0');
      assert.ok(link);
      const [seen] = ipJson<IpLink[]>(ns, 'link', 'show', 'rb0');
      assert.deepEqual({ mtu: link.mtu, mac: link.mac, kind: link.kind, up: link.up }, { mtu: seen?.mtu, mac: seen?.address, kind: 'veth', up: true });
      assert.equal(link.parentIndex, rtnl.linkByName('rb1')?.index, 'IFLA_LINK names the peer');

      assert.deepEqual(rtnl.addresses(4, link.index).map((a) => formatIpNet(a.address)), ['10.19.0.1/24']);

      const route = rtnl.routes(4).find((r) => r.dst && formatIpNet(r.dst) === '10.20.0.0/16');
      assert.ok(route, 'route decoded');
      assert.deepEqual(
        { gateway: route.gateway && formatIp(route.gateway), oif: route.oif, protocol: route.protocol, priority: route.priority },
        { gateway: '10.19.0.2', oif: link.index, protocol: RTPROT_STATIC, priority: 9 },
      );

      const neighbour = rtnl.neighbours(AF_INET, link.index).find((n) => n.ip && formatIp(n.ip) === '10.19.0.3');
      assert.ok(neighbour, 'neighbour decoded');
      assert.equal(neighbour.mac, '02:00:5e:20:00:03');
      assert.equal(neighbour.state & NUD_PERMANENT, NUD_PERMANENT);
    });
  });
});
