/**
 * Authentication from a verified client certificate (CN = user, O = groups, as upstream's
 * x509 authenticator; checked first), bootstrap tokens (bootstrap-tokens.ts), a Kubernetes
 * static token file (`token,user,uid,"group1,group2"`) and service-account JWTs
 * (sa-tokens.ts); what a user may do is authz/'s business. A request without credentials is
 * `system:anonymous` (group system:unauthenticated), which the bootstrap policy lets read
 * discovery and health only. A token that matches nobody is a 401 even for reads, as upstream
 * does, so a mistyped token is noticed instead of silently downgraded to anonymous. Without a
 * tokens file a request without a JWT is the admin (system:masters); a JWT is always checked,
 * so a revoked service-account token is refused however the server is configured.
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { PontoonError } from '../lib/errors.js';
import { looksLikeJws } from '../lib/jws.js';
import type { ServiceAccountTokens } from './sa-tokens.js';
import { BootstrapTokenAuthenticator } from './bootstrap-tokens.js';
import type { UserInfo } from './user-info.js';

export type { UserInfo } from './user-info.js';

export const ANONYMOUS: UserInfo = { name: 'system:anonymous', uid: '', groups: ['system:unauthenticated'] };

export class TokenFileError extends PontoonError {}

/** Splits one CSV line, honouring double quotes (`""` is a literal quote). */
function splitCsvLine(line: string): string[] {
  const fields: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') {
        current += '"';
        i++;
      } else if (ch === '"') {
        quoted = false;
      } else {
        current += ch;
      }
    } else if (ch === '"') {
      quoted = true;
    } else if (ch === ',') {
      fields.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  if (quoted) throw new TokenFileError('unterminated quote');
  fields.push(current);
  return fields.map((f) => f.trim());
}

export function parseTokenFile(text: string, source = 'tokens file'): Map<string, UserInfo> {
  const tokens = new Map<string, UserInfo>();
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    let fields: string[];
    try {
      fields = splitCsvLine(line);
    } catch (err) {
      throw new TokenFileError(`failed to parse ${source} line ${index + 1}: ${(err as Error).message}`);
    }
    const [token, name, uid, groups] = fields;
    if (!token || !name) throw new TokenFileError(`failed to parse ${source} line ${index + 1}: need at least token and user name`);
    tokens.set(token, {
      name,
      uid: uid ?? '',
      groups: [...(groups ? groups.split(',').map((g) => g.trim()).filter(Boolean) : []), 'system:authenticated'],
    });
  });
  return tokens;
}

export function loadTokenFile(path: string): Map<string, UserInfo> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new TokenFileError(`failed to read tokens file "${path}": ${(err as Error).message}`, { cause: err });
  }
  return parseTokenFile(text, `tokens file "${path}"`);
}

/** `message` says why, for the 401's Status (default "Unauthorized"). */
export type AuthResult = { ok: true; user: UserInfo } | { ok: false; message?: string };

/**
 * The user a client certificate names, when the TLS layer verified it against the client CA
 * (`authorized`; the server asks for certificates but lets unverified ones through, so token
 * clients keep working). Subject CN is the user, each O a group.
 */
export function certificateUser(req: IncomingMessage): UserInfo | undefined {
  const socket = req.socket as Partial<TLSSocket>;
  if (!socket.encrypted || socket.authorized !== true || typeof socket.getPeerCertificate !== 'function') return undefined;
  const subject = socket.getPeerCertificate().subject as unknown as Record<string, string | string[] | undefined> | undefined;
  const name = subject?.['CN'];
  if (typeof name !== 'string' || name === '') return undefined;
  const orgs = subject?.['O'];
  const groups = orgs === undefined ? [] : Array.isArray(orgs) ? orgs : [orgs];
  return { name, uid: '', groups: [...groups, 'system:authenticated'] };
}

const ADMIN: UserInfo = { name: 'admin', uid: '', groups: ['system:masters', 'system:authenticated'] };

export class Authenticator {
  constructor(
    private readonly tokens: Map<string, UserInfo> | undefined,
    private readonly serviceAccounts?: ServiceAccountTokens,
    private readonly bootstrapTokens?: BootstrapTokenAuthenticator,
  ) {}

  get enabled(): boolean {
    return this.tokens !== undefined;
  }

  /** `ok: false` means "answer 401"; anonymous requests come back as the anonymous user. */
  async authenticate(req: IncomingMessage): Promise<AuthResult> {
    const fromCertificate = certificateUser(req);
    if (fromCertificate) return { ok: true, user: fromCertificate };
    const header = req.headers.authorization;
    const bearer = header ? /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1] : undefined;
    if (bearer !== undefined && this.bootstrapTokens && BootstrapTokenAuthenticator.handles(bearer)) {
      const result = await this.bootstrapTokens.authenticate(bearer);
      return result.ok ? result : { ok: false, message: result.message };
    }
    const known = bearer !== undefined ? this.tokens?.get(bearer) : undefined;
    if (known) return { ok: true, user: known };
    if (bearer !== undefined && this.serviceAccounts && looksLikeJws(bearer)) {
      const user = await this.serviceAccounts.authenticate(bearer);
      return user ? { ok: true, user } : { ok: false };
    }
    if (!this.tokens) return { ok: true, user: ADMIN };
    if (!header) return { ok: true, user: ANONYMOUS };
    return { ok: false };
  }
}
