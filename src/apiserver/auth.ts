/**
 * Authentication from a Kubernetes static token file (`token,user,uid,"group1,group2"`) and
 * the one authorization rule Pontoon has: an authenticated user may do anything, anonymous
 * requests may only read. A token that matches nobody is a 401 even for reads, as upstream
 * does, so a mistyped token is noticed instead of silently downgraded to anonymous.
 * Without a tokens file every request is allowed.
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { PontoonError } from '../lib/errors.js';

export interface UserInfo {
  name: string;
  uid: string;
  groups: string[];
}

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

export type AuthResult = { ok: true; user: UserInfo } | { ok: false };

export class Authenticator {
  constructor(private readonly tokens: Map<string, UserInfo> | undefined) {}

  get enabled(): boolean {
    return this.tokens !== undefined;
  }

  /** `ok: false` means "answer 401"; anonymous requests come back as the anonymous user. */
  authenticate(req: IncomingMessage): AuthResult {
    if (!this.tokens) return { ok: true, user: { name: 'admin', uid: '', groups: ['system:masters', 'system:authenticated'] } };
    const header = req.headers.authorization;
    if (!header) return { ok: true, user: ANONYMOUS };
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    const user = match ? this.tokens.get(match[1]!) : undefined;
    return user ? { ok: true, user } : { ok: false };
  }

  /** Reads (get, list, watch, discovery) are open to everyone; writes need a known user. */
  mayWrite(user: UserInfo): boolean {
    return !this.tokens || user !== ANONYMOUS;
  }
}
