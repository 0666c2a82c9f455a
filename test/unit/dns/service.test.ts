import { test } from 'node:test';
import { TestDns, type TestDnsOptions } from '../../helpers/dns-pipeline.ts';
import assert from 'node:assert/strict';
import path from 'node:path';
import { firstValueFrom, filter, Subject } from 'rxjs';
import type { ModelSnapshot } from '../../../src/model/snapshot.ts';
import { MemoryRecordStore } from '../../../src/dns/plan.ts';
import { recordText, TYPE } from '../../../src/dns/rr.ts';
import { DnsService } from '../../../src/dns/service.ts';
import type { VipStore } from '../../../src/addresses/allocator.ts';
import { RCODE } from '../../../src/dns/wire.ts';
import { ep, iface, modelOf, svc, udpQuery } from '../../helpers/dns.ts';
import { scratchDir } from '../../helpers/processes.ts';
import { waitFor, waitUntil } from '../../helpers/wait.ts';

const Z = 'rpc.cluster.local';

function options(over: Partial<TestDnsOptions> = {}): TestDnsOptions {
  return { listen: '127.0.0.1:0', zone: Z, cidr: '240.240.0.0/16', ttl: 30, vipStorePath: path.join(scratchDir('dns-svc'), 'vips.json'), ...over };
}

function appModel(interfaces: string[], synced = true): ModelSnapshot {
  const app = svc(`app.${Z}`, { interfaces: interfaces.map((n) => iface(`com.x.${n}`, `com.x.${n.toLowerCase()}.${Z}`, { port: 20880 })) });
  return modelOf([app], [ep(app.hostname, '10.0.0.1', { ports: { dubbo: 20880 } })], { synced });
}

function applied(dns: DnsService, version: string): Promise<unknown> {
  return firstValueFrom(dns.changes.pipe(filter((g) => g.modelVersion === version)));
}

test('records follow the model; VIPs survive a restart on the same store', async (t) => {
  const opts = options();
  const models = new Subject<ModelSnapshot>();
  const dns = new TestDns(opts);
  t.after(() => dns.close());
  await dns.follow(models);
  // Before the first model: SERVFAIL for the zone, not a cacheable NXDOMAIN.
  assert.equal((await udpQuery(dns.port, `app.${Z}`, TYPE.A)).header.rcode, RCODE.SERVFAIL);

  const m1 = appModel(['Alpha', 'Beta']);
  const done = applied(dns, m1.version);
  models.next(m1);
  await done;
  const vips = new Map(dns.vips());
  assert.deepEqual([...vips.keys()], [`app.${Z}`, `com.x.alpha.${Z}`, `com.x.beta.${Z}`]);
  const answer = await udpQuery(dns.port, `com.x.beta.${Z}`, TYPE.A);
  assert.deepEqual(answer.answers.map((r) => r.type === 'A' && r.address), [vips.get(`com.x.beta.${Z}`)]);
  assert.ok(dns.records().some((r) => recordText(r) === `_dubbo._tcp.com.x.alpha.${Z}. 30 IN SRV 0 100 20880 10-0-0-1.ep.${Z}.`));
  assert.equal(dns.status().records, dns.records().length);

  // A model change: Beta goes, Gamma comes.
  const m2 = appModel(['Alpha', 'Gamma']);
  const done2 = applied(dns, m2.version);
  models.next(m2);
  await done2;
  assert.equal((await udpQuery(dns.port, `com.x.beta.${Z}`, TYPE.A)).header.rcode, RCODE.NXDOMAIN);
  assert.notEqual(dns.vips().get(`com.x.gamma.${Z}`), vips.get(`com.x.beta.${Z}`));
  await dns.close();

  // Restart on the same file.
  const again = new TestDns(opts);
  t.after(() => again.close());
  const models2 = new Subject<ModelSnapshot>();
  await again.follow(models2);
  const done3 = applied(again, m1.version);
  models2.next(m1);
  await done3;
  assert.equal(again.vips().get(`com.x.alpha.${Z}`), vips.get(`com.x.alpha.${Z}`));
  assert.equal(again.vips().get(`app.${Z}`), vips.get(`app.${Z}`));
  // Beta was freed less than 2×TTL ago, by itself: it gets its VIP back.
  assert.equal(again.vips().get(`com.x.beta.${Z}`), vips.get(`com.x.beta.${Z}`));
});

