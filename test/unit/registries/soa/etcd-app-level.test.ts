// Application-level discovery in etcd, against a real etcd: instances as Dubbo's etcd
// ServiceDiscovery (dubbo-registry-etcd3) writes them — `/services/<app>/<host>:<port>`
// holding Gson JSON of DefaultServiceInstance — with the mapping and definitions under the
// root, merged with interface-level providers.
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Etcd3 } from 'etcd3';
import { EtcdRegistry } from '../../../../src/registries/soa/etcd.ts';
import { buildProviderUrl, providerKey } from '../../../../src/registries/soa/provider.ts';
import { EtcdServer, startEtcd, StateRecorder } from '../../../helpers/etcd.ts';
import { assertNoLeftovers, dumpLogsOnFailure, stopAll } from '../../../helpers/processes.ts';

let etcd: EtcdServer;
let kv: Etcd3;
const recorders: StateRecorder[] = [];
let seq = 0;

before(async () => {
  etcd = await startEtcd({ name: 'etcd-app-level' });
  kv = etcd.client();
});

afterEach((t) => {
  dumpLogsOnFailure(t);
  for (const r of recorders.splice(0)) r.close();
});

after(async () => {
  kv.close();
  await stopAll();
  assertNoLeftovers();
});

function instance(app: string, host: string, port: number, metadata: Record<string, string> = {}, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ serviceName: app, host, port, enabled: true, healthy: true, metadata: { 'dubbo.metadata.revision': 'r1', 'dubbo.metadata.storage-type': 'local', ...metadata }, ...extra });
}

function definition(iface: string, app: string, methods: string[]): string {
  return JSON.stringify({ canonicalName: iface, methods: methods.map((name) => ({ name })), parameters: { application: app, interface: iface, side: 'provider' } });
}

function watch(n: number): StateRecorder {
  const r = new StateRecorder(new EtcdRegistry({ endpoints: [etcd.endpoint], root: `/dubbo-e${n}`, services: `/services-e${n}`, backoffInitialMs: 50, backoffMaxMs: 400 }));
  recorders.push(r);
  return r;
}

test('instances under /services with the mapping and definitions: served, followed, merged with interface-level providers', async () => {
  const n = ++seq;
  const [root, services] = [`/dubbo-e${n}`, `/services-e${n}`];
  await kv.put(`${root}/mapping/com.a.Q`).value('orders');
  await kv.put(`${root}/metadata/com.a.Q/provider/orders`).value(definition('com.a.Q', 'orders', ['get']));
  await kv.put(`${services}/orders/10.0.0.5:20880`).value(instance('orders', '10.0.0.5', 20880, { 'dubbo.endpoints': '[{"port":20880,"protocol":"dubbo"}]' }));
  // Another instance registered at interface level only (mid-migration): one service.
  const url = buildProviderUrl({ address: '10.0.0.6', port: 20880, interface: 'com.a.Q', application: 'orders', methods: ['get', 'list'] }, 1);
  await kv.put(providerKey(root, 'com.a.Q', url)).value('');
  const rec = watch(n);
  const { state } = await rec.next((s) => s.synced && s.endpoints.length === 2, 'two orders endpoints');
  assert.deepEqual(state.rejections, []);
  assert.deepEqual(state.services.map((s) => [s.hostname, s.interfaces.map((i) => [i.name, i.methods])]), [['orders.rpc.cluster.local', [['com.a.Q', ['get', 'list']]]]]);
  assert.deepEqual(state.endpoints.map((e) => e.address).sort(), ['10.0.0.5', '10.0.0.6']);
  // An unhealthy instance (Dubbo's own flag) is kept, marked; a deleted one leaves.
  await kv.put(`${services}/orders/10.0.0.7:20880`).value(instance('orders', '10.0.0.7', 20880, {}, { healthy: false }));
  const { state: three } = await rec.next((s) => s.endpoints.length === 3, 'the third instance');
  assert.equal(three.endpoints.find((e) => e.address === '10.0.0.7')!.health, 'UNHEALTHY');
  await kv.delete().key(`${services}/orders/10.0.0.5:20880`);
  const { state: gone } = await rec.next((s) => s.endpoints.length === 2 && !s.endpoints.some((e) => e.address === '10.0.0.5'), 'the first instance gone');
  assert.deepEqual(gone.endpoints.map((e) => e.address).sort(), ['10.0.0.6', '10.0.0.7']);
  // The mapping and definition trees are not read as interfaces or malformed providers.
  assert.deepEqual(gone.rejections, []);
});

test('a malformed instance value is rejected by field; the others are served', async () => {
  const n = ++seq;
  const services = `/services-e${n}`;
  await kv.put(`${services}/billing/10.0.0.8:1`).value('{"serviceName":"billing","host":"nope","port":1}');
  await kv.put(`${services}/billing/10.0.0.9:20880`).value(instance('billing', '10.0.0.9', 20880));
  const rec = watch(n);
  const { state } = await rec.next((s) => s.synced && s.endpoints.length === 1, 'billing served');
  assert.deepEqual(state.rejections.map((r) => [r.field, r.reason]), [['host', 'instance address "nope" is not an IP address']]);
  assert.match(state.warnings?.[0]?.reason ?? '', /no interface of application billing is known/);
});
