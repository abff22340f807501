/**
 * The few libc calls Node has no API for (setns, unshare, mount, flock, AF_NETLINK sockets),
 * made through koffi's FFI.
 *
 * Design note: we load koffi's prebuilt native module directly rather than `import 'koffi'`.
 * The package entry adds only deprecation shims, and a bundled CNI binary installed into
 * /opt/cni/bin has no node_modules beside it: the build copies the `.node` file next to the
 * binaries as `pontoon-koffi.node` and this loader finds it there first (2 ms, measured),
 * falling back to the package for code run from the source tree.
 */
import { existsSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { SyscallError } from '../errors.js';

type NativeFn = ((...args: unknown[]) => number) & {
  /** The call on libuv's threadpool; the callback runs on the event loop with the result. */
  async(...args: unknown[]): void;
};
interface KoffiLib {
  func(signature: string): NativeFn;
}
interface Koffi {
  load(path: string): KoffiLib;
  errno(): number;
}

export const KOFFI_SIBLING_NAME = 'pontoon-koffi.node';

function loadKoffi(): Koffi {
  const script = process.argv[1];
  if (script) {
    const sibling = join(dirname(realpathSync(script)), KOFFI_SIBLING_NAME);
    if (existsSync(sibling)) {
      const module = { exports: {} as Koffi };
      process.dlopen(module, sibling);
      return module.exports;
    }
  }
  return createRequire(import.meta.url)('koffi') as Koffi;
}

interface Libc {
  socket: NativeFn;
  setsockopt: NativeFn;
  send: NativeFn;
  recv: NativeFn;
  close: NativeFn;
  setns: NativeFn;
  unshare: NativeFn;
  mount: NativeFn;
  umount2: NativeFn;
  flock: NativeFn;
  ioctl: NativeFn;
  bind: NativeFn;
  read: NativeFn;
  write: NativeFn;
  sendto: NativeFn;
  recvfrom: NativeFn;
  shutdown: NativeFn;
  getsockname: NativeFn;
}

let koffi: Koffi | undefined;
let libc: Libc | undefined;

function lib(): { koffi: Koffi; libc: Libc } {
  if (!koffi || !libc) {
    koffi = loadKoffi();
    const c = koffi.load('libc.so.6');
    libc = {
      socket: c.func('int socket(int domain, int type, int protocol)'),
      setsockopt: c.func('int setsockopt(int fd, int level, int name, const void *value, uint32_t len)'),
      send: c.func('long send(int fd, const void *buf, size_t len, int flags)'),
      recv: c.func('long recv(int fd, void *buf, size_t len, int flags)'),
      close: c.func('int close(int fd)'),
      setns: c.func('int setns(int fd, int nstype)'),
      unshare: c.func('int unshare(int flags)'),
      mount: c.func('int mount(const char *src, const char *dst, const char *fstype, unsigned long flags, const void *data)'),
      umount2: c.func('int umount2(const char *target, int flags)'),
      flock: c.func('int flock(int fd, int operation)'),
      ioctl: c.func('int ioctl(int fd, unsigned long request, ...)'),
      bind: c.func('int bind(int fd, const void *addr, uint32_t len)'),
      read: c.func('long read(int fd, void *buf, size_t len)'),
      write: c.func('long write(int fd, const void *buf, size_t len)'),
      sendto: c.func('long sendto(int fd, const void *buf, size_t len, int flags, const void *addr, uint32_t addrlen)'),
      recvfrom: c.func('long recvfrom(int fd, void *buf, size_t len, int flags, void *addr, void *addrlen)'),
      shutdown: c.func('int shutdown(int fd, int how)'),
      getsockname: c.func('int getsockname(int fd, void *addr, void *addrlen)'),
    };
  }
  return { koffi, libc };
}

/** Runs one libc call and turns a -1 return into a SyscallError carrying errno. */
function check(name: string, result: number, detail?: string): number {
  if (result < 0) throw new SyscallError(name, lib().koffi.errno(), detail);
  return result;
}

export const CLONE_NEWNET = 0x40000000;
export const AF_NETLINK = 16;
export const SOCK_RAW = 3;
export const SOCK_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1;
export const SO_RCVTIMEO = 20;
export const SOL_NETLINK = 270;
export const NETLINK_EXT_ACK = 11;
export const MS_BIND = 4096;
export const MS_REC = 16384;
export const MS_SHARED = 1 << 20;
export const MNT_DETACH = 2;
export const LOCK_EX = 2;
export const LOCK_UN = 8;
export const LOCK_NB = 4;

export function socket(domain: number, type: number, protocol: number): number {
  return check('socket', lib().libc.socket(domain, type, protocol));
}

export function setsockopt(fd: number, level: number, name: number, value: Buffer): void {
  check('setsockopt', lib().libc.setsockopt(fd, level, name, value, value.length));
}

export function send(fd: number, data: Buffer): number {
  return check('send', lib().libc.send(fd, data, data.length, 0));
}

export function recv(fd: number, into: Buffer): number {
  return check('recv', lib().libc.recv(fd, into, into.length, 0));
}

const EAGAIN = 11;

/** recv that does not wait: undefined when nothing is queued. */
export function recvQueued(fd: number, into: Buffer): number | undefined {
  const result = lib().libc.recv(fd, into, into.length, MSG_DONTWAIT);
  if (result >= 0) return result;
  const errno = lib().koffi.errno();
  if (errno === EAGAIN) return undefined;
  throw new SyscallError('recv', errno);
}

/**
 * send(2) on a libuv threadpool thread, so whatever the kernel does inside the call (for
 * netlink: running every message of the datagram) leaves the event loop free. errno
 * belongs to that thread and is lost, so a failed send is repeated here, synchronously:
 * that is safe only for sockets where a failed send delivered nothing (netlink checks the
 * size and allocates before it hands the datagram on). The repeat either succeeds or
 * throws with the errno.
 */
export function sendInBackground(fd: number, data: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    lib().libc.send.async(fd, data, data.length, 0, (err: unknown, result: number) => {
      if (err) return reject(err instanceof Error ? err : new Error(String(err)));
      if (result >= 0) return resolve(result);
      try {
        resolve(send(fd, data));
      } catch (error) {
        reject(error instanceof Error ? error : new Error(String(error)));
      }
    });
  });
}

