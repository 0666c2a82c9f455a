// Kubernetes → Isthmus → a real Envoy: `isthmus serve --registry kube://…` against a real
// kube-apiserver started by the suite. EndpointSlices become Envoy endpoints (and leave it
// when scaled down); an RPCService's interfaces and an in-cluster ServiceEntry are routed
// to loopback backends; an API server restart costs no endpoint and no request.
//
// EndpointSlice validation refuses loopback addresses (127.0.0.0/8), so the Service here
// has pod-network addresses (10.244.x) that Envoy receives but cannot reach: it is checked
// through Envoy's cluster state. Traffic goes to pods (whose status may carry 127.0.0.x)
// selected by an RPCService, and to ServiceEntry endpoints.
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { Backend } from '../helpers/backends.ts';
import { httpRequest, tally } from '../helpers/clients.ts';
import type { Envoy } from '../helpers/envoy.ts';
import { type Isthmus, REPO } from '../helpers/isthmus.ts';
import { type KubeApiServer, startKubeApiServer } from '../helpers/kube.ts';
import { closeAll, clusterName, startBackends, startIsthmus, startSidecar, type SidecarPorts } from '../helpers/mesh.ts';
import { freePorts } from '../helpers/ports.ts';
import { assertNoLeftovers, dumpLogsOnFailure, stopAll } from '../helpers/processes.ts';
import { waitUntil } from '../helpers/wait.ts';

const NS = 'shop';
const WEB = `web.${NS}.svc.cluster.local`;
const USER = 'user.rpc.cluster.local';
const QUERY = 'com.example.userquery.rpc.cluster.local';
const LEGACY = 'legacy.shop.internal';
const PROPAGATION = { timeoutMs: 30_000, intervalMs: 200 };

let kube: KubeApiServer;
let isthmus: Isthmus;
let envoy: Envoy;
let sidecar: SidecarPorts;
let users: Backend[];
let legacy: Backend[];
let rpcPort: number;
let legacyPort: number;

const out = (): number => sidecar.outbound;
const interfaceCluster = (port: number, iface: string, host: string): string => `outbound|${port}|${iface}|${host}`;

const slice = (addresses: string[]) => ({
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: { name: 'web-1', namespace: NS, labels: { 'kubernetes.io/service-name': 'web' } },
  addressType: 'IPv4',
  endpoints: addresses.map((a, i) => ({ addresses: [a], conditions: { ready: true }, nodeName: i % 2 ? 'node-b' : 'node-a' })),
  ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
});

async function userPod(name: string, backend: Backend, ready = true): Promise<void> {
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: NS, labels: { app: 'user' } },
    spec: { nodeName: 'node-a', containers: [{ name: 'app', image: 'example/user', ports: [{ name: 'http', containerPort: backend.port }] }] },
  };
  await kube.create(pod);
  await setReady(name, backend, ready);
}

async function setReady(name: string, backend: Backend, ready: boolean): Promise<void> {
  await kube.setStatus(
    { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: NS } },
    { phase: 'Running', podIP: backend.host, podIPs: [{ ip: backend.host }], conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
  );
}

