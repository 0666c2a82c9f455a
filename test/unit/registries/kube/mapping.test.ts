// Kubernetes objects → model, without a server: Services and EndpointSlices as kube-proxy
// reads them, pods as workloads, RPCService naming and conflicts, Istio objects through the
// file parser, registry URLs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mergeStates } from '../../../../src/model/aggregate.ts';
import type { RegistryState } from '../../../../src/model/types.ts';
import { parseManifests } from '../../../../src/registries/file/index.ts';
import { parseIstioObject } from '../../../../src/registries/kube/istio.ts';
import { describeFailures } from '../../../../src/registries/kube/kube-registry.ts';
import { type ClusterContext, type NodeLike, type PodLike, podWorkloads } from '../../../../src/registries/kube/pods.ts';
import { mapRpcServices, type RpcServiceLike, withConditions } from '../../../../src/registries/kube/rpcservice.ts';
import { type EndpointSliceLike, mapServices, servicePortProtocol, type ServiceLike } from '../../../../src/registries/kube/services.ts';
import { KubeUrlError } from '../../../../src/registries/kube/errors.ts';
import { parseKubeUrl } from '../../../../src/registries/kube/url.ts';
import { mapProviders } from '../../../../src/registries/soa/mapping.ts';
import { buildProviderUrl, parseProviderKey, providerKey } from '../../../../src/registries/soa/provider.ts';

const ctx: ClusterContext = { registry: 'kube://test', domain: 'cluster.local' };

function service(name: string, spec: ServiceLike['spec'], namespace = 'shop'): ServiceLike {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace }, spec };
}

type SliceEndpoint = NonNullable<EndpointSliceLike['endpoints']>[number];
function slice(name: string, svc: string, endpoints: SliceEndpoint[], ports: EndpointSliceLike['ports'], namespace = 'shop'): EndpointSliceLike {
  return { metadata: { name, namespace, labels: { 'kubernetes.io/service-name': svc } }, addressType: 'IPv4', endpoints, ports };
}

function pod(name: string, ip: string, labels: Record<string, string>, opts: { ready?: boolean; node?: string; namespace?: string; deleting?: boolean; ports?: { name: string; containerPort: number }[] } = {}): PodLike {
  return {
    metadata: { name, namespace: opts.namespace ?? 'shop', labels, ...(opts.deleting ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}) },
    spec: { ...(opts.node ? { nodeName: opts.node } : {}), containers: [{ ports: opts.ports ?? [] }] },
    status: { phase: 'Running', podIP: ip, conditions: [{ type: 'Ready', status: opts.ready === false ? 'False' : 'True' }] },
  };
}

const nodes = new Map<string, NodeLike>([
  ['node-a', { metadata: { name: 'node-a', labels: { 'topology.kubernetes.io/region': 'east', 'topology.kubernetes.io/zone': 'east-1a', 'topology.istio.io/subzone': 'rack-7' } } }],
  ['node-b', { metadata: { name: 'node-b', labels: { 'topology.kubernetes.io/region': 'east', 'topology.kubernetes.io/zone': 'east-1b' } } }],
]);

test('port protocol: appProtocol first, then the Istio port-name convention, else TCP', () => {
  assert.equal(servicePortProtocol('web', 'kubernetes.io/h2c'), 'HTTP2');
  assert.equal(servicePortProtocol('tcp-x', 'grpc'), 'GRPC');
  assert.equal(servicePortProtocol('grpc', undefined), 'GRPC');
  assert.equal(servicePortProtocol('grpc-api', undefined), 'GRPC');
  assert.equal(servicePortProtocol('http-web', undefined), 'HTTP');
  assert.equal(servicePortProtocol('http2-web', undefined), 'HTTP2');
  assert.equal(servicePortProtocol('grpc-web', undefined), 'HTTP');
  assert.equal(servicePortProtocol('tcp-db', undefined), 'TCP');
  assert.equal(servicePortProtocol('https', undefined), 'HTTPS');
  assert.equal(servicePortProtocol('web', undefined), 'TCP');
  assert.equal(servicePortProtocol(undefined, 'unknown-proto'), 'TCP');
});

