// VirtualService and DestinationRule through a real Envoy: weighted split, header match to a
// subset, retries, timeout, fault injection, mirroring, consistent hash, outlier detection.
// One Isthmus and one sidecar; each test writes its own service and rules, and counts
// answers over enough requests to hold a stated tolerance.
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startBackend, type Backend } from '../helpers/backends.ts';
import { httpRequest, tally, type Answer } from '../helpers/clients.ts';
import type { Isthmus, PortSpec } from '../helpers/isthmus.ts';
import { closeAll, ManifestDir, startIsthmus, startSidecar, type SidecarPorts } from '../helpers/mesh.ts';
import { serviceEntry } from '../helpers/isthmus.ts';
import { freePorts } from '../helpers/ports.ts';
import { assertNoLeftovers, dumpLogsOnFailure, stopAll } from '../helpers/processes.ts';
import { waitUntil } from '../helpers/wait.ts';

const PROPAGATION = { timeoutMs: 20_000, intervalMs: 200 };
const manifests = new ManifestDir();
const all: Backend[] = [];
let isthmus: Isthmus;
let sidecar: SidecarPorts;
let ports: number[];
let nextOctet = 10;

function meta(kind: string, name: string): object {
  return { apiVersion: 'networking.istio.io/v1', kind, metadata: { name, namespace: 'default' } };
}

/** A service `host` on its own port whose backends carry the given labels. */
async function service(host: string, backends: { name: string; labels?: Record<string, string>; failEvery?: number; delayMs?: number }[]): Promise<{ port: PortSpec; backends: Backend[] }> {
  const port: PortSpec = { number: ports.shift()!, name: 'http', protocol: 'HTTP' };
  const started: Backend[] = [];
  for (const b of backends) started.push(await startBackend('http', b.name, { host: `127.0.0.${nextOctet++}`, failEvery: b.failEvery, delayMs: b.delayMs }));
  all.push(...started);
  const endpoints = started.map((s, i) => ({ address: s.host, ports: { http: s.port }, labels: backends[i]!.labels ?? {} }));
  manifests.write(`${host}.yaml`, serviceEntry(host.split('.')[0]!, { hosts: [host], ports: [port], endpoints }));
  return { port, backends: started };
}

function rules(file: string, docs: object[]): void {
  manifests.write(file, docs);
}

const send = (host: string, opts: Parameters<typeof httpRequest>[2] = {}): Promise<Answer> => httpRequest(sidecar.outbound, host, opts);

/** Waits until the service answers at all (its routes and clusters reached Envoy). */
async function ready(host: string, ok: (a: Answer) => boolean = (a) => a.status === 200): Promise<void> {
  await waitUntil(() => send(host), ok, { ...PROPAGATION, what: `${host} routed` });
}

before(async () => {
  ports = await freePorts(16);
  isthmus = await startIsthmus({ name: 'isthmus-routing-http', registries: [manifests.url], debounceQuietMs: 100, debounceMaxMs: 500 });
  ({ ports: sidecar } = await startSidecar(isthmus, 'sidecar-routing-http'));
});

afterEach(dumpLogsOnFailure);

after(async () => {
  await stopAll();
  await closeAll(all);
  assertNoLeftovers();
});

test('a 90/10 weighted split between subsets, and a header match to one subset', async () => {
  const host = 'split.test.local';
  await service(host, [
    { name: 'split-v1', labels: { version: 'v1' } },
    { name: 'split-v2', labels: { version: 'v2' } },
  ]);
  rules('split-rules.yaml', [
    { ...meta('DestinationRule', 'split'), spec: { host, subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] } },
    {
      ...meta('VirtualService', 'split'),
      spec: {
        hosts: [host],
        http: [
          { match: [{ headers: { 'x-canary': { exact: 'yes' } } }], route: [{ destination: { host, subset: 'v2' } }] },
          { route: [{ destination: { host, subset: 'v1' }, weight: 90 }, { destination: { host, subset: 'v2' }, weight: 10 }] },
        ],
      },
    },
  ]);
  await waitUntil(() => tally(10, () => send(host, { headers: { 'x-canary': 'yes' } })), (c) => c['split-v2'] === 10, { ...PROPAGATION, what: 'x-canary: yes routed to v2 only' });
  // Tolerance: 10% ± 5 over 400 requests (binomial sd 1.5%, so > 3 sd either side).
  const counts = await tally(400, () => send(host));
  const v2 = ((counts['split-v2'] ?? 0) / 400) * 100;
  assert.equal((counts['split-v1'] ?? 0) + (counts['split-v2'] ?? 0), 400, JSON.stringify(counts));
  assert.ok(v2 >= 5 && v2 <= 15, `v2 share ${v2}% outside 10% ± 5: ${JSON.stringify(counts)}`);
  const canary = await tally(50, () => send(host, { headers: { 'x-canary': 'yes' } }));
  assert.deepEqual(canary, { 'split-v2': 50 });
  const other = await tally(50, () => send(host, { headers: { 'x-canary': 'no' } }));
  assert.ok((other['split-v1'] ?? 0) >= 35, JSON.stringify(other));
  console.log(`weighted split: v2 ${v2}% of 400 (${JSON.stringify(counts)}); x-canary: ${JSON.stringify(canary)}`);
});

