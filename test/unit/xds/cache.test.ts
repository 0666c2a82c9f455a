import { test } from 'node:test';
import assert from 'node:assert/strict';
import { metrics } from '../../../src/shared/metrics.ts';
import { XdsCache } from '../../../src/xds/cache.ts';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE } from '../../../src/xds/resources.ts';
import { SotwConnection } from '../../../src/xds/server/sotw.ts';
import { endpoint, model, proxy, service, settle, Sink, Source } from './fixtures.ts';

const encodes = metrics.counter('isthmus_xds_resource_encodes_total', '');
const CLA = { type: 'envoy.config.endpoint.v3.ClusterLoadAssignment' };
const CLUSTER = { type: 'envoy.config.cluster.v3.Cluster' };
const total = (): number =>
  ['Cluster', 'ClusterLoadAssignment', 'Listener', 'RouteConfiguration'].reduce(
    (n, t) => n + encodes.get({ type: `envoy.config.${t === 'ClusterLoadAssignment' ? 'endpoint' : t === 'RouteConfiguration' ? 'route' : t.toLowerCase()}.v3.${t}` }),
    0,
  );

function fleet(n: number, changed = -1) {
  const hosts = Array.from({ length: n }, (_, i) => `s${i}.test`);
  return model(hosts.map((h) => service(h)), hosts.map((h, i) => endpoint(h, i === changed ? '10.1.1.1' : '10.0.0.1')));
}

test('one endpoint change encodes one ClusterLoadAssignment, whatever the fleet size', () => {
  const cache = new XdsCache();
  cache.update(fleet(50));
  cache.generation!.view(proxy('p'));
  const before = { cla: encodes.get(CLA), clusters: encodes.get(CLUSTER), all: total() };
  const g = cache.update(fleet(50, 7));
  g.view(proxy('p'));
  assert.equal(encodes.get(CLA) - before.cla, 1);
  assert.equal(encodes.get(CLUSTER) - before.clusters, 0);
  assert.equal(total() - before.all, 1, 'no route or listener is re-encoded either');
  assert.deepEqual([...g.changed.get(ENDPOINT_TYPE)!], ['outbound|8080||s7.test']);
  assert.equal(g.changed.get(CLUSTER_TYPE)!.size, 0);
});

test('versions are derived from content: two caches agree', () => {
  const a = new XdsCache().update(fleet(5));
  const b = new XdsCache().update(fleet(5));
  const p = proxy('x');
  assert.deepEqual(a.view(p).versions, b.view(p).versions);
  assert.equal(a.endpointsVersion, b.endpointsVersion);
  const c = new XdsCache().update(fleet(5, 2));
  assert.notEqual(c.endpointsVersion, a.endpointsVersion);
});

test('every connection is sent the same encoded bytes', async () => {
  const src = new Source();
  src.publish(fleet(3));
  const sinks = [new Sink(), new Sink()];
  for (const [i, s] of sinks.entries()) new SotwConnection(proxy(`p${i}`), 't', s, src, {}).handle({ type_url: CLUSTER_TYPE, resource_names: [] });
  await settle();
  const [r0, r1] = sinks.map((s) => s.writes[0]!);
  const g = src.current()!;
  const res = g.resolve(CLUSTER_TYPE, 'outbound|8080||s0.test', proxy('p0'))!;
  // The shared Any bytes appear verbatim in both responses.
  assert.ok(r0!.includes(Buffer.from(res.any)) && r1!.includes(Buffer.from(res.any)));
});

test('proxies with different listener ports get their own listeners; equal ones share them', () => {
  const g = new XdsCache().update(fleet(1));
  const a = g.wildcard(LISTENER_TYPE, proxy('a', { ISTHMUS_OUTBOUND_PORT: '16001' }));
  const b = g.wildcard(LISTENER_TYPE, proxy('b', { ISTHMUS_OUTBOUND_PORT: '16001' }));
  const c = g.wildcard(LISTENER_TYPE, proxy('c'));
  assert.equal(a.get('virtualOutbound'), b.get('virtualOutbound'));
  assert.notEqual(a.get('virtualOutbound')!.version, c.get('virtualOutbound')!.version);
});
