/**
 * The CNI harness driven through a fake PluginIo: environment, stdin and stdout are plain
 * values, handlers are fakes that record what they were given.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CniError, CniErrorCode } from '../../src/cni/errors.js';
import { type CniHandlers, type ErrorClassifier, parseCniArgs, type PluginIo, runPlugin } from '../../src/cni-plugin/skel/skel.js';
import { type CmdArgs, parseResult, type Result, SUPPORTED_VERSIONS, toVersion, versionAtLeast } from '../../src/cni/types.js';

interface Outcome {
  code: number;
  stdout: string;
  /** stdout parsed, when there was any. */
  json?: Record<string, unknown>;
  calls: { command: string; args: CmdArgs }[];
}

interface RunOptions {
  env: Record<string, string>;
  stdin?: string | object;
  handlers?: Partial<CniHandlers>;
  classify?: ErrorClassifier;
}

const NETNS = '/var/run/netns/ctr1';
const BASE_ENV = { CNI_CONTAINERID: 'ctr1', CNI_NETNS: NETNS, CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin:/usr/lib/cni' };
const config = (cniVersion = '1.0.0', extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  cniVersion,
  name: 'podnet',
  type: 'pontoon-bridge',
  ...extra,
});

/** A 1.1.0 result using fields that older versions do not have. */
const FULL_RESULT: Result = {
  cniVersion: '1.1.0',
  interfaces: [{ name: 'eth0', mac: '0a:58:0a:00:00:02', mtu: 1400, sandbox: NETNS }],
  ips: [
    { address: '10.0.0.2/24', gateway: '10.0.0.1', interface: 0 },
    { address: 'fd00::2/64', gateway: 'fd00::1', interface: 0 },
  ],
  routes: [{ dst: '0.0.0.0/0', gw: '10.0.0.1', mtu: 1400, priority: 10 }, { dst: '10.96.0.0/12', table: 100 }],
  dns: { nameservers: ['10.96.0.10'], search: ['svc.cluster.local'] },
};

async function run(options: RunOptions): Promise<Outcome> {
  const calls: Outcome['calls'] = [];
  const record = (command: string) => async (args: CmdArgs) => {
    calls.push({ command, args });
  };
  const handlers: CniHandlers = {
    add: async (args) => {
      calls.push({ command: 'ADD', args });
      return FULL_RESULT;
    },
    del: record('DEL'),
    check: record('CHECK'),
    status: record('STATUS'),
    gc: record('GC'),
    ...options.handlers,
  };
  let stdout = '';
  const stdin = options.stdin === undefined ? config() : options.stdin;
  const io: PluginIo = {
    env: { ...options.env },
    readStdin: () => Buffer.from(typeof stdin === 'string' ? stdin : JSON.stringify(stdin)),
    writeStdout: (text) => {
      stdout += text;
    },
  };
  const code = await runPlugin(handlers, options.classify ?? (() => undefined), io);
  const outcome: Outcome = { code, stdout, calls };
  if (stdout) {
    assert.ok(stdout.endsWith('\n'), 'output ends with a newline');
    outcome.json = JSON.parse(stdout) as Record<string, unknown>;
  }
  return outcome;
}

/** Runs and asserts a CNI error with `code`, no handler called, exit status 1. */
async function expectError(options: RunOptions, code: number): Promise<Record<string, unknown>> {
  const outcome = await run(options);
  assert.equal(outcome.code, 1, 'exit status');
  assert.equal(outcome.json?.['code'], code, `error code in ${outcome.stdout}`);
  assert.equal(typeof outcome.json?.['msg'], 'string');
  assert.ok(SUPPORTED_VERSIONS.includes(outcome.json?.['cniVersion'] as (typeof SUPPORTED_VERSIONS)[number]));
  return outcome.json ?? {};
}

