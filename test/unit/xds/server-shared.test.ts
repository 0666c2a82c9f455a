import { test } from 'node:test';
import assert from 'node:assert/strict';
import { messageType } from '../../../src/xds/proto.ts';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE } from '../../../src/xds/resources.ts';
import { encodeNames, NameTable } from '../../../src/xds/server/names.ts';
import { decodeDeltaRequest, decodeDiscoveryRequest, decodeDiscoveryRequestParts, forEachClaim, MalformedRequest } from '../../../src/xds/server/request.ts';
import { newShared, WriteBudget, type Writer } from '../../../src/xds/server/shared.ts';
import { SotwConnection } from '../../../src/xds/server/sotw.ts';
import { endpoint, model, proxy, service, settle, Sink, Source } from './fixtures.ts';

const requestType = messageType('envoy.service.discovery.v3.DiscoveryRequest');
function encodeRequest(r: Record<string, unknown>): Buffer {
  return Buffer.from(requestType.encode(requestType.fromObject(r)).finish());
}

test('the request decoder reads what protobufjs writes, names kept raw', () => {
  const buf = encodeRequest({
    version_info: 'v1',
    node: { id: 'sidecar~10.0.0.1~a.ns~ns.svc.cluster.local', cluster: 'a', user_agent_name: 'envoy' },
    resource_names: ['outbound|8080||a.test', 'outbound|9090||b.test'],
    type_url: ENDPOINT_TYPE,
    response_nonce: 'n7',
    error_detail: { code: 3, message: 'bad cluster' },
  });
  const r = decodeDiscoveryRequest(buf);
  assert.equal(r.version_info, 'v1');
  assert.equal(r.type_url, ENDPOINT_TYPE);
  assert.equal(r.response_nonce, 'n7');
  assert.deepEqual(r.error_detail, { code: 3, message: 'bad cluster' });
  assert.equal(r.node?.id, 'sidecar~10.0.0.1~a.ns~ns.svc.cluster.local');
  assert.equal(r.node?.user_agent_name, 'envoy');
  assert.ok(r.names_raw.equals(encodeNames(['outbound|8080||a.test', 'outbound|9090||b.test'])));
  const table = new NameTable();
  assert.deepEqual(table.acquire(r.names_raw).names, ['outbound|8080||a.test', 'outbound|9090||b.test']);
});

test('names split by other fields are gathered in order', () => {
  const names = encodeNames(['a', 'b']);
  const type = Buffer.concat([Buffer.from([0x22, 3]), Buffer.from('t/x')]);
  const r = decodeDiscoveryRequest(Buffer.concat([names.subarray(0, 3), type, names.subarray(3)]));
  assert.equal(r.type_url, 't/x');
  assert.ok(r.names_raw.equals(names));
});

test('a resource_names entry whose tag takes more bytes than needed is read like any other', () => {
  // 0x9a 0x00: field 3, length-delimited, in two bytes.
  const r = decodeDiscoveryRequest(Buffer.concat([Buffer.from([0x9a, 0x00, 1, 0x61]), encodeNames(['b']), Buffer.from([0x22, 3]), Buffer.from('t/x')]));
  assert.equal(r.type_url, 't/x');
  assert.deepEqual(new NameTable().acquire(r.names_raw).names, ['a', 'b']);
});

test('a malformed request is refused with what is wrong', () => {
  assert.throws(() => decodeDiscoveryRequest(Buffer.from([0x22, 10, 0x61])), MalformedRequest);
  assert.throws(() => decodeDiscoveryRequest(Buffer.from([0x20, 1])), /field type_url has wire type 0/);
  assert.throws(() => decodeDiscoveryRequest(Buffer.from([0x7b])), /unsupported wire type 3/);
});

test('equal name lists are one shared object, forgotten with their last holder', () => {
  const table = new NameTable();
  const a = table.acquire(encodeNames(['x', 'y']));
  const b = table.acquire(Buffer.from(encodeNames(['x', 'y'])));
  assert.equal(a, b);
  assert.equal(table.acquire(encodeNames(['*'])).wildcard, true);
  assert.equal(table.size, 2);
  table.release(a);
  assert.equal(table.size, 2);
  table.release(b);
  assert.equal(table.size, 1);
});

