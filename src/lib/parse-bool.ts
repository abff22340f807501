/**
 * Go's strconv.ParseBool, which Kubernetes uses for every boolean query parameter: clients in
 * other languages send `True` (Python) or `1`, and upstream accepts exactly these words.
 */
const TRUE_WORDS: ReadonlySet<string> = new Set(['1', 't', 'T', 'TRUE', 'true', 'True']);
const FALSE_WORDS: ReadonlySet<string> = new Set(['0', 'f', 'F', 'FALSE', 'false', 'False']);

/** true or false for a word ParseBool accepts, undefined for anything else. */
export function parseGoBool(value: string): boolean | undefined {
  if (TRUE_WORDS.has(value)) return true;
  if (FALSE_WORDS.has(value)) return false;
  return undefined;
}
