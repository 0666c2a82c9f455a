// The Kubernetes registry against a real kube-apiserver (+ etcd) started by this suite:
// objects created through the API become the model the registry emits; RPCService status
// is written back; an API server restart loses nothing. The tests run in order and build
// on each other's objects, like one cluster's life.
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { Subscription } from 'rxjs';
import { metrics } from '../../../../src/shared/metrics.ts';
import type { RegistryState } from '../../../../src/model/types.ts';
import { KubeRegistry } from '../../../../src/registries/kube/index.ts';
import type { RpcServiceStatus } from '../../../../src/registries/kube/rpcservice.ts';
import { REPO } from '../../../helpers/isthmus.ts';
import { type KubeApiServer, startKubeApiServer } from '../../../helpers/kube.ts';
import { assertNoLeftovers, dumpLogsOnFailure, stopAll } from '../../../helpers/processes.ts';
import { waitUntil } from '../../../helpers/wait.ts';

const NS = 'shop';
const WAIT = { timeoutMs: 20_000, intervalMs: 50 };

let kube: KubeApiServer;
let registry: KubeRegistry;
let sub: Subscription | undefined;
const states: RegistryState[] = [];
const latest = (): RegistryState | undefined => states.at(-1);

function waitState(check: (s: RegistryState) => boolean, what: string, timeoutMs = WAIT.timeoutMs): Promise<RegistryState | undefined> {
  return waitUntil(latest, (s) => s !== undefined && check(s), { ...WAIT, timeoutMs, what });
}

function endpointsOf(s: RegistryState | undefined, host: string): string[] {
  return (s?.endpoints ?? []).filter((e) => e.service === host).map((e) => `${e.address}:${e.health}`).sort();
}

const pod = (name: string, labels: Record<string, string>, node?: string) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: NS, labels },
  spec: { ...(node ? { nodeName: node } : {}), containers: [{ name: 'app', image: 'example/app', ports: [{ name: 'tri', containerPort: 20880 }] }] },
});

async function runPod(name: string, labels: Record<string, string>, ip: string, opts: { node?: string; ready?: boolean } = {}): Promise<void> {
  const p = await kube.create(pod(name, labels, opts.node));
  await kube.setStatus(p, { phase: 'Running', podIP: ip, podIPs: [{ ip }], conditions: [{ type: 'Ready', status: opts.ready === false ? 'False' : 'True' }] });
}

const slice = (name: string, svc: string, addresses: string[], port = 8080) => ({
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: { name, namespace: NS, labels: { 'kubernetes.io/service-name': svc } },
  addressType: 'IPv4',
  endpoints: addresses.map((a, i) => ({ addresses: [a], conditions: { ready: true }, nodeName: i % 2 ? 'node-b' : 'node-a', targetRef: { kind: 'Pod', name: `web-${i}`, namespace: NS } })),
  ports: [{ name: 'http', port, protocol: 'TCP' }],
});

