/**
 * What the UDP fast path's two threads say to each other (udp-fast.ts on the main thread,
 * udp-loop.ts in the worker): the loop's start data, mirror updates in, reports out.
 */
import type { MessagePort } from 'node:worker_threads';
import type { PreparedAnswer } from './answers.js';

/** How often the loop reports its counts; also the socket's SO_RCVTIMEO, so an idle loop wakes to report. */
export const REPORT_EVERY_MS = 250;

export interface UdpLoopData {
  socketFd: number;
  /** RA in every answer: the server forwards. */
  recursion: boolean;
  /** Mirror updates in, queries for the main thread and metrics out. */
  port: MessagePort;
  /** [0] = 1: stop. */
  control: SharedArrayBuffer;
}

/** A mirrored answer: its wire form and rcode. */
export type MirroredAnswer = Pick<PreparedAnswer, 'rcode' | 'wire' | 'questionEnd'>;

/** Main → worker. */
export type MirrorUpdate = { set: [key: string, answer: MirroredAnswer, dynamic: boolean][]; deleted: string[]; dynamicCleared: boolean };

/** Worker → main: a query to answer there, or the fast path's counts since the last report. */
export type LoopReport =
  | { kind: 'query'; message: Uint8Array; sender: Uint8Array }
  | { kind: 'metrics'; requests: [qtype: number, count: number][]; responses: [rcode: number, count: number][]; durations: [qtype: number, seconds: number[]][] }
  | { kind: 'failed'; errno: number };

