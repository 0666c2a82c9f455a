import { asyncScheduler, Observable, type OperatorFunction, type SchedulerLike, type Subscription } from 'rxjs';

/**
 * Emits the latest value once the source has been quiet for `quietMs`, or at the latest
 * `maxMs` after the first value of a burst, so steady churn still produces pushes.
 */
export function debounceWithMax<T>(quietMs: number, maxMs: number, scheduler: SchedulerLike = asyncScheduler): OperatorFunction<T, T> {
  return (source) =>
    new Observable<T>((subscriber) => {
      let pending: { value: T } | undefined;
      let quiet: Subscription | undefined;
      let cap: Subscription | undefined;
      const emit = (): void => {
        quiet?.unsubscribe();
        cap?.unsubscribe();
        quiet = cap = undefined;
        if (!pending) return;
        const { value } = pending;
        pending = undefined;
        subscriber.next(value);
      };
      const sub = source.subscribe({
        next: (value) => {
          pending = { value };
          quiet?.unsubscribe();
          quiet = scheduler.schedule(emit, quietMs);
          cap ??= scheduler.schedule(emit, maxMs);
        },
        error: (e) => subscriber.error(e),
        complete: () => {
          emit();
          subscriber.complete();
        },
      });
      return () => {
        sub.unsubscribe();
        quiet?.unsubscribe();
        cap?.unsubscribe();
      };
    });
}
