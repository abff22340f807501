/**
 * Pseudo-terminals without a native addon: the master comes from posix_openpt through koffi,
 * the slave is opened by path and handed to a child as its stdio.
 *
 * Design note: the master is read and written through `tty.ReadStream`, a libuv tty handle
 * polled by the event loop like a socket (node-pty does the same). An fs stream would park a
 * libuv pool thread in a blocking read(2) for the whole session, and the pool has four.
 * libuv reopens tty fds only for pty *slaves*, so wrapping a master is safe. Once every slave
 * fd is closed (the child and whatever it forked exited) a read on the master fails with EIO:
 * that is the terminal's end of file.
 */
import { closeSync, constants as fsConstants, openSync } from 'node:fs';
import { ReadStream } from 'node:tty';
import * as libc from './sys/libc.js';

export interface Pty {
  /** Read output / write input here (a duplex over the master fd). */
  master: ReadStream;
  /** The slave fd, to pass to the child as stdin/stdout/stderr. */
  slave: number;
  slavePath: string;
  resize(columns: number, rows: number): void;
  /** Closes the parent's copy of the slave once the child has its own, so EIO can come. */
  releaseSlave(): void;
  /** Closes the slave (if still open) and the master. */
  close(): void;
}

export function openPty(columns = 80, rows = 24): Pty {
  const { master, slavePath } = libc.openPtyMaster();
  let slave: number;
  try {
    slave = openSync(slavePath, fsConstants.O_RDWR | fsConstants.O_NOCTTY);
  } catch (err) {
    libc.close(master);
    throw err;
  }
  let closed = false;
  const setSize = (cols: number, rowCount: number): void => {
    if (closed) return;
    const winsize = Buffer.alloc(8);
    winsize.writeUInt16LE(Math.max(0, Math.min(0xffff, rowCount)), 0);
    winsize.writeUInt16LE(Math.max(0, Math.min(0xffff, cols)), 2);
    libc.ioctl(master, libc.TIOCSWINSZ, winsize, 'ioctl TIOCSWINSZ');
  };
  setSize(columns, rows);
  const stream = new ReadStream(master);
  let slaveOpen = true;
  const releaseSlave = (): void => {
    if (slaveOpen) closeSync(slave);
    slaveOpen = false;
  };
  return {
    master: stream,
    slave,
    slavePath,
    resize: setSize,
    releaseSlave,
    close: () => {
      releaseSlave();
      if (closed) return;
      closed = true;
      // destroy() closes the master fd through libuv.
      stream.destroy();
    },
  };
}
