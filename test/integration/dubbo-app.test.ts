// A stock Apache Dubbo 3.3 application (test/clients/dubbo) against a real ZooKeeper, with
// Isthmus reading the same ZooKeeper: a provider in interface register mode that exports two
// interfaces on one port is one service with both interfaces and the instance's endpoint in
// /debug/registryz; stock consumers reach it through the registry and point-to-point (the
// mode the sidecar tests use); SIGTERM (Dubbo unregisters) takes the endpoint out of Isthmus.
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { RegistryStatus } from '../../src/model/snapshot.ts';
import type { Endpoint, Service } from '../../src/model/types.ts';
import { GREETER, ORDERS, startDubboConsumer, startDubboProvider, zookeeperRegistry, type DubboConsumer, type DubboProvider } from '../helpers/dubbo.ts';
import { startIsthmus, type Isthmus } from '../helpers/isthmus.ts';
import { freePort } from '../helpers/ports.ts';
import { assertNoLeftovers, dumpLogsOnFailure, stopAll } from '../helpers/processes.ts';
import { waitUntil } from '../helpers/wait.ts';
import { startZooKeeper, type ZooKeeperServer } from '../helpers/zookeeper.ts';

const PROPAGATION = { timeoutMs: 30_000, intervalMs: 100 };
// Isthmus's names: the application is the service, each interface one of its names.
const APP_HOST = 'orders.rpc.cluster.local';
const GREETER_HOST = 'com.example.isthmus.greeter.rpc.cluster.local';
const ORDERS_HOST = 'com.example.isthmus.orders.rpc.cluster.local';

interface Registryz {
  registries: RegistryStatus[];
  services: (Service & { endpoints: Endpoint[] })[];
}

let zk: ZooKeeperServer;
let isthmus: Isthmus;
let provider: DubboProvider;
let viaRegistry: DubboConsumer;
let direct: DubboConsumer;

async function registryz(): Promise<Registryz> {
  return (await isthmus.registryz()) as Registryz;
}

async function appService(): Promise<(Service & { endpoints: Endpoint[] }) | undefined> {
  return (await registryz()).services.find((s) => s.hostname === APP_HOST);
}

before(async () => {
  zk = await startZooKeeper({ name: 'zk-dubbo' });
  isthmus = await startIsthmus({ name: 'isthmus-dubbo', registries: [zk.url('/dubbo')], debounceQuietMs: 100, debounceMaxMs: 500 });
  const registry = zookeeperRegistry(zk.connect);
  // Three JVMs at once: the provider, a consumer that finds it in ZooKeeper, one with no registry.
  [provider, viaRegistry, direct] = await Promise.all([
    startDubboProvider({ registry, application: 'orders', instance: 'orders-1', registerMode: 'interface', port: await freePort() }),
    startDubboConsumer({ name: 'dubbo-consumer-zk', registry, application: 'shop' }),
    startDubboConsumer({ name: 'dubbo-consumer-direct', application: 'shop-direct' }),
  ]);
  process.stderr.write(`# JVM start: provider READY after ${provider.startMs} ms, consumers PORT after ${viaRegistry.startMs} and ${direct.startMs} ms (three at once)\n`);
});

afterEach(dumpLogsOnFailure);

after(async () => {
  await stopAll(15_000);
  assertNoLeftovers();
});

test('a Dubbo provider in interface register mode is one service in registryz, with both interfaces and its endpoint', async () => {
  const svc = await waitUntil(appService, (s) => s?.endpoints.length === 1, { ...PROPAGATION, what: `${APP_HOST} with one endpoint in /debug/registryz` });
  assert.ok(svc);
  assert.deepEqual(svc.ports, [{ name: 'dubbo', number: provider.port, protocol: 'DUBBO' }]);
  assert.deepEqual(
    svc.interfaces.map((i) => ({ name: i.name, hostname: i.hostname, methods: i.methods, port: i.port })),
    [
      { name: GREETER, hostname: GREETER_HOST, methods: ['greet'], port: provider.port },
      { name: ORDERS, hostname: ORDERS_HOST, methods: ['place'], port: provider.port },
    ],
  );
  const ep = svc.endpoints[0]!;
  // Dubbo registers 127.0.0.1 here only because every network interface is ignored (see test/helpers/dubbo.ts).
  assert.equal(ep.address, '127.0.0.1');
  assert.deepEqual(ep.ports, { dubbo: provider.port });
  assert.deepEqual(ep.interfaces, [GREETER_HOST, ORDERS_HOST]);
  assert.equal(ep.health, 'HEALTHY');
  assert.equal(ep.weight, 1);
  assert.equal(ep.labels.app, 'orders');
  assert.equal(ep.labels.application, 'orders');
  const status = (await registryz()).registries.find((r) => r.id.startsWith('zk://'));
  assert.equal(status?.synced, true);
  assert.equal(status?.error, undefined);
  // Dubbo's other nodes under /dubbo (config, mapping, metadata, consumers) are no providers and no errors.
  assert.deepEqual(status?.rejections, []);
});

test('a stock Dubbo consumer calling through the registry reaches the provider, on both interfaces', async () => {
  for (const iface of [GREETER, ORDERS] as const) {
    const tally = await waitUntil(
      () => viaRegistry.call(iface, 5),
      (t) => t.counts[provider.answer(iface)] === 5,
      { ...PROPAGATION, what: `5 answers to ${iface} through ZooKeeper` },
    );
    assert.deepEqual(tally, { counts: { [provider.answer(iface)]: 5 }, errors: [] });
  }
});

test('a stock Dubbo consumer with url=dubbo://127.0.0.1:PORT (point-to-point, no registry) reaches the provider', async () => {
  for (const iface of [GREETER, ORDERS] as const) {
    const tally = await direct.call(iface, 5, { url: provider.url });
    assert.deepEqual(tally, { counts: { [provider.answer(iface)]: 5 }, errors: [] });
  }
});

test('after SIGTERM (Dubbo unregisters) the endpoint leaves registryz and registry calls find no provider', async () => {
  const t0 = Date.now();
  const exit = await provider.stop();
  const stopped = Date.now() - t0;
  assert.notEqual(exit.signal, 'SIGKILL', 'the provider exited on SIGTERM');
  await waitUntil(appService, (s) => (s?.endpoints.length ?? 0) === 0, { ...PROPAGATION, what: `${APP_HOST}'s endpoint gone from /debug/registryz` });
  process.stderr.write(`# SIGTERM → Dubbo provider exited after ${stopped} ms; endpoint gone from registryz ${Date.now() - t0} ms after SIGTERM\n`);
  const status = (await registryz()).registries.find((r) => r.id.startsWith('zk://'));
  assert.equal(status?.synced, true);
  assert.equal(status?.error, undefined);
  // What the stock consumer sees: no provider any more, an error per call (no retries).
  const tally = await waitUntil(() => viaRegistry.call(GREETER, 2, { timeoutMs: 1000 }), (t) => t.counts['!error'] === 2, {
    ...PROPAGATION,
    what: 'calls through the registry to fail once the provider is gone',
  });
  assert.equal(tally.errors.length, 2);
  process.stderr.write(`# a registry call with the provider gone: ${tally.errors[0]!.slice(0, 120)}...\n`);
  assert.match(tally.errors[0]!, /^FORBIDDEN: .*No provider available/);
});
