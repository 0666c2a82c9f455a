// The etcd zone store against a real CoreDNS (etcd plugin) and a real etcd: a MemoryRegistry
// of SOA providers → aggregate → DnsService (VIPs in etcd, records in /skydns) → CoreDNS
// answers, checked with kdig against the built-in responder for the same model.
import { TestDns } from '../helpers/dns-pipeline.ts';
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Etcd3 } from 'etcd3';
import { EtcdRecordStore, encodeRecord, namePath } from '../../src/dns/etcd-store.ts';
import { sync } from '../../src/dns/plan.ts';
import { EtcdVipStore } from '../../src/addresses/etcd-store.ts';
import path from 'node:path';
import { MemoryRegistry } from '../../src/registries/memory.ts';
import { mapProviders } from '../../src/registries/soa/mapping.ts';
import { parseProviderUrl } from '../../src/registries/soa/provider.ts';
import { startCoreDns, type CoreDns } from '../helpers/coredns.ts';
import { kdig, type DigResult } from '../helpers/dns.ts';
import { startEtcd, type EtcdServer } from '../helpers/etcd.ts';
import { freePort } from '../helpers/ports.ts';
import { assertNoLeftovers, dumpLogsOnFailure, scratchDir, stopAll } from '../helpers/processes.ts';
import { waitUntil } from '../helpers/wait.ts';

const Z = 'rpc.cluster.local';
const USERQUERY = `com.alipay.userservice.userquery.${Z}`;
const ORDERS = `com.alipay.orders.orderquery.v2.${Z}`;
const FOREIGN_KEY = '/skydns/local/cluster/rpc/legacy/x1';
const FOREIGN_IN_OURS = `${namePath('/skydns', USERQUERY)}/handmade`;

const registry = new MemoryRegistry('memory://soa');
let etcd: EtcdServer;
let coredns: CoreDns;
let store: EtcdRecordStore;
let dns: TestDns;
let client: Etcd3;

function providers(urls: string[]): void {
  const mapped = mapProviders(urls.map((u, i) => parseProviderUrl(u, `/dubbo/${i}`)), { registry: registry.id });
  registry.set({ services: mapped.services, endpoints: mapped.endpoints });
}

const BASE = [
  'dubbo://10.0.0.1:20880/com.alipay.userservice.UserQuery?application=userservice&methods=getUser,listUsers&weight=100',
  'dubbo://10.0.0.2:20880/com.alipay.userservice.UserQuery?application=userservice&methods=getUser,listUsers&weight=50',
  'dubbo://10.0.0.1:20880/com.alipay.userservice.UserAdmin?application=userservice&methods=ban',
];
const WITH_ORDERS = [...BASE, 'dubbo://10.0.0.9:20881/com.alipay.orders.OrderQuery?application=orders&methods=get&version=2'];

/**
 * kdig for polling loops: a failed run (kdig itself, e.g. an EPIPE on its stdin in
 * runCommand) counts as "not yet" instead of failing the wait.
 */
const tryDig = (port: number, name: string, type: string): Promise<DigResult> =>
  kdig(port, name, type).catch((e: unknown) => ({ rcode: `kdig failed: ${(e as Error).message}`, aa: false, tc: false, msgLength: 0, answer: [], authority: [], additional: [] }));

/** Answer data, sorted, for comparing the two servers. */
const data = (r: DigResult): string[] => r.answer.map((a) => `${a.type} ${a.data}`).sort();

before(async () => {
  etcd = await startEtcd({ name: 'etcd-dns' });
  client = etcd.client();
  // Keys Isthmus did not write: one of another name, one under a name Isthmus owns.
  await client.put(FOREIGN_KEY).value(JSON.stringify({ host: '192.0.2.1', ttl: 60 }));
  coredns = await startCoreDns({ etcd: etcd.endpoint });
  providers(BASE);
  store = new EtcdRecordStore({ endpoints: [etcd.endpoint], zone: Z, requestTimeoutMs: 1000 });
  dns = new TestDns({
    listen: `127.0.0.1:${await freePort()}`,
    zone: Z,
    cidr: '240.240.0.0/16',
    ttl: 30,
    vipStorePath: '',
    vipStore: new EtcdVipStore({ endpoints: [etcd.endpoint], requestTimeoutMs: 1000 }),
    stores: [store],
    storeResyncMs: 300,
  });
  await dns.follow([registry]);
  await waitUntil(() => tryDig(coredns.port, USERQUERY, 'A'), (r) => r.answer.length > 0, { what: `${USERQUERY} from CoreDNS` });
});

