// Restarting Isthmus on the same ports: Envoy keeps serving, and gets back the same versions,
// on SotW (version_info) and on Delta (initial_resource_versions) alike.
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { TYPE } from '../helpers/ads-client.ts';
import type { Backend } from '../helpers/backends.ts';
import { grpcRequest, httpRequest, type Answer } from '../helpers/clients.ts';
import type { Envoy } from '../helpers/envoy.ts';
import type { Isthmus } from '../helpers/isthmus.ts';
import { closeAll, entryFor, ManifestDir, startBackends, startIsthmus, startSidecar } from '../helpers/mesh.ts';
import { freePorts } from '../helpers/ports.ts';
import { assertNoLeftovers, dumpLogsOnFailure, stopAll } from '../helpers/processes.ts';
import { waitFor, waitUntil } from '../helpers/wait.ts';

const WEB = 'web.test.local';
const ECHO = 'echo.test.local';
const NODE = 'sidecar-restart';
const NODE_DELTA = 'restart-delta';
const manifests = new ManifestDir();
const backends: Backend[] = [];
let isthmus: Isthmus;
interface Side {
  node: string;
  envoy: Envoy;
  outbound: number;
}
let sotw: Side;
let delta: Side;
/** Bytes of clusters and listeners the first Isthmus pushed to both sidecars. */
let initialBytes = 0;

before(async () => {
  const web = await startBackends('http', 'web', 2, 60);
  const echo = await startBackends('grpc', 'grpc', 1, 62);
  backends.push(...web, ...echo);
  const [pWeb, pEcho] = (await freePorts(2)) as [number, number];
  manifests.write('web.yaml', entryFor('web', [WEB], { number: pWeb, name: 'http', protocol: 'HTTP' }, web));
  manifests.write('echo.yaml', entryFor('echo', [ECHO], { number: pEcho, name: 'grpc', protocol: 'GRPC' }, echo));
  isthmus = await startIsthmus({ name: 'isthmus-restart', registries: [manifests.url], debounceQuietMs: 100, debounceMaxMs: 500 });
  const a = await startSidecar(isthmus, NODE);
  sotw = { node: NODE, envoy: a.envoy, outbound: a.ports.outbound };
  const b = await startSidecar(isthmus, NODE_DELTA, { delta: true });
  delta = { node: NODE_DELTA, envoy: b.envoy, outbound: b.ports.outbound };
  await waitFor(async () => (await synced(NODE)) && (await synced(NODE_DELTA)), { timeoutMs: 20_000, what: 'both sidecars SYNCED' });
  initialBytes = await pushedBytes();
});

/** Bytes of CDS and LDS responses this Isthmus process has pushed. */
async function pushedBytes(): Promise<number> {
  return (await isthmus.metric('isthmus_xds_push_bytes_total', { type: 'CDS' })) + (await isthmus.metric('isthmus_xds_push_bytes_total', { type: 'LDS' }));
}

afterEach(dumpLogsOnFailure);

after(async () => {
  await stopAll();
  await closeAll(backends);
  assertNoLeftovers();
});

/** Sends requests back to back until stopped (at most `maxMs`), keeping every answer. */
function load(outbound: number, maxMs: number): { answers: Answer[]; stop: () => Promise<void> } {
  const answers: Answer[] = [];
  let stopped = false;
  const deadline = Date.now() + maxMs;
  const run = (async () => {
    for (let i = 0; !stopped && Date.now() < deadline; i++) {
      answers.push(i % 4 === 3 ? await grpcRequest(outbound, ECHO) : await httpRequest(outbound, WEB));
    }
  })();
  return {
    answers,
    stop: async () => {
      stopped = true;
      await run;
    },
  };
}

async function connected(envoy: Envoy): Promise<number> {
  return (await envoy.stats('control_plane.connected_state'))['control_plane.connected_state'] ?? -1;
}

async function synced(node: string): Promise<boolean> {
  const conns = (await isthmus.syncz()).filter((c) => c.id.includes(node));
  const types = conns.flatMap((c) => c.types);
  return [TYPE.cluster, TYPE.listener].every((u) => types.some((t) => t.typeUrl === u && t.status === 'SYNCED'));
}

async function restartUnderLoad(side: Side, t: { diagnostic(m: string): void }): Promise<void> {
  const { node: NODE, envoy, outbound } = side;
  await waitUntil(() => httpRequest(outbound, WEB), (a) => a.status === 200, { timeoutMs: 20_000, what: 'web routed' });
  await waitUntil(() => grpcRequest(outbound, ECHO), (a) => a.backend === 'grpc-1', { timeoutMs: 20_000, what: 'echo routed' });
  await waitFor(() => synced(NODE), { timeoutMs: 10_000, what: `${NODE} SYNCED for clusters and listeners in /debug/syncz` });
  const versionsBefore = await envoy.dynamicVersions();
  assert.ok(Object.keys(versionsBefore.clusters).length >= 2, JSON.stringify(versionsBefore));
  assert.ok(Object.keys(versionsBefore.listeners).length >= 1, JSON.stringify(versionsBefore));

  const traffic = load(outbound, 90_000);
  try {
    await waitFor(() => traffic.answers.length >= 20, { what: '20 requests before the restart' });
    await isthmus.stop();
    await waitFor(async () => (await connected(envoy)) === 0, { timeoutMs: 10_000, what: 'Envoy to see the control plane gone' });
    const atStop = traffic.answers.length;
    await waitFor(() => traffic.answers.length >= atStop + 20, { timeoutMs: 20_000, what: '20 requests while Isthmus is down' });
    await isthmus.start();
    await waitFor(async () => (await connected(envoy)) === 1, { timeoutMs: 30_000, intervalMs: 200, what: 'Envoy to reconnect' });
    await waitFor(() => synced(NODE), { timeoutMs: 10_000, what: `${NODE} SYNCED again after the restart` });
    // Both sidecars said what they hold (version_info, initial_resource_versions): nothing is sent again.
    const resent = await pushedBytes();
    assert.ok(resent < initialBytes / 4, `the restarted Isthmus pushed ${resent} bytes of clusters and listeners (the first one ${initialBytes})`);
    const atSync = traffic.answers.length;
    await waitFor(() => traffic.answers.length >= atSync + 20, { timeoutMs: 20_000, what: '20 requests after the restart' });
  } finally {
    await traffic.stop();
  }
  const failed = traffic.answers.filter((a) => !a.backend || (a.status !== 200 && a.status !== 0));
  assert.deepEqual(failed.slice(0, 5), [], `${failed.length} of ${traffic.answers.length} requests failed`);
  const seen = new Set(traffic.answers.map((a) => a.backend));
  assert.deepEqual([...seen].sort(), ['grpc-1', 'web-1', 'web-2']);

  const versionsAfter = await envoy.dynamicVersions();
  assert.deepEqual(versionsAfter, versionsBefore);
  t.diagnostic(`${traffic.answers.length} requests, 0 failed; versions ${JSON.stringify(versionsAfter)}`);
}

test('requests keep flowing while Isthmus restarts, and versions stay the same', (t) => restartUnderLoad(sotw, t));

test('delta: requests keep flowing while Isthmus restarts, and versions stay the same', (t) => restartUnderLoad(delta, t));
