// A VirtualService tcp route through a real Envoy: an opaque TCP service split 80/20
// between DestinationRule subsets on the sidecar's explicit-mode TCP listener.
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startBackend, type Backend } from '../helpers/backends.ts';
import { tally, tcpRequest } from '../helpers/clients.ts';
import { serviceEntry } from '../helpers/isthmus.ts';
import { closeAll, ManifestDir, startIsthmus, startSidecar } from '../helpers/mesh.ts';
import { freePort, isListening } from '../helpers/ports.ts';
import { assertNoLeftovers, dumpLogsOnFailure, stopAll } from '../helpers/processes.ts';
import { waitFor, waitUntil } from '../helpers/wait.ts';

const HOST = 'ledger.test.local';
const manifests = new ManifestDir();
const backends: Backend[] = [];
let port: number;
let isthmus: Awaited<ReturnType<typeof startIsthmus>>;

before(async () => {
  port = await freePort();
  backends.push(await startBackend('tcp', 'ledger-v1', { host: '127.0.0.91' }), await startBackend('tcp', 'ledger-v2', { host: '127.0.0.92' }));
  const endpoints = backends.map((b, i) => ({ address: b.host, ports: { tcp: b.port }, labels: { version: `v${i + 1}` } }));
  manifests.write('ledger.yaml', serviceEntry('ledger', { hosts: [HOST], ports: [{ number: port, name: 'tcp', protocol: 'TCP' }], endpoints }));
  isthmus = await startIsthmus({ registries: [manifests.url], debounceQuietMs: 50, debounceMaxMs: 500 });
  await startSidecar(isthmus, 'sidecar-tcp');
  await waitFor(() => isListening(port), { timeoutMs: 20_000, what: `the sidecar's TCP listener on ${port}` });
});

afterEach(dumpLogsOnFailure);
after(async () => {
  await stopAll();
  await closeAll(backends);
  assertNoLeftovers();
});

test('a tcp route splits an opaque TCP service 80/20 between subsets (400 connections, 20% ± 7)', async () => {
  const meta = (kind: string, name: string) => ({ apiVersion: 'networking.istio.io/v1', kind, metadata: { name, namespace: 'default' } });
  manifests.write('rules.yaml', [
    { ...meta('DestinationRule', 'ledger'), spec: { host: HOST, subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] } },
    {
      ...meta('VirtualService', 'ledger'),
      spec: { hosts: [HOST], tcp: [{ match: [{ port }], route: [{ destination: { host: HOST, subset: 'v1' }, weight: 80 }, { destination: { host: HOST, subset: 'v2' }, weight: 20 }] }] },
    },
  ]);
  // Both subsets must be in play before counting.
  await waitUntil(() => tally(40, () => tcpRequest(port, 'entry')), (c) => (c['ledger-v1'] ?? 0) > 0 && (c['ledger-v2'] ?? 0) > 0 && (c['ledger-v1'] ?? 0) > (c['ledger-v2'] ?? 0) * 2, {
    timeoutMs: 20_000,
    what: 'the weighted tcp route applied',
  });
  const counts = await tally(400, () => tcpRequest(port, 'entry'));
  assert.equal((counts['ledger-v1'] ?? 0) + (counts['ledger-v2'] ?? 0), 400, JSON.stringify(counts));
  const share = (counts['ledger-v2'] ?? 0) / 400;
  assert.ok(Math.abs(share - 0.2) <= 0.07, `v2 got ${(share * 100).toFixed(1)}%`);
});

test('explicit mode: a second application on a TCP port already taken keeps its calls off the first one, and says so', async () => {
  // Two Dubbo-style applications on one port: the sidecar has one listener for it.
  manifests.write('audit.yaml', serviceEntry('audit', { hosts: ['audit.test.local'], ports: [{ number: port, name: 'tcp', protocol: 'TCP' }], endpoints: [{ address: '127.0.0.93' }] }));
  const registryz = await waitUntil(
    () => isthmus.json<{ xdsProblems: { name: string; reason: string }[] }>('/debug/registryz'),
    (r) => r.xdsProblems.some((p) => p.name === `audit.test.local:${port}`),
    { timeoutMs: 15_000, what: 'the port collision in /debug/registryz xdsProblems' },
  );
  const problem = registryz.xdsProblems.find((p) => p.name === `audit.test.local:${port}`)!;
  assert.match(problem.reason, new RegExp(`TCP port ${port} is already taken by ${HOST.replace(/\./g, '\\.')}`));
  assert.ok((await isthmus.metric('isthmus_xds_problems')) >= 1);
  assert.match(isthmus.proc.output(), /refused in xDS.*audit\.test\.local/);
  // The port still reaches the application that holds it.
  const counts = await tally(20, () => tcpRequest(port, 'entry'));
  assert.equal((counts['ledger-v1'] ?? 0) + (counts['ledger-v2'] ?? 0), 20, JSON.stringify(counts));
});
