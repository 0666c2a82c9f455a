// Application-level discovery (Dubbo 3 register-mode instance and all) against a real
// ZooKeeper, in the node layout stock Dubbo 3.3 writes (docs/DUBBO-ZOOKEEPER.md).
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ZkRegistry } from '../../../../src/registries/soa/zk.ts';
import { assertNoLeftovers, dumpLogsOnFailure, stopAll } from '../../../helpers/processes.ts';
import { DubboWriter, dubboUrl, endpointAddresses, StateLog, startZooKeeper, type ZooKeeperServer } from '../../../helpers/zookeeper.ts';

let zk: ZooKeeperServer;
const logs: StateLog[] = [];
const writers: DubboWriter[] = [];
let seq = 0;

before(async () => {
  zk = await startZooKeeper({ name: 'zk-app-level' });
});

afterEach(async (t) => {
  dumpLogsOnFailure(t);
  for (const l of logs.splice(0)) l.close();
  for (const w of writers.splice(0)) await w.close();
});

after(async () => {
  await stopAll();
  assertNoLeftovers();
});

/** A fresh Dubbo root and services root per test. */
async function fresh(): Promise<{ root: string; services: string; w: DubboWriter; log: StateLog; registry: ZkRegistry }> {
  const n = ++seq;
  const root = `/dubbo-a${n}`;
  const services = `/services-a${n}`;
  const w = await DubboWriter.connect(zk.connect, root, 4000);
  writers.push(w);
  const registry = new ZkRegistry({ connect: zk.connect, root, services, sessionTimeoutMs: 4000 });
  const log = new StateLog(registry);
  logs.push(log);
  return { root, services, w, log, registry };
}

const GREETER = 'com.example.isthmus.Greeter';
const ORDERS = 'com.example.isthmus.Orders';

test('an application registered in instance mode only is served: its interfaces from the mapping, methods from the definitions, ports from dubbo.endpoints', async () => {
  const { services, w, log } = await fresh();
  await w.mapping(GREETER, ['orders']);
  await w.mapping(ORDERS, ['orders']);
  await w.definition(GREETER, 'orders', { methods: ['greet'] });
  await w.definition(ORDERS, 'orders', { methods: ['place', 'cancel'], version: '2.0.0' });
  // Dubbo's config centre and a consumer's definition share the trees.
  await w.node(`${w.root}/config/DUBBO_SERVICEDISCOVERY_MIGRATION`, false);
  await w.node(`${w.root}/config/dubbo/orders.configurators`, false, 'configs: []');
  await w.node(`${w.root}/metadata/${GREETER}/consumer/shop`, false, '{"side":"consumer"}');
  await w.instance({ application: 'orders', address: '10.1.0.5', port: 20880, endpoints: [{ port: 20880, protocol: 'dubbo' }, { port: 50051, protocol: 'tri' }], services });
  await w.instance({ application: 'orders', address: '10.1.0.6', port: 20880, endpoints: [{ port: 20880, protocol: 'dubbo' }], services, metadata: { region: 'r1' } });

  const st = await log.until((s) => s.synced && s.endpoints.length === 3 && (s.services[0]?.interfaces.length ?? 0) === 2, 'orders from its instances');
  assert.deepEqual(st.rejections, []);
  assert.deepEqual(st.services.map((s) => s.hostname), ['orders.rpc.cluster.local']);
  const svc = st.services[0]!;
  assert.deepEqual(svc.ports.map((p) => [p.name, p.number, p.protocol]), [['dubbo', 20880, 'DUBBO'], ['tri', 50051, 'GRPC']]);
  assert.deepEqual(
    svc.interfaces.map((i) => [i.name, i.version, i.methods, i.hostname]),
    [
      [GREETER, undefined, ['greet'], 'com.example.isthmus.greeter.rpc.cluster.local'],
      [ORDERS, '2.0.0', ['cancel', 'place'], 'com.example.isthmus.orders.v2-0-0.rpc.cluster.local'],
    ],
  );
  assert.deepEqual(endpointAddresses(st), ['10.1.0.5:20880', '10.1.0.5:50051', '10.1.0.6:20880']);
  const e6 = st.endpoints.find((e) => e.address === '10.1.0.6')!;
  assert.equal(e6.labels.region, 'r1');
  assert.equal(e6.locality.region, 'r1');
  assert.equal(e6.labels.app, 'orders');
  assert.match(e6.origin.ref ?? '', new RegExp(`^${services}/orders/10\\.1\\.0\\.6:20880#`));
});

test('an instance registered both ways counts once, with what its interface-level providers say', async () => {
  const { services, w, log } = await fresh();
  await w.mapping(GREETER, ['orders']);
  await w.definition(GREETER, 'orders', { methods: ['greet'] });
  await w.provider(dubboUrl({ address: '10.1.0.5', port: 20880, iface: GREETER, application: 'orders', methods: ['greet', 'hello'] }));
  await w.instance({ application: 'orders', address: '10.1.0.5', port: 20880, endpoints: [{ port: 20880, protocol: 'dubbo' }], services });
  // Another instance of the same application, in instance mode only (mid-migration).
  await w.instance({ application: 'orders', address: '10.1.0.7', port: 20880, endpoints: [{ port: 20880, protocol: 'dubbo' }], services });
  const st = await log.until((s) => s.synced && s.endpoints.length === 2, 'two orders endpoints');
  assert.deepEqual(endpointAddresses(st), ['10.1.0.5:20880', '10.1.0.7:20880']);
  assert.deepEqual(st.services[0]!.interfaces.map((i) => i.methods), [['greet', 'hello']]);
  assert.deepEqual(st.rejections, []);
});