test('a repeated name list is recognised by its bytes and handed back as the interned list', () => {
  const table = new NameTable();
  const names = Array.from({ length: 500 }, (_, i) => `outbound|8080||svc-${i}.test`);
  const held = table.acquire(encodeNames(names));
  const ack = encodeRequest({ resource_names: names, type_url: ENDPOINT_TYPE, response_nonce: '3', version_info: 'v' });
  const r = decodeDiscoveryRequest(ack, table);
  assert.equal(r.names_raw, held.raw, 'the interned bytes themselves, not a copy');
  assert.equal(r.type_url, ENDPOINT_TYPE);
  assert.equal(r.response_nonce, '3');
  // Same first name, one more name: not the held list.
  const longer = decodeDiscoveryRequest(encodeRequest({ resource_names: [...names, 'extra'], type_url: ENDPOINT_TYPE }), table);
  assert.notEqual(longer.names_raw, held.raw);
  assert.deepEqual(table.acquire(longer.names_raw).names.at(-1), 'extra');
  // Same length, one byte different in the middle.
  const changed = names.slice();
  changed[250] = changed[250]!.replace('svc', 'svd');
  const other = decodeDiscoveryRequest(encodeRequest({ resource_names: changed, type_url: ENDPOINT_TYPE }), table);
  assert.notEqual(other.names_raw, held.raw);
  assert.ok(other.names_raw.equals(encodeNames(changed)));
  // Shorter: the held list would run past the names.
  const shorter = decodeDiscoveryRequest(encodeRequest({ resource_names: names.slice(0, 10), type_url: ENDPOINT_TYPE }), table);
  assert.ok(shorter.names_raw.equals(encodeNames(names.slice(0, 10))));
  assert.equal(shorter.type_url, ENDPOINT_TYPE);
});

test('a request in several chunks decodes as it would whole; a known list is compared in place', () => {
  const table = new NameTable();
  const names = Array.from({ length: 300 }, (_, i) => `outbound|8080||svc-${i}.test`);
  const held = table.acquire(encodeNames(names));
  const join = (parts: readonly Buffer[]): Buffer => Buffer.concat(parts);
  const split = (buf: Buffer, at: number[]): Buffer[] => [0, ...at].map((s, i, all) => buf.subarray(s, all[i + 1] ?? buf.length));
  const ack = encodeRequest({ version_info: 'v9', resource_names: names, type_url: ENDPOINT_TYPE, response_nonce: 'a1', error_detail: { code: 2, message: 'x' } });
  const whole = decodeDiscoveryRequest(ack);
  for (const cuts of [[3], [40], [5000], [ack.length - 3], [10, 2000, 4000, ack.length - 1]]) {
    const r = decodeDiscoveryRequestParts(split(ack, cuts), ack.length, table, join);
    assert.equal(r.names_raw, held.raw, `cut at ${cuts.join(',')}`);
    assert.deepEqual({ ...r, names_raw: undefined }, { ...whole, names_raw: undefined });
  }
  // Unknown names: decoded whole.
  const other = encodeRequest({ resource_names: ['a', 'b'], type_url: ENDPOINT_TYPE });
  assert.ok(decodeDiscoveryRequestParts(split(other, [4]), other.length, table, join).names_raw.equals(encodeNames(['a', 'b'])));
  // A known list followed by garbage: the error points into the whole message.
  const bad = Buffer.concat([encodeNames(names), Buffer.from([0x22, 50, 0x61])]);
  assert.throws(() => decodeDiscoveryRequestParts(split(bad, [100]), bad.length, table, join), /length 50 past the end of the message at byte/);
});

const deltaType = messageType('envoy.service.discovery.v3.DeltaDiscoveryRequest');

test('the Delta request decoder reads what protobufjs writes; claims stay raw and are read back in order', () => {
  const versions = Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`outbound|8080||s${i}.test`, `v${i}`]));
  const buf = Buffer.from(
    deltaType
      .encode(
        deltaType.fromObject({
          node: { id: 'sidecar~10.0.0.1~a.ns~ns.svc.cluster.local', cluster: 'a' },
          type_url: ENDPOINT_TYPE,
          resource_names_subscribe: ['x', 'y'],
          resource_names_unsubscribe: ['z'],
          initial_resource_versions: versions,
          response_nonce: 'n1',
          error_detail: { code: 3, message: 'no' },
        }),
      )
      .finish(),
  );
  const r = decodeDeltaRequest(buf);
  assert.equal(r.type_url, ENDPOINT_TYPE);
  assert.deepEqual(r.resource_names_subscribe, ['x', 'y']);
  assert.deepEqual(r.resource_names_unsubscribe, ['z']);
  assert.equal(r.response_nonce, 'n1');
  assert.deepEqual(r.error_detail, { code: 3, message: 'no' });
  assert.equal(r.node?.id, 'sidecar~10.0.0.1~a.ns~ns.svc.cluster.local');
  const got: Record<string, string> = {};
  forEachClaim(r.claims_raw, (n, v) => (got[n] = v));
  assert.deepEqual(got, versions);
  // A map entry with an over-long tag (0xaa 0x00 for field 5) is legal protobuf.
  const entry = Buffer.from([0x0a, 1, 0x61, 0x12, 1, 0x31]);
  const odd = decodeDeltaRequest(Buffer.concat([Buffer.from([0xaa, 0x00, entry.length]), entry, Buffer.from([0x2a, entry.length]), entry]));
  const pairs: string[] = [];
  forEachClaim(odd.claims_raw, (n, v) => pairs.push(`${n}=${v}`));
  assert.deepEqual(pairs, ['a=1', 'a=1']);
});