export function close(fd: number): void {
  check('close', lib().libc.close(fd));
}

/** Moves the calling thread (Node's main thread) into the namespace behind `fd`. */
/** `what` names the namespace in the error ("/run/netns/n1"): an fd alone tells a reader nothing. */
export function setns(fd: number, nstype: number, what?: string): void {
  check('setns', lib().libc.setns(fd, nstype), what);
}

export function unshare(flags: number): void {
  check('unshare', lib().libc.unshare(flags));
}

export function mount(source: string, target: string, fstype: string | null, flags: number): void {
  check('mount', lib().libc.mount(source, target, fstype, flags, null), `${source} on ${target}`);
}

export function umount2(target: string, flags: number): void {
  check('umount2', lib().libc.umount2(target, flags), target);
}

/** flock(2). With LOCK_NB, returns false instead of blocking when another holder has it. */
export function flock(fd: number, operation: number): boolean {
  const result = lib().libc.flock(fd, operation);
  if (result === 0) return true;
  const errno = lib().koffi.errno();
  if ((operation & LOCK_NB) !== 0 && errno === 11) return false;
  throw new SyscallError('flock', errno);
}

/** ioctl(2) with a pointer argument (a buffer the kernel reads and may write back). */
export function ioctl(fd: number, request: number, arg: Buffer, what = 'ioctl'): void {
  check(what, lib().libc.ioctl(fd, request, 'void *', arg));
}

/** ioctl(2) with an integer argument. */
export function ioctlInt(fd: number, request: number, value: number, what = 'ioctl'): void {
  check(what, lib().libc.ioctl(fd, request, 'unsigned long', value));
}

export const AF_INET = 2;
export const SOCK_DGRAM = 2;
export const SO_SNDBUFFORCE = 32;
export const SO_RCVBUFFORCE = 33;
export const SOL_UDP = 17;
/** UDP generic segmentation offload: one send of N × size bytes leaves as N datagrams. */
export const UDP_SEGMENT = 103;
/** UDP generic receive offload: consecutive datagrams of a flow arrive in one read. */
export const UDP_GRO = 104;

/** shutdown(2) both directions: wakes a thread blocked in recv on this socket. */
export function shutdown(fd: number): void {
  check('shutdown', lib().libc.shutdown(fd, 2));
}

export function bind(fd: number, address: Buffer): void {
  check('bind', lib().libc.bind(fd, address, address.length));
}

