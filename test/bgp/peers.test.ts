/**
 * The interop harness works: BIRD and GoBGP in two namespaces over a veth exchange IPv4 and
 * IPv6 prefixes both ways, over iBGP and eBGP, and BIRD installs what it learned into its
 * namespace's kernel (kernel protocol, proto bird) and removes it on withdrawal.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { formatIp, formatIpNet } from '../../src/lib/ip.js';
import { type Rtnl } from '../../src/lib/netlink/rtnl.js';
import { openRtnl } from '../../src/lib/netns.js';
import { Lab } from '../helpers/lab.js';
import { poll } from '../helpers/wait.js';
import { type BirdHandle, type BirdRoute, parseBirdProtocols, parseBirdRoutes, startBird } from './peers/bird.js';
import { type GobgpHandle, type GobgpRoute, startGobgp } from './peers/gobgp.js';
import { linkNamespaces } from './peers/topology.js';

/** rt_protos: BIRD's kernel protocol marks its routes 12 ("bird"). */
const RTPROT_BIRD = 12;

const lab = new Lab('bgpp');
const daemons: (BirdHandle | GobgpHandle)[] = [];
const handles: Rtnl[] = [];
after(async () => {
  for (const daemon of daemons) await daemon.stop();
  for (const rtnl of handles) rtnl.close();
  lab.cleanup();
});

function kernelRoutes(rtnl: Rtnl): string[] {
  return rtnl
    .routesOfProtocol(RTPROT_BIRD, { table: 'all' })
    .map((r) => `${r.dst ? formatIpNet(r.dst) : 'default'} via ${r.gateway ? formatIp(r.gateway) : '-'}`)
    .sort();
}

test('the birdc parsers read BIRD 2.0.12 output', () => {
  const protocols = parseBirdProtocols(
    ['BIRD 2.0.12 ready.', 'Name       Proto      Table      State  Since         Info', 'device1    Device     ---        up     2026-12-03 13:13:42  ', 'gobgp4     BGP        ---        start  2026-12-03 13:13:42  Active        Socket: Connection refused'].join('\n'),
  );
  assert.deepEqual(protocols, [
    { name: 'device1', proto: 'Device', table: '---', state: 'up', since: '2026-12-03 13:13:42', info: '' },
    { name: 'gobgp4', proto: 'BGP', table: '---', state: 'start', since: '2026-12-03 13:13:42', info: 'Active        Socket: Connection refused' },
  ]);
  const routes = parseBirdRoutes(
    [
      'BIRD 2.0.12 ready.',
      'Table master4:',
      '10.1.0.0/24          blackhole [static4 2026-12-03 13:13:42] * (200)',
      '\tType: static univ',
      '10.2.0.0/24          unicast [gobgp4 2026-12-03 13:14:03 from 198.18.0.2] * (100) [AS64513i]',
      '\tvia 198.18.0.2 on kta0',
      '\tType: BGP univ',
      '\tBGP.origin: IGP',
      '\tBGP.as_path: 64513 64600',
      '\tBGP.next_hop: 198.18.0.2',
      '\tBGP.med: 10',
      '\tBGP.local_pref: 200',
      '\tBGP.community: (65000,1) (65000,2)',
      '\tBGP.originator_id: 198.18.0.9',
      '\tBGP.cluster_list: 1.1.1.1 2.2.2.2',
    ].join('\n'),
  );
  assert.deepEqual(routes, [
    { prefix: '10.1.0.0/24', type: 'blackhole', protocol: 'static4', best: true, preference: 200, asPath: [], communities: [] },
    {
      prefix: '10.2.0.0/24',
      type: 'unicast',
      protocol: 'gobgp4',
      best: true,
      preference: 100,
      gateway: '198.18.0.2',
      device: 'kta0',
      origin: 'IGP',
      asPath: [64513, 64600],
      nextHop: '198.18.0.2',
      med: 10,
      localPref: 200,
      communities: ['65000:1', '65000:2'],
      originatorId: '198.18.0.9',
      clusterList: ['1.1.1.1', '2.2.2.2'],
    },
  ]);
});

