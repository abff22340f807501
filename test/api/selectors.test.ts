import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { LabelSelector } from '../../src/api/meta.js';
import {
  escapeFieldValue,
  formatFieldSelector,
  formatLabelRequirements,
  formatLabelSelector,
  labelSelectorFromObject,
  matchesFields,
  matchesLabels,
  parseFieldSelector,
  parseLabelSelector,
  SelectorParseError,
  type LabelRequirement,
} from '../../src/api/selectors.js';
import { PontoonError } from '../../src/lib/errors.js';

const req = (key: string, operator: LabelRequirement['operator'], ...values: string[]): LabelRequirement => ({ key, operator, values });

/** Asserts a SelectorParseError whose message contains `fragment`. */
function assertParseError(fn: () => unknown, fragment: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof SelectorParseError, `expected SelectorParseError, got ${String(err)}`);
    assert.ok(err instanceof PontoonError);
    assert.ok(err.message.includes(fragment), `message ${JSON.stringify(err.message)} lacks ${JSON.stringify(fragment)}`);
    return true;
  });
}

describe('parseLabelSelector', () => {
  const valid: [string, LabelRequirement[]][] = [
    ['', []],
    ['   ', []],
    ['a=b', [req('a', '=', 'b')]],
    ['a==b', [req('a', '==', 'b')]],
    ['a!=b', [req('a', '!=', 'b')]],
    ['a=', [req('a', '=', '')]],
    ['a!=,b', [req('a', '!=', ''), req('b', 'Exists')]],
    ['a in (x,y)', [req('a', 'In', 'x', 'y')]],
    ['a in (y, x , y)', [req('a', 'In', 'x', 'y')]],
    ['a notin (x)', [req('a', 'NotIn', 'x')]],
    ['a in ()', [req('a', 'In', '')]],
    ['x in (foo,,baz),y,z notin ()', [req('x', 'In', '', 'baz', 'foo'), req('y', 'Exists'), req('z', 'NotIn', '')]],
    ['a', [req('a', 'Exists')]],
    ['!a', [req('a', 'DoesNotExist')]],
    ['  ! a  ', [req('a', 'DoesNotExist')]],
    ['a>5', [req('a', 'Gt', '5')]],
    ['a<10,b', [req('a', 'Lt', '10'), req('b', 'Exists')]],
    ['  app = web ,  tier  ', [req('app', '=', 'web'), req('tier', 'Exists')]],
    ['b=c,a=d', [req('a', '=', 'd'), req('b', '=', 'c')]],
    ['a=b,a!=c', [req('a', '=', 'b'), req('a', '!=', 'c')]],
    ['example.com/app=web', [req('example.com/app', '=', 'web')]],
    ['app.kubernetes.io/name in (web,db)', [req('app.kubernetes.io/name', 'In', 'db', 'web')]],
    ['in in (in,notin)', [req('in', 'In', 'in', 'notin')]],
    ['notin notin (x)', [req('notin', 'NotIn', 'x')]],
    ['a=b\t,\nc=d', [req('a', '=', 'b'), req('c', '=', 'd')]],
    ['A_b.c-D=X_y.z-1', [req('A_b.c-D', '=', 'X_y.z-1')]],
    [`${'k'.repeat(63)}=${'v'.repeat(63)}`, [req('k'.repeat(63), '=', 'v'.repeat(63))]],
  ];
  for (const [text, expected] of valid) {
    test(`parses ${JSON.stringify(text)}`, () => {
      assert.deepEqual(parseLabelSelector(text), expected);
    });
  }

  const invalid: [string, string][] = [
    ['a b', "found 'b', expected: in, notin, =, ==, !=, gt, lt"],
    ['a=b c', "found 'c', expected: ',' or 'end of string'"],
    ['a in x', "found 'x' expected: '('"],
    ['a in (x', "found '', expected: ',' or ')'"],
    ['a in (x y)', "found 'y', expected: ',' or ')'"],
    ['a notin (x,y', "expected: ',' or ')'"],
    ['a in (=)', "found '=', expected: ',', ')' or identifier"],
    ['=a', "found '=', expected: !, identifier, or 'end of string'"],
    [',a', "found ',', expected: !, identifier, or 'end of string'"],
    ['a,', "found '', expected: identifier after ','"],
    ['a,,b', "found ',', expected: identifier after ','"],
    ['a=b=c', "found '=', expected: ',' or 'end of string'"],
    ['!a=b', "found '=', expected: ',' or 'end of string'"],
    ['!', "found '', expected: identifier"],
    ['a=(b)', "found '(', expected: identifier"],
    ['a!!b', "found '!', expected: in, notin"],
    ['-a=b', 'key: Invalid value: "-a": name part must consist of alphanumeric characters'],
    ['a-=b', 'name part must consist of alphanumeric characters'],
    ['a/b/c=d', 'a qualified name must consist of alphanumeric characters'],
    ['/a=b', 'prefix part must be non-empty'],
    ['a/=b', 'name part must be non-empty'],
    ['Example.com/a=b', 'prefix part a lowercase RFC 1123 subdomain'],
    [`${'k'.repeat(64)}=v`, 'name part must be no more than 63 characters'],
    [`k=${'v'.repeat(64)}`, 'values[0][k]: Invalid value'],
    ['a=-b', 'a valid label must be an empty string or consist of alphanumeric characters'],
    ['a in (x,_y)', 'values[0][a]: Invalid value: "_y"'],
    ['a>x', "for 'Gt', 'Lt' operators, the value must be an integer"],
    ['a<', "for 'Gt', 'Lt' operators, the value must be an integer"],
    ['a>99999999999999999999', 'the value must be an integer'],
  ];
  for (const [text, fragment] of invalid) {
    test(`rejects ${JSON.stringify(text)}`, () => {
      assertParseError(() => parseLabelSelector(text), fragment);
    });
  }

  test('errors inside one requirement say "unable to parse requirement"', () => {
    assertParseError(() => parseLabelSelector('a=b,c d'), 'unable to parse requirement: ');
    assertParseError(() => parseLabelSelector('-bad'), 'unable to parse requirement: key: Invalid value');
  });

  test('formatting a parsed selector parses back to the same requirements', () => {
    for (const text of ['a=b,c!=d', 'x in (foo,,baz),y,z notin ()', '!a,b==c', 'n>3,m<4', 'in in (in)']) {
      const parsed = parseLabelSelector(text);
      assert.deepEqual(parseLabelSelector(formatLabelRequirements(parsed)), parsed, text);
    }
    assert.equal(formatLabelRequirements(parseLabelSelector('z , !y, x in (b,a), w>1')), 'w>1,x in (a,b),!y,z');
  });
});