before(async () => {
  kube = await startKubeApiServer({ name: 'kube-apiserver-registry' });
  for (const f of ['rpcservice.yaml', 'istio-networking.yaml', 'istio-security.yaml']) await kube.applyYaml(fs.readFileSync(path.join(REPO, 'deploy', 'crds', f), 'utf8'));
  for (const crd of ['rpcservices.rpc.isthmus.io', 'serviceentries.networking.istio.io', 'workloadentries.networking.istio.io', 'peerauthentications.security.istio.io']) await kube.waitForCrd(crd);
  await kube.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
  await kube.create({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-a', labels: { 'topology.kubernetes.io/region': 'east', 'topology.kubernetes.io/zone': 'east-1a' } } });
  await kube.create({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-b', labels: { 'topology.kubernetes.io/region': 'east', 'topology.kubernetes.io/zone': 'east-1b' } } });
  registry = new KubeRegistry({
    kubeconfig: kube.kubeconfigPath,
    context: 'admin',
    clusterName: 'c1',
    region: 'idc-1',
    settleMs: 20,
    maxWaitMs: 200,
    watch: { minBackoffMs: 100, maxBackoffMs: 1000 },
  });
  sub = registry.states.subscribe((s) => states.push(s));
});

afterEach(dumpLogsOnFailure);

after(async () => {
  sub?.unsubscribe();
  await stopAll();
  assertNoLeftovers();
});

test('syncs: the API server\'s own "kubernetes" Service is there, with its ClusterIP', async () => {
  // The API server creates its own Service shortly after it is ready, and may answer a CRD
  // it has just established with 429 for a moment: reported, retried, then gone.
  const s = await waitState((x) => x.synced && x.error === undefined && x.services.some((v) => v.hostname === 'kubernetes.default.svc.cluster.local'), 'registry synced without an error');
  const k8s = s!.services.find((x) => x.hostname === 'kubernetes.default.svc.cluster.local');
  assert.ok(k8s, JSON.stringify(s!.services.map((x) => x.hostname)));
  assert.deepEqual(k8s.addresses, ['10.96.0.1']);
  assert.deepEqual(k8s.aliases, ['kubernetes.default.svc', 'kubernetes.default']);
  assert.deepEqual(k8s.ports, [{ name: 'https', number: 443, protocol: 'HTTPS', targetPort: kube.port }]);
  assert.equal(s!.error, undefined);
  assert.equal(registry.watchStatus().filter((w) => w.phase !== 'watching').length, 0, JSON.stringify(registry.watchStatus()));
});

test('a Service and its EndpointSlice: VIP, protocol from the port name, pod labels and node locality on endpoints; scaling down removes one', async () => {
  const svc = await kube.create<{ spec: { clusterIP: string } }>({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'web', namespace: NS },
    spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] },
  });
  await runPod('web-0', { app: 'web', version: 'v1' }, '10.244.0.10', { node: 'node-a' });
  await kube.create(slice('web-abc', 'web', ['10.244.0.10', '10.244.0.11', '10.244.0.12']));
  const host = 'web.shop.svc.cluster.local';
  const s = await waitState((x) => endpointsOf(x, host).length === 3, 'three web endpoints');
  const model = s!.services.find((x) => x.hostname === host)!;
  assert.deepEqual(model.addresses, [svc.spec.clusterIP]);
  assert.deepEqual(model.ports, [{ name: 'http', number: 80, protocol: 'HTTP', targetPort: 8080 }]);
  const first = s!.endpoints.find((e) => e.address === '10.244.0.10')!;
  // The pod's labels (the PodTopologyLabels admission copies the node's topology labels onto it) and the cluster's.
  assert.deepEqual(first.labels, { app: 'web', version: 'v1', 'topology.istio.io/cluster': 'c1', 'topology.kubernetes.io/region': 'east', 'topology.kubernetes.io/zone': 'east-1a' });
  assert.deepEqual(first.locality, { region: 'idc-1', zone: 'east-1a' });
  assert.deepEqual(first.ports, { http: 8080 });
  assert.equal(first.origin.ref, 'EndpointSlice shop/web-abc');
  assert.deepEqual(s!.endpoints.find((e) => e.address === '10.244.0.11')!.locality, { region: 'idc-1', zone: 'east-1b' });

  await kube.update(slice('web-abc', 'web', []), (cur) => ({ ...cur, endpoints: (cur.endpoints as unknown[]).slice(0, 2) }));
  await waitState((x) => endpointsOf(x, host).join() === '10.244.0.10:HEALTHY,10.244.0.11:HEALTHY', 'scaled down to two');
  // A terminating (serving) endpoint next to ready ones drains.
  await kube.update(slice('web-abc', 'web', []), (cur) => ({
    ...cur,
    endpoints: [
      { addresses: ['10.244.0.10'], conditions: { ready: true } },
      { addresses: ['10.244.0.11'], conditions: { ready: false, serving: true, terminating: true } },
    ],
  }));
  await waitState((x) => endpointsOf(x, host).join() === '10.244.0.10:HEALTHY,10.244.0.11:DRAINING', 'terminating endpoint drains');
});

test('an RPCService: interfaces as names of <app>.rpc.cluster.local, pods as workloads, and its status written back', async () => {
  await runPod('user-0', { app: 'user' }, '10.244.1.10', { node: 'node-b' });
  await runPod('user-1', { app: 'user' }, '10.244.1.11', { ready: false });
  const rpc = {
    apiVersion: 'rpc.isthmus.io/v1alpha1',
    kind: 'RPCService',
    metadata: { name: 'user', namespace: NS },
    spec: { interfaces: [{ name: 'com.a.UserQuery', version: '1.0.0', port: 20880, protocol: 'tri', methods: ['get'] }, { name: 'com.a.UserAdmin', group: 'ops', port: 20880, protocol: 'tri' }] },
  };
  await kube.create(rpc);
  const s = await waitState((x) => x.services.some((v) => v.hostname === 'user.rpc.cluster.local'), 'the user application');
  const svc = s!.services.find((v) => v.hostname === 'user.rpc.cluster.local')!;
  assert.deepEqual(svc.interfaces.map((i) => i.hostname), ['com.a.useradmin.g-ops.rpc.cluster.local', 'com.a.userquery.v1-0-0.rpc.cluster.local']);
  assert.deepEqual(svc.ports, [{ name: 'tri', number: 20880, protocol: 'GRPC' }]);
  assert.deepEqual(svc.workloadSelector, { app: 'user' });
  const users = s!.workloads.filter((w) => w.labels.app === 'user').map((w) => [w.name, w.address, w.health, w.ports, w.locality]);
  assert.deepEqual(users, [
    ['user-0', '10.244.1.10', 'HEALTHY', { tri: 20880 }, { region: 'idc-1', zone: 'east-1b' }],
    ['user-1', '10.244.1.11', 'UNHEALTHY', { tri: 20880 }, { region: 'idc-1' }],
  ]);

  type WithStatus = { status?: RpcServiceStatus; metadata: { generation: number } };
  const status = await waitUntil(() => kube.get<WithStatus>(rpc.apiVersion, rpc.kind, NS, 'user'), (o) => o.status?.endpoints === 1, { ...WAIT, what: 'status written' });
  assert.equal(status.status!.hostname, 'user.rpc.cluster.local');
  assert.equal(status.status!.selectedPods, 2);
  assert.equal(status.status!.observedGeneration, status.metadata.generation);
  assert.deepEqual(status.status!.conflicts, []);
  assert.deepEqual(status.status!.interfaces.map((i) => [i.name, i.hostname, i.port, i.protocol]), [
    ['com.a.UserAdmin', 'com.a.useradmin.g-ops.rpc.cluster.local', 20880, 'tri'],
    ['com.a.UserQuery', 'com.a.userquery.v1-0-0.rpc.cluster.local', 20880, 'tri'],
  ]);
  assert.deepEqual(status.status!.conditions?.map((c) => [c.type, c.status]), [['Resolved', 'True']]);

  // The second pod becomes ready: the count follows.
  await kube.setStatus(pod('user-1', {}), { phase: 'Running', podIP: '10.244.1.11', podIPs: [{ ip: '10.244.1.11' }], conditions: [{ type: 'Ready', status: 'True' }] });
  await waitUntil(() => kube.get<WithStatus>(rpc.apiVersion, rpc.kind, NS, 'user'), (o) => o.status?.endpoints === 2, { ...WAIT, what: 'status shows two endpoints' });

  // A second RPCService claiming the same interface: both report the conflict, neither serves the name.
  await kube.create({ ...rpc, metadata: { name: 'user-copy', namespace: NS }, spec: { application: 'user2', interfaces: [{ name: 'com.a.UserQuery', version: '1.0.0', port: 20880, protocol: 'tri' }] } });
  const copy = await waitUntil(() => kube.get<WithStatus>(rpc.apiVersion, rpc.kind, NS, 'user-copy'), (o) => (o.status?.conflicts.length ?? 0) > 0, { ...WAIT, what: 'conflict in status' });
  assert.match(copy.status!.conflicts[0]!.reason, /also claimed by com\.a\.UserQuery version 1\.0\.0 of RPCService shop\/user/);
  assert.equal(copy.status!.conditions?.[0]?.status, 'False');
  const s2 = await waitState((x) => !x.services.find((v) => v.hostname === 'user.rpc.cluster.local')?.interfaces.some((i) => i.name === 'com.a.UserQuery'), 'contested name withdrawn');
  assert.ok(s2!.rejections.some((r) => r.kind === 'RPCService' && r.name === 'user-copy'));
  await kube.delete({ ...rpc, metadata: { name: 'user-copy', namespace: NS } });
  await waitState((x) => x.services.find((v) => v.hostname === 'user.rpc.cluster.local')?.interfaces.length === 2, 'name served again');
});

test('Istio ServiceEntry and WorkloadEntry from the cluster, validated like files; a bad edit keeps the last good version', async () => {
  const se = {
    apiVersion: 'networking.istio.io/v1',
    kind: 'ServiceEntry',
    metadata: { name: 'legacy', namespace: NS },
    spec: { hosts: ['legacy.shop.internal'], ports: [{ number: 8000, name: 'http', protocol: 'HTTP' }], location: 'MESH_INTERNAL', resolution: 'STATIC', workloadSelector: { labels: { app: 'legacy' } } },
  };
  await kube.create(se);
  await kube.create({ apiVersion: 'networking.istio.io/v1', kind: 'WorkloadEntry', metadata: { name: 'vm-1', namespace: NS }, spec: { address: '192.168.7.1', labels: { app: 'legacy' } } });
  const s = await waitState((x) => x.services.some((v) => v.hostname === 'legacy.shop.internal') && x.workloads.some((w) => w.name === 'vm-1'), 'ServiceEntry and WorkloadEntry');
  assert.equal(s!.services.find((v) => v.hostname === 'legacy.shop.internal')!.origin.ref, 'ServiceEntry shop/legacy');

  await kube.update(se, (cur) => ({ ...cur, spec: { ...(cur.spec as object), resolution: 'DNS', hosts: ['*.legacy.shop.internal'] } }));
  const bad = await waitState((x) => x.rejections.some((r) => r.kind === 'ServiceEntry'), 'rejection of the bad edit');
  const r = bad!.rejections.find((x) => x.kind === 'ServiceEntry')!;
  assert.equal(r.source, `${registry.id} ServiceEntry shop/legacy`);
  assert.match(r.reason, /the last good version of this object is still served$/);
  assert.ok(bad!.services.some((v) => v.hostname === 'legacy.shop.internal'), 'last good version still served');
});

test('VirtualService and DestinationRule from the cluster pass through as rules, validated like files', async () => {
  const vs = {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name: 'web', namespace: NS },
    spec: { hosts: ['web.shop.svc.cluster.local'], http: [{ route: [{ destination: { host: 'web.shop.svc.cluster.local', subset: 'v1' } }] }] },
  };
  const dr = {
    apiVersion: 'networking.istio.io/v1',
    kind: 'DestinationRule',
    metadata: { name: 'web', namespace: NS },
    spec: { host: 'web.shop.svc.cluster.local', subsets: [{ name: 'v1', labels: { version: 'v1' } }] },
  };
  await kube.create(vs);
  await kube.create(dr);
  const s = await waitState((x) => (x.virtualServices?.length ?? 0) === 1 && (x.destinationRules?.length ?? 0) === 1, 'rules in the state');
  assert.deepEqual(s!.virtualServices!.map((v) => [v.namespace, v.name, v.origin.ref, v.location.source]), [[NS, 'web', 'VirtualService shop/web', `${registry.id} VirtualService shop/web`]]);
  assert.deepEqual(s!.destinationRules!.map((d) => [d.namespace, d.name, d.origin.ref]), [[NS, 'web', 'DestinationRule shop/web']]);
  await kube.create({ ...vs, metadata: { name: 'broken', namespace: NS }, spec: { hosts: ['web.shop.svc.cluster.local'], http: [{ route: [] }] } });
  await waitState((x) => x.rejections.some((r) => r.kind === 'VirtualService' && r.name === 'broken'), 'the broken VirtualService refused');
  assert.equal(latest()!.virtualServices!.length, 1);
});

