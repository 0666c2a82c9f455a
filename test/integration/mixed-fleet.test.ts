// A mixed fleet: one application with VM providers in the SOA registry (etcd) and a migrated
// instance from another registry (WorkloadEntry). Envoy sees one cluster holding both, each
// endpoint labelled with its source; moving the app instance by instance, under continuous
// calls, fails none of them and nothing changes for the caller.
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Etcd3 } from 'etcd3';
import { buildProviderUrl, providerKey } from '../../src/registries/soa/provider.ts';
import { startBackend, type Backend } from '../helpers/backends.ts';
import { tally, tcpRequest } from '../helpers/clients.ts';
import type { Envoy } from '../helpers/envoy.ts';
import { startEtcd, type EtcdServer } from '../helpers/etcd.ts';
import { ManifestDir, type Isthmus } from '../helpers/isthmus.ts';
import { closeAll, clusterName, startIsthmus, startSidecar } from '../helpers/mesh.ts';
import { freePort, isListening } from '../helpers/ports.ts';
import { assertNoLeftovers, dumpLogsOnFailure, stopAll } from '../helpers/processes.ts';
import { waitFor, waitUntil } from '../helpers/wait.ts';

const APP = 'shop.rpc.cluster.local';
const IFACE = 'com.shop.Cart';
const PROPAGATION = { timeoutMs: 20_000, intervalMs: 100 };
const manifests = new ManifestDir();
const backends: Backend[] = [];
let etcd: EtcdServer;
let kv: Etcd3;
let isthmus: Isthmus;
let envoy: Envoy;
let port: number;

const vmKey = (host: string): string => providerKey('/dubbo', IFACE, buildProviderUrl({ address: host, port, interface: IFACE, application: 'shop', methods: ['add'] }, 1));

/** The application as the mesh side declares it, so it outlives its last VM provider. */
function declaration(): object {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'ServiceEntry',
    metadata: { name: 'shop', namespace: 'default' },
    spec: { hosts: [APP], location: 'MESH_INTERNAL', resolution: 'STATIC', ports: [{ number: port, name: 'dubbo', protocol: 'TCP' }], workloadSelector: { labels: { app: 'shop' } } },
  };
}

function pod(name: string, host: string): object {
  return { apiVersion: 'networking.istio.io/v1', kind: 'WorkloadEntry', metadata: { name, namespace: 'default' }, spec: { address: host, labels: { app: 'shop' }, ports: { dubbo: port } } };
}

before(async () => {
  port = await freePort();
  for (const [name, host] of [['vm-1', '127.0.0.81'], ['vm-2', '127.0.0.82'], ['pod-1', '127.0.0.83'], ['pod-2', '127.0.0.84']] as const) {
    backends.push(await startBackend('tcp', name, { host, port }));
  }
  etcd = await startEtcd({ name: 'etcd-mixed' });
  kv = etcd.client();
  await kv.put(vmKey('127.0.0.81')).value('');
  await kv.put(vmKey('127.0.0.82')).value('');
  manifests.write('shop.yaml', declaration());
  manifests.write('pods.yaml', [pod('pod-1', '127.0.0.83')]);
  isthmus = await startIsthmus({ registries: [etcd.url('/dubbo'), manifests.url], debounceQuietMs: 50, debounceMaxMs: 500 });
  ({ envoy } = await startSidecar(isthmus, 'caller'));
  await waitFor(() => isListening(port), { ...PROPAGATION, what: `the sidecar's TCP listener for ${APP} on 127.0.0.1:${port}` });
});

afterEach(dumpLogsOnFailure);
after(async () => {
  kv?.close();
  await stopAll();
  await closeAll(backends);
  assertNoLeftovers();
});

interface RegistryzEndpoint {
  address: string;
  origin: { registry: string };
}

async function endpointSources(): Promise<Record<string, string>> {
  const model = await isthmus.json<{ services: { hostname: string; endpoints: RegistryzEndpoint[] }[] }>('/debug/registryz');
  const svc = model.services.find((s) => s.hostname === APP);
  return Object.fromEntries((svc?.endpoints ?? []).map((e) => [e.address, e.origin.registry.split(':')[0]!]));
}

test('one cluster holds the VM providers and the migrated instance, each labelled with its source', async () => {
  const cluster = clusterName(APP, port);
  await waitUntil(() => envoy.endpointsOf(cluster), (e) => e.length === 3, { ...PROPAGATION, what: `${cluster} with 3 endpoints` });
  const dump = JSON.stringify(await envoy.configDump('include_eds'));
  assert.match(dump, new RegExp(`"registry":"${etcd.url('/dubbo').replace(/[/.]/g, '\\$&')}"`));
  assert.match(dump, /"registry":"file:\/\//);
  assert.deepEqual(await endpointSources(), { '127.0.0.81': 'etcd', '127.0.0.82': 'etcd', '127.0.0.83': 'file' });
  const counts = await waitUntil(() => tally(30, () => tcpRequest(port, 'cart')), (c) => ['vm-1', 'vm-2', 'pod-1'].every((b) => (c[b] ?? 0) > 0), {
    ...PROPAGATION,
    what: 'calls spread over vm-1, vm-2 and pod-1',
  });
  assert.equal(Object.values(counts).reduce((a, b) => a + b, 0), 30);
});

test('migrating instance by instance under continuous calls fails none of them', async () => {
  let stop = false;
  let ok = 0;
  const failures: string[] = [];
  const answeredBy = new Set<string>();
  const load = (async () => {
    while (!stop) {
      const a = await tcpRequest(port, 'cart');
      if (a.backend) {
        ok++;
        answeredBy.add(a.backend);
      } else failures.push(a.error ?? 'no answer');
    }
  })();
  const cluster = clusterName(APP, port);
  const expect = async (addresses: string[], step: string): Promise<void> => {
    await waitUntil(() => envoy.endpointsOf(cluster), (e) => e.join() === addresses.join(), { ...PROPAGATION, what: `${step}: Envoy holding ${addresses.join(', ')}` });
  };
  try {
    manifests.write('pods.yaml', [pod('pod-1', '127.0.0.83'), pod('pod-2', '127.0.0.84')]);
    await expect(['127.0.0.81:' + port, '127.0.0.82:' + port, '127.0.0.83:' + port, '127.0.0.84:' + port], 'pod-2 joins');
    await kv.delete().key(vmKey('127.0.0.81'));
    await expect(['127.0.0.82:' + port, '127.0.0.83:' + port, '127.0.0.84:' + port], 'vm-1 retired');
    await kv.delete().key(vmKey('127.0.0.82'));
    await expect(['127.0.0.83:' + port, '127.0.0.84:' + port], 'vm-2 retired');
    assert.deepEqual(await endpointSources(), { '127.0.0.83': 'file', '127.0.0.84': 'file' });
  } finally {
    stop = true;
    await load;
  }
  assert.deepEqual(failures, [], `${failures.length} failed calls of ${ok + failures.length}`);
  assert.ok(ok > 50, `only ${ok} calls made during the migration`);
  assert.ok(answeredBy.has('vm-1') && answeredBy.has('pod-2'), `answered by ${[...answeredBy].join(', ')}`);
  // After the last VM left, every new call lands on a pod (the load has stopped, so
  // round robin alternates between the two).
  const after = await tally(20, () => tcpRequest(port, 'cart'));
  assert.deepEqual(Object.keys(after).sort(), ['pod-1', 'pod-2']);
});
