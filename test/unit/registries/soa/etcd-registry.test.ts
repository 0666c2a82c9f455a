// EtcdRegistry against a real etcd started by the test: the Dubbo layout read exactly,
// malformed keys rejected without disturbing the rest, and the faults of issue 3.
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Etcd3 } from 'etcd3';
import { metrics } from '../../../../src/shared/metrics.ts';
import type { RegistryState } from '../../../../src/model/types.ts';
import { EtcdRegistry, type EtcdRegistryOptions } from '../../../../src/registries/soa/etcd.ts';
import { buildProviderUrl, providerKey, type ProviderSpec } from '../../../../src/registries/soa/provider.ts';
import { EtcdServer, etcdMetric, startEtcd, StateRecorder } from '../../../helpers/etcd.ts';
import { TcpProxy } from '../../../helpers/tcp-proxy.ts';
import { freePort } from '../../../helpers/ports.ts';
import { assertNoLeftovers, dumpLogsOnFailure, scratchDir, stopAll } from '../../../helpers/processes.ts';
import { waitFor } from '../../../helpers/wait.ts';

// Exactly what a Dubbo 2.7 provider writes (java.net.URLEncoder: ',' as %2C).
const DUBBO_KEY =
  '/dubbo/com.alipay.userservice.UserQuery/providers/dubbo%3A%2F%2F10.0.0.5%3A20880%2Fcom.alipay.userservice.UserQuery%3Fapplication%3Duserservice%26interface%3Dcom.alipay.userservice.UserQuery%26methods%3Dget%2Clist%26version%3D1.0.0%26side%3Dprovider%26weight%3D100%26timestamp%3D1700000000000';

const malformedTotal = metrics.counter('isthmus_soa_malformed_providers_total', '');
const rejectedGauge = metrics.gauge('isthmus_soa_rejected_providers', '');

/** Log lines written while the test runs, kept out of the test output. */
const logLines: string[] = [];
const realWrite = process.stderr.write.bind(process.stderr);
before(() => {
  process.stderr.write = ((chunk: string | Uint8Array) => {
    logLines.push(String(chunk));
    return true;
  }) as typeof process.stderr.write;
});
after(() => {
  process.stderr.write = realWrite;
});
afterEach((t) => {
  if ((t as { passed?: boolean }).passed === false) realWrite(`\n--- log of the failed test ---\n${logLines.slice(-60).join('')}`);
});
function logsAbout(msg: string, key: string): number {
  return logLines.filter((l) => l.includes(`"msg":"${msg}"`) && l.includes(JSON.stringify(key).slice(1, -1))).length;
}

let rootSeq = 0;
const freshRoot = (): string => `/t${++rootSeq}`;

function key(root: string, s: ProviderSpec): string {
  return providerKey(root, s.interface, buildProviderUrl(s, 1700000000000));
}

function provider(over: Partial<ProviderSpec> & { address: string }): ProviderSpec {
  return { port: 20880, interface: 'com.acme.OrderQuery', application: 'orders', methods: ['get'], ...over };
}

const endpointsOf = (s: RegistryState): string[] => s.endpoints.map((e) => `${e.service} ${e.address}:${Object.values(e.ports).join(',')}`).sort();

function registry(endpoints: string[], root: string, extra: Partial<EtcdRegistryOptions> = {}): EtcdRegistry {
  return new EtcdRegistry({ endpoints, root, backoffInitialMs: 50, backoffMaxMs: 400, requestTimeoutMs: 2000, ...extra });
}

