// isthmus plan against a running Isthmus with a connected Envoy: the same configuration
// plans no change; a configuration with routing rules plans the subset clusters and
// assignments it adds and the route table it changes.
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend } from '../helpers/backends.ts';
import { cli, type Isthmus, type PortSpec } from '../helpers/isthmus.ts';
import { closeAll, entryFor, ManifestDir, startBackends, startIsthmus, startSidecar } from '../helpers/mesh.ts';
import { freePort } from '../helpers/ports.ts';
import { assertNoLeftovers, dumpLogsOnFailure, stopAll } from '../helpers/processes.ts';
import { waitUntil } from '../helpers/wait.ts';

const WEB = 'web.plan.local';
const served = new ManifestDir();
const proposed = new ManifestDir();
let backends: Backend[] = [];
let isthmus: Isthmus;
let port: PortSpec;

before(async () => {
  backends = await startBackends('http', 'plan', 2, 60);
  port = { number: await freePort(), name: 'http', protocol: 'HTTP' };
  served.write('web.yaml', entryFor('web', [WEB], port, backends));
  isthmus = await startIsthmus({ name: 'isthmus-plan', registries: [served.url], debounceQuietMs: 100, debounceMaxMs: 500 });
  await startSidecar(isthmus, 'sidecar-plan');
  await waitUntil(() => isthmus.syncz(), (s) => s.some((c) => c.id === 'sidecar-plan' && c.types.length >= 4 && c.types.every((t) => t.status === 'SYNCED')), {
    timeoutMs: 20_000,
    intervalMs: 200,
    what: 'sidecar-plan synced',
  });
});

afterEach(dumpLogsOnFailure);

after(async () => {
  await stopAll();
  await closeAll(backends);
  assertNoLeftovers();
});

test('plan: the configuration being served plans no change', async () => {
  const out = await cli(['plan', '--registry', served.url, '--against', isthmus.adminUrl]);
  assert.match(out, /proxy sidecar-plan \(envoy, explicit\): no change/, out);
  assert.match(out, /plan: 1 proxy\(ies\), 0 difference\(s\)/, out);
});

test('plan: routing rules add subset clusters and change the route table', async () => {
  const meta = (kind: string): object => ({ apiVersion: 'networking.istio.io/v1', kind, metadata: { name: 'web', namespace: 'default' } });
  proposed.write('web.yaml', [
    entryFor('web', [WEB], port, backends),
    { ...meta('DestinationRule'), spec: { host: WEB, subsets: [{ name: 'v1', labels: {} }] } },
    { ...meta('VirtualService'), spec: { hosts: [WEB], http: [{ route: [{ destination: { host: WEB, subset: 'v1' } }] }] } },
  ]);
  const out = await cli(['plan', '--registry', proposed.url, '--against', isthmus.adminUrl, '--proxy', 'sidecar-plan']);
  const cluster = `outbound|${port.number}|v1|${WEB}`;
  assert.ok(out.includes(`+ CDS ${cluster}`), out);
  assert.ok(out.includes(`+ EDS ${cluster}`), out);
  assert.match(out, /~ RDS outbound \(version \S+ → \S+\)/, out);
  assert.doesNotMatch(out, /^\s+- /m, out);
  console.log(out);
});