describe('labelSelectorFromObject and formatLabelSelector', () => {
  const cases: [string, LabelSelector, LabelRequirement[], string][] = [
    ['empty', {}, [], ''],
    ['matchLabels', { matchLabels: { app: 'web' } }, [req('app', '=', 'web')], 'app=web'],
    ['sorted by key', { matchLabels: { z: '1', a: '2' } }, [req('a', '=', '2'), req('z', '=', '1')], 'a=2,z=1'],
    [
      'labels and expressions',
      { matchLabels: { app: 'web' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['b', 'a'] }] },
      [req('app', '=', 'web'), req('tier', 'In', 'a', 'b')],
      'app=web,tier in (a,b)',
    ],
    [
      'every operator',
      {
        matchExpressions: [
          { key: 'd', operator: 'DoesNotExist' },
          { key: 'c', operator: 'Exists' },
          { key: 'b', operator: 'NotIn', values: ['x'] },
          { key: 'a', operator: 'In', values: ['y'] },
        ],
      },
      [req('a', 'In', 'y'), req('b', 'NotIn', 'x'), req('c', 'Exists'), req('d', 'DoesNotExist')],
      'a in (y),b notin (x),c,!d',
    ],
  ];
  for (const [name, selector, requirements, text] of cases) {
    test(name, () => {
      assert.deepEqual(labelSelectorFromObject(selector), requirements);
      assert.equal(formatLabelSelector(selector), text);
    });
  }

  const bad: [string, LabelSelector, string][] = [
    ['unknown operator', { matchExpressions: [{ key: 'a', operator: 'Equals' as 'In', values: ['x'] }] }, '"Equals" is not a valid label selector operator'],
    ['In without values', { matchExpressions: [{ key: 'a', operator: 'In', values: [] }] }, "values set can't be empty"],
    ['NotIn without values', { matchExpressions: [{ key: 'a', operator: 'NotIn' }] }, "values set can't be empty"],
    ['Exists with values', { matchExpressions: [{ key: 'a', operator: 'Exists', values: ['x'] }] }, 'values set must be empty'],
    ['invalid key', { matchLabels: { 'bad key': 'x' } }, 'key: Invalid value: "bad key"'],
    ['invalid value', { matchLabels: { app: 'no spaces' } }, 'values[0][app]: Invalid value: "no spaces"'],
    ['non-string values', { matchExpressions: [{ key: 'a', operator: 'In', values: [1 as unknown as string] }] }, 'must be a list of strings'],
  ];
  for (const [name, selector, fragment] of bad) {
    test(`rejects ${name}`, () => assertParseError(() => labelSelectorFromObject(selector), fragment));
  }
});

