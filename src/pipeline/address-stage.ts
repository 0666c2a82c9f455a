// Stage: model → model with addresses. Every name that needs a VIP gets one from the
// allocator (kept in its store across restarts and replicas).
//
// The store may be slow or down; the rest of the mesh must not wait for it. A model whose
// allocation has not finished within `waitMs` (or failed) goes on at once with the VIPs
// already allocated; its new names are `pending` (shown in /debug/dnsz, counted in
// isthmus_vip_pending_names) and get theirs when the store answers again, which emits the
// latest model once more. Endpoint additions and removals therefore keep flowing during
// a VIP store outage. Only the latest model waits for the next attempt.
import { Observable, type OperatorFunction } from 'rxjs';
import type { VipAllocator } from '../addresses/allocator.ts';
import { type Addresses, vipNames } from '../model/mesh-snapshot.ts';
import type { ModelSnapshot } from '../model/snapshot.ts';
import { backoffDelay } from '../shared/backoff.ts';
import { logger } from '../shared/log.ts';
import { metrics } from '../shared/metrics.ts';

const log = logger('pipeline.addresses');
const pendingGauge = metrics.gauge('isthmus_vip_pending_names', 'Names of the model waiting for a VIP (VIP store unreachable or range exhausted).');
const failuresTotal = metrics.counter('isthmus_vip_allocation_failures_total', 'VIP allocations that failed (the store unreachable or in conflict); retried with backoff.');

export interface Addressed {
  readonly model: ModelSnapshot;
  readonly addresses: Addresses;
}

export interface AddressStageOptions {
  /** How long a model waits for its allocation before it goes on with what is allocated (default 1 s). */
  readonly waitMs?: number;
  readonly retry?: { readonly initialMs: number; readonly maxMs: number };
}

export function allocateAddresses(allocator: VipAllocator, opts: AddressStageOptions = {}): OperatorFunction<ModelSnapshot, Addressed> {
  const waitMs = opts.waitMs ?? 1000;
  const retry = opts.retry ?? { initialMs: 500, maxMs: 30_000 };
  const info = { cidr: allocator.cidr.text, store: allocator.storeId };
  return (source) =>
    new Observable<Addressed>((out) => {
      let latest: ModelSnapshot | undefined;
      let running = false;
      /** Set while the store is failing or slow: models then go on without waiting. */
      let degraded: string | undefined;
      let attempt = 0;
      let retryTimer: NodeJS.Timeout | undefined;
      let closed = false;

      const emit = (model: ModelSnapshot, addresses: Addresses): void => {
        pendingGauge.set({}, addresses.pending.length);
        out.next({ model, addresses });
      };
      // What is allocated already, for a model that cannot wait.
      const known = (model: ModelSnapshot, error: string): Addresses => {
        const table = allocator.table()?.allocations ?? {};
        const vips = new Map<string, string>();
        const pending: string[] = [];
        for (const n of vipNames(model)) {
          const v = table[n];
          if (v !== undefined) vips.set(n, v);
          else pending.push(n);
        }
        return { vips, pending, error, ...info };
      };
      const run = (): void => {
        if (running || retryTimer || !latest || closed) return;
        const model = latest;
        latest = undefined;
        running = true;
        let settled = false;
        const slow = setTimeout(() => {
          if (settled || closed) return;
          degraded ??= `VIP store ${allocator.storeId} has not answered within ${waitMs} ms`;
          // The newest model goes on; it stays `latest`, to be allocated next.
          const newest = latest ?? model;
          emit(newest, known(newest, degraded));
        }, waitMs);
        slow.unref();
        allocator
          .reconcile(vipNames(model), { free: model.registries.every((r) => r.synced) })
          .then(
            (r) => {
              if (degraded) log.info('VIP store answers again; pending names get their VIPs', { store: allocator.storeId });
              degraded = undefined;
              attempt = 0;
              // A newer model waits for its own allocation; this one is already stale.
              if (latest || closed) return;
              const pending = r.exhausted ? [...r.exhausted.names] : [];
              emit(model, { vips: r.vips, pending, ...(r.exhausted ? { error: r.exhausted.message } : {}), ...info });
            },
            (e: unknown) => {
              failuresTotal.inc();
              const first = degraded === undefined || !degraded.startsWith('cannot allocate');
              degraded = `cannot allocate VIPs in ${allocator.storeId}: ${e instanceof Error ? e.message : String(e)}`;
              const delay = backoffDelay(attempt++, retry);
              if (first) log.error('VIP allocation failed; new names wait, everything else goes on', { store: allocator.storeId, retryInMs: delay, error: e });
              if (closed) return;
              // Equal content gives an equal snapshot version, which outputs skip.
              if (!latest) {
                emit(model, known(model, degraded));
                latest = model;
              }
              retryTimer = setTimeout(() => {
                retryTimer = undefined;
                run();
              }, delay);
              retryTimer.unref();
            },
          )
          .finally(() => {
            settled = true;
            clearTimeout(slow);
            running = false;
            run();
          });
      };

      const sub = source.subscribe({
        next: (model) => {
          latest = model;
          // While the store is failing, a model does not wait for it.
          if (degraded && (running || retryTimer)) emit(model, known(model, degraded));
          run();
        },
        error: (e) => out.error(e),
        complete: () => out.complete(),
      });
      return () => {
        closed = true;
        clearTimeout(retryTimer);
        sub.unsubscribe();
      };
    });
}