before(async () => {
  users = await startBackends('http', 'user', 2, 40);
  legacy = await startBackends('http', 'legacy', 1, 50);
  [rpcPort, legacyPort] = (await freePorts(2)) as [number, number];
  kube = await startKubeApiServer({ name: 'kube-apiserver-mesh' });
  for (const f of ['rpcservice.yaml', 'istio-networking.yaml', 'istio-security.yaml']) await kube.applyYaml(fs.readFileSync(path.join(REPO, 'deploy', 'crds', f), 'utf8'));
  for (const crd of ['rpcservices.rpc.isthmus.io', 'serviceentries.networking.istio.io', 'peerauthentications.security.istio.io']) await kube.waitForCrd(crd);
  await kube.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
  await kube.create({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-a', labels: { 'topology.kubernetes.io/region': 'east', 'topology.kubernetes.io/zone': 'east-1a' } } });
  await kube.create({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-b', labels: { 'topology.kubernetes.io/region': 'east', 'topology.kubernetes.io/zone': 'east-1b' } } });
  // One namespace only: the default namespace's "kubernetes" Service (443, TLS) would take port 443 on the sidecar.
  const url = `kube://admin?kubeconfig=${encodeURIComponent(kube.kubeconfigPath)}&namespaces=${NS}&cluster=c1&region=idc-1`;
  isthmus = await startIsthmus({ name: 'isthmus-kube', registries: [url], debounceQuietMs: 100, debounceMaxMs: 500 });
  ({ envoy, ports: sidecar } = await startSidecar(isthmus, 'sidecar-kube'));
});

afterEach(dumpLogsOnFailure);

after(async () => {
  await stopAll();
  await closeAll([...users, ...legacy]);
  assertNoLeftovers();
});

test('a Service\'s EndpointSlice reaches Envoy with localities; scaled down, the endpoint leaves Envoy', async () => {
  await kube.create({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: NS }, spec: { ports: [{ name: 'http', port: 80, targetPort: 8080 }] } });
  await kube.create(slice(['10.244.0.1', '10.244.0.2', '10.244.0.3']));
  const cluster = clusterName(WEB, 80);
  await waitUntil(() => envoy.endpointsOf(cluster), (e) => e.join() === '10.244.0.1:8080,10.244.0.2:8080,10.244.0.3:8080', { ...PROPAGATION, what: 'three web endpoints in Envoy' });
  const dump = JSON.stringify(await envoy.configDump('include_eds'));
  assert.match(dump, /"region":"idc-1","zone":"east-1a"/);
  assert.match(dump, /"region":"idc-1","zone":"east-1b"/);

  await kube.update(slice([]), (cur) => ({ ...cur, endpoints: (cur.endpoints as unknown[]).slice(0, 2) }));
  await waitUntil(() => envoy.endpointsOf(cluster), (e) => e.join() === '10.244.0.1:8080,10.244.0.2:8080', { ...PROPAGATION, what: '10.244.0.3 to leave Envoy' });
});

test('an RPCService: its interface and its application are routed by name to the selected pods', async () => {
  await userPod('user-1', users[0]!);
  await userPod('user-2', users[1]!);
  await kube.create({
    apiVersion: 'rpc.isthmus.io/v1alpha1',
    kind: 'RPCService',
    metadata: { name: 'user', namespace: NS },
    spec: { selector: { app: 'user' }, interfaces: [{ name: 'com.example.UserQuery', port: rpcPort, protocol: 'http' }] },
  });
  await waitUntil(() => envoy.endpointsOf(interfaceCluster(rpcPort, QUERY, USER)), (e) => e.length === 2, { ...PROPAGATION, what: 'interface cluster with both pods' });
  const counts = await waitUntil(() => tally(20, () => httpRequest(out(), QUERY)), (c) => (c['user-1'] ?? 0) > 0 && (c['user-2'] ?? 0) > 0 && (c['user-1'] ?? 0) + (c['user-2'] ?? 0) === 20, {
    ...PROPAGATION,
    what: `Host ${QUERY} spread over both pods`,
  });
  assert.equal(Object.keys(counts).length, 2);
  assert.equal((await httpRequest(out(), USER)).status, 200);

  // A pod that stops being ready stops getting requests.
  await setReady('user-2', users[1]!, false);
  await waitUntil(() => tally(10, () => httpRequest(out(), QUERY)), (c) => c['user-1'] === 10, { ...PROPAGATION, what: 'only user-1 answers' });
});

test('an Istio ServiceEntry from the cluster is routed', async () => {
  await kube.create({
    apiVersion: 'networking.istio.io/v1',
    kind: 'ServiceEntry',
    metadata: { name: 'legacy', namespace: NS },
    spec: {
      hosts: [LEGACY],
      ports: [{ number: legacyPort, name: 'http', protocol: 'HTTP' }],
      location: 'MESH_INTERNAL',
      resolution: 'STATIC',
      endpoints: [{ address: legacy[0]!.host, ports: { http: legacy[0]!.port } }],
    },
  });
  await waitUntil(() => httpRequest(out(), LEGACY), (a) => a.backend === 'legacy-1', { ...PROPAGATION, what: `Host ${LEGACY} routed` });
});

test('a PeerAuthentication from the cluster is read (security.istio.io/v1), and a bad one refused by field', async () => {
  await kube.create({ apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'strict', namespace: NS }, spec: { mtls: { mode: 'STRICT' } } });
  await kube.create({ apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'ports', namespace: NS }, spec: { portLevelMtls: { 8080: { mode: 'DISABLE' } } } });
  const z = await waitUntil(() => isthmus.registryz() as Promise<{ rules: { peerAuthentications: string[] }; registries: { rejections: { reason: string }[] }[] }>, (r) => r.rules.peerAuthentications.includes(`${NS}/strict`), { ...PROPAGATION, what: 'the PeerAuthentication in registryz' });
  assert.deepEqual(z.rules.peerAuthentications, [`${NS}/strict`]);
  assert.match(z.registries.flatMap((r) => r.rejections).map((r) => r.reason).join('\n'), /portLevelMtls needs spec.selector/);
  for (const name of ['strict', 'ports']) await kube.delete({ apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name, namespace: NS } });
});

test('an API server restart: Envoy keeps every endpoint and requests keep flowing; later changes still arrive', async () => {
  const cluster = clusterName(WEB, 80);
  const webBefore = await envoy.endpointsOf(cluster);
  const versionsBefore = await envoy.dynamicVersions();
  await kube.stop();
  // Down: Isthmus keeps serving the last known state.
  for (let i = 0; i < 5; i++) {
    assert.equal((await httpRequest(out(), QUERY)).backend, 'user-1');
    assert.equal((await httpRequest(out(), LEGACY)).backend, 'legacy-1');
    assert.deepEqual(await envoy.endpointsOf(cluster), webBefore);
    await new Promise((r) => setTimeout(r, 300));
  }
  const registries = (await isthmus.registryz()) as { registries: { id: string; error?: string; synced: boolean }[] };
  assert.match(registries.registries[0]!.error ?? '', /serving the last known state/, JSON.stringify(registries.registries));
  await kube.start();
  await waitUntil(async () => ((await isthmus.registryz()) as typeof registries).registries[0]!.error, (e) => e === undefined, { ...PROPAGATION, what: 'registry recovered' });
  assert.deepEqual(await envoy.endpointsOf(cluster), webBefore);
  assert.deepEqual((await envoy.dynamicVersions()).clusters, versionsBefore.clusters, 'no cluster was re-sent');
  await kube.update(slice([]), (cur) => ({ ...cur, endpoints: (cur.endpoints as unknown[]).slice(0, 1) }));
  await waitUntil(() => envoy.endpointsOf(cluster), (e) => e.join() === '10.244.0.1:8080', { ...PROPAGATION, what: 'scale-down after the restart reaches Envoy' });
  assert.equal((await httpRequest(out(), QUERY)).backend, 'user-1');
});
