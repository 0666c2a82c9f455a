// The core user flow through a real Envoy, shared by the SotW and Delta suites:
// manifests → isthmus serve → Envoy routes by Host/:authority and port → manifest edits seen live.
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend } from '../helpers/backends.ts';
import { grpcRequest, h2cRequest, httpRequest, tally, tcpRequest, type Answer } from '../helpers/clients.ts';
import type { Envoy } from '../helpers/envoy.ts';
import type { Isthmus, PortSpec } from '../helpers/isthmus.ts';
import { closeAll, clusterName, entryFor, ManifestDir, startBackends, startIsthmus, startSidecar, type SidecarPorts } from '../helpers/mesh.ts';
import { freePorts } from '../helpers/ports.ts';
import { assertNoLeftovers, dumpLogsOnFailure, stopAll } from '../helpers/processes.ts';
import { waitUntil } from '../helpers/wait.ts';

const WEB = 'web.test.local';
const WWW = 'www.test.local';
const H2 = 'h2.test.local';
const ECHO = 'echo.test.local';
const TCP = 'tcp.test.local';
const PROPAGATION = { timeoutMs: 20_000, intervalMs: 200 };

export function coreFlow(mode: 'sotw' | 'delta'): void {
  const manifests = new ManifestDir();
  const all: Backend[] = [];
  let isthmus: Isthmus;
  let envoy: Envoy;
  let sidecar: SidecarPorts;
  let web: Backend[];
  let webPort: PortSpec;
  let tcpPort: number;

  const out = (): number => sidecar.outbound;
  const backendOf = (send: () => Promise<Answer>, expected: string, what: string): Promise<Answer> =>
    waitUntil(send, (a) => a.backend === expected, { ...PROPAGATION, what });
  const writeWeb = (backends: Backend[], hosts = [WEB]): void => manifests.write('web.yaml', entryFor('web', hosts, webPort, backends));

  before(async () => {
    web = await startBackends('http', 'web', 3, 2);
    const [h2] = await startBackends('h2c', 'h2', 1, 10);
    const [grpc] = await startBackends('grpc', 'grpc', 1, 20);
    const [tcp] = await startBackends('tcp', 'tcp', 1, 30);
    all.push(...web, h2!, grpc!, tcp!);
    const [pWeb, pH2, pEcho, pTcp] = (await freePorts(4)) as [number, number, number, number];
    tcpPort = pTcp;
    webPort = { number: pWeb, name: 'http', protocol: 'HTTP' };
    writeWeb(web.slice(0, 2));
    manifests.write('h2.yaml', entryFor('h2', [H2], { number: pH2, name: 'http2', protocol: 'HTTP2' }, [h2!]));
    manifests.write('echo.yaml', entryFor('echo', [ECHO], { number: pEcho, name: 'grpc', protocol: 'GRPC' }, [grpc!]));
    manifests.write('tcp.yaml', entryFor('tcp', [TCP], { number: pTcp, name: 'tcp', protocol: 'TCP' }, [tcp!]));
    isthmus = await startIsthmus({ name: `isthmus-${mode}`, registries: [manifests.url], debounceQuietMs: 100, debounceMaxMs: 500 });
    ({ envoy, ports: sidecar } = await startSidecar(isthmus, `sidecar-${mode}`, { delta: mode === 'delta' }));
  });

  afterEach(dumpLogsOnFailure);

  after(async () => {
    await stopAll();
    await closeAll(all);
    assertNoLeftovers();
  });

  test(`${mode}: HTTP/1.1, h2c, gRPC routed by Host/:authority and TCP by port`, async () => {
    const counts = await waitUntil(
      () => tally(20, () => httpRequest(out(), WEB)),
      (c) => c['web-1'] !== undefined && c['web-2'] !== undefined && (c['web-1'] ?? 0) + (c['web-2'] ?? 0) === 20,
      { ...PROPAGATION, what: `HTTP/1.1 ${WEB} spread over web-1 and web-2` },
    );
    assert.equal(counts['web-3'], undefined);
    await waitUntil(() => httpRequest(out(), `${WEB}:${webPort.number}`), (a) => a.backend === 'web-1' || a.backend === 'web-2', {
      ...PROPAGATION,
      what: `Host ${WEB}:${webPort.number} routed`,
    });
    await backendOf(() => h2cRequest(out(), H2), 'h2-1', `h2c :authority ${H2}`);
    await backendOf(() => grpcRequest(out(), ECHO), 'grpc-1', `gRPC :authority ${ECHO}`);
    await backendOf(() => tcpRequest(tcpPort, 'hello'), 'tcp-1', `TCP 127.0.0.1:${tcpPort} on the sidecar`);
    assert.equal((await httpRequest(out(), 'unknown.test.local')).status, 404);
    const conns = (await isthmus.syncz()).filter((c) => c.id.includes(`sidecar-${mode}`));
    assert.deepEqual(conns.map((c) => c.stream), [mode], JSON.stringify(conns));
  });

  test(`${mode}: an added endpoint receives requests`, async () => {
    writeWeb(web);
    await waitUntil(() => envoy.endpointsOf(clusterName(WEB, webPort.number)), (e) => e.length === 3, {
      ...PROPAGATION,
      what: 'Envoy to show 3 web endpoints',
    });
    const counts = await waitUntil(() => tally(30, () => httpRequest(out(), WEB)), (c) => (c['web-3'] ?? 0) > 0, {
      ...PROPAGATION,
      what: 'requests to reach web-3',
    });
    assert.deepEqual(Object.keys(counts).sort(), ['web-1', 'web-2', 'web-3']);
  });

  test(`${mode}: a removed endpoint receives no more requests`, async () => {
    writeWeb(web.slice(1));
    await waitUntil(() => envoy.endpointsOf(clusterName(WEB, webPort.number)), (e) => !e.includes(web[0]!.address) && e.length === 2, {
      ...PROPAGATION,
      what: `Envoy to drop ${web[0]!.address}`,
    });
    const before = web[0]!.requests;
    const counts = await tally(50, () => httpRequest(out(), WEB));
    assert.equal(counts['web-1'], undefined, JSON.stringify(counts));
    assert.equal((counts['web-2'] ?? 0) + (counts['web-3'] ?? 0), 50, JSON.stringify(counts));
    assert.equal(web[0]!.requests, before);
  });

  test(`${mode}: a changed service port is routed on the new port only`, async () => {
    const oldPort = webPort.number;
    const [newPort] = (await freePorts(1)) as [number];
    webPort = { ...webPort, number: newPort };
    writeWeb(web.slice(1));
    await waitUntil(() => envoy.clusters(), (c) => c.has(clusterName(WEB, newPort)) && !c.has(clusterName(WEB, oldPort)), {
      ...PROPAGATION,
      what: `Envoy clusters to move from port ${oldPort} to ${newPort}`,
    });
    const counts = await waitUntil(() => tally(10, () => httpRequest(out(), `${WEB}:${newPort}`)), (c) => (c['web-2'] ?? 0) + (c['web-3'] ?? 0) === 10, {
      ...PROPAGATION,
      what: `Host ${WEB}:${newPort} routed`,
    });
    assert.equal(counts['web-1'], undefined);
    await waitUntil(() => httpRequest(out(), `${WEB}:${oldPort}`), (a) => a.status === 404, { ...PROPAGATION, what: `Host ${WEB}:${oldPort} no longer routed` });
  });

  test(`${mode}: an added host alias is routed`, async () => {
    assert.equal((await httpRequest(out(), WWW)).status, 404);
    writeWeb(web.slice(1), [WEB, WWW]);
    const a = await waitUntil(() => httpRequest(out(), WWW), (x) => x.backend === 'web-2' || x.backend === 'web-3', {
      ...PROPAGATION,
      what: `Host ${WWW} routed to web`,
    });
    assert.equal(a.status, 200);
    assert.equal((await httpRequest(out(), `${WWW}:${webPort.number}`)).status, 200);
  });
}