describe('matchesLabels', () => {
  const cases: [string, Record<string, string> | undefined, boolean][] = [
    ['', undefined, true],
    ['', {}, true],
    ['app=web', { app: 'web', tier: 'x' }, true],
    ['app=web', { app: 'db' }, false],
    ['app=web', {}, false],
    ['app=web', undefined, false],
    ['app==web', { app: 'web' }, true],
    ['app!=web', { app: 'db' }, true],
    ['app!=web', { app: 'web' }, false],
    ['app!=web', {}, true],
    ['app=', { app: '' }, true],
    ['app=', {}, false],
    ['tier in (a,b)', { tier: 'b' }, true],
    ['tier in (a,b)', { tier: 'c' }, false],
    ['tier in (a,b)', {}, false],
    ['tier notin (a,b)', { tier: 'c' }, true],
    ['tier notin (a,b)', { tier: 'a' }, false],
    ['tier notin (a,b)', {}, true],
    ['app', { app: '' }, true],
    ['app', { other: 'x' }, false],
    ['!app', { other: 'x' }, true],
    ['!app', { app: 'x' }, false],
    ['n>5', { n: '6' }, true],
    ['n>5', { n: '5' }, false],
    ['n>5', { n: 'six' }, false],
    ['n>5', {}, false],
    ['n<5', { n: '4' }, true],
    ['n<5', { n: '-7' }, true],
    ['n<5', { n: '5' }, false],
    ['app=web,tier in (a)', { app: 'web', tier: 'a' }, true],
    ['app=web,tier in (a)', { app: 'web', tier: 'b' }, false],
    ['app=web,!canary', { app: 'web', canary: 'true' }, false],
    ['constructor', {}, false],
    ['toString', {}, false],
  ];
  for (const [selector, labels, expected] of cases) {
    test(`${JSON.stringify(selector)} on ${JSON.stringify(labels)} is ${expected}`, () => {
      assert.equal(matchesLabels(parseLabelSelector(selector), labels), expected);
    });
  }

  test('selector objects match like their string form', () => {
    const selector: LabelSelector = { matchLabels: { app: 'web' }, matchExpressions: [{ key: 'track', operator: 'NotIn', values: ['canary'] }] };
    const fromObject = labelSelectorFromObject(selector);
    const fromText = parseLabelSelector(formatLabelSelector(selector));
    const labelSets: Record<string, string>[] = [{ app: 'web' }, { app: 'web', track: 'canary' }, { app: 'web', track: 'stable' }, { app: 'db' }];
    for (const labels of labelSets) {
      assert.equal(matchesLabels(fromObject, labels), matchesLabels(fromText, labels), JSON.stringify(labels));
    }
    assert.equal(matchesLabels(fromObject, { app: 'web', track: 'canary' }), false);
    assert.equal(matchesLabels(fromObject, { app: 'web', track: 'stable' }), true);
  });
});

