import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mergeStates } from '../../../src/model/aggregate.ts';
import { mapProviders } from '../../../src/registries/soa/mapping.ts';
import { buildProviderUrl, parseProviderKey, providerKey, type ProviderSpec } from '../../../src/registries/soa/provider.ts';
import { XdsCache } from '../../../src/xds/cache.ts';
import { decodeToJson } from '../../../src/xds/proto.ts';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE } from '../../../src/xds/resources.ts';
import { messageType } from '../../../src/xds/proto.ts';
import { proxy } from './fixtures.ts';
import { doc, drOf, parseOne } from '../model/rules/helpers.ts';

const Q1 = 'com.a.userquery.v1.rpc.cluster.local';
const Q2 = 'com.a.userquery.v2.rpc.cluster.local';

function generation() {
  const specs: ProviderSpec[] = [
    { protocol: 'tri', address: '10.0.0.1', port: 50051, interface: 'com.a.UserQuery', application: 'user', version: '1' },
    { protocol: 'tri', address: '10.0.0.2', port: 50051, interface: 'com.a.UserQuery', application: 'user', version: '2' },
  ];
  const soa = mapProviders(specs.map((s) => parseProviderKey(providerKey('/dubbo', s.interface, buildProviderUrl(s, 1)), '/dubbo')!), { registry: 'etcd://x/dubbo' });
  // A migrated instance of the same application, from another registry: serves every interface.
  const workload = { name: 'user-pod', namespace: 'default', address: '10.9.0.1', labels: { app: 'user' }, ports: {}, locality: {}, weight: 1, health: 'HEALTHY' as const, origin: { registry: 'file:///x', ref: 'we' } };
  const model = mergeStates([
    { id: 'etcd://x/dubbo', synced: true, services: soa.services, endpoints: soa.endpoints, workloads: [], rejections: [] },
    { id: 'file:///x', synced: true, services: [], endpoints: [], workloads: [workload], rejections: [] },
  ]);
  return new XdsCache().update(model);
}

function decode(typeUrl: string, any: Uint8Array): Record<string, unknown> {
  const value = (messageType('google.protobuf.Any').decode(any) as unknown as { value: Uint8Array }).value;
  return decodeToJson(typeUrl.replace('type.googleapis.com/', ''), value);
}

function addresses(cla: Record<string, unknown>): string[] {
  const groups = cla.endpoints as { lb_endpoints: { endpoint: { address: { socket_address: { address: string } } } }[] }[];
  return groups.flatMap((g) => g.lb_endpoints.map((e) => e.endpoint.address.socket_address.address)).sort();
}

test('the application cluster holds every provider and the migrated instance; each interface cluster only its own', () => {
  const g = generation();
  const p = proxy('x');
  const app = g.resolve(ENDPOINT_TYPE, 'outbound|50051||user.rpc.cluster.local', p)!;
  assert.deepEqual(addresses(decode(ENDPOINT_TYPE, app.any)), ['10.0.0.1', '10.0.0.2', '10.9.0.1']);
  const v1 = g.resolve(ENDPOINT_TYPE, `outbound|50051|${Q1}|user.rpc.cluster.local`, p)!;
  assert.deepEqual(addresses(decode(ENDPOINT_TYPE, v1.any)), ['10.0.0.1', '10.9.0.1']);
  const v2 = g.resolve(ENDPOINT_TYPE, `outbound|50051|${Q2}|user.rpc.cluster.local`, p)!;
  assert.deepEqual(addresses(decode(ENDPOINT_TYPE, v2.any)), ['10.0.0.2', '10.9.0.1']);
  assert.ok(g.resolve(CLUSTER_TYPE, `outbound|50051|${Q1}|user.rpc.cluster.local`, p));
});

