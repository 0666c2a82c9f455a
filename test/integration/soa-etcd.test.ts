// Dubbo providers in a real etcd reach real backends through a real Envoy configured by
// Isthmus: raw Dubbo-layout keys and registrar-written ones; etcd stopped mid-test (requests
// keep flowing); a registrar killed during the outage leaves once etcd is back and its lease
// expires; a clean lease expiry removes an endpoint from Envoy; a stopped registrar revokes.
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Etcd3, Lease, Watcher } from 'etcd3';
import { buildProviderUrl, providerKey, type ProviderSpec } from '../../src/registries/soa/provider.ts';
import { startBackend, type Backend } from '../helpers/backends.ts';
import { grpcRequest, tally, tcpRequest } from '../helpers/clients.ts';
import type { Envoy } from '../helpers/envoy.ts';
import { spawnEtcdRegistrar, startEtcd, type EtcdServer } from '../helpers/etcd.ts';
import { cli, MAIN, ManifestDir, REPO, serviceEntry, type Isthmus } from '../helpers/isthmus.ts';
import { closeAll, clusterName, startIsthmus, startSidecar } from '../helpers/mesh.ts';
import { freePort, isListening } from '../helpers/ports.ts';
import { assertNoLeftovers, dumpLogsOnFailure, spawnTracked, stopAll, type Proc } from '../helpers/processes.ts';
import { GiveUp, waitFor, waitUntil } from '../helpers/wait.ts';

const PROPAGATION = { timeoutMs: 20_000, intervalMs: 100 };
const TTL_S = 2; // registrars' lease TTL
const DEBOUNCE = { debounceQuietMs: 100, debounceMaxMs: 500 };
const ORDERS = 'orders.rpc.cluster.local';
const GREETER = 'greeter.rpc.cluster.local';
const ECHO_IFACE = 'isthmus.test.echo.rpc.cluster.local';

let etcd: EtcdServer;
let kv: Etcd3;
let appLease: Lease;
let isthmus: Isthmus;
let envoy: Envoy;
let outbound: number;
let dubboPort: number;
let triPort: number;
const backends: Backend[] = [];
let tcp1: Backend, tcp2: Backend, grpc1: Backend, grpc2: Backend;
let registrarOrders: Proc;
let useCli = false;

/** Registers providers from a separate process: `isthmus register` when this build has it. */
async function register(name: string, spec: ProviderSpec): Promise<Proc> {
  if (!useCli) return spawnEtcdRegistrar(name, { endpoints: [etcd.endpoint], root: '/dubbo', providers: [spec], ttlSeconds: TTL_S });
  const args = [
    'register', '--registry', etcd.url('/dubbo'), '--application', spec.application, '--address', spec.address, '--port', String(spec.port),
    '--interface', [spec.interface, spec.version ?? '', spec.group ?? ''].join(':').replace(/:+$/, ''),
    '--protocol', spec.protocol ?? 'dubbo', '--ttl', `${TTL_S}s`,
    ...(spec.methods?.length ? ['--methods', spec.methods.join(',')] : []),
  ];
  const proc = spawnTracked(name, process.execPath, [MAIN, ...args], { cwd: REPO });
  await waitFor(
    () => {
      if (proc.exit) throw new GiveUp(`exited with ${proc.exit.code ?? proc.exit.signal}: ${proc.tail()}`);
      return proc.output().includes('"msg":"registered"');
    },
    { timeoutMs: 20_000, intervalMs: 50, what: `${name} to register` },
  );
  return proc;
}

interface RegistryStatusJson {
  id: string;
  synced: boolean;
  error?: string;
}
async function etcdStatus(on = isthmus): Promise<RegistryStatusJson | undefined> {
  const z = (await on.registryz()) as { registries: RegistryStatusJson[] };
  return z.registries.find((r) => r.id.startsWith('etcd://'));
}

const endpoints = (cluster: string): Promise<string[]> => envoy.endpointsOf(cluster);

