// isthmus serve with DNS: names resolve to VIPs only once the sidecars route those VIPs
// (ordered publishing), a transparent sidecar accepts the per-VIP filter chains, and a
// sidecar that never ACKs delays DNS only for a bounded time.
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { AdsClient, TYPE } from '../helpers/ads-client.ts';
import { kdig } from '../helpers/dns.ts';
import type { Envoy } from '../helpers/envoy.ts';
import { ManifestDir, startIsthmus, type Isthmus } from '../helpers/isthmus.ts';
import { startSidecar } from '../helpers/mesh.ts';
import { freePort } from '../helpers/ports.ts';
import { assertNoLeftovers, dumpLogsOnFailure, stopAll } from '../helpers/processes.ts';
import { waitFor, waitUntil } from '../helpers/wait.ts';

const manifests = new ManifestDir();
let isthmus: Isthmus;
let envoy: Envoy;
let dnsPort: number;

function entry(name: string, host: string, port: number, protocol: string): object {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'ServiceEntry',
    metadata: { name },
    spec: { hosts: [host], location: 'MESH_INTERNAL', resolution: 'STATIC', ports: [{ number: port, name: 'p', protocol }], endpoints: [{ address: '127.0.0.70' }] },
  };
}

/** The outbound listener's filter chain for VIP:port, as Envoy holds it. */
async function vipChainInEnvoy(vip: string, port: number): Promise<boolean> {
  const dump = JSON.stringify(await envoy.configDump());
  return dump.includes(`"address_prefix":"${vip}"`) && dump.includes(`"name":"${vip}_${port}"`);
}

before(async () => {
  dnsPort = await freePort();
  manifests.write('db.yaml', entry('db', 'db.rpc.cluster.local', 5432, 'TCP'));
  isthmus = await startIsthmus({ registries: [manifests.url], debounceQuietMs: 50, args: ['--dns-listen', `127.0.0.1:${dnsPort}`, '--dns-publish-timeout', '3s', '--dns-ttl', '2'] });
  ({ envoy } = await startSidecar(isthmus, 'transparent-1', { extraArgs: ['--mode', 'transparent'] }));
});

afterEach(dumpLogsOnFailure);
after(async () => {
  await stopAll();
  assertNoLeftovers();
});

test('a service without an address gets a VIP in DNS, and the transparent sidecar routes that VIP', async () => {
  const a = await waitUntil(() => kdig(dnsPort, 'db.rpc.cluster.local', 'A'), (r) => r.answer.length === 1, { timeoutMs: 10_000, what: 'A db.rpc.cluster.local' });
  const vip = a.answer[0]!.data;
  assert.match(vip, /^240\.240\.\d+\.\d+$/);
  assert.ok(await vipChainInEnvoy(vip, 5432), 'Envoy holds the filter chain for the VIP');
  const syncz = await isthmus.syncz();
  assert.ok(syncz.every((c) => c.types.every((t) => t.status === 'SYNCED')), JSON.stringify(syncz));
});

test('a new name resolves only after the sidecar has ACKed the listener for its VIP', async () => {
  manifests.write('cache.yaml', entry('cache', 'cache.rpc.cluster.local', 6379, 'TCP'));
  const a = await waitUntil(() => kdig(dnsPort, 'cache.rpc.cluster.local', 'A'), (r) => r.answer.length === 1, { timeoutMs: 10_000, intervalMs: 20, what: 'A cache.rpc.cluster.local' });
  // The first answer already has a sidecar behind it.
  assert.ok(await vipChainInEnvoy(a.answer[0]!.data, 6379));
});

test('removal runs the other way: the name leaves DNS first, its VIP routes only after the TTL', async () => {
  const before = await kdig(dnsPort, 'cache.rpc.cluster.local', 'A');
  const vip = before.answer[0]!.data;
  manifests.remove('cache.yaml');
  await waitUntil(() => kdig(dnsPort, 'cache.rpc.cluster.local', 'A'), (r) => r.rcode === 'NXDOMAIN', { timeoutMs: 10_000, intervalMs: 20, what: 'cache.rpc.cluster.local gone from DNS' });
  const goneAt = Date.now();
  assert.ok(await vipChainInEnvoy(vip, 6379), 'right after the name left DNS, the sidecar still routes its VIP');
  await waitFor(async () => !(await vipChainInEnvoy(vip, 6379)), { timeoutMs: 15_000, intervalMs: 100, what: 'the VIP routes to leave after the 2 s TTL' });
  assert.ok(Date.now() - goneAt >= 1500, `routes left ${Date.now() - goneAt} ms after DNS, before the TTL ran out`);
});

test('a sidecar that never ACKs delays new names for the publish timeout, not forever', async () => {
  const mute = new AdsClient({ address: isthmus.xdsAddress, nodeId: 'mute', policy: (r) => (r.typeUrl === TYPE.listener ? 'none' : 'ack') });
  mute.subscribe(TYPE.listener);
  try {
    await waitFor(() => mute.responsesFor(TYPE.listener).length > 0, { timeoutMs: 5000, what: 'the mute client got listeners' });
    const t0 = Date.now();
    manifests.write('queue.yaml', entry('queue', 'queue.rpc.cluster.local', 5672, 'TCP'));
    await waitUntil(() => kdig(dnsPort, 'queue.rpc.cluster.local', 'A'), (r) => r.answer.length === 1, { timeoutMs: 15_000, intervalMs: 100, what: 'A queue.rpc.cluster.local despite the mute sidecar' });
    const waited = Date.now() - t0;
    assert.ok(waited >= 2500, `published after ${waited} ms: the 3 s wait for the mute sidecar was skipped`);
    const metrics = await isthmus.get('/metrics');
    assert.match(metrics, /isthmus_dns_publish_waits_total\{result="timeout"\} [1-9]/);
  } finally {
    mute.close();
  }
});
