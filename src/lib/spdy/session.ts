/**
 * The server end of a SPDY/3.1 connection as Kubernetes streaming uses it: the client opens
 * every stream (SYN_STREAM, odd ids), we answer each with SYN_REPLY, data flows both ways
 * in DATA frames, FIN half-closes, RST_STREAM aborts, PINGs are echoed (client-go pings every
 * few seconds and drops a connection that stops answering).
 *
 * Flow control: moby/spdystream, the peer in practice, neither sends nor honours
 * WINDOW_UPDATE, so none is sent and windows are not enforced; backpressure comes from the
 * transport (a write that returns false pauses the stream that wrote).
 *
 * Frames are handled strictly in arrival order through one promise chain, because inflating
 * a SYN_STREAM's headers is asynchronous and the DATA that follows it must not overtake it.
 */
import { EventEmitter } from 'node:events';
import { Duplex } from 'node:stream';
import { describeError } from '../errors.js';
import { encodeData, encodeGoAway, encodePing, encodeRstStream, encodeSynReply, FLAG_FIN, FrameReader, RstStatus, type SpdyFrame } from './frames.js';
import { decodeHeaderBlock, encodeHeaderBlock, HeaderCompressor, HeaderDecompressor, type SpdyHeaders } from './headers.js';

/** DATA frames we send carry at most this much (spdystream reads any size up to 16 MiB). */
const MAX_DATA_CHUNK = 32 * 1024;

export class SpdyStream extends Duplex {
  private finSent = false;
  remoteClosed = false;

  constructor(
    readonly id: number,
    readonly headers: SpdyHeaders,
    private readonly session: SpdyServerSession,
  ) {
    super({ allowHalfOpen: true });
  }

  header(name: string): string | undefined {
    return this.headers.get(name.toLowerCase())?.[0];
  }

  override _read(): void {
    this.session.resumeTransport();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    let ok = true;
    for (let offset = 0; offset < chunk.length; offset += MAX_DATA_CHUNK) {
      ok = this.session.send(encodeData(this.id, chunk.subarray(offset, offset + MAX_DATA_CHUNK)));
    }
    if (ok) callback();
    else this.session.afterDrain(() => callback());
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.sendFin();
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // A stream torn down before both sides finished tells the peer so.
    if (!(this.finSent && this.remoteClosed)) this.session.send(encodeRstStream(this.id, RstStatus.CANCEL));
    this.session.forget(this.id);
    callback(error);
  }

  private sendFin(): void {
    if (this.finSent) return;
    this.finSent = true;
    this.session.send(encodeData(this.id, Buffer.alloc(0), FLAG_FIN));
    this.maybeDone();
  }

  /** Data or FIN from the peer. */
  deliver(data: Buffer, fin: boolean): void {
    if (data.length > 0 && !this.push(data)) this.session.pauseTransport();
    if (fin && !this.remoteClosed) {
      this.remoteClosed = true;
      this.push(null);
      this.maybeDone();
    }
  }

  private maybeDone(): void {
    if (this.finSent && this.remoteClosed) this.session.forget(this.id);
  }
}

export interface SpdyServerSessionEvents {
  stream: [SpdyStream];
  close: [];
}

export class SpdyServerSession extends EventEmitter<SpdyServerSessionEvents> {
  private readonly reader = new FrameReader();
  private readonly compressor = new HeaderCompressor();
  private readonly decompressor = new HeaderDecompressor();
  private readonly streams = new Map<number, SpdyStream>();
  private chain: Promise<void> = Promise.resolve();
  private lastStreamId = 0;
  private closed = false;

  constructor(
    private readonly transport: Duplex,
    private readonly onError: (message: string) => void = () => undefined,
  ) {
    super();
    transport.on('data', (chunk: Buffer) => {
      let frames: SpdyFrame[];
      try {
        frames = this.reader.push(chunk);
      } catch (err) {
        this.fail(`bad frame: ${describeError(err)}`);
        return;
      }
      for (const frame of frames) this.chain = this.chain.then(() => this.handle(frame)).catch((err: unknown) => this.fail(describeError(err)));
    });
    transport.on('end', () => this.close());
    transport.on('close', () => this.close());
    transport.on('error', () => this.close());
  }

  /** Writes a frame; false when the transport wants the writer to wait. */
  send(frame: Buffer): boolean {
    if (this.closed || this.transport.destroyed) return true;
    return this.transport.write(frame);
  }

  afterDrain(callback: () => void): void {
    if (this.closed) return callback();
    this.transport.once('drain', callback);
  }

  pauseTransport(): void {
    this.transport.pause();
  }

  resumeTransport(): void {
    this.transport.resume();
  }

  forget(id: number): void {
    this.streams.delete(id);
  }

  /** Answers a stream's SYN_STREAM; the stream may carry data after this. */
  reply(stream: SpdyStream, headers: SpdyHeaders = new Map()): void {
    this.send(encodeSynReply(stream.id, this.compressor.compress(encodeHeaderBlock(headers))));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const stream of this.streams.values()) stream.destroy();
    this.streams.clear();
    this.decompressor.close();
    this.transport.destroy();
    this.emit('close');
  }

  private fail(message: string): void {
    this.onError(message);
    if (!this.closed && !this.transport.destroyed) this.transport.write(encodeGoAway(this.lastStreamId, 1));
    this.close();
  }

  private async handle(frame: SpdyFrame): Promise<void> {
    if (this.closed) return;
    switch (frame.kind) {
      case 'syn_stream': {
        const headers = decodeHeaderBlock(await this.decompressor.decompress(frame.headerBlock));
        if (this.streams.has(frame.streamId) || frame.streamId <= this.lastStreamId) {
          this.send(encodeRstStream(frame.streamId, RstStatus.PROTOCOL_ERROR));
          return;
        }
        this.lastStreamId = frame.streamId;
        const stream = new SpdyStream(frame.streamId, headers, this);
        this.streams.set(frame.streamId, stream);
        if ((frame.flags & FLAG_FIN) !== 0) stream.deliver(Buffer.alloc(0), true);
        this.emit('stream', stream);
        return;
      }
      case 'headers':
      case 'syn_reply':
        // Keep the zlib context in step even though we have no use for these headers.
        await this.decompressor.decompress(frame.headerBlock);
        return;
      case 'data': {
        const stream = this.streams.get(frame.streamId);
        if (!stream) {
          this.send(encodeRstStream(frame.streamId, RstStatus.INVALID_STREAM));
          return;
        }
        stream.deliver(frame.data, (frame.flags & FLAG_FIN) !== 0);
        return;
      }
      case 'rst_stream': {
        const stream = this.streams.get(frame.streamId);
        if (stream) {
          // The peer already forgot it: no RST back.
          stream.remoteClosed = true;
          this.streams.delete(frame.streamId);
          stream.destroy();
        }
        return;
      }
      case 'ping':
        // Client pings are odd; echo them. An even id would be an answer to ours (we send none).
        if (frame.id % 2 === 1) this.send(encodePing(frame.id));
        return;
      case 'goaway':
        this.close();
        return;
      case 'settings':
      case 'window_update':
      case 'unknown':
        return;
    }
  }
}