test('every endpoint says which registry it came from', () => {
  const g = generation();
  const cla = decode(ENDPOINT_TYPE, g.resolve(ENDPOINT_TYPE, 'outbound|50051||user.rpc.cluster.local', proxy('x'))!.any);
  const text = JSON.stringify(cla);
  assert.match(text, /etcd:\/\/x\/dubbo/);
  assert.match(text, /file:\/\/\/x/);
});

test('interface names route by :authority to their own cluster, for sidecars and proxyless clients', () => {
  const g = generation();
  const route = decode(ROUTE_TYPE, g.resolve(ROUTE_TYPE, 'outbound', proxy('x'))!.any) as { virtual_hosts: { domains: string[]; routes: { route: { cluster: string } }[] }[] };
  const vh = route.virtual_hosts.find((v) => v.domains.includes(Q2))!;
  assert.equal(vh.routes[0]!.route.cluster, `outbound|50051|${Q2}|user.rpc.cluster.local`);
  const grpc = proxy('g', {}, 'gRPC Node');
  assert.ok(g.resolve(LISTENER_TYPE, `${Q1}:50051`, grpc));
  const target = decode(ROUTE_TYPE, g.resolve(ROUTE_TYPE, `${Q1}:50051`, grpc)!.any) as { virtual_hosts: { routes: { route: { cluster: string } }[] }[] };
  assert.equal(target.virtual_hosts[0]!.routes[0]!.route.cluster, `outbound|50051|${Q1}|user.rpc.cluster.local`);
  assert.equal(g.resolve(LISTENER_TYPE, `${Q1}:1234`, grpc), undefined, 'a port the interface is not served on');
});

test('a VM provider with Dubbo weight 100 and a migrated instance of weight 1 get equal shares', () => {
  const g = generation();
  const cla = decode(ENDPOINT_TYPE, g.resolve(ENDPOINT_TYPE, 'outbound|50051||user.rpc.cluster.local', proxy('x'))!.any) as {
    endpoints: { lb_endpoints: { load_balancing_weight: { value: number }; endpoint: { address: { socket_address: { address: string } } } }[] }[];
  };
  const weights = Object.fromEntries(cla.endpoints.flatMap((l) => l.lb_endpoints.map((e) => [e.endpoint.address.socket_address.address, e.load_balancing_weight.value])));
  assert.deepEqual(weights, { '10.0.0.1': 100, '10.0.0.2': 100, '10.9.0.1': 100 });
});

test("an interface's subsets match its own labels on an instance whose interfaces differ in them", () => {
  const specs: ProviderSpec[] = [
    { address: '10.0.0.1', port: 20880, interface: 'com.a.Q', application: 'u', params: { revision: '1.2' } },
    { address: '10.0.0.1', port: 20880, interface: 'com.a.W', application: 'u', params: { revision: '3.0' } },
    { address: '10.0.0.2', port: 20880, interface: 'com.a.Q', application: 'u', params: { revision: '1.3' } },
  ];
  const soa = mapProviders(specs.map((s) => parseProviderKey(providerKey('/dubbo', s.interface, buildProviderUrl(s, 1)), '/dubbo')!), { registry: 'etcd://x/dubbo' });
  const host = 'com.a.q.rpc.cluster.local';
  const dr = drOf(parseOne(doc('DestinationRule', 'q', { host, subsets: [{ name: 'old', labels: { revision: '1.2' } }, { name: 'new', labels: { revision: '1.3' } }] })));
  const model = mergeStates([{ id: 'etcd://x/dubbo', synced: true, services: soa.services, endpoints: soa.endpoints, workloads: [], rejections: [], destinationRules: [dr] }]);
  const g = new XdsCache().update(model);
  const p = proxy('x');
  assert.deepEqual(addresses(decode(ENDPOINT_TYPE, g.resolve(ENDPOINT_TYPE, `outbound|20880|old|${host}`, p)!.any)), ['10.0.0.1']);
  assert.deepEqual(addresses(decode(ENDPOINT_TYPE, g.resolve(ENDPOINT_TYPE, `outbound|20880|new|${host}`, p)!.any)), ['10.0.0.2']);
});
