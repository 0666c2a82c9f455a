// What proxyless gRPC clients are sent: only cluster types and lb policies they accept,
// endpoints ordered for their locality by name (never inline), the host's hash policy and
// the rule's timeout in the form gRPC reads, and every setting gRPC lacks refused by name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mergeStates } from '../../../src/model/aggregate.ts';
import type { ModelSnapshot } from '../../../src/model/snapshot.ts';
import type { Endpoint } from '../../../src/model/types.ts';
import { decodeToJson } from '../../../src/xds/proto.ts';
import { XdsCache } from '../../../src/xds/cache.ts';
import { proxyFromNode, type ProxyInfo } from '../../../src/xds/proxy.ts';
import { CLUSTER_TYPE, ENDPOINT_TYPE, ROUTE_TYPE } from '../../../src/xds/resources.ts';
import { doc, drOf, parseOne, vsOf } from '../model/rules/helpers.ts';
import { endpoint, proxy, service } from './fixtures.ts';

const WEB = 'web.shop.svc.cluster.local';
const CLUSTER = `outbound|8080||${WEB}`;
const TARGET = `${WEB}:8080`;

function located(address: string, zone: string): Endpoint {
  return { ...endpoint(WEB, address), locality: { region: 'eu', zone } };
}

function modelWith(rules: { vs?: object; dr?: object }): ModelSnapshot {
  const svc = { ...service(WEB, 8080, 'GRPC'), namespace: 'shop' };
  return mergeStates([
    {
      id: 'memory://test',
      synced: true,
      services: [svc],
      endpoints: [located('10.0.0.1', 'a'), located('10.0.0.2', 'b')],
      workloads: [],
      rejections: [],
      virtualServices: rules.vs ? [vsOf(parseOne(doc('VirtualService', 'web', rules.vs)))] : [],
      destinationRules: rules.dr ? [drOf(parseOne(doc('DestinationRule', 'web', rules.dr)))] : [],
    },
  ]);
}

function grpcClient(zone = 'a'): ProxyInfo {
  return proxyFromNode({ id: `grpc-${zone}`, user_agent_name: 'gRPC Go', locality: { region: 'eu', zone } });
}

function decoded(typeName: string, any: Buffer): Record<string, unknown> {
  const a = decodeToJson('google.protobuf.Any', any) as { value: string };
  return decodeToJson(typeName, Buffer.from(a.value, 'base64'));
}

test('RANDOM: Envoy gets it, a gRPC client gets ROUND_ROBIN and the refusal is kept by name', () => {
  const g = new XdsCache().update(modelWith({ dr: { host: 'web', trafficPolicy: { loadBalancer: { simple: 'RANDOM' } } } }));
  assert.equal(decoded('envoy.config.cluster.v3.Cluster', g.resolve(CLUSTER_TYPE, CLUSTER, proxy('e'))!.any).lb_policy, 'RANDOM');
  const c = decoded('envoy.config.cluster.v3.Cluster', g.resolve(CLUSTER_TYPE, CLUSTER, grpcClient())!.any);
  assert.equal(c.lb_policy ?? 'ROUND_ROBIN', 'ROUND_ROBIN');
  assert.equal(c.type, 'EDS');
  const p = g.problems.find((x) => x.name === 'DestinationRule shop/web');
  assert.ok(p, JSON.stringify(g.problems));
  assert.match(p.reason, /not applied for proxyless gRPC clients: trafficPolicy\.loadBalancer\.simple: RANDOM is not implemented by gRPC/);
});

