/**
 * A synchronous NETLINK_ROUTE socket: send a request, read until its ACK or NLMSG_DONE.
 *
 * Synchronous on purpose: the kernel answers rtnetlink requests in microseconds, a CNI
 * plugin is a one-shot process, and a blocking call cannot interleave with other code while
 * the thread is inside another network namespace (see netns.ts). The socket belongs to the
 * namespace the thread was in when it was opened and stays there.
 */
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
  NLM_F_REQUEST,
  NLMSG_DONE,
  NLMSG_ERROR,
} from './codec.js';

const NETLINK_ROUTE = 0;
const RECEIVE_BUFFER_BYTES = 256 * 1024;
const RECEIVE_TIMEOUT_SECONDS = 10;

/** A request the kernel refused; `errno`/`code` say why (EEXIST, ENODEV, ...). */
export class NetlinkError extends SyscallError {}

export class NetlinkSocket {
  private readonly fd: number;
  private seq = Math.floor(Math.random() * 0x7fffffff);
  private readonly receiveBuffer = Buffer.alloc(RECEIVE_BUFFER_BYTES);
  private closed = false;

  constructor() {
    this.fd = libc.socket(libc.AF_NETLINK, libc.SOCK_RAW | libc.SOCK_CLOEXEC, NETLINK_ROUTE);
    try {
      libc.setsockopt(this.fd, libc.SOL_NETLINK, libc.NETLINK_EXT_ACK, Buffer.from([1, 0, 0, 0]));
      const timeout = Buffer.alloc(16);
      timeout.writeBigInt64LE(BigInt(RECEIVE_TIMEOUT_SECONDS), 0);
      libc.setsockopt(this.fd, libc.SOL_SOCKET, libc.SO_RCVTIMEO, timeout);
    } catch (err) {
      libc.close(this.fd);
      throw err;
    }
  }

  /** Sends a request that changes state and waits for the kernel's ACK. */
  request(type: number, flags: number, head: Buffer, attrs: readonly Attr[] = [], what = `message ${type}`): void {
    this.exchange(type, flags | NLM_F_ACK, head, attrs, what);
  }

  /** Sends a request and returns every reply message (one for a get, many for a dump). */
  query(type: number, head: Buffer, attrs: readonly Attr[] = [], dump = true, what = `message ${type}`): NetlinkMessage[] {
    return this.exchange(type, dump ? NLM_F_DUMP : 0, head, attrs, what);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    libc.close(this.fd);
  }

  private exchange(type: number, flags: number, head: Buffer, attrs: readonly Attr[], what: string): NetlinkMessage[] {
    const seq = (this.seq = (this.seq + 1) >>> 0);
    libc.send(this.fd, encodeMessage(type, flags | NLM_F_REQUEST, seq, head, attrs));
    const replies: NetlinkMessage[] = [];
    const dump = (flags & NLM_F_DUMP) === NLM_F_DUMP;
    for (;;) {
      const length = libc.recv(this.fd, this.receiveBuffer);
      // Copy: the receive buffer is reused for the next datagram.
      for (const message of decodeMessages(Buffer.from(this.receiveBuffer.subarray(0, length)))) {
        if (message.seq !== seq) continue;
        if (message.type === NLMSG_DONE) return replies;
        if (message.type === NLMSG_ERROR) {
          const { errno, text } = decodeError(message);
          if (errno !== 0) throw new NetlinkError(what, errno, text);
          return replies;
        }
        replies.push(message);
        if (!dump && (flags & NLM_F_ACK) === 0) return replies;
      }
    }
  }
}