export const AF_INET6 = 10;
/** sizeof(struct sockaddr_in6): the larger of the two, so a slot fits either family. */
export const SOCKADDR_IN6_SIZE = 28;

/** `struct sockaddr_in6` for an IPv6 address (16 bytes) and port. */
export function sockaddrIn6(address: Uint8Array, port: number): Buffer {
  const sockaddr = Buffer.alloc(SOCKADDR_IN6_SIZE);
  sockaddr.writeUInt16LE(AF_INET6, 0);
  sockaddr.writeUInt16BE(port, 2);
  sockaddr.set(address, 8);
  return sockaddr;
}

/** The port a bound socket got (either family: the port sits at the same offset). */
export function boundPort(fd: number): number {
  const sockaddr = Buffer.alloc(SOCKADDR_IN6_SIZE);
  const length = Buffer.alloc(4);
  length.writeUInt32LE(sockaddr.length, 0);
  check('getsockname', lib().libc.getsockname(fd, sockaddr, length));
  return sockaddr.readUInt16BE(2);
}

/** `struct sockaddr_in` for an IPv4 address (as a 32-bit number) and port. */
export function sockaddrIn(address: number, port: number): Buffer {
  const sockaddr = Buffer.alloc(16);
  sockaddr.writeUInt16LE(AF_INET, 0);
  sockaddr.writeUInt16BE(port, 2);
  sockaddr.writeUInt32BE(address >>> 0, 4);
  return sockaddr;
}

/**
 * Unchecked read/write/recv/sendto for packet loops: they return the raw result (-1 on
 * error, then `errno()` says why) so the hot path neither throws nor allocates.
 */
export interface PacketIo {
  read(fd: number, into: Buffer, length: number): number;
  write(fd: number, from: Buffer, length: number): number;
  recv(fd: number, into: Buffer, length: number): number;
  /** recv that also fills `sockaddr` (16 bytes) with the sender's address. */
  recvfrom(fd: number, into: Buffer, length: number, sockaddr: Buffer, sockaddrLength: Buffer): number;
  sendto(fd: number, from: Buffer, length: number, sockaddr: Buffer): number;
  errno(): number;
}

export function packetIo(): PacketIo {
  const { koffi: k, libc: c } = lib();
  return {
    read: (fd, into, length) => c.read(fd, into, length),
    write: (fd, from, length) => c.write(fd, from, length),
    recv: (fd, into, length) => c.recv(fd, into, length, 0),
    recvfrom: (fd, into, length, sockaddr, sockaddrLength) => {
      sockaddrLength.writeUInt32LE(sockaddr.length, 0);
      return c.recvfrom(fd, into, length, 0, sockaddr, sockaddrLength);
    },
    sendto: (fd, from, length, sockaddr) => c.sendto(fd, from, length, 0, sockaddr, sockaddr.length),
    errno: () => k.errno(),
  };
}

// ---- batched packet I/O on preallocated memory (the userspace IPIP tunnel) ----

export const SOCK_NONBLOCK = 0o4000;
export const IPPROTO_IP = 0;
/** RFC 2003 IP-in-IP: the outer header's protocol number. */
export const IPPROTO_IPIP = 4;
/** A raw socket of this protocol sends packets whose header we build (IP_HDRINCL implied) and receives nothing. */
export const IPPROTO_RAW = 255;
export const IP_HDRINCL = 3;
export const MSG_DONTWAIT = 0x40;
/** recvmmsg: block for the first message only, then take what is queued. */
export const MSG_WAITFORONE = 0x10000;
/** x86-64/aarch64 sizes: struct msghdr is 56 bytes, struct mmsghdr 64, struct iovec 16. */
export const MSGHDR_SIZE = 56;
export const MMSGHDR_SIZE = 64;
export const IOVEC_SIZE = 16;

interface AddressLibc {
  memcpy: NativeFn;
  readAt: NativeFn;
  writeAt: NativeFn;
  sendmmsg: NativeFn;
  recvmmsg: NativeFn;
}

let addressLibc: AddressLibc | undefined;

