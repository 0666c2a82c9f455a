// Loopback backends that say who they are, and count what they receive.
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { echoConstructor, type EchoReply, type EchoRequest } from './echo.ts';

export type BackendKind = 'http' | 'h2c' | 'grpc' | 'tcp';

export interface Backend {
  readonly name: string;
  readonly kind: BackendKind;
  readonly host: string;
  readonly port: number;
  /** Requests (HTTP, gRPC calls, or TCP data chunks answered) received so far. */
  readonly requests: number;
  /** `host:port` */
  readonly address: string;
  close(): Promise<void>;
}

export interface BackendOptions {
  /** Any 127.0.0.x address (default 127.0.0.1). */
  host?: string;
  /** 0 (default) picks a free port. */
  port?: number;
  /** Every Nth request (the Nth, 2Nth, …) fails: HTTP 503, gRPC UNAVAILABLE; 1 fails them all. */
  failEvery?: number;
  /** HTTP and gRPC: answer each request after this many milliseconds. */
  delayMs?: number;
}

/** The JSON body HTTP backends reply with. */
export interface EchoBody {
  backend: string;
  host: string;
  path: string;
  method: string;
  headers: Record<string, string | string[] | undefined>;
}

class Counter {
  n = 0;
}

function listenNet(server: net.Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port }, () => {
      server.off('error', reject);
      const addr = server.address();
      resolve(typeof addr === 'object' && addr ? addr.port : port);
    });
  });
}

function make(name: string, kind: BackendKind, host: string, port: number, counter: Counter, close: () => Promise<void>): Backend {
  return {
    name,
    kind,
    host,
    port,
    address: `${host}:${port}`,
    get requests() {
      return counter.n;
    },
    close,
  };
}

/** HTTP/1.1 server replying JSON {backend, host, path, method, headers}. */
export async function startHttpBackend(name: string, opts: BackendOptions = {}): Promise<Backend> {
  const counter = new Counter();
  const server = http.createServer((req, res) => {
    counter.n++;
    const body: EchoBody = { backend: name, host: req.headers.host ?? '', path: req.url ?? '', method: req.method ?? '', headers: req.headers };
    req.resume();
    const failed = opts.failEvery !== undefined && counter.n % opts.failEvery === 0;
    req.on('end', () => {
      const reply = (): void => {
        res.writeHead(failed ? 503 : 200, { 'content-type': 'application/json', 'x-backend': name });
        res.end(JSON.stringify(body));
      };
      if (opts.delayMs) setTimeout(reply, opts.delayMs).unref();
      else reply();
    });
  });
  server.keepAliveTimeout = 1000;
  const host = opts.host ?? '127.0.0.1';
  const port = await listenNet(server, host, opts.port ?? 0);
  return make(name, 'http', host, port, counter, () => closeServer(server));
}

/** HTTP/2 cleartext (prior knowledge) server replying the same JSON. */
export async function startH2cBackend(name: string, opts: BackendOptions = {}): Promise<Backend> {
  const counter = new Counter();
  const sessions = new Set<http2.ServerHttp2Session>();
  const server = http2.createServer();
  server.on('session', (s) => {
    sessions.add(s);
    s.once('close', () => sessions.delete(s));
  });
  server.on('stream', (stream, headers) => {
    counter.n++;
    const plain: Record<string, string | string[] | undefined> = {};
    for (const [k, v] of Object.entries(headers)) plain[k] = v;
    const body: EchoBody = {
      backend: name,
      host: String(headers[':authority'] ?? headers.host ?? ''),
      path: String(headers[':path'] ?? ''),
      method: String(headers[':method'] ?? ''),
      headers: plain,
    };
    stream.resume();
    stream.on('end', () => {
      if (stream.destroyed) return;
      stream.respond({ ':status': 200, 'content-type': 'application/json', 'x-backend': name });
      stream.end(JSON.stringify(body));
    });
    stream.on('error', () => undefined);
  });
  const host = opts.host ?? '127.0.0.1';
  const port = await listenNet(server, host, opts.port ?? 0);
  return make(name, 'h2c', host, port, counter, async () => {
    for (const s of sessions) s.destroy();
    await closeServer(server);
  });
}

/** gRPC server implementing isthmus.test.Echo; replies carry the backend name. */
export async function startGrpcBackend(name: string, opts: BackendOptions = {}): Promise<Backend> {
  const counter = new Counter();
  const server = new grpc.Server();
  server.addService(echoConstructor().service, {
    Call: (call: grpc.ServerUnaryCall<EchoRequest, EchoReply>, cb: grpc.sendUnaryData<EchoReply>) => {
      counter.n++;
      if (opts.failEvery && counter.n % opts.failEvery === 0) {
        cb({ code: grpc.status.UNAVAILABLE, details: `${name} fails every ${opts.failEvery}th call` });
        return;
      }
      const reply = (): void => cb(null, { message: call.request.message, backend: name });
      if (opts.delayMs) setTimeout(reply, opts.delayMs);
      else reply();
    },
  });
  const host = opts.host ?? '127.0.0.1';
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${host}:${opts.port ?? 0}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)));
  });
  return make(name, 'grpc', host, port, counter, async () => {
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        server.forceShutdown();
        resolve();
      }, 1000);
      server.tryShutdown(() => {
        clearTimeout(t);
        resolve();
      });
    });
  });
}

/** Raw TCP server answering each data chunk with `${name}:${data}`. */
export async function startTcpBackend(name: string, opts: BackendOptions = {}): Promise<Backend> {
  const counter = new Counter();
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.once('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    sock.on('data', (d) => {
      counter.n++;
      sock.write(`${name}:${d.toString('utf8')}`);
    });
  });
  const host = opts.host ?? '127.0.0.1';
  const port = await listenNet(server, host, opts.port ?? 0);
  return make(name, 'tcp', host, port, counter, async () => {
    for (const s of sockets) s.destroy();
    await closeServer(server);
  });
}

/** Starts a backend of `kind`. */
export function startBackend(kind: BackendKind, name: string, opts: BackendOptions = {}): Promise<Backend> {
  switch (kind) {
    case 'http':
      return startHttpBackend(name, opts);
    case 'h2c':
      return startH2cBackend(name, opts);
    case 'grpc':
      return startGrpcBackend(name, opts);
    case 'tcp':
      return startTcpBackend(name, opts);
  }
}

function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => {
    if ('closeAllConnections' in server && typeof server.closeAllConnections === 'function') server.closeAllConnections();
    server.close(() => resolve());
    // A listener already closed calls back with an error, which is fine here.
  });
}

/** Closes every backend given, ignoring ones already closed. */
export async function closeAll(backends: Iterable<Backend | undefined>): Promise<void> {
  await Promise.all([...backends].filter((b): b is Backend => b !== undefined).map((b) => b.close().catch(() => undefined)));
}