test('a ClusterIP Service: hostname and short aliases, VIPs, ports; UDP ports left out', () => {
  const m = mapServices(ctx, {
    services: [
      service('web', {
        type: 'ClusterIP',
        clusterIP: '10.96.0.10',
        clusterIPs: ['10.96.0.10', 'fd00::10'],
        ports: [
          { name: 'http', port: 80, targetPort: 8080 },
          { name: 'grpc-api', port: 9090, targetPort: 'grpc' },
          { name: 'dns', port: 53, protocol: 'UDP' },
        ],
      }),
    ],
    slices: [],
    pods: new Map(),
    nodes,
  });
  assert.deepEqual(m.services.map((s) => [s.hostname, s.aliases, s.addresses, s.resolution, s.location, s.ports]), [
    [
      'web.shop.svc.cluster.local',
      ['web.shop.svc', 'web.shop'],
      ['10.96.0.10', 'fd00::10'],
      'STATIC',
      'MESH_INTERNAL',
      [
        { name: 'http', number: 80, protocol: 'HTTP', targetPort: 8080 },
        { name: 'grpc-api', number: 9090, protocol: 'GRPC' },
      ],
    ],
  ]);
  assert.deepEqual(m.endpoints, []);
});

test('EndpointSlices as kube-proxy applies them: ready serve, terminating drain, a repeated address counts once', () => {
  const ports = [{ name: 'http', port: 8080, protocol: 'TCP' }];
  const m = mapServices(ctx, {
    services: [service('web', { clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80, targetPort: 8080 }] })],
    slices: [
      slice('web-1', 'web', [
        { addresses: ['10.1.0.1'], conditions: { ready: true }, nodeName: 'node-a', zone: 'east-1a', targetRef: { kind: 'Pod', name: 'web-a' } },
        { addresses: ['10.1.0.2'], conditions: { ready: false, serving: true, terminating: true }, nodeName: 'node-b' },
        { addresses: ['10.1.0.3'], conditions: { ready: false, serving: false, terminating: false } },
        { addresses: ['10.1.0.4'], conditions: { ready: false } },
      ], ports),
      // The controller moving 10.1.0.4 between slices: it counts once, in its best state.
      slice('web-2', 'web', [{ addresses: ['10.1.0.4'], conditions: { ready: true } }, { addresses: ['10.1.0.5'] }], ports),
      slice('other', 'other-svc', [{ addresses: ['10.9.9.9'] }], ports),
    ],
    pods: new Map([['shop/web-a', pod('web-a', '10.1.0.1', { app: 'web', version: 'v1' })]]),
    nodes,
  });
  const eps = m.endpoints.map((e) => [e.address, e.health, e.ports, e.locality, e.labels]);
  assert.deepEqual(eps, [
    ['10.1.0.1', 'HEALTHY', { http: 8080 }, { region: 'east', zone: 'east-1a', subzone: 'rack-7' }, { app: 'web', version: 'v1' }],
    ['10.1.0.2', 'DRAINING', { http: 8080 }, { region: 'east', zone: 'east-1b' }, {}],
    ['10.1.0.3', 'UNHEALTHY', { http: 8080 }, {}, {}],
    ['10.1.0.4', 'HEALTHY', { http: 8080 }, {}, {}],
    // ready unset means ready (the API's "unknown")
    ['10.1.0.5', 'HEALTHY', { http: 8080 }, {}, {}],
  ]);
  assert.ok(m.endpoints.every((e) => e.service === 'web.shop.svc.cluster.local'));
});

test('with no ready endpoint, serving terminating endpoints take the traffic (kube-proxy fallback)', () => {
  const m = mapServices(ctx, {
    services: [service('web', { clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80 }] })],
    slices: [slice('web-1', 'web', [
      { addresses: ['10.1.0.2'], conditions: { ready: false, serving: true, terminating: true } },
      { addresses: ['10.1.0.3'], conditions: { ready: false, serving: false, terminating: true } },
    ], [{ name: 'http', port: 80 }])],
    pods: new Map(),
    nodes,
  });
  assert.deepEqual(m.endpoints.map((e) => [e.address, e.health]), [['10.1.0.2', 'HEALTHY'], ['10.1.0.3', 'UNHEALTHY']]);
});

