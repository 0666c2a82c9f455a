// Dubbo on etcd as it runs: stock Apache Dubbo 3.2 with dubbo-registry-etcd3 (the newest
// etcd-capable Dubbo on Maven Central), both sides. Three providers of one application, each
// in its own network namespace on Dubbo's 20880, one per register mode: interface (etcd3://),
// instance (etcd://; Dubbo on etcd writes no mapping, so its interfaces come from its
// application's interface-level providers) and all (both). A stock consumer pointed at an
// interface's VIP through an explicit sidecar with VIP listeners: 200 calls on its one
// connection are balanced per request over all three; a second application exporting the
// same interfaces shares their names (Dubbo's semantics: an interface's providers in every
// application) while each application keeps its own; kill -9 and SIGTERM take instances out.
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Endpoint, Service } from '../../src/model/types.ts';
import { dubboAnswer, etcdRegistry, GREETER, ORDERS, startDubboConsumer, startDubboProvider, type DubboConsumer, type DubboProvider, type RegisterMode } from '../helpers/dubbo.ts';
import { startEtcd, type EtcdServer } from '../helpers/etcd.ts';
import { bootstrap, ManifestDir } from '../helpers/isthmus.ts';
import { NetLab, type Agent, type Host } from '../helpers/netns.ts';
import { assertNoLeftovers, dumpLogsOnFailure, stopAll } from '../helpers/processes.ts';
import { waitUntil } from '../helpers/wait.ts';

const DUBBO = 20880;
const APP = 'billing.rpc.cluster.local';
const OTHER_APP = 'payments.rpc.cluster.local';
const GREETER_HOST = 'com.example.isthmus.greeter.rpc.cluster.local';
const ORDERS_HOST = 'com.example.isthmus.orders.rpc.cluster.local';
const MODES: readonly RegisterMode[] = ['interface', 'instance', 'all'];
const WAIT = { timeoutMs: 40_000, intervalMs: 300 };
const manifests = new ManifestDir();
let lab: NetLab | undefined;
let etcd: EtcdServer;
let adminUrl: string;
let consumer: DubboConsumer;
let caller: Agent;
const hosts: Host[] = [];
const providers: DubboProvider[] = [];

type ServiceView = Service & { endpoints: Endpoint[] };
interface Registryz {
  registries: { id: string; rejections: { reason: string }[]; warnings?: { source: string; reason: string }[] }[];
  services: ServiceView[];
}

const registryz = async (): Promise<Registryz> => (await (await fetch(`${adminUrl}/debug/registryz`)).json()) as Registryz;
const service = async (host: string): Promise<ServiceView | undefined> => (await registryz()).services.find((s) => s.hostname === host);
const addresses = (s: ServiceView | undefined): string[] => (s?.endpoints ?? []).map((e) => e.address).sort();
const answer = (iface: typeof GREETER | typeof ORDERS, i: number): string => dubboAnswer(iface, 'billing', `b-${MODES[i]}`);