after(async () => {
  await dns?.close();
  await store?.close();
  client?.close();
  await coredns?.stop();
  await etcd?.stop();
  await stopAll();
  assertNoLeftovers();
});

afterEach(dumpLogsOnFailure);

test('CoreDNS resolves an interface name to its VIP, and only to it; the built-in responder says the same', async () => {
  const vip = dns.vips().get(USERQUERY);
  assert.match(vip ?? '', /^240\.240\.\d+\.\d+$/);
  const viaCore = await kdig(coredns.port, USERQUERY, 'A');
  assert.equal(viaCore.rcode, 'NOERROR');
  // Only the VIP: the SRV records below the name (_dubbo._tcp.<name>) stay out of the answer.
  assert.deepEqual(viaCore.answer, [{ name: USERQUERY, type: 'A', ttl: 30, data: vip }]);
  assert.deepEqual(data(viaCore), data(await kdig(dns.port, USERQUERY, 'A')));
  const app = `userservice.${Z}`;
  assert.deepEqual(data(await kdig(coredns.port, app, 'A')), [`A ${dns.vips().get(app)}`]);
});

test('CoreDNS resolves SRV names to the instances, and instance names to their addresses', async () => {
  const name = `_dubbo._tcp.${USERQUERY}`;
  const core = await kdig(coredns.port, name, 'SRV');
  const builtIn = await kdig(dns.port, name, 'SRV');
  // Same targets and ports; CoreDNS rescales weights and reads priority 0 as 10.
  const targets = (r: DigResult): string[] => r.answer.map((a) => a.data.split(' ').slice(2).join(' ')).sort();
  assert.deepEqual(targets(core), [`20880 10-0-0-1.ep.${Z}.`, `20880 10-0-0-2.ep.${Z}.`]);
  assert.deepEqual(targets(core), targets(builtIn));
  for (const [inst, addr] of [[`10-0-0-1.ep.${Z}`, '10.0.0.1'], [`10-0-0-2.ep.${Z}`, '10.0.0.2']] as const) {
    assert.deepEqual(data(await kdig(coredns.port, inst, 'A')), [`A ${addr}`]);
  }
});