describe('EtcdRegistry on a running etcd', () => {
  let etcd: EtcdServer;
  let kv: Etcd3;
  const recorders: StateRecorder[] = [];
  const record = (r: EtcdRegistry): StateRecorder => {
    const rec = new StateRecorder(r);
    recorders.push(rec);
    return rec;
  };

  before(async () => {
    etcd = await startEtcd({ name: 'etcd-registry-unit' });
    kv = etcd.client();
  });
  afterEach(dumpLogsOnFailure);
  after(async () => {
    for (const r of recorders) r.close();
    kv.close();
    await stopAll();
    assertNoLeftovers();
  });

  it('reads raw Dubbo-layout keys: listed ones and watched ones, one service per application', async () => {
    await kv.put(DUBBO_KEY).value('').exec();
    // Not providers: consumers, configurators, routers, Dubbo's metadata report and config center.
    await kv.put('/dubbo/com.alipay.userservice.UserQuery/consumers/consumer%3A%2F%2F10.0.0.9%2Fcom.alipay.userservice.UserQuery%3Fside%3Dconsumer').value('').exec();
    await kv.put('/dubbo/com.alipay.userservice.UserQuery/configurators/override%3A%2F%2F0.0.0.0').value('').exec();
    await kv.put('/dubbo/com.alipay.userservice.UserQuery/routers').value('').exec();
    await kv.put('/dubbo/metadata/com.alipay.userservice.UserQuery/1.0.0/provider/userservice').value('{}').exec();
    await kv.put('/dubbo/config/dubbo/dubbo.properties').value('a=b').exec();
    await kv.put('/dubbo2/outside/providers/x').value('').exec(); // a sibling root, not ours

    const r = registry([etcd.endpoint], '/dubbo/');
    assert.equal(r.id, `etcd://${etcd.endpoint}/dubbo`);
    const rec = record(r);
    const { state: first } = await rec.next((s) => s.synced, 'first synced state');
    assert.equal(first.id, r.id);
    assert.equal(first.error, undefined);
    assert.deepEqual(first.rejections, []);
    assert.deepEqual(first.services.map((s) => [s.hostname, s.ports.map((p) => `${p.name}/${p.number}/${p.protocol}`)]), [
      ['userservice.rpc.cluster.local', ['dubbo/20880/TCP']],
    ]);
    assert.deepEqual(first.services[0]!.interfaces.map((i) => [i.hostname, i.name, i.version, i.methods]), [
      ['com.alipay.userservice.userquery.v1-0-0.rpc.cluster.local', 'com.alipay.userservice.UserQuery', '1.0.0', ['get', 'list']],
    ]);
    assert.deepEqual(endpointsOf(first), ['userservice.rpc.cluster.local 10.0.0.5:20880']);
    assert.equal(first.endpoints[0]!.origin.ref, DUBBO_KEY);

    // Watched: a second interface of the same process, and a second instance.
    const n = rec.states.length;
    await kv.put(key('/dubbo', { address: '10.0.0.5', port: 20880, interface: 'com.alipay.userservice.UserWrite', application: 'userservice', methods: ['put'] })).value('').exec();
    await kv.put(key('/dubbo', { address: '10.0.0.6', port: 20880, interface: 'com.alipay.userservice.UserWrite', application: 'userservice', methods: ['put'] })).value('').exec();
    const { state } = await rec.next((s) => s.endpoints.length === 2, 'the second instance', n);
    assert.deepEqual(state.services.map((s) => s.hostname), ['userservice.rpc.cluster.local']);
    assert.deepEqual(state.services[0]!.interfaces.map((i) => i.hostname), [
      'com.alipay.userservice.userquery.v1-0-0.rpc.cluster.local',
      'com.alipay.userservice.userwrite.rpc.cluster.local',
    ]);
    assert.deepEqual(state.endpoints.map((e) => [e.address, e.interfaces]), [
      ['10.0.0.5', ['com.alipay.userservice.userquery.v1-0-0.rpc.cluster.local', 'com.alipay.userservice.userwrite.rpc.cluster.local']],
      ['10.0.0.6', ['com.alipay.userservice.userwrite.rpc.cluster.local']],
    ]);
    // Keys that are not providers, and re-puts of a provider key, change nothing.
    const settled = rec.states.length;
    await kv.put(DUBBO_KEY).value('re-registered').exec();
    await kv.put('/dubbo/com.alipay.userservice.UserQuery/consumers/another').value('').exec();
    await kv.put(key('/dubbo', { address: '10.0.0.7', port: 20880, interface: 'com.x.Y', application: 'marker' })).value('').exec();
    await rec.next((s) => s.services.some((x) => x.hostname === 'marker.rpc.cluster.local'), 'the marker provider', settled);
    assert.equal(rec.states.length, settled + 1, 'only the marker provider made a new state');
  });

  it('rejects malformed keys with the key and the field, counts and logs each once, and serves the rest', async () => {
    const root = freshRoot();
    const good = key(root, provider({ address: '10.1.0.1' }));
    const bad: Record<string, string> = {
      [`${root}/com.acme.OrderQuery/providers/not-a-url`]: 'url',
      [`${root}/com.acme.OrderQuery/providers/${encodeURIComponent('dubbo://db.example:20880/com.acme.OrderQuery?application=orders')}`]: 'address',
      [`${root}/com.acme.OrderQuery/providers/${encodeURIComponent('dubbo://10.1.0.2:99999/com.acme.OrderQuery?application=orders')}`]: 'port',
      [`${root}/com.acme.OrderQuery/providers/${encodeURIComponent('dubbo://10.1.0.2:20880/com.acme.Other?application=orders')}`]: 'interface',
      [`${root}/com.acme.OrderQuery/providers/${encodeURIComponent('dubbo://10.1.0.2:20880/com.acme.OrderQuery?side=provider')}`]: 'application',
      [`${root}/com.acme.OrderQuery/providers/%E0%A4%A`]: 'key',
      [`${root}/com.acme.OrderQuery/providers/a/b`]: 'key',
    };
    const r = registry([etcd.endpoint], root);
    const id = r.id;
    await kv.put(good).value('').exec();
    for (const k of Object.keys(bad)) await kv.put(k).value('').exec();
    const rec = record(r);
    const { state } = await rec.next((s) => s.synced, 'synced');
    assert.deepEqual(endpointsOf(state), ['orders.rpc.cluster.local 10.1.0.1:20880']);
    assert.deepEqual(
      state.rejections.map((x) => [x.source, x.field]).sort(),
      Object.entries(bad).sort(),
      JSON.stringify(state.rejections, null, 1),
    );
    for (const x of state.rejections) assert.ok(x.reason.length > 0 && x.reason.length < 400, x.reason);
    assert.equal(malformedTotal.get({ registry: id }), Object.keys(bad).length);
    assert.equal(rejectedGauge.get({ registry: id }), Object.keys(bad).length);
    for (const k of Object.keys(bad)) assert.equal(logsAbout('provider key rejected', k), 1, k);

    // Written again (a value change), still malformed: neither counted nor logged again.
    const n = rec.states.length;
    for (const k of Object.keys(bad)) await kv.put(k).value('again').exec();
    const marker = key(root, provider({ address: '10.1.0.3' }));
    await kv.put(marker).value('').exec();
    await rec.next((s) => s.endpoints.length === 2, 'the marker provider', n);
    assert.equal(malformedTotal.get({ registry: id }), Object.keys(bad).length);
    for (const k of Object.keys(bad)) assert.equal(logsAbout('provider key rejected', k), 1, k);

    // Deleted: the rejection goes; the gauge follows.
    const gone = Object.keys(bad)[0]!;
    await kv.delete().key(gone).exec();
    const { state: after } = await rec.next((s) => !s.rejections.some((x) => x.source === gone), 'the deleted rejection gone', n);
    assert.equal(after.rejections.length, Object.keys(bad).length - 1);
    assert.equal(rejectedGauge.get({ registry: id }), Object.keys(bad).length - 1);
  });

  it('survives binary junk, huge keys and values, and odd characters (a small fuzz)', async () => {
    const root = freshRoot();
    const r = registry([etcd.endpoint], root);
    const rec = record(r);
    await rec.next((s) => s.synced, 'synced');
    const good = key(root, provider({ address: '10.2.0.1' }));
    await kv.put(good).value(Buffer.alloc(1024 * 1024, 7)).exec(); // a 1 MiB value: ignored
    const prefix = `${root}/com.acme.OrderQuery/providers/`;
    const binary = Buffer.concat([Buffer.from(prefix), Buffer.from([0xff, 0xfe, 0x00, 0x80, 0xc3])]);
    await kv.put(binary).value('').exec();
    const huge = `${prefix}${'x'.repeat(100_000)}`;
    await kv.put(huge).value('').exec();
    const hugeValid = key(root, provider({ address: '10.2.0.2', params: { blob: 'y'.repeat(2000) } }));
    await kv.put(hugeValid).value('').exec();

    // Seeded random keys: layout-shaped, with odd characters and random bytes in them.
    let seed = 42;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const alphabet = ['%', '%2', '%ZZ', '/', '?', '&', '=', ':', '[', ']', '@', '#', ' ', '\t', '\u00e9', '\u4e2d', '\u{1f600}', 'dubbo://', '10.0.0.1:', 'application%3D', '%00', '..', '\\'];
    const fuzzKeys = new Set<string>();
    for (let i = 0; i < 150; i++) {
      let s = '';
      for (let j = rand(12) + 1; j > 0; j--) s += rand(3) === 0 ? String.fromCharCode(32 + rand(95)) : alphabet[rand(alphabet.length)]!;
      fuzzKeys.add(rand(4) === 0 ? `${root}/${s}` : `${prefix}${s}`);
    }
    for (const k of fuzzKeys) await kv.put(k).value(String(rand(1000))).exec();
    const marker = key(root, provider({ address: '10.2.0.3' }));
    await kv.put(marker).value('').exec();
    const { state, index } = await rec.next((s) => s.endpoints.some((e) => e.address === '10.2.0.3'), 'the marker after the fuzz');
    assert.deepEqual(state.endpoints.map((e) => e.address).sort(), ['10.2.0.1', '10.2.0.3'], 'only the valid providers are served');
    const sources = state.rejections.map((x) => x.source);
    assert.ok(sources.some((s) => s.includes(`hex ${Buffer.from(prefix).toString('hex').slice(0, 16)}`)), 'the binary key is rejected, shown in hex');
    const hugeShown = state.rejections.find((x) => x.source.startsWith(`${prefix}xxxx`));
    assert.ok(hugeShown && hugeShown.source.length < 400 && hugeShown.source.includes('100'), `the huge key is rejected, clipped: ${hugeShown?.source.slice(-40)}`);
    assert.ok(state.rejections.some((x) => x.field === 'blob'), 'the oversized parameter is rejected by name');
    for (const x of state.rejections) assert.ok(x.source.length < 500 && x.reason.length < 500, 'rejections are bounded');
    // Every fuzz key is served, rejected, or not a provider key at all: nothing crashed on the way.
    await kv.delete().prefix(prefix).exec();
    const { state: emptied } = await rec.next((s) => s.endpoints.length === 0 && s.rejections.every((x) => !x.source.startsWith(prefix)), 'everything under the interface deleted', index);
    assert.equal(emptied.synced, true);
  });

  it('a deleted key and an expired lease remove the provider', async () => {
    const root = freshRoot();
    const rec = record(registry([etcd.endpoint], root));
    await rec.next((s) => s.synced, 'synced');
    const a = key(root, provider({ address: '10.3.0.1' }));
    const b = key(root, provider({ address: '10.3.0.2' }));
    await kv.put(a).value('').exec();
    const lease = kv.lease(2, { autoKeepAlive: false });
    await lease.put(b).value('').exec();
    await rec.next((s) => s.endpoints.length === 2, 'both providers');
    await kv.delete().key(a).exec();
    const { index } = await rec.next((s) => endpointsOf(s).join() === 'orders.rpc.cluster.local 10.3.0.2:20880', 'the deleted one gone');
    const t0 = Date.now();
    const { state } = await rec.next((s) => s.endpoints.length === 0, 'the leased one gone when its lease expires', index, 10_000);
    const took = Date.now() - t0;
    assert.equal(state.services.length, 0);
    assert.ok(took > 500 && took < 2000 + 1500, `lease TTL 2s; removed after ${took} ms`);
    lease.release();
  });

  it('unsubscribing closes the client, the watch and every timer', async () => {
    const root = freshRoot();
    const watchers = (): Promise<number> => etcdMetric(etcd, 'etcd_debugging_mvcc_watcher_total');
    const handles = (): number => process.getActiveResourcesInfo().filter((x) => x === 'Timeout' || x === 'TCPSocketWrap' || x === 'Immediate').length;
    const baseWatchers = await watchers();
    const baseHandles = handles();
    const rec = new StateRecorder(registry([etcd.endpoint], root));
    await rec.next((s) => s.synced, 'synced');
    // The root's and the application-level instances' (/services).
    await waitFor(async () => (await watchers()) === baseWatchers + 2, { what: 'two watchers on etcd' });
    rec.close();
    await waitFor(async () => (await watchers()) === baseWatchers, { what: 'the watcher gone from etcd' });
    await waitFor(() => handles() <= baseHandles, { what: `handles back to ${baseHandles}: ${process.getActiveResourcesInfo().join(',')}` });
    const n = rec.states.length;
    await kv.put(key(root, provider({ address: '10.4.0.1' }))).value('').exec();
    await new Promise((r) => setImmediate(r));
    assert.equal(rec.states.length, n, 'no state after unsubscribe');
  });

  it('lists in pages at one revision: a registry larger than a page', async () => {
    const root = freshRoot();
    const ops = [];
    for (let i = 0; i < 250; i++) ops.push(kv.put(key(root, provider({ address: `10.5.${i >> 8}.${i & 255}`, application: `app${i % 7}`, interface: `com.acme.Q${i % 7}` }))).value('').exec());
    await Promise.all(ops);
    const rec = record(registry([etcd.endpoint], root, { pageSize: 40 }));
    const { state } = await rec.next((s) => s.synced, 'synced');
    assert.equal(state.endpoints.length, 250);
    assert.equal(state.services.length, 7);
  });
});

