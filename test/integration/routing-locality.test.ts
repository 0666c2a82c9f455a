// Locality failover through a real Envoy: a sidecar in region r1 zone z1 sends everything to
// its own zone while it has a healthy endpoint; once the local endpoint fails (and outlier
// detection ejects it) traffic fails over to the other zone of the region.
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startBackend, type Backend } from '../helpers/backends.ts';
import { httpRequest, tally } from '../helpers/clients.ts';
import { startEnvoy } from '../helpers/envoy.ts';
import { bootstrap, ManifestDir, serviceEntry, type Isthmus, type PortSpec } from '../helpers/isthmus.ts';
import { closeAll, startIsthmus } from '../helpers/mesh.ts';
import { freePort, freePorts } from '../helpers/ports.ts';
import { assertNoLeftovers, dumpLogsOnFailure, stopAll } from '../helpers/processes.ts';
import { waitUntil } from '../helpers/wait.ts';

const HOST = 'zonal.test.local';
const manifests = new ManifestDir();
const backends: Backend[] = [];
let isthmus: Isthmus;
let outbound: number;
let local: Backend;

before(async () => {
  local = await startBackend('http', 'local-1', { host: '127.0.0.71' });
  const remote = [await startBackend('http', 'remote-1', { host: '127.0.0.72' }), await startBackend('http', 'remote-2', { host: '127.0.0.73' })];
  backends.push(local, ...remote);
  const port: PortSpec = { number: await freePort(), name: 'http', protocol: 'HTTP' };
  const ep = (b: Backend, locality: string): object => ({ address: b.host, ports: { http: b.port }, locality });
  const entry = serviceEntry('zonal', { hosts: [HOST], ports: [port], endpoints: [] }) as { spec: { endpoints: object[] } };
  entry.spec.endpoints = [ep(local, 'r1/z1'), ep(remote[0]!, 'r1/z2'), ep(remote[1]!, 'r1/z2')];
  const meta = { apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'zonal', namespace: 'default' } };
  manifests.write('zonal.yaml', [
    entry,
    { ...meta, spec: { host: HOST, trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN', localityLbSetting: { enabled: true } }, outlierDetection: { consecutive5xxErrors: 1, interval: '1s', baseEjectionTime: '60s', maxEjectionPercent: 100 } } } },
  ]);
  isthmus = await startIsthmus({ name: 'isthmus-routing-locality', registries: [manifests.url], debounceQuietMs: 100, debounceMaxMs: 500 });
  const [admin, out, inbound] = (await freePorts(3)) as [number, number, number];
  outbound = out;
  const boot = (await bootstrap(['--node-id', 'sidecar-zonal', '--xds-address', isthmus.xdsAddress, '--admin-port', String(admin), '--outbound-port', String(out), '--inbound-port', String(inbound)])) as { node: Record<string, unknown> };
  boot.node.locality = { region: 'r1', zone: 'z1' };
  await startEnvoy(boot, { name: 'envoy-sidecar-zonal', waitFor: 'live', timeoutMs: 30_000 });
});

afterEach(dumpLogsOnFailure);

after(async () => {
  await stopAll();
  await closeAll(backends);
  assertNoLeftovers();
});

test('locality: the local zone takes all traffic, and fails over to the next zone when it has no healthy endpoint', async () => {
  await waitUntil(() => tally(10, () => httpRequest(outbound, HOST)), (c) => c['local-1'] === 10, { timeoutMs: 20_000, intervalMs: 200, what: 'all traffic in zone r1/z1' });
  // Tolerance: none. 60 requests, all to the only endpoint in the proxy's zone.
  const home = await tally(60, () => httpRequest(outbound, HOST));
  assert.deepEqual(home, { 'local-1': 60 });
  await local.close();
  await waitUntil(() => tally(10, () => httpRequest(outbound, HOST)), (c) => (c['remote-1'] ?? 0) + (c['remote-2'] ?? 0) === 10, {
    timeoutMs: 20_000,
    intervalMs: 200,
    what: 'failover to zone r1/z2',
  });
  // Tolerance: none. 60 requests after ejection, all answered in the other zone, by both endpoints.
  const away = await tally(60, () => httpRequest(outbound, HOST));
  assert.equal((away['remote-1'] ?? 0) + (away['remote-2'] ?? 0), 60, JSON.stringify(away));
  assert.ok((away['remote-1'] ?? 0) > 0 && (away['remote-2'] ?? 0) > 0, JSON.stringify(away));
  console.log(`locality: before ${JSON.stringify(home)}, after the local endpoint failed ${JSON.stringify(away)}`);
});
