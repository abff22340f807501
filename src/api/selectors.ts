/**
 * Label and field selectors, parsed and matched the way k8s.io/apimachinery does it, so a
 * selector kubectl or client-go accepts means the same thing here and a selector they reject
 * is rejected here with a similar message (the apiserver answers it with 400 BadRequest).
 *
 * Design notes:
 * - A selector is a plain list of requirements, ANDed. An empty list matches everything;
 *   "matches nothing" (a nil LabelSelector in a controller spec) is the caller's decision.
 * - Parsing sorts requirements by key and set values lexically, like apimachinery, so
 *   formatting a parsed selector is deterministic (Scale.status.selector, Table output).
 * - Label syntax: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`, `a>1`, `a<1`.
 *   Field syntax is simpler: `field=value`, `field==value`, `field!=value` joined by commas,
 *   with `\,` `\=` `\\` escapes in values; a missing field compares as the empty string.
 */
import type { LabelSelector } from './meta.js';
import { PontoonError } from '../lib/errors.js';

/** A selector the apiserver cannot parse or does not support: the client's fault (400). */
export class SelectorParseError extends PontoonError {}

export type LabelOperator = 'In' | 'NotIn' | 'Exists' | 'DoesNotExist' | '=' | '==' | '!=' | 'Gt' | 'Lt';

export interface LabelRequirement {
  key: string;
  operator: LabelOperator;
  /** Sorted and de-duplicated; exactly one for `=`, `==`, `!=`, `Gt`, `Lt`; none for (Does)Exists. */
  values: string[];
}

export type FieldOperator = '=' | '==' | '!=';

export interface FieldRequirement {
  field: string;
  operator: FieldOperator;
  value: string;
}

// ---- label key/value validation (apimachinery's IsQualifiedName / IsValidLabelValue) --------

const nameMaxLength = 63;
const subdomainMaxLength = 253;
const nameFormat = '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]';
const namePattern = new RegExp(`^${nameFormat}$`);
const valuePattern = new RegExp(`^(${nameFormat})?$`);
const dnsLabelFormat = '[a-z0-9]([-a-z0-9]*[a-z0-9])?';
const subdomainFormat = `${dnsLabelFormat}(\\.${dnsLabelFormat})*`;
const subdomainPattern = new RegExp(`^${subdomainFormat}$`);

const nameMessage =
  "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric " +
  `character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '${nameFormat}')`;

/** Problems with a label key; empty when it is valid. */
export function labelKeyErrors(key: string): string[] {
  const errors: string[] = [];
  const parts = key.split('/');
  let name: string;
  if (parts.length === 1) {
    name = key;
  } else if (parts.length === 2) {
    const prefix = parts[0] ?? '';
    name = parts[1] ?? '';
    if (prefix.length === 0) {
      errors.push('prefix part must be non-empty');
    } else {
      if (prefix.length > subdomainMaxLength) {
        errors.push(`prefix part must be no more than ${subdomainMaxLength} characters`);
      }
      if (!subdomainPattern.test(prefix)) {
        errors.push(
          'prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, ' +
            `'-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', ` +
            `regex used for validation is '${subdomainFormat}')`,
        );
      }
    }
  } else {
    return [`a qualified name ${nameMessage} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')`];
  }
  if (name.length === 0) {
    errors.push('name part must be non-empty');
  } else if (name.length > nameMaxLength) {
    errors.push(`name part must be no more than ${nameMaxLength} characters`);
  }
  if (name.length > 0 && !namePattern.test(name)) errors.push(`name part ${nameMessage}`);
  return errors;
}

/** Problems with a label value; empty when it is valid (the empty string is valid). */
export function labelValueErrors(value: string): string[] {
  const errors: string[] = [];
  if (value.length > nameMaxLength) errors.push(`must be no more than ${nameMaxLength} characters`);
  if (!valuePattern.test(value)) {
    errors.push(
      "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and " +
        "must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', " +
        `regex used for validation is '(${nameFormat})?')`,
    );
  }
  return errors;
}