test('headless, ExternalName, unnamed-port and portless Services', () => {
  const m = mapServices({ ...ctx, clusterName: 'c1', region: 'idc-hz' }, {
    services: [
      service('db', { clusterIP: 'None', ports: [{ name: 'tcp-pg', port: 5432 }] }),
      service('ext', { type: 'ExternalName', externalName: 'api.example.com', ports: [{ name: 'https', port: 443 }] }),
      service('one', { clusterIP: '10.96.0.11', ports: [{ port: 7000, targetPort: 'app' }] }),
      service('none', { clusterIP: '10.96.0.12' }),
    ],
    slices: [
      slice('db-1', 'db', [{ addresses: ['10.1.1.1'], nodeName: 'node-a' }], [{ name: 'tcp-pg', port: 5432 }]),
      slice('one-1', 'one', [{ addresses: ['10.1.2.1'] }], [{ name: '', port: 7777 }]),
    ],
    pods: new Map(),
    nodes,
    shortNames: false,
  });
  assert.deepEqual(m.services.map((s) => [s.hostname, s.aliases, s.addresses, s.resolution, s.location]), [
    ['db.shop.svc.cluster.local', [], [], 'STATIC', 'MESH_INTERNAL'],
    ['ext.shop.svc.cluster.local', [], [], 'DNS', 'MESH_EXTERNAL'],
    ['one.shop.svc.cluster.local', [], ['10.96.0.11'], 'STATIC', 'MESH_INTERNAL'],
  ]);
  assert.deepEqual(m.services[2]!.ports, [{ name: 'port-7000', number: 7000, protocol: 'TCP' }]);
  assert.deepEqual(m.endpoints.map((e) => [e.service, e.address, e.ports, e.locality, e.labels]), [
    // the cluster's region wins over the node's; the cluster name labels every endpoint
    ['db.shop.svc.cluster.local', '10.1.1.1', { 'tcp-pg': 5432 }, { region: 'idc-hz', zone: 'east-1a', subzone: 'rack-7' }, { 'topology.istio.io/cluster': 'c1' }],
    ['ext.shop.svc.cluster.local', 'api.example.com', {}, { region: 'idc-hz' }, { 'topology.istio.io/cluster': 'c1' }],
    ['one.shop.svc.cluster.local', '10.1.2.1', { 'port-7000': 7777 }, { region: 'idc-hz' }, { 'topology.istio.io/cluster': 'c1' }],
  ]);
});

test('pods are workloads: address, labels, named container ports, readiness, node locality', () => {
  const w = podWorkloads(ctx, [
    pod('a', '10.1.0.1', { app: 'user' }, { node: 'node-a', ports: [{ name: 'tri', containerPort: 20880 }] }),
    pod('b', '10.1.0.2', { app: 'user' }, { ready: false }),
    pod('c', '10.1.0.3', { app: 'user' }, { deleting: true }),
    { metadata: { name: 'pending', namespace: 'shop' }, status: { phase: 'Pending' } },
    { ...pod('done', '10.1.0.9', {}), status: { phase: 'Succeeded', podIP: '10.1.0.9' } },
  ], nodes);
  assert.deepEqual(w.map((x) => x.identity), [{ namespace: 'shop', serviceAccount: 'default' }, { namespace: 'shop', serviceAccount: 'default' }, { namespace: 'shop', serviceAccount: 'default' }], "a pod without serviceAccountName runs as 'default'");
  const own = podWorkloads(ctx, [{ ...pod('d', '10.1.0.4', {}), spec: { serviceAccountName: 'billing' } }], nodes);
  assert.deepEqual(own[0]!.identity, { namespace: 'shop', serviceAccount: 'billing' });
  assert.deepEqual(w.map((x) => [x.name, x.address, x.health, x.ports, x.locality, x.origin.ref]), [
    ['a', '10.1.0.1', 'HEALTHY', { tri: 20880 }, { region: 'east', zone: 'east-1a', subzone: 'rack-7' }, 'Pod shop/a'],
    ['b', '10.1.0.2', 'UNHEALTHY', {}, {}, 'Pod shop/b'],
    ['c', '10.1.0.3', 'DRAINING', {}, {}, 'Pod shop/c'],
  ]);
});

function rpc(name: string, spec: unknown, namespace = 'shop', generation = 1): RpcServiceLike {
  return { apiVersion: 'rpc.isthmus.io/v1alpha1', kind: 'RPCService', metadata: { name, namespace, generation }, spec };
}

