/**
 * `Warning: 299 - "<text>"` headers (RFC 7234 §5.5, as upstream's warning recorder sends
 * them). The text quotes what a client sent (an unknown field's name), so it can hold any
 * character, and Node refuses a header with control characters or anything above U+00FF —
 * after the write has happened, which turned a stored object into a 500. The text is quoted
 * ASCII-only, as Go's strconv.QuoteToASCII does: JSON string escapes, plus \uXXXX for
 * everything outside printable ASCII.
 */
export function warningHeaderValue(text: string): string {
  const quoted = JSON.stringify(text).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return `299 - ${quoted}`;
}
