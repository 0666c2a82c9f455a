// Dubbo 3 application-level discovery with the stock Apache Dubbo 3.3 application
// (test/clients/dubbo) and a real ZooKeeper: a provider registered in instance mode only is
// served with both interfaces and their methods; one in `all` mode (both ways) counts once;
// with metadata-type=remote the revision document says which interface is on which port;
// two applications exporting the same interface both serve its name; kill -9 and SIGTERM
// take the instances out.
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { RegistryStatus } from '../../src/model/snapshot.ts';
import type { Endpoint, Service } from '../../src/model/types.ts';
import { GREETER, ORDERS, startDubboProvider, zookeeperRegistry } from '../helpers/dubbo.ts';
import { startIsthmus, type Isthmus } from '../helpers/isthmus.ts';
import { freePort } from '../helpers/ports.ts';
import { assertNoLeftovers, dumpLogsOnFailure, stopAll } from '../helpers/processes.ts';
import { waitUntil } from '../helpers/wait.ts';
import { startZooKeeper, type ZooKeeperServer } from '../helpers/zookeeper.ts';

const PROPAGATION = { timeoutMs: 40_000, intervalMs: 200 };
const GREETER_HOST = 'com.example.isthmus.greeter.rpc.cluster.local';
const ORDERS_HOST = 'com.example.isthmus.orders.rpc.cluster.local';

type ServiceView = Service & { endpoints: Endpoint[] };
interface Registryz {
  registries: (RegistryStatus & { warnings?: { reason: string }[] })[];
  services: ServiceView[];
}

let zk: ZooKeeperServer;
let isthmus: Isthmus;

before(async () => {
  zk = await startZooKeeper({ name: 'zk-dubbo-app-level', maxSessionTimeoutMs: 4000 });
  isthmus = await startIsthmus({ name: 'isthmus-dubbo-app-level', registries: [zk.url('/dubbo')], debounceQuietMs: 100, debounceMaxMs: 500 });
});

afterEach(dumpLogsOnFailure);

after(async () => {
  await stopAll(15_000);
  assertNoLeftovers();
});

async function registryz(): Promise<Registryz> {
  return (await isthmus.registryz()) as Registryz;
}

async function service(host: string): Promise<ServiceView | undefined> {
  return (await registryz()).services.find((s) => s.hostname === host);
}

const ports = (s: ServiceView | undefined): string[] => (s?.endpoints ?? []).map((e) => `${e.address}:${Object.values(e.ports).join(',')}`).sort();

test('instance mode only: the application is served with both interfaces, their methods from the definitions, dubbo and tri ports from dubbo.endpoints', async () => {
  const [port, triPort] = [await freePort(), await freePort()];
  const p = await startDubboProvider({ registry: zookeeperRegistry(zk.connect), application: 'billing', registerMode: 'instance', port, triPort });
  const svc = await waitUntil(() => service('billing.rpc.cluster.local'), (s) => s?.interfaces.length === 2 && s.endpoints.length === 2, { ...PROPAGATION, what: 'billing with two interfaces and its instance' });
  assert.deepEqual(svc!.ports.map((x) => [x.name, x.number, x.protocol]), [['dubbo', port, 'DUBBO'], ['tri', triPort, 'GRPC']].sort((a, b) => (a[1] as number) - (b[1] as number)));
  assert.deepEqual(svc!.interfaces.map((i) => [i.name, i.methods]), [[GREETER, ['greet']], [ORDERS, ['place']]]);
  assert.deepEqual(ports(svc), [`127.0.0.1:${port}`, `127.0.0.1:${triPort}`].sort());
  assert.equal(svc!.endpoints[0]!.labels.app, 'billing');
  const z = await registryz();
  const status = z.registries.find((r) => r.id.startsWith('zk://'))!;
  assert.deepEqual(status.rejections, [], 'Dubbo config, mapping and metadata trees are no interfaces and no errors');
  // SIGTERM: Dubbo unregisters the instance; the endpoints go.
  await p.stop();
  await waitUntil(() => service('billing.rpc.cluster.local'), (s) => (s?.endpoints.length ?? 0) === 0, { ...PROPAGATION, what: "billing's endpoints gone after SIGTERM" });
});