test('RPCService: interfaces named exactly like the SOA registry names them, pods join by selector, status counted', () => {
  const m = mapRpcServices(ctx, [
    rpc('user', {
      interfaces: [
        { name: 'com.a.UserQuery', version: '1.0.0', port: 20880, protocol: 'dubbo', methods: ['list', 'get'] },
        { name: 'com.a.UserWrite', group: 'blue', port: 20880, protocol: 'dubbo' },
        { name: 'com.a.UserApi', port: 8080, protocol: 'grpc' },
      ],
    }),
  ], [
    pod('u1', '10.1.0.1', { app: 'user' }),
    pod('u2', '10.1.0.2', { app: 'user' }, { ready: false }),
    pod('other', '10.1.0.3', { app: 'shop' }),
    pod('elsewhere', '10.1.0.4', { app: 'user' }, { namespace: 'other' }),
  ]);
  assert.deepEqual(m.rejections, []);
  assert.equal(m.services.length, 1);
  const svc = m.services[0]!;
  assert.equal(svc.hostname, 'user.rpc.cluster.local');
  assert.deepEqual(svc.workloadSelector, { app: 'user' });
  assert.deepEqual(svc.ports, [{ name: 'grpc', number: 8080, protocol: 'GRPC' }, { name: 'dubbo', number: 20880, protocol: 'DUBBO' }]);
  assert.deepEqual(svc.interfaces.map((i) => [i.hostname, i.port, i.methods]), [
    ['com.a.userapi.rpc.cluster.local', 8080, []],
    ['com.a.userquery.v1-0-0.rpc.cluster.local', 20880, ['get', 'list']],
    ['com.a.userwrite.g-blue.rpc.cluster.local', 20880, []],
  ]);
  const status = m.statuses.get('shop/user')!;
  assert.equal(status.hostname, 'user.rpc.cluster.local');
  assert.equal(status.endpoints, 1);
  assert.equal(status.selectedPods, 2);
  assert.equal(status.observedGeneration, 1);
  assert.deepEqual(status.conflicts, []);
  assert.deepEqual(status.interfaces.map((i) => i.hostname), svc.interfaces.map((i) => i.hostname));

  // The same application from the SOA registry (providers on VMs) and from the cluster (pods):
  // one service, the interfaces of both, VM providers and pods side by side.
  const soa = mapProviders(
    ['com.a.UserQuery', 'com.a.UserLegacy'].map((iface) =>
      parseProviderKey(providerKey('/dubbo', iface, buildProviderUrl({ address: '192.168.0.9', port: 20880, interface: iface, application: 'user', methods: ['get'], ...(iface.endsWith('Query') ? { version: '1.0.0' } : {}) }, 1)), '/dubbo')!,
    ),
    { registry: 'etcd://soa/dubbo', namespace: 'shop' },
  );
  const kubeState: RegistryState = { id: 'kube://test', synced: true, services: m.services, endpoints: [], workloads: podWorkloads(ctx, [pod('u1', '10.1.0.1', { app: 'user' })], new Map()), rejections: [] };
  const soaState: RegistryState = { id: 'etcd://soa/dubbo', synced: true, services: soa.services, endpoints: soa.endpoints, workloads: [], rejections: [] };
  const merged = mergeStates([kubeState, soaState]);
  const one = merged.services.get('user.rpc.cluster.local')!;
  assert.deepEqual(one.interfaces.map((i) => i.hostname).sort(), [
    'com.a.userapi.rpc.cluster.local',
    'com.a.userlegacy.rpc.cluster.local',
    'com.a.userquery.v1-0-0.rpc.cluster.local',
    'com.a.userwrite.g-blue.rpc.cluster.local',
  ]);
  assert.deepEqual(merged.endpoints.get('user.rpc.cluster.local')!.map((e) => e.address), ['10.1.0.1', '192.168.0.9']);
  assert.deepEqual(merged.conflicts, []);
});