test('TXT metadata: the same strings (one record per string from CoreDNS)', async () => {
  const core = await kdig(coredns.port, USERQUERY, 'TXT');
  const builtIn = await kdig(dns.port, USERQUERY, 'TXT');
  const strings = (r: DigResult): string[] => r.answer.flatMap((a) => [...a.data.matchAll(/"([^"]*)"/g)].map((m) => m[1]!)).sort();
  assert.ok(strings(core).includes('interface=com.alipay.userservice.UserQuery'));
  assert.deepEqual(strings(core), strings(builtIn));
});

test('a model change shows in CoreDNS within a bounded time; foreign keys are left alone', async () => {
  await client.put(FOREIGN_IN_OURS).value(JSON.stringify({ host: '192.0.2.2', ttl: 60, group: 'handmade' }));
  const started = Date.now();
  providers(WITH_ORDERS);
  const r = await waitUntil(() => tryDig(coredns.port, ORDERS, 'A'), (x) => x.answer.length === 1, { timeoutMs: 5000, intervalMs: 50, what: `${ORDERS} in CoreDNS` });
  process.stderr.write(`registry change → CoreDNS answer: ${Date.now() - started} ms\n`);
  assert.equal(r.answer[0]!.data, dns.vips().get(ORDERS));
  providers(BASE);
  await waitUntil(() => tryDig(coredns.port, ORDERS, 'A'), (x) => x.rcode === 'NXDOMAIN', { timeoutMs: 5000, intervalMs: 50, what: `${ORDERS} gone from CoreDNS` });
  // Nothing Isthmus did not write was touched.
  assert.equal(await client.get(FOREIGN_KEY).string(), JSON.stringify({ host: '192.0.2.1', ttl: 60 }));
  assert.equal(await client.get(FOREIGN_IN_OURS).string(), JSON.stringify({ host: '192.0.2.2', ttl: 60, group: 'handmade' }));
  assert.deepEqual(data(await kdig(coredns.port, `legacy.${Z}`, 'A')), ['A 192.0.2.1']);
  await client.delete().key(FOREIGN_IN_OURS);
});

test('drift is repaired: keys deleted or altered come back; changes made during an etcd outage land after it', async () => {
  const vip = dns.vips().get(USERQUERY)!;
  const ours = await client.getAll().prefix(`${namePath('/skydns', USERQUERY)}/`).keys();
  const aKey = ours.find((k) => /\/_ism-a-[0-9a-f]+$/.test(k))!;
  assert.ok(aKey, `an A key among ${ours.join(', ')}`);
  await client.delete().key(aKey);
  await waitUntil(() => tryDig(coredns.port, USERQUERY, 'A'), (x) => x.answer.length === 1 && x.answer[0]!.data === vip, { timeoutMs: 5000, intervalMs: 50, what: 'the deleted key rewritten' });
  await client.put(aKey).value(JSON.stringify({ host: '192.0.2.66', ttl: 30, group: USERQUERY }));
  await waitUntil(() => tryDig(coredns.port, USERQUERY, 'A'), (x) => x.answer.length === 1 && x.answer[0]!.data === vip, { timeoutMs: 5000, intervalMs: 50, what: 'the altered key repaired' });

  // Outage: the model changes while etcd is down; the built-in responder follows (its VIPs
  // come from etcd too, so the zone waits), and CoreDNS catches up once etcd is back.
  await etcd.stop();
  providers(WITH_ORDERS);
  await new Promise((r) => setTimeout(r, 500));
  await etcd.start();
  const r = await waitUntil(() => tryDig(coredns.port, ORDERS, 'A'), (x) => x.answer.length === 1, { timeoutMs: 30_000, intervalMs: 100, what: `${ORDERS} in CoreDNS after the outage` });
  assert.equal(r.answer[0]!.data, dns.vips().get(ORDERS));
  assert.deepEqual(data(await kdig(dns.port, ORDERS, 'A')), data(r));
});

test('the etcd VIP store: compare-and-swap on the key mod revision', async () => {
  const a = new EtcdVipStore({ endpoints: [etcd.endpoint], key: '/isthmus-test/vips' });
  const b = new EtcdVipStore({ endpoints: [etcd.endpoint], key: '/isthmus-test/vips' });
  try {
    assert.deepEqual(await a.load(), { version: 0, table: undefined });
    const t1 = { cidr: '240.240.0.0/16', allocations: { [`x.${Z}`]: '240.240.0.9' }, tombstones: {} };
    const w1 = await a.compareAndSwap(0, t1);
    assert.ok(w1.ok);
    // A second writer that read before the write loses, and gets what is stored now.
    const lost = await b.compareAndSwap(0, { ...t1, allocations: {} });
    assert.deepEqual(lost, { ok: false, current: { version: w1.version, table: t1 } });
    const w2 = await b.compareAndSwap(w1.version, { ...t1, allocations: {} });
    assert.ok(w2.ok && w2.version > w1.version);
    assert.deepEqual((await a.load()).table?.allocations, {});
  } finally {
    await a.close();
    await b.close();
  }
});

test('records of another owner (the records API) live beside Isthmus\'s; a key that is not ours is never overwritten', async () => {
  const api = new EtcdRecordStore({ endpoints: [etcd.endpoint], zone: Z, owner: 'records-api', leafTag: 'api' });
  try {
    const manual = { name: `gw.legacy.${Z}`, ttl: 60, type: 'A' as const, address: '192.0.2.20' };
    const taken = { name: `taken.${Z}`, ttl: 60, type: 'A' as const, address: '192.0.2.21' };
    // Someone else already wrote the very key the second record would get.
    const [[takenKey]] = Object.entries(encodeRecord('/skydns', taken, 'api')) as [[string, string]];
    await client.put(takenKey).value(JSON.stringify({ host: '192.0.2.99', ttl: 60 }));
    await sync(api, [manual, taken]);
    assert.deepEqual(data(await kdig(coredns.port, manual.name, 'A')), ['A 192.0.2.20']);
    assert.equal(await client.get(takenKey).string(), JSON.stringify({ host: '192.0.2.99', ttl: 60 }));
    assert.deepEqual(await api.owned(), [manual]);
    // Isthmus's own resync leaves the other owner's records alone.
    await dns.resyncStores();
    assert.deepEqual(data(await kdig(coredns.port, manual.name, 'A')), ['A 192.0.2.20']);
    await sync(api, []);
    assert.equal((await kdig(coredns.port, manual.name, 'A')).rcode, 'NXDOMAIN');
    assert.equal(await client.get(takenKey).string(), JSON.stringify({ host: '192.0.2.99', ttl: 60 }));
    await client.delete().key(takenKey);
  } finally {
    await api.close();
  }
});

test('changes larger than one transaction are applied in batches; a TTL change updates in place', async () => {
  const small = new EtcdRecordStore({ endpoints: [etcd.endpoint], zone: Z, owner: 'batch-test', leafTag: 'bt', batchSize: 3 });
  try {
    const recs = (ttl: number) => Array.from({ length: 20 }, (_, i) => ({ name: `b${i}.batch.${Z}`, ttl, type: 'A' as const, address: `192.0.2.${i + 1}` }));
    const first = await sync(small, recs(60));
    assert.equal(first.create.length, 20);
    assert.equal((await small.owned()).length, 20);
    assert.deepEqual((await kdig(coredns.port, `b7.batch.${Z}`, 'A')).answer, [{ name: `b7.batch.${Z}`, type: 'A', ttl: 60, data: '192.0.2.8' }]);
    const second = await sync(small, recs(120));
    assert.equal(second.update.length, 20);
    assert.equal((await kdig(coredns.port, `b7.batch.${Z}`, 'A')).answer[0]?.ttl, 120);
    await sync(small, []);
    assert.deepEqual(await client.getAll().prefix(`${namePath('/skydns', `batch.${Z}`)}/`).keys(), []);
    assert.deepEqual(await client.getAll().prefix('/isthmus/dns-owners/batch-test/').keys(), []);
  } finally {
    await small.close();
  }
});

test('with VIPs in a local file, the built-in responder follows the model through an etcd outage and CoreDNS catches up after it', async (t) => {
  // A second Isthmus (its own owner and leaf tag, other names) beside the first one.
  const reg = new MemoryRegistry('memory://soa-b');
  const set = (urls: string[]): void => {
    const mapped = mapProviders(urls.map((u, i) => parseProviderUrl(u, `/dubbo/b${i}`)), { registry: reg.id });
    reg.set({ services: mapped.services, endpoints: mapped.endpoints });
  };
  const one = 'dubbo://10.9.0.1:20880/com.other.One?application=other&methods=a';
  const two = 'dubbo://10.9.0.2:20880/com.other.Two?application=other&methods=b';
  set([one]);
  const storeB = new EtcdRecordStore({ endpoints: [etcd.endpoint], zone: Z, owner: 'isthmus-b', leafTag: 'ismb', requestTimeoutMs: 500 });
  const b = new TestDns({ listen: `127.0.0.1:${await freePort()}`, zone: Z, cidr: '240.241.0.0/16', ttl: 30, vipStorePath: path.join(scratchDir('dns-b'), 'vips.json'), stores: [storeB], storeResyncMs: 0 });
  t.after(async () => {
    await b.close();
    await storeB.close();
  });
  await b.follow([reg]);
  const ONE = `com.other.one.${Z}`;
  const TWO = `com.other.two.${Z}`;
  await waitUntil(() => tryDig(coredns.port, ONE, 'A'), (x) => x.answer.length === 1, { timeoutMs: 5000, intervalMs: 50, what: `${ONE} in CoreDNS` });

  await etcd.stop();
  set([one, two]);
  const during = await waitUntil(() => tryDig(b.port, TWO, 'A'), (x) => x.answer.length === 1, { timeoutMs: 5000, intervalMs: 50, what: `${TWO} from the built-in responder during the outage` });
  assert.equal(during.answer[0]!.data, b.vips().get(TWO));
  await waitUntil(() => b.status().storeError, (e) => e !== undefined, { timeoutMs: 5000, intervalMs: 50, what: 'the store failure in the status' });
  await etcd.start();
  const after = await waitUntil(() => tryDig(coredns.port, TWO, 'A'), (x) => x.answer.length === 1, { timeoutMs: 30_000, intervalMs: 100, what: `${TWO} in CoreDNS after the outage` });
  assert.deepEqual(data(after), data(during));
  await waitUntil(() => b.status().storeError, (e) => e === undefined, { timeoutMs: 30_000, intervalMs: 100, what: 'the store failure cleared' });
});
