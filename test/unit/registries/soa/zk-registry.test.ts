// ZkRegistry against a real ZooKeeper: the Dubbo layout read exactly, changes followed,
// malformed nodes rejected without disturbing the rest.
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { metrics } from '../../../../src/shared/metrics.ts';
import { providerKey } from '../../../../src/registries/soa/provider.ts';
import { ZkRegistry } from '../../../../src/registries/soa/zk.ts';
import { assertNoLeftovers, dumpLogsOnFailure, stopAll } from '../../../helpers/processes.ts';
import { waitFor } from '../../../helpers/wait.ts';
import { DubboWriter, dubboUrl, endpointAddresses, StateLog, startZooKeeper, type ZooKeeperServer } from '../../../helpers/zookeeper.ts';

let zk: ZooKeeperServer;
let writer: DubboWriter;
const logs: StateLog[] = [];
let rootSeq = 0;

/** A fresh root per test, so tests do not see each other's nodes. */
function freshRoot(): string {
  return `/dubbo-t${++rootSeq}`;
}

function watch(root: string, extra: { sessionTimeoutMs?: number } = {}): { registry: ZkRegistry; log: StateLog } {
  const registry = new ZkRegistry({ connect: zk.connect, root, sessionTimeoutMs: extra.sessionTimeoutMs ?? 4000 });
  const log = new StateLog(registry);
  logs.push(log);
  return { registry, log };
}

before(async () => {
  zk = await startZooKeeper({ name: 'zk-registry' });
  writer = await DubboWriter.connect(zk.connect);
});

afterEach((t) => {
  dumpLogsOnFailure(t);
  for (const l of logs.splice(0)) l.close();
});

after(async () => {
  await writer.close();
  await stopAll();
  assertNoLeftovers();
});

const USER_QUERY = 'com.alipay.userservice.UserQuery';
const USER_ADMIN = 'com.alipay.userservice.UserAdmin';