/** Times at which etcd deleted keys under the root (lease expiry or revoke), seen by a watch of the test's own. */
const deletedAt = new Map<string, number>();
let deletions: Watcher | undefined;

before(async () => {
  etcd = await startEtcd({ name: 'etcd-mesh' });
  kv = etcd.client();
  useCli = await cli(['register', '--help']).then(
    () => true,
    () => false,
  );
  // Dubbo (opaque TCP) providers share one port on two addresses; the sidecar listens on it on 127.0.0.1.
  dubboPort = await freePort();
  triPort = await freePort();
  tcp1 = await startBackend('tcp', 'orders-1', { host: '127.0.0.2', port: dubboPort });
  tcp2 = await startBackend('tcp', 'orders-2', { host: '127.0.0.3', port: dubboPort });
  grpc1 = await startBackend('grpc', 'greeter-1', { host: '127.0.0.4', port: triPort });
  grpc2 = await startBackend('grpc', 'greeter-2', { host: '127.0.0.5', port: triPort });
  backends.push(tcp1, tcp2, grpc1, grpc2);

  // Raw keys in the Dubbo layout, as a Dubbo application writes them: one bound to a lease the
  // "application" (this test) keeps alive, one plain.
  appLease = kv.lease(30);
  const orders1 = buildProviderUrl({ address: tcp1.host, port: dubboPort, interface: 'com.acme.Orders', application: 'orders', methods: ['place', 'cancel'], version: '1.0.0' });
  await appLease.put(providerKey('/dubbo', 'com.acme.Orders', orders1)).value(orders1).exec();
  const greeter1 = buildProviderUrl({ protocol: 'tri', address: grpc1.host, port: triPort, interface: 'isthmus.test.Echo', application: 'greeter', methods: ['Call'] });
  await kv.put(providerKey('/dubbo', 'isthmus.test.Echo', greeter1)).value(greeter1).exec();
  // And one written by a registrar for an app that cannot register itself.
  registrarOrders = await register('register-orders-2', { address: tcp2.host, port: dubboPort, interface: 'com.acme.Orders', application: 'orders', methods: ['place', 'cancel'], version: '1.0.0' });

  isthmus = await startIsthmus({ name: 'isthmus-etcd', registries: [etcd.url('/dubbo')], ...DEBOUNCE });
  const sidecar = await startSidecar(isthmus, 'sidecar-etcd');
  envoy = sidecar.envoy;
  outbound = sidecar.ports.outbound;
});

afterEach(dumpLogsOnFailure);

after(async () => {
  await deletions?.cancel().catch(() => undefined);
  appLease?.release();
  kv?.close();
  await stopAll();
  await closeAll(backends);
  assertNoLeftovers();
});

async function watchDeletions(): Promise<void> {
  deletions = await kv.watch().prefix('/dubbo/').create();
  deletions.on('delete', (k) => deletedAt.set(k.key.toString(), Date.now()));
}

test('raw Dubbo keys and registrar keys reach their backends through Envoy (dubbo as TCP by port, tri as gRPC by name)', async () => {
  process.stderr.write(`# registrar used: ${useCli ? 'isthmus register' : 'EtcdRegistrar in a child process (isthmus register not wired yet)'}\n`);
  await waitUntil(() => endpoints(clusterName(ORDERS, dubboPort)), (e) => e.length === 2, { ...PROPAGATION, what: 'Envoy to know both orders providers' });
  await waitFor(() => isListening(dubboPort), { ...PROPAGATION, what: `the sidecar's TCP listener on 127.0.0.1:${dubboPort}` });
  const counts = await waitUntil(
    () => tally(20, () => tcpRequest(dubboPort, 'order')),
    (c) => (c['orders-1'] ?? 0) > 0 && (c['orders-2'] ?? 0) > 0 && (c['orders-1'] ?? 0) + (c['orders-2'] ?? 0) === 20,
    { ...PROPAGATION, what: 'TCP to 127.0.0.1:dubboPort spread over orders-1 (raw key) and orders-2 (registrar)' },
  );
  assert.deepEqual(Object.keys(counts).sort(), ['orders-1', 'orders-2']);
  // tri:// is gRPC: routed by the application's name and by the interface's own name.
  const byApp = await waitUntil(() => grpcRequest(outbound, GREETER), (a) => a.backend === 'greeter-1', { ...PROPAGATION, what: `gRPC :authority ${GREETER}` });
  assert.equal(byApp.status, 0);
  const byIface = await waitUntil(() => grpcRequest(outbound, ECHO_IFACE), (a) => a.backend === 'greeter-1', { ...PROPAGATION, what: `gRPC :authority ${ECHO_IFACE}` });
  assert.equal(byIface.status, 0);
  const status = await etcdStatus();
  assert.equal(status?.id, etcd.url('/dubbo'));
  assert.equal(status?.synced, true);
  assert.equal(status?.error, undefined);
});

