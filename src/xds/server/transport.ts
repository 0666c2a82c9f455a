// gRPC bidirectional streams on node:http2, for the ADS methods only. A response goes out
// as the parts it was built from (a body shared by every proxy, then its nonce), never
// joined into a per-proxy copy; a request is framed in place, or in one reused scratch
// buffer when it spans DATA frames. A thousand sidecars ACKing 250 KB each then allocate
// nothing per message, where a general gRPC server allocates two copies of each.
import http2 from 'node:http2';
import { logger } from '../../shared/log.ts';
import { metrics } from '../../shared/metrics.ts';
import { encodeGrpcMessage, FramingError, joinParts, MessageFramer, Status } from './framing.ts';

export { encodeGrpcMessage, FramingError, joinParts, MessageFramer, Status } from './framing.ts';

const log = logger('xds');


/** What a method does with one call. */
export interface CallHandlers {
  /** One request message: `bytes` is valid only until this returns. */
  message(bytes: Buffer): void;
  /**
   * A request message that arrived in several chunks, as those chunks (valid only until this
   * returns), for a handler that can read it without joining them. Without it, `message`.
   */
  messageParts?(parts: readonly Buffer[], length: number): void;
  /** The client half-closed its side. */
  end(): void;
  /** The stream is gone, for whatever reason. */
  close(): void;
}

export type Method = (call: ServerCall) => CallHandlers;

export interface TransportOptions {
  /** Largest request message accepted. */
  maxMessageBytes: number;
  /** A connection silent for this long is pinged; 0: never. */
  keepaliveMs: number;
  /** An unanswered ping after this long closes the connection. */
  keepaliveTimeoutMs: number;
  /**
   * HTTP/2 receive window per stream once a connection has been served while the server
   * was not busy; a new connection starts with the protocol's 64 KiB.
   */
  receiveWindowBytes?: number;
  /** Request bytes received and not yet handled before streams stop being read (default 32 MiB). */
  intakeLimitBytes?: number;
}

/** Longest stretch of request handling before other I/O gets a turn. */
const SLICE_MS = 20;
/** Request bytes received and not yet handled before streams stop being read. */
export const DEFAULT_INTAKE_BYTES = 32 * 1024 * 1024;

const intakeGauge = metrics.gauge('isthmus_xds_request_bytes_held', 'Bytes of xDS requests received and not yet handled, whole or partial.');
const parkedGauge = metrics.gauge('isthmus_xds_streams_unread', 'xDS streams not read from until the requests already received are handled.');

const GRPC_HEADERS = { ':status': 200, 'content-type': 'application/grpc', 'grpc-accept-encoding': 'identity' };

/** One gRPC call: write messages, finish with a status. */
export class ServerCall {
  readonly peer: string;
  private readonly stream: http2.ServerHttp2Stream;
  private headersSent = false;
  private finished = false;

  constructor(stream: http2.ServerHttp2Stream) {
    this.stream = stream;
    const s = stream.session?.socket;
    this.peer = s?.remoteAddress ? `${s.remoteAddress}:${s.remotePort}` : 'unknown';
  }

  get open(): boolean {
    return !this.finished && !this.stream.destroyed && !this.stream.closed;
  }

  private sendHeaders(): void {
    if (this.headersSent) return;
    this.headersSent = true;
    this.stream.respond(GRPC_HEADERS, { waitForTrailers: true });
  }

  /** Writes one message given as parts, in order, without joining them; `done` runs once they have left. */
  write(parts: readonly Uint8Array[], done: () => void): boolean {
    if (!this.open) {
      setImmediate(done);
      return false;
    }
    this.sendHeaders();
    let len = 0;
    for (const p of parts) len += p.length;
    const prefix = Buffer.allocUnsafe(5);
    prefix[0] = 0;
    prefix.writeUInt32BE(len, 1);
    const s = this.stream;
    s.cork();
    s.write(prefix);
    for (let k = 0; k < parts.length; k++) s.write(parts[k]!, k === parts.length - 1 ? () => done() : undefined);
    if (!parts.length) s.write(Buffer.alloc(0), () => done());
    s.uncork();
    return true;
  }

