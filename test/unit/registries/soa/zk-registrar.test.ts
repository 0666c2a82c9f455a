// ZkRegistrar against a real ZooKeeper: the exact nodes a Dubbo consumer reads, ephemeral
// and owned by the registrar's session; gone when the session ends; back after an expiry.
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ProviderSpec } from '../../../../src/registries/soa/provider.ts';
import { ZkClient } from '../../../../src/registries/soa/zk-client.ts';
import { ZkRegistrar } from '../../../../src/registries/soa/zk-registrar.ts';
import { ZkRegistry } from '../../../../src/registries/soa/zk.ts';
import { assertNoLeftovers, dumpLogsOnFailure, stopAll } from '../../../helpers/processes.ts';
import { waitFor } from '../../../helpers/wait.ts';
import { TcpProxy } from '../../../helpers/tcp-proxy.ts';
import { DubboWriter, endpointAddresses, spawnRegistrar, StateLog, startZooKeeper, type ZooKeeperServer } from '../../../helpers/zookeeper.ts';

let zk: ZooKeeperServer;
let reader: ZkClient;
const cleanups: Array<() => Promise<void> | void> = [];
let rootSeq = 0;
const freshRoot = (): string => `/reg-t${++rootSeq}`;

const SPECS: ProviderSpec[] = [
  { address: '10.0.0.5', port: 20880, interface: 'com.alipay.userservice.UserQuery', application: 'userservice', methods: ['get', 'list'], version: '1.0.0' },
  { address: '10.0.0.5', port: 20880, interface: 'com.alipay.userservice.UserAdmin', application: 'userservice', methods: ['create'], version: '2.1', group: 'blue' },
];

function watch(root: string, connect = zk.connect): StateLog {
  const log = new StateLog(new ZkRegistry({ connect, root, sessionTimeoutMs: 4000 }));
  cleanups.push(() => log.close());
  return log;
}

function registrar(root: string, connect = zk.connect, sessionTimeoutMs = 1000, providers = SPECS): ZkRegistrar {
  const r = new ZkRegistrar({ connect, root, providers, sessionTimeoutMs });
  cleanups.push(() => r.stop());
  return r;
}

/** Every node under root, as path → ephemeral owner ('' for persistent). */
async function tree(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (p: string): Promise<void> => {
    const stat = await reader.exists(p);
    if (!stat) return;
    out.set(p, /^0+$/.test(stat.ephemeralOwner) ? '' : stat.ephemeralOwner);
    for (const c of await reader.getChildren(p).catch(() => [])) await walk(`${p}/${c}`);
  };
  await walk(root);
  return out;
}

before(async () => {
  zk = await startZooKeeper({ name: 'zk-registrar' });
  reader = new ZkClient(zk.connect, { sessionTimeoutMs: 4000 });
  const up = new Promise((r) => reader.once('connected', r));
  reader.connect();
  await up;
});

afterEach(async (t) => {
  dumpLogsOnFailure(t);
  for (const c of cleanups.splice(0).reverse()) await c();
});

after(async () => {
  await reader.close();
  await stopAll();
  assertNoLeftovers();
});

test('a registrar writes exactly the nodes a Dubbo consumer reads: persistent parents, one ephemeral URL node per provider', async () => {
  const root = freshRoot();
  const r = registrar(root);
  await r.start();
  const nodes = await tree(root);
  const session = r.sessionId!;
  const q = 'com.alipay.userservice.UserQuery';
  const a = 'com.alipay.userservice.UserAdmin';
  const persistent = [root, `${root}/${q}`, `${root}/${q}/providers`, `${root}/${a}`, `${root}/${a}/providers`];
  for (const p of persistent) assert.equal(nodes.get(p), '', `${p} is persistent`);
  const leaves = [...nodes].filter(([p]) => !persistent.includes(p));
  assert.equal(leaves.length, 2);
  for (const [p, owner] of leaves) assert.equal(owner, session, `${p} is ephemeral and owned by the registrar`);
  assert.deepEqual([...r.paths].sort(), leaves.map(([p]) => p).sort());

  // A Dubbo consumer lists <root>/<interface>/providers and URL-decodes each child
  // (java.net.URLDecoder: '+' is a space; there are none here).
  const [name] = await reader.getChildren(`${root}/${q}/providers`);
  assert.ok(name && !name.includes('/') && !name.includes(':') && !name.includes('?'), 'the URL is percent-encoded into one node name');
  const url = new URL(decodeURIComponent(name.replace(/\+/g, ' ')));
  assert.equal(url.protocol, 'dubbo:');
  assert.equal(url.host, '10.0.0.5:20880');
  assert.equal(url.pathname, `/${q}`);
  assert.equal(url.searchParams.get('interface'), q);
  assert.equal(url.searchParams.get('application'), 'userservice');
  assert.equal(url.searchParams.get('side'), 'provider');
  assert.equal(url.searchParams.get('methods'), 'get,list');
  assert.equal(url.searchParams.get('version'), '1.0.0');
  assert.match(url.searchParams.get('timestamp') ?? '', /^\d{13}$/);
  const [adminName] = await reader.getChildren(`${root}/${a}/providers`);
  const adminUrl = new URL(decodeURIComponent(adminName!));
  assert.equal(adminUrl.searchParams.get('group'), 'blue');
  assert.equal(adminUrl.searchParams.get('version'), '2.1');

  // And Isthmus reads them back as one service with two interface names.
  const log = watch(root);
  const st = await log.until((s) => s.synced && s.endpoints.length === 1, 'the registered provider');
  assert.deepEqual(st.services[0]!.interfaces.map((i) => i.hostname).sort(), [
    'com.alipay.userservice.useradmin.v2-1.g-blue.rpc.cluster.local',
    'com.alipay.userservice.userquery.v1-0-0.rpc.cluster.local',
  ]);
});

