import type { Observable } from 'rxjs';
import type { RegistryState } from './types.ts';

/**
 * One source of services and endpoints. `states` is cold: subscribing starts the watch,
 * unsubscribing stops it. Every emission is the registry's complete current state.
 * A registry that loses its source keeps emitting its last known state with `error` set.
 */
export interface Registry {
  readonly id: string;
  readonly states: Observable<RegistryState>;
}
