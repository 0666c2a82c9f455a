// Routing rules in generated xDS: routes in rule order before the default, subset clusters
// with their endpoints, refusals instead of resources Envoy would reject, tcp routes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mergeStates } from '../../../src/model/aggregate.ts';
import type { ModelSnapshot } from '../../../src/model/snapshot.ts';
import type { Endpoint } from '../../../src/model/types.ts';
import type { DestinationRule, VirtualService } from '../../../src/model/rules/types.ts';
import { decodeToJson } from '../../../src/xds/proto.ts';
import { XdsCache } from '../../../src/xds/cache.ts';
import { tcpRouteFor } from '../../../src/xds/generators/tcp-route.ts';
import { proxyLabels } from '../../../src/xds/generators/http-route.ts';
import { proxyFromNode, type ProxyInfo } from '../../../src/xds/proxy.ts';
import { ROUTE_TYPE } from '../../../src/xds/resources.ts';
import { doc, drOf, parseOne, vsOf } from '../model/rules/helpers.ts';
import { endpoint, service } from './fixtures.ts';

const WEB = 'web.shop.svc.cluster.local';

function labelled(address: string, version: string): Endpoint {
  return { ...endpoint(WEB, address), labels: { version } };
}

function modelWith(vs: VirtualService[], dr: DestinationRule[], protocol: 'HTTP' | 'TCP' = 'HTTP'): ModelSnapshot {
  const svc = { ...service(WEB, 8080, protocol), namespace: 'shop' };
  return mergeStates([
    { id: 'memory://test', synced: true, services: [svc], endpoints: [labelled('10.0.0.1', 'v1'), labelled('10.0.0.2', 'v2')], workloads: [], rejections: [], virtualServices: vs, destinationRules: dr },
  ]);
}

const DR = drOf(parseOne(doc('DestinationRule', 'web', { host: 'web', subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }], trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: 'x-user' } } } })));

function routesOf(m: ModelSnapshot): { routes: Record<string, unknown>[]; problems: readonly { reason: string }[] } {
  const g = new XdsCache().update(m);
  const decoded = decodeToJson('google.protobuf.Any', g.outboundRoute.any) as { value: string };
  const table = decodeToJson('envoy.config.route.v3.RouteConfiguration', Buffer.from(decoded.value, 'base64'));
  const vh = (table.virtual_hosts as { name: string; routes: Record<string, unknown>[] }[]).find((v) => v.name === `${WEB}:8080`)!;
  return { routes: vh.routes, problems: g.problems };
}

test('a VirtualService routes before the default route, first match first, with subsets and hash policy', () => {
  const vs = vsOf(parseOne(doc('VirtualService', 'web', {
    hosts: ['web'],
    http: [
      { match: [{ headers: { 'x-canary': { exact: 'yes' } } }, { uri: { prefix: '/beta' } }], route: [{ destination: { host: 'web', subset: 'v2' } }], timeout: '2s' },
      { route: [{ destination: { host: 'web', subset: 'v1' }, weight: 90 }, { destination: { host: 'web', subset: 'v2' }, weight: 10 }], retries: { attempts: 2, retryOn: '5xx,503' } },
    ],
  })));
  const { routes, problems } = routesOf(modelWith([vs], [DR]));
  assert.deepEqual(problems, []);
  assert.equal(routes.length, 4);
  assert.deepEqual((routes[0]!.match as { headers: unknown[] }).headers, [{ name: 'x-canary', string_match: { exact: 'yes' } }]);
  assert.equal((routes[1]!.match as { prefix: string }).prefix, '/beta');
  assert.equal((routes[0]!.route as { cluster: string }).cluster, `outbound|8080|v2|${WEB}`);
  assert.deepEqual((routes[0]!.route as { hash_policy: unknown }).hash_policy, [{ header: { header_name: 'x-user' } }]);
  const weighted = (routes[2]!.route as { weighted_clusters: { clusters: { name: string; weight: { value: number } }[] }; retry_policy: Record<string, unknown> });
  assert.deepEqual(weighted.weighted_clusters.clusters.map((c) => [c.name, c.weight.value]), [[`outbound|8080|v1|${WEB}`, 90], [`outbound|8080|v2|${WEB}`, 10]]);
  assert.equal(weighted.retry_policy.retry_on, '5xx,retriable-status-codes');
  assert.deepEqual(weighted.retry_policy.retriable_status_codes, [503]);
  assert.equal((routes[3]!.route as { cluster: string }).cluster, `outbound|8080||${WEB}`);
});

