// The CoreDNS etcd-plugin encoding and the records API validation, without servers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiError, parseRecord } from '../../../src/dns/api.ts';
import { encodeRecord, namePath, parseEtcdStoreUrl } from '../../../src/dns/etcd-store.ts';

const Z = 'rpc.cluster.local';

test('names map to reversed-label paths; the store URL is parsed', () => {
  assert.equal(namePath('/skydns', `com.x.api.${Z}`), '/skydns/local/cluster/rpc/api/x/com');
  assert.deepEqual(parseEtcdStoreUrl('etcd://10.0.0.1:2379,10.0.0.2:2379/skydns/'), { endpoints: ['10.0.0.1:2379', '10.0.0.2:2379'], prefix: '/skydns' });
  assert.deepEqual(parseEtcdStoreUrl('etcd://127.0.0.1:2379'), { endpoints: ['127.0.0.1:2379'], prefix: '/skydns' });
  assert.throws(() => parseEtcdStoreUrl('http://127.0.0.1:2379/skydns'), /etcd:\/\//);
});

test('each record is a leaf of its own name, grouped by that name', () => {
  const a = encodeRecord('/skydns', { name: `api.${Z}`, ttl: 30, type: 'A', address: '240.240.0.7' });
  const [[key, value]] = Object.entries(a) as [[string, string]];
  assert.match(key, /^\/skydns\/local\/cluster\/rpc\/api\/_ism-a-[0-9a-f]{12}$/);
  assert.deepEqual(JSON.parse(value), { host: '240.240.0.7', ttl: 30, group: `api.${Z}` });
  const srv = encodeRecord('/skydns', { name: `_dubbo._tcp.api.${Z}`, ttl: 30, type: 'SRV', priority: 0, weight: 5, port: 20880, target: `10-0-0-1.ep.${Z}` });
  const [[skey, svalue]] = Object.entries(srv) as [[string, string]];
  assert.match(skey, /^\/skydns\/local\/cluster\/rpc\/api\/_tcp\/_dubbo\/_ism-srv-/);
  // A different group from the interface's: the plugin keeps only the shortest key's group.
  assert.deepEqual(JSON.parse(svalue), { host: `10-0-0-1.ep.${Z}`, port: 20880, priority: 0, weight: 5, ttl: 30, group: `_dubbo._tcp.api.${Z}` });
  const txt = encodeRecord('/skydns', { name: `api.${Z}`, ttl: 30, type: 'TXT', text: ['a=1', 'b=2'] }, 'api');
  assert.deepEqual(Object.values(txt).map((v) => (JSON.parse(v) as { text: string }).text), ['a=1', 'b=2']);
  assert.ok(Object.keys(txt).every((k) => /\/_api-txt-[0-9a-f]{12}-00\d$/.test(k)));
  // Different data, different key; same data and another TTL, the same key.
  const k = (address: string, ttl = 30): string => Object.keys(encodeRecord('/skydns', { name: `api.${Z}`, ttl, type: 'A', address }))[0]!;
  assert.notEqual(k('240.240.0.7'), k('240.240.0.8'));
  assert.equal(k('240.240.0.7'), k('240.240.0.7', 60));
  assert.throws(() => encodeRecord('/skydns', { name: Z, ttl: 30, type: 'NS', host: `ns.${Z}` }), /synthesized/);
});

test('records API validation gives a reason', () => {
  const reserved = new Set([`owned.${Z}`]);
  const reason = (r: unknown): string => {
    try {
      parseRecord(r, Z, reserved);
      return 'accepted';
    } catch (e) {
      assert.ok(e instanceof ApiError);
      assert.equal(e.status, 400);
      return e.message;
    }
  };
  assert.equal(reason({ name: `Manual.${Z}.`, type: 'A', ttl: 60, address: '192.0.2.1' }), 'accepted');
  assert.equal(reason({ name: `_http._tcp.manual.${Z}`, type: 'SRV', ttl: 60, priority: 1, weight: 1, port: 80, target: `manual.${Z}` }), 'accepted');
  assert.match(reason({ name: `owned.${Z}`, type: 'A', ttl: 60, address: '192.0.2.1' }), /managed by Isthmus/);
  assert.match(reason({ name: `x.${Z}`, type: 'A', ttl: 86_401, address: '192.0.2.1' }), /ttl/);
  assert.match(reason({ name: `${'a'.repeat(64)}.${Z}`, type: 'A', ttl: 60, address: '192.0.2.1' }), /label/);
  assert.match(reason({ name: `x.${Z}`, type: 'TXT', ttl: 60, text: Array(17).fill('x') }), /1 to 16/);
  assert.match(reason('x'), /JSON object/);
  assert.deepEqual(parseRecord({ name: `x.${Z}`, type: 'AAAA', ttl: 5, address: '2001:DB8::1' }, Z, reserved), { name: `x.${Z}`, ttl: 5, type: 'AAAA', address: '2001:db8::1' });
});
