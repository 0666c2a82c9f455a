// Stage 1: every registry's latest state, side by side. A registry whose stream fails keeps
// its last state (with the error set) and is subscribed again after a backoff: one
// registry's fault never ends the pipeline nor empties what it contributed.
import { combineLatest, Observable, tap } from 'rxjs';
import type { Registry } from '../model/registry.ts';
import type { RegistryState } from '../model/types.ts';
import { backoffDelay } from '../shared/backoff.ts';
import { logger } from '../shared/log.ts';
import { metrics } from '../shared/metrics.ts';

const log = logger('pipeline');
const updates = metrics.counter('isthmus_registry_updates_total', 'Registry states received, before debouncing.');
const failures = metrics.counter('isthmus_registry_stream_failures_total', 'Registry streams that failed and were subscribed again, by registry.');

export const RESUBSCRIBE = { initialMs: 500, maxMs: 30_000 } as const;

export function emptyState(id: string): RegistryState {
  return { id, synced: false, services: [], endpoints: [], workloads: [], rejections: [] };
}

/** One registry's states, never failing: an error is shown in the state and the registry is subscribed again. */
export function resilientStates(r: Registry, retry: { initialMs: number; maxMs: number } = RESUBSCRIBE): Observable<RegistryState> {
  return new Observable<RegistryState>((out) => {
    let last = emptyState(r.id);
    let attempt = 0;
    let timer: NodeJS.Timeout | undefined;
    let inner: { unsubscribe(): void } | undefined;
    let stopped = false;
    const start = (): void => {
      inner = r.states.subscribe({
        next: (s) => {
          attempt = 0;
          last = s;
          out.next(s);
        },
        error: (e: unknown) => {
          if (stopped) return;
          const delay = backoffDelay(attempt++, retry);
          failures.inc({ registry: r.id });
          log.error('registry stream failed; keeping its last state and subscribing again', { registry: r.id, retryInMs: delay, error: e });
          last = { ...last, error: `registry stream failed: ${e instanceof Error ? e.message : String(e)}; retrying` };
          out.next(last);
          timer = setTimeout(start, delay);
          timer.unref();
        },
        complete: () => log.warn('registry stream ended; keeping its last state', { registry: r.id }),
      });
    };
    out.next(last);
    start();
    return () => {
      stopped = true;
      clearTimeout(timer);
      inner?.unsubscribe();
    };
  });
}

/** The states of all registries, in their order, whenever any of them changes. */
export function registryStates(registries: readonly Registry[], retry?: { initialMs: number; maxMs: number }): Observable<readonly RegistryState[]> {
  return combineLatest(registries.map((r) => resilientStates(r, retry))).pipe(tap(() => updates.inc()));
}