test('retries succeed against a backend that fails every other call', async () => {
  const host = 'flaky.test.local';
  const { backends } = await service(host, [{ name: 'flaky-1', failEvery: 2 }]);
  await waitUntil(() => tally(4, () => send(host)), (c) => (c['flaky-1'] ?? 0) > 0, { ...PROPAGATION, what: `${host} routed` });
  const allOk = async (): Promise<boolean> => {
    for (let i = 0; i < 10; i++) if ((await send(host)).status !== 200) return false;
    return true;
  };
  rules('flaky-rules.yaml', [
    { ...meta('VirtualService', 'flaky'), spec: { hosts: [host], http: [{ route: [{ destination: { host } }], retries: { attempts: 3, perTryTimeout: '2s', retryOn: '5xx' } }] } },
  ]);
  // Before the rule half the calls fail; once it applies every call succeeds.
  await waitUntil(allOk, (ok) => ok, { ...PROPAGATION, what: 'retries applied' });
  const before = backends[0]!.requests;
  const answers: Answer[] = [];
  for (let i = 0; i < 100; i++) answers.push(await send(host));
  const ok = answers.filter((a) => a.status === 200).length;
  assert.equal(ok, 100, `only ${ok}/100 succeeded`);
  // Tolerance: exactly one retry per failed try; the backend saw 100 successes and ~100 failures.
  const seen = backends[0]!.requests - before;
  assert.ok(seen >= 190 && seen <= 202, `backend saw ${seen} calls for 100 requests`);
  console.log(`retries: 100/100 succeeded, backend saw ${seen} calls`);
});

test('a timeout answers 504 in time', async () => {
  const host = 'slow.test.local';
  await service(host, [{ name: 'slow-1', delayMs: 3000 }]);
  rules('slow-rules.yaml', [{ ...meta('VirtualService', 'slow'), spec: { hosts: [host], http: [{ route: [{ destination: { host } }], timeout: '300ms' }] } }]);
  await ready(host, (a) => a.status === 504);
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    const a = await send(host);
    const took = performance.now() - t0;
    assert.equal(a.status, 504);
    // Tolerance: 300 ms deadline, answered within 300..1500 ms (the backend takes 3 s).
    assert.ok(took >= 280 && took < 1500, `504 after ${Math.round(took)} ms`);
  }
});

test('fault injection aborts and delays a percentage of requests', async () => {
  const host = 'fault.test.local';
  await service(host, [{ name: 'fault-1' }]);
  rules('fault-rules.yaml', [
    {
      ...meta('VirtualService', 'fault'),
      spec: {
        hosts: [host],
        http: [{ route: [{ destination: { host } }], fault: { abort: { httpStatus: 418, percentage: { value: 30 } }, delay: { fixedDelay: '150ms', percentage: { value: 40 } } } }],
      },
    },
  ]);
  await ready(host, (a) => a.status === 418);
  let aborted = 0;
  let delayed = 0;
  const n = 300;
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const a = await send(host);
    if (performance.now() - t0 >= 140) delayed++;
    if (a.status === 418) aborted++;
    else assert.equal(a.status, 200);
  }
  // Tolerance: 30% ± 12 aborted, 40% ± 12 delayed, over 300 requests (sd ≈ 2.8%).
  const pa = (aborted / n) * 100;
  const pd = (delayed / n) * 100;
  assert.ok(pa >= 18 && pa <= 42, `aborted ${pa}%`);
  assert.ok(pd >= 28 && pd <= 52, `delayed ${pd}%`);
  console.log(`fault: aborted ${pa.toFixed(1)}%, delayed ${pd.toFixed(1)}% of ${n}`);
});

