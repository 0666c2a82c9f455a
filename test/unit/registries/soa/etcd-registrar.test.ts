// EtcdRegistrar against a real etcd: the exact keys a Dubbo consumer reads, bound to a kept-alive
// lease; revoked on stop; written again after a lost lease.
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Etcd3 } from 'etcd3';
import { setLogLevel } from '../../../../src/shared/log.ts';
import { EtcdRegistrar, type EtcdRegistrarOptions } from '../../../../src/registries/soa/etcd-registrar.ts';
import { EtcdRegistry } from '../../../../src/registries/soa/etcd.ts';
import { parseProviderKey, type ProviderSpec } from '../../../../src/registries/soa/provider.ts';
import { EtcdServer, startEtcd, StateRecorder } from '../../../helpers/etcd.ts';
import { TcpProxy } from '../../../helpers/tcp-proxy.ts';
import { freePort } from '../../../helpers/ports.ts';
import { assertNoLeftovers, dumpLogsOnFailure, scratchDir, stopAll } from '../../../helpers/processes.ts';
import { waitFor } from '../../../helpers/wait.ts';

setLogLevel('error'); // lost leases and refused connections are the point here

const USER_QUERY: ProviderSpec = {
  protocol: 'dubbo',
  address: '127.0.0.5',
  port: 20880,
  interface: 'com.alipay.userservice.UserQuery',
  application: 'userservice',
  methods: ['get', 'list'],
  version: '1.0.0',
};

let rootSeq = 0;
const freshRoot = (): string => `/reg${++rootSeq}`;

function registrar(endpoints: string[], root: string, extra: Partial<EtcdRegistrarOptions> = {}): EtcdRegistrar {
  return new EtcdRegistrar({ endpoints, root, providers: [USER_QUERY], ttlSeconds: 2, backoffInitialMs: 50, requestTimeoutMs: 1000, ...extra });
}

async function keysUnder(kv: Etcd3, root: string): Promise<Record<string, string>> {
  return kv.getAll().prefix(`${root}/`).strings();
}

/** Lease of a key, or '0' when the key has none / is gone. */
async function leaseOf(kv: Etcd3, key: string): Promise<string> {
  const res = await kv.kv.range({ key: Buffer.from(key) });
  return res.kvs[0]?.lease ?? '0';
}

describe('EtcdRegistrar', () => {
  let etcd: EtcdServer;
  let kv: Etcd3;
  const running: EtcdRegistrar[] = [];
  const track = (r: EtcdRegistrar): EtcdRegistrar => (running.push(r), r);

  before(async () => {
    etcd = await startEtcd({ name: 'etcd-registrar-unit' });
    kv = etcd.client();
  });
  afterEach(dumpLogsOnFailure);
  after(async () => {
    await Promise.all(running.map((r) => r.stop()));
    kv.close();
    await stopAll();
    assertNoLeftovers();
  });

  it('writes the exact Dubbo key, the URL as its value, bound to a lease of the TTL; a registry reads it back', async () => {
    const root = freshRoot();
    const r = track(registrar([etcd.endpoint], root, { ttlSeconds: 5 }));
    await r.start();
    const keys = await keysUnder(kv, root);
    assert.equal(Object.keys(keys).length, 1);
    const [key, value] = Object.entries(keys)[0]!;
    const prefix = `${root}/com.alipay.userservice.UserQuery/providers/`;
    assert.ok(key.startsWith(prefix), key);
    const encoded = key.slice(prefix.length);
    assert.doesNotMatch(encoded, /[/:?&=]/, 'the URL is one percent-encoded path segment');
    const url = decodeURIComponent(encoded);
    assert.match(
      url,
      /^dubbo:\/\/127\.0\.0\.5:20880\/com\.alipay\.userservice\.UserQuery\?anyhost=false&application=userservice&interface=com\.alipay\.userservice\.UserQuery&methods=get,list&side=provider&version=1\.0\.0&timestamp=\d{13}$/,
    );
    assert.equal(value, url);
    const ttl = await kv.leaseClient.leaseTimeToLive({ ID: r.leaseId!, keys: true });
    assert.equal(ttl.grantedTTL, '5');
    assert.deepEqual(ttl.keys.map((k) => k.toString()), [key]);

    const p = parseProviderKey(key, root)!;
    assert.deepEqual([p.protocol, p.address, p.port, p.interface, p.application, p.methods, p.version], ['dubbo', '127.0.0.5', 20880, USER_QUERY.interface, 'userservice', ['get', 'list'], '1.0.0']);
    const rec = new StateRecorder(new EtcdRegistry({ endpoints: [etcd.endpoint], root }));
    try {
      const { state } = await rec.next((s) => s.synced, 'registry synced');
      assert.deepEqual(state.rejections, []);
      assert.deepEqual(state.endpoints.map((e) => [e.service, e.address, e.ports]), [['userservice.rpc.cluster.local', '127.0.0.5', { dubbo: 20880 }]]);
    } finally {
      rec.close();
    }
  });

  it('keeps the lease alive past its TTL, and stop() revokes it: every key gone at once', async () => {
    const root = freshRoot();
    const specs: ProviderSpec[] = [];
    for (let i = 0; i < 150; i++) specs.push({ ...USER_QUERY, interface: `com.acme.Svc${i}` }); // more than one transaction holds
    const r = track(registrar([etcd.endpoint], root, { providers: specs, ttlSeconds: 1 }));
    await r.start();
    assert.equal(Object.keys(await keysUnder(kv, root)).length, 150);
    const lease = r.leaseId!;
    // Three TTLs later, still there, on the same lease.
    await sleep(3000);
    assert.equal(Object.keys(await keysUnder(kv, root)).length, 150);
    assert.equal(r.leaseId, lease);
    const t1 = Date.now();
    await r.stop();
    assert.deepEqual(await keysUnder(kv, root), {});
    assert.ok(Date.now() - t1 < 1000, 'deregistered at once, not after the TTL');
    assert.equal((await kv.leaseClient.leaseTimeToLive({ ID: lease })).TTL, '-1', 'the lease is gone');
  });

  it('a lease revoked by someone else: granted again and every key written again', async () => {
    const root = freshRoot();
    const r = track(registrar([etcd.endpoint], root));
    await r.start();
    const key = Object.keys(await keysUnder(kv, root))[0]!;
    const first = r.leaseId!;
    await kv.leaseClient.leaseRevoke({ ID: first });
    assert.deepEqual(await keysUnder(kv, root), {});
    const lease = await waitFor(async () => {
      const l = await leaseOf(kv, key);
      return l !== '0' && l !== first ? l : undefined;
    }, { timeoutMs: 5000, what: 'the key written again on a new lease' });
    assert.equal(lease, r.leaseId);
    await r.stop();
  });

  it('start() while etcd is unreachable resolves once etcd answers', async () => {
    const late = new EtcdServer('etcd-registrar-late', await freePort(), await freePort(), `${scratchDir('etcd-registrar-late')}/data`, 20_000);
    const r = registrar([late.endpoint], '/dubbo');
    let done = false;
    const started = r.start().then(() => (done = true));
    try {
      await sleep(300);
      assert.equal(done, false, 'not registered while etcd is not there');
      await late.start();
      await started;
      const c = late.client();
      assert.equal(Object.keys(await keysUnder(c, '/dubbo')).length, 1);
      c.close();
    } finally {
      await r.stop();
      await late.stop();
    }
  });

  it('stop() while etcd is down returns within the request deadline, without throwing', async () => {
    const e = await startEtcd({ name: 'etcd-registrar-down' });
    const r = registrar([e.endpoint], '/dubbo', { requestTimeoutMs: 500 });
    await r.start();
    await e.stop();
    const t0 = Date.now();
    await r.stop();
    assert.ok(Date.now() - t0 < 2000, `stop took ${Date.now() - t0} ms`);
  });
});