describe('EtcdRegistry when etcd fails', () => {
  afterEach(dumpLogsOnFailure);
  after(async () => {
    await stopAll();
    assertNoLeftovers();
  });

  it('unreachable at start: not synced, says which endpoints and why, and syncs once etcd is up', async () => {
    const etcd = new EtcdServer('etcd-late', await freePort(), await freePort(), `${scratchDir('etcd-late')}/data`, 20_000);
    const rec = new StateRecorder(registry([etcd.endpoint], '/dubbo'));
    try {
      const { state } = await rec.next((s) => s.error !== undefined, 'an error state');
      assert.equal(state.synced, false);
      assert.match(state.error!, new RegExp(`^cannot reach etcd at ${etcd.endpoint}: .*(ECONNREFUSED|UNAVAILABLE)`));
      assert.deepEqual([state.services, state.endpoints], [[], []]);
      const t0 = Date.now();
      await etcd.start();
      const { state: synced } = await rec.next((s) => s.synced, 'synced after etcd started', 0, 15_000);
      assert.equal(synced.error, undefined);
      assert.ok(Date.now() - t0 < 2000, `reconnected within the capped backoff (${Date.now() - t0} ms)`);
      const kv = etcd.client();
      await kv.put(key('/dubbo', provider({ address: '10.6.0.1' }))).value('').exec();
      kv.close();
      const { state: served } = await rec.next((s) => s.endpoints.length === 1, 'the provider');
      assert.deepEqual(endpointsOf(served), ['orders.rpc.cluster.local 10.6.0.1:20880']);
      // While it could not connect, only the first error was a new state: retries are not news.
      assert.equal(rec.states.filter((s) => !s.synced).length, 1);
    } finally {
      rec.close();
      await etcd.stop();
    }
  });

  it('etcd stopped: the last known providers stay (error set, still synced); back: one new state with the difference', async () => {
    const etcd = await startEtcd({ name: 'etcd-restart' });
    const kv = etcd.client();
    const root = '/dubbo';
    const keep = key(root, provider({ address: '10.7.0.1' }));
    const leased = key(root, provider({ address: '10.7.0.2' }));
    await kv.put(keep).value('').exec();
    const lease = kv.lease(60, { autoKeepAlive: false });
    await lease.put(leased).value('').exec();
    const leaseId = await lease.grant();
    lease.release();
    const rec = new StateRecorder(registry([etcd.endpoint], root));
    try {
      await rec.next((s) => s.synced && s.endpoints.length === 2, 'both providers');
      await etcd.stop();
      const { state: lost, index } = await rec.next((s) => s.error !== undefined, 'the error state');
      assert.equal(lost.synced, true);
      assert.match(lost.error!, new RegExp(`cannot reach etcd at ${etcd.endpoint}`));
      assert.equal(lost.endpoints.length, 2, 'nothing dropped because a connection dropped');
      await etcd.start();
      // etcd back, and the leased provider revoked before the registry reconnects (or just after).
      await kv.leaseClient.leaseRevoke({ ID: leaseId });
      const { state: back } = await rec.next((s) => s.error === undefined && s.endpoints.length === 1, 'recovered without the revoked provider', index, 15_000);
      assert.deepEqual(endpointsOf(back), ['orders.rpc.cluster.local 10.7.0.1:20880']);
      assert.equal(back.synced, true);
      const afterLoss = rec.states.slice(index);
      assert.ok(afterLoss.every((s) => s.endpoints.length >= 1), 'never an empty state on the way');
    } finally {
      rec.close();
      kv.close();
      await etcd.stop();
    }
  });

  it('partitioned: a key deleted meanwhile disappears on recovery, in one state; a compacted history is no obstacle', async () => {
    const etcd = await startEtcd({ name: 'etcd-partition' });
    const proxy = await TcpProxy.start(etcd.clientPort, { http2: true });
    const kv = etcd.client();
    const root = '/dubbo';
    const a = key(root, provider({ address: '10.8.0.1' }));
    const b = key(root, provider({ address: '10.8.0.2' }));
    await kv.put(a).value('').exec();
    await kv.put(b).value('').exec();
    const rec = new StateRecorder(registry([proxy.endpoint], root, { backoffMaxMs: 300 }));
    try {
      await rec.next((s) => s.synced && s.endpoints.length === 2, 'both providers');
      proxy.partition('refuse');
      const { index } = await rec.next((s) => s.error !== undefined, 'the error state');
      assert.equal(rec.states[index]!.endpoints.length, 2);
      // While the registry cannot see etcd: one provider goes, one comes, and the history is compacted.
      await kv.delete().key(a).exec();
      const c = key(root, provider({ address: '10.8.0.3' }));
      await kv.put(c).value('').exec();
      await etcd.compact();
      proxy.heal();
      const { state, index: recovered } = await rec.next((s) => s.error === undefined, 'recovered', index, 10_000);
      assert.deepEqual(state.endpoints.map((e) => e.address), ['10.8.0.2', '10.8.0.3']);
      assert.equal(recovered, index + 1, 'the difference came as one state');
    } finally {
      rec.close();
      kv.close();
      await proxy.close();
      await etcd.stop();
    }
  });

  it('a watch canceled by etcd (its start revision compacted) lists again without an error', async () => {
    const etcd = await startEtcd({ name: 'etcd-compact' });
    const proxy = await TcpProxy.start(etcd.clientPort, { http2: true });
    const kv = etcd.client();
    const root = '/dubbo';
    await kv.put(key(root, provider({ address: '10.9.0.1' }))).value('').exec();
    const ranges = (): Promise<number> => etcdMetric(etcd, 'grpc_server_handled_total', { grpc_method: 'Range' });
    const before = await ranges();
    // The registry's listing is answered at revision R but held on the way back; meanwhile the
    // history moves on and is compacted past R, so the watch from R+1 is refused.
    proxy.hold();
    const rec = new StateRecorder(registry([proxy.endpoint], root));
    try {
      await waitFor(async () => (await ranges()) > before, { what: 'etcd to answer the listing' });
      await kv.put(key(root, provider({ address: '10.9.0.2' }))).value('').exec();
      await kv.put(key(root, provider({ address: '10.9.0.3' }))).value('').exec();
      await etcd.compact();
      proxy.release();
      const { state } = await rec.next((s) => s.synced && s.endpoints.length === 3, 'all three providers after listing again');
      assert.equal(state.error, undefined);
      const events = metrics.counter('isthmus_registry_events_total', '');
      // Refused at the next read at R: the listings of the application-level prefixes, or the watch.
      const id = `etcd://${proxy.endpoint}/dubbo`;
      assert.ok(events.get({ registry: id, event: 'watch_canceled' }) + events.get({ registry: id, event: 'list_compacted' }) >= 1, 'the compaction was seen');
      assert.ok(rec.states.every((s) => s.error === undefined), 'a cancellation is not an outage');
    } finally {
      rec.close();
      kv.close();
      await proxy.close();
      await etcd.stop();
    }
  });

  it('several endpoints: one dead member does not stop it', async () => {
    const etcd = await startEtcd({ name: 'etcd-multi' });
    const dead = `127.0.0.1:${await freePort()}`;
    const r = registry([dead, etcd.endpoint], '/dubbo');
    assert.equal(r.id, `etcd://${dead},${etcd.endpoint}/dubbo`);
    const kv = etcd.client();
    await kv.put(key('/dubbo', provider({ address: '10.10.0.1' }))).value('').exec();
    const rec = new StateRecorder(r);
    try {
      const { state } = await rec.next((s) => s.synced && s.error === undefined, 'synced through the live member', 0, 15_000);
      assert.equal(state.endpoints.length, 1);
    } finally {
      rec.close();
      kv.close();
      await etcd.stop();
    }
  });
});