test('a model from registries that have not all synced frees no VIP', async (t) => {
  const models = new Subject<ModelSnapshot>();
  const dns = new TestDns(options());
  t.after(() => dns.close());
  await dns.follow(models);
  const m1 = appModel(['Alpha', 'Beta']);
  let done = applied(dns, m1.version);
  models.next(m1);
  await done;
  const beta = dns.vips().get(`com.x.beta.${Z}`);
  const partial = appModel(['Alpha'], false);
  done = applied(dns, partial.version);
  models.next(partial);
  await done;
  // Not served (not in the model) but still allocated.
  assert.equal(dns.vips().get(`com.x.beta.${Z}`), undefined);
  const m3 = appModel(['Gamma', 'Beta']);
  done = applied(dns, m3.version);
  models.next(m3);
  await done;
  assert.equal(dns.vips().get(`com.x.beta.${Z}`), beta);
});

test('further record stores are kept in step (desired → plan → store)', async (t) => {
  const store = new MemoryRecordStore();
  const models = new Subject<ModelSnapshot>();
  const dns = new TestDns(options({ stores: [store] }));
  t.after(() => dns.close());
  await dns.follow(models);
  const m1 = appModel(['Alpha']);
  const done = applied(dns, m1.version);
  models.next(m1);
  await done;
  assert.deepEqual(await store.owned(), dns.records());
});

test('a failing VIP store holds back only new names: the rest of the zone follows the model, and the names come once it answers', async (t) => {
  let fail = false;
  let version = 0;
  let table: Parameters<VipStore['compareAndSwap']>[1] | undefined;
  const store: VipStore = {
    id: 'flaky',
    load: async () => {
      if (fail) throw new Error('store unreachable');
      return { version, table };
    },
    compareAndSwap: async (expected, t2) => {
      if (fail) throw new Error('store unreachable');
      if (expected !== version) return { ok: false, current: { version, table } };
      table = t2;
      return { ok: true, version: ++version };
    },
    close: async () => undefined,
  };
  const models = new Subject<ModelSnapshot>();
  const dns = new TestDns(options({ vipStore: store }));
  t.after(() => dns.close());
  await dns.follow(models);
  const m1 = appModel(['Alpha']);
  let done = applied(dns, m1.version);
  models.next(m1);
  await done;
  fail = true;
  // The next model goes on without waiting for the store: its new name waits for a VIP.
  const m2 = appModel(['Alpha', 'Beta']);
  done = applied(dns, m2.version);
  models.next(m2);
  await done;
  assert.deepEqual(dns.status().pendingNames, [`com.x.beta.${Z}`]);
  assert.match(dns.status().pendingReason ?? '', /store unreachable/);
  assert.equal((await udpQuery(dns.port, `com.x.alpha.${Z}`, TYPE.A)).answers.length, 1);
  assert.equal((await udpQuery(dns.port, `com.x.beta.${Z}`, TYPE.A)).header.rcode, RCODE.NXDOMAIN);
  // The store back: the retry (after about 500 ms) gives Beta its VIP and publishes it.
  fail = false;
  await waitFor(async () => (await udpQuery(dns.port, `com.x.beta.${Z}`, TYPE.A)).answers.length === 1, { what: 'Beta to resolve once the store answers' });
  assert.deepEqual(dns.status().pendingNames, []);
  assert.equal(dns.status().pendingReason, undefined);
});