describe('EtcdRegistrar when etcd is out of reach', () => {
  afterEach(dumpLogsOnFailure);
  after(async () => {
    await stopAll();
    assertNoLeftovers();
  });

  it('cut off longer than the TTL: etcd expires the lease; reachable again: registered again', async () => {
    const etcd = await startEtcd({ name: 'etcd-registrar-partition' });
    const proxy = await TcpProxy.start(etcd.clientPort, { http2: true });
    const kv = etcd.client();
    const r = registrar([proxy.endpoint], '/dubbo', { ttlSeconds: 2 });
    try {
      await r.start();
      const key = Object.keys(await keysUnder(kv, '/dubbo'))[0]!;
      const first = r.leaseId!;
      proxy.partition('refuse');
      const t0 = Date.now();
      await waitFor(async () => (await leaseOf(kv, key)) === '0', { timeoutMs: 6000, what: 'etcd to expire the lease and delete the key' });
      const expiredAfter = Date.now() - t0;
      assert.ok(expiredAfter > 1000, `expired after ${expiredAfter} ms with TTL 2s`);
      proxy.heal();
      const lease = await waitFor(async () => {
        const l = await leaseOf(kv, key);
        return l !== '0' ? l : undefined;
      }, { timeoutMs: 6000, what: 'the key written again once etcd is reachable' });
      assert.notEqual(lease, first);
      assert.equal(r.leaseId, lease);
      await waitFor(() => r.registered, { timeoutMs: 2000, what: 'the registrar to see its write answered' });
    } finally {
      await r.stop();
      kv.close();
      await proxy.close();
      await etcd.stop();
    }
  });

  it('etcd restarted after more than the TTL: the keys are there again and kept alive afterwards', async () => {
    const etcd = await startEtcd({ name: 'etcd-registrar-restart' });
    const r = registrar([etcd.endpoint], '/dubbo', { ttlSeconds: 2 });
    try {
      await r.start();
      await etcd.stop();
      await sleep(2500); // longer than the TTL
      await etcd.start();
      const kv = etcd.client();
      try {
        const key = await waitFor(async () => Object.keys(await keysUnder(kv, '/dubbo'))[0], { timeoutMs: 6000, what: 'the key after the restart' });
        // Two TTLs later it is still there: kept alive, not just restored by etcd.
        await sleep(4500);
        assert.notEqual(await leaseOf(kv, key), '0');
        assert.equal(await leaseOf(kv, key), r.leaseId);
      } finally {
        kv.close();
      }
    } finally {
      await r.stop();
      await etcd.stop();
    }
  });
});
