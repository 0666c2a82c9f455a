// Dubbo providers in a real ZooKeeper reach real backends through a real Envoy configured
// by Isthmus: raw Dubbo-layout nodes and registrar-written ones; ZooKeeper stopped mid-test
// (requests keep flowing); a registrar killed during the outage leaves once ZooKeeper is
// back and its session expires; a session expiry removes an endpoint from Envoy.
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ProviderSpec } from '../../src/registries/soa/provider.ts';
import { startBackend, type Backend } from '../helpers/backends.ts';
import { grpcRequest, tally, tcpRequest } from '../helpers/clients.ts';
import type { Envoy } from '../helpers/envoy.ts';
import { MAIN, ManifestDir, REPO, serviceEntry, type Isthmus } from '../helpers/isthmus.ts';
import { closeAll, clusterName, startIsthmus, startSidecar } from '../helpers/mesh.ts';
import { freePort, isListening } from '../helpers/ports.ts';
import { assertNoLeftovers, dumpLogsOnFailure, spawnTracked, stopAll, type Proc } from '../helpers/processes.ts';
import { GiveUp, waitFor, waitUntil } from '../helpers/wait.ts';
import { DubboWriter, dubboUrl, startZooKeeper, type ZooKeeperServer } from '../helpers/zookeeper.ts';

const PROPAGATION = { timeoutMs: 20_000, intervalMs: 100 };
const SESSION_MS = 2000; // registrars' session timeout (--ttl)
const ORDERS = 'orders.rpc.cluster.local';
const GREETER = 'greeter.rpc.cluster.local';
const ECHO_IFACE = 'isthmus.test.echo.rpc.cluster.local';

let zk: ZooKeeperServer;
let writer: DubboWriter;
let isthmus: Isthmus;
let envoy: Envoy;
let outbound: number;
let dubboPort: number;
let triPort: number;
const backends: Backend[] = [];
let tcp1: Backend, tcp2: Backend, grpc1: Backend, grpc2: Backend;
let registrarOrders: Proc;

