import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { parseCidr } from '../../../src/shared/ip.ts';
import { allocate, VipAllocator, VipExhaustedError, type VipStore, type VipTable } from '../../../src/addresses/allocator.ts';
import { FileVipStore } from '../../../src/addresses/file-store.ts';
import { metrics } from '../../../src/shared/metrics.ts';
import { scratchDir } from '../../helpers/processes.ts';

const TTL = 30;
const HOLD = 2 * TTL * 1000;
const names = (n: number, prefix = 'svc'): string[] => Array.from({ length: n }, (_, i) => `${prefix}${i}.rpc.cluster.local`);

function clock(start = 1_700_000_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

test('every name gets a distinct VIP inside the range, never the network or broadcast address', () => {
  const cidr = parseCidr('240.240.0.0/24');
  const all = names(200);
  const a = allocate(undefined, all, { cidr, holdMs: HOLD, now: 0, free: true });
  assert.equal(a.exhausted, undefined);
  assert.equal(a.vips.size, 200);
  const vips = [...a.vips.values()];
  assert.equal(new Set(vips).size, 200);
  for (const v of vips) {
    assert.match(v, /^240\.240\.0\.\d+$/);
    assert.notEqual(v, '240.240.0.0');
    assert.notEqual(v, '240.240.0.255');
  }
});

test('the same names give the same VIPs whatever else is in the table (two replicas agree)', () => {
  const cidr = parseCidr('240.240.0.0/16');
  const a = allocate(undefined, ['b.rpc.cluster.local', 'a.rpc.cluster.local'], { cidr, holdMs: HOLD, now: 0, free: true });
  const b = allocate(undefined, ['a.rpc.cluster.local', 'b.rpc.cluster.local'], { cidr, holdMs: HOLD, now: 5, free: true });
  assert.deepEqual(a.vips, b.vips);
  // A name's VIP does not depend on which other names exist (no collision in a /16 here).
  const c = allocate(undefined, ['a.rpc.cluster.local', ...names(50, 'x')], { cidr, holdMs: HOLD, now: 0, free: true });
  assert.equal(c.vips.get('a.rpc.cluster.local'), a.vips.get('a.rpc.cluster.local'));
});

test('a name keeps its VIP while other names come and go', () => {
  const cidr = parseCidr('240.240.0.0/26'); // 62 usable: collisions and probing are certain
  const c = clock();
  let table: VipTable | undefined;
  const stable = names(20, 'stable');
  let r = allocate(table, stable, { cidr, holdMs: HOLD, now: c.now(), free: true });
  table = r.table;
  const first = new Map(r.vips);
  for (let round = 0; round < 30; round++) {
    c.advance(7_000);
    const churn = names(round % 7, `churn${round}-`);
    r = allocate(table, [...stable, ...churn], { cidr, holdMs: HOLD, now: c.now(), free: true });
    assert.equal(r.exhausted, undefined, `round ${round}`);
    table = r.table;
    for (const n of stable) assert.equal(r.vips.get(n), first.get(n), `${n} in round ${round}`);
  }
});

test('a freed VIP goes to no other name before twice the TTL; its own name may take it back', () => {
  const cidr = parseCidr('240.240.0.0/30'); // exactly two usable addresses
  const c = clock();
  let r = allocate(undefined, ['a', 'b'], { cidr, holdMs: HOLD, now: c.now(), free: true });
  const vipA = r.vips.get('a')!;
  // a leaves; c arrives: only a's old VIP is left, and it is held.
  c.advance(1000);
  r = allocate(r.table, ['b'], { cidr, holdMs: HOLD, now: c.now(), free: true });
  assert.deepEqual(r.table.tombstones[vipA], { name: 'a', freedAt: c.now() });
  c.advance(HOLD - 1);
  r = allocate(r.table, ['b', 'c'], { cidr, holdMs: HOLD, now: c.now(), free: true });
  assert.ok(r.exhausted instanceof VipExhaustedError);
  assert.equal(r.vips.get('c'), undefined);
  // a comes back within the hold time and gets its own VIP back.
  const back = allocate(r.table, ['a', 'b'], { cidr, holdMs: HOLD, now: c.now(), free: true });
  assert.equal(back.vips.get('a'), vipA);
  // After 2×TTL the VIP may go to another name.
  c.advance(1);
  r = allocate(r.table, ['b', 'c'], { cidr, holdMs: HOLD, now: c.now(), free: true });
  assert.equal(r.exhausted, undefined);
  assert.equal(r.vips.get('c'), vipA);
});

test('exhaustion is an error naming the range and the names, never a wraparound', () => {
  const cidr = parseCidr('240.240.0.0/29'); // 6 usable
  const r = allocate(undefined, names(8), { cidr, holdMs: HOLD, now: 0, free: true });
  assert.equal(r.vips.size, 6);
  assert.ok(r.exhausted);
  assert.equal(r.exhausted.cidr, '240.240.0.0/29');
  assert.match(r.exhausted.message, /VIP range 240\.240\.0\.0\/29 is exhausted: no VIP for 2 name\(s\)/);
  assert.match(r.exhausted.message, /6 usable addresses, 6 allocated/);
  // The names that did get one are the first in order, and no VIP is given twice.
  assert.equal(new Set(r.vips.values()).size, 6);
});

test('a partial model (free: false) frees nothing', () => {
  const cidr = parseCidr('240.240.0.0/24');
  const r1 = allocate(undefined, ['a', 'b'], { cidr, holdMs: HOLD, now: 0, free: true });
  const r2 = allocate(r1.table, ['c'], { cidr, holdMs: HOLD, now: 1, free: false });
  assert.deepEqual(Object.keys(r2.table.allocations), ['a', 'b', 'c']);
  assert.deepEqual(r2.table.tombstones, {});
});

test('a changed range keeps the allocations inside it and moves the others', () => {
  const r1 = allocate(undefined, ['a', 'b'], { cidr: parseCidr('240.240.0.0/16'), holdMs: HOLD, now: 0, free: true });
  const r2 = allocate(r1.table, ['a', 'b'], { cidr: parseCidr('240.241.0.0/16'), holdMs: HOLD, now: 0, free: true });
  for (const v of r2.vips.values()) assert.match(v, /^240\.241\./);
  assert.equal(r2.table.cidr, '240.241.0.0/16');
});

test('IPv6 ranges work the same way', () => {
  const r = allocate(undefined, names(10), { cidr: parseCidr('fd00:1234::/64'), holdMs: HOLD, now: 0, free: true });
  assert.equal(r.vips.size, 10);
  for (const v of r.vips.values()) assert.match(v, /^fd00:1234::/);
});

test('file store: VIPs survive a restart, and the file is replaced atomically', async () => {
  const dir = scratchDir('vip');
  const file = path.join(dir, 'state', 'vips.json');
  const c = clock();
  const a1 = new VipAllocator(new FileVipStore(file), { cidr: '240.240.0.0/16', ttl: TTL, clock: c.now });
  const r1 = await a1.reconcile(names(30), { free: true });
  const doc = JSON.parse(fs.readFileSync(file, 'utf8')) as { format: number; version: number; table: VipTable };
  assert.equal(doc.format, 1);
  assert.equal(doc.version, 1);
  assert.equal(Object.keys(doc.table.allocations).length, 30);
  assert.deepEqual(fs.readdirSync(path.dirname(file)), ['vips.json'], 'no temporary or lock file left');

  // "Restart": a new allocator on the same file, with half the names gone and new ones added.
  c.advance(10_000);
  const a2 = new VipAllocator(new FileVipStore(file), { cidr: '240.240.0.0/16', ttl: TTL, clock: c.now });
  const r2 = await a2.reconcile([...names(15), ...names(15, 'new')], { free: true });
  for (const n of names(15)) assert.equal(r2.vips.get(n), r1.vips.get(n));
  const freed = new Set(names(30).slice(15).map((n) => r1.vips.get(n)!));
  for (const n of names(15, 'new')) assert.ok(!freed.has(r2.vips.get(n)!), `${n} took a VIP freed ${10} s ago`);

  // No write when nothing changes.
  const before = fs.statSync(file).mtimeMs;
  const version = (JSON.parse(fs.readFileSync(file, 'utf8')) as { version: number }).version;
  await a2.reconcile([...names(15), ...names(15, 'new')], { free: true });
  assert.equal((JSON.parse(fs.readFileSync(file, 'utf8')) as { version: number }).version, version);
  assert.equal(fs.statSync(file).mtimeMs, before);
});

test('file store: compare-and-swap refuses a stale version; two allocators on one file converge', async () => {
  const file = path.join(scratchDir('vip-cas'), 'vips.json');
  const s1 = new FileVipStore(file);
  const s2 = new FileVipStore(file);
  const t: VipTable = { cidr: '240.240.0.0/16', allocations: { a: '240.240.0.1' }, tombstones: {} };
  assert.deepEqual(await s1.compareAndSwap(0, t), { ok: true, version: 1 });
  const stale = await s2.compareAndSwap(0, { ...t, allocations: { b: '240.240.0.2' } });
  assert.equal(stale.ok, false);
  assert.deepEqual(!stale.ok && stale.current, { version: 1, table: t });

  const c = clock();
  const a1 = new VipAllocator(s1, { cidr: '240.240.0.0/16', ttl: TTL, clock: c.now });
  const a2 = new VipAllocator(s2, { cidr: '240.240.0.0/16', ttl: TTL, clock: c.now });
  const [r1, r2] = await Promise.all([a1.reconcile(['a', 'x', 'y'], { free: false }), a2.reconcile(['a', 'y', 'z'], { free: false })]);
  assert.equal(r1.vips.get('y'), r2.vips.get('y'));
  assert.equal(r1.vips.get('a'), '240.240.0.1');
  assert.equal(r2.vips.get('a'), '240.240.0.1');
  const final = await new FileVipStore(file).load();
  assert.deepEqual(Object.keys(final.table!.allocations).sort(), ['a', 'x', 'y', 'z']);
});

test('a corrupt table is an error, not a silent reset', async () => {
  const file = path.join(scratchDir('vip-bad'), 'vips.json');
  fs.writeFileSync(file, '{"format":1,');
  const a = new VipAllocator(new FileVipStore(file), { cidr: '240.240.0.0/16', ttl: TTL });
  await assert.rejects(a.reconcile(['a'], { free: true }), /is not JSON.*fix or remove it/);
  fs.writeFileSync(file, '{"format":7}');
  await assert.rejects(new FileVipStore(file).load(), /not a format-1 table/);
});

test('exhaustion through the allocator counts in a metric', async () => {
  const store = memoryStore();
  const a = new VipAllocator(store, { cidr: '240.240.0.0/30', ttl: TTL });
  const before = metrics.counter('isthmus_dns_vip_exhausted_total', '').get();
  const r = await a.reconcile(['a', 'b', 'c'], { free: true });
  assert.equal(r.vips.size, 2);
  assert.match(r.exhausted!.message, /240\.240\.0\.0\/30/);
  assert.equal(metrics.counter('isthmus_dns_vip_exhausted_total', '').get() - before, 1);
});

function memoryStore(): VipStore {
  let cur: { version: number; table: VipTable | undefined } = { version: 0, table: undefined };
  return {
    id: 'memory',
    load: async () => cur,
    compareAndSwap: async (expected, table) => {
      if (expected !== cur.version) return { ok: false, current: cur };
      cur = { version: cur.version + 1, table };
      return { ok: true, version: cur.version };
    },
    close: async () => undefined,
  };
}

test('the same names again (an endpoint-only change) cost no store access', async () => {
  const store = memoryStore();
  let calls = 0;
  const counted: VipStore = { ...store, load: () => (calls++, store.load()), compareAndSwap: (e, t) => (calls++, store.compareAndSwap(e, t)) };
  const a = new VipAllocator(counted, { cidr: '240.240.0.0/16', ttl: TTL });
  const r1 = await a.reconcile(['a', 'b'], { free: true });
  const after1 = calls;
  const r2 = await a.reconcile(['a', 'b'], { free: true });
  assert.equal(calls, after1);
  assert.deepEqual(r2.vips, r1.vips);
  await a.reconcile(['a', 'b', 'c'], { free: true });
  assert.equal(calls, after1 + 1);
});