function addressLib(): AddressLibc {
  if (!addressLibc) {
    const c = lib().koffi.load('libc.so.6');
    // Pointers as integers: the loops compute addresses inside preallocated buffers (base +
    // offset) instead of making a subarray object per packet. Same registers on the 64-bit ABIs.
    addressLibc = {
      memcpy: c.func('uintptr_t memcpy(void *dst, const void *src, size_t n)'),
      readAt: c.func('long read(int fd, uintptr_t buf, size_t len)'),
      writeAt: c.func('long write(int fd, uintptr_t buf, size_t len)'),
      sendmmsg: c.func('int sendmmsg(int fd, uintptr_t msgvec, unsigned int vlen, int flags)'),
      recvmmsg: c.func('int recvmmsg(int fd, uintptr_t msgvec, unsigned int vlen, int flags, uintptr_t timeout)'),
    };
  }
  return addressLibc;
}

/**
 * Address of a buffer's first byte. Stable for the buffer's life only for memory V8 never
 * moves: ArrayBuffer backing stores are, but typed arrays of 64 bytes or less may live on the
 * V8 heap, so this refuses them; keep the buffer referenced while the kernel may use it.
 */
export function bufferAddress(buffer: Uint8Array): number {
  if (buffer.buffer.byteLength <= 64) throw new RangeError('bufferAddress needs a buffer larger than 64 bytes (smaller ones may move)');
  const address = Number(addressLib().memcpy(buffer, buffer, 0));
  if (!Number.isSafeInteger(address) || address === 0) throw new RangeError(`bufferAddress got an unusable address ${address}`);
  return address;
}

/**
 * Unchecked I/O on addresses from `bufferAddress` (plus offsets): the caller guarantees the
 * memory is there. Returns the raw result; -1 means see `errno()`.
 */
export interface AddressIo {
  read(fd: number, address: number, length: number): number;
  write(fd: number, address: number, length: number): number;
  sendmmsg(fd: number, msgvec: number, count: number, flags: number): number;
  recvmmsg(fd: number, msgvec: number, count: number, flags: number): number;
  errno(): number;
}

export function addressIo(): AddressIo {
  const c = addressLib();
  const k = lib().koffi;
  return {
    read: (fd, address, length) => c.readAt(fd, address, length),
    write: (fd, address, length) => c.writeAt(fd, address, length),
    sendmmsg: (fd, msgvec, count, flags) => c.sendmmsg(fd, msgvec, count, flags),
    recvmmsg: (fd, msgvec, count, flags) => c.recvmmsg(fd, msgvec, count, flags, 0),
    errno: () => k.errno(),
  };
}

// ---- pseudo-terminals (kubectl exec -t) ----

export const O_RDWR = 2;
export const O_NOCTTY = 0o400;
export const O_CLOEXEC = 0o2000000;
/** asm-generic ioctl numbers (x86-64, aarch64): set a terminal's window size. */
export const TIOCSWINSZ = 0x5414;

interface PtyLibc {
  posixOpenpt: NativeFn;
  grantpt: NativeFn;
  unlockpt: NativeFn;
  ptsnameR: NativeFn;
  mkfifo: NativeFn;
}

let ptyLibc: PtyLibc | undefined;

function ptyLib(): PtyLibc {
  if (!ptyLibc) {
    const c = lib().koffi.load('libc.so.6');
    ptyLibc = {
      posixOpenpt: c.func('int posix_openpt(int flags)'),
      grantpt: c.func('int grantpt(int fd)'),
      unlockpt: c.func('int unlockpt(int fd)'),
      ptsnameR: c.func('int ptsname_r(int fd, char *buf, size_t len)'),
      mkfifo: c.func('int mkfifo(const char *path, uint32_t mode)'),
    };
  }
  return ptyLibc;
}

/** posix_openpt + grantpt + unlockpt: a new pty master (close-on-exec) and its slave's path. */
export function openPtyMaster(): { master: number; slavePath: string } {
  const c = ptyLib();
  const master = check('posix_openpt', c.posixOpenpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
  try {
    check('grantpt', c.grantpt(master));
    check('unlockpt', c.unlockpt(master));
    const name = Buffer.alloc(128);
    // ptsname_r returns the error number itself rather than -1 and errno.
    const err = c.ptsnameR(master, name, name.length);
    if (err !== 0) throw new SyscallError('ptsname_r', err);
    return { master, slavePath: name.subarray(0, name.indexOf(0)).toString('utf8') };
  } catch (err) {
    lib().libc.close(master);
    throw err;
  }
}

/** mkfifo(3): a named pipe (a container's stdin that `kubectl attach -i` writes into). */
export function mkfifo(path: string, mode: number): void {
  check('mkfifo', ptyLib().mkfifo(path, mode), path);
}
