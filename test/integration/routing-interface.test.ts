// A per-interface canary through a real Envoy: gRPC providers of one RPC interface in etcd
// (Dubbo layout), labelled by a version parameter; a VirtualService for the interface name
// sends 5% of its calls to version-2 providers — by the interface's own name and, by gRPC
// path `/<interface>/`, inside its application's name.
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Etcd3 } from 'etcd3';
import { buildProviderUrl, providerKey } from '../../src/registries/soa/provider.ts';
import { startBackend, type Backend } from '../helpers/backends.ts';
import { echoCall, echoClient } from '../helpers/clients.ts';
import { startEtcd, type EtcdServer } from '../helpers/etcd.ts';
import type { Isthmus } from '../helpers/isthmus.ts';
import { closeAll, ManifestDir, startIsthmus, startSidecar } from '../helpers/mesh.ts';
import { freePort } from '../helpers/ports.ts';
import { assertNoLeftovers, dumpLogsOnFailure, stopAll } from '../helpers/processes.ts';
import { waitUntil } from '../helpers/wait.ts';

const PROPAGATION = { timeoutMs: 20_000, intervalMs: 200 };
const APP = 'greeter.rpc.cluster.local';
const IFACE = 'isthmus.test.echo.rpc.cluster.local';
const manifests = new ManifestDir();
const backends: Backend[] = [];
let etcd: EtcdServer;
let kv: Etcd3;
let isthmus: Isthmus;
let outbound: number;

/** `n` gRPC calls on one channel with `authority`; answers counted per backend. */
async function calls(n: number, authority: string): Promise<Record<string, number>> {
  const client = echoClient(`127.0.0.1:${outbound}`, authority);
  const counts: Record<string, number> = {};
  try {
    for (let i = 0; i < n; i++) {
      const a = await echoCall(client);
      const key = a.backend ?? `!${a.error ?? a.status}`;
      counts[key] = (counts[key] ?? 0) + 1;
    }
  } finally {
    client.close();
  }
  return counts;
}

before(async () => {
  etcd = await startEtcd({ name: 'etcd-routing' });
  kv = etcd.client();
  const port = await freePort();
  // Four version-1 providers and one version-2 provider of isthmus.test.Echo, one application.
  for (let i = 1; i <= 5; i++) {
    const version = i === 5 ? '2' : '1';
    const b = await startBackend('grpc', `greeter-v${version}-${i}`, { host: `127.0.0.${40 + i}`, port });
    backends.push(b);
    const url = buildProviderUrl({ protocol: 'tri', address: b.host, port, interface: 'isthmus.test.Echo', application: 'greeter', methods: ['Call'], params: { 'app-version': version } });
    await kv.put(providerKey('/dubbo', 'isthmus.test.Echo', url)).value(url).exec();
  }
  const meta = (kind: string, name: string): object => ({ apiVersion: 'networking.istio.io/v1', kind, metadata: { name, namespace: 'default' } });
  manifests.write('canary.yaml', [
    { ...meta('DestinationRule', 'echo'), spec: { host: IFACE, subsets: [{ name: 'v1', labels: { 'app-version': '1' } }, { name: 'v2', labels: { 'app-version': '2' } }] } },
    {
      ...meta('VirtualService', 'echo'),
      spec: { hosts: [IFACE], http: [{ route: [{ destination: { host: IFACE, subset: 'v1' }, weight: 95 }, { destination: { host: IFACE, subset: 'v2' }, weight: 5 }] }] },
    },
  ]);
  isthmus = await startIsthmus({ name: 'isthmus-routing-iface', registries: [etcd.url('/dubbo'), manifests.url], debounceQuietMs: 100, debounceMaxMs: 500 });
  ({ ports: { outbound } } = await startSidecar(isthmus, 'sidecar-routing-iface'));
});

afterEach(dumpLogsOnFailure);

after(async () => {
  kv?.close();
  await stopAll();
  await closeAll(backends);
  assertNoLeftovers();
});

function share(counts: Record<string, number>, prefix: string): number {
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  const hit = Object.entries(counts).filter(([k]) => k.startsWith(prefix)).reduce((a, [, v]) => a + v, 0);
  return (hit / total) * 100;
}

for (const [what, authority] of [
  ['by the interface name', IFACE],
  ['by the application name and gRPC path', APP],
] as const) {
  test(`a per-interface canary sends 5% of calls to version 2, ${what}`, async () => {
    await waitUntil(() => calls(5, authority), (c) => Object.keys(c).every((k) => k.startsWith('greeter-')), { ...PROPAGATION, what: `${authority} routed` });
    const n = 600;
    const counts = await calls(n, authority);
    const total = Object.entries(counts).filter(([k]) => k.startsWith('greeter-')).reduce((a, [, v]) => a + v, 0);
    assert.equal(total, n, JSON.stringify(counts));
    const v2 = share(counts, 'greeter-v2-');
    // Tolerance: 5% ± 3 over 600 calls (binomial sd 0.9%). Without the rule v2 would get 20%.
    assert.ok(v2 >= 2 && v2 <= 8, `version-2 share ${v2.toFixed(1)}% outside 5% ± 3: ${JSON.stringify(counts)}`);
    console.log(`interface canary ${what}: v2 ${v2.toFixed(1)}% of ${n} (${JSON.stringify(counts)})`);
  });
}
