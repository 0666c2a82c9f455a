// The transport's intake: requests received and not yet handled are bounded, over real
// HTTP/2 connections whose flow control holds the rest at the clients.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { GrpcTransport, type ServerCall } from '../../../src/xds/server/transport.ts';

const PATH = '/test.Intake/Send';

function frame(body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

/** A message whose bytes say which client and which message it is. */
function body(client: number, n: number, size: number): Buffer {
  return Buffer.alloc(size, `${client}:${n};`);
}

function busy(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

interface Server {
  transport: GrpcTransport;
  port: number;
  /** Messages handled per client, in order, as "client:n". */
  got: Map<number, string[]>;
  maxIntake: { v: number };
  maxUnread: { v: number };
}

async function serve(opts: { intakeLimitBytes: number; handleMs: number }): Promise<Server> {
  const got = new Map<number, string[]>();
  const maxIntake = { v: 0 };
  const maxUnread = { v: 0 };
  const method = (call: ServerCall) => ({
    message(bytes: Buffer) {
      maxIntake.v = Math.max(maxIntake.v, transport.intakeBytes);
      maxUnread.v = Math.max(maxUnread.v, transport.unreadStreams);
      busy(opts.handleMs);
      const [id, n] = bytes.toString('latin1', 0, bytes.indexOf(';')).split(':').map(Number);
      const intact = bytes.equals(body(id!, n!, bytes.length));
      const list = got.get(id!) ?? [];
      list.push(intact ? `${id}:${n}` : `corrupt ${id}:${n}`);
      got.set(id!, list);
      call.write([Buffer.from('ok')], () => undefined);
    },
    end() {
      call.finish(0);
    },
    close() {},
  });
  const transport: GrpcTransport = new GrpcTransport(new Map([[PATH, method]]), { maxMessageBytes: 1 << 20, keepaliveMs: 0, keepaliveTimeoutMs: 0, receiveWindowBytes: 1 << 20, ...opts });
  const port = await transport.listen('127.0.0.1:0');
  return { transport, port, got, maxIntake, maxUnread };
}

/** Opens one call and sends `count` messages of `size` bytes at once; resolves when all are answered. */
function client(port: number, id: number, count: number, size: number): { session: http2.ClientHttp2Session; done: Promise<void> } {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  const stream = session.request({ ':method': 'POST', ':path': PATH, 'content-type': 'application/grpc', te: 'trailers' });
  let answers = 0;
  const done = new Promise<void>((resolve, reject) => {
    stream.on('data', (d: Buffer) => {
      // Each answer is one 7-byte gRPC message ("ok" + prefix).
      answers += d.length / 7;
      if (answers === count) resolve();
    });
    stream.on('error', reject);
  });
  for (let n = 0; n < count; n++) stream.write(frame(body(id, n, size)));
  return { session, done };
}

test('many clients sending at once: what is held unhandled stays near the limit, and every request arrives whole and in order', async () => {
  const limit = 256 * 1024;
  const clients = 30;
  const perClient = 4;
  const size = 100_000;
  const s = await serve({ intakeLimitBytes: limit, handleMs: 3 });
  try {
    const cs = Array.from({ length: clients }, (_, i) => client(s.port, i, perClient, size));
    await Promise.all(cs.map((c) => c.done));
    for (let i = 0; i < clients; i++) assert.deepEqual(s.got.get(i), Array.from({ length: perClient }, (_, n) => `${i}:${n}`), `client ${i}`);
    // All of it (12 MB) would be held if nothing stopped reading; with the limit, at most one
    // 64 KiB window more per client can arrive before its stream is stopped.
    const bound = limit + clients * 65_535 + size;
    assert.ok(s.maxIntake.v <= bound, `held ${s.maxIntake.v} bytes unhandled, bound ${bound}`);
    assert.ok(s.maxUnread.v > 0, 'some streams were stopped while the intake was full');
    assert.equal(s.transport.intakeBytes, 0, 'nothing held once everything is handled');
    for (const c of cs) c.session.close();
  } finally {
    await s.transport.close(100);
  }
});

test('a proxy that stops sending in the middle of a message does not keep the others waiting', async () => {
  const s = await serve({ intakeLimitBytes: 64 * 1024, handleMs: 0 });
  const stalled = http2.connect(`http://127.0.0.1:${s.port}`);
  try {
    const st = stalled.request({ ':method': 'POST', ':path': PATH, 'content-type': 'application/grpc', te: 'trailers' });
    const head = Buffer.alloc(5);
    head.writeUInt32BE(100_000, 1);
    // 40 KB of a 100 KB message, and then nothing.
    st.write(Buffer.concat([head, body(99, 0, 40_000)]));
    await new Promise((r) => setTimeout(r, 200));
    const cs = Array.from({ length: 5 }, (_, i) => client(s.port, i, 2, 100_000));
    await Promise.all(cs.map((c) => c.done));
    for (let i = 0; i < 5; i++) assert.deepEqual(s.got.get(i), [`${i}:0`, `${i}:1`]);
    assert.equal(s.got.get(99), undefined, 'the unfinished message is not handled');
    for (const c of cs) c.session.close();
  } finally {
    stalled.destroy();
    await s.transport.close(100);
  }
});

test('a new connection may send 64 KiB before it is read; once served while the server is idle it gets the full window', async () => {
  const s = await serve({ intakeLimitBytes: 1 << 20, handleMs: 0 });
  try {
    const c = client(s.port, 0, 1, 10);
    await new Promise<void>((resolve) => c.session.once('remoteSettings', () => resolve()));
    assert.equal(c.session.remoteSettings.initialWindowSize, 65_535);
    const widened = new Promise<void>((resolve) => c.session.on('remoteSettings', (st) => st.initialWindowSize === 1 << 20 && resolve()));
    await c.done;
    await widened;
    assert.equal(c.session.remoteSettings.initialWindowSize, 1 << 20);
    c.session.close();
  } finally {
    await s.transport.close(100);
  }
});