describe('VERSION', () => {
  test('echoes the requested cniVersion and lists every supported version', async () => {
    const outcome = await run({ env: { CNI_COMMAND: 'VERSION' }, stdin: { cniVersion: '0.4.0' } });
    assert.equal(outcome.code, 0);
    assert.equal(outcome.stdout, '{"cniVersion":"0.4.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}\n');
    assert.deepEqual(outcome.calls, []);
  });

  test('answers without a usable config, with the latest version', async () => {
    for (const stdin of ['', '{}', 'not json', '{"cniVersion":"9.9.9"}']) {
      const outcome = await run({ env: { CNI_COMMAND: 'VERSION' }, stdin });
      assert.equal(outcome.code, 0, stdin);
      assert.deepEqual(outcome.json, { cniVersion: '1.1.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
    }
  });
});

describe('environment errors are code 4', () => {
  test('missing CNI_COMMAND', async () => {
    await expectError({ env: { ...BASE_ENV } }, CniErrorCode.InvalidEnvironment);
  });

  test('unknown CNI_COMMAND', async () => {
    await expectError({ env: { ...BASE_ENV, CNI_COMMAND: 'UPDATE' } }, CniErrorCode.InvalidEnvironment);
    await expectError({ env: { ...BASE_ENV, CNI_COMMAND: 'add' } }, CniErrorCode.InvalidEnvironment);
  });

  test('ADD without CNI_NETNS names the variable', async () => {
    const { CNI_NETNS: _netns, ...env } = BASE_ENV;
    const error = await expectError({ env: { ...env, CNI_COMMAND: 'ADD' } }, CniErrorCode.InvalidEnvironment);
    assert.match(String(error['msg']), /CNI_NETNS/);
  });

  test('CHECK without CNI_CONTAINERID or CNI_PATH', async () => {
    const { CNI_CONTAINERID: _id, ...noId } = BASE_ENV;
    await expectError({ env: { ...noId, CNI_COMMAND: 'CHECK' } }, CniErrorCode.InvalidEnvironment);
    const { CNI_PATH: _path, ...noPath } = BASE_ENV;
    await expectError({ env: { ...noPath, CNI_COMMAND: 'CHECK' } }, CniErrorCode.InvalidEnvironment);
  });

  test('bad CNI_IFNAME', async () => {
    for (const ifname of ['abcdefghijklmnop', 'a/b', 'a:b', 'a b', '.', '..']) {
      await expectError({ env: { ...BASE_ENV, CNI_COMMAND: 'ADD', CNI_IFNAME: ifname } }, CniErrorCode.InvalidEnvironment);
    }
    const ok = await run({ env: { ...BASE_ENV, CNI_COMMAND: 'ADD', CNI_IFNAME: 'abcdefghijklmno' } });
    assert.equal(ok.code, 0, '15 characters is the limit');
  });

  test('bad CNI_CONTAINERID', async () => {
    for (const id of ['-abc', '.abc', 'a b', 'a/b', 'ctr;1']) {
      await expectError({ env: { ...BASE_ENV, CNI_COMMAND: 'ADD', CNI_CONTAINERID: id } }, CniErrorCode.InvalidEnvironment);
    }
  });

  test('an invalid CNI_ARGS pair', async () => {
    for (const args of ['IgnoreUnknown=1;foo', '=x', 'K8S_POD_NAME']) {
      await expectError({ env: { ...BASE_ENV, CNI_COMMAND: 'ADD', CNI_ARGS: args } }, CniErrorCode.InvalidEnvironment);
    }
  });
});

describe('config errors', () => {
  const add = { ...BASE_ENV, CNI_COMMAND: 'ADD' };

  test('malformed JSON or a non-object is code 6', async () => {
    for (const stdin of ['{"cniVersion":', '', '[]', '"text"', 'null']) {
      await expectError({ env: add, stdin }, CniErrorCode.DecodingFailure);
    }
  });

  test('cniVersion 0.2.0, a missing or unknown cniVersion is code 1', async () => {
    await expectError({ env: add, stdin: config('0.2.0') }, CniErrorCode.IncompatibleVersion);
    await expectError({ env: add, stdin: { name: 'podnet', type: 'pontoon-bridge' } }, CniErrorCode.IncompatibleVersion);
    await expectError({ env: add, stdin: config('2.0.0') }, CniErrorCode.IncompatibleVersion);
  });

  test('a missing name or type is code 7', async () => {
    await expectError({ env: add, stdin: { cniVersion: '1.0.0', type: 'pontoon-bridge' } }, CniErrorCode.InvalidNetworkConfig);
    await expectError({ env: add, stdin: { cniVersion: '1.0.0', name: '', type: 'pontoon-bridge' } }, CniErrorCode.InvalidNetworkConfig);
    await expectError({ env: add, stdin: { cniVersion: '1.0.0', name: 'podnet' } }, CniErrorCode.InvalidNetworkConfig);
  });

  test('CHECK needs 0.4.0: with 0.3.1 it is code 1 and the handler is not called', async () => {
    const outcome = await run({ env: { ...BASE_ENV, CNI_COMMAND: 'CHECK' }, stdin: config('0.3.1') });
    assert.equal(outcome.code, 1);
    assert.equal(outcome.json?.['code'], CniErrorCode.IncompatibleVersion);
    assert.deepEqual(outcome.calls, []);
    const ok = await run({ env: { ...BASE_ENV, CNI_COMMAND: 'CHECK' }, stdin: config('0.4.0') });
    assert.equal(ok.code, 0);
    assert.deepEqual(ok.calls.map((c) => c.command), ['CHECK']);
  });

  test('STATUS and GC need 1.1.0', async () => {
    for (const command of ['STATUS', 'GC']) {
      await expectError({ env: { CNI_COMMAND: command, CNI_PATH: '/opt/cni/bin' }, stdin: config('1.0.0') }, CniErrorCode.IncompatibleVersion);
      const ok = await run({ env: { CNI_COMMAND: command, CNI_PATH: '/opt/cni/bin' }, stdin: config('1.1.0') });
      assert.equal(ok.code, 0, command);
      assert.equal(ok.stdout, '');
      assert.deepEqual(ok.calls.map((c) => c.command), [command]);
    }
  });

  test('STATUS and GC without a handler succeed', async () => {
    for (const command of ['STATUS', 'GC']) {
      const outcome = await run({
        env: { CNI_COMMAND: command, CNI_PATH: '/opt/cni/bin' },
        stdin: config('1.1.0'),
        handlers: { status: undefined, gc: undefined },
      });
      assert.equal(outcome.code, 0, command);
    }
  });
});

describe('handler errors', () => {
  test('a CniError keeps its code and details and is printed in the config version', async () => {
    const outcome = await run({
      env: { ...BASE_ENV, CNI_COMMAND: 'ADD' },
      stdin: config('0.4.0'),
      handlers: {
        add: async () => {
          throw new CniError(CniErrorCode.TryAgainLater, 'lock busy', 'retry in a second');
        },
      },
    });
    assert.equal(outcome.code, 1);
    assert.deepEqual(outcome.json, { cniVersion: '0.4.0', code: 11, msg: 'lock busy', details: 'retry in a second' });
  });

  test('a plain Error is code 999 with its message', async () => {
    const outcome = await run({
      env: { ...BASE_ENV, CNI_COMMAND: 'DEL' },
      stdin: config('1.0.0'),
      handlers: {
        del: async () => {
          throw new Error('boom');
        },
      },
    });
    assert.equal(outcome.code, 1);
    assert.deepEqual(outcome.json, { cniVersion: '1.0.0', code: 999, msg: 'boom' });
  });

  test('the classifier maps what the handler threw', async () => {
    class StoreFull extends Error {}
    const outcome = await run({
      env: { ...BASE_ENV, CNI_COMMAND: 'ADD' },
      stdin: config('1.1.0'),
      handlers: {
        add: async () => {
          throw new StoreFull('no space');
        },
      },
      classify: (err) => (err instanceof StoreFull ? new CniError(CniErrorCode.IoFailure, 'mapped') : undefined),
    });
    assert.equal(outcome.code, 1);
    assert.deepEqual(outcome.json, { cniVersion: '1.1.0', code: 5, msg: 'mapped' });
  });
});

describe('successful commands', () => {
  test('ADD passes parsed arguments to the handler', async () => {
    const stdin = config('1.0.0', { ipam: { type: 'pontoon-ipam' } });
    const outcome = await run({ env: { ...BASE_ENV, CNI_COMMAND: 'ADD', CNI_ARGS: 'IgnoreUnknown=1;IP=10.1.2.3;K8S_POD_NAME=x;EMPTY=;EQ=a=b' }, stdin });
    assert.equal(outcome.code, 0);
    const [call, ...more] = outcome.calls;
    assert.equal(more.length, 0);
    assert.ok(call);
    const { args } = call;
    assert.equal(args.command, 'ADD');
    assert.equal(args.containerId, 'ctr1');
    assert.equal(args.netns, NETNS);
    assert.equal(args.ifname, 'eth0');
    assert.deepEqual(args.path, ['/opt/cni/bin', '/usr/lib/cni']);
    assert.deepEqual([...args.args], [
      ['IgnoreUnknown', '1'],
      ['IP', '10.1.2.3'],
      ['K8S_POD_NAME', 'x'],
      ['EMPTY', ''],
      ['EQ', 'a=b'],
    ]);
    assert.deepEqual(args.config, stdin);
    assert.deepEqual(args.stdin, Buffer.from(JSON.stringify(stdin)));
  });

  test('DEL without CNI_NETNS is fine and prints nothing', async () => {
    const { CNI_NETNS: _netns, ...env } = BASE_ENV;
    const outcome = await run({ env: { ...env, CNI_COMMAND: 'DEL' } });
    assert.equal(outcome.code, 0);
    assert.equal(outcome.stdout, '');
    assert.equal(outcome.calls[0]?.args.netns, '');
  });

  const addIn = async (version: string): Promise<Record<string, unknown> | undefined> => {
    const outcome = await run({ env: { ...BASE_ENV, CNI_COMMAND: 'ADD' }, stdin: config(version) });
    assert.equal(outcome.code, 0);
    return outcome.json;
  };

  for (const version of ['0.3.0', '0.3.1', '0.4.0']) {
    test(`ADD output in ${version}: ips carry "version", no interface or route extras`, async () => {
      assert.deepEqual(await addIn(version), {
        cniVersion: version,
        interfaces: [{ name: 'eth0', mac: '0a:58:0a:00:00:02', sandbox: NETNS }],
        ips: [
          { version: '4', address: '10.0.0.2/24', gateway: '10.0.0.1', interface: 0 },
          { version: '6', address: 'fd00::2/64', gateway: 'fd00::1', interface: 0 },
        ],
        routes: [{ dst: '0.0.0.0/0', gw: '10.0.0.1' }, { dst: '10.96.0.0/12' }],
        dns: { nameservers: ['10.96.0.10'], search: ['svc.cluster.local'] },
      });
    });
  }

  test('ADD output in 1.0.0: no ip version, no interface mtu, no route mtu/priority/table', async () => {
    assert.deepEqual(await addIn('1.0.0'), {
      cniVersion: '1.0.0',
      interfaces: [{ name: 'eth0', mac: '0a:58:0a:00:00:02', sandbox: NETNS }],
      ips: [
        { address: '10.0.0.2/24', gateway: '10.0.0.1', interface: 0 },
        { address: 'fd00::2/64', gateway: 'fd00::1', interface: 0 },
      ],
      routes: [{ dst: '0.0.0.0/0', gw: '10.0.0.1' }, { dst: '10.96.0.0/12' }],
      dns: { nameservers: ['10.96.0.10'], search: ['svc.cluster.local'] },
    });
  });

  test('ADD output in 1.1.0 keeps interface mtu and route extras', async () => {
    assert.deepEqual(await addIn('1.1.0'), { ...FULL_RESULT, cniVersion: '1.1.0' });
  });

  test('ADD output takes the config version, not the handler result version', async () => {
    const outcome = await run({
      env: { ...BASE_ENV, CNI_COMMAND: 'ADD' },
      stdin: config('0.4.0'),
      handlers: { add: async () => ({ cniVersion: '1.1.0', ips: [{ address: '10.0.0.9/24' }] }) },
    });
    assert.deepEqual(outcome.json, { cniVersion: '0.4.0', ips: [{ version: '4', address: '10.0.0.9/24' }], dns: {} });
  });
});

describe('parseCniArgs', () => {
  test('splits KEY=VALUE pairs on ";" and skips empty pairs', () => {
    assert.deepEqual([...parseCniArgs('IP=10.1.2.3;K8S_POD_NAME=x;')], [
      ['IP', '10.1.2.3'],
      ['K8S_POD_NAME', 'x'],
    ]);
    assert.deepEqual([...parseCniArgs('')], []);
  });

  test('a pair without a key is CniError code 4', () => {
    for (const text of ['foo', 'A=1;=2', 'A=1;B']) {
      assert.throws(() => parseCniArgs(text), (err: unknown) => err instanceof CniError && err.code === CniErrorCode.InvalidEnvironment, text);
    }
  });
});

describe('results across versions', () => {
  const result040 = {
    cniVersion: '0.4.0',
    interfaces: [{ name: 'eth0', mac: '0a:58:0a:00:00:02', sandbox: NETNS }],
    ips: [{ version: '4', address: '10.0.0.2/24', gateway: '10.0.0.1', interface: 0 }],
    routes: [{ dst: '0.0.0.0/0', gw: '10.0.0.1' }],
    dns: { nameservers: ['10.96.0.10'], domain: 'cluster.local', search: ['svc.cluster.local'], options: ['ndots:5'] },
  };

  test('parseResult of a 0.4.0 result drops ips[].version and keeps every other field', () => {
    assert.deepEqual(parseResult(result040), {
      cniVersion: '0.4.0',
      interfaces: [{ name: 'eth0', mac: '0a:58:0a:00:00:02', sandbox: NETNS }],
      ips: [{ address: '10.0.0.2/24', gateway: '10.0.0.1', interface: 0 }],
      routes: [{ dst: '0.0.0.0/0', gw: '10.0.0.1' }],
      dns: { nameservers: ['10.96.0.10'], domain: 'cluster.local', search: ['svc.cluster.local'], options: ['ndots:5'] },
    });
  });

  test('a 0.4.0 result survives parseResult then toVersion 0.4.0 unchanged', () => {
    assert.deepEqual(toVersion(parseResult(result040), '0.4.0'), result040);
  });

  test('parseResult keeps 1.1.0 fields', () => {
    assert.deepEqual(parseResult(FULL_RESULT), FULL_RESULT);
  });

  test('parseResult rejects malformed results with code 6', () => {
    const bad = [null, [], 'x', { ips: {} }, { ips: [{}] }, { ips: [{ address: 1 }] }, { interfaces: [{ mtu: 1.5 }] }, { routes: [{ gw: '10.0.0.1' }] }, { dns: { nameservers: 'x' } }];
    for (const value of bad) {
      assert.throws(() => parseResult(value), (err: unknown) => err instanceof CniError && err.code === CniErrorCode.DecodingFailure, JSON.stringify(value));
    }
  });

  test('versionAtLeast compares numerically', () => {
    assert.equal(versionAtLeast('0.4.0', '0.4.0'), true);
    assert.equal(versionAtLeast('1.0.0', '0.4.0'), true);
    assert.equal(versionAtLeast('0.3.1', '0.4.0'), false);
    assert.equal(versionAtLeast('0.10.0', '0.4.0'), true);
    assert.equal(versionAtLeast('1.0.0', '1.1.0'), false);
  });
});
