// Rules Envoy honours reach every real proxyless client (grpc-go, grpc-java and
// @grpc/grpc-js-xds) in the form it implements, or are refused for it by name: none of them
// NACKs, and each one does what the rule says.
//   RANDOM                  gRPC has no random picker: the clients balance round robin (refused by name)
//   localityLbSetting       endpoints ordered for the client's locality, by EDS (no STATIC cluster)
//   consistentHash header   without a VirtualService, one user's calls stay on one backend
//   VirtualService timeout  the call's deadline (max_stream_duration)
//   fault abort             injected by the client (A33)
//   header match, retries   a header picks the subset; UNAVAILABLE is retried (A28, A44)
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startBackend, type Backend } from '../helpers/backends.ts';
import { bootstrap, serviceEntry, type Isthmus, type PortSpec } from '../helpers/isthmus.ts';
import { closeAll, ManifestDir, startBackends, startIsthmus } from '../helpers/mesh.ts';
import { freePort } from '../helpers/ports.ts';
import { assertNoLeftovers, dumpLogsOnFailure, stopAll } from '../helpers/processes.ts';
import { startProxylessClient, type ProxylessClient, type ProxylessKind } from '../helpers/proxyless.ts';
import { waitUntil } from '../helpers/wait.ts';

const KINDS: readonly ProxylessKind[] = ['node', 'go', 'java'];
const RANDOM = 'random.conf.local';
const ZONAL = 'zonal.conf.local';
const STICKY = 'sticky.conf.local';
const SLOW = 'slow.conf.local';
const MATCHED = 'matched.conf.local';
const manifests = new ManifestDir();
const backends: Backend[] = [];
const clients = new Map<ProxylessKind, ProxylessClient>();
let isthmus: Isthmus;
const port = new Map<string, PortSpec>();
let random: Backend[], zonal: Backend[], sticky: Backend[], slow: Backend, matched: Backend[];

const meta = (kind: string, name: string): object => ({ apiVersion: 'networking.istio.io/v1', kind, metadata: { name, namespace: 'default' } });
const target = (host: string): string => `xds:///${host}:${port.get(host)!.number}`;
const ep = (b: Backend, extra: object = {}): object => ({ address: b.host, ports: { grpc: b.port }, ...extra });

function writeManifests(opts: { zonalLocal: boolean }): void {
  const entry = (name: string, host: string, endpoints: object[]): object => {
    const e = serviceEntry(name, { hosts: [host], ports: [port.get(host)!], endpoints: [] }) as { spec: { endpoints: object[] } };
    e.spec.endpoints = endpoints;
    return e;
  };
  manifests.write('conformance.yaml', [
    entry('random', RANDOM, random.map((b) => ep(b))),
    { ...meta('DestinationRule', 'random'), spec: { host: RANDOM, trafficPolicy: { loadBalancer: { simple: 'RANDOM' } } } },
    entry('zonal', ZONAL, [...(opts.zonalLocal ? [ep(zonal[0]!, { locality: 'r1/z1' })] : []), ep(zonal[1]!, { locality: 'r1/z2' }), ep(zonal[2]!, { locality: 'r1/z2' })]),
    { ...meta('DestinationRule', 'zonal'), spec: { host: ZONAL, trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN', localityLbSetting: { enabled: true } } } } },
    entry('sticky', STICKY, sticky.map((b) => ep(b))),
    { ...meta('DestinationRule', 'sticky'), spec: { host: STICKY, trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: 'x-user' } } } } },
    entry('matched', MATCHED, matched.map((b, i) => ep(b, { labels: { version: `v${i + 1}` } }))),
    { ...meta('DestinationRule', 'matched'), spec: { host: MATCHED, subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] } },
    {
      ...meta('VirtualService', 'matched'),
      spec: {
        hosts: [MATCHED],
        http: [
          { match: [{ headers: { 'x-ver': { exact: 'two' } } }], route: [{ destination: { host: MATCHED, subset: 'v2' } }], retries: { attempts: 3, retryOn: 'unavailable' } },
          { route: [{ destination: { host: MATCHED, subset: 'v1' } }] },
        ],
      },
    },
    entry('slow', SLOW, [ep(slow)]),
    {
      ...meta('VirtualService', 'slow'),
      spec: {
        hosts: [SLOW],
        http: [
          { match: [{ headers: { 'x-fault': { exact: 'abort' } } }], fault: { abort: { grpcStatus: 'RESOURCE_EXHAUSTED', percentage: { value: 100 } } }, route: [{ destination: { host: SLOW } }] },
          { timeout: '0.3s', route: [{ destination: { host: SLOW } }] },
        ],
      },
    },
  ]);
}