function invalid(path: string, value: unknown, detail: string): SelectorParseError {
  return new SelectorParseError(`${path}: Invalid value: ${JSON.stringify(value)}: ${detail}`);
}

const int64Min = -(2n ** 63n);
const int64Max = 2n ** 63n - 1n;

/** The value as Go's strconv.ParseInt(value, 10, 64) reads it, or undefined. */
function parseInt64(value: string): bigint | undefined {
  if (!/^[+-]?[0-9]+$/.test(value)) return undefined;
  const parsed = BigInt(value);
  return parsed < int64Min || parsed > int64Max ? undefined : parsed;
}

/**
 * Checks one requirement as apimachinery's NewRequirement does and returns it normalized
 * (values sorted, duplicates dropped). Throws SelectorParseError.
 */
export function makeLabelRequirement(key: string, operator: LabelOperator, given: readonly string[]): LabelRequirement {
  // Normalized first, as upstream hands NewRequirement a sorted set: error indices match.
  const values = [...new Set(given)].sort();
  const keyErrors = labelKeyErrors(key);
  if (keyErrors.length > 0) throw invalid('key', key, keyErrors.join('; '));
  switch (operator) {
    case 'In':
    case 'NotIn':
      if (values.length === 0) throw invalid('values', values, "for 'in', 'notin' operators, values set can't be empty");
      break;
    case '=':
    case '==':
    case '!=':
      if (values.length !== 1) throw invalid('values', values, 'exact-match compatibility requires one single value');
      break;
    case 'Exists':
    case 'DoesNotExist':
      if (values.length !== 0) throw invalid('values', values, 'values set must be empty for exists and does not exist');
      break;
    case 'Gt':
    case 'Lt':
      if (values.length !== 1) throw invalid('values', values, "for 'Gt', 'Lt' operators, exactly one value is required");
      if (parseInt64(values[0] ?? '') === undefined) {
        throw invalid('values[0]', values[0], "for 'Gt', 'Lt' operators, the value must be an integer");
      }
      break;
    default:
      throw new SelectorParseError(
        `operator: Unsupported value: ${JSON.stringify(operator)}: supported values: "in", "notin", "=", "==", "!=", "gt", "lt", "exists", "!"`,
      );
  }
  values.forEach((value, index) => {
    const errors = labelValueErrors(value);
    if (errors.length > 0) throw invalid(`values[${index}][${key}]`, value, errors.join('; '));
  });
  return { key, operator, values };
}

// ---- label selector text: lexer ------------------------------------------------------------

type TokenType =
  | 'identifier'
  | 'end'
  | 'error'
  | '('
  | ')'
  | ','
  | '!'
  | '='
  | '=='
  | '!='
  | '>'
  | '<'
  | 'in'
  | 'notin';

interface Token {
  type: TokenType;
  text: string;
}

const symbolTokens: ReadonlySet<string> = new Set(['(', ')', ',', '!', '=', '==', '!=', '>', '<']);
const isSymbolChar = (ch: string): boolean => '=!(),><'.includes(ch);
const isSpaceChar = (ch: string): boolean => ch === ' ' || ch === '\t' || ch === '\r' || ch === '\n';

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let pos = 0;
  for (;;) {
    while (pos < text.length && isSpaceChar(text[pos] as string)) pos++;
    if (pos >= text.length) {
      tokens.push({ type: 'end', text: '' });
      return tokens;
    }
    const start = pos;
    if (isSymbolChar(text[pos] as string)) {
      // Longest run of symbol characters that still spells an operator: `!=` beats `!`.
      let best: Token | undefined;
      let end = pos;
      while (end < text.length && isSymbolChar(text[end] as string)) {
        const candidate = text.slice(start, end + 1);
        if (symbolTokens.has(candidate)) best = { type: candidate as TokenType, text: candidate };
        else if (best) break;
        end++;
      }
      if (!best) {
        tokens.push({ type: 'error', text: `error expected: keyword found '${text.slice(start, end)}'` });
        pos = end;
        continue;
      }
      tokens.push(best);
      pos = start + best.text.length;
      continue;
    }
    while (pos < text.length && !isSymbolChar(text[pos] as string) && !isSpaceChar(text[pos] as string)) pos++;
    const word = text.slice(start, pos);
    tokens.push(word === 'in' || word === 'notin' ? { type: word, text: word } : { type: 'identifier', text: word });
  }
}

