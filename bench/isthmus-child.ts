// Isthmus in its own process over a synthetic MemoryRegistry, driven over IPC by bench/run.ts.
// Usage (forked): isthmus-child.ts --services S --endpoints E [--xds-port N] [--admin-port N]
//                 [--apply K:J:ADDRESS,…]
// Ports default to any free one; a restarted child is given the ports of the one it replaces,
// and with --apply the endpoint changes made so far (the registry kept them while it was down).
import { parseArgs } from 'node:util';
import { Isthmus, DEFAULTS } from '../src/server.ts';
import { MemoryRegistry } from '../src/registries/memory.ts';
import type { Endpoint } from '../src/model/types.ts';
import { clusterOf, type FromChild, memory, now, type ToChild } from './messages.ts';
import { benchModel, REGISTRY } from './model.ts';
import { returnFreedMemory } from '../src/memory.ts';

function send(m: FromChild): void {
  if (process.connected) process.send?.(m);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { services: { type: 'string' }, endpoints: { type: 'string' }, 'xds-port': { type: 'string', default: '0' }, 'admin-port': { type: 'string', default: '0' }, apply: { type: 'string', default: '' } },
  });
  const S = Number(values.services);
  const E = Number(values.endpoints);
  if (!(S > 0 && E > 0)) throw new Error('--services and --endpoints must be positive');
  if (S * E >= 255 * 65536) throw new Error('too many endpoints for the 10.x address plan');

  const model = benchModel(S, E);
  const services = model.services;
  let endpoints: Endpoint[] = model.endpoints;
  for (const c of values.apply ? values.apply.split(',') : []) {
    const [k, j, address] = c.split(':');
    const i = Number(k) * E + (Number(j) % E);
    endpoints[i] = { ...endpoints[i]!, address: address! };
  }
  const registry = new MemoryRegistry(REGISTRY);
  registry.set({ services, endpoints });

  const isthmus = new Isthmus({
    registries: [registry],
    xdsAddress: `127.0.0.1:${Number(values['xds-port'])}`,
    adminAddress: `127.0.0.1:${Number(values['admin-port'])}`,
    debounceQuietMs: DEFAULTS.debounceQuietMs,
    debounceMaxMs: DEFAULTS.debounceMaxMs,
    syncTimeoutMs: DEFAULTS.syncTimeoutMs,
  });

  // Time each cache build (bench-side wrapper; Isthmus itself is unchanged).
  let lastBuildMs = 0;
  const cache = isthmus.xds.cache;
  const update = cache.update.bind(cache);
  cache.update = (m, vips) => {
    const t = performance.now();
    try {
      return update(m, vips);
    } finally {
      lastBuildMs = performance.now() - t;
    }
  };

  let started = false;
  let ready = false;
  const sendReady = (): void => {
    ready = true;
    send({ type: 'ready', xdsPort: isthmus.xdsPort, adminPort: isthmus.adminPort, buildMs: lastBuildMs, t: now() });
  };
  isthmus.xds.snapshots.subscribe((g) => {
    const t = now();
    if (!started) return;
    if (!ready) sendReady();
    else send({ type: 'snapshot', seq: g.seq, t, buildMs: lastBuildMs });
  });
  await isthmus.start();
  started = true;
  // The first snapshot may have been built while start() was still binding.
  if (isthmus.current() && !ready) sendReady();

  let closing = false;
  const stop = (): void => {
    if (closing) return;
    closing = true;
    void isthmus.close().finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('disconnect', stop);
  process.on('SIGTERM', stop);

  process.on('message', (m: ToChild) => {
    switch (m.type) {
      case 'ping':
        send({ type: 'pong', id: m.id, t: now() });
        return;
      case 'change': {
        const i = m.service * E + (m.endpoint % E);
        const tApply = now();
        endpoints = endpoints.slice();
        endpoints[i] = { ...endpoints[i]!, address: m.address };
        registry.set({ endpoints });
        send({ type: 'changed', id: m.id, cluster: clusterOf(m.service), tApply, tSet: now() });
        return;
      }
      case 'memory':
        (globalThis as { gc?: () => void }).gc?.();
        // What Isthmus would do by itself after 10 s without work (src/memory.ts).
        void (m.returnFreed ? returnFreedMemory() : Promise.resolve(0)).then(memory).then((mem) => send({ type: 'memory', id: m.id, memory: mem }));
        return;
    }
  });
}

main().catch((e: unknown) => {
  send({ type: 'error', message: (e as Error).stack ?? String(e) });
  process.exitCode = 1;
  setTimeout(() => process.exit(1), 100);
});
