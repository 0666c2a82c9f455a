// A VIP store outage (a real etcd, killed mid-run) stops only what needs it: endpoint
// additions and removals keep reaching a real Envoy sidecar, a new name waits (visible in
// /debug/dnsz and isthmus_vip_pending_names) and resolves once etcd is back.
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { kdig } from '../helpers/dns.ts';
import type { Envoy } from '../helpers/envoy.ts';
import { type EtcdServer, startEtcd } from '../helpers/etcd.ts';
import { ManifestDir, serviceEntry, startIsthmus, type Isthmus } from '../helpers/isthmus.ts';
import { clusterName, startSidecar } from '../helpers/mesh.ts';
import { freePort } from '../helpers/ports.ts';
import { assertNoLeftovers, dumpLogsOnFailure, stopAll } from '../helpers/processes.ts';
import { waitFor, waitUntil } from '../helpers/wait.ts';

const Z = 'rpc.cluster.local';
const manifests = new ManifestDir();
let etcd: EtcdServer;
let isthmus: Isthmus;
let envoy: Envoy;
let dnsPort: number;

function entry(name: string, addresses: string[]): object {
  return serviceEntry(name, { hosts: [`${name}.${Z}`], ports: [{ number: 7000, name: 'tcp', protocol: 'TCP' }], endpoints: addresses.map((address) => ({ address })) });
}

interface Dnsz {
  vips: number;
  pendingNames: string[];
  pendingReason?: string;
}

before(async () => {
  etcd = await startEtcd({ name: 'etcd-vips' });
  dnsPort = await freePort();
  manifests.write('orders.yaml', entry('orders', ['127.0.0.11']));
  isthmus = await startIsthmus({
    registries: [manifests.url],
    debounceQuietMs: 50,
    args: ['--dns-listen', `127.0.0.1:${dnsPort}`, '--vip-store', `etcd://${etcd.endpoint}/isthmus/vips`, '--dns-publish-timeout', '2s'],
  });
  ({ envoy } = await startSidecar(isthmus, 'outage-1'));
  await waitUntil(() => kdig(dnsPort, `orders.${Z}`, 'A'), (r) => r.answer.length === 1, { timeoutMs: 15_000, what: `A orders.${Z}` });
});

afterEach(dumpLogsOnFailure);
after(async () => {
  await stopAll();
  assertNoLeftovers();
});

test('with the VIP store down, endpoint changes still reach the sidecar and a new name waits for its VIP', async () => {
  const cluster = clusterName(`orders.${Z}`, 7000);
  assert.deepEqual(await envoy.endpointsOf(cluster), ['127.0.0.11:7000']);
  await etcd.kill();

  // An endpoint added and one removed, while etcd is down.
  manifests.write('orders.yaml', entry('orders', ['127.0.0.12', '127.0.0.13']));
  await waitUntil(() => envoy.endpointsOf(cluster), (e) => e.join() === '127.0.0.12:7000,127.0.0.13:7000', { timeoutMs: 15_000, what: 'the new endpoints in Envoy with etcd down' });
  // The existing name still resolves.
  assert.equal((await kdig(dnsPort, `orders.${Z}`, 'A')).answer.length, 1);

  // A new name cannot get a VIP: it waits, visibly, and is not published half-done.
  manifests.write('billing.yaml', entry('billing', ['127.0.0.21']));
  const dnsz = await waitUntil(() => isthmus.json<Dnsz>('/debug/dnsz'), (d) => d.pendingNames.includes(`billing.${Z}`), { timeoutMs: 15_000, what: 'billing pending in /debug/dnsz' });
  assert.match(dnsz.pendingReason ?? '', /cannot allocate VIPs|has not answered/);
  assert.ok((await isthmus.metric('isthmus_vip_pending_names')) >= 1);
  assert.equal((await kdig(dnsPort, `billing.${Z}`, 'A')).rcode, 'NXDOMAIN');
  // Its cluster is already served: only the name waits.
  await waitUntil(() => envoy.endpointsOf(clusterName(`billing.${Z}`, 7000)), (e) => e.join() === '127.0.0.21:7000', { timeoutMs: 15_000, what: 'billing endpoints in Envoy' });
  // And a later endpoint removal goes through as well.
  manifests.write('orders.yaml', entry('orders', ['127.0.0.13']));
  await waitUntil(() => envoy.endpointsOf(cluster), (e) => e.join() === '127.0.0.13:7000', { timeoutMs: 15_000, what: 'the removal in Envoy with etcd down' });

  // etcd back: the pending name gets its VIP and is published.
  await etcd.start();
  const a = await waitUntil(() => kdig(dnsPort, `billing.${Z}`, 'A'), (r) => r.answer.length === 1, { timeoutMs: 40_000, intervalMs: 200, what: `A billing.${Z} after etcd is back` });
  assert.match(a.answer[0]!.data, /^240\.240\./);
  await waitFor(async () => (await isthmus.json<Dnsz>('/debug/dnsz')).pendingNames.length === 0, { timeoutMs: 10_000, what: 'no pending names' });
  assert.equal(await isthmus.metric('isthmus_vip_pending_names'), 0);
});
