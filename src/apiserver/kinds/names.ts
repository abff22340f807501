/**
 * The name grammars Kubernetes validates against (k8s.io/apimachinery/pkg/util/validation),
 * each returning the list of problems (empty when valid) so a caller can report one cause per
 * problem, as upstream does. Label keys and values live in src/api/selectors.ts, which the
 * selector parser shares.
 */

const dnsLabelFormat = '[a-z0-9]([-a-z0-9]*[a-z0-9])?';
const dnsLabelPattern = new RegExp(`^${dnsLabelFormat}$`);
const dnsSubdomainFormat = `${dnsLabelFormat}(\\.${dnsLabelFormat})*`;
const dnsSubdomainPattern = new RegExp(`^${dnsSubdomainFormat}$`);
const dns1035Format = '[a-z]([-a-z0-9]*[a-z0-9])?';
const dns1035Pattern = new RegExp(`^${dns1035Format}$`);

export const DNS_LABEL_MAX_LENGTH = 63;
export const DNS_SUBDOMAIN_MAX_LENGTH = 253;

function maxLength(n: number): string {
  return `must be no more than ${n} characters`;
}

/** Upstream's RegexError wording: `<msg> (e.g. 'a',  or 'b', regex used for validation is '<re>')`. */
function regexError(message: string, format: string, ...examples: string[]): string {
  const shown = examples.map((example) => `'${example}', `).join(' or ');
  return `${message} (${examples.length > 0 ? `e.g. ${shown}` : ''}regex used for validation is '${format}')`;
}

/** RFC 1123 label: namespaces, container names, port names in Services. */
export function dns1123LabelErrors(value: string): string[] {
  const errors: string[] = [];
  if (value.length > DNS_LABEL_MAX_LENGTH) errors.push(maxLength(DNS_LABEL_MAX_LENGTH));
  if (!dnsLabelPattern.test(value)) {
    errors.push(
      regexError(
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
        dnsLabelFormat,
        'my-name',
        '123-abc',
      ),
    );
  }
  return errors;
}

/** RFC 1123 subdomain: most object names, node names. */
export function dns1123SubdomainErrors(value: string): string[] {
  const errors: string[] = [];
  if (value.length > DNS_SUBDOMAIN_MAX_LENGTH) errors.push(maxLength(DNS_SUBDOMAIN_MAX_LENGTH));
  if (!dnsSubdomainPattern.test(value)) {
    errors.push(
      regexError(
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
        dnsSubdomainFormat,
        'example.com',
      ),
    );
  }
  return errors;
}

/** RFC 1035 label: Service names (they become DNS names and environment variable prefixes). */
export function dns1035LabelErrors(value: string): string[] {
  const errors: string[] = [];
  if (value.length > DNS_LABEL_MAX_LENGTH) errors.push(maxLength(DNS_LABEL_MAX_LENGTH));
  if (!dns1035Pattern.test(value)) {
    errors.push(
      regexError(
        "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character",
        dns1035Format,
        'my-name',
        'abc-123',
      ),
    );
  }
  return errors;
}

/** Names of kinds with no stricter rule: anything that is a single URL path segment. */
export function pathSegmentErrors(value: string): string[] {
  if (value === '.' || value === '..') return [`may not be '${value}'`];
  const errors: string[] = [];
  for (const bad of ['/', '%']) if (value.includes(bad)) errors.push(`may not contain '${bad}'`);
  return errors;
}

/** IANA service name: named container ports and named targetPorts. */
export function portNameErrors(value: string): string[] {
  const errors: string[] = [];
  if (value.length > 15) errors.push(maxLength(15));
  if (!/^[-a-z0-9]+$/.test(value)) errors.push('must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)');
  if (!/[a-z]/.test(value)) errors.push('must contain at least one letter (a-z)');
  if (value.includes('--')) errors.push('must not contain consecutive hyphens');
  if (value.startsWith('-') || value.endsWith('-')) errors.push('must not begin or end with a hyphen');
  return errors;
}

export function isPortNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= 65535;
}

export const PORT_RANGE_MESSAGE = 'must be between 1 and 65535, inclusive';

/**
 * Environment variable names: any printable ASCII but '=' (the RelaxedEnvironmentVariable
 * rule, on by default since Kubernetes 1.32 — shells cannot expand every such name, but
 * programs reading their environment can).
 */
export function envVarNameErrors(value: string): string[] {
  if (value.length > 0 && /^[\x20-\x3c\x3e-\x7e]+$/.test(value)) return [];
  return ["a valid environment variable name must consist only of printable ASCII characters other than '='"];
}

/** ConfigMap (and Secret) keys: they become file names when mounted. */
export function configMapKeyErrors(value: string): string[] {
  const errors: string[] = [];
  if (value.length > DNS_SUBDOMAIN_MAX_LENGTH) errors.push(maxLength(DNS_SUBDOMAIN_MAX_LENGTH));
  if (!/^[-._a-zA-Z0-9]+$/.test(value)) {
    errors.push(
      regexError("a valid config key must consist of alphanumeric characters, '-', '_' or '.'", '[-._a-zA-Z0-9]+', 'key.name', 'KEY_NAME', 'key-name'),
    );
  }
  if (value === '.') errors.push("must not be '.'");
  else if (value === '..') errors.push("must not be '..'");
  else if (value.startsWith('..')) errors.push("must not start with '..'");
  return errors;
}

/** A name checker; with `prefix` true the value is a generateName prefix (a trailing '-' is fine). */
export type NameValidator = (value: string, prefix: boolean) => string[];

function asNameValidator(check: (value: string) => string[]): NameValidator {
  // generateName "web-" is checked as "web": the generated suffix completes the name.
  return (value, prefix) => check(prefix && value.endsWith('-') && value.length > 1 ? value.slice(0, -1) : value);
}

export const nameIsDnsSubdomain = asNameValidator(dns1123SubdomainErrors);
export const nameIsDnsLabel = asNameValidator(dns1123LabelErrors);
export const nameIsDns1035Label = asNameValidator(dns1035LabelErrors);
export const nameIsPathSegment = asNameValidator(pathSegmentErrors);