/** `isthmus register` for one provider, in its own process; resolves once it says it registered. */
async function register(name: string, spec: ProviderSpec): Promise<Proc> {
  const args = [
    'register', '--registry', zk.url('/dubbo'), '--application', spec.application, '--address', spec.address, '--port', String(spec.port),
    '--interface', [spec.interface, spec.version ?? '', spec.group ?? ''].join(':').replace(/:+$/, ''),
    '--protocol', spec.protocol ?? 'dubbo', '--ttl', `${SESSION_MS}ms`,
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
async function zkStatus(): Promise<RegistryStatusJson | undefined> {
  const z = (await isthmus.registryz()) as { registries: RegistryStatusJson[] };
  return z.registries.find((r) => r.id.startsWith('zk://'));
}

const endpoints = (cluster: string): Promise<string[]> => envoy.endpointsOf(cluster);

before(async () => {
  zk = await startZooKeeper({ name: 'zk-mesh' });
  // Dubbo (opaque TCP) providers share one port on two addresses; the sidecar listens on it on 127.0.0.1.
  dubboPort = await freePort();
  triPort = await freePort();
  tcp1 = await startBackend('tcp', 'orders-1', { host: '127.0.0.2', port: dubboPort });
  tcp2 = await startBackend('tcp', 'orders-2', { host: '127.0.0.3', port: dubboPort });
  grpc1 = await startBackend('grpc', 'greeter-1', { host: '127.0.0.4', port: triPort });
  grpc2 = await startBackend('grpc', 'greeter-2', { host: '127.0.0.5', port: triPort });
  backends.push(tcp1, tcp2, grpc1, grpc2);

  // Raw nodes in the Dubbo layout, as a Dubbo 3 application writes them.
  writer = await DubboWriter.connect(zk.connect, '/dubbo', 6000);
  // The backends echo raw TCP: registered without Dubbo's protocol version, the port stays opaque.
  await writer.provider(dubboUrl({ address: tcp1.host, port: dubboPort, iface: 'com.acme.Orders', application: 'orders', methods: ['place', 'cancel'], opaque: true }));
  await writer.provider(dubboUrl({ protocol: 'tri', address: grpc1.host, port: triPort, iface: 'isthmus.test.Echo', application: 'greeter', methods: ['Call'] }));
  // And one written by a registrar for an app that cannot register itself.
  registrarOrders = await register('register-orders-2', { address: tcp2.host, port: dubboPort, interface: 'com.acme.Orders', application: 'orders', methods: ['place', 'cancel'] });

  isthmus = await startIsthmus({ name: 'isthmus-zk', registries: [zk.url('/dubbo')], debounceQuietMs: 100, debounceMaxMs: 500 });
  const sidecar = await startSidecar(isthmus, 'sidecar-zk');
  envoy = sidecar.envoy;
  outbound = sidecar.ports.outbound;
});

afterEach(dumpLogsOnFailure);

after(async () => {
  await writer?.close().catch(() => undefined);
  await stopAll();
  await closeAll(backends);
  assertNoLeftovers();
});

test('raw Dubbo nodes and registrar nodes reach their backends through Envoy (dubbo as TCP by port, tri as gRPC by name)', async () => {
  await waitUntil(() => endpoints(clusterName(ORDERS, dubboPort)), (e) => e.length === 2, { ...PROPAGATION, what: 'Envoy to know both orders providers' });
  await waitFor(() => isListening(dubboPort), { ...PROPAGATION, what: `the sidecar's TCP listener on 127.0.0.1:${dubboPort}` });
  const counts = await waitUntil(
    () => tally(20, () => tcpRequest(dubboPort, 'order')),
    (c) => (c['orders-1'] ?? 0) > 0 && (c['orders-2'] ?? 0) > 0 && (c['orders-1'] ?? 0) + (c['orders-2'] ?? 0) === 20,
    { ...PROPAGATION, what: 'TCP to 127.0.0.1:dubboPort spread over orders-1 (raw node) and orders-2 (registrar)' },
  );
  assert.deepEqual(Object.keys(counts).sort(), ['orders-1', 'orders-2']);
  // tri:// is gRPC: routed by the application's name and by the interface's own name.
  const byApp = await waitUntil(() => grpcRequest(outbound, GREETER), (a) => a.backend === 'greeter-1', { ...PROPAGATION, what: `gRPC :authority ${GREETER}` });
  assert.equal(byApp.status, 0);
  const byIface = await waitUntil(() => grpcRequest(outbound, ECHO_IFACE), (a) => a.backend === 'greeter-1', { ...PROPAGATION, what: `gRPC :authority ${ECHO_IFACE}` });
  assert.equal(byIface.status, 0);
  const status = await zkStatus();
  assert.equal(status?.synced, true);
  assert.equal(status?.error, undefined);
});

test('ZooKeeper stopped: requests keep flowing to the known providers; a registrar killed meanwhile leaves once ZooKeeper is back and its session expires', async () => {
  await zk.stop();
  const down = await waitUntil(zkStatus, (s) => s?.error !== undefined, { ...PROPAGATION, what: 'Isthmus to report the ZooKeeper registry as unavailable' });
  assert.equal(down!.synced, true);
  // Everything known keeps working.
  const during = await tally(20, () => tcpRequest(dubboPort, 'order'));
  assert.equal((during['orders-1'] ?? 0) + (during['orders-2'] ?? 0), 20, JSON.stringify(during));
  assert.equal((await grpcRequest(outbound, GREETER)).backend, 'greeter-1');
  assert.deepEqual(await endpoints(clusterName(ORDERS, dubboPort)), [tcp1.address, tcp2.address]);

  // The app behind orders-2 (its registrar) dies while nobody can tell ZooKeeper.
  registrarOrders.kill('SIGKILL');
  await registrarOrders.exited;
  assert.deepEqual(await endpoints(clusterName(ORDERS, dubboPort)), [tcp1.address, tcp2.address], 'nothing removed while ZooKeeper is down');

  await zk.start();
  const t0 = Date.now();
  await waitUntil(() => endpoints(clusterName(ORDERS, dubboPort)), (e) => e.length === 1 && e[0] === tcp1.address, {
    ...PROPAGATION,
    what: 'Envoy to drop orders-2 once its session expired',
  });
  const gone = Date.now() - t0;
  process.stderr.write(`# ZooKeeper back → killed registrar's endpoint gone from Envoy after ${gone} ms (session timeout ${SESSION_MS} ms, debounce 100/500 ms)\n`);
  const status = await waitUntil(zkStatus, (s) => s?.error === undefined, { ...PROPAGATION, what: 'the registry healthy again' });
  assert.equal(status!.synced, true);
  const afterOutage = await tally(10, () => tcpRequest(dubboPort, 'order'));
  assert.deepEqual(afterOutage, { 'orders-1': 10 });
  // The raw provider (its writer's session resumed) never left.
  assert.equal((await grpcRequest(outbound, GREETER)).backend, 'greeter-1');
});

test('a session expiry removes an endpoint from Envoy within the session timeout plus the push debounce', async () => {
  const proc = await register('register-greeter-2', { protocol: 'tri', address: grpc2.host, port: triPort, interface: 'isthmus.test.Echo', application: 'greeter', methods: ['Call'] });
  const cluster = clusterName(GREETER, triPort);
  await waitUntil(() => endpoints(cluster), (e) => e.length === 2, { ...PROPAGATION, what: 'greeter-2 in Envoy' });
  const seen = await waitUntil(
    () => tally(20, () => grpcRequest(outbound, GREETER)),
    (c) => (c['greeter-2'] ?? 0) > 0,
    { ...PROPAGATION, what: 'requests to reach greeter-2' },
  );
  assert.equal((seen['greeter-1'] ?? 0) + (seen['greeter-2'] ?? 0), 20);

  proc.kill('SIGKILL'); // no deregistration: only the session's end removes it
  await proc.exited;
  const t0 = Date.now();
  await waitUntil(() => endpoints(cluster), (e) => e.length === 1 && e[0] === grpc1.address, { ...PROPAGATION, what: 'Envoy to drop greeter-2' });
  const gone = Date.now() - t0;
  process.stderr.write(`# session expiry → endpoint gone from Envoy /clusters after ${gone} ms (session timeout ${SESSION_MS} ms, debounce 100/500 ms)\n`);
  assert.ok(gone < SESSION_MS + 3000, `gone after ${gone} ms`);
  const afterExpiry = await tally(10, () => grpcRequest(outbound, GREETER));
  assert.deepEqual(afterExpiry, { 'greeter-1': 10 });
});

test('isthmus register deregisters on SIGTERM: the endpoint leaves Envoy without waiting for the session timeout', async () => {
  const proc = await register('register-greeter-2b', { protocol: 'tri', address: grpc2.host, port: triPort, interface: 'isthmus.test.Echo', application: 'greeter', methods: ['Call'] });
  const cluster = clusterName(GREETER, triPort);
  await waitUntil(() => endpoints(cluster), (e) => e.length === 2, { ...PROPAGATION, what: 'greeter-2 in Envoy' });
  const t0 = Date.now();
  const exit = await proc.stop();
  assert.equal(exit.code, 0, `isthmus register exited ${exit.code ?? exit.signal}`);
  await waitUntil(() => endpoints(cluster), (e) => e.length === 1 && e[0] === grpc1.address, { ...PROPAGATION, what: 'Envoy to drop greeter-2' });
  const gone = Date.now() - t0;
  process.stderr.write(`# SIGTERM to isthmus register → endpoint gone from Envoy after ${gone} ms\n`);
  assert.ok(gone < SESSION_MS, `gone after ${gone} ms: deregistered, not expired`);
});

test('ZooKeeper unreachable at start: Isthmus serves the other registries after its sync timeout and reports the source as not synced', async () => {
  const deadPort = await freePort();
  const manifests = new ManifestDir();
  manifests.write('web.yaml', serviceEntry('web', { hosts: ['web.zk-test.local'], ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], endpoints: [{ address: '127.0.0.9' }] }));
  const t0 = Date.now();
  const other = await startIsthmus({ name: 'isthmus-zk-down', registries: [manifests.url, `zk://127.0.0.1:${deadPort}/dubbo`], args: ['--sync-timeout', '1s'] });
  const readyMs = Date.now() - t0;
  type Registryz = { registries: RegistryStatusJson[]; services: Array<{ hostname: string }> };
  const zkOf = (z: Registryz): RegistryStatusJson | undefined => z.registries.find((r) => r.id === `zk://127.0.0.1:${deadPort}/dubbo`);
  const z = await waitUntil(() => other.registryz() as Promise<Registryz>, (x) => zkOf(x)?.error !== undefined, { ...PROPAGATION, what: 'the zk registry error in registryz' });
  const zkReg = zkOf(z);
  assert.equal(zkReg?.synced, false);
  assert.match(zkReg?.error ?? '', /cannot connect to ZooKeeper/);
  assert.ok(z.services.some((s) => s.hostname === 'web.zk-test.local'), 'the file registry is served');
  process.stderr.write(`# ZooKeeper unreachable: Isthmus ready (serving the file registry) after ${readyMs} ms with --sync-timeout 1s\n`);
  await other.stop();
});
