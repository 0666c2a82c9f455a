// The pipeline, composed in one place: serve, plan's dry run, the tests and the bench all
// run this.
//
//   registries ─▶ states ─▶ sync gate ─▶ debounce ─▶ merge + rules check ─▶ addresses ─▶ retirement ─▶ MeshSnapshot
//
// Registry states are debounced before they are merged, so a burst of registry events
// costs one merge. Each stage is an operator over immutable values; outputs (xDS, DNS,
// admin) subscribe to the snapshots side by side and never feed back.
import { map, type Observable, scan, type SchedulerLike, share, shareReplay } from 'rxjs';
import type { VipAllocator } from '../addresses/allocator.ts';
import { mergeStates } from '../model/aggregate.ts';
import { type MeshSnapshot, NO_ADDRESSES } from '../model/mesh-snapshot.ts';
import type { Registry } from '../model/registry.ts';
import type { ModelSnapshot } from '../model/snapshot.ts';
import type { RegistryState } from '../model/types.ts';
import { type Addressed, allocateAddresses, type AddressStageOptions } from './address-stage.ts';
import { debounceWithMax } from './debounce.ts';
import { registryStates } from './registry-states.ts';
import { retireRemoved } from './retire-stage.ts';
import { untilSynced } from './sync-gate.ts';

export interface PipelineOptions {
  readonly registries: readonly Registry[];
  /** How long to wait for every registry to sync before the first model goes on anyway. */
  readonly syncTimeoutMs: number;
  readonly debounceQuietMs: number;
  readonly debounceMaxMs: number;
  /** VIPs for names (with DNS on); without, no name gets one. */
  readonly addresses?: AddressStageOptions & {
    readonly allocator: VipAllocator;
    /** Record TTL: a removed service stays routed this long. */
    readonly ttlSeconds: number;
  };
  readonly registryRetry?: { readonly initialMs: number; readonly maxMs: number };
  readonly scheduler?: SchedulerLike;
}

export interface Pipeline {
  /** Every registry's latest state (shared with `snapshots`: one watch per registry). */
  readonly states: Observable<readonly RegistryState[]>;
  /** One snapshot per debounced change, and when a retirement expires or pending names get VIPs. */
  readonly snapshots: Observable<MeshSnapshot>;
}

export function pipeline(opts: PipelineOptions): Pipeline {
  // Replayed: registries may emit while the first subscriber subscribes, before the next one does.
  const states = registryStates(opts.registries, opts.registryRetry).pipe(shareReplay({ bufferSize: 1, refCount: true }));
  const models = states.pipe(
    untilSynced(opts.syncTimeoutMs, opts.scheduler),
    debounceWithMax(opts.debounceQuietMs, opts.debounceMaxMs, opts.scheduler),
    scan<readonly RegistryState[], ModelSnapshot, undefined>((prev, s) => mergeStates(s, prev), undefined),
  );
  return { states, snapshots: meshSnapshots(models, opts).pipe(share()) };
}

/** The stages after the merge: models → addresses → retirement → mesh snapshots. */
export function meshSnapshots(models: Observable<ModelSnapshot>, opts: Pick<PipelineOptions, 'addresses' | 'scheduler'>): Observable<MeshSnapshot> {
  const a = opts.addresses;
  return models.pipe(
    a ? allocateAddresses(a.allocator, a) : map((model): Addressed => ({ model, addresses: NO_ADDRESSES })),
    retireRemoved((a?.ttlSeconds ?? 0) * 1000, opts.scheduler),
  );
}
