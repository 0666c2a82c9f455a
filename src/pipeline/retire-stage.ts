// Stage: model with addresses → mesh snapshot, with retirement. A service gone from the
// model leaves DNS at once but stays routed (to no one) with its VIPs for the record TTL,
// so clients that still hold the cached address fail fast instead of reaching a VIP that
// nothing intercepts. When a retirement expires the latest input is emitted again.
import { asyncScheduler, Observable, type OperatorFunction, type SchedulerLike, type Subscription } from 'rxjs';
import { MeshSnapshot, type Retiring } from '../model/mesh-snapshot.ts';
import type { Addressed } from './address-stage.ts';

export function retireRemoved(ttlMs: number, scheduler: SchedulerLike = asyncScheduler): OperatorFunction<Addressed, MeshSnapshot> {
  return (source) =>
    new Observable<MeshSnapshot>((out) => {
      let prev: Addressed | undefined;
      const retiring = new Map<string, Retiring>();
      let timer: Subscription | undefined;

      const step = (input: Addressed): void => {
        const now = scheduler.now();
        if (prev && ttlMs > 0 && prev !== input) {
          for (const [host, service] of prev.model.services) {
            if (input.model.services.has(host) || retiring.has(host)) continue;
            const names = [host, ...service.interfaces.map((i) => i.hostname)];
            const vips = new Map(names.filter((n) => prev!.addresses.vips.has(n)).map((n) => [n, prev!.addresses.vips.get(n)!] as const));
            retiring.set(host, { service, vips, until: now + ttlMs });
          }
        }
        for (const [host, r] of retiring) if (input.model.services.has(host) || r.until <= now) retiring.delete(host);
        prev = input;
        timer?.unsubscribe();
        timer = undefined;
        if (retiring.size) {
          const next = Math.min(...[...retiring.values()].map((r) => r.until));
          timer = scheduler.schedule(() => step(input), Math.max(0, next - now) + 10);
        }
        out.next(new MeshSnapshot(input.model, input.addresses, new Map(retiring)));
      };

      const sub = source.subscribe({ next: step, error: (e) => out.error(e), complete: () => out.complete() });
      return () => {
        sub.unsubscribe();
        timer?.unsubscribe();
      };
    });
}
