import { test } from 'node:test';
import assert from 'node:assert/strict';
import { firstValueFrom, filter, Observable, Subject, take, toArray } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import type { Registry } from '../../../src/model/registry.ts';
import type { RegistryState } from '../../../src/model/types.ts';
import { MemoryRegistry } from '../../../src/registries/memory.ts';
import { pipeline } from '../../../src/pipeline/pipeline.ts';
import { emptyState, resilientStates } from '../../../src/pipeline/registry-states.ts';
import { untilSynced } from '../../../src/pipeline/sync-gate.ts';
import { ep, svc } from '../../helpers/dns.ts';

/** A registry whose stream fails once after its first state, then works. */
function flaky(id: string): { registry: Registry; subscriptions: () => number; next: (s: RegistryState) => void } {
  let subs = 0;
  const live = new Subject<RegistryState>();
  const registry: Registry = {
    id,
    states: new Observable<RegistryState>((out) => {
      subs++;
      if (subs === 1) {
        out.next({ ...emptyState(id), synced: true, services: [svc('a.example')] });
        out.error(new Error('connection reset'));
        return;
      }
      return live.subscribe(out);
    }),
  };
  return { registry, subscriptions: () => subs, next: (s) => live.next(s) };
}

test('a registry stream that fails keeps its last state, says why, and is subscribed again', async () => {
  const f = flaky('flaky://one');
  const states = resilientStates(f.registry, { initialMs: 5, maxMs: 10 });
  const seen = firstValueFrom(states.pipe(take(4), toArray()));
  await new Promise((r) => setTimeout(r, 30));
  f.next({ ...emptyState('flaky://one'), synced: true, services: [svc('b.example')] });
  const [, first, failed, again] = await seen;
  assert.deepEqual(first!.services.map((s) => s.hostname), ['a.example']);
  assert.deepEqual(failed!.services.map((s) => s.hostname), ['a.example'], 'the failed registry still contributes its last services');
  assert.match(failed!.error ?? '', /registry stream failed: connection reset; retrying/);
  assert.deepEqual(again!.services.map((s) => s.hostname), ['b.example']);
  assert.equal(f.subscriptions(), 2);
});

test('one failing registry does not end the pipeline: the others keep changing the snapshot', async () => {
  const f = flaky('flaky://two');
  const healthy = new MemoryRegistry('memory://healthy');
  healthy.set({ services: [svc('c.example')], endpoints: [ep('c.example', '10.0.0.1')] });
  const p = pipeline({ registries: [f.registry, healthy], syncTimeoutMs: 1000, debounceQuietMs: 1, debounceMaxMs: 5, registryRetry: { initialMs: 5, maxMs: 10 } });
  const got = firstValueFrom(p.snapshots.pipe(filter((s) => (s.model.endpoints.get('c.example') ?? []).some((e) => e.address === '10.0.0.2'))));
  await new Promise((r) => setTimeout(r, 30));
  healthy.set({ endpoints: [ep('c.example', '10.0.0.2')] });
  const s = await got;
  assert.ok(s.model.services.has('a.example'), 'the failed registry kept its service');
  assert.match(s.model.registries[0]!.error ?? '', /connection reset/);
});

test('the sync gate holds states until every registry synced, or the timeout passed', () => {
  const ts = new TestScheduler((a, b) => assert.deepEqual(a, b));
  const st = (synced: boolean): RegistryState[] => [{ ...emptyState('r'), synced }];
  ts.run(({ cold, expectObservable }) => {
    const values = { u: st(false), s: st(true) };
    expectObservable(cold('u 4ms s', values).pipe(untilSynced(100, ts))).toBe('5ms s', values);
    expectObservable(cold('u', values).pipe(untilSynced(3, ts))).toBe('3ms u', values);
  });
});

test('a registry that emits while subscribed reaches the snapshots although the states were subscribed first', async () => {
  const r = new MemoryRegistry('memory://sync');
  r.set({ services: [svc('d.example')] });
  const p = pipeline({ registries: [r], syncTimeoutMs: 60_000, debounceQuietMs: 1, debounceMaxMs: 5 });
  const statuses = p.states.subscribe();
  try {
    const s = await firstValueFrom(p.snapshots);
    assert.ok(s.model.services.has('d.example'));
  } finally {
    statuses.unsubscribe();
  }
});
