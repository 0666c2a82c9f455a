// A proxyless gRPC client (@grpc/grpc-js-xds) obeys a VirtualService: a weighted split to
// DestinationRule subsets, applied while the client is already connected.
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend } from '../helpers/backends.ts';
import { bootstrap, serviceEntry, type Isthmus, type PortSpec } from '../helpers/isthmus.ts';
import { closeAll, ManifestDir, startBackends, startIsthmus } from '../helpers/mesh.ts';
import { freePort } from '../helpers/ports.ts';
import { assertNoLeftovers, dumpLogsOnFailure, stopAll } from '../helpers/processes.ts';
import { startProxylessClient, type ProxylessClient } from '../helpers/proxyless.ts';
import { waitUntil } from '../helpers/wait.ts';

const ECHO = 'echo.split.local';
const manifests = new ManifestDir();
let backends: Backend[] = [];
let isthmus: Isthmus;
let client: ProxylessClient;
let target: string;

before(async () => {
  backends = await startBackends('grpc', 'echo', 2, 80);
  const port: PortSpec = { number: await freePort(), name: 'grpc', protocol: 'GRPC' };
  target = `xds:///${ECHO}:${port.number}`;
  const endpoints = backends.map((b, i) => ({ address: b.host, ports: { grpc: b.port }, labels: { version: `v${i + 1}` } }));
  manifests.write('echo.yaml', serviceEntry('echo', { hosts: [ECHO], ports: [port], endpoints }));
  isthmus = await startIsthmus({ name: 'isthmus-routing-proxyless', registries: [manifests.url], debounceQuietMs: 100, debounceMaxMs: 500 });
  const boot = await bootstrap(['--proxyless', '--node-id', 'proxyless-split', '--xds-address', isthmus.xdsAddress]);
  client = await startProxylessClient(boot);
});

afterEach(dumpLogsOnFailure);

after(async () => {
  await stopAll();
  await closeAll(backends);
  assertNoLeftovers();
});

test('proxyless: a weighted split to subsets, applied to a connected client', async () => {
  await waitUntil(() => client.call(target, 10), (t) => t.errors.length === 0 && (t.counts['echo-1'] ?? 0) > 0 && (t.counts['echo-2'] ?? 0) > 0, {
    timeoutMs: 20_000,
    intervalMs: 300,
    what: 'calls spread over both endpoints',
  });
  const meta = (kind: string): object => ({ apiVersion: 'networking.istio.io/v1', kind, metadata: { name: 'echo', namespace: 'default' } });
  manifests.write('rules.yaml', [
    { ...meta('DestinationRule'), spec: { host: ECHO, subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] } },
    { ...meta('VirtualService'), spec: { hosts: [ECHO], http: [{ route: [{ destination: { host: ECHO, subset: 'v1' }, weight: 80 }, { destination: { host: ECHO, subset: 'v2' }, weight: 20 }] }] } },
  ]);
  // Until the rule applies the split is about 50/50; wait for a batch clearly below that.
  await waitUntil(() => client.call(target, 50), (t) => (t.counts['echo-2'] ?? 0) <= 17 && t.errors.length === 0, { timeoutMs: 20_000, intervalMs: 300, what: 'the 80/20 rule applied' });
  const r = await client.call(target, 400);
  assert.deepEqual(r.errors, []);
  const v2 = ((r.counts['echo-2'] ?? 0) / 400) * 100;
  // Tolerance: 20% ± 7 over 400 calls (binomial sd 2%).
  assert.ok(v2 >= 13 && v2 <= 27, `v2 share ${v2}%: ${JSON.stringify(r.counts)}`);
  console.log(`proxyless split: v2 ${v2}% of 400 (${JSON.stringify(r.counts)})`);
});
