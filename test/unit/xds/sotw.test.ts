import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE } from '../../../src/xds/resources.ts';
import { SotwConnection } from '../../../src/xds/server/sotw.ts';
import { endpoint, model, proxy, service, settle, Sink, Source } from './fixtures.ts';

const A = 'outbound|8080||a.test';
const B = 'outbound|8080||b.test';

function twoServices(aAddr = '10.0.0.1') {
  return model([service('a.test'), service('b.test')], [endpoint('a.test', aAddr), endpoint('b.test', '10.0.1.1')]);
}

/** Connects like Envoy: wildcard CDS and LDS, EDS for the given clusters, RDS outbound; ACKs all. */
async function envoyLike(src: Source, id: string, clusters: string[]) {
  const sink = new Sink();
  const conn = new SotwConnection(proxy(id), 'test', sink, src, {});
  conn.handle({ type_url: CLUSTER_TYPE, resource_names: [] });
  conn.handle({ type_url: LISTENER_TYPE, resource_names: [] });
  await settle();
  conn.handle({ type_url: ENDPOINT_TYPE, resource_names: clusters });
  conn.handle({ type_url: ROUTE_TYPE, resource_names: ['outbound'] });
  await settle();
  const first = sink.drain();
  for (const r of first) conn.handle({ type_url: r.typeUrl, version_info: r.version, response_nonce: r.nonce, resource_names: r.typeUrl === ENDPOINT_TYPE ? clusters : r.typeUrl === ROUTE_TYPE ? ['outbound'] : [] });
  await settle();
  return { conn, sink, first };
}

test('initial sync sends every type in Envoy order and ends SYNCED', async () => {
  const src = new Source();
  src.publish(twoServices());
  const { conn, sink, first } = await envoyLike(src, 'p1', [A, B]);
  assert.deepEqual(first.map((r) => r.typeUrl), [CLUSTER_TYPE, LISTENER_TYPE, ENDPOINT_TYPE, ROUTE_TYPE]);
  assert.deepEqual(first[0]!.names.sort(), [A, B]);
  assert.deepEqual(first[2]!.names.sort(), [A, B]);
  assert.equal(sink.writes.length, 0, 'ACKs must not trigger further responses');
  assert.ok(conn.status().types.every((t) => t.status === 'SYNCED'), JSON.stringify(conn.status()));
});

test('an endpoint change pushes EDS only, and only to proxies using that cluster', async () => {
  const src = new Source();
  src.publish(twoServices());
  const pa = await envoyLike(src, 'uses-a', [A]);
  const pb = await envoyLike(src, 'uses-b', [B]);
  src.publish(twoServices('10.0.0.2'));
  pa.conn.onSnapshot();
  pb.conn.onSnapshot();
  await settle();
  const got = pa.sink.drain();
  assert.deepEqual(got.map((r) => [r.typeUrl, r.names]), [[ENDPOINT_TYPE, [A]]]);
  assert.deepEqual(pb.sink.drain(), [], 'a proxy not using the cluster gets nothing');
});

test('a NACKed version is recorded with its error and not re-sent', async () => {
  const src = new Source();
  src.publish(twoServices());
  const sink = new Sink();
  const conn = new SotwConnection(proxy('nacker'), 'test', sink, src, {});
  conn.handle({ type_url: LISTENER_TYPE, resource_names: [] });
  await settle();
  const [lds] = sink.drain();
  conn.handle({ type_url: LISTENER_TYPE, version_info: '', response_nonce: lds!.nonce, error_detail: { code: 3, message: 'bad listener' } });
  for (let i = 0; i < 3; i++) {
    conn.onSnapshot();
    await settle();
  }
  assert.equal(sink.writes.length, 0);
  const st = conn.status().types.find((t) => t.typeUrl === LISTENER_TYPE)!;
  assert.equal(st.status, 'NACKED');
  assert.equal(st.nack?.message, 'bad listener');
  assert.equal(st.nack?.version, lds!.version);
});

test('a reconnecting proxy that holds the current versions gets nothing re-sent', async () => {
  const src = new Source();
  src.publish(twoServices());
  const { first } = await envoyLike(src, 'p', [A, B]);
  const versions = Object.fromEntries(first.map((r) => [r.typeUrl, r.version]));
  // A second process with the same model yields the same versions (content-derived).
  const src2 = new Source();
  src2.publish(twoServices());
  const sink = new Sink();
  const conn = new SotwConnection(proxy('p'), 'test', sink, src2, {});
  conn.handle({ type_url: CLUSTER_TYPE, resource_names: [], version_info: versions[CLUSTER_TYPE] });
  conn.handle({ type_url: LISTENER_TYPE, resource_names: [], version_info: versions[LISTENER_TYPE] });
  conn.handle({ type_url: ENDPOINT_TYPE, resource_names: [A, B], version_info: versions[ENDPOINT_TYPE] });
  conn.handle({ type_url: ROUTE_TYPE, resource_names: ['outbound'], version_info: versions[ROUTE_TYPE] });
  await settle();
  assert.deepEqual(sink.drain(), []);
  // ... and a proxy holding an older version gets the new one.
  const conn2 = new SotwConnection(proxy('q'), 'test', sink, src2, {});
  conn2.handle({ type_url: CLUSTER_TYPE, resource_names: [], version_info: 'stale' });
  await settle();
  assert.deepEqual(sink.drain().map((r) => r.typeUrl), [CLUSTER_TYPE]);
});

test('re-sent clusters are followed by their endpoints', async () => {
  const src = new Source();
  src.publish(twoServices());
  const { conn, sink } = await envoyLike(src, 'p', [A, B]);
  // Changing a's protocol changes its cluster (HTTP/2 options), not its endpoints.
  src.publish(model([service('a.test', 8080, 'GRPC'), service('b.test')], [endpoint('a.test', '10.0.0.1'), endpoint('b.test', '10.0.1.1')]));
  conn.onSnapshot();
  await settle();
  const got = sink.drain();
  assert.deepEqual(
    got.map((r) => [r.typeUrl, r.typeUrl === ENDPOINT_TYPE ? r.names : r.names.length]),
    [
      [CLUSTER_TYPE, 2],
      [ENDPOINT_TYPE, [A]],
    ],
  );
});

test('a stale nonce is ignored', async () => {
  const src = new Source();
  src.publish(twoServices());
  const { conn, sink } = await envoyLike(src, 'p', [A]);
  conn.handle({ type_url: ENDPOINT_TYPE, resource_names: [A, B], response_nonce: 'not-ours', version_info: '' });
  await settle();
  assert.deepEqual(sink.drain(), []);
});