before(async () => {
  random = await startBackends('grpc', 'random', 2, 90);
  zonal = [await startBackend('grpc', 'zonal-local', { host: '127.0.0.93' }), await startBackend('grpc', 'zonal-remote-1', { host: '127.0.0.94' }), await startBackend('grpc', 'zonal-remote-2', { host: '127.0.0.95' })];
  sticky = await startBackends('grpc', 'sticky', 3, 96);
  slow = await startBackend('grpc', 'slow-1', { host: '127.0.0.99', delayMs: 1500 });
  // v2 fails every other call: only retries make all of them succeed.
  matched = [await startBackend('grpc', 'matched-1', { host: '127.0.0.100' }), await startBackend('grpc', 'matched-2', { host: '127.0.0.101', failEvery: 2 })];
  backends.push(...random, ...zonal, ...sticky, slow, ...matched);
  for (const h of [RANDOM, ZONAL, STICKY, SLOW, MATCHED]) port.set(h, { number: await freePort(), name: 'grpc', protocol: 'GRPC' });
  writeManifests({ zonalLocal: true });
  isthmus = await startIsthmus({ name: 'isthmus-proxyless-conformance', registries: [manifests.url], debounceQuietMs: 100, debounceMaxMs: 500 });
  await Promise.all(
    KINDS.map(async (kind) => {
      const boot = (await bootstrap(['--proxyless', '--node-id', `conformance-${kind}`, '--xds-address', isthmus.xdsAddress])) as { node: Record<string, unknown> };
      boot.node.locality = { region: 'r1', zone: 'z1' };
      clients.set(kind, await startProxylessClient(boot, { kind }));
    }),
  );
});

afterEach(dumpLogsOnFailure);

after(async () => {
  // No client NACKed anything Isthmus sent it, in any test.
  const sync = await isthmus.syncz();
  for (const kind of KINDS) {
    const mine = sync.filter((s) => s.id === `conformance-${kind}`);
    assert.ok(mine.length > 0, `${kind} connected`);
    for (const s of mine) for (const t of s.types) assert.notEqual(t.status, 'NACKED', `${kind} NACKed ${t.typeUrl}: ${t.nack?.message}`);
  }
  await stopAll();
  await closeAll(backends);
  assertNoLeftovers();
});

const each = async (fn: (kind: ProxylessKind, c: ProxylessClient) => Promise<void>): Promise<void> => {
  for (const kind of KINDS) await fn(kind, clients.get(kind)!);
};

test('RANDOM: every client serves calls over both backends (round robin), and the refusal is named in registryz', async () => {
  await each(async (kind, c) => {
    const r = await waitUntil(() => c.call(target(RANDOM), 20), (t) => t.errors.length === 0 && (t.counts['random-1'] ?? 0) > 0 && (t.counts['random-2'] ?? 0) > 0, {
      timeoutMs: 30_000,
      intervalMs: 300,
      what: `${kind}: calls over both backends`,
    });
    console.log(`${kind} RANDOM → ${JSON.stringify(r.counts)}`);
  });
  const reg = (await isthmus.registryz()) as { xdsProblems: { name: string; reason: string }[] };
  assert.ok(reg.xdsProblems.some((p) => p.name === 'DestinationRule default/random' && /RANDOM is not implemented by gRPC/.test(p.reason)), JSON.stringify(reg.xdsProblems));
});

