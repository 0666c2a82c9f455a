// A real proxyless gRPC client (@grpc/grpc-js-xds) resolves xds:///HOST:PORT through Isthmus.
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend } from '../helpers/backends.ts';
import { bootstrap, type Isthmus, type PortSpec } from '../helpers/isthmus.ts';
import { closeAll, entryFor, ManifestDir, startBackends, startIsthmus } from '../helpers/mesh.ts';
import { freePort } from '../helpers/ports.ts';
import { assertNoLeftovers, dumpLogsOnFailure, stopAll } from '../helpers/processes.ts';
import { startProxylessClient, type ProxylessClient } from '../helpers/proxyless.ts';
import { waitUntil } from '../helpers/wait.ts';

const ECHO = 'echo.test.local';
const manifests = new ManifestDir();
let backends: Backend[] = [];
let isthmus: Isthmus;
let client: ProxylessClient;
let port: PortSpec;
let target: string;

before(async () => {
  backends = await startBackends('grpc', 'grpc', 2, 40);
  port = { number: await freePort(), name: 'grpc', protocol: 'GRPC' };
  target = `xds:///${ECHO}:${port.number}`;
  manifests.write('echo.yaml', entryFor('echo', [ECHO], port, [backends[0]!]));
  isthmus = await startIsthmus({ name: 'isthmus-proxyless', registries: [manifests.url], debounceQuietMs: 100, debounceMaxMs: 500 });
  const boot = await bootstrap(['--proxyless', '--node-id', 'proxyless-1', '--xds-address', isthmus.xdsAddress]);
  client = await startProxylessClient(boot);
});

afterEach(dumpLogsOnFailure);

after(async () => {
  await stopAll();
  await closeAll(backends);
  assertNoLeftovers();
});

test('calls to xds:///HOST:PORT reach the endpoint in the manifest', async () => {
  const r = await waitUntil(() => client.call(target, 5), (t) => t.counts['grpc-1'] === 5, {
    timeoutMs: 20_000,
    intervalMs: 300,
    what: `5 proxyless calls to ${target} answered by grpc-1`,
  });
  assert.deepEqual(r.errors, []);
  assert.equal(backends[1]!.requests, 0);
});

test('replacing the endpoint in the manifest moves the calls', async () => {
  manifests.write('echo.yaml', entryFor('echo', [ECHO], port, [backends[1]!]));
  await waitUntil(() => client.call(target, 5), (t) => t.counts['grpc-2'] === 5, {
    timeoutMs: 20_000,
    intervalMs: 300,
    what: `proxyless calls to move to grpc-2`,
  });
  const before = backends[0]!.requests;
  const r = await client.call(target, 20);
  assert.deepEqual(r.counts, { 'grpc-2': 20 });
  assert.equal(backends[0]!.requests, before);
});
