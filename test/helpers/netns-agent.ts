// A host's app, run inside a network namespace by test/helpers/netns.ts (`ip netns exec`).
// Serves on a Unix socket (not namespaced) so the test drives it without touching the
// namespace's network:
//   provider: --serve NAME  HTTP/1.1 on 8080, gRPC (h2c) on 9090, a line protocol on 7070;
//             every request's bytes as received are recorded (GET /records, POST /reset).
//   caller:   POST /call {proto, host, port, authority}  one call, answer {ok, by, error}
//             POST /resolve {name}                         A records from --dns HOST:PORT
//             POST /load/start {calls:[...]}, POST /load/stop  continuous calls, counted.
// Request bytes are fixed per protocol, so the same request is sent on every path.
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import fs from 'node:fs';
import { Resolver } from 'node:dns/promises';
import { parseArgs } from 'node:util';
import { PORTS, type Call, type Proto } from './netns-protocol.ts';

const { values } = parseArgs({ options: { control: { type: 'string' }, serve: { type: 'string' }, dns: { type: 'string' } } });
const NAME = values.serve ?? '';
interface Rec {
  proto: Proto;
  /** Request bytes (HTTP, TCP) or, for gRPC, the header list and the message, base64. */
  bytes: string;
  headers?: string[];
  from: string;
}
const records: Rec[] = [];

// ---- provider ----------------------------------------------------------------------

