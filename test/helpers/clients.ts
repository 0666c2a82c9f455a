// Clients that send one request through a proxy and report which backend answered.
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { echoConstructor, type EchoClient } from './echo.ts';
import type { EchoBody } from './backends.ts';

export interface Answer {
  /** Name of the backend that answered, when one did. */
  backend?: string;
  /** HTTP status, or gRPC status code for gRPC. */
  status?: number;
  /** Transport or protocol error, when there was no answer. */
  error?: string;
  body?: string;
}

export interface RequestOptions {
  path?: string;
  method?: string;
  headers?: Record<string, string>;
  timeoutMs?: number;
  /** Address to connect to (default 127.0.0.1). */
  address?: string;
}

function backendOf(body: string): string | undefined {
  try {
    return (JSON.parse(body) as EchoBody).backend;
  } catch {
    return undefined;
  }
}

/** HTTP/1.1 request to address:port with the given Host header; a fresh connection each time. */
export function httpRequest(port: number, host: string, opts: RequestOptions = {}): Promise<Answer> {
  return new Promise((resolve) => {
    const req = http.request(
      {
        host: opts.address ?? '127.0.0.1',
        port,
        path: opts.path ?? '/',
        method: opts.method ?? 'GET',
        headers: { ...opts.headers, host },
        agent: false,
        timeout: opts.timeoutMs ?? 5000,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode, backend: backendOf(body), body }));
        res.on('error', (err) => resolve({ status: res.statusCode, error: err.message, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve({ error: `${(err as NodeJS.ErrnoException).code ?? ''} ${err.message}`.trim() }));
    req.end();
  });
}

/** HTTP/2 cleartext (prior knowledge) request with the given :authority; one session per call. */
export function h2cRequest(port: number, authority: string, opts: RequestOptions = {}): Promise<Answer> {
  return new Promise((resolve) => {
    let settled = false;
    const session = http2.connect(`http://${opts.address ?? '127.0.0.1'}:${port}`);
    const finish = (a: Answer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      session.close();
      session.destroy();
      resolve(a);
    };
    const timer = setTimeout(() => finish({ error: 'timeout' }), opts.timeoutMs ?? 5000);
    session.on('error', (err) => finish({ error: err.message }));
    const stream = session.request({
      ...opts.headers,
      ':method': opts.method ?? 'GET',
      ':path': opts.path ?? '/',
      ':authority': authority,
      ':scheme': 'http',
    });
    let status: number | undefined;
    let body = '';
    stream.setEncoding('utf8');
    stream.on('response', (headers) => (status = Number(headers[':status'])));
    stream.on('data', (d: string) => (body += d));
    stream.on('end', () => finish({ status, backend: backendOf(body), body }));
    stream.on('error', (err) => finish({ status, error: err.message, body }));
    stream.end();
  });
}

/** A reusable gRPC Echo client to `target` (e.g. 127.0.0.1:PORT), optionally with an :authority override. */
export function echoClient(target: string, authority?: string, options: grpc.ChannelOptions = {}): EchoClient {
  const Ctor = echoConstructor();
  const opts: grpc.ChannelOptions = { ...options };
  if (authority) opts['grpc.default_authority'] = authority;
  return new Ctor(target, grpc.credentials.createInsecure(), opts) as unknown as EchoClient;
}

/** One Echo call on `client`; answer.status is the gRPC status code (0 = OK). */
export function echoCall(client: EchoClient, message = 'hi', timeoutMs = 5000, headers: Record<string, string> = {}): Promise<Answer> {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(headers)) md.set(k, v);
  return new Promise((resolve) => {
    client.Call({ message }, md, { deadline: Date.now() + timeoutMs }, (err, reply) => {
      if (err) resolve({ status: err.code, error: `${grpc.status[err.code] ?? err.code}: ${err.details}` });
      else resolve({ status: 0, backend: reply?.backend, body: reply?.message });
    });
  });
}

/** One gRPC Echo call to 127.0.0.1:PORT with :authority set; a fresh channel each time. */
export async function grpcRequest(port: number, authority: string, opts: RequestOptions = {}): Promise<Answer> {
  const client = echoClient(`${opts.address ?? '127.0.0.1'}:${port}`, authority);
  try {
    return await echoCall(client, 'hi', opts.timeoutMs);
  } finally {
    client.close();
  }
}

/** Opens a TCP connection, sends `data`, and waits for the `${backend}:${data}` reply. */
export function tcpRequest(port: number, data = 'ping', opts: RequestOptions = {}): Promise<Answer> {
  return new Promise((resolve) => {
    let got = '';
    let settled = false;
    const sock = net.connect({ host: opts.address ?? '127.0.0.1', port });
    const finish = (a: Answer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(a);
    };
    const timer = setTimeout(() => finish({ error: got ? `partial reply ${JSON.stringify(got)}` : 'timeout' }), opts.timeoutMs ?? 5000);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(data));
    sock.on('data', (d: string) => {
      got += d;
      const suffix = `:${data}`;
      if (got.endsWith(suffix)) finish({ backend: got.slice(0, -suffix.length), body: got });
    });
    sock.on('end', () => finish({ error: got ? `closed after ${JSON.stringify(got)}` : 'closed without reply' }));
    sock.on('error', (err) => finish({ error: `${(err as NodeJS.ErrnoException).code ?? ''} ${err.message}`.trim() }));
  });
}

/** Sends `n` requests one after another and counts answers per backend (errors under "!error"). */
export async function tally(n: number, send: () => Promise<Answer>): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const a = await send();
    const key = a.backend ?? `!${a.error ?? `status ${a.status}`}`;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}
