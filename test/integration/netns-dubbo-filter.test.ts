// Dubbo through Envoy's Dubbo filter, with stock Apache Dubbo 3.3 on both sides: three
// providers of one application, each in its own network namespace on Dubbo's 20880,
// registering in a real ZooKeeper; a stock consumer on a caller host pointed at a name's VIP
// (url=dubbo://VIP:20880) through an explicit sidecar with VIP listeners. One consumer
// connection carries every call, so what spreads them is Envoy balancing per request; a
// VirtualService on the interface's name splits one method 90/10; a provider that prefers
// fastjson2 (which the filter cannot decode) is served as opaque TCP, with the reason shown.
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { dubboAnswer, GREETER, ORDERS, startDubboConsumer, startDubboProvider, zookeeperRegistry, type DubboConsumer } from '../helpers/dubbo.ts';
import { bootstrap, ManifestDir } from '../helpers/isthmus.ts';
import { NetLab, type Agent, type Host } from '../helpers/netns.ts';
import { assertNoLeftovers, dumpLogsOnFailure, stopAll } from '../helpers/processes.ts';
import { waitUntil } from '../helpers/wait.ts';
import { startZooKeeper, type ZooKeeperServer } from '../helpers/zookeeper.ts';

const DUBBO = 20880;
const APP = 'orders.rpc.cluster.local';
const GREETER_HOST = 'com.example.isthmus.greeter.rpc.cluster.local';
const LEDGER = 'ledger.rpc.cluster.local';
const TRACKS = ['stable', 'stable', 'canary'] as const;
const WAIT = { timeoutMs: 40_000, intervalMs: 300 };
const manifests = new ManifestDir();
let lab: NetLab | undefined;
let zk: ZooKeeperServer;
let adminUrl: string;
let consumer: DubboConsumer;
let caller: Agent;
const providers: Host[] = [];

async function vipOf(name: string): Promise<string> {
  const [vip] = await waitUntil(() => caller.request<string[]>('/resolve', { name }), (a) => a.length === 1, { ...WAIT, what: `${name} resolves` });
  return vip!;
}

async function registryWarnings(): Promise<{ source: string; reason: string }[]> {
  const z = (await (await fetch(`${adminUrl}/debug/registryz`)).json()) as { registries: { id: string; warnings?: { source: string; reason: string }[] }[] };
  return z.registries.flatMap((r) => r.warnings ?? []);
}

async function xdsProblems(): Promise<{ name: string; reason: string }[]> {
  const z = (await (await fetch(`${adminUrl}/debug/registryz`)).json()) as { xdsProblems?: { name: string; reason: string }[] };
  return z.xdsProblems ?? [];
}

before(async () => {
  lab = await NetLab.create();
  const callerHost = await lab.addHost('caller');
  for (let i = 1; i <= 4; i++) providers.push(await lab.addHost(`p${i}`));
  zk = await startZooKeeper({ name: 'zk-dubbo-filter', host: lab.rootIp });
  const served = await lab.isthmus([zk.url('/dubbo'), manifests.url], `${manifests.dir}/../vips.json`);
  adminUrl = served.adminUrl;
  const { dns } = served;
  const inNs = (h: Host) => (n: string, cmd: string, args: readonly string[]) => lab!.spawn(h, n, cmd, args);
  const registry = zookeeperRegistry(zk.connect);
  await Promise.all([
    ...TRACKS.map((track, i) => startDubboProvider({ registry, application: 'orders', instance: `o${i + 1}`, host: providers[i]!.ip, port: DUBBO, params: { track }, spawn: inNs(providers[i]!) })),
    // Dubbo 3.2's default preference: its calls may be fastjson2, which the filter cannot decode.
    // Its own version: the same interfaces in another application would share their names with orders.
    startDubboProvider({ registry, application: 'ledger', instance: 'l1', host: providers[3]!.ip, port: DUBBO, version: '9', preferSerialization: 'fastjson2,hessian2', spawn: inNs(providers[3]!) }),
  ]);
  consumer = await startDubboConsumer({ spawn: inNs(callerHost), controlHost: callerHost.ip });
  caller = await lab.agent(callerHost, { dns });
  await lab.inNs(callerHost.ns, 'ip', ['route', 'add', 'local', '240.240.0.0/16', 'dev', 'lo']);
  await lab.sidecar(callerHost, await bootstrap(['--node-id', 'caller', '--xds-address', served.xds, '--vip-listeners']));
});

afterEach(dumpLogsOnFailure);
after(async () => {
  await stopAll(15_000);
  await lab?.destroy();
  const still = lab ? await lab.leftovers() : [];
  assertNoLeftovers();
  assert.deepEqual(still, [], `left behind: ${still.join('; ')}`);
});