test('a mirror receives copies of a percentage of requests', async () => {
  const host = 'main.test.local';
  const shadow = 'shadow.test.local';
  const { backends: mainB } = await service(host, [{ name: 'main-1' }]);
  const { backends: shadowB } = await service(shadow, [{ name: 'shadow-1' }]);
  rules('mirror-rules.yaml', [
    { ...meta('VirtualService', 'mirror'), spec: { hosts: [host], http: [{ route: [{ destination: { host } }], mirror: { host: shadow }, mirrorPercentage: { value: 50 } }] } },
  ]);
  await waitUntil(() => send(host).then(() => shadowB[0]!.requests), (n) => n > 0, { ...PROPAGATION, what: 'mirror applied' });
  const m0 = mainB[0]!.requests;
  const s0 = shadowB[0]!.requests;
  const counts = await tally(200, () => send(host));
  assert.deepEqual(counts, { 'main-1': 200 });
  await new Promise((r) => setTimeout(r, 500));
  const copies = shadowB[0]!.requests - s0;
  // Tolerance: 50% ± 15 of 200 requests mirrored.
  assert.equal(mainB[0]!.requests - m0, 200);
  assert.ok(copies >= 70 && copies <= 130, `shadow got ${copies} copies of 200`);
  console.log(`mirror: ${copies}/200 copies`);
});

test('consistent hash keeps each user on one endpoint', async () => {
  const host = 'sticky.test.local';
  await service(host, [{ name: 'sticky-1' }, { name: 'sticky-2' }, { name: 'sticky-3' }]);
  rules('sticky-rules.yaml', [{ ...meta('DestinationRule', 'sticky'), spec: { host, trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: 'x-user' } } } } }]);
  await waitUntil(() => tally(12, () => send(host, { headers: { 'x-user': 'alice' } })), (c) => Object.keys(c).length === 1 && (c['sticky-1'] ?? c['sticky-2'] ?? c['sticky-3']) === 12, {
    ...PROPAGATION,
    what: 'alice on one endpoint',
  });
  const homes = new Set<string>();
  for (let u = 0; u < 12; u++) {
    const counts = await tally(15, () => send(host, { headers: { 'x-user': `user-${u}` } }));
    assert.equal(Object.keys(counts).length, 1, `user-${u} spread: ${JSON.stringify(counts)}`);
    homes.add(Object.keys(counts)[0]!);
  }
  // 12 users on 3 endpoints: all on one endpoint has probability < 1e-5 with a fair ring.
  assert.ok(homes.size >= 2, `every user hashed to ${[...homes].join(',')}`);
  console.log(`consistent hash: 12 users × 15 requests, each on one endpoint; endpoints used ${[...homes].join(', ')}`);
});

