// Admin HTTP: readiness, Prometheus metrics and debug views of the model and of xDS sync.
import http from 'node:http';
import type { ModelSnapshot } from '../model/snapshot.ts';
import { logger } from '../shared/log.ts';
import { metrics } from '../shared/metrics.ts';

const log = logger('admin');

export interface AdminSources {
  ready(): { ready: boolean; reason?: string };
  model(): ModelSnapshot;
  problems(): readonly unknown[];
  syncz(): unknown;
  configDump(proxyId: string): unknown | undefined;
  /** DNS status, when DNS is on. */
  dnsz?(): unknown | undefined;
  /** Each endpoint's source, sidecar and call paths (from connected proxies). */
  instances?(): unknown;
}

const ENDPOINTS = ['/healthz/ready', '/metrics', '/debug/registryz', '/debug/syncz', '/debug/config_dump?proxy=ID', '/debug/dnsz'];

export class AdminServer {
  private readonly server: http.Server;
  private readonly sources: AdminSources;

  constructor(sources: AdminSources) {
    this.sources = sources;
    this.server = http.createServer((req, res) => {
      try {
        this.handle(req, res);
      } catch (e) {
        log.error('admin request failed', { url: req.url, error: e });
        send(res, 500, { error: (e as Error).message });
      }
    });
  }

  async listen(address: string): Promise<number> {
    const { host, port } = splitAddress(address);
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => resolve());
    });
    return (this.server.address() as { port: number }).port;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://admin');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, { error: `method ${req.method} not allowed; admin endpoints are read-only (GET)` });
      return;
    }
    switch (url.pathname) {
      case '/healthz/ready': {
        const r = this.sources.ready();
        res.writeHead(r.ready ? 200 : 503, { 'content-type': 'text/plain' }).end(r.ready ? 'ready\n' : `not ready: ${r.reason}\n`);
        return;
      }
      case '/metrics': {
        const mem = process.memoryUsage();
        const extra = [
          '# HELP isthmus_process_resident_memory_bytes Resident memory of the Isthmus process.',
          '# TYPE isthmus_process_resident_memory_bytes gauge',
          `isthmus_process_resident_memory_bytes ${mem.rss}`,
          '# HELP isthmus_process_heap_used_bytes V8 heap in use.',
          '# TYPE isthmus_process_heap_used_bytes gauge',
          `isthmus_process_heap_used_bytes ${mem.heapUsed}`,
        ].join('\n');
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(metrics.render() + extra + '\n');
        return;
      }
      case '/debug/registryz': {
        const model = this.sources.model().toJSON() as Record<string, unknown>;
        send(res, 200, { ...model, xdsProblems: this.sources.problems(), ...(this.sources.instances ? { instances: this.sources.instances() } : {}) });
        return;
      }
      case '/debug/syncz':
        send(res, 200, this.sources.syncz());
        return;
      case '/debug/dnsz': {
        const status = this.sources.dnsz?.();
        if (status === undefined) send(res, 404, { error: 'DNS is off (isthmus serve --dns-listen off)' });
        else send(res, 200, status);
        return;
      }
      case '/debug/config_dump': {
        const id = url.searchParams.get('proxy');
        if (!id) {
          send(res, 400, { error: 'missing query parameter "proxy" (the node id of a connected proxy)' });
          return;
        }
        const dump = this.sources.configDump(id);
        if (dump === undefined) send(res, 404, { error: `no connected proxy with node id "${id}"` });
        else send(res, 200, dump);
        return;
      }
      default:
        send(res, 404, { error: `unknown path ${url.pathname}`, endpoints: ENDPOINTS });
    }
  }
}

function send(res: http.ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(body, null, 2) + '\n');
}

/** "HOST:PORT" or "[v6]:PORT" → parts; throws naming the bad address. */
export function splitAddress(address: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(address);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new Error(`"${address}" is not HOST:PORT`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}
