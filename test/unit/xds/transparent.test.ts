// Transparent sidecars: what their listeners and clusters are, encoded as Envoy receives them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { XdsCache } from '../../../src/xds/cache.ts';
import { decodeToJson, messageType } from '../../../src/xds/proto.ts';
import { CLUSTER_TYPE, LISTENER_TYPE } from '../../../src/xds/resources.ts';
import { transparentOutbound } from '../../../src/xds/generators/transparent.ts';
import { tcpProxyFor } from '../../../src/xds/generators/tcp-route.ts';
import { endpoint, model, proxy, service } from './fixtures.ts';

function decode(typeUrl: string, any: Uint8Array): Record<string, unknown> {
  const value = (messageType('google.protobuf.Any').decode(any) as unknown as { value: Uint8Array }).value;
  return decodeToJson(typeUrl.replace('type.googleapis.com/', ''), value);
}

/** A decoded google.protobuf.Any field (typed_config) as JSON. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
function inner(any: { type_url: string; value: string }): Record<string, any> {
  return decodeToJson(any.type_url.replace('type.googleapis.com/', ''), Buffer.from(any.value, 'base64'));
}

const transparent = proxy('t', { ISTHMUS_MODE: 'transparent', ISTHMUS_APP_PORTS: '8080:HTTP,9090:GRPC,7070:TCP' });
const explicit = proxy('e', { ISTHMUS_APP_PORTS: '8080:HTTP' });

function generation() {
  const m = model([service('web.rpc.cluster.local', 80), service('db.rpc.cluster.local', 5432, 'TCP')], [endpoint('web.rpc.cluster.local', '10.0.0.1'), endpoint('db.rpc.cluster.local', '10.0.0.2')]);
  return new XdsCache().update(m, new Map([['web.rpc.cluster.local', '240.240.0.1'], ['db.rpc.cluster.local', '240.240.0.2']]));
}

test('outbound: VIP chains, passthrough for everything else, no per-port TCP listeners', () => {
  const view = generation().view(transparent);
  assert.deepEqual([...view.listeners.keys()].sort(), ['virtualInbound', 'virtualOutbound']);
  const out = decode(LISTENER_TYPE, view.listeners.get('virtualOutbound')!.any) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  assert.equal(out.address.socket_address.address, '0.0.0.0');
  assert.equal(out.listener_filters[0].name, 'envoy.filters.listener.original_dst');
  assert.deepEqual(out.filter_chains.map((c: { name: string }) => c.name).sort(), ['240.240.0.1_80', '240.240.0.2_5432']);
  assert.equal(inner(out.default_filter_chain.filters[0].typed_config).cluster, 'PassthroughCluster');
  const http = inner(out.filter_chains.find((c: { name: string }) => c.name === '240.240.0.1_80').filters[0].typed_config);
  assert.equal(http.generate_request_id.value, false);
  assert.equal(http.http_protocol_options.header_key_format.stateful_formatter.name, 'envoy.http.stateful_header_formatters.preserve_case');
  assert.deepEqual(http.http_filters.map((f: { name: string }) => f.name), ['envoy.filters.http.header_mutation', 'envoy.filters.http.fault', 'envoy.filters.http.router']);
  assert.equal(inner(http.http_filters[2].typed_config).suppress_envoy_headers, true);
});

test('inbound: a chain per app port to its own inbound cluster, passthrough for other ports', () => {
  const view = generation().view(transparent);
  const inb = decode(LISTENER_TYPE, view.listeners.get('virtualInbound')!.any) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  assert.equal(inb.address.socket_address.port_value, 15006);
  const byPort = Object.fromEntries(inb.filter_chains.map((c: any) => [c.filter_chain_match.destination_port.value, inner(c.filters[0].typed_config)])); // eslint-disable-line @typescript-eslint/no-explicit-any
  assert.equal(byPort[8080].route_config.virtual_hosts[0].routes[0].route.cluster, 'inbound|8080||');
  assert.equal(byPort[9090].route_config.virtual_hosts[0].routes[0].route.cluster, 'inbound|9090||');
  assert.equal(byPort[7070].cluster, 'inbound|7070||');
  assert.equal(inner(inb.default_filter_chain.filters[0].typed_config).cluster, 'InboundPassthroughCluster');
});

test('passthrough clusters go to transparent sidecars only', () => {
  const g = generation();
  for (const name of ['PassthroughCluster', 'InboundPassthroughCluster']) {
    const c = decode(CLUSTER_TYPE, g.view(transparent).clusters.get(name)!.any);
    assert.equal(c.type, 'ORIGINAL_DST');
    assert.equal(c.lb_policy, 'CLUSTER_PROVIDED');
    assert.equal(g.view(explicit).clusters.has(name), false);
  }
  // HTTP/1 inbound clusters write header names in the case they arrived in; gRPC ones are HTTP/2.
  const opts = (name: string): string => JSON.stringify(decode(CLUSTER_TYPE, g.view(transparent).clusters.get(name)!.any).typed_extension_protocol_options ?? {});
  assert.match(opts('inbound|8080||'), /HttpProtocolOptions/);
  assert.equal(g.view(explicit).clusters.get('inbound|8080||')!.version !== g.view(transparent).clusters.get('inbound|8080||')!.version, true);
  assert.match(opts('inbound|9090||'), /HttpProtocolOptions/);
  // Explicit sidecars keep their per-port TCP listener.
  assert.ok(g.view(explicit).listeners.has('127.0.0.1_5432'));
});

test('a VIP chain for opaque TCP follows the name\'s VirtualService tcp route', () => {
  const target = { vip: '240.240.0.2', port: 5432, http: false, cluster: 'outbound|5432||db.rpc.cluster.local', name: 'db.rpc.cluster.local', ref: 'test' };
  const split = { weightedClusters: [{ name: 'outbound|5432|v1|db.rpc.cluster.local', weight: 80 }, { name: 'outbound|5432|v2|db.rpc.cluster.local', weight: 20 }] };
  const out = transparentOutbound(transparent, [target], [], (host, port, cluster) => tcpProxyFor(cluster, host === target.name && port === 5432 ? split : cluster)) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  const tcp = out.filter_chains[0].filters[0].typed_config;
  const decoded = inner(tcp);
  assert.deepEqual(decoded.weighted_clusters.clusters.map((c: { name: string; weight: number }) => [c.name, c.weight]), [[split.weightedClusters[0]!.name, 80], [split.weightedClusters[1]!.name, 20]]);
  const plain = transparentOutbound(transparent, [target], []) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  assert.equal(inner(plain.filter_chains[0].filters[0].typed_config).cluster, target.cluster);
});
