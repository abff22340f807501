/** Kubernetes timestamps (meta/v1 Time): RFC 3339 in UTC at second precision. */
export function rfc3339(date: Date = new Date()): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
