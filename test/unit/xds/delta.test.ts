import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CLUSTER_TYPE, ENDPOINT_TYPE } from '../../../src/xds/resources.ts';
import { DeltaConnection } from '../../../src/xds/server/delta.ts';
import { newShared } from '../../../src/xds/server/shared.ts';
import { endpoint, model, proxy, service, settle, Sink, Source } from './fixtures.ts';

const A = 'outbound|8080||a.test';
const B = 'outbound|8080||b.test';
const C = 'outbound|8080||c.test';

function services(hosts: string[], addr = '10.0.0.1') {
  return model(hosts.map((h) => service(h)), hosts.map((h) => endpoint(h, addr)));
}

function connect(src: Source, init: Record<string, Record<string, string>> = {}) {
  const sink = new Sink(true);
  const conn = new DeltaConnection(proxy('d'), 'test', sink, src, {});
  conn.handle({ type_url: CLUSTER_TYPE, initial_resource_versions: init[CLUSTER_TYPE] ?? {} });
  return { sink, conn };
}

test('wildcard clusters, then removals reported by name', async () => {
  const src = new Source();
  src.publish(services(['a.test', 'b.test']));
  const { sink, conn } = connect(src);
  await settle();
  const [first] = sink.drain();
  assert.deepEqual(first!.names.sort(), [A, B]);
  conn.handle({ type_url: CLUSTER_TYPE, response_nonce: first!.nonce });
  src.publish(services(['a.test', 'c.test']));
  conn.onSnapshot();
  await settle();
  const [next] = sink.drain();
  assert.deepEqual(next!.names, [C], 'only the new cluster is sent');
  assert.deepEqual(next!.removed, [B]);
});

test('reconnect with initial_resource_versions: nothing re-sent, stale names removed', async () => {
  const src = new Source();
  src.publish(services(['a.test', 'b.test']));
  const one = connect(src);
  await settle();
  const [first] = one.sink.drain();
  src.publish(services(['a.test']));
  const two = connect(src, { [CLUSTER_TYPE]: { ...first!.versions } });
  await settle();
  const [resp] = two.sink.drain();
  assert.deepEqual(resp!.names, [], 'a.test is held at its current version');
  assert.deepEqual(resp!.removed, [B]);
});

test('named subscriptions: subscribe, absent names, unsubscribe', async () => {
  const src = new Source();
  src.publish(services(['a.test', 'b.test']));
  const sink = new Sink(true);
  const conn = new DeltaConnection(proxy('d'), 'test', sink, src, {});
  conn.handle({ type_url: ENDPOINT_TYPE, resource_names_subscribe: [A, 'outbound|1||nope'] });
  await settle();
  const [r1] = sink.drain();
  assert.deepEqual(r1!.names, [A]);
  assert.deepEqual(r1!.removed, ['outbound|1||nope'], 'an absent name is reported so clients need not time out');
  conn.handle({ type_url: ENDPOINT_TYPE, response_nonce: r1!.nonce, resource_names_unsubscribe: [A], resource_names_subscribe: [B] });
  await settle();
  const [r2] = sink.drain();
  assert.deepEqual(r2!.names, [B]);
  conn.handle({ type_url: ENDPOINT_TYPE, response_nonce: r2!.nonce });
  // A change to an unsubscribed resource sends nothing.
  src.publish(model([service('a.test'), service('b.test')], [endpoint('a.test', '10.9.9.9'), endpoint('b.test', '10.0.0.1')]));
  conn.onSnapshot();
  await settle();
  assert.deepEqual(sink.drain(), []);
});

test('proxies subscribed to the same names share one set; a reconnecting proxy gets only what it lacks', async () => {
  const src = new Source();
  src.publish(services(['a.test', 'b.test', 'c.test']));
  const shared = newShared();
  const open = async (init: Record<string, string> = {}) => {
    const sink = new Sink(true);
    const conn = new DeltaConnection(proxy('d'), 'test', sink, src, {}, shared);
    conn.handle({ type_url: ENDPOINT_TYPE, resource_names_subscribe: [A, B, C], initial_resource_versions: init });
    await settle();
    return { sink, conn };
  };
  const one = await open();
  const two = await open();
  const [r1] = one.sink.drain();
  assert.deepEqual(r1!.names.sort(), [A, B, C]);
  assert.equal(shared.sets.size, 1, 'one set {A, B, C} for both');
  // b.test's endpoints move; a proxy that held all three at the old versions reconnects.
  src.publish(model([service('a.test'), service('b.test'), service('c.test')], [endpoint('a.test', '10.0.0.1'), endpoint('b.test', '10.0.0.9'), endpoint('c.test', '10.0.0.1')]));
  const three = await open(r1!.versions);
  const [r3] = three.sink.drain();
  assert.deepEqual(r3!.names, [B]);
  for (const c of [one, two, three]) c.conn.close();
  assert.equal(shared.sets.size, 0);
});

test('proxies subscribing alike are sent one shared body, each with its nonce appended; a different subscription gets its own', async () => {
  const src = new Source();
  src.publish(services(['a.test', 'b.test', 'c.test']));
  const shared = newShared();
  const open = (names: string[]) => {
    const parts: (readonly Uint8Array[])[] = [];
    const sink = new Sink(true);
    const conn = new DeltaConnection(proxy('d'), 'test', { write: (p, done) => (parts.push(p), sink.write(p, done)) }, src, {}, shared);
    conn.handle({ type_url: ENDPOINT_TYPE, resource_names_subscribe: names });
    return { parts, sink };
  };
  const one = open([A, B]);
  const two = open([A, B]);
  const other = open([A, C]);
  await settle();
  const [r1] = one.sink.drain();
  const [r2] = two.sink.drain();
  const [r3] = other.sink.drain();
  assert.deepEqual(r1!.names, [A, B]);
  assert.deepEqual(r2!.names, [A, B]);
  assert.deepEqual(r3!.names, [A, C]);
  assert.equal(one.parts[0]![0], two.parts[0]![0], 'the same body bytes, not a copy');
  assert.notEqual(one.parts[0]![0], other.parts[0]![0]);
});

test('claims are checked as they arrive: what changed before the first response is sent, what vanished is removed', async () => {
  const src = new Source();
  const shared = newShared();
  src.publish(services(['a.test', 'b.test', 'c.test']));
  shared.changes.record(src.current()!);
  const one = connect(src);
  await settle();
  const [held] = one.sink.drain();
  // A reconnect claiming all three; before its first flush, a changes and c goes.
  const sink = new Sink(true);
  const conn = new DeltaConnection(proxy('d'), 'test', sink, src, {}, shared);
  conn.handle({ type_url: CLUSTER_TYPE, initial_resource_versions: { ...held!.versions } });
  src.publish(model([service('a.test', 9090), service('b.test')], [endpoint('a.test', '10.0.0.1'), endpoint('b.test', '10.0.0.1')]));
  shared.changes.record(src.current()!);
  await settle();
  const [resp] = sink.drain();
  assert.deepEqual(resp!.names, ['outbound|9090||a.test'], 'the changed cluster only');
  assert.deepEqual(resp!.removed.sort(), [A, C].sort(), 'the cluster gone since, and a’s old name');
});