test('locality failover: an EDS cluster whose endpoints are named for the client locality and ordered from it', () => {
  const g = new XdsCache().update(modelWith({ dr: { host: 'web', trafficPolicy: { loadBalancer: { localityLbSetting: { enabled: true } }, outlierDetection: { consecutive5xxErrors: 1 } } } }));
  for (const [zone, first] of [['a', '10.0.0.1'], ['b', '10.0.0.2']] as const) {
    const client = grpcClient(zone);
    const c = decoded('envoy.config.cluster.v3.Cluster', g.resolve(CLUSTER_TYPE, CLUSTER, client)!.any) as { type: string; eds_cluster_config: { service_name: string }; load_assignment?: unknown };
    assert.equal(c.type, 'EDS');
    assert.equal(c.load_assignment, undefined);
    assert.equal(c.eds_cluster_config.service_name, `${CLUSTER}@eu/${zone}/`);
    const cla = decoded('envoy.config.endpoint.v3.ClusterLoadAssignment', g.resolve(ENDPOINT_TYPE, c.eds_cluster_config.service_name, client)!.any) as {
      cluster_name: string;
      endpoints: { priority?: number; lb_endpoints: { endpoint: { address: { socket_address: { address: string } } } }[] }[];
    };
    assert.equal(cla.cluster_name, c.eds_cluster_config.service_name);
    const top = cla.endpoints.find((e) => !e.priority)!;
    assert.equal(top.lb_endpoints[0]!.endpoint.address.socket_address.address, first);
    assert.equal(cla.endpoints.find((e) => e.priority === 1)!.lb_endpoints.length, 1);
  }
  assert.ok(g.problems.some((p) => /outlierDetection: gRPC ejects by success rate/.test(p.reason)));
  // Envoy keeps its inline form.
  assert.equal(decoded('envoy.config.cluster.v3.Cluster', g.resolve(CLUSTER_TYPE, CLUSTER, proxy('e'))!.any).type, 'STATIC');
});

test('locality-ordered endpoints follow an endpoint change: their names are in the next generation\'s changes', () => {
  const cache = new XdsCache();
  const dr = { host: 'web', trafficPolicy: { loadBalancer: { localityLbSetting: { enabled: true } } } };
  const g1 = cache.update(modelWith({ dr }));
  const name = `${CLUSTER}@eu/a/`;
  const before = g1.resolve(ENDPOINT_TYPE, name, grpcClient())!;
  const m = modelWith({ dr });
  const g2 = cache.update(mergeStates([{ id: 'memory://test', synced: true, services: [...m.services.values()], endpoints: [located('10.0.0.9', 'a'), located('10.0.0.2', 'b')], workloads: [], rejections: [], destinationRules: m.destinationRules }]));
  assert.ok(g2.changed.get(ENDPOINT_TYPE)!.has(name));
  assert.notEqual(g2.resolve(ENDPOINT_TYPE, name, grpcClient())!.version, before.version);
  assert.notEqual(g2.endpointsVersion, g1.endpointsVersion);
});

test('consistentHash without a VirtualService: the target route hashes on the header', () => {
  const g = new XdsCache().update(modelWith({ dr: { host: 'web', trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: 'x-user' } } } } }));
  const table = decoded('envoy.config.route.v3.RouteConfiguration', g.resolve(ROUTE_TYPE, TARGET, grpcClient())!.any) as { virtual_hosts: { routes: { route: { hash_policy?: unknown } }[] }[] };
  assert.deepEqual(table.virtual_hosts[0]!.routes.at(-1)!.route.hash_policy, [{ header: { header_name: 'x-user' } }]);
  assert.equal(decoded('envoy.config.cluster.v3.Cluster', g.resolve(CLUSTER_TYPE, CLUSTER, grpcClient())!.any).lb_policy, 'RING_HASH');
});

test('sourceIp affinity becomes the channel hash; a cookie hash is refused and the client balances round robin', () => {
  let g = new XdsCache().update(modelWith({ dr: { host: 'web', trafficPolicy: { loadBalancer: { consistentHash: { useSourceIp: true } } } } }));
  let table = decoded('envoy.config.route.v3.RouteConfiguration', g.resolve(ROUTE_TYPE, TARGET, grpcClient())!.any) as { virtual_hosts: { routes: { route: { hash_policy?: unknown } }[] }[] };
  assert.deepEqual(table.virtual_hosts[0]!.routes.at(-1)!.route.hash_policy, [{ filter_state: { key: 'io.grpc.channel_id' } }]);
  g = new XdsCache().update(modelWith({ dr: { host: 'web', trafficPolicy: { loadBalancer: { consistentHash: { httpCookie: { name: 'u', ttl: '10s' } } } } } }));
  table = decoded('envoy.config.route.v3.RouteConfiguration', g.resolve(ROUTE_TYPE, TARGET, grpcClient())!.any) as typeof table;
  assert.equal(table.virtual_hosts[0]!.routes.at(-1)!.route.hash_policy, undefined);
  assert.equal(decoded('envoy.config.cluster.v3.Cluster', g.resolve(CLUSTER_TYPE, CLUSTER, grpcClient())!.any).lb_policy ?? 'ROUND_ROBIN', 'ROUND_ROBIN');
  assert.ok(g.problems.some((p) => /consistentHash\.httpCookie/.test(p.reason)), JSON.stringify(g.problems));
});

