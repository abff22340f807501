/**
 * Structured logs for the daemons: JSON lines (pino), one logger per component, child loggers
 * keyed by the thing being worked on (`log.child({ peer })`). The CNI plugins do not log here:
 * their output channel is the CNI result/error JSON, and pino's load time would count against
 * every ADD.
 */
import { destination, pino, type Logger } from 'pino';

export type { Logger };

export interface LogOptions {
  level?: string;
  /** File descriptor or path; stderr by default so stdout stays free for command output. */
  destination?: number | string;
}

export function createLogger(component: string, options: LogOptions = {}): Logger {
  const level = options.level ?? process.env['PONTOON_LOG_LEVEL'] ?? 'info';
  return pino({ name: component, level, base: { component } }, destination({ dest: options.destination ?? 2, sync: true }));
}