test('subset clusters hold only the endpoints with their labels, and take the rule policy', () => {
  const g = new XdsCache().update(modelWith([], [DR]));
  const cla = decodeToJson('google.protobuf.Any', g.endpoints.get(`outbound|8080|v2|${WEB}`)!.any) as { value: string };
  const assignment = decodeToJson('envoy.config.endpoint.v3.ClusterLoadAssignment', Buffer.from(cla.value, 'base64')) as { endpoints: { lb_endpoints: { endpoint: { address: { socket_address: { address: string } } } }[] }[] };
  assert.deepEqual(assignment.endpoints.flatMap((l) => l.lb_endpoints.map((e) => e.endpoint.address.socket_address.address)), ['10.0.0.2']);
  const c = decodeToJson('google.protobuf.Any', g.clusters.get(`outbound|8080|v1|${WEB}`)!.any) as { value: string };
  assert.equal(decodeToJson('envoy.config.cluster.v3.Cluster', Buffer.from(c.value, 'base64')).lb_policy, 'RING_HASH');
});

test('a rule Envoy would reject is refused, reported, and the host keeps its default route', () => {
  const vs = vsOf(parseOne(doc('VirtualService', 'web', { hosts: ['web'], http: [{ route: [{ destination: { host: 'web' } }], headers: { request: { set: { host: 'evil' } } } }] })));
  const { routes, problems } = routesOf(modelWith([vs], [DR]));
  assert.equal(routes.length, 1);
  assert.match(problems.map((p) => p.reason).join('\n'), /refused for .*cannot be modified by Envoy/);
});

test('tcp routes: weighted clusters for a TCP port', () => {
  const vs = vsOf(parseOne(doc('VirtualService', 'web', { hosts: ['web'], tcp: [{ route: [{ destination: { host: 'web', subset: 'v1' }, weight: 80 }, { destination: { host: 'web', subset: 'v2' }, weight: 20 }] }] })));
  const m = modelWith([vs], [DR], 'TCP');
  assert.deepEqual(tcpRouteFor(m, WEB, 8080), { weightedClusters: [{ name: `outbound|8080|v1|${WEB}`, weight: 80 }, { name: `outbound|8080|v2|${WEB}`, weight: 20 }] });
  assert.equal(tcpRouteFor(modelWith([], [DR], 'TCP'), WEB, 8080), undefined);
});

test('sourceLabels: a match applies only to proxies whose node metadata LABELS match', () => {
  const vs = vsOf(parseOne(doc('VirtualService', 'web', {
    hosts: ['web'],
    http: [
      { match: [{ sourceLabels: { app: 'shop' } }], route: [{ destination: { host: 'web', subset: 'v2' } }] },
      { route: [{ destination: { host: 'web', subset: 'v1' } }] },
    ],
  })));
  const g = new XdsCache().update(modelWith([vs], [DR]));
  const node = (id: string, labels: Record<string, string>): ProxyInfo =>
    proxyFromNode({ id, metadata: { fields: { LABELS: { structValue: { fields: Object.fromEntries(Object.entries(labels).map(([k, v]) => [k, { stringValue: v }])) } } } } });
  const first = (p: ProxyInfo): string => {
    const r = g.resolve(ROUTE_TYPE, 'outbound', p)!;
    const table = decodeToJson('envoy.config.route.v3.RouteConfiguration', Buffer.from((decodeToJson('google.protobuf.Any', r.any) as { value: string }).value, 'base64'));
    const vh = (table.virtual_hosts as { name: string; routes: { route: { cluster: string } }[] }[]).find((v) => v.name === `${WEB}:8080`)!;
    return vh.routes[0]!.route.cluster;
  };
  assert.equal(first(node('shop-1', { app: 'shop', version: 'x' })), `outbound|8080|v2|${WEB}`);
  assert.equal(first(node('other-1', { app: 'other' })), `outbound|8080|v1|${WEB}`);
  assert.equal(first(node('none', {})), `outbound|8080|v1|${WEB}`);
  assert.equal(g.resolve(ROUTE_TYPE, 'outbound', node('none', {})), g.outboundRoute);
});

test('sourceLabels: labels from ISTHMUS_LABELS count as well', () => {
  assert.deepEqual(proxyLabels({ ISTHMUS_LABELS: 'app=shop, version=v2' }), { app: 'shop', version: 'v2' });
  assert.deepEqual(proxyLabels({ LABELS: { app: 'cart' }, ISTHMUS_LABELS: 'app=shop' }), { app: 'cart' });
});
