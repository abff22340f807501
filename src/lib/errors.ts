import { constants } from 'node:os';

/**
 * The one base class for every error Pontoon raises on purpose. `name` follows the concrete
 * class so logs and tests can tell errors apart without matching message text.
 */
export class PontoonError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

const errnoNames: ReadonlyMap<number, string> = new Map(
  Object.entries(constants.errno).map(([name, value]) => [value, name]),
);

/** `ENOENT` for 2, `E123` for numbers Node has no name for. */
export function errnoName(errno: number): string {
  return errnoNames.get(errno) ?? `E${errno}`;
}

/** A failed system call or kernel request, with the kernel's errno kept for callers to test. */
export class SyscallError extends PontoonError {
  readonly errno: number;
  readonly code: string;
  readonly syscall: string;

  constructor(syscall: string, errno: number, detail?: string) {
    const code = errnoName(errno);
    super(`${syscall} failed: ${code}${detail ? ` (${detail})` : ''}`);
    this.errno = errno;
    this.code = code;
    this.syscall = syscall;
  }
}

/** True when `err` carries one of the given errno codes (ours or Node's own fs errors). */
export function hasErrno(err: unknown, ...codes: string[]): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && codes.includes(code);
}

export function describeError(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