// ---- label selector text: parser -----------------------------------------------------------

class LabelParser {
  private position = 0;

  constructor(private readonly tokens: readonly Token[]) {}

  /**
   * `in` and `notin` are keywords only where an operator is expected; anywhere else they
   * are ordinary identifiers (`in in (in)` is a valid selector).
   */
  private peek(asValue = true): Token {
    const token = this.tokens[Math.min(this.position, this.tokens.length - 1)] as Token;
    return asValue && (token.type === 'in' || token.type === 'notin') ? { type: 'identifier', text: token.text } : token;
  }

  private next(asValue = true): Token {
    const token = this.peek(asValue);
    this.position++;
    return token;
  }

  parse(): LabelRequirement[] {
    const requirements: LabelRequirement[] = [];
    for (;;) {
      const token = this.peek();
      if (token.type === 'end') return requirements;
      if (token.type !== 'identifier' && token.type !== '!') {
        throw new SelectorParseError(`found '${token.text}', expected: !, identifier, or 'end of string'`);
      }
      try {
        requirements.push(this.requirement());
      } catch (err) {
        if (err instanceof SelectorParseError) throw new SelectorParseError(`unable to parse requirement: ${err.message}`);
        throw err;
      }
      const after = this.next();
      if (after.type === 'end') return requirements;
      if (after.type !== ',') throw new SelectorParseError(`found '${after.text}', expected: ',' or 'end of string'`);
      const following = this.peek();
      if (following.type !== 'identifier' && following.type !== '!') {
        throw new SelectorParseError(`found '${following.text}', expected: identifier after ','`);
      }
    }
  }

  private requirement(): LabelRequirement {
    let negated = false;
    let token = this.next();
    if (token.type === '!') {
      negated = true;
      token = this.next();
    }
    if (token.type !== 'identifier') throw new SelectorParseError(`found '${token.text}', expected: identifier`);
    const key = token.text;
    const keyErrors = labelKeyErrors(key);
    if (keyErrors.length > 0) throw invalid('key', key, keyErrors.join('; '));
    // `!key` is complete by itself; whatever follows it (`!a=b`) is the caller's syntax error.
    if (negated) return makeLabelRequirement(key, 'DoesNotExist', []);
    const lookahead = this.peek();
    if (lookahead.type === 'end' || lookahead.type === ',') return makeLabelRequirement(key, 'Exists', []);
    const operatorToken = this.next(false);
    switch (operatorToken.type) {
      case 'in':
        return makeLabelRequirement(key, 'In', this.valueSet());
      case 'notin':
        return makeLabelRequirement(key, 'NotIn', this.valueSet());
      case '=':
      case '==':
      case '!=':
        return makeLabelRequirement(key, operatorToken.type, [this.exactValue()]);
      case '>':
        return makeLabelRequirement(key, 'Gt', [this.exactValue()]);
      case '<':
        return makeLabelRequirement(key, 'Lt', [this.exactValue()]);
      default:
        throw new SelectorParseError(`found '${operatorToken.text}', expected: in, notin, =, ==, !=, gt, lt`);
    }
  }

