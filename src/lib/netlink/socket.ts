/**
 * A synchronous netlink socket (NETLINK_ROUTE by default; NETLINK_NETFILTER for nf_tables):
 * send a request, read until its ACK or NLMSG_DONE.
 *
 * Synchronous on purpose: the kernel answers rtnetlink requests in microseconds, a CNI
 * plugin is a one-shot process, and a blocking call cannot interleave with other code while
 * the thread is inside another network namespace (see netns.ts). The socket belongs to the
 * namespace the thread was in when it was opened and stays there.
 *
 * Dumps are retried when the kernel flags them NLM_F_DUMP_INTR: the table changed while it
 * was being walked (a route added or removed between two recvs), so the reply may miss
 * entries that never changed. A reconciler diffing that against its desired state would
 * "re-add" what is already there, so an interrupted dump is never returned; after
 * MAX_DUMP_ATTEMPTS tries in a row it fails with NetlinkDumpInterruptedError (what libnl's
 * NLE_DUMP_INTR and iproute2's "Dump was interrupted" report).
 */
import { constants } from 'node:os';
import { SyscallError } from '../errors.js';
import * as libc from '../sys/libc.js';
import {
  type Attr,
  decodeError,
  decodeMessages,
  encodeMessage,
  type NetlinkMessage,
  NLM_F_ACK,
  NLM_F_DUMP,
  NLM_F_DUMP_INTR,
  NLM_F_REQUEST,
  NLMSG_DONE,
  NLMSG_ERROR,
} from './codec.js';

export const NETLINK_ROUTE = 0;
export const NETLINK_NETFILTER = 12;
const RECEIVE_BUFFER_BYTES = 256 * 1024;
const RECEIVE_TIMEOUT_SECONDS = 10;

/** How often a dump is re-run while the kernel keeps flagging it interrupted. */
export const MAX_DUMP_ATTEMPTS = 10;

/** A request the kernel refused; `errno`/`code` say why (EEXIST, ENODEV, ...). */
export class NetlinkError extends SyscallError {}

/** Every attempt at a dump was interrupted by concurrent changes (errno EINTR). */
export class NetlinkDumpInterruptedError extends NetlinkError {
  constructor(what: string, readonly attempts: number) {
    super(what, constants.errno.EINTR, `dump interrupted by concurrent changes ${attempts} times in a row`);
  }
}

/** What the socket needs from the kernel; tests replay crafted replies through a fake. */
export interface NetlinkTransport {
  send(datagram: Buffer): void;
  /** One datagram into `into`; returns its length. */
  recv(into: Buffer): number;
  /** send on another thread (see libc.sendInBackground); without it, sendBatchInBackground sends synchronously */
  sendInBackground?(datagram: Buffer): Promise<void>;
  /** recv that does not wait: undefined when nothing is queued; without it, recv */
  recvQueued?(into: Buffer): number | undefined;
  setsockopt(level: number, name: number, value: Buffer): void;
  close(): void;
}

/** A real AF_NETLINK socket in the caller's current network namespace. */
function kernelTransport(protocol: number): NetlinkTransport {
  const fd = libc.socket(libc.AF_NETLINK, libc.SOCK_RAW | libc.SOCK_CLOEXEC, protocol);
  return {
    send: (datagram) => void libc.send(fd, datagram),
    recv: (into) => libc.recv(fd, into),
    sendInBackground: async (datagram) => void (await libc.sendInBackground(fd, datagram)),
    recvQueued: (into) => libc.recvQueued(fd, into),
    setsockopt: (level, name, value) => libc.setsockopt(fd, level, name, value),
    close: () => libc.close(fd),
  };
}

export type BatchFailures = Map<number, { errno: number; text?: string }>;

/** The batch's replies read so far: failures by sequence number, and whether the last one came. */
class BatchReplies {
  readonly failures: BatchFailures = new Map();
  done = false;

  constructor(
    private readonly firstSeq: number,
    private readonly lastSeq: number,
  ) {}

  covers(seq: number): boolean {
    return ((seq - this.firstSeq) >>> 0) <= ((this.lastSeq - this.firstSeq) >>> 0);
  }

  /** Ignores messages that are not error/ACK replies to the batch. */
  take(message: NetlinkMessage): void {
    if (message.type !== NLMSG_ERROR || !this.covers(message.seq)) return;
    const { errno, text } = decodeError(message);
    if (errno !== 0) this.failures.set(message.seq, text === undefined ? { errno } : { errno, text });
    if (message.seq === this.lastSeq) this.done = true;
  }
}

