import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryReturner, returnFreedMemory } from '../../src/memory.ts';

const MiB = 1024 * 1024;

/** A burst of short-lived objects, like the requests of a sync: the heap grows, then it is garbage. */
function burst(): number {
  let keep: { j: number; s: string }[][] = [];
  for (let i = 0; i < 150; i++) keep.push(Array.from({ length: 20_000 }, (_, j) => ({ j, s: `x${j}` })));
  const n = keep.length;
  keep = [];
  return n + keep.length;
}

function busyFor(ms: number): Promise<void> {
  return new Promise((resolve) => {
    const until = performance.now() + ms;
    const spin = (): void => {
      const slice = performance.now() + 20;
      while (performance.now() < slice);
      if (performance.now() < until) setImmediate(spin);
      else resolve();
    };
    spin();
  });
}

test('the heap pages a burst freed stay resident until a last-resort GC returns them', async () => {
  const before = process.memoryUsage.rss();
  burst();
  const grown = process.memoryUsage.rss();
  assert.ok(grown - before > 100 * MiB, `the burst grew RSS by ${((grown - before) / MiB).toFixed(0)} MiB`);
  const returned = await returnFreedMemory();
  assert.ok(returned > 64 * MiB, `returned ${(returned / MiB).toFixed(0)} MiB of ${((grown - before) / MiB).toFixed(0)} MiB grown`);
});

test('the returner waits while the process is busy, and returns freed memory once it is quiet', async () => {
  const r = new MemoryReturner({ checkMs: 200, growthBytes: 32 * MiB, maxBusy: 0.05 });
  try {
    burst();
    const grown = process.memoryUsage.rss();
    await busyFor(1000);
    assert.equal(r.runs, 0, 'no GC while the event loop is busy');
    const deadline = Date.now() + 3000;
    while (r.runs === 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
    assert.equal(r.runs, 1, 'one GC once quiet');
    const now = process.memoryUsage.rss();
    assert.ok(grown - now > 64 * MiB, `RSS ${(grown / MiB).toFixed(0)} → ${(now / MiB).toFixed(0)} MiB`);
    // Nothing grew since: no more GCs.
    await new Promise((res) => setTimeout(res, 600));
    assert.equal(r.runs, 1);
  } finally {
    r.stop();
  }
});