test('a VirtualService timeout is the max_stream_duration gRPC reads; retries keep gRPC conditions; unsupported fields are refused by name', () => {
  const g = new XdsCache().update(
    modelWith({
      vs: {
        hosts: ['web'],
        http: [
          { match: [{ queryParams: { q: { exact: '1' } } }], route: [{ destination: { host: 'web' } }] },
          { timeout: '1.5s', retries: { attempts: 2, perTryTimeout: '1s', retryOn: '5xx,unavailable' }, headers: { request: { set: { 'x-a': 'b' } } }, route: [{ destination: { host: 'web' } }] },
        ],
      },
    }),
  );
  const table = decoded('envoy.config.route.v3.RouteConfiguration', g.resolve(ROUTE_TYPE, TARGET, grpcClient())!.any) as { virtual_hosts: { routes: Record<string, unknown>[] }[] };
  const routes = table.virtual_hosts[0]!.routes;
  assert.equal(routes.length, 2, 'the query-parameter route is left out, the timeout route and the default stay');
  const action = routes[0]!.route as Record<string, unknown>;
  assert.deepEqual(action.max_stream_duration, { max_stream_duration: { seconds: '1', nanos: 500000000 } });
  assert.equal(action.timeout, undefined);
  assert.deepEqual(action.retry_policy, { retry_on: 'unavailable', num_retries: { value: 2 } });
  assert.equal(routes[0]!.request_headers_to_add, undefined);
  const reasons = g.problems.filter((p) => p.name === 'VirtualService shop/web').map((p) => p.reason);
  for (const f of ['spec.http[0].match[].queryParams', 'spec.http[1].headers', 'spec.http[1].retries.perTryTimeout', 'spec.http[1].retries.retryOn']) {
    assert.ok(reasons.some((r) => r.includes(`: ${f}: `)), `${f} refused: ${JSON.stringify(reasons)}`);
  }
  // Envoy still gets the whole rule.
  const envoy = decoded('envoy.config.route.v3.RouteConfiguration', g.outboundRoute.any) as { virtual_hosts: { name: string; routes: Record<string, unknown>[] }[] };
  assert.equal(envoy.virtual_hosts.find((v) => v.name === TARGET)!.routes.length, 3);
});

test('a DNS service of one host is a LOGICAL_DNS cluster for gRPC; of several hosts it is refused, not sent', () => {
  const one = { ...service('api.example.com', 443, 'GRPC'), resolution: 'DNS' as const };
  let g = new XdsCache().update(mergeStates([{ id: 'memory://test', synced: true, services: [one], endpoints: [], workloads: [], rejections: [] }]));
  assert.equal(decoded('envoy.config.cluster.v3.Cluster', g.resolve(CLUSTER_TYPE, 'outbound|443||api.example.com', grpcClient())!.any).type, 'LOGICAL_DNS');
  const eps = ['a.example.com', 'b.example.com'].map((a) => endpoint('api.example.com', a));
  g = new XdsCache().update(mergeStates([{ id: 'memory://test', synced: true, services: [one], endpoints: eps, workloads: [], rejections: [] }]));
  assert.equal(g.resolve(CLUSTER_TYPE, 'outbound|443||api.example.com', grpcClient()), undefined);
  assert.ok(g.problems.some((p) => /2 hosts: gRPC resolves one host name per cluster/.test(p.reason)), JSON.stringify(g.problems));
  assert.equal(decoded('envoy.config.cluster.v3.Cluster', g.resolve(CLUSTER_TYPE, 'outbound|443||api.example.com', proxy('e'))!.any).type, 'STRICT_DNS');
});

test('the API listener carries the fault filter before the router (A33)', () => {
  const g = new XdsCache().update(modelWith({}));
  const l = decoded('envoy.config.listener.v3.Listener', g.resolve('type.googleapis.com/envoy.config.listener.v3.Listener', TARGET, grpcClient())!.any) as { api_listener: { api_listener: { value: string } } };
  const hcm = decodeToJson('envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager', Buffer.from(l.api_listener.api_listener.value, 'base64')) as { http_filters: { name: string }[] };
  assert.deepEqual(hcm.http_filters.map((f) => f.name), ['envoy.filters.http.fault', 'envoy.filters.http.router']);
});
