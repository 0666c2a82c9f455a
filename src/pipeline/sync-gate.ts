// Stage 2: nothing passes until every registry has read its source once (or the sync
// timeout passed): serving a partial model first would make connected proxies drop what
// they have.
import { asyncScheduler, Observable, type OperatorFunction, type SchedulerLike } from 'rxjs';
import type { RegistryState } from '../model/types.ts';
import { logger } from '../shared/log.ts';

const log = logger('pipeline');

export function untilSynced(timeoutMs: number, scheduler: SchedulerLike = asyncScheduler): OperatorFunction<readonly RegistryState[], readonly RegistryState[]> {
  return (source) =>
    new Observable((out) => {
      let open = false;
      let latest: readonly RegistryState[] | undefined;
      const timer = scheduler.schedule(() => {
        if (open) return;
        open = true;
        const waiting = (latest ?? []).filter((r) => !r.synced).map((r) => r.id);
        log.warn('serving before every registry synced', { waiting, afterMs: timeoutMs });
        if (latest) out.next(latest);
      }, timeoutMs);
      const sub = source.subscribe({
        next: (states) => {
          latest = states;
          if (!open && states.every((r) => r.synced)) {
            open = true;
            timer.unsubscribe();
          }
          if (open) out.next(states);
        },
        error: (e) => out.error(e),
        complete: () => out.complete(),
      });
      return () => {
        sub.unsubscribe();
        timer.unsubscribe();
      };
    });
}