function serveHttp(): net.Server {
  return net.createServer((sock) => {
    let buf = Buffer.alloc(0);
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.subarray(0, end).toString('latin1');
        const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
        const total = end + 4 + (m ? Number(m[1]) : 0);
        if (buf.length < total) return;
        records.push({ proto: 'http', bytes: buf.subarray(0, total).toString('base64'), from: sock.remoteAddress ?? '' });
        buf = buf.subarray(total);
        const body = `${NAME}\n`;
        sock.write(`HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
      }
    });
    sock.on('error', () => {});
  });
}

function grpcFrame(msg: Buffer): Buffer {
  const h = Buffer.alloc(5);
  h.writeUInt32BE(msg.length, 1);
  return Buffer.concat([h, msg]);
}

function serveGrpc(): http2.Http2Server {
  const server = http2.createServer();
  server.on('stream', (stream, _headers, _flags, rawHeaders) => {
    const chunks: Buffer[] = [];
    stream.on('data', (d: Buffer) => chunks.push(d));
    stream.on('end', () => {
      records.push({ proto: 'grpc', headers: rawHeaders, bytes: Buffer.concat(chunks).toString('base64'), from: stream.session?.socket?.remoteAddress ?? '' });
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(grpcFrame(Buffer.from(NAME)));
    });
    stream.on('error', () => {});
  });
  return server;
}

function serveTcp(): net.Server {
  return net.createServer((sock) => {
    let buf = Buffer.alloc(0);
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      let nl: number;
      while ((nl = buf.indexOf(0x0a)) >= 0) {
        const line = buf.subarray(0, nl + 1);
        records.push({ proto: 'tcp', bytes: line.toString('base64'), from: sock.remoteAddress ?? '' });
        buf = buf.subarray(nl + 1);
        sock.write(`${NAME}\n`);
      }
    });
    sock.on('error', () => {});
  });
}

// ---- caller ------------------------------------------------------------------------

interface Answer {
  ok: boolean;
  by?: string;
  error?: string;
}

const HTTP_BODY = '{"user":42,"op":"get"}';
const TCP_LINE = 'GET user 42 v=1\n';
const GRPC_MESSAGE = Buffer.from([0x08, 0x2a, 0x12, 0x03, 0x67, 0x65, 0x74]);

function httpCall(c: Call): Promise<Answer> {
  const names = c.properCase ? ['Host', 'User-Agent', 'Content-Type', 'X-Trace', 'Content-Length'] : ['host', 'user-agent', 'content-type', 'x-trace', 'content-length'];
  const values = [c.authority, 'legacy-app/1.0', 'application/json', 'abc', String(HTTP_BODY.length)];
  const req = `POST /echo/user?id=42 HTTP/1.1\r\n${names.map((n, i) => `${n}: ${values[i]}\r\n`).join('')}\r\n${HTTP_BODY}`;
  return rawExchange(c, req, (buf) => {
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) return undefined;
    const head = buf.subarray(0, end).toString('latin1');
    const len = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
    if (buf.length < end + 4 + len) return undefined;
    const status = /^HTTP\/1\.1 (\d+)/.exec(head)?.[1];
    const body = buf.subarray(end + 4, end + 4 + len).toString().trim();
    return status === '200' ? { ok: true, by: body } : { ok: false, error: `HTTP ${status}: ${body}` };
  });
}

function tcpCall(c: Call): Promise<Answer> {
  return rawExchange(c, TCP_LINE, (buf) => {
    const nl = buf.indexOf(0x0a);
    return nl < 0 ? undefined : { ok: true, by: buf.subarray(0, nl).toString() };
  });
}

function rawExchange(c: Call, request: string, parse: (buf: Buffer) => Answer | undefined): Promise<Answer> {
  return new Promise((resolve) => {
    let buf = Buffer.alloc(0);
    let done = false;
    const finish = (a: Answer): void => {
      if (done) return;
      done = true;
      sock.destroy();
      resolve(a);
    };
    const sock = net.connect({ host: c.host, port: c.port }, () => sock.write(request));
    sock.setTimeout(5000, () => finish({ ok: false, error: 'timeout' }));
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const a = parse(buf);
      if (a) finish(a);
    });
    sock.on('error', (e) => finish({ ok: false, error: e.message }));
    sock.on('close', () => finish({ ok: false, error: `closed after ${buf.length} bytes` }));
  });
}

function grpcCall(c: Call): Promise<Answer> {
  return new Promise((resolve) => {
    let done = false;
    const session = http2.connect(`http://${c.host.includes(':') ? `[${c.host}]` : c.host}:${c.port}`);
    const finish = (a: Answer): void => {
      if (done) return;
      done = true;
      session.destroy();
      resolve(a);
    };
    session.on('error', (e) => finish({ ok: false, error: e.message }));
    const req = session.request({
      ':method': 'POST',
      ':scheme': 'http',
      ':authority': c.authority,
      ':path': '/com.echo.Grpc/Echo',
      'content-type': 'application/grpc',
      te: 'trailers',
      'grpc-accept-encoding': 'identity',
      'user-agent': 'legacy-grpc/1.0',
    });
    const chunks: Buffer[] = [];
    let status = '';
    req.setTimeout(5000, () => finish({ ok: false, error: 'timeout' }));
    req.on('response', (h) => (status = String(h[':status'])));
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('trailers', (t) => {
      const body = Buffer.concat(chunks);
      if (status === '200' && t['grpc-status'] === '0' && body.length >= 5) finish({ ok: true, by: body.subarray(5).toString() });
      else finish({ ok: false, error: `status ${status} grpc-status ${String(t['grpc-status'])} ${String(t['grpc-message'] ?? '')}` });
    });
    req.on('end', () => finish({ ok: false, error: `stream ended without trailers (status ${status})` }));
    req.on('error', (e) => finish({ ok: false, error: e.message }));
    req.end(grpcFrame(GRPC_MESSAGE));
  });
}

function call(c: Call): Promise<Answer> {
  return c.proto === 'http' ? httpCall(c) : c.proto === 'grpc' ? grpcCall(c) : tcpCall(c);
}

interface Load {
  stop: boolean;
  ok: number;
  failures: string[];
  by: Record<string, number>;
  done: Promise<void>;
}
let load: Load | undefined;

function startLoad(calls: Call[]): void {
  const l: Load = { stop: false, ok: 0, failures: [], by: {}, done: Promise.resolve() };
  l.done = (async () => {
    for (let i = 0; !l.stop; i++) {
      const c = calls[i % calls.length]!;
      const a = await call(c);
      if (a.ok) {
        l.ok++;
        const key = `${c.proto}:${a.by}`;
        l.by[key] = (l.by[key] ?? 0) + 1;
      } else l.failures.push(`${c.proto} ${c.host}:${c.port}: ${a.error}`);
    }
  })();
  load = l;
}

// ---- control -----------------------------------------------------------------------

async function body(req: http.IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return chunks.length ? (JSON.parse(Buffer.concat(chunks).toString()) as Record<string, unknown>) : {};
}

async function handle(req: http.IncomingMessage): Promise<unknown> {
  const b = await body(req);
  switch (req.url) {
    case '/records':
      return records;
    case '/reset':
      records.length = 0;
      return {};
    case '/call':
      return call(b as unknown as Call);
    case '/resolve': {
      const r = new Resolver({ timeout: 2000, tries: 1 });
      r.setServers([values.dns!]);
      return r.resolve4(String(b.name));
    }
    case '/load/start':
      startLoad(b.calls as Call[]);
      return {};
    case '/load/stop': {
      if (!load) throw new Error('no load running');
      load.stop = true;
      await load.done;
      const { ok, failures, by } = load;
      load = undefined;
      return { ok, failures, by };
    }
    case '/load/peek':
      return load ? { ok: load.ok, failures: load.failures.length, by: load.by } : {};
  }
  throw new Error(`unknown path ${req.url}`);
}

const control = http.createServer((req, res) => {
  handle(req).then(
    (out) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(out));
    },
    (err: Error) => {
      res.writeHead(500).end(err.message);
    },
  );
});

const servers: Array<net.Server | http2.Http2Server> = [];
if (NAME) {
  servers.push(serveHttp().listen(PORTS.http, '0.0.0.0'), serveGrpc().listen(PORTS.grpc, '0.0.0.0'), serveTcp().listen(PORTS.tcp, '0.0.0.0'));
}
fs.rmSync(values.control!, { force: true });
control.listen(values.control!, () => process.stdout.write(`agent ${NAME || 'caller'} ready\n`));
const shutdown = (): void => {
  for (const s of servers) s.close();
  control.close();
  control.closeAllConnections();
  setTimeout(() => process.exit(0), 200).unref();
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
