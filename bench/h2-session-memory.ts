// What Node's HTTP/2 layer alone keeps per connection: a bare node:http2 server (no Isthmus
// code) takes P client sessions, one long-lived stream each, reads a request of REQUEST bytes
// on it and writes RESPONSE bytes back; its RSS and heap growth per session are printed,
// after a GC. The reference for Isthmus's "RSS per proxy" in bench/RESULTS.md.
// Usage: node bench/h2-session-memory.ts [--proxies 1000] [--request BYTES] [--response BYTES]
//        [--window BYTES]   (HTTP/2 receive window of the server, as Isthmus sets it)
import { fork } from 'node:child_process';
import http2 from 'node:http2';
import { parseArgs } from 'node:util';

interface Usage {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  arrayBuffers: number;
}

const { values } = parseArgs({
  options: {
    proxies: { type: 'string', default: '1000' },
    request: { type: 'string', default: '250000' },
    response: { type: 'string', default: '1000000' },
    window: { type: 'string', default: String(1 << 20) },
    server: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});

if (values.help) {
  process.stdout.write('Usage: node bench/h2-session-memory.ts [--proxies P] [--request BYTES] [--response BYTES] [--window BYTES]\n');
  process.exit(0);
}

const window = Number(values.window);

if (values.server) {
  const body = Buffer.alloc(Number(values.response), 1);
  const server = http2.createServer({ maxSessionMemory: Number.MAX_SAFE_INTEGER, ...(window ? { settings: { initialWindowSize: window } } : {}) });
  server.on('session', (s) => {
    if (window) s.setLocalWindowSize(window);
  });
  server.on('stream', (s) => {
    s.respond({ ':status': 200 });
    s.on('data', () => undefined);
    if (body.length) s.write(body);
  });
  server.listen(0, '127.0.0.1', () => process.send?.({ port: (server.address() as { port: number }).port }));
  process.on('message', () => {
    (globalThis as { gc?: () => void }).gc?.();
    const u = process.memoryUsage();
    process.send?.({ rss: u.rss, heapUsed: u.heapUsed, heapTotal: u.heapTotal, arrayBuffers: u.arrayBuffers });
  });
} else {
  const P = Number(values.proxies);
  const request = Number(values.request);
  const response = Number(values.response);
  if (!(P > 0 && request >= 0 && response >= 0)) throw new Error('--proxies must be positive, sizes not negative');
  const child = fork(new URL(import.meta.url).pathname, ['--server', '--response', String(response), '--window', String(window)], { execArgv: ['--expose-gc'] });
  const next = <T>(): Promise<T> => new Promise((resolve) => child.once('message', (m) => resolve(m as T)));
  const { port } = await next<{ port: number }>();
  const usage = async (): Promise<Usage> => {
    child.send({});
    return next<Usage>();
  };
  const before = await usage();
  let got = 0;
  const sessions: http2.ClientHttp2Session[] = [];
  for (let i = 0; i < P; i++) {
    const s = http2.connect(`http://127.0.0.1:${port}`);
    const st = s.request({ ':method': 'POST', ':path': '/' });
    st.on('data', (d: Buffer) => (got += d.length));
    if (request) st.write(Buffer.alloc(request, 2));
    sessions.push(s);
    if (i % 50 === 49) await new Promise((r) => setTimeout(r, 10));
  }
  const deadline = Date.now() + 120_000;
  while (got < P * response && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  await new Promise((r) => setTimeout(r, 1000)); // requests read
  const after = await usage();
  const per = (k: keyof Usage): string => `${((after[k] - before[k]) / P / 1024).toFixed(1)} KiB`;
  process.stdout.write(
    `bare node:http2, P=${P}, request ${request} B, response ${response} B (received ${got === P * response ? 'all' : got}), window ${window}:\n` +
      `  per session: RSS ${per('rss')}, RSS outside the V8 heap ${(((after.rss - after.heapTotal) - (before.rss - before.heapTotal)) / P / 1024).toFixed(1)} KiB, heap ${per('heapUsed')}, array buffers ${per('arrayBuffers')}\n`,
  );
  for (const s of sessions) s.destroy();
  child.kill();
}