test('etcd stopped: requests keep flowing to the known providers; a registrar killed meanwhile leaves once etcd is back and its lease expires', async () => {
  await etcd.stop();
  const down = await waitUntil(etcdStatus, (s) => s?.error !== undefined, { ...PROPAGATION, what: 'Isthmus to report the etcd registry as unavailable' });
  assert.equal(down!.synced, true);
  assert.match(down!.error!, new RegExp(`cannot reach etcd at ${etcd.endpoint}`));
  // Everything known keeps working.
  const during = await tally(20, () => tcpRequest(dubboPort, 'order'));
  assert.equal((during['orders-1'] ?? 0) + (during['orders-2'] ?? 0), 20, JSON.stringify(during));
  assert.equal((await grpcRequest(outbound, GREETER)).backend, 'greeter-1');
  assert.deepEqual(await endpoints(clusterName(ORDERS, dubboPort)), [tcp1.address, tcp2.address]);

  // The app behind orders-2 (its registrar) dies while nobody can tell etcd.
  registrarOrders.kill('SIGKILL');
  await registrarOrders.exited;
  assert.deepEqual(await endpoints(clusterName(ORDERS, dubboPort)), [tcp1.address, tcp2.address], 'nothing removed while etcd is down');

  await etcd.start();
  const t0 = Date.now();
  await waitUntil(() => endpoints(clusterName(ORDERS, dubboPort)), (e) => e.length === 1 && e[0] === tcp1.address, {
    ...PROPAGATION,
    what: 'Envoy to drop orders-2 once its lease expired',
  });
  const gone = Date.now() - t0;
  process.stderr.write(`# etcd back → killed registrar's endpoint gone from Envoy after ${gone} ms (lease TTL ${TTL_S} s, renewed by etcd on restart; debounce 100/500 ms)\n`);
  const status = await waitUntil(etcdStatus, (s) => s?.error === undefined, { ...PROPAGATION, what: 'the registry healthy again' });
  assert.equal(status!.synced, true);
  const afterOutage = await tally(10, () => tcpRequest(dubboPort, 'order'));
  assert.deepEqual(afterOutage, { 'orders-1': 10 });
  // The raw providers (a kept-alive lease, and a plain key) never left.
  assert.equal((await grpcRequest(outbound, GREETER)).backend, 'greeter-1');
});

