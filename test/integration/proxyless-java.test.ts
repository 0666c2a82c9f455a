// A real grpc-java proxyless xDS client (test/clients/grpc-java, built by
// scripts/provision.d/71-grpc-java-client.sh) resolves xds:///HOST:PORT through Isthmus:
// calls spread over two endpoints, a weighted split to DestinationRule subsets applied while
// it is connected, and an endpoint removed from the manifest. It must never NACK.
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend } from '../helpers/backends.ts';
import { bootstrap, serviceEntry, type EndpointSpec, type Isthmus, type PortSpec } from '../helpers/isthmus.ts';
import { closeAll, ManifestDir, startBackends, startIsthmus } from '../helpers/mesh.ts';
import { freePort } from '../helpers/ports.ts';
import { assertNoLeftovers, dumpLogsOnFailure, stopAll } from '../helpers/processes.ts';
import { startProxylessClient, type ProxylessClient } from '../helpers/proxyless.ts';
import { waitUntil } from '../helpers/wait.ts';

const ECHO = 'echo.java.local';
const NODE_ID = 'proxyless-java';
const manifests = new ManifestDir();
let backends: Backend[] = [];
let isthmus: Isthmus;
let client: ProxylessClient;
let port: PortSpec;
let target: string;

/** The STATIC endpoints of echo: backend i is labelled version v(i+1). */
function writeEcho(members: readonly Backend[]): void {
  const endpoints: EndpointSpec[] = members.map((b) => ({ address: b.host, ports: { grpc: b.port }, labels: { version: `v${backends.indexOf(b) + 1}` } }));
  manifests.write('echo.yaml', serviceEntry('echo', { hosts: [ECHO], ports: [port], endpoints }));
}

/** The client's stream is in /debug/syncz and none of its types is NACKED. */
async function assertNoNack(): Promise<void> {
  const mine = (await isthmus.syncz()).filter((s) => s.id === NODE_ID);
  assert.ok(mine.length > 0, `no /debug/syncz entry for ${NODE_ID}`);
  const nacked = mine.flatMap((s) => s.types.filter((t) => t.status === 'NACKED'));
  assert.deepEqual(
    nacked.map((t) => `${t.typeUrl}: ${t.nack?.message ?? ''}`),
    [],
    'grpc-java NACKed a resource',
  );
}

before(async () => {
  backends = await startBackends('grpc', 'echo', 2, 90);
  port = { number: await freePort(), name: 'grpc', protocol: 'GRPC' };
  target = `xds:///${ECHO}:${port.number}`;
  writeEcho(backends);
  isthmus = await startIsthmus({ name: 'isthmus-proxyless-java', registries: [manifests.url], debounceQuietMs: 100, debounceMaxMs: 500 });
  const boot = await bootstrap(['--proxyless', '--node-id', NODE_ID, '--xds-address', isthmus.xdsAddress]);
  client = await startProxylessClient(boot, { kind: 'java' });
});

afterEach(dumpLogsOnFailure);

after(async () => {
  await stopAll();
  await closeAll(backends);
  assertNoLeftovers();
});

test('grpc-java: calls to xds:///HOST:PORT spread over both endpoints', async (t) => {
  const start = Date.now();
  // The first call loads grpc-java's xDS classes and fetches LDS, RDS, CDS and EDS.
  await waitUntil(() => client.call(target, 10), (r) => r.errors.length === 0 && (r.counts['echo-1'] ?? 0) > 0 && (r.counts['echo-2'] ?? 0) > 0, {
    timeoutMs: 30_000,
    intervalMs: 300,
    what: `grpc-java calls to ${target} spread over echo-1 and echo-2`,
  });
  const firstMs = Date.now() - start;
  const r = await client.call(target, 40);
  t.diagnostic(`first spread batch after ${firstMs} ms, then 40 calls in ${Date.now() - start - firstMs} ms: ${JSON.stringify(r.counts)}`);
  assert.deepEqual(r.errors, []);
  assert.equal((r.counts['echo-1'] ?? 0) + (r.counts['echo-2'] ?? 0), 40, JSON.stringify(r.counts));
  assert.ok((r.counts['echo-1'] ?? 0) > 0 && (r.counts['echo-2'] ?? 0) > 0, JSON.stringify(r.counts));
  await assertNoNack();
});

test('grpc-java: a weighted 80/20 split to subsets, applied to a connected client', async (t) => {
  const meta = (kind: string): object => ({ apiVersion: 'networking.istio.io/v1', kind, metadata: { name: 'echo', namespace: 'default' } });
  manifests.write('rules.yaml', [
    { ...meta('DestinationRule'), spec: { host: ECHO, subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] } },
    { ...meta('VirtualService'), spec: { hosts: [ECHO], http: [{ route: [{ destination: { host: ECHO, subset: 'v1' }, weight: 80 }, { destination: { host: ECHO, subset: 'v2' }, weight: 20 }] }] } },
  ]);
  // Until the rule applies the split is about 50/50; wait for a batch clearly below that.
  await waitUntil(() => client.call(target, 50), (r) => (r.counts['echo-2'] ?? 0) <= 17 && r.errors.length === 0, {
    timeoutMs: 20_000,
    intervalMs: 300,
    what: 'the 80/20 rule applied',
  });
  const r = await client.call(target, 400);
  assert.deepEqual(r.errors, []);
  const v2 = ((r.counts['echo-2'] ?? 0) / 400) * 100;
  // Tolerance: 20% ± 7 over 400 calls (binomial sd 2%).
  assert.ok(v2 >= 13 && v2 <= 27, `v2 share ${v2}%: ${JSON.stringify(r.counts)}`);
  t.diagnostic(`grpc-java split: v2 ${v2}% of 400 (${JSON.stringify(r.counts)})`);
  await assertNoNack();
});

test('grpc-java: after an endpoint is removed from the manifest, all calls go to the other', async () => {
  // Without the rules the calls spread over both endpoints again (round robin: 25 of 50 each;
  // under 80/20, 18 or more of 50 on echo-2 has a chance of 0.3%)...
  manifests.remove('rules.yaml');
  await waitUntil(() => client.call(target, 50), (r) => r.errors.length === 0 && (r.counts['echo-2'] ?? 0) >= 18, {
    timeoutMs: 20_000,
    intervalMs: 300,
    what: 'the rules removed: calls spread evenly again',
  });
  // ...until echo-2 leaves the ServiceEntry.
  writeEcho([backends[0]!]);
  await waitUntil(() => client.call(target, 10), (r) => r.counts['echo-1'] === 10, {
    timeoutMs: 20_000,
    intervalMs: 300,
    what: 'all calls to go to echo-1',
  });
  const before = backends[1]!.requests;
  const r = await client.call(target, 50);
  assert.deepEqual(r, { counts: { 'echo-1': 50 }, errors: [] });
  assert.equal(backends[1]!.requests, before, 'echo-2 got calls after it left the manifest');
  await assertNoNack();
});
