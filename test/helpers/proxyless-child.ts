// Child process: a real proxyless gRPC xDS client (GRPC_XDS_BOOTSTRAP_CONFIG set by the parent).
// Serves the control interface described in proxyless.ts.
import http from 'node:http';
import * as grpcXds from '@grpc/grpc-js-xds';
import { echoCall, echoClient } from './clients.ts';
import type { EchoClient } from './echo.ts';

grpcXds.register();
const clients = new Map<string, EchoClient>();

const server = http.createServer((req, res) => {
  void (async () => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname !== '/call') {
      res.writeHead(404).end();
      return;
    }
    const target = url.searchParams.get('target') ?? '';
    const n = Number(url.searchParams.get('n') ?? '1');
    const timeoutMs = Number(url.searchParams.get('timeoutMs') ?? '3000');
    const headers: Record<string, string> = {};
    for (const h of url.searchParams.getAll('header')) {
      const i = h.indexOf(':');
      if (i > 0) headers[h.slice(0, i).toLowerCase()] = h.slice(i + 1);
    }
    let client = clients.get(target);
    if (!client) {
      client = echoClient(target);
      clients.set(target, client);
    }
    const counts: Record<string, number> = {};
    const errors: string[] = [];
    for (let i = 0; i < n; i++) {
      const a = await echoCall(client, 'hi', timeoutMs, headers);
      const key = a.backend ?? '!error';
      counts[key] = (counts[key] ?? 0) + 1;
      if (a.error && errors.length < 3) errors.push(a.error);
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ counts, errors }));
  })();
});

server.listen(0, '127.0.0.1', () => {
  const addr = server.address();
  console.log(`PORT ${typeof addr === 'object' && addr ? addr.port : 0}`);
});

process.on('SIGTERM', () => {
  for (const c of clients.values()) c.close();
  server.close(() => process.exit(0));
});