test('an API server restart: no emitted state loses an endpoint, the outage is visible, later changes arrive', async () => {
  const host = 'web.shop.svc.cluster.local';
  const before = latest()!;
  const webBefore = endpointsOf(before, host);
  const servicesBefore = before.services.map((s) => s.hostname).sort();
  const from = states.length;
  await kube.stop();
  const down = await waitState((x) => x.error !== undefined, 'the outage reported', 30_000);
  assert.match(down!.error!, /^Service, EndpointSlice, Pod, Node, RPCService, ServiceEntry, WorkloadEntry, VirtualService, DestinationRule, PeerAuthentication: .* \(failing since .*, last synced .*\); serving the last known state$/);
  assert.ok(metrics.render().includes(`isthmus_kube_watch_up{registry="${registry.id}",resource="Service"} 0`));
  await kube.start();
  await waitState((x) => x.error === undefined, 'recovered after the restart', 30_000);
  for (const s of states.slice(from)) {
    assert.deepEqual(endpointsOf(s, host), webBefore, 'endpoints kept through the restart');
    assert.deepEqual(s.services.map((x) => x.hostname).sort(), servicesBefore);
    assert.equal(s.synced, true);
  }
  // The restarted server's watch cache begins at its current revision, so resuming from an
  // older one is answered 410 Gone: the registry listed again, and (above) no state lost anything.
  assert.ok(registry.watchStatus().some((w) => w.relists > 0), JSON.stringify(registry.watchStatus()));
  // Changes after the restart arrive (watches resumed or relisted).
  await kube.update(slice('web-abc', 'web', []), (cur) => ({ ...cur, endpoints: [{ addresses: ['10.244.0.13'], conditions: { ready: true } }] }));
  await waitState((x) => endpointsOf(x, host).join() === '10.244.0.13:HEALTHY', 'a change after the restart');
  const syncedAt = Number(/isthmus_kube_watch_last_sync_timestamp_seconds\{registry="[^"]*",resource="EndpointSlice"\} (\d+)/.exec(metrics.render())?.[1]);
  assert.ok(Date.now() / 1000 - syncedAt < 30, `last sync ${syncedAt}`);
});