test('localityLbSetting: a client in r1/z1 calls its zone only, and the other zone once its zone has no endpoint', async () => {
  await each(async (kind, c) => {
    await waitUntil(() => c.call(target(ZONAL), 10), (t) => t.counts['zonal-local'] === 10, { timeoutMs: 30_000, intervalMs: 300, what: `${kind}: all calls in zone z1` });
    // Tolerance: none. 40 calls, all to the only endpoint in the client's zone.
    assert.deepEqual((await c.call(target(ZONAL), 40)).counts, { 'zonal-local': 40 }, kind);
  });
  writeManifests({ zonalLocal: false });
  await each(async (kind, c) => {
    await waitUntil(() => c.call(target(ZONAL), 10), (t) => (t.counts['zonal-remote-1'] ?? 0) + (t.counts['zonal-remote-2'] ?? 0) === 10, {
      timeoutMs: 20_000,
      intervalMs: 200,
      what: `${kind}: failover to zone z2`,
    });
    const away = await c.call(target(ZONAL), 40);
    assert.ok((away.counts['zonal-remote-1'] ?? 0) > 0 && (away.counts['zonal-remote-2'] ?? 0) > 0 && away.errors.length === 0, `${kind}: ${JSON.stringify(away)}`);
  });
  writeManifests({ zonalLocal: true });
});

test('consistentHash on x-user with no VirtualService: each user sticks to one backend, users spread', async () => {
  await each(async (kind, c) => {
    await waitUntil(() => c.call(target(STICKY), 3, 3000, { 'x-user': 'warmup' }), (t) => t.errors.length === 0, { timeoutMs: 30_000, intervalMs: 300, what: `${kind}: sticky answers` });
    const seen = new Set<string>();
    for (let u = 0; u < 8; u++) {
      const r = await c.call(target(STICKY), 10, 3000, { 'x-user': `user-${u}` });
      const got = Object.keys(r.counts);
      // Tolerance: none. A ring hash maps one key to one host while the hosts do not change.
      assert.equal(got.length, 1, `${kind}: user-${u}'s 10 calls went to ${JSON.stringify(r.counts)}`);
      seen.add(got[0]!);
    }
    // 8 users over 3 hosts all on one host: (1/3)^7 ≈ 0.05%.
    assert.ok(seen.size >= 2, `${kind}: 8 users all on ${[...seen].join(',')}`);
  });
});

test('VirtualService timeout ends a slow call at the deadline; fault abort is injected by the client', async () => {
  await each(async (kind, c) => {
    await waitUntil(() => c.call(target(SLOW), 1, 5000, { 'x-fault': 'abort' }), (t) => /^RESOURCE_EXHAUSTED/.test(t.errors[0] ?? ''), {
      timeoutMs: 30_000,
      intervalMs: 300,
      what: `${kind}: the injected abort`,
    });
    const t0 = Date.now();
    const r = await c.call(target(SLOW), 1, 5000);
    const ms = Date.now() - t0;
    assert.match(r.errors[0] ?? '', /^DEADLINE_EXCEEDED/, `${kind}: ${JSON.stringify(r)}`);
    // The backend answers after 1500 ms; the rule's 300 ms deadline ends the call well before.
    assert.ok(ms < 1200, `${kind}: the call took ${ms} ms`);
    console.log(`${kind}: slow call ended after ${ms} ms (${r.errors[0]})`);
  });
});

test('a header match picks the subset, and its route retries UNAVAILABLE until a try succeeds', async () => {
  await each(async (kind, c) => {
    await waitUntil(() => c.call(target(MATCHED), 10), (t) => t.counts['matched-1'] === 10, { timeoutMs: 30_000, intervalMs: 300, what: `${kind}: default route to v1` });
    // matched-2 fails every other try: 20 calls succeed only if each failure is retried.
    const r = await c.call(target(MATCHED), 20, 3000, { 'x-ver': 'two' });
    assert.deepEqual(r, { counts: { 'matched-2': 20 }, errors: [] }, kind);
  });
  // Without the retry half the calls would fail: the backend did see the failed tries.
  assert.ok(matched[1]!.requests >= 3 * 30, `matched-2 saw ${matched[1]!.requests} tries`);
});