  /** `(a,b,c)`; empty members are the empty string, so `()` and `(a,)` are legal. */
  private valueSet(): string[] {
    const open = this.next();
    if (open.type !== '(') throw new SelectorParseError(`found '${open.text}' expected: '('`);
    const values: string[] = [];
    let expectValue = true;
    for (;;) {
      const token = this.next();
      if (token.type === ')') {
        if (expectValue) values.push('');
        return values;
      }
      if (token.type === ',') {
        if (expectValue) values.push('');
        expectValue = true;
        continue;
      }
      if (token.type === 'identifier' && expectValue) {
        values.push(token.text);
        expectValue = false;
        continue;
      }
      throw new SelectorParseError(
        expectValue ? `found '${token.text}', expected: ',', ')' or identifier` : `found '${token.text}', expected: ',' or ')'`,
      );
    }
  }

  /** The value after `=`, `!=`, `>`...: one identifier, or nothing (the empty string). */
  private exactValue(): string {
    const token = this.peek();
    if (token.type === 'end' || token.type === ',') return '';
    this.position++;
    if (token.type === 'identifier') return token.text;
    throw new SelectorParseError(`found '${token.text}', expected: identifier`);
  }
}

function byKey(a: LabelRequirement, b: LabelRequirement): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

/** Parses a label selector string (`?labelSelector=`). The empty string selects everything. */
export function parseLabelSelector(text: string): LabelRequirement[] {
  return new LabelParser(tokenize(text)).parse().sort(byKey);
}

/**
 * The requirements of a LabelSelector object (Deployment/ReplicaSet `spec.selector`):
 * matchLabels become `=` requirements, matchExpressions keep their operator.
 */
export function labelSelectorFromObject(selector: LabelSelector): LabelRequirement[] {
  const requirements: LabelRequirement[] = [];
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    if (typeof value !== 'string') throw invalid(`matchLabels[${key}]`, value, 'must be a string');
    requirements.push(makeLabelRequirement(key, '=', [value]));
  }
  for (const expression of selector.matchExpressions ?? []) {
    const operator: unknown = expression.operator;
    if (operator !== 'In' && operator !== 'NotIn' && operator !== 'Exists' && operator !== 'DoesNotExist') {
      throw new SelectorParseError(`${JSON.stringify(operator)} is not a valid label selector operator`);
    }
    const values: unknown = expression.values ?? [];
    if (!Array.isArray(values) || values.some((v) => typeof v !== 'string')) {
      throw invalid('values', values, 'must be a list of strings');
    }
    requirements.push(makeLabelRequirement(expression.key, operator, values as string[]));
  }
  return requirements.sort(byKey);
}

/** One requirement in selector syntax: `a=b`, `a in (x,y)`, `!a`, `a>3`. */
export function formatLabelRequirement(requirement: LabelRequirement): string {
  const { key, values } = requirement;
  const single = values[0] ?? '';
  switch (requirement.operator) {
    case 'Exists':
      return key;
    case 'DoesNotExist':
      return `!${key}`;
    case 'In':
      return `${key} in (${[...values].sort().join(',')})`;
    case 'NotIn':
      return `${key} notin (${[...values].sort().join(',')})`;
    case 'Gt':
      return `${key}>${single}`;
    case 'Lt':
      return `${key}<${single}`;
    default:
      return `${key}${requirement.operator}${single}`;
  }
}

/** Requirements joined the way `labels.Selector.String()` joins them. */
export function formatLabelRequirements(requirements: readonly LabelRequirement[]): string {
  return requirements.map(formatLabelRequirement).join(',');
}

/** What Scale.status.selector shows for a LabelSelector, e.g. `app=web,tier in (a,b)`. */
export function formatLabelSelector(selector: LabelSelector): string {
  return formatLabelRequirements(labelSelectorFromObject(selector));
}