test('outlier detection ejects a failing endpoint', async () => {
  const host = 'outlier.test.local';
  const { backends } = await service(host, [{ name: 'good-1' }, { name: 'good-2' }, { name: 'bad-1', failEvery: 1 }]);
  rules('outlier-rules.yaml', [
    {
      ...meta('DestinationRule', 'outlier'),
      spec: { host, trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN' }, outlierDetection: { consecutive5xxErrors: 2, interval: '1s', baseEjectionTime: '60s', maxEjectionPercent: 50 } } },
    },
  ]);
  await ready(host);
  const bad = backends[2]!;
  await waitUntil(
    async () => {
      const before = bad.requests;
      await tally(12, () => send(host));
      return bad.requests - before;
    },
    (n) => n === 0,
    { ...PROPAGATION, what: 'bad-1 ejected' },
  );
  const counts = await tally(90, () => send(host));
  // Tolerance: none of 90 requests reaches the ejected endpoint; both good ones share them.
  assert.equal(counts['bad-1'], undefined, JSON.stringify(counts));
  assert.equal((counts['good-1'] ?? 0) + (counts['good-2'] ?? 0), 90, JSON.stringify(counts));
  console.log(`outlier: after ejection ${JSON.stringify(counts)}`);
});

test('a rule Envoy would reject is refused before sending: reported, never NACKed, the host keeps its default route', async () => {
  const host = 'refused.test.local';
  await service(host, [{ name: 'refused-1' }]);
  rules('refused-rules.yaml', [
    { ...meta('VirtualService', 'refused'), spec: { hosts: [host], http: [{ route: [{ destination: { host } }], headers: { request: { set: { host: 'elsewhere' } } } }] } },
  ]);
  const z = await waitUntil(() => isthmus.json<{ xdsProblems: { name: string; reason: string }[] }>('/debug/registryz'), (r) => r.xdsProblems.some((p) => p.name === 'VirtualService default/refused'), {
    ...PROPAGATION,
    what: 'the refusal in /debug/registryz',
  });
  assert.match(z.xdsProblems.find((p) => p.name === 'VirtualService default/refused')!.reason, /cannot be modified by Envoy/);
  await ready(host);
  const conns = await isthmus.syncz();
  for (const c of conns) for (const t of c.types) assert.notEqual(t.status, 'NACKED', JSON.stringify(t));
});

test('redirect, prefix rewrite, authority rewrite and request header operations', async () => {
  const host = 'rewrite.test.local';
  await service(host, [{ name: 'rewrite-1' }]);
  rules('rewrite-rules.yaml', [
    {
      ...meta('VirtualService', 'rewrite'),
      spec: {
        hosts: [host],
        http: [
          { match: [{ uri: { prefix: '/old' } }], redirect: { uri: '/new', authority: 'moved.test.local' } },
          {
            match: [{ uri: { prefix: '/api/' } }],
            rewrite: { uri: '/v2/', authority: 'backend.internal' },
            route: [{ destination: { host } }],
            headers: { request: { set: { 'x-set': 'yes' }, add: { 'x-added': 'one' }, remove: ['x-secret'] } },
          },
        ],
      },
    },
  ]);
  await waitUntil(() => send(host, { path: '/old/page' }), (a) => a.status === 301, { ...PROPAGATION, what: 'redirect applied' });
  const a = await send(host, { path: '/api/users?id=7', headers: { 'x-secret': 'hush', 'x-set': 'no' } });
  assert.equal(a.status, 200);
  const body = JSON.parse(a.body!) as { path: string; host: string; headers: Record<string, string> };
  assert.equal(body.path, '/v2/users?id=7');
  assert.equal(body.host, 'backend.internal');
  assert.equal(body.headers['x-set'], 'yes');
  assert.equal(body.headers['x-added'], 'one');
  assert.equal(body.headers['x-secret'], undefined);
  assert.equal((await send(host, { path: '/other' })).status, 200);
});

test('every DestinationRule traffic policy field reaches Envoy without a NACK, and traffic flows', async () => {
  const host = 'policy.test.local';
  const { port } = await service(host, [{ name: 'policy-1', labels: { version: 'v1' } }, { name: 'policy-2', labels: { version: 'v2' } }]);
  const pool = {
    tcp: { maxConnections: 100, connectTimeout: '2s', tcpKeepalive: { probes: 3, time: '60s', interval: '10s' }, maxConnectionDuration: '1h', idleTimeout: '5m' },
    http: { http1MaxPendingRequests: 50, http2MaxRequests: 200, maxRequestsPerConnection: 10, maxRetries: 3, idleTimeout: '30s' },
  };
  rules('policy-rules.yaml', [
    {
      ...meta('DestinationRule', 'policy'),
      spec: {
        host,
        trafficPolicy: {
          loadBalancer: { simple: 'LEAST_REQUEST' },
          connectionPool: pool,
          outlierDetection: { consecutive5xxErrors: 5, consecutiveGatewayErrors: 3, interval: '10s', baseEjectionTime: '30s', maxEjectionPercent: 50, minHealthPercent: 20 },
          portLevelSettings: [{ port: { number: port.number }, loadBalancer: { simple: 'RANDOM' } }],
        },
        subsets: [
          { name: 'v1', labels: { version: 'v1' }, trafficPolicy: { loadBalancer: { consistentHash: { httpCookie: { name: 'session', ttl: '60s', path: '/' } } } } },
          { name: 'v2', labels: { version: 'v2' }, trafficPolicy: { loadBalancer: { consistentHash: { useSourceIp: true } } } },
        ],
      },
    },
    {
      ...meta('VirtualService', 'policy'),
      spec: { hosts: [host], http: [{ match: [{ queryParams: { v: { exact: '2' } } }], route: [{ destination: { host, subset: 'v2' } }] }, { route: [{ destination: { host, subset: 'v1' } }] }] },
    },
  ]);
  await waitUntil(() => send(host, { path: '/?v=2' }), (a) => a.backend === 'policy-2', { ...PROPAGATION, what: 'query parameter match to v2' });
  const v1 = await tally(20, () => send(host));
  assert.deepEqual(v1, { 'policy-1': 20 });
  for (const c of await isthmus.syncz()) for (const t of c.types) assert.notEqual(t.status, 'NACKED', JSON.stringify(t));
});
