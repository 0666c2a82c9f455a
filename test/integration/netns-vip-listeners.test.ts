// Explicit mode on VIPs (isthmus bootstrap --vip-listeners), without iptables: the caller's
// sidecar listens on every service's VIP:port, bound to the VIP itself (the host routes the
// VIP range to lo). An app dials the address its name resolves to, which no client stack
// rewrites (Dubbo turns 127.x into the host's address), and two applications on one TCP port
// are two listeners, each reaching its own providers.
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { dubboAnswer, GREETER, ORDERS, startDubboConsumer, startDubboProvider, type DubboConsumer } from '../helpers/dubbo.ts';
import { bootstrap, ManifestDir } from '../helpers/isthmus.ts';
import { NetLab, type Agent, type Host } from '../helpers/netns.ts';
import { PORTS } from '../helpers/netns-protocol.ts';
import { assertNoLeftovers, dumpLogsOnFailure, stopAll } from '../helpers/processes.ts';
import { waitUntil } from '../helpers/wait.ts';

const APPS = ['orders', 'billing'] as const;
/** Dubbo's default port, taken by both applications. */
const DUBBO = 20880;
const name = (app: string): string => `${app}.rpc.cluster.local`;
const manifests = new ManifestDir();
let lab: NetLab | undefined;
let consumer: DubboConsumer;
const hosts: Record<string, Host> = {};
const agents: Record<string, Agent> = {};

function entries(app: string, host: Host): object[] {
  const meta = (kind: string): object => ({ apiVersion: 'networking.istio.io/v1', kind, metadata: { name: app, namespace: 'default' } });
  return [
    {
      ...meta('ServiceEntry'),
      spec: {
        hosts: [name(app)],
        location: 'MESH_INTERNAL',
        resolution: 'STATIC',
        // Both applications on one TCP port, as Dubbo's 20880 makes common.
        ports: [
          { number: PORTS.tcp, name: 'line', protocol: 'TCP' },
          { number: PORTS.http, name: 'http', protocol: 'HTTP' },
          { number: DUBBO, name: 'dubbo', protocol: 'TCP' },
        ],
        workloadSelector: { labels: { app } },
      },
    },
    { ...meta('WorkloadEntry'), spec: { address: host.ip, labels: { app }, ports: { line: PORTS.tcp, http: PORTS.http, dubbo: DUBBO } } },
  ];
}

before(async () => {
  lab = await NetLab.create();
  hosts.caller = await lab.addHost('caller');
  for (const app of APPS) hosts[app] = await lab.addHost(app);
  manifests.write('apps.yaml', APPS.flatMap((app) => entries(app, hosts[app]!)));
  const served = await lab.isthmus([manifests.url], `${manifests.dir}/../vips.json`);
  const { dns } = served;
  for (const app of APPS) agents[app] = await lab.agent(hosts[app]!, { serve: app });
  // Stock Dubbo: a provider of each application on 20880 of its host, and a consumer on the caller.
  const inNs = (h: Host) => (n: string, cmd: string, args: readonly string[]) => lab!.spawn(h, n, cmd, args);
  await Promise.all(APPS.map((app) => startDubboProvider({ registry: 'N/A', application: app, host: hosts[app]!.ip, port: DUBBO, spawn: inNs(hosts[app]!) })));
  consumer = await startDubboConsumer({ spawn: inNs(hosts.caller), controlHost: hosts.caller.ip });
  agents.caller = await lab.agent(hosts.caller, { dns });
  // The one piece of host set-up VIP listeners need: the VIP range is local (no iptables).
  await lab.inNs(hosts.caller.ns, 'ip', ['route', 'add', 'local', '240.240.0.0/16', 'dev', 'lo']);
  const boot = await bootstrap(['--node-id', 'caller', '--xds-address', served.xds, '--vip-listeners']);
  await lab.sidecar(hosts.caller, boot);
});

afterEach(dumpLogsOnFailure);
after(async () => {
  await stopAll();
  await lab?.destroy();
  const still = lab ? await lab.leftovers() : [];
  assertNoLeftovers();
  assert.deepEqual(still, [], `left behind: ${still.join('; ')}`);
});

test('two applications on one TCP port: each name\'s VIP reaches its own providers through the explicit sidecar', async () => {
  for (const app of APPS) {
    const [vip] = await waitUntil(() => agents.caller!.request<string[]>('/resolve', { name: name(app) }), (a) => a.length === 1, { timeoutMs: 20_000, intervalMs: 200, what: `${name(app)} resolves` });
    assert.match(vip!, /^240\.240\./);
    for (const proto of ['tcp', 'http'] as const) {
      const call = { proto, host: vip!, port: PORTS[proto], authority: `${name(app)}:${PORTS[proto]}` };
      const a = await waitUntil(() => agents.caller!.request<{ ok: boolean; by?: string; error?: string }>('/call', call), (x) => x.ok, {
        timeoutMs: 20_000,
        intervalMs: 200,
        what: `${proto} to ${app} at ${vip}`,
      });
      assert.equal(a.by, app, `${proto} call to ${name(app)} (${vip}) answered by ${a.by}`);
      // Tolerance: none. Ten more, all to the name's own provider (only the sidecar listens on the VIP).
      for (let i = 0; i < 10; i++) assert.equal((await agents.caller!.request<{ by?: string }>('/call', call)).by, app);
    }
  }
});

test('a stock Dubbo consumer pointed at a name\'s VIP (url=dubbo://VIP:20880) reaches that application through the sidecar, for both on 20880', async () => {
  for (const app of APPS) {
    const [vip] = await agents.caller!.request<string[]>('/resolve', { name: name(app) });
    for (const iface of [GREETER, ORDERS] as const) {
      const url = `dubbo://${vip}:${DUBBO}`;
      const want = dubboAnswer(iface, app, `${app}-1`);
      await waitUntil(() => consumer.call(iface, 1, { url }), (t) => t.counts[want] === 1, { timeoutMs: 30_000, intervalMs: 300, what: `${iface} of ${app} at ${url}` });
      // Tolerance: none. Every call is answered by the application the VIP stands for.
      assert.deepEqual(await consumer.call(iface, 10, { url }), { counts: { [want]: 10 }, errors: [] }, `${iface} via ${url}`);
    }
  }
});