for (const mode of ['ibgp', 'ebgp'] as const) {
  describe(`BIRD <-> GoBGP, ${mode}`, () => {
    const birdAsn = 64512;
    const gobgpAsn = mode === 'ibgp' ? 64512 : 64513;

    test('IPv4 and IPv6 prefixes go both ways, and BIRD installs and withdraws what it learned', async () => {
      const birdNs = lab.netns(`${mode}-bird`);
      const gobgpNs = lab.netns(`${mode}-gobgp`);
      linkNamespaces({ netns: birdNs, addresses: ['198.18.0.1/24', 'fd00:18::1/64'] }, { netns: gobgpNs, addresses: ['198.18.0.2/24', 'fd00:18::2/64'] });

      // GoBGP passive, BIRD connecting after 1 s: the fastest way to Established (see the harness notes).
      const gobgp = await startGobgp(
        gobgpNs,
        {
          routerId: '198.18.0.2',
          asn: gobgpAsn,
          peers: [
            { address: '198.18.0.1', asn: birdAsn, passive: true, gracefulRestart: true, holdTime: 9 },
            { address: 'fd00:18::1', asn: birdAsn, passive: true },
          ],
        },
        lab.tempDir(`${mode}-gobgp`),
      );
      daemons.push(gobgp);
      gobgp.announce('10.2.0.0/24', { communities: ['65000:2'], med: 20 });
      gobgp.announce('fd00:2::/64', { communities: ['65000:6'] });

      const bird = await startBird(
        birdNs,
        {
          routerId: '198.18.0.1',
          asn: birdAsn,
          peers: [
            { name: 'gobgp4', address: '198.18.0.2', asn: gobgpAsn, gracefulRestart: true, holdTime: 9 },
            { name: 'gobgp6', address: 'fd00:18::2', asn: gobgpAsn },
          ],
          announce: ['10.1.0.0/24', 'fd00:1::/64'],
          kernelExport: true,
        },
        lab.tempDir(`${mode}-bird`),
      );
      daemons.push(bird);
      await bird.waitEstablished('gobgp4');
      await bird.waitEstablished('gobgp6');
      await gobgp.waitEstablished('198.18.0.1');
      await gobgp.waitEstablished('fd00:18::1');

      // GoBGP -> BIRD
      const learned = (family: 'ipv4' | 'ipv6', prefix: string): Promise<BirdRoute> =>
        poll(`BIRD to learn ${prefix}`, () => bird.routes(family).find((r) => r.prefix === prefix && r.best), { timeoutMs: 15_000, describe: () => bird.birdc('show', 'route', 'all') });
      const v4 = await learned('ipv4', '10.2.0.0/24');
      assert.equal(v4.type, 'unicast');
      assert.equal(v4.nextHop, '198.18.0.2');
      assert.equal(v4.gateway, '198.18.0.2');
      assert.deepEqual(v4.asPath, mode === 'ibgp' ? [] : [gobgpAsn]);
      assert.deepEqual(v4.communities, ['65000:2']);
      assert.equal(v4.med, 20);
      if (mode === 'ibgp') assert.equal(v4.localPref, 100);
      const v6 = await learned('ipv6', 'fd00:2::/64');
      assert.equal(v6.nextHop, 'fd00:18::2');
      assert.deepEqual(v6.communities, ['65000:6']);
      assert.deepEqual(v6.asPath, mode === 'ibgp' ? [] : [gobgpAsn]);

      // BIRD -> GoBGP
      const received = (family: 'ipv4' | 'ipv6', prefix: string): Promise<GobgpRoute> =>
        poll(`GoBGP to learn ${prefix}`, () => gobgp.routes(family).find((r) => r.prefix === prefix && r.neighbor !== undefined), { timeoutMs: 15_000, describe: () => gobgp.gobgp('global', 'rib', '-a', family) });
      const from4 = await received('ipv4', '10.1.0.0/24');
      assert.equal(from4.neighbor, '198.18.0.1');
      assert.equal(from4.nextHop, '198.18.0.1');
      assert.deepEqual(from4.asPath, mode === 'ibgp' ? [] : [birdAsn]);
      assert.equal(from4.origin, 'IGP');
      const from6 = await received('ipv6', 'fd00:1::/64');
      assert.equal(from6.nextHop, 'fd00:18::1');

      // BIRD's kernel protocol installs the learned routes (not its own static blackholes).
      const rtnl = openRtnl(lab.path(birdNs));
      handles.push(rtnl);
      await poll('BIRD to install the learned routes', () => kernelRoutes(rtnl).length === 2, { timeoutMs: 10_000, describe: () => kernelRoutes(rtnl).join('\n') });
      assert.deepEqual(kernelRoutes(rtnl), ['10.2.0.0/24 via 198.18.0.2', 'fd00:2::/64 via fd00:18::2']);

      // A withdrawal reaches BIRD's table and its kernel.
      gobgp.withdraw('10.2.0.0/24');
      await poll('BIRD to drop the withdrawn route', () => !bird.routes('ipv4').some((r) => r.prefix === '10.2.0.0/24'), { timeoutMs: 10_000 });
      await poll('the kernel to lose it', () => kernelRoutes(rtnl).join() === 'fd00:2::/64 via fd00:18::2', { timeoutMs: 10_000, describe: () => kernelRoutes(rtnl).join('\n') });

      // The harness reports a session that goes away.
      await gobgp.stop();
      await poll('BIRD to see the session down', () => !bird.protocols().find((p) => p.name === 'gobgp4')?.info.startsWith('Established'), { timeoutMs: 15_000 });
      await bird.stop();
      assert.equal(bird.running, false);
    });
  });
}