  /** Ends the call with a status (and its reason), once. */
  finish(code: number, message = ''): void {
    if (this.finished) return;
    this.finished = true;
    const s = this.stream;
    if (s.destroyed || s.closed) return;
    const trailers: http2.OutgoingHttpHeaders = { 'grpc-status': String(code) };
    if (message) trailers['grpc-message'] = encodeGrpcMessage(message);
    try {
      if (!this.headersSent) {
        // Trailers-only response.
        this.headersSent = true;
        s.respond({ ...GRPC_HEADERS, ...trailers }, { endStream: true });
        return;
      }
      s.once('wantTrailers', () => s.sendTrailers(trailers));
      s.end();
    } catch (e) {
      log.debug('cannot finish call', { peer: this.peer, error: e });
      s.destroy();
    }
  }
}

/** What the transport knows of a stream being read. */
interface Reader {
  readonly stream: http2.ServerHttp2Stream;
  /** Bytes of a message begun, as last counted. */
  readonly framer: MessageFramer;
  held: number;
  parked: boolean;
  /** Bytes set aside for the rest of the message it was resumed in: it is read until that is in. */
  reserve: number;
}

export class GrpcTransport {
  private readonly server: http2.Http2Server;
  private readonly methods: ReadonlyMap<string, Method>;
  private readonly opts: TransportOptions;
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private readonly calls = new Set<ServerCall>();
  /** Requests of every call in arrival order, handled a slice at a time. */
  private inbox: { bytes: number; run: () => void }[] = [];
  private inboxHead = 0;
  private inboxBytes = 0;
  private draining = false;
  /** Bytes of messages begun on streams being read. */
  private partialBytes = 0;
  /**
   * Streams not read from while the intake is over its limit, in the order they stopped,
   * with what they hold of a message begun. Flow control keeps the rest at the proxy.
   */
  private readonly parked = new Set<Reader>();
  private parkedBytes = 0;
  /** What resumed streams still have to send of the messages they began. */
  private reservedBytes = 0;
  private retry: NodeJS.Timeout | undefined;
  private readonly intakeLimit: number;
  /** Sessions whose streams got the full receive window. */
  private readonly widened = new WeakSet<http2.Http2Session>();

  constructor(methods: ReadonlyMap<string, Method>, opts: TransportOptions) {
    this.methods = methods;
    this.opts = opts;
    this.intakeLimit = opts.intakeLimitBytes ?? DEFAULT_INTAKE_BYTES;
    // No session memory cap: responses for large fleets are big and are bounded by the write budget instead.
    // New streams keep the protocol's 64 KiB window: a thousand proxies reconnecting at once can then
    // send 64 MB before they are read, not the whole of their (Delta: 1 MB each) first requests.
    this.server = http2.createServer({ maxSessionMemory: Number.MAX_SAFE_INTEGER, maxSendHeaderBlockLength: 1 << 20 });
    this.server.on('session', (session) => this.onSession(session));
    this.server.on('stream', (stream, headers) => this.onStream(stream, headers));
    this.server.on('sessionError', (e) => log.debug('HTTP/2 session error', { error: e }));
  }

  /** Binds "host:port" (IPv6 hosts in brackets); resolves with the bound port. */
  listen(address: string): Promise<number> {
    const at = address.lastIndexOf(':');
    const host = address.slice(0, at).replace(/^\[(.*)\]$/, '$1');
    const port = Number(address.slice(at + 1));
    if (at < 0 || !Number.isInteger(port) || port < 0 || port > 65535) return Promise.reject(new Error(`xDS address "${address}" is not host:port`));
    return new Promise((resolve, reject) => {
      const onError = (e: Error): void => reject(new Error(`cannot listen for xDS on ${address}: ${e.message}`));
      this.server.once('error', onError);
      // A thousand proxies reconnecting at once overflow the default accept queue of 511: each one dropped waits a 1 s SYN retry.
      this.server.listen({ port, host: host || undefined, backlog: 4096 }, () => {
        this.server.off('error', onError);
        const a = this.server.address();
        resolve(typeof a === 'object' && a ? a.port : port);
      });
    });
  }

