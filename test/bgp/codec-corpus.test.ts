/**
 * Runs test/fixtures/bgp/malformed.json through MessageFramer and decodeMessage. Each
 * entry's expected reaction was written from the RFC text it cites (RFC 4271 §6, RFC 7606,
 * RFC 6793 §6, RFC 7313 §5), not from this implementation's output.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { BgpMessageError, decodeMessage, type DecodedMessage, MessageFramer } from '../../src/bgp/codec/index.js';

type Expect = { reset: { code: number; subcode: number; data?: string } } | { treatAsWithdraw: true } | { discard: number[] };

interface Case {
  name: string;
  rfc: string;
  hex: string;
  fourOctetAsn?: boolean;
  expect: Expect;
}

const corpus = JSON.parse(readFileSync(new URL('../../../test/fixtures/bgp/malformed.json', import.meta.url), 'utf8')) as { cases: Case[] };

function run(entry: Case): DecodedMessage[] {
  const bytes = Buffer.from(entry.hex.replace(/\s+/g, ''), 'hex');
  const frames = new MessageFramer().push(bytes);
  assert.equal(frames.length, 1, 'the entry is exactly one message');
  return frames.map((frame) => decodeMessage(frame, { fourOctetAsn: entry.fourOctetAsn ?? true }));
}

describe('malformed BGP corpus', () => {
  test('has at least 30 entries covering every reaction', () => {
    assert.ok(corpus.cases.length >= 30);
    for (const kind of ['reset', 'treatAsWithdraw', 'discard']) assert.ok(corpus.cases.some((c) => kind in c.expect), kind);
  });

  for (const entry of corpus.cases) {
    test(`${entry.name} (${entry.rfc})`, () => {
      const { expect } = entry;
      if ('reset' in expect) {
        assert.throws(
          () => run(entry),
          (err: unknown) => {
            assert.ok(err instanceof BgpMessageError, `expected BgpMessageError, got ${String(err)}`);
            assert.deepEqual({ code: err.code, subcode: err.subcode }, { code: expect.reset.code, subcode: expect.reset.subcode });
            if (expect.reset.data !== undefined) assert.equal(Buffer.from(err.data).toString('hex'), expect.reset.data);
            return true;
          },
        );
        return;
      }
      const [decoded] = run(entry);
      assert.ok(decoded);
      if ('treatAsWithdraw' in expect) {
        assert.equal(decoded.treatAsWithdraw, true, `problems: ${decoded.problems?.join('; ')}`);
        assert.equal(decoded.message.type === 'update' && decoded.message.attributes, undefined);
      } else {
        assert.equal(decoded.treatAsWithdraw, undefined, `problems: ${decoded.problems?.join('; ')}`);
        assert.deepEqual(decoded.discarded, expect.discard);
        assert.ok(decoded.message.type === 'update' && decoded.message.attributes, 'the UPDATE is still accepted');
      }
    });
  }
});