test('providers in the exact Dubbo layout become one service per application, each interface a name of it', async () => {
  const root = freshRoot();
  const w = await DubboWriter.connect(zk.connect, root);
  try {
    // Ephemeral (as Dubbo writes them) and persistent (as some admin tools and Dubbo 2.5 "dynamic=false" do).
    await w.provider(dubboUrl({ address: '10.0.0.5', port: 20880, iface: USER_QUERY, application: 'userservice', methods: ['get', 'list'], version: '1.0.0' }));
    await w.provider(dubboUrl({ address: '10.0.0.5', port: 20880, iface: USER_ADMIN, application: 'userservice', methods: ['create'] }));
    await w.provider(dubboUrl({ address: '10.0.0.6', port: 20880, iface: USER_QUERY, application: 'userservice', methods: ['get', 'list'], version: '1.0.0' }), { ephemeral: false });
    // A consumer and a configurator share the layout and are not providers.
    await w.node(`${root}/${USER_QUERY}/consumers/${encodeURIComponent(`consumer://10.0.0.9/${USER_QUERY}?application=web&side=consumer`)}`);
    await w.node(`${root}/${USER_QUERY}/configurators`, false);

    const { registry, log } = watch(root);
    assert.equal(registry.id, `zk://${zk.connect}${root}`);
    const st = await log.until((s) => s.synced && s.endpoints.length === 2, 'two userservice endpoints');
    assert.equal(st.error, undefined);
    assert.deepEqual(st.rejections, []);
    assert.deepEqual(st.services.map((s) => s.hostname), ['userservice.rpc.cluster.local']);
    const svc = st.services[0]!;
    assert.deepEqual(svc.ports, [{ name: 'dubbo', number: 20880, protocol: 'DUBBO' }]);
    assert.deepEqual(
      svc.interfaces.map((i) => [i.name, i.version, i.hostname, i.methods]),
      [
        [USER_ADMIN, undefined, 'com.alipay.userservice.useradmin.rpc.cluster.local', ['create']],
        [USER_QUERY, '1.0.0', 'com.alipay.userservice.userquery.v1-0-0.rpc.cluster.local', ['get', 'list']],
      ],
    );
    assert.deepEqual(endpointAddresses(st), ['10.0.0.5:20880', '10.0.0.6:20880']);
    const e5 = st.endpoints.find((e) => e.address === '10.0.0.5')!;
    assert.deepEqual(e5.interfaces, ['com.alipay.userservice.useradmin.rpc.cluster.local', 'com.alipay.userservice.userquery.v1-0-0.rpc.cluster.local']);
    assert.equal(e5.origin.registry, registry.id);
    assert.equal(e5.labels.app, 'userservice');
  } finally {
    await w.close();
  }
});

test('nodes created later are picked up and deleted ones removed, one state per change', async () => {
  const root = freshRoot();
  const { log } = watch(root);
  // The root does not exist yet: synced, nothing served.
  const empty = await log.until((s) => s.synced, 'synced on a missing root');
  assert.deepEqual(empty.services, []);
  assert.equal(empty.error, undefined);

  const w = await DubboWriter.connect(zk.connect, root);
  try {
    const a = await w.provider(dubboUrl({ address: '10.1.0.1', port: 20880, iface: 'com.acme.Orders', application: 'orders' }));
    await log.until((s) => endpointAddresses(s).join() === '10.1.0.1:20880', 'first provider under a new root');
    // A new interface of the same application, and a second instance.
    await w.provider(dubboUrl({ address: '10.1.0.1', port: 20880, iface: 'com.acme.Refunds', application: 'orders' }));
    const b = await w.provider(dubboUrl({ address: '10.1.0.2', port: 20880, iface: 'com.acme.Orders', application: 'orders' }));
    let st = await log.until((s) => s.endpoints.length === 2 && s.services[0]!.interfaces.length === 2, 'second interface and instance');
    assert.deepEqual(endpointAddresses(st), ['10.1.0.1:20880', '10.1.0.2:20880']);

    // Deleting a provider node removes exactly that provider.
    await w.remove(b);
    st = await log.until((s) => s.endpoints.length === 1, 'deleted provider removed');
    assert.deepEqual(endpointAddresses(st), ['10.1.0.1:20880']);
    // An interface whose last provider leaves is no longer a name of the service.
    await w.remove(a);
    st = await log.until((s) => s.services[0]?.interfaces.length === 1, 'interface without providers dropped');
    assert.deepEqual(st.services[0]!.interfaces.map((i) => i.name), ['com.acme.Refunds']);
    // A whole providers directory deleted and re-created is followed too.
    await w.client.remove(`${root}/com.acme.Orders/providers`);
    await w.provider(dubboUrl({ address: '10.1.0.3', port: 20880, iface: 'com.acme.Orders', application: 'orders' }));
    st = await log.until((s) => endpointAddresses(s).includes('10.1.0.3:20880'), 're-created providers directory');
    assert.equal(st.services[0]!.interfaces.length, 2);
  } finally {
    await w.close();
  }
  // Ephemeral nodes vanish with the writer's session.
  await log.until((s) => s.endpoints.length === 0 && s.services.length === 0, 'writer session closed: providers gone');
  // No emission repeats the previous one.
  for (let i = 1; i < log.states.length; i++) assert.notDeepEqual(log.states[i], log.states[i - 1], `state ${i} repeats state ${i - 1}`);
});

test('malformed nodes are rejected with key and field, counted once, logged once, and do not disturb the rest', async () => {
  const root = freshRoot();
  const w = await DubboWriter.connect(zk.connect, root);
  const captured: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    captured.push(String(chunk));
    return (write as (c: string | Uint8Array, ...r: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stderr.write;
  try {
    const good = dubboUrl({ address: '10.2.0.1', port: 20880, iface: 'com.acme.Good', application: 'good' });
    await w.provider(good);
    const bad = {
      noApp: providerKey(root, 'com.acme.Bad', 'dubbo://10.2.0.2:20880/com.acme.Bad?interface=com.acme.Bad&side=provider'),
      badPort: providerKey(root, 'com.acme.Bad', 'dubbo://10.2.0.2:99999/com.acme.Bad?application=bad'),
      hostname: providerKey(root, 'com.acme.Bad', 'dubbo://provider.example:20880/com.acme.Bad?application=bad'),
      wrongIface: providerKey(root, 'com.acme.Bad', 'dubbo://10.2.0.2:20880/com.acme.Other?application=bad'),
      badEncoding: `${root}/com.acme.Bad/providers/dubbo%3A%2F%2F10.2.0.2%3A20880%2F%E0%A4%A`,
      notUrl: `${root}/com.acme.Bad/providers/just some text ✓ \u00e9\u4e2d`,
      huge: providerKey(root, 'com.acme.Bad', `dubbo://10.2.0.2:20880/com.acme.Bad?application=bad&x=${'y'.repeat(20_000)}`),
      weight: providerKey(root, 'com.acme.Bad', 'dubbo://10.2.0.2:20880/com.acme.Bad?application=bad&weight=-3'),
    };
    for (const path of Object.values(bad)) await w.node(path);
    const before = metrics.counter('isthmus_soa_malformed_providers_total', '').get({ registry: `zk://${zk.connect}${root}` });
    assert.equal(before, 0);

    const { registry, log } = watch(root);
    let st = await log.until((s) => s.synced && s.rejections.length === Object.keys(bad).length, 'every malformed node rejected');
    assert.deepEqual(endpointAddresses(st), ['10.2.0.1:20880'], 'the good provider is served');
    const byField = Object.fromEntries(st.rejections.map((r) => [r.field, r]));
    assert.deepEqual(Object.keys(byField).sort(), ['address', 'application', 'interface', 'key', 'port', 'url', 'weight'].sort());
    const rejected = (path: string) => st.rejections.find((r) => r.source === path || (path.length > 512 && r.source.startsWith(path.slice(0, 100))));
    assert.equal(rejected(bad.noApp)?.field, 'application');
    assert.equal(rejected(bad.badPort)?.field, 'port');
    assert.equal(rejected(bad.hostname)?.field, 'address');
    assert.equal(rejected(bad.wrongIface)?.field, 'interface');
    assert.equal(rejected(bad.badEncoding)?.field, 'key');
    assert.equal(rejected(bad.notUrl)?.field, 'url');
    assert.equal(rejected(bad.weight)?.field, 'weight');
    const huge = rejected(bad.huge)!;
    assert.equal(huge.field, 'key');
    assert.ok(huge.source.length <= 600, `a huge key is clipped in rejections (${huge.source.length} chars)`);
    assert.match(huge.source, /bytes, sha256 [0-9a-f]{12}\)$/);

    const counter = () => metrics.counter('isthmus_soa_malformed_providers_total', '').get({ registry: registry.id });
    assert.equal(counter(), Object.keys(bad).length);
    assert.equal(metrics.gauge('isthmus_soa_rejected_providers', '').get({ registry: registry.id }), Object.keys(bad).length);
    assert.equal(metrics.gauge('isthmus_soa_providers', '').get({ registry: registry.id }), 1);

    // More changes (new states) neither count nor log the same malformed nodes again.
    await w.provider(dubboUrl({ address: '10.2.0.3', port: 20880, iface: 'com.acme.Good', application: 'good' }));
    st = await log.until((s) => s.endpoints.length === 2, 'a further good provider');
    assert.equal(st.rejections.length, Object.keys(bad).length);
    assert.equal(counter(), Object.keys(bad).length);
    const lines = captured.join('').split('\n').filter((l) => l.includes('provider rejected') && l.includes(registry.id));
    assert.equal(lines.length, Object.keys(bad).length, lines.join('\n'));
    assert.ok(lines.every((l) => l.length < 4096), 'log lines stay bounded');

    // Fixing it (deleting the node) removes the rejection.
    await w.remove(bad.noApp);
    st = await log.until((s) => s.rejections.length === Object.keys(bad).length - 1, 'deleted malformed node no longer rejected');
    assert.equal(st.endpoints.length, 2);
  } finally {
    process.stderr.write = write;
    await w.close();
  }
});

test('two interfaces claiming one canonical name are both reported, neither served', async () => {
  const root = freshRoot();
  const w = await DubboWriter.connect(zk.connect, root);
  try {
    await w.provider(dubboUrl({ address: '10.3.0.1', port: 20880, iface: 'com.acme.Foo_Bar', application: 'a' }));
    await w.provider(dubboUrl({ address: '10.3.0.2', port: 20880, iface: 'com.acme.Foo$Bar', application: 'a' }));
    await w.provider(dubboUrl({ address: '10.3.0.3', port: 20880, iface: 'com.acme.Fine', application: 'a' }));
    const { log } = watch(root);
    const st = await log.until((s) => s.synced && s.rejections.length === 2, 'the collision reported for both');
    assert.deepEqual(st.services[0]!.interfaces.map((i) => i.name), ['com.acme.Fine']);
    assert.ok(st.rejections.every((r) => /also claimed by/.test(r.reason)));
  } finally {
    await w.close();
  }
});

test('unsubscribing closes the ZooKeeper session', async () => {
  const root = freshRoot();
  // Only the shared writer's session once earlier tests' sessions have closed.
  await waitFor(async () => (await zk.sessions()) === 1, { timeoutMs: 5000, what: 'earlier sessions to end' });
  const base = 1;
  const { log } = watch(root);
  await log.until((s) => s.synced, 'synced');
  assert.equal(await zk.sessions(), base + 1);
  log.close();
  await waitFor(async () => (await zk.sessions()) === base, { timeoutMs: 5000, what: 'the registry session to end' });
});