export class NetlinkSocket {
  private readonly transport: NetlinkTransport;
  private seq = Math.floor(Math.random() * 0x7fffffff);
  private readonly receiveBuffer = Buffer.alloc(RECEIVE_BUFFER_BYTES);
  private closed = false;
  private interruptedDumps = 0;
  /** The background batch's replies; other exchanges hand over what they read of them. */
  private inFlight: BatchReplies | undefined;
  /** What SO_SNDBUFFORCE/SO_RCVBUFFORCE were last set to (0: never, the sysctl defaults). */
  private sendBufferBytes = 0;
  private receiveBufferBytes = 0;

  constructor(protocol = NETLINK_ROUTE, transport?: NetlinkTransport) {
    this.transport = transport ?? kernelTransport(protocol);
    try {
      this.transport.setsockopt(libc.SOL_NETLINK, libc.NETLINK_EXT_ACK, Buffer.from([1, 0, 0, 0]));
      const timeout = Buffer.alloc(16);
      timeout.writeBigInt64LE(BigInt(RECEIVE_TIMEOUT_SECONDS), 0);
      this.transport.setsockopt(libc.SOL_SOCKET, libc.SO_RCVTIMEO, timeout);
    } catch (err) {
      this.transport.close();
      throw err;
    }
  }

  /** Dumps that came back flagged NLM_F_DUMP_INTR and were re-run (a diagnostic). */
  get dumpsInterrupted(): number {
    return this.interruptedDumps;
  }

  /** Sends a request that changes state and waits for the kernel's ACK. */
  request(type: number, flags: number, head: Buffer, attrs: readonly Attr[] = [], what = `message ${type}`): void {
    this.exchange(type, flags | NLM_F_ACK, head, attrs, what);
  }

  /** Sends a request and returns every reply message (one for a get, many for a dump). */
  query(type: number, head: Buffer, attrs: readonly Attr[] = [], dump = true, what = `message ${type}`): NetlinkMessage[] {
    return this.exchange(type, dump ? NLM_F_DUMP : 0, head, attrs, what);
  }

  /**
   * Sends pre-encoded messages in one datagram and collects the kernel's replies to them:
   * the shape of an nfnetlink batch, which the kernel applies as one transaction only when
   * it arrives in a single skb. Only the last message should carry NLM_F_ACK: the kernel
   * always reports failures, queues the acks after the whole batch ran (committed or
   * aborted), and sends a failed commit's error for the first message before them, so the
   * last message's reply ends the wait. (An ack per message would cost a recv per message:
   * one skb each, 100k syscalls for a large sync.) Returns the failures (errno and
   * extended-ACK text) by sequence number; `firstSeq`..`lastSeq` are the sequence numbers
   * the caller stamped, batch-begin included (see `nextSeq`).
   */
  sendBatch(datagram: Buffer, firstSeq: number, lastSeq: number): BatchFailures {
    this.sizeBuffersFor(datagram, ((lastSeq - firstSeq) >>> 0) + 1, 64);
    this.transport.send(datagram);
    const replies = new BatchReplies(firstSeq, lastSeq);
    for (;;) {
      let length: number;
      try {
        length = this.transport.recv(this.receiveBuffer);
      } catch (err) {
        // A batch the kernel rejected as a whole may leave the last message unanswered;
        // the failures already read say why.
        if (replies.failures.size > 0) return replies.failures;
        throw err;
      }
      for (const message of this.decode(length)) {
        if (replies.covers(message.seq)) replies.take(message);
        else this.stray(message);
        if (replies.done) return replies.failures;
      }
    }
  }

  /**
   * sendBatch with the sendmsg on a threadpool thread: rtnetlink runs every message of the
   * datagram inside that call, so a large batch's kernel time (~4 µs per route insert)
   * overlaps whatever the event loop does meanwhile. When the send returns, every reply is
   * queued (or was dropped: the next recv then fails with ENOBUFS and the caller must assume
   * nothing about which messages ran), so the replies are read without waiting. The
   * receive buffer is sized for an error per message (~1 KiB of truesize each, capped),
   * since nothing reads until the whole batch ran. Synchronous requests on this socket may
   * run while the batch is in flight; replies they read for the batch are kept for it. One
   * background batch at a time.
   */
  async sendBatchInBackground(datagram: Buffer, firstSeq: number, lastSeq: number): Promise<BatchFailures> {
    if (this.inFlight) throw new Error('netlink: a background batch is already in flight on this socket');
    this.sizeBuffersFor(datagram, ((lastSeq - firstSeq) >>> 0) + 1, 1024);
    const replies = new BatchReplies(firstSeq, lastSeq);
    this.inFlight = replies;
    try {
      if (this.transport.sendInBackground) await this.transport.sendInBackground(datagram);
      else this.transport.send(datagram);
      while (!replies.done) {
        const length = this.transport.recvQueued ? this.transport.recvQueued(this.receiveBuffer) : this.transport.recv(this.receiveBuffer);
        if (length === undefined) {
          if (replies.failures.size > 0) return replies.failures;
          throw new NetlinkError('background batch', constants.errno.EIO, 'the kernel ran the batch but its last acknowledgement is missing');
        }
        for (const message of this.decode(length)) replies.take(message);
      }
      return replies.failures;
    } finally {
      this.inFlight = undefined;
    }
  }

