// A NACK is recorded with its error, shown in /debug/syncz, and the NACKed version is not re-sent.
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { AdsClient, TYPE, type RecordedResponse } from '../helpers/ads-client.ts';
import type { Backend } from '../helpers/backends.ts';
import { httpRequest, tcpRequest } from '../helpers/clients.ts';
import type { Isthmus, SyncStatus } from '../helpers/isthmus.ts';
import { closeAll, entryFor, ManifestDir, startBackends, startIsthmus, startSidecar } from '../helpers/mesh.ts';
import { freePort } from '../helpers/ports.ts';
import { assertNoLeftovers, dumpLogsOnFailure, stopAll } from '../helpers/processes.ts';
import { waitFor, waitUntil } from '../helpers/wait.ts';

const WEB = 'web.test.local';
const MSG = 'listener rejected on purpose by the test client';
// How long a NACKed version must not come back.
const QUIET_MS = 2000;

const manifests = new ManifestDir();
const backends: Backend[] = [];
const clients: AdsClient[] = [];
let isthmus: Isthmus;
let webPort: number;

before(async () => {
  backends.push(...(await startBackends('http', 'web', 1, 50)), ...(await startBackends('tcp', 'tcp', 1, 51)));
  webPort = await freePort();
  manifests.write('web.yaml', entryFor('web', [WEB], { number: webPort, name: 'http', protocol: 'HTTP' }, [backends[0]!]));
  isthmus = await startIsthmus({ name: 'isthmus-nack', registries: [manifests.url], debounceQuietMs: 100, debounceMaxMs: 500 });
});

afterEach(dumpLogsOnFailure);

after(async () => {
  for (const c of clients) c.close();
  await stopAll();
  await closeAll(backends);
  assertNoLeftovers();
});

function typeStatus(all: SyncStatus[], nodeId: string, typeUrl: string): SyncStatus['types'][number] | undefined {
  const conns = all.filter((c) => c.id.includes(nodeId));
  return conns.flatMap((c) => c.types).find((t) => t.typeUrl === typeUrl);
}

for (const mode of ['sotw', 'delta'] as const) {
  test(`${mode}: a NACKed listener version is shown in syncz and not re-sent`, async () => {
    const nodeId = `nacker-${mode}`;
    let nacked: RecordedResponse | undefined;
    let nackedAt = 0;
    const client = new AdsClient({
      address: isthmus.xdsAddress,
      nodeId,
      mode,
      policy: (r) => {
        if (r.typeUrl !== TYPE.listener) return 'ack';
        if (!nacked) {
          nacked = r;
          nackedAt = Date.now();
        }
        return { nack: MSG };
      },
    });
    clients.push(client);
    client.subscribe(TYPE.cluster);
    client.subscribe(TYPE.listener);
    await waitFor(() => nacked, { timeoutMs: 10_000, what: `a listener response to NACK (stream error: ${client.error?.message ?? 'none'})` });
    assert.ok(nacked!.names.length > 0, 'the listener response carries listeners');

    const lds = await waitUntil(() => isthmus.syncz().then((s) => typeStatus(s, nodeId, TYPE.listener)), (t) => t?.status === 'NACKED', {
      timeoutMs: 5000,
      what: `/debug/syncz to show ${nodeId} listeners NACKED`,
    });
    assert.ok(lds?.nack?.message.includes(MSG), JSON.stringify(lds));
    assert.equal(lds?.nack?.nonce, nacked!.nonce);
    if (mode === 'sotw') assert.equal(lds?.nack?.version, nacked!.version);
    const cds = typeStatus(await isthmus.syncz(), nodeId, TYPE.cluster);
    assert.equal(cds?.status, 'SYNCED', JSON.stringify(cds));

    // Observe the stream for QUIET_MS after the NACK: the same version must not come back.
    await sleep(Math.max(0, nackedAt + QUIET_MS - Date.now()));
    const resent = client.responsesFor(TYPE.listener).filter((r) => r !== nacked && r.version === nacked!.version);
    assert.deepEqual(resent.map((r) => ({ version: r.version, nonce: r.nonce, afterMs: r.at - nackedAt })), []);
    assert.equal(client.error, undefined, 'the stream stays open after a NACK');
  });
}

test('Envoy keeps its last good config when it rejects a listener it cannot bind', async (t) => {
  const { ports } = await startSidecar(isthmus, 'sidecar-nack');
  const nodeId = 'sidecar-nack';
  await waitUntil(() => httpRequest(ports.outbound, WEB), (a) => a.backend === 'web-1', { timeoutMs: 20_000, what: 'web routed' });

  // A TCP service on a port something else on 127.0.0.1 already holds (Isthmus's admin
  // server, without SO_REUSEPORT): Envoy cannot bind it.
  const taken = isthmus.opts.adminPort;
  manifests.write('tcp.yaml', entryFor('tcp', ['tcp.test.local'], { number: taken, name: 'tcp', protocol: 'TCP' }, [backends[1]!]));
  let lds: SyncStatus['types'][number] | undefined;
  try {
    lds = await waitUntil(() => isthmus.syncz().then((s) => typeStatus(s, nodeId, TYPE.listener)), (x) => x?.status === 'NACKED', {
      timeoutMs: 10_000,
      what: 'Envoy to NACK the listener it cannot bind',
    });
  } catch (err) {
    t.skip(`Envoy did not NACK (control plane may avoid the port): ${(err as Error).message}`);
    return;
  }
  assert.ok(lds?.nack?.message, JSON.stringify(lds));
  t.diagnostic(`Envoy NACK: ${lds.nack.message}`);
  // Last good config still serves.
  const ok = await httpRequest(ports.outbound, WEB);
  assert.equal(ok.backend, 'web-1', JSON.stringify(ok));

  // Fixing the manifest gets Envoy back in sync, and the TCP service works.
  const free = await freePort();
  manifests.write('tcp.yaml', entryFor('tcp', ['tcp.test.local'], { number: free, name: 'tcp', protocol: 'TCP' }, [backends[1]!]));
  await waitUntil(() => isthmus.syncz().then((s) => typeStatus(s, nodeId, TYPE.listener)), (x) => x?.status === 'SYNCED', {
    timeoutMs: 10_000,
    what: 'Envoy to ACK the fixed listeners',
  });
  await waitUntil(() => tcpRequest(free, 'x'), (a) => a.backend === 'tcp-1', { timeoutMs: 10_000, what: `TCP 127.0.0.1:${free}` });
});