  /** Ends every call with UNAVAILABLE (proxies reconnect elsewhere) and stops listening. */
  async close(graceMs = 1000): Promise<void> {
    clearTimeout(this.retry);
    for (const c of this.calls) c.finish(Status.UNAVAILABLE, 'server shutting down');
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.sessions) s.close();
    const timer = setTimeout(() => this.forceClose(), graceMs);
    timer.unref();
    await closed;
    clearTimeout(timer);
  }

  /** Drops every connection at once. */
  forceClose(): void {
    for (const s of this.sessions) s.destroy();
    this.server.close();
  }

  /** Request bytes received and not yet handled. */
  get intakeBytes(): number {
    return this.inboxBytes + this.partialBytes + this.parkedBytes;
  }

  /** Streams not read from until the requests already received are handled. */
  get unreadStreams(): number {
    return this.parked.size;
  }

  private enqueue(bytes: number, run: () => void): void {
    this.inbox.push({ bytes, run });
    this.inboxBytes += bytes;
    this.schedule();
  }

  private schedule(): void {
    if (this.draining) return;
    this.draining = true;
    setImmediate(this.drain);
  }

  /** Stops reading a stream until the requests already received are handled. */
  private park(r: Reader): void {
    r.stream.pause();
    r.parked = true;
    this.parked.add(r);
    this.partialBytes -= r.held;
    this.parkedBytes += r.held;
    parkedGauge.set({}, this.parked.size);
    intakeGauge.set({}, this.intakeBytes);
    // With nothing else queued, the drain is what resumes the oldest.
    this.schedule();
  }

  /**
   * Resumes parked streams, oldest first, while the intake (counting what they still have to
   * send of a message begun) stays within half its limit. A resumed stream is read until that
   * message is in, so messages are finished rather than begun everywhere at once. With no
   * whole request left to handle, one is resumed whatever it holds: a proxy that stopped
   * sending mid-message cannot keep the others waiting.
   */
  private unpark(): void {
    let resumed = 0;
    for (const r of this.parked) {
      const need = r.framer.remaining;
      const force = resumed === 0 && this.inboxBytes === 0;
      if (!force && this.inboxBytes + this.partialBytes + this.reservedBytes + need > this.intakeLimit / 2) break;
      this.parked.delete(r);
      r.parked = false;
      this.parkedBytes -= r.held;
      this.partialBytes += r.held;
      r.reserve = need;
      this.reservedBytes += need;
      resumed++;
      if (!r.stream.destroyed) r.stream.resume();
    }
    parkedGauge.set({}, this.parked.size);
    intakeGauge.set({}, this.intakeBytes);
    // Nothing may come to run the drain again (the resumed proxies may send nothing): look again soon.
    if (this.parked.size && !this.retry) {
      this.retry = setTimeout(() => {
        this.retry = undefined;
        if (!this.draining) this.unpark();
      }, SLICE_MS);
      this.retry.unref();
    }
  }

  /** A resumed stream whose message is in: it is read like any other again. */
  private release(r: Reader): void {
    this.reservedBytes -= r.reserve;
    r.reserve = 0;
  }

  /** A stream that is gone holds nothing any more. */
  private forget(r: Reader): void {
    this.release(r);
    if (r.parked) {
      this.parked.delete(r);
      this.parkedBytes -= r.held;
      parkedGauge.set({}, this.parked.size);
    } else this.partialBytes -= r.held;
    r.held = 0;
  }

  /** Gives a session's streams the full window once it has been served while the server was not busy. */
  private widen(session: http2.Http2Session | undefined): void {
    const window = this.opts.receiveWindowBytes;
    if (!window || !session || this.widened.has(session) || session.destroyed || session.closed) return;
    if (this.intakeBytes > this.intakeLimit / 4) return;
    this.widened.add(session);
    try {
      session.settings({ initialWindowSize: window });
    } catch (e) {
      log.debug('cannot widen the HTTP/2 stream window', { error: e });
    }
  }

  /**
   * Handles queued requests for at most SLICE_MS, then lets other I/O in: a thousand
   * proxies reconnecting at once must not keep the admin port (or each other) waiting.
   */
  private readonly drain = (): void => {
    const until = performance.now() + SLICE_MS;
    while (this.inboxHead < this.inbox.length) {
      const d = this.inbox[this.inboxHead]!;
      this.inbox[this.inboxHead++] = undefined as never;
      this.inboxBytes -= d.bytes;
      d.run();
      if (performance.now() >= until) break;
    }
    if (this.inboxHead === this.inbox.length) {
      this.inbox = [];
      this.inboxHead = 0;
    } else if (this.inboxHead > 4096) {
      this.inbox = this.inbox.slice(this.inboxHead);
      this.inboxHead = 0;
    }
    if (this.parked.size) this.unpark();
    intakeGauge.set({}, this.intakeBytes);
    if (this.inboxHead < this.inbox.length) setImmediate(this.drain);
    else this.draining = false;
  };

  private onSession(session: http2.ServerHttp2Session): void {
    this.sessions.add(session);
    session.on('error', (e) => log.debug('HTTP/2 session error', { error: e }));
    if (this.opts.receiveWindowBytes) {
      try {
        session.setLocalWindowSize(this.opts.receiveWindowBytes);
      } catch (e) {
        log.debug('cannot set the HTTP/2 connection window', { error: e });
      }
    }
    let timer: NodeJS.Timeout | undefined;
    if (this.opts.keepaliveMs > 0) {
      // A proxy that vanished without a FIN is found by an unanswered ping.
      timer = setInterval(() => {
        if (session.destroyed || session.closed) return;
        let answered = false;
        try {
          session.ping(() => (answered = true));
        } catch {
          return;
        }
        setTimeout(() => {
          if (!answered && !session.destroyed) session.destroy();
        }, this.opts.keepaliveTimeoutMs).unref();
      }, this.opts.keepaliveMs);
      timer.unref();
    }
    session.once('close', () => {
      clearInterval(timer);
      this.sessions.delete(session);
    });
  }

  private onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    stream.on('error', (e) => log.debug('HTTP/2 stream error', { error: e }));
    const type = String(headers['content-type'] ?? '');
    if (headers[':method'] !== 'POST' || !type.startsWith('application/grpc')) {
      stream.respond({ ':status': 415, 'content-type': 'text/plain' });
      stream.end('this port serves gRPC (xDS) only\n');
      return;
    }
    const call = new ServerCall(stream);
    const path = String(headers[':path'] ?? '');
    const method = this.methods.get(path);
    if (!method) {
      call.finish(Status.UNIMPLEMENTED, `unknown method ${path}`);
      return;
    }
    const encoding = headers['grpc-encoding'];
    if (encoding && encoding !== 'identity') {
      call.finish(Status.UNIMPLEMENTED, `grpc-encoding ${String(encoding)} is not supported`);
      return;
    }
    this.calls.add(call);
    const handlers = method(call);
    let closed = false;
    const close = (): void => {
      if (closed) return;
      closed = true;
      this.calls.delete(call);
      handlers.close();
    };
    // Requests are handled from the inbox, not in the read callback: see drain().
    const run = (what: () => void): void => {
      if (!call.open) return;
      try {
        what();
      } catch (e) {
        // Whatever went wrong ends this call only; the other proxies' streams go on.
        log.error('xDS request handling failed', { peer: call.peer, error: e });
        call.finish(Status.INTERNAL, `internal error: ${(e as Error).message}`);
        close();
      }
    };
    const session = stream.session;
    const handled = (what: () => void): void => {
      run(what);
      this.widen(session);
    };
    const framer = new MessageFramer(
      this.opts.maxMessageBytes,
      (bytes) => this.enqueue(bytes.length, () => handled(() => handlers.message(bytes))),
      (parts, length) =>
        this.enqueue(length, () => handled(() => (handlers.messageParts ? handlers.messageParts(parts, length) : handlers.message(joinParts(parts, length))))),
    );
    const reader: Reader = { stream, framer, held: 0, parked: false, reserve: 0 };
    stream.on('data', (chunk: Buffer) => {
      if (!call.open) return;
      const delivered = framer.delivered;
      try {
        framer.push(chunk);
      } catch (e) {
        if (!(e instanceof FramingError)) throw e;
        call.finish(e.code, e.message);
        close();
        return;
      }
      const grew = framer.held - reader.held;
      reader.held = framer.held;
      if (reader.parked) {
        this.parkedBytes += grew;
        return;
      }
      this.partialBytes += grew;
      if (reader.reserve) {
        if (framer.delivered === delivered) {
          // Still finishing the message it was resumed in.
          const used = Math.min(reader.reserve, chunk.length);
          reader.reserve -= used;
          this.reservedBytes -= used;
          return;
        }
        this.release(reader);
      }
      if (this.inboxBytes + this.partialBytes + this.reservedBytes > this.intakeLimit) this.park(reader);
    });
    stream.on('end', () => this.enqueue(0, () => !closed && handlers.end()));
    stream.once('close', () => {
      this.forget(reader);
      close();
    });
  }
}