test('RPCService conflicts: an application defined twice, an interface claimed twice, bad fields', () => {
  const m = mapRpcServices(ctx, [
    rpc('a', { application: 'user', interfaces: [{ name: 'com.a.Shared', port: 1000 }, { name: 'com.a.Mine', port: 1000 }] }),
    rpc('b', { application: 'user', interfaces: [{ name: 'com.a.Other', port: 1000 }] }),
    rpc('c', { interfaces: [{ name: 'com.a.Shared', port: 1000 }, { name: 'com.c.Two', port: 1000, protocol: 'http' }] }),
    rpc('d', { interfaces: [{ name: 'com.d.X', port: 70000 }, { port: 1 }], extra: true }),
  ], []);
  const hosts = m.services.map((s) => [s.hostname, s.interfaces.map((i) => i.hostname)]);
  assert.deepEqual(hosts, [
    ['user.rpc.cluster.local', ['com.a.mine.rpc.cluster.local']],
    ['c.rpc.cluster.local', ['com.c.two.rpc.cluster.local']],
  ]);
  const conflictsOf = (k: string): string[] => m.statuses.get(k)!.conflicts.map((c) => `${c.name}: ${c.reason}`);
  assert.match(conflictsOf('shop/a').join('\n'), /com\.a\.shared\.rpc\.cluster\.local: name .* is also claimed by com\.a\.Shared of RPCService shop\/c; neither is served/);
  assert.match(conflictsOf('shop/b').join('\n'), /application user is already defined by RPCService shop\/a/);
  assert.equal(m.statuses.get('shop/b')!.hostname, undefined);
  assert.match(conflictsOf('shop/c').join('\n'), /com\.a\.shared\.rpc\.cluster\.local: name .* is also claimed by com\.a\.Shared of RPCService shop\/a/);
  assert.equal(m.statuses.get('shop/d')!.hostname, undefined);
  assert.match(conflictsOf('shop/d').join('\n'), /spec\.interfaces\[0\]\.port: spec\.interfaces\[0\]\.port is 70000, out of range/);
  assert.match(conflictsOf('shop/d').join('\n'), /spec\.interfaces\[1\]\.name: .*name is missing/);
  assert.match(conflictsOf('shop/d').join('\n'), /spec\.extra: unknown field "extra"/);
  assert.ok(m.rejections.some((r) => r.source === 'kube://test RPCService shop/d' && r.field === 'spec.extra'));

  const cond = withConditions(m.statuses.get('shop/a')!, undefined, new Date('2026-01-02T03:04:05.678Z'));
  assert.deepEqual(cond.conditions?.map((c) => [c.type, c.status, c.reason, c.lastTransitionTime]), [['Resolved', 'False', 'PartlyResolved', '2026-01-02T03:04:05Z']]);
  // A later round with the same outcome keeps the transition time (no needless status writes).
  const again = withConditions(m.statuses.get('shop/a')!, cond, new Date('2026-02-02T00:00:00Z'));
  assert.equal(again.conditions?.[0]?.lastTransitionTime, '2026-01-02T03:04:05Z');
});

test('two protocols on one port of one RPCService: the second is refused', () => {
  const m = mapRpcServices(ctx, [rpc('x', { interfaces: [{ name: 'com.x.A', port: 9000, protocol: 'grpc' }, { name: 'com.x.B', port: 9000, protocol: 'http' }] })], []);
  assert.deepEqual(m.services[0]!.interfaces.map((i) => i.name), ['com.x.A']);
  assert.match(m.statuses.get('shop/x')!.conflicts[0]!.reason, /port 9000 already serves grpc; com\.x\.B \(http\) is not served/);
});