function matchesRequirement(requirement: LabelRequirement, labels: Record<string, string>): boolean {
  const present = Object.prototype.hasOwnProperty.call(labels, requirement.key);
  const value = present ? labels[requirement.key] : undefined;
  switch (requirement.operator) {
    case 'In':
    case '=':
    case '==':
      return value !== undefined && requirement.values.includes(value);
    case 'NotIn':
    case '!=':
      return value === undefined || !requirement.values.includes(value);
    case 'Exists':
      return present;
    case 'DoesNotExist':
      return !present;
    case 'Gt':
    case 'Lt': {
      // Labels that are not integers never satisfy a numeric comparison.
      const have = value === undefined ? undefined : parseInt64(value);
      const want = parseInt64(requirement.values[0] ?? '');
      if (have === undefined || want === undefined) return false;
      return requirement.operator === 'Gt' ? have > want : have < want;
    }
    default:
      return false;
  }
}

/** True when every requirement holds for `labels`; no requirements match everything. */
export function matchesLabels(requirements: readonly LabelRequirement[], labels: Record<string, string> | undefined): boolean {
  const set = labels ?? {};
  return requirements.every((requirement) => matchesRequirement(requirement, set));
}

// ---- field selectors -----------------------------------------------------------------------

/** Splits on commas that are not escaped with a backslash. */
function splitFieldTerms(text: string): string[] {
  const terms: string[] = [];
  let start = 0;
  let escaped = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (escaped) escaped = false;
    else if (ch === '\\') escaped = true;
    else if (ch === ',') {
      terms.push(text.slice(start, i));
      start = i + 1;
    }
  }
  terms.push(text.slice(start));
  return terms;
}

function unescapeFieldValue(value: string): string {
  let result = '';
  let escaped = false;
  for (const ch of value) {
    if (escaped) {
      if (ch !== '\\' && ch !== ',' && ch !== '=') {
        throw new SelectorParseError(`invalid field selector: invalid escape sequence: \\${ch}`);
      }
      result += ch;
      escaped = false;
    } else if (ch === '\\') {
      escaped = true;
    } else if (ch === ',' || ch === '=') {
      throw new SelectorParseError(`invalid field selector: unescaped character in value: ${ch}`);
    } else {
      result += ch;
    }
  }
  if (escaped) throw new SelectorParseError('invalid field selector: invalid escape sequence: \\');
  return result;
}

/** Escapes a value for a field selector term (the inverse of the parser's unescaping). */
export function escapeFieldValue(value: string): string {
  return value.replace(/[\\,=]/g, (ch) => `\\${ch}`);
}

const fieldOperators: readonly FieldOperator[] = ['!=', '==', '='];

/** Parses a field selector string (`?fieldSelector=`). The empty string selects everything. */
export function parseFieldSelector(text: string): FieldRequirement[] {
  const requirements: FieldRequirement[] = [];
  for (const term of splitFieldTerms(text)) {
    if (term === '') continue;
    let parsed: FieldRequirement | undefined;
    // The first position where any operator starts splits the term, so the field name can
    // never contain `=` or `!=` while the value may (escaped).
    for (let i = 0; i < term.length && !parsed; i++) {
      for (const operator of fieldOperators) {
        if (term.startsWith(operator, i)) {
          parsed = { field: term.slice(0, i), operator, value: unescapeFieldValue(term.slice(i + operator.length)) };
          break;
        }
      }
    }
    if (!parsed) throw new SelectorParseError(`invalid selector: '${text}'; can't understand '${term}'`);
    requirements.push(parsed);
  }
  return requirements;
}

/** True when every requirement holds; a field missing from `fields` compares as "". */
export function matchesFields(requirements: readonly FieldRequirement[], fields: Record<string, string>): boolean {
  return requirements.every((requirement) => {
    const value = Object.prototype.hasOwnProperty.call(fields, requirement.field) ? fields[requirement.field] : '';
    return requirement.operator === '!=' ? value !== requirement.value : value === requirement.value;
  });
}

/** Requirements in selector syntax, values escaped. */
export function formatFieldSelector(requirements: readonly FieldRequirement[]): string {
  return requirements.map((r) => `${r.field}${r.operator}${escapeFieldValue(r.value)}`).join(',');
}