test('a malformed Delta request is refused with what is wrong and where', () => {
  assert.throws(() => decodeDeltaRequest(Buffer.from([0x12, 10, 0x61])), /length 10 past the end of the message at byte 2/);
  // An initial_resource_versions entry whose key is a varint.
  assert.throws(() => decodeDeltaRequest(Buffer.from([0x2a, 2, 0x08, 1])), /field initial_resource_versions key has wire type 0/);
  assert.throws(() => decodeDeltaRequest(Buffer.from([0x10, 1])), /field type_url has wire type 0/);
});

class FakeWriter implements Writer {
  closed = false;
  flushed = 0;
  readonly budget: WriteBudget;
  readonly bytes: number;
  constructor(budget: WriteBudget, bytes: number) {
    this.budget = budget;
    this.bytes = bytes;
  }
  flush(): void {
    if (!this.budget.admit(this)) return;
    this.flushed++;
    this.budget.started(this.bytes);
  }
}

test('the write budget queues writers beyond the limit and lets them go in order as bytes leave', () => {
  const budget = new WriteBudget(100);
  const ws = [0, 1, 2, 3].map(() => new FakeWriter(budget, 60));
  for (const w of ws) w.flush();
  assert.deepEqual(ws.map((w) => w.flushed), [1, 1, 0, 0], 'the second write may overshoot, the third waits');
  assert.equal(budget.queued, 2);
  budget.finished(60);
  assert.deepEqual(ws.map((w) => w.flushed), [1, 1, 1, 0], 'room for one more');
  budget.finished(60);
  assert.deepEqual(ws.map((w) => w.flushed), [1, 1, 1, 1]);
  assert.equal(budget.queued, 0);
  assert.equal(budget.inFlight, 120);
});

function endpoints(addr: string) {
  return model([service('a.test'), service('b.test')], [endpoint('a.test', addr), endpoint('b.test', '10.0.1.1')]);
}

async function connect(src: Source, shared: ReturnType<typeof newShared>, id: string) {
  const sink = new Sink();
  const conn = new SotwConnection(proxy(id), 'test', sink, src, {}, shared);
  const eds = ['outbound|8080||a.test', 'outbound|8080||b.test'];
  conn.handle({ type_url: CLUSTER_TYPE, resource_names: [] });
  conn.handle({ type_url: LISTENER_TYPE, resource_names: [] });
  conn.handle({ type_url: ENDPOINT_TYPE, resource_names: eds });
  conn.handle({ type_url: ROUTE_TYPE, resource_names: ['outbound'] });
  await settle();
  const first = sink.drain();
  for (const r of first) conn.handle({ type_url: r.typeUrl, version_info: r.version, response_nonce: r.nonce, resource_names: r.typeUrl === ENDPOINT_TYPE ? eds : r.typeUrl === ROUTE_TYPE ? ['outbound'] : [] });
  await settle();
  return { conn, sink, first };
}

test('proxies asking for the same names get the same bytes but their own nonce', async () => {
  const src = new Source();
  src.publish(endpoints('10.0.0.1'));
  const shared = newShared();
  const p = await connect(src, shared, 'p');
  const q = await connect(src, shared, 'q');
  const eds = (x: typeof p) => x.first.find((r) => r.typeUrl === ENDPOINT_TYPE)!;
  assert.deepEqual(eds(p).names.sort(), eds(q).names.sort());
  assert.equal(eds(p).version, eds(q).version);
  const body = (raw: Buffer, nonce: string) => raw.subarray(0, raw.length - 2 - nonce.length);
  assert.ok(body(eds(p).raw, eds(p).nonce).equals(body(eds(q).raw, eds(q).nonce)));
  assert.equal(shared.names.size, 3, 'wildcard, the EDS list and the RDS list, each once');
  p.conn.close();
  q.conn.close();
  assert.equal(shared.names.size, 0);
});

test('a proxy that missed generations gets what changed in all of them, and nothing else', async () => {
  const src = new Source();
  src.publish(endpoints('10.0.0.1'));
  const shared = newShared();
  shared.changes.record(src.current()!);
  const p = await connect(src, shared, 'p');
  // Two generations pass without the connection hearing of them.
  src.publish(endpoints('10.0.0.2'));
  shared.changes.record(src.current()!);
  src.publish(endpoints('10.0.0.3'));
  shared.changes.record(src.current()!);
  p.conn.onSnapshot();
  await settle();
  const got = p.sink.drain();
  assert.deepEqual(got.map((r) => [r.typeUrl, r.names]), [[ENDPOINT_TYPE, ['outbound|8080||a.test']]]);
});

test('a slow write parked outside the budget lets the others go, within a bound of its own', () => {
  const budget = new WriteBudget(100);
  const ws = [0, 1, 2].map(() => new FakeWriter(budget, 100));
  for (const w of ws) w.flush();
  assert.deepEqual(ws.map((w) => w.flushed), [1, 0, 0]);
  assert.equal(budget.park(100), true);
  assert.deepEqual(ws.map((w) => w.flushed), [1, 1, 0], 'the next one goes');
  assert.equal(budget.park(100), false, 'parked bytes are bounded too');
  budget.unpark(100);
  assert.equal(budget.park(100), true);
  assert.deepEqual(ws.map((w) => w.flushed), [1, 1, 1]);
});