test('stop() deregisters at once and ends the session', async () => {
  const root = freshRoot();
  const log = watch(root);
  await log.until((s) => s.synced, 'synced');
  const r = registrar(root, zk.connect, 5000);
  await r.start();
  await log.until((s) => s.endpoints.length === 1, 'registered');
  const t0 = Date.now();
  await r.stop();
  const gone = await log.until((s) => s.endpoints.length === 0, 'deregistered');
  const ms = Date.now() - t0;
  assert.ok(ms < 2000, `deregistration took ${ms} ms, not the 5 s session timeout`);
  assert.equal(gone.error, undefined);
  assert.equal((await tree(root)).size, 5, 'only the persistent parents are left');
  await waitFor(async () => (await zk.sessions()) === 2, { what: 'only the reader and the watching registry sessions left' });
});

test('a registrar whose process is killed leaves within its session timeout', async () => {
  const root = freshRoot();
  const log = watch(root);
  const proc = await spawnRegistrar('registrar-killed', { connect: zk.connect, root, providers: SPECS, sessionTimeoutMs: 1000 });
  await log.until((s) => s.endpoints.length === 1, 'registered by the child process');
  proc.kill('SIGKILL');
  await proc.exited;
  const t0 = Date.now();
  await log.until((s) => s.endpoints.length === 0, 'providers of the killed registrar gone', { timeoutMs: 10_000 });
  const ms = Date.now() - t0;
  process.stderr.write(`# killed registrar (session timeout 1000 ms) gone from the registry after ${ms} ms\n`);
  assert.ok(ms >= 500, `gone after ${ms} ms: too early for a session timeout of 1 s`);
  assert.ok(ms < 5000, `gone after ${ms} ms`);
});

test('after its session expires a registrar registers the same nodes again in a new session', async () => {
  const root = freshRoot();
  const log = watch(root);
  const proxy = await TcpProxy.start(zk.port);
  cleanups.push(() => proxy.close());
  const r = registrar(root, proxy.endpoint, 1000);
  await r.start();
  const first = r.sessionId!;
  const paths = [...r.paths];
  await log.until((s) => s.endpoints.length === 1, 'registered');
  // Cut the registrar off for longer than its session timeout: the server expires it.
  proxy.partition('refuse');
  await log.until((s) => s.endpoints.length === 0, 'ephemeral nodes deleted by the expiry', { timeoutMs: 10_000 });
  proxy.heal();
  await log.until((s) => s.endpoints.length === 1, 'registered again', { timeoutMs: 10_000 });
  await waitFor(() => r.isRegistered, { what: 'registrar registered' });
  assert.notEqual(r.sessionId, first, 'a new session');
  const nodes = await tree(root);
  for (const p of paths) assert.equal(nodes.get(p), r.sessionId, `${p} re-created, owned by the new session`);
});

test('a registrar started before ZooKeeper answers registers once it does', async () => {
  const root = freshRoot();
  const proxy = await TcpProxy.start(zk.port);
  cleanups.push(() => proxy.close());
  proxy.partition('refuse');
  const r = registrar(root, proxy.endpoint, 2000);
  let done = false;
  const started = r.start().then(() => (done = true));
  // Several connection attempts refused, and start() still waiting.
  await waitFor(() => proxy.accepted >= 3, { what: 'the registrar to retry' });
  assert.equal(done, false, 'start() waits while ZooKeeper is unreachable');
  proxy.heal();
  await started;
  const log = watch(root);
  await log.until((s) => s.endpoints.length === 1, 'registered');
});

test('a node left by a dead session of the same provider is taken over', async () => {
  const root = freshRoot();
  const stale = await DubboWriter.connect(zk.connect, root, 30_000);
  cleanups.push(() => stale.close());
  const r = registrar(root, zk.connect, 2000, [SPECS[0]!]);
  // The same URL (same timestamp) as an earlier incarnation would have written, still held by its old session.
  await stale.node(r.paths[0]!);
  await r.start();
  const nodes = await tree(root);
  assert.equal(nodes.get(r.paths[0]!), r.sessionId);
  await stale.close();
  const log = watch(root);
  const st = await log.until((s) => s.synced, 'synced');
  assert.deepEqual(endpointAddresses(st), ['10.0.0.5:20880'], 'still registered after the old session ended');
});