test('a lease expiry removes an endpoint from Envoy within the TTL plus the push debounce', async () => {
  await watchDeletions();
  const spec: ProviderSpec = { protocol: 'tri', address: grpc2.host, port: triPort, interface: 'isthmus.test.Echo', application: 'greeter', methods: ['Call'] };
  const proc = await register('register-greeter-2', spec);
  const cluster = clusterName(GREETER, triPort);
  await waitUntil(() => endpoints(cluster), (e) => e.length === 2, { ...PROPAGATION, what: 'greeter-2 in Envoy' });
  const seen = await waitUntil(
    () => tally(20, () => grpcRequest(outbound, GREETER)),
    (c) => (c['greeter-2'] ?? 0) > 0,
    { ...PROPAGATION, what: 'requests to reach greeter-2' },
  );
  assert.equal((seen['greeter-1'] ?? 0) + (seen['greeter-2'] ?? 0), 20);

  deletedAt.clear();
  proc.kill('SIGKILL'); // no revoke: only the lease's expiry removes it
  await proc.exited;
  const t0 = Date.now();
  await waitUntil(() => endpoints(cluster), (e) => e.length === 1 && e[0] === grpc1.address, { ...PROPAGATION, what: 'Envoy to drop greeter-2' });
  const gone = Date.now() - t0;
  const expiredAt = [...deletedAt.values()][0];
  const afterExpiry = expiredAt === undefined ? 'unseen' : `${Date.now() - expiredAt}`;
  process.stderr.write(`# registrar killed → endpoint gone from Envoy /clusters after ${gone} ms; lease expiry (etcd's delete) → gone after ≤${afterExpiry} ms (TTL ${TTL_S} s, debounce 100/500 ms)\n`);
  assert.equal(deletedAt.size, 1, 'etcd deleted exactly the registrar key');
  assert.ok(gone < TTL_S * 1000 + 3000, `gone after ${gone} ms`);
  const answers = await tally(10, () => grpcRequest(outbound, GREETER));
  assert.deepEqual(answers, { 'greeter-1': 10 });
});

test('a registrar stopped cleanly revokes its lease: the endpoint leaves at once, not after the TTL', async () => {
  const proc = await register('register-orders-3', { address: tcp2.host, port: dubboPort, interface: 'com.acme.Orders', application: 'orders', methods: ['place', 'cancel'], version: '1.0.0' });
  const cluster = clusterName(ORDERS, dubboPort);
  await waitUntil(() => endpoints(cluster), (e) => e.length === 2, { ...PROPAGATION, what: 'orders-2 back in Envoy' });
  const t0 = Date.now();
  await proc.stop();
  assert.equal(proc.exit?.code, 0, proc.tail());
  await waitUntil(() => endpoints(cluster), (e) => e.length === 1 && e[0] === tcp1.address, { ...PROPAGATION, what: 'Envoy to drop orders-2' });
  const gone = Date.now() - t0;
  process.stderr.write(`# registrar SIGTERM → lease revoked → endpoint gone from Envoy after ${gone} ms\n`);
  assert.ok(gone < TTL_S * 1000, `gone after ${gone} ms: before the TTL could have expired`);
});

test('etcd unreachable at start: Isthmus serves the other registries after its sync timeout and reports the source as not synced', async () => {
  const deadPort = await freePort();
  const manifests = new ManifestDir();
  manifests.write('web.yaml', serviceEntry('web', { hosts: ['web.etcd-test.local'], ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], endpoints: [{ address: '127.0.0.9' }] }));
  const t0 = Date.now();
  const other = await startIsthmus({ name: 'isthmus-etcd-down', registries: [manifests.url, `etcd://127.0.0.1:${deadPort}/dubbo`], args: ['--sync-timeout', '1s'] });
  const readyMs = Date.now() - t0;
  const z = (await other.registryz()) as { registries: RegistryStatusJson[]; services: Array<{ hostname: string }> };
  const reg = z.registries.find((r) => r.id === `etcd://127.0.0.1:${deadPort}/dubbo`);
  assert.equal(reg?.synced, false);
  assert.match(reg?.error ?? '', new RegExp(`cannot reach etcd at 127\\.0\\.0\\.1:${deadPort}: .*(ECONNREFUSED|UNAVAILABLE)`));
  assert.ok(z.services.some((s) => s.hostname === 'web.etcd-test.local'), 'the file registry is served');
  process.stderr.write(`# etcd unreachable: Isthmus ready (serving the file registry) after ${readyMs} ms with --sync-timeout 1s\n`);
  await other.stop();
});