const answer = (iface: typeof GREETER | typeof ORDERS, i: number): string => dubboAnswer(iface, 'orders', `o${i + 1}`);

test('200 calls on one consumer connection to the application\'s VIP are balanced per request over its 3 providers', async () => {
  const url = `dubbo://${await vipOf(APP)}:${DUBBO}`;
  await waitUntil(() => consumer.call(ORDERS, 30, { url }), (t) => TRACKS.every((_, i) => (t.counts[answer(ORDERS, i)] ?? 0) > 0), { ...WAIT, what: 'all three providers answering' });
  for (const iface of [GREETER, ORDERS] as const) {
    const t = await consumer.call(iface, 200, { url });
    assert.deepEqual(t.errors, [], JSON.stringify(t));
    const shares = TRACKS.map((_, i) => t.counts[answer(iface, i)] ?? 0);
    process.stderr.write(`# ${iface} over one connection: ${shares.join(' / ')} of 200\n`);
    assert.equal(shares.reduce((a, b) => a + b, 0), 200);
    // Round robin per request: ~67 each; per connection it would be 200 / 0 / 0.
    for (const n of shares) assert.ok(n >= 40, `shares ${shares.join('/')}`);
  }
});

test('a VirtualService on the interface\'s name splits one method 90/10 between subsets; its other methods and names are untouched', async () => {
  manifests.write('rules.yaml', [
    { apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'greeter', namespace: 'default' }, spec: { host: GREETER_HOST, subsets: [{ name: 'stable', labels: { track: 'stable' } }, { name: 'canary', labels: { track: 'canary' } }] } },
    {
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualService',
      metadata: { name: 'greeter', namespace: 'default' },
      spec: {
        hosts: [GREETER_HOST],
        http: [{ match: [{ uri: { exact: '/com.example.isthmus.Greeter/greet' } }], route: [{ destination: { host: GREETER_HOST, subset: 'stable' }, weight: 90 }, { destination: { host: GREETER_HOST, subset: 'canary' }, weight: 10 }] }],
      },
    },
  ]);
  const url = `dubbo://${await vipOf(GREETER_HOST)}:${DUBBO}`;
  const canary = answer(GREETER, 2);
  // Applied once a batch shows the split (before it, the canary takes a third).
  await waitUntil(() => consumer.call(GREETER, 100, { url }), (x) => x.errors.length === 0 && (x.counts[canary] ?? 0) <= 20, { ...WAIT, what: 'the 90/10 split applied' });
  const t = await consumer.call(GREETER, 200, { url });
  assert.deepEqual(t.errors, []);
  const c = t.counts[canary] ?? 0;
  process.stderr.write(`# greet 90/10: canary ${c} of 200 (${JSON.stringify(t.counts)})\n`);
  assert.ok(c >= 4 && c <= 40, `canary ${c} of 200`);
  assert.equal((t.counts[answer(GREETER, 0)] ?? 0) + (t.counts[answer(GREETER, 1)] ?? 0) + c, 200);
  // Orders through the application's VIP, on the connection opened before the rule change:
  // the routes changed as their own resource (DRDS), the listener did not, so nothing failed.
  const o = await consumer.call(ORDERS, 60, { url: `dubbo://${await vipOf(APP)}:${DUBBO}` });
  assert.deepEqual(o.errors, [], 'no call failed across the rule change');
  assert.ok(TRACKS.every((_, i) => (o.counts[answer(ORDERS, i)] ?? 0) > 5), JSON.stringify(o));
  assert.deepEqual((await xdsProblems()).filter((p) => p.name.startsWith(GREETER_HOST) || /VirtualService default\/greeter/.test(p.name)), []);
});

test('a provider preferring fastjson2 is served as opaque TCP with the reason shown, and fastjson2 calls work', async () => {
  const warnings = await waitUntil(registryWarnings, (ws) => ws.some((w) => /^application ledger:/.test(w.reason)), { ...WAIT, what: 'the ledger port reported' });
  const w = warnings.find((x) => /^application ledger:/.test(x.reason))!;
  assert.match(w.reason, /Dubbo port 20880 served as opaque TCP .*prefers serialization fastjson2, which Envoy's Dubbo filter cannot decode/);
  const url = `dubbo://${await vipOf(LEDGER)}:${DUBBO}?serialization=fastjson2`;
  const t = await waitUntil(() => consumer.call(GREETER, 5, { url, version: '9' }), (x) => x.counts[dubboAnswer(GREETER, 'ledger', 'l1')] === 5, { ...WAIT, what: 'fastjson2 calls to ledger' });
  assert.deepEqual(t.errors, []);
});
