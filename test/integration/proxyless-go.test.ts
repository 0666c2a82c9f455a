// A real grpc-go proxyless xDS client (test/clients/grpc-go, built by
// scripts/provision.d/70-grpc-go-client.sh) resolves xds:///HOST:PORT through Isthmus: calls
// spread over two endpoints, a weighted split to DestinationRule subsets applied while it is
// connected, and an endpoint removed from the manifest; grpc-go ACKs all of it.
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend } from '../helpers/backends.ts';
import { bootstrap, serviceEntry, type EndpointSpec, type Isthmus, type PortSpec, type SyncStatus } from '../helpers/isthmus.ts';
import { closeAll, ManifestDir, startBackends, startIsthmus } from '../helpers/mesh.ts';
import { freePort } from '../helpers/ports.ts';
import { assertNoLeftovers, dumpLogsOnFailure, stopAll } from '../helpers/processes.ts';
import { startProxylessClient, type ProxylessClient } from '../helpers/proxyless.ts';
import { waitFor, waitUntil } from '../helpers/wait.ts';

const ECHO = 'echo.go.local';
const NODE_ID = 'proxyless-go';
const manifests = new ManifestDir();
let backends: Backend[] = [];
let isthmus: Isthmus;
let client: ProxylessClient;
let port: PortSpec;
let target: string;

/** The ServiceEntry with the given backends as endpoints, labelled version=v1, v2 by index. */
function writeEntry(only?: readonly Backend[]): void {
  const endpoints: EndpointSpec[] = backends
    .map((b, i) => ({ address: b.host, ports: { grpc: b.port }, labels: { version: `v${i + 1}` } }))
    .filter((_, i) => !only || only.includes(backends[i]!));
  manifests.write('echo.yaml', serviceEntry('echo', { hosts: [ECHO], ports: [port], endpoints }));
}

/** The client's streams in /debug/syncz; fails when any of their types is NACKED. */
async function assertNoNack(): Promise<SyncStatus[]> {
  const mine = (await isthmus.syncz()).filter((s) => s.id === NODE_ID);
  assert.ok(mine.length > 0, `${NODE_ID} is not in /debug/syncz`);
  const nacked = mine.flatMap((s) => s.types.filter((t) => t.status === 'NACKED'));
  assert.deepEqual(nacked, [], `grpc-go NACKed: ${JSON.stringify(nacked)}`);
  return mine;
}

before(async () => {
  backends = await startBackends('grpc', 'echo', 2, 90);
  port = { number: await freePort(), name: 'grpc', protocol: 'GRPC' };
  target = `xds:///${ECHO}:${port.number}`;
  writeEntry();
  isthmus = await startIsthmus({ name: 'isthmus-proxyless-go', registries: [manifests.url], debounceQuietMs: 100, debounceMaxMs: 500 });
  const boot = await bootstrap(['--proxyless', '--node-id', NODE_ID, '--xds-address', isthmus.xdsAddress]);
  client = await startProxylessClient(boot, { kind: 'go' });
});

afterEach(dumpLogsOnFailure);

after(async () => {
  await stopAll();
  await closeAll(backends);
  assertNoLeftovers();
});

test('grpc-go: calls through Isthmus spread over both endpoints', async () => {
  const r = await waitUntil(() => client.call(target, 20), (t) => t.errors.length === 0 && (t.counts['echo-1'] ?? 0) > 0 && (t.counts['echo-2'] ?? 0) > 0, {
    timeoutMs: 20_000,
    intervalMs: 300,
    what: `grpc-go calls to ${target} spread over echo-1 and echo-2`,
  });
  assert.equal((r.counts['echo-1'] ?? 0) + (r.counts['echo-2'] ?? 0), 20, JSON.stringify(r.counts));
  // grpc-go says who it is (user_agent_name "gRPC Go"): Isthmus treats it as a proxyless client.
  const mine = await assertNoNack();
  assert.ok(mine.every((s) => (s as SyncStatus & { kind?: string }).kind === 'grpc'), JSON.stringify(mine));
  assert.ok(mine.some((s) => s.types.length >= 4 && s.types.every((t) => t.status === 'SYNCED')), JSON.stringify(mine));
});

test('grpc-go: a weighted 80/20 split to subsets, applied to a connected client', async () => {
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
  console.log(`grpc-go split: v2 ${v2}% of 400 (${JSON.stringify(r.counts)})`);
  await assertNoNack();
});

test('grpc-go: after an endpoint leaves the manifest, all calls go to the other', async () => {
  // Back to plain round robin over the service, then echo-1 is removed.
  manifests.remove('rules.yaml');
  // Round robin over two endpoints is an even split; under 80/20, 14 of 40 is far out (p < 1%).
  await waitUntil(() => client.call(target, 40), (t) => t.errors.length === 0 && (t.counts['echo-2'] ?? 0) >= 14, { timeoutMs: 20_000, intervalMs: 300, what: 'the split rule gone' });
  writeEntry([backends[1]!]);
  await waitUntil(() => client.call(target, 10), (t) => t.counts['echo-2'] === 10, { timeoutMs: 20_000, intervalMs: 300, what: 'grpc-go calls all on echo-2' });
  const before = backends[0]!.requests;
  const r = await client.call(target, 40);
  assert.deepEqual(r, { counts: { 'echo-2': 40 }, errors: [] });
  assert.equal(backends[0]!.requests, before, 'echo-1 got calls after it left the manifest');
  // The syncz view may lag the last ACK by a moment: wait for SYNCED (a NACK never becomes
  // SYNCED, and the timeout error shows it as the last failed assertion).
  await waitFor(async () => (await assertNoNack()).some((s) => s.types.every((t) => t.status === 'SYNCED')), { timeoutMs: 5000, what: `${NODE_ID} SYNCED in /debug/syncz` });
});