  /**
   * netlink_sendmsg refuses a datagram larger than the send buffer; a full sync of 10k
   * Services is megabytes. As root, SO_*BUFFORCE lifts the sysctl caps (the kernel doubles
   * the value). The replies (an ACK, and an error echoing each failed message) must all fit
   * while we are not reading: `bytesPerReply` each. The sizes only grow: a synchronous
   * batch must not shrink the room a background batch in flight counts on (they are
   * limits, not allocations).
   */
  private sizeBuffersFor(datagram: Buffer, messages: number, bytesPerReply: number): void {
    const grow = (option: number, wanted: number, current: number): number => {
      const bytes = Math.min(wanted, 0x3fffffff);
      if (bytes <= current) return current;
      const value = Buffer.alloc(4);
      value.writeInt32LE(bytes);
      this.transport.setsockopt(libc.SOL_SOCKET, option, value);
      return bytes;
    };
    this.sendBufferBytes = grow(libc.SO_SNDBUFFORCE, datagram.length + 65536, this.sendBufferBytes);
    this.receiveBufferBytes = grow(libc.SO_RCVBUFFORCE, Math.max(messages * bytesPerReply, RECEIVE_BUFFER_BYTES), this.receiveBufferBytes);
  }

  /** The messages of the datagram just read (copied: the receive buffer is reused). */
  private decode(length: number): NetlinkMessage[] {
    return decodeMessages(Buffer.from(this.receiveBuffer.subarray(0, length)));
  }

  /** A reply that is not for the exchange reading it: the background batch's, if it is one of those. */
  private stray(message: NetlinkMessage): void {
    this.inFlight?.take(message);
  }

  /** The sequence number `nextSeq` will return next (to encode before reserving). */
  peekSeq(): number {
    return (this.seq + 1) >>> 0;
  }

  /** Reserves `count` consecutive sequence numbers; returns the first. */
  nextSeq(count = 1): number {
    const first = (this.seq + 1) >>> 0;
    this.seq = (this.seq + count) >>> 0;
    return first;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.transport.close();
  }

  private exchange(type: number, flags: number, head: Buffer, attrs: readonly Attr[], what: string): NetlinkMessage[] {
    const dump = (flags & NLM_F_DUMP) === NLM_F_DUMP;
    for (let attempt = 1; ; attempt++) {
      const { replies, interrupted } = this.exchangeOnce(type, flags, head, attrs, what, dump);
      if (!interrupted) return replies;
      this.interruptedDumps++;
      if (attempt >= MAX_DUMP_ATTEMPTS) throw new NetlinkDumpInterruptedError(what, attempt);
    }
  }

  /** One request and its replies, read to the end even when the dump says it was interrupted. */
  private exchangeOnce(type: number, flags: number, head: Buffer, attrs: readonly Attr[], what: string, dump: boolean): { replies: NetlinkMessage[]; interrupted: boolean } {
    const seq = (this.seq = (this.seq + 1) >>> 0);
    this.transport.send(encodeMessage(type, flags | NLM_F_REQUEST, seq, head, attrs));
    const replies: NetlinkMessage[] = [];
    let interrupted = false;
    for (;;) {
      const length = this.transport.recv(this.receiveBuffer);
      for (const message of this.decode(length)) {
        if (message.seq !== seq) {
          this.stray(message);
          continue;
        }
        // The kernel may flag any part of the dump, NLMSG_DONE included.
        if (dump && (message.flags & NLM_F_DUMP_INTR) !== 0) interrupted = true;
        if (message.type === NLMSG_DONE) return { replies, interrupted };
        if (message.type === NLMSG_ERROR) {
          const { errno, text } = decodeError(message);
          if (errno !== 0) throw new NetlinkError(what, errno, text);
          return { replies, interrupted };
        }
        replies.push(message);
        if (!dump && (flags & NLM_F_ACK) === 0) return { replies, interrupted };
      }
    }
  }
}
