import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryRecordStore, plan, sync } from '../../../src/dns/plan.ts';
import { type DnsRecord, recordText } from '../../../src/dns/rr.ts';

const Z = 'rpc.cluster.local';
const a = (name: string, address: string, ttl = 30): DnsRecord => ({ name: `${name}.${Z}`, ttl, type: 'A', address });

test('plan: create what is missing, update what changed (TTL), delete what is no longer desired', () => {
  const owned = [a('x', '240.240.0.1'), a('y', '240.240.0.2'), a('z', '240.240.0.3')];
  const desired = [a('x', '240.240.0.1'), a('y', '240.240.0.2', 60), a('w', '240.240.0.4'), a('z', '240.240.0.9')];
  const p = plan(desired, owned);
  assert.deepEqual(p.create.map(recordText), [`w.${Z}. 30 IN A 240.240.0.4`, `z.${Z}. 30 IN A 240.240.0.9`]);
  assert.deepEqual(p.update.map((u) => `${recordText(u.from)} -> ${u.to.ttl}`), [`y.${Z}. 30 IN A 240.240.0.2 -> 60`]);
  assert.deepEqual(p.delete.map(recordText), [`z.${Z}. 30 IN A 240.240.0.3`]);
  assert.deepEqual(plan(desired, desired), { create: [], update: [], delete: [] });
});

test('sync brings a store to the desired records and applies nothing when it is there already', async () => {
  const store = new MemoryRecordStore();
  const desired = [a('x', '240.240.0.1'), a('y', '240.240.0.2')];
  await sync(store, desired);
  assert.deepEqual(await store.owned(), desired);
  assert.equal(store.applied, 1);
  await sync(store, desired);
  assert.equal(store.applied, 1);
  await sync(store, [a('y', '240.240.0.2')]);
  assert.deepEqual((await store.owned()).map(recordText), [`y.${Z}. 30 IN A 240.240.0.2`]);
});
