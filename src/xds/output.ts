// The xDS output: mesh snapshots → generations of encoded resources, which the ADS server
// serves. A snapshot that cannot be built is logged and skipped; proxies keep the last good
// generation.
import { BehaviorSubject, filter, type Observable } from 'rxjs';
import type { MeshSnapshot } from '../model/mesh-snapshot.ts';
import { logger } from '../shared/log.ts';
import { metrics } from '../shared/metrics.ts';
import { type Generation, XdsCache } from './cache.ts';
import type { ResourceSnapshot, SnapshotSource } from './server/types.ts';

const log = logger('xds');
const snapshotsBuilt = metrics.counter('isthmus_snapshots_total', 'xDS snapshots built from the model.');
const buildFailures = metrics.counter('isthmus_snapshot_build_failures_total', 'Models that could not be turned into xDS.');
const buildTime = metrics.histogram('isthmus_snapshot_build_seconds', 'Time to turn a model snapshot into xDS resources.');

export class XdsOutput implements SnapshotSource {
  readonly cache: XdsCache;
  private readonly generations = new BehaviorSubject<Generation | undefined>(undefined);
  readonly snapshots: Observable<ResourceSnapshot>;
  /** Version of the mesh snapshot the current generation was built from. */
  private builtFrom?: string;
  /** Mesh snapshot version → the generation built from it, for the last few. */
  private readonly built = new Map<string, number>();

  constructor(opts: { readonly trustDomain?: string } = {}) {
    this.cache = new XdsCache(opts);
    this.snapshots = this.generations.pipe(filter((g): g is Generation => g !== undefined));
  }

  current(): Generation | undefined {
    return this.generations.value;
  }

  /** Builds the generation of a snapshot; equal snapshot versions are built once. */
  apply(s: MeshSnapshot): void {
    if (this.builtFrom === s.version) return;
    const { model, vips } = s.routing;
    const start = performance.now();
    let g: Generation;
    try {
      g = this.cache.update(model, vips);
    } catch (e) {
      buildFailures.inc();
      log.error('cannot build xDS from the model; keeping the previous snapshot', { version: model.version, error: e });
      return;
    }
    this.builtFrom = s.version;
    this.built.set(s.version, g.seq);
    if (this.built.size > 64) this.built.delete(this.built.keys().next().value!);
    const seconds = (performance.now() - start) / 1000;
    snapshotsBuilt.inc();
    buildTime.observe({}, seconds);
    log.info('snapshot built', { seq: g.seq, version: model.version, services: model.services.size, ms: Math.round(seconds * 1000), changed: Object.fromEntries([...g.changed].map(([t, n]) => [t.split('.').pop(), n.size])) });
    this.generations.next(g);
  }

  /** The generation built from a mesh snapshot, if it was built (its build may have failed). */
  seqOf(snapshotVersion: string): number | undefined {
    return this.built.get(snapshotVersion);
  }

  complete(): void {
    this.generations.complete();
  }
}