before(async () => {
  lab = await NetLab.create();
  const callerHost = await lab.addHost('caller');
  for (const m of MODES) hosts.push(await lab.addHost(`p-${m}`));
  const paymentsHost = await lab.addHost('p-payments');
  etcd = await startEtcd({ name: 'etcd-dubbo', host: lab.rootIp });
  const served = await lab.isthmus([etcd.url('/dubbo'), manifests.url], `${manifests.dir}/../vips.json`);
  adminUrl = served.adminUrl;
  const inNs = (h: Host) => (n: string, cmd: string, args: readonly string[]) => lab!.spawn(h, n, cmd, args);
  // hessian2: Dubbo 3.2 prefers fastjson2 by default, which Envoy's Dubbo filter cannot decode
  // (such a port stays opaque TCP; netns-dubbo-filter.test.ts shows that case).
  providers.push(
    ...(await Promise.all(
      MODES.map((mode, i) =>
        startDubboProvider({
          build: 'etcd3', registry: etcdRegistry(etcd.endpoint, mode), ...(mode === 'all' ? {} : { registerMode: mode }),
          application: 'billing', instance: `b-${mode}`, host: hosts[i]!.ip, port: DUBBO, preferSerialization: 'hessian2', spawn: inNs(hosts[i]!),
        }),
      ),
    )),
  );
  await startDubboProvider({ build: 'etcd3', registry: etcdRegistry(etcd.endpoint, 'interface'), registerMode: 'interface', application: 'payments', instance: 'pay-1', host: paymentsHost.ip, port: DUBBO, preferSerialization: 'hessian2', spawn: inNs(paymentsHost) });
  // Dubbo 3.2 consumers export their MetadataService on 20880, where the sidecar listens.
  consumer = await startDubboConsumer({ build: 'etcd3', spawn: inNs(callerHost), controlHost: callerHost.ip, metadataServicePort: 20990 });
  caller = await lab.agent(callerHost, { dns: served.dns });
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

async function vipOf(name: string): Promise<string> {
  const [vip] = await waitUntil(() => caller.request<string[]>('/resolve', { name }), (a) => a.length === 1, { ...WAIT, what: `${name} resolves` });
  return vip!;
}

test('every register mode is served: the application holds all three instances, once each, on a Dubbo port; each interface name those of both applications', async () => {
  const all = hosts.map((h) => h.ip).sort();
  const app = await waitUntil(() => service(APP), (s) => addresses(s).join() === all.join(), { ...WAIT, what: 'billing with its three instances' });
  assert.deepEqual(app!.ports.map((p) => [p.number, p.protocol]), [[DUBBO, 'DUBBO']]);
  for (const host of [GREETER_HOST, ORDERS_HOST]) {
    const shared = await waitUntil(() => service(host), (s) => (s?.endpoints.length ?? 0) === 4, { ...WAIT, what: `${host} with the instances of both applications` });
    assert.deepEqual(shared!.endpoints.map((e) => e.labels.app).sort(), ['billing', 'billing', 'billing', 'payments'], host);
    assert.deepEqual(shared!.ports.map((p) => p.protocol), ['DUBBO']);
  }
  const z = await registryz();
  const reg = z.registries.find((r) => r.id.startsWith('etcd://'))!;
  assert.deepEqual(reg.rejections, []);
  // The instance-mode provider's interfaces are inferred, and said so; the all-mode one counts once.
  const inferred = (reg.warnings ?? []).filter((w) => /is in the mapping: its interfaces .* are taken from the application's interface-level providers/.test(w.reason));
  assert.deepEqual(inferred.map((w) => w.source), [`/services/billing/${hosts[1]!.ip}:${DUBBO}`]);
  assert.match((reg.warnings ?? []).map((w) => w.reason).join('\n'), /interface com\.example\.isthmus\.Orders is provided by applications billing, payments/);
});

test('200 calls on one consumer connection are balanced per request: an interface\'s VIP over the instances of both applications, the application\'s VIP over its own three', async () => {
  const pay = dubboAnswer(ORDERS, 'payments', 'pay-1');
  const iface = `dubbo://${await vipOf(ORDERS_HOST)}:${DUBBO}`;
  await waitUntil(() => consumer.call(ORDERS, 40, { url: iface }), (t) => [...MODES.map((_, i) => answer(ORDERS, i)), pay].every((a) => (t.counts[a] ?? 0) > 0), { ...WAIT, what: 'all four providers answering' });
  const t = await consumer.call(ORDERS, 200, { url: iface });
  assert.deepEqual(t.errors, [], JSON.stringify(t));
  const shares = [...MODES.map((_, i) => t.counts[answer(ORDERS, i)] ?? 0), t.counts[pay] ?? 0];
  process.stderr.write(`# Dubbo 3.2 on etcd, ${ORDERS} (shared by billing and payments) over one connection (billing interface/instance/all, payments): ${shares.join(' / ')} of 200\n`);
  assert.equal(shares.reduce((a, b) => a + b, 0), 200);
  for (const n of shares) assert.ok(n >= 25, `shares ${shares.join('/')}`);
  const own = await consumer.call(ORDERS, 150, { url: `dubbo://${await vipOf(APP)}:${DUBBO}` });
  assert.deepEqual(own.errors, []);
  const mine = MODES.map((_, i) => own.counts[answer(ORDERS, i)] ?? 0);
  assert.equal(own.counts[pay] ?? 0, 0, 'billing\'s name reaches billing only');
  for (const n of mine) assert.ok(n >= 30, `billing shares ${mine.join('/')}`);
  assert.ok(await service(OTHER_APP), 'payments keeps its own name');
});

test('kill -9 takes an instance out when its lease ends, SIGTERM at once; calls go on to the rest', async () => {
  const ip = (i: number): string => hosts[i]!.ip;
  providers[2]!.proc.kill('SIGKILL');
  const t0 = Date.now();
  await waitUntil(() => service(APP), (s) => !addresses(s).includes(ip(2)), { ...WAIT, what: 'the all-mode instance gone after kill -9' });
  process.stderr.write(`# kill -9 of a Dubbo 3.2 provider on etcd (4 s lease) → gone from registryz after ${Date.now() - t0} ms\n`);
  await providers[1]!.stop();
  await waitUntil(() => service(APP), (s) => addresses(s).join() === ip(0), { ...WAIT, what: 'only the interface-mode instance left' });
  const url = `dubbo://${await vipOf(APP)}:${DUBBO}`;
  const t = await waitUntil(() => consumer.call(GREETER, 20, { url }), (x) => x.counts[answer(GREETER, 0)] === 20, { ...WAIT, what: 'every call to the remaining instance' });
  assert.deepEqual(t.errors, []);
});