test('Istio objects from the cluster get exactly the file parser\'s verdict', () => {
  const good = {
    apiVersion: 'networking.istio.io/v1',
    kind: 'ServiceEntry',
    metadata: { name: 'ext', namespace: 'shop', uid: 'u1', resourceVersion: '12', managedFields: [{ manager: 'kubectl' }] },
    spec: { hosts: ['ext.example.com'], ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], resolution: 'STATIC', location: 'MESH_INTERNAL', endpoints: [{ address: '10.2.0.1' }] },
  };
  const r = parseIstioObject('kube://test', 'ServiceEntry', good);
  assert.equal(r.ok, true);
  assert.deepEqual(r.services.map((s) => [s.hostname, s.origin]), [['ext.example.com', { registry: 'kube://test', ref: 'ServiceEntry shop/ext' }]]);
  assert.deepEqual(r.endpoints.map((e) => e.address), ['10.2.0.1']);

  const bad = { ...good, spec: { ...good.spec, resolution: 'NONE' } };
  const fromCluster = parseIstioObject('kube://test', 'ServiceEntry', bad);
  const fromFile = parseManifests(JSON.stringify(bad), 'x.json').documents[0]!;
  assert.equal(fromCluster.ok, false);
  assert.equal(fromFile.ok, false);
  assert.deepEqual(
    fromCluster.rejections.map((x) => [x.field, x.reason]),
    (fromFile.ok ? [] : fromFile.rejections).map((x) => [x.field, x.reason]),
  );
  assert.equal(fromCluster.rejections[0]!.source, 'kube://test ServiceEntry shop/ext');

  const vs = {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name: 'r', namespace: 'shop' },
    spec: { hosts: ['ext.example.com'], http: [{ timeout: '1.5s', route: [{ destination: { host: 'ext.example.com' } }] }] },
  };
  const rule = parseIstioObject('kube://test', 'VirtualService', vs);
  const fileRule = parseManifests(JSON.stringify(vs), 'r.json').documents[0]!;
  assert.ok(rule.ok && fileRule.ok);
  assert.deepEqual(rule.virtualServices.map((v) => ({ ...v, origin: undefined, location: undefined })), fileRule.virtualServices.map((v) => ({ ...v, origin: undefined, location: undefined })));
  assert.deepEqual(rule.virtualServices[0]!.location, { source: 'kube://test VirtualService shop/r' });
  const badRule = parseIstioObject('kube://test', 'VirtualService', { ...vs, spec: { hosts: ['ext.example.com'], http: [{ timeout: '1.5 seconds', route: [{ destination: { host: 'ext.example.com' } }] }] } });
  assert.equal(badRule.ok, false);
  assert.ok(badRule.rejections.some((r) => r.field?.includes('timeout')), JSON.stringify(badRule.rejections));
});

test('kube:// URLs: context (with odd characters), options, errors', () => {
  assert.deepEqual(parseKubeUrl('kube://'), { id: 'kube://' });
  assert.deepEqual(parseKubeUrl('kube://arn:aws:eks:us-east-1:1:cluster/prod'), { id: 'kube://arn:aws:eks:us-east-1:1:cluster/prod', context: 'arn:aws:eks:us-east-1:1:cluster/prod' });
  assert.deepEqual(parseKubeUrl('kube://prod?cluster=east&region=hz-1&namespaces=a,%20b&kubeconfig=/etc/k.conf&status=false&shortnames=0'), {
    id: 'kube://prod?cluster=east&region=hz-1&namespaces=a,%20b&kubeconfig=/etc/k.conf&status=false&shortnames=0',
    context: 'prod',
    clusterName: 'east',
    region: 'hz-1',
    namespaces: ['a', 'b'],
    kubeconfig: '/etc/k.conf',
    writeStatus: false,
    shortNames: false,
  });
  assert.throws(() => parseKubeUrl('kube://x?color=red'), (e: unknown) => e instanceof KubeUrlError && /unknown option "color"/.test(e.message));
  assert.throws(() => parseKubeUrl('kube://x?status=maybe'), KubeUrlError);
});

test('failures are described once per distinct error, with since and last-synced times', () => {
  const text = describeFailures([
    { resource: 'Service', phase: 'backoff', synced: true, lastSync: Date.parse('2026-01-01T00:00:00Z'), failingSince: Date.parse('2026-01-01T00:00:05Z'), lastError: 'connect ECONNREFUSED', objects: 3, relists: 0 },
    { resource: 'Pod', phase: 'backoff', synced: true, lastSync: Date.parse('2026-01-01T00:00:01Z'), failingSince: Date.parse('2026-01-01T00:00:06Z'), lastError: 'connect ECONNREFUSED', objects: 3, relists: 0 },
    { resource: 'Node', phase: 'watching', synced: true, objects: 1, relists: 0 },
  ]);
  assert.equal(text, 'Service, Pod: connect ECONNREFUSED (failing since 2026-01-01T00:00:05Z, last synced 2026-01-01T00:00:00Z); serving the last known state');
  assert.equal(describeFailures([{ resource: 'Node', phase: 'watching', synced: true, objects: 1, relists: 0 }]), undefined);
});