describe('parseFieldSelector and matchesFields', () => {
  const valid: [string, ReturnType<typeof parseFieldSelector>][] = [
    ['', []],
    ['metadata.name=web', [{ field: 'metadata.name', operator: '=', value: 'web' }]],
    ['metadata.name==web', [{ field: 'metadata.name', operator: '==', value: 'web' }]],
    ['spec.nodeName!=n1', [{ field: 'spec.nodeName', operator: '!=', value: 'n1' }]],
    ['spec.nodeName=', [{ field: 'spec.nodeName', operator: '=', value: '' }]],
    [
      'a=b,c!=d',
      [
        { field: 'a', operator: '=', value: 'b' },
        { field: 'c', operator: '!=', value: 'd' },
      ],
    ],
    ['a=b,,c=d,', [{ field: 'a', operator: '=', value: 'b' }, { field: 'c', operator: '=', value: 'd' }]],
    ['a=x\\,y', [{ field: 'a', operator: '=', value: 'x,y' }]],
    ['a=x\\=y', [{ field: 'a', operator: '=', value: 'x=y' }]],
    ['a=x\\\\y', [{ field: 'a', operator: '=', value: 'x\\y' }]],
    ['a!=\\,', [{ field: 'a', operator: '!=', value: ',' }]],
    ['involvedObject.name=web-1,involvedObject.namespace=default', [
      { field: 'involvedObject.name', operator: '=', value: 'web-1' },
      { field: 'involvedObject.namespace', operator: '=', value: 'default' },
    ]],
  ];
  for (const [text, expected] of valid) {
    test(`parses ${JSON.stringify(text)}`, () => assert.deepEqual(parseFieldSelector(text), expected));
  }

  const invalid: [string, string][] = [
    ['abc', "invalid selector: 'abc'; can't understand 'abc'"],
    ['a=b,c', "can't understand 'c'"],
    ['a=b\\', 'invalid escape sequence: \\'],
    ['a=x\\n', 'invalid escape sequence: \\n'],
    ['a=b=c', 'unescaped character in value: ='],
  ];
  for (const [text, fragment] of invalid) {
    test(`rejects ${JSON.stringify(text)}`, () => assertParseError(() => parseFieldSelector(text), fragment));
  }

  test('a field missing from the set compares as the empty string', () => {
    assert.equal(matchesFields(parseFieldSelector('spec.nodeName='), {}), true);
    assert.equal(matchesFields(parseFieldSelector('spec.nodeName!='), {}), false);
    assert.equal(matchesFields(parseFieldSelector('spec.nodeName=n1'), { 'spec.nodeName': '' }), false);
  });

  const matching: [string, Record<string, string>, boolean][] = [
    ['', { a: 'x' }, true],
    ['a=x', { a: 'x' }, true],
    ['a==x', { a: 'y' }, false],
    ['a!=x', { a: 'y' }, true],
    ['a!=x', { a: 'x' }, false],
    ['a=x,b=y', { a: 'x', b: 'y' }, true],
    ['a=x,b=y', { a: 'x', b: 'z' }, false],
    ['a=x\\,y', { a: 'x,y' }, true],
    ['toString=', {}, true],
  ];
  for (const [text, fields, expected] of matching) {
    test(`${JSON.stringify(text)} on ${JSON.stringify(fields)} is ${expected}`, () => {
      assert.equal(matchesFields(parseFieldSelector(text), fields), expected);
    });
  }

  test('escaped values round-trip through formatting', () => {
    for (const value of ['plain', 'a,b', 'x=y', 'back\\slash', ',=\\', '']) {
      assert.deepEqual(parseFieldSelector(`f=${escapeFieldValue(value)}`), [{ field: 'f', operator: '=', value }]);
    }
    const requirements = parseFieldSelector('a=x\\,y,b!=z');
    assert.deepEqual(parseFieldSelector(formatFieldSelector(requirements)), requirements);
  });
});