test('all mode (both ways) counts an instance once; kill -9 removes it when its session expires', async () => {
  const port = await freePort();
  // Dubbo asks for a 60 s session; this ZooKeeper grants at most 4 s.
  const p = await startDubboProvider({ registry: zookeeperRegistry(zk.connect), application: 'ledger', registerMode: 'all', port });
  const svc = await waitUntil(() => service('ledger.rpc.cluster.local'), (s) => s?.interfaces.length === 2 && s.endpoints.length === 1, { ...PROPAGATION, what: 'ledger with one endpoint' });
  assert.deepEqual(ports(svc), [`127.0.0.1:${port}`]);
  p.proc.kill('SIGKILL');
  const t0 = Date.now();
  await waitUntil(() => service('ledger.rpc.cluster.local'), (s) => (s?.endpoints.length ?? 0) === 0, { ...PROPAGATION, what: "ledger's endpoint gone after kill -9" });
  process.stderr.write(`# kill -9 of a Dubbo provider in all mode → its endpoint gone from registryz after ${Date.now() - t0} ms (ZooKeeper session timeout ≤ 4 s)\n`);
});

test('metadata-type=remote: interfaces come from the revision document', async () => {
  const port = await freePort();
  const p = await startDubboProvider({ registry: zookeeperRegistry(zk.connect), application: 'audit', registerMode: 'instance', metadataType: 'remote', port });
  const svc = await waitUntil(() => service('audit.rpc.cluster.local'), (s) => s?.interfaces.length === 2 && s.endpoints.length === 1, { ...PROPAGATION, what: 'audit with two interfaces' });
  assert.deepEqual(svc!.interfaces.map((i) => [i.name, i.methods, i.port]), [[GREETER, ['greet'], port], [ORDERS, ['place'], port]]);
  const status = (await registryz()).registries.find((r) => r.id.startsWith('zk://'))!;
  assert.ok(!(status.warnings ?? []).some((w) => /revision .* not found/.test(w.reason)), JSON.stringify(status.warnings));
  await p.stop();
});

test('an interface exported by two applications resolves to the instances of both, each labelled with its application; each application keeps its own name', async () => {
  const [a, b] = [await freePort(), await freePort()];
  const [p1, p2] = await Promise.all([
    startDubboProvider({ registry: zookeeperRegistry(zk.connect), application: 'cart', registerMode: 'instance', port: a }),
    startDubboProvider({ registry: zookeeperRegistry(zk.connect), application: 'cart-v2', registerMode: 'interface', port: b }),
  ]);
  const shared = await waitUntil(() => service(GREETER_HOST), (s) => s?.endpoints.length === 2, { ...PROPAGATION, what: `${GREETER_HOST} with the instances of cart and cart-v2` });
  assert.deepEqual(shared!.endpoints.map((e) => [`${e.address}:${Object.values(e.ports)[0]}`, e.labels.app]).sort(), [[`127.0.0.1:${a}`, 'cart'], [`127.0.0.1:${b}`, 'cart-v2']].sort());
  assert.ok(await service(ORDERS_HOST), 'Orders is shared too');
  assert.deepEqual(ports(await service('cart.rpc.cluster.local')), [`127.0.0.1:${a}`]);
  assert.deepEqual(ports(await service('cart-v2.rpc.cluster.local')), [`127.0.0.1:${b}`]);
  const status = (await registryz()).registries.find((r) => r.id.startsWith('zk://'))!;
  assert.match((status.warnings ?? []).map((w) => w.reason).join('\n'), /interface com\.example\.isthmus\.Greeter is provided by applications cart, cart-v2/);
  assert.deepEqual(status.rejections, []);
  await Promise.all([p1.stop(), p2.stop()]);
});