test('close() leaves no socket, server or timer behind', async () => {
  const kinds = ['UDPWrap', 'TCPServerWrap', 'TCPSocketWrap', 'Timeout'];
  const handles = (): string[] => process.getActiveResourcesInfo().filter((r) => kinds.includes(r)).sort();
  const baseline = handles();
  const models = new Subject<ModelSnapshot>();
  const dns = new TestDns(options({ upstream: '127.0.0.1:9' }));
  await dns.follow(models);
  const m1 = appModel(['Alpha']);
  const done = applied(dns, m1.version);
  models.next(m1);
  await done;
  // A forwarded query that is still waiting when the service closes.
  const pending = udpQuery(dns.port, 'example.com', TYPE.A, undefined, 300).catch(() => undefined);
  await new Promise((r) => setTimeout(r, 20));
  await dns.close();
  await pending;
  // Handles go away once their close callbacks have run.
  const count = (h: string[], k: string): number => h.filter((x) => x === k).length;
  await waitUntil(handles, (h) => kinds.every((k) => count(h, k) <= count(baseline, k)), { timeoutMs: 1000, intervalMs: 10, what: `handles back to the baseline ${baseline.join(',')}` });
  assert.equal(models.observed, false, 'unsubscribed from the models');
});

test('a failing record store does not hold the zone back; it is retried and catches up', async (t) => {
  const inner = new MemoryRecordStore();
  let down = true;
  const store = {
    id: 'flaky-etcd',
    owned: async () => {
      if (down) throw new Error('etcd unreachable');
      return inner.owned();
    },
    apply: (p: Parameters<MemoryRecordStore['apply']>[0]) => inner.apply(p),
  };
  const models = new Subject<ModelSnapshot>();
  const dns = new TestDns(options({ stores: [store], storeResyncMs: 0 }));
  t.after(() => dns.close());
  await dns.follow(models);
  const m1 = appModel(['Alpha']);
  const done = applied(dns, m1.version);
  models.next(m1);
  await done;
  // The responder serves the new zone while the store is down, and says the store failed.
  assert.equal((await udpQuery(dns.port, `com.x.alpha.${Z}`, TYPE.A)).header.rcode, RCODE.NOERROR);
  assert.match(dns.status().storeError ?? '', /etcd unreachable/);
  assert.deepEqual(await inner.owned(), []);
  down = false;
  await waitUntil(() => inner.owned(), (r) => r.length === dns.records().length, { timeoutMs: 5000, intervalMs: 20, what: 'the store to catch up' });
  await waitUntil(() => dns.status().storeError, (e) => e === undefined, { timeoutMs: 2000, intervalMs: 20, what: 'the store error cleared' });
});

test('manual records are served beside the model, never over a model name', async (t) => {
  const models = new Subject<ModelSnapshot>();
  const dns = new TestDns(options());
  t.after(() => dns.close());
  await dns.follow(models);
  const m1 = appModel(['Alpha']);
  const done = applied(dns, m1.version);
  models.next(m1);
  await done;
  const vip = dns.vips().get(`com.x.alpha.${Z}`);
  dns.setManualRecords([
    { name: `manual.${Z}`, ttl: 60, type: 'A', address: '192.0.2.1' },
    { name: `com.x.alpha.${Z}`, ttl: 60, type: 'A', address: '192.0.2.2' },
  ]);
  await waitUntil(() => udpQuery(dns.port, `manual.${Z}`, TYPE.A), (m) => m.answers.length === 1, { timeoutMs: 5000, intervalMs: 20, what: 'the manual record' });
  const alpha = await udpQuery(dns.port, `com.x.alpha.${Z}`, TYPE.A);
  assert.deepEqual(alpha.answers.map((r) => r.type === 'A' && r.address), [vip]);
  assert.ok(dns.modelNames().has(`com.x.alpha.${Z}`));
  assert.ok(!dns.modelNames().has(`manual.${Z}`));
});