test('metadata-type=remote: the revision document says exactly which interface is on which protocol', async () => {
  const { services, w, log } = await fresh();
  await w.mapping(GREETER, ['orders']);
  await w.mapping(ORDERS, ['orders']);
  await w.revision('orders', 'rev1', [
    { iface: GREETER, protocol: 'tri', port: 50051, methods: ['greet'] },
    { iface: ORDERS, protocol: 'dubbo', port: 20880, methods: ['place'], version: '1.0.0' },
  ]);
  await w.instance({ application: 'orders', address: '10.1.0.5', port: 20880, endpoints: [{ port: 20880, protocol: 'dubbo' }, { port: 50051, protocol: 'tri' }], revision: 'rev1', storage: 'remote', services });
  const st = await log.until((s) => s.synced && (s.services[0]?.interfaces.length ?? 0) === 2, 'orders with two interfaces');
  const ifaces = st.services[0]!.interfaces;
  assert.deepEqual(ifaces.map((i) => [i.name, i.version, i.port]), [
    [GREETER, undefined, 50051],
    [ORDERS, '1.0.0', 20880],
  ]);
  const tri = st.endpoints.find((e) => e.ports.tri === 50051)!;
  assert.deepEqual(tri.interfaces, ['com.example.isthmus.greeter.rpc.cluster.local']);
  assert.equal(st.warnings, undefined);
});

test('an instance whose revision document is missing falls back to the mapping, with a warning', async () => {
  const { services, w, log } = await fresh();
  await w.mapping(GREETER, ['orders']);
  await w.instance({ application: 'orders', address: '10.1.0.5', port: 20880, revision: 'nope', storage: 'remote', services });
  const st = await log.until((s) => s.synced && s.endpoints.length === 1, 'orders served');
  assert.deepEqual(st.services[0]!.interfaces.map((i) => i.name), [GREETER]);
  assert.match(st.warnings?.[0]?.reason ?? '', /revision nope not found at \/dubbo-a\d+\/metadata\/orders\/nope; its interfaces are taken from the mapping/);
});

test('an application with no known interface is served under its own name; instances follow their nodes', async () => {
  const { services, w, log } = await fresh();
  const one = await w.instance({ application: 'billing', address: '10.2.0.1', port: 20880, services });
  const st = await log.until((s) => s.synced && s.endpoints.length === 1, 'billing served');
  assert.deepEqual(st.services.map((s) => [s.hostname, s.interfaces.length]), [['billing.rpc.cluster.local', 0]]);
  assert.match(st.warnings?.[0]?.reason ?? '', /no interface of application billing is known/);
  await w.instance({ application: 'billing', address: '10.2.0.2', port: 20880, services });
  await log.until((s) => s.endpoints.length === 2, 'the second billing instance');
  await w.remove(one);
  const after = await log.until((s) => s.endpoints.length === 1, 'the first billing instance gone');
  assert.deepEqual(endpointAddresses(after), ['10.2.0.2:20880']);
  // The mapping arrives later (Dubbo writes it after registering): the interface appears.
  await w.mapping(GREETER, ['billing']);
  const mapped = await log.until((s) => (s.services[0]?.interfaces.length ?? 0) === 1, 'billing with Greeter');
  assert.equal(mapped.warnings, undefined);
});

test('an interface mapped to two applications resolves to the instances of both', async () => {
  const { services, w, log } = await fresh();
  await w.mapping(GREETER, ['orders', 'orders-v2']);
  await w.instance({ application: 'orders', address: '10.3.0.1', port: 20880, services });
  await w.instance({ application: 'orders-v2', address: '10.3.0.2', port: 20880, services });
  const st = await log.until((s) => s.synced && s.services.length === 3, 'two applications and the shared interface');
  const shared = st.services.find((s) => s.hostname === 'com.example.isthmus.greeter.rpc.cluster.local')!;
  assert.ok(shared);
  assert.deepEqual(st.endpoints.filter((e) => e.service === shared.hostname).map((e) => [e.address, e.labels.app]).sort(), [['10.3.0.1', 'orders'], ['10.3.0.2', 'orders-v2']]);
  assert.match(st.warnings?.map((x) => x.reason).join('\n') ?? '', /provided by applications orders, orders-v2/);
});

test('a malformed instance node is rejected by field; the others are served', async () => {
  const { services, w, log } = await fresh();
  await w.node(`${services}/orders/10.9.9.9:1`, true, '{"name":"orders","address":"not-an-ip","port":1}');
  await w.node(`${services}/orders/garbage`, true, 'not json');
  await w.instance({ application: 'orders', address: '10.1.0.5', port: 20880, services, endpoints: [{ port: 0, protocol: 'dubbo' }] });
  await w.instance({ application: 'orders', address: '10.1.0.6', port: 20880, services });
  const st = await log.until((s) => s.synced && s.endpoints.length === 1 && s.rejections.length === 3, 'one good instance, three rejected');
  assert.deepEqual(endpointAddresses(st), ['10.1.0.6:20880']);
  const reasons = st.rejections.map((r) => `${r.field}: ${r.reason}`).sort();
  assert.match(reasons[0]!, /^address: instance address "not-an-ip" is not an IP address/);
  assert.match(reasons[1]!, /^instance: instance is not JSON/);
  assert.match(reasons[2]!, /^payload\.metadata\.dubbo\.endpoints\[0\]\.port: .* is not a port 1-65535/);
});
