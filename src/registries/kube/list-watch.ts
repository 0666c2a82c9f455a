// List + watch of one resource (in one namespace or all), kept in a local store, that never
// stops by itself: the informer of @kubernetes/client-node gives up on a non-410 error
// (kubernetes-client/javascript #958, #1933); this loop does not.
//
//   starting ─▶ listing ─▶ watching ──(server closes the stream)──▶ watching (same RV)
//                 ▲  │          │
//                 │  │          ├──(410 Gone: RV too old)──▶ listing (store kept until the new list is complete)
//                 │  │          └──(error)──▶ backoff ──▶ watching from the last RV
//                 │  └──(error)──▶ backoff ──▶ listing
//                 └──── absent ◀──(404 on an optional kind never seen)── looked for again every absentRecheckMs
//
// The store is replaced only by a complete list, so a relist never empties it first: objects
// that still exist stay, deleted ones go, in one change. Errors never clear the store.
import { backoffDelay } from '../../shared/backoff.ts';
import { metrics } from '../../shared/metrics.ts';
import { type KubeApi, KubeApiError, type KubeList, type KubeObject, type KubeStatus, statusError, toKubeError, type WatchEvent } from './client.ts';
import { collectionPath, type ResourceRef } from './resources.ts';

export type WatchPhase = 'starting' | 'listing' | 'watching' | 'backoff' | 'absent' | 'stopped';

export interface WatchStatus {
  /** Kind, and namespace when the watch is limited to one. */
  readonly resource: string;
  readonly phase: WatchPhase;
  /** A complete list has been read (or the API was found absent): the store can be trusted. */
  readonly synced: boolean;
  /** Last moment (ms since the epoch) the store was known to be current. */
  readonly lastSync?: number;
  /** Set while failing: when the failures began, and the last one. */
  readonly failingSince?: number;
  readonly lastError?: string;
  readonly objects: number;
  readonly relists: number;
}

export interface ListWatchOptions {
  /** Items per list page. Default 500. */
  readonly pageSize?: number;
  /** First retry delay after an error; doubles up to maxBackoffMs, with jitter. Default 500 ms. */
  readonly minBackoffMs?: number;
  /** Default 30 s. */
  readonly maxBackoffMs?: number;
  /**
   * Server-side watch timeout, randomised up to 1.5×. It must stay under the client's
   * 30 s inactivity limit, so an idle watch ends cleanly and is resumed. Default 18 s.
   */
  readonly watchTimeoutSeconds?: number;
  /** How often an absent optional API is looked for again. Default 30 s. */
  readonly absentRecheckMs?: number;
  /** Request timeout of list pages. Default 30 s. */
  readonly requestTimeoutMs?: number;
}

const watchUp = metrics.gauge('isthmus_kube_watch_up', 'Kubernetes list+watch: 1 while watching, 0 while listing, retrying or stopped');
const lastSyncGauge = metrics.gauge('isthmus_kube_watch_last_sync_timestamp_seconds', 'Kubernetes list+watch: last time the local store was known to be current (unix seconds)');
const eventsTotal = metrics.counter('isthmus_kube_watch_events_total', 'Kubernetes watch events received, by type');
const restartsTotal = metrics.counter('isthmus_kube_watch_restarts_total', 'Kubernetes list+watch restarts, by reason (closed, expired, error)');
const objectsGauge = metrics.gauge('isthmus_kube_objects', 'Kubernetes objects in the local store');

function keyOf(o: KubeObject): string | undefined {
  const m = o.metadata;
  if (!m?.name) return undefined;
  return m.namespace ? `${m.namespace}/${m.name}` : m.name;
}

/** managedFields are often the larger part of an object and nothing here reads them. */
function slim(o: KubeObject): KubeObject {
  if (!o.metadata || !('managedFields' in o.metadata)) return o;
  const { managedFields: _managedFields, ...metadata } = o.metadata as KubeObject['metadata'] & { managedFields?: unknown };
  return { ...o, metadata };
}

export function describeError(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export class ListWatch {
  readonly ref: ResourceRef;
  readonly namespace: string | undefined;
  private readonly api: KubeApi;
  private readonly registry: string;
  private readonly opts: Required<ListWatchOptions>;
  private readonly onChange: () => void;
  private readonly onStatus: () => void;
  private items = new Map<string, KubeObject>();
  private rv: string | undefined;
  private phase: WatchPhase = 'starting';
  private synced = false;
  private present = false;
  private lastSync: number | undefined;
  private failingSince: number | undefined;
  private lastError: string | undefined;
  private failures = 0;
  private relists = 0;
  private abort = new AbortController();
  private wake: (() => void) | undefined;
  private running: Promise<void> | undefined;

  constructor(
    api: KubeApi,
    ref: ResourceRef,
    namespace: string | undefined,
    registry: string,
    opts: ListWatchOptions,
    onChange: () => void,
    onStatus: () => void = () => {},
  ) {
    this.api = api;
    this.ref = ref;
    this.namespace = ref.namespaced ? namespace : undefined;
    this.registry = registry;
    this.opts = {
      pageSize: opts.pageSize ?? 500,
      minBackoffMs: opts.minBackoffMs ?? 500,
      maxBackoffMs: opts.maxBackoffMs ?? 30_000,
      watchTimeoutSeconds: opts.watchTimeoutSeconds ?? 18,
      absentRecheckMs: opts.absentRecheckMs ?? 30_000,
      requestTimeoutMs: opts.requestTimeoutMs ?? 30_000,
    };
    this.onChange = onChange;
    this.onStatus = onStatus;
  }

  /** Objects by "namespace/name" (or "name" for cluster-scoped kinds). */
  get store(): ReadonlyMap<string, KubeObject> {
    return this.items;
  }

  get resource(): string {
    return this.namespace ? `${this.ref.kind} in ${this.namespace}` : this.ref.kind;
  }

  get status(): WatchStatus {
    return {
      resource: this.resource,
      phase: this.phase,
      synced: this.synced,
      ...(this.lastSync !== undefined ? { lastSync: this.lastSync } : {}),
      ...(this.failingSince !== undefined ? { failingSince: this.failingSince, lastError: this.lastError } : {}),
      objects: this.items.size,
      relists: this.relists,
    };
  }

  start(): void {
    this.running ??= this.run();
  }

  /** Stops the loop and any request in flight; resolves once the loop has ended. */
  async stop(): Promise<void> {
    this.setPhase('stopped');
    this.abort.abort();
    this.wake?.();
    await this.running;
  }

  private get stopped(): boolean {
    return this.abort.signal.aborted;
  }

  private labels(): Record<string, string> {
    return { registry: this.registry, resource: this.resource };
  }

  private setPhase(p: WatchPhase): void {
    if (this.phase === 'stopped') return;
    this.phase = p;
    watchUp.set(this.labels(), p === 'watching' ? 1 : 0);
    this.onStatus();
  }

  private markSynced(): void {
    this.lastSync = Date.now();
    lastSyncGauge.set(this.labels(), Math.floor(this.lastSync / 1000));
  }

  private async run(): Promise<void> {
    let needList = true;
    while (!this.stopped) {
      try {
        if (needList) {
          await this.list();
          needList = false;
        }
        const outcome = await this.watchOnce();
        if (outcome === 'expired') {
          needList = true;
          this.relists++;
        }
        restartsTotal.inc({ ...this.labels(), reason: outcome });
        if (outcome === 'idle') await this.sleep(this.backoffMs());
      } catch (err) {
        if (this.stopped) break;
        const e = err instanceof KubeApiError ? err : toKubeError(err, this.resource);
        if (e.expired) {
          // A continue token or the watch's resource version is too old: list afresh.
          needList = true;
          this.relists++;
          restartsTotal.inc({ ...this.labels(), reason: 'expired' });
          continue;
        }
        if (e.notFound && this.ref.optional && !this.present) {
          await this.absent();
          needList = true;
          continue;
        }
        restartsTotal.inc({ ...this.labels(), reason: 'error' });
        this.fail(e);
        await this.sleep(this.backoffMs());
        // A failed list is listed again; a failed watch resumes from its resource version.
        if (this.rv === undefined) needList = true;
      }
    }
    watchUp.set(this.labels(), 0);
  }

  private async list(): Promise<void> {
    this.setPhase('listing');
    const next = new Map<string, KubeObject>();
    let cont: string | undefined;
    let rv: string | undefined;
    do {
      const page = await this.api.request<KubeList>('GET', collectionPath(this.ref, this.namespace), {
        query: { limit: this.opts.pageSize, ...(cont ? { continue: cont } : {}) },
        timeoutMs: this.opts.requestTimeoutMs,
      });
      if (this.stopped) return;
      for (const item of page?.items ?? []) {
        const k = keyOf(item);
        if (k) next.set(k, slim(item));
      }
      cont = page?.metadata?.continue || undefined;
      rv = page?.metadata?.resourceVersion;
    } while (cont);
    this.items = next;
    this.rv = rv;
    this.present = true;
    this.synced = true;
    this.recovered();
    objectsGauge.set(this.labels(), next.size);
    this.onChange();
  }

  /** Runs one watch request to its end: 'closed' when the server ended it, 'expired' on 410. */
  private async watchOnce(): Promise<'closed' | 'expired' | 'idle'> {
    let expired = false;
    let failure: KubeApiError | undefined;
    let events = 0;
    const started = Date.now();
    const request = new AbortController();
    const onStop = (): void => request.abort();
    this.abort.signal.addEventListener('abort', onStop, { once: true });
    const timeout = Math.round(this.opts.watchTimeoutSeconds * (1 + Math.random() / 2));
    try {
      await this.api.watch(
        collectionPath(this.ref, this.namespace),
        { resourceVersion: this.rv, allowWatchBookmarks: true, timeoutSeconds: timeout },
        (e) => {
          if (expired || failure) return;
          events++;
          const r = this.apply(e);
          if (r === 'expired') expired = true;
          else if (r instanceof KubeApiError) failure = r;
          if (expired || failure) request.abort();
        },
        request.signal,
        () => {
          // The server accepted the watch: whatever was failing works again.
          this.recovered();
          this.setPhase('watching');
          this.markSynced();
        },
      );
    } finally {
      this.abort.signal.removeEventListener('abort', onStop);
    }
    if (this.stopped) return 'closed';
    if (expired) return 'expired';
    if (failure) throw failure;
    this.recovered();
    this.markSynced();
    // A stream the server ends at once, again and again, must not become a busy loop.
    return events === 0 && Date.now() - started < 1000 ? 'idle' : 'closed';
  }

  /** Applies one event to the store; says when the watch must end. */
  private apply(e: WatchEvent): 'ok' | 'expired' | KubeApiError {
    eventsTotal.inc({ ...this.labels(), type: e.type });
    const rv = e.object.metadata?.resourceVersion;
    switch (e.type) {
      case 'ADDED':
      case 'MODIFIED':
      case 'DELETED': {
        const k = keyOf(e.object);
        if (k) {
          if (e.type === 'DELETED') this.items.delete(k);
          else this.items.set(k, slim(e.object));
        }
        if (rv) this.rv = rv;
        objectsGauge.set(this.labels(), this.items.size);
        this.markSynced();
        this.onChange();
        return 'ok';
      }
      case 'BOOKMARK':
        if (rv) this.rv = rv;
        this.markSynced();
        return 'ok';
      case 'ERROR': {
        const s = e.object as KubeStatus;
        const err = statusError(s, `watch ${this.resource}`);
        return err.expired ? 'expired' : err;
      }
      default:
        return 'ok';
    }
  }

  private async absent(): Promise<void> {
    // Not an error: the CRD is simply not installed (yet). Nothing to serve, nothing stale.
    if (!this.synced) {
      this.synced = true;
      this.onChange();
    }
    this.recovered();
    this.setPhase('absent');
    this.markSynced();
    await this.sleep(this.opts.absentRecheckMs);
  }

  private fail(e: KubeApiError): void {
    this.failures++;
    this.failingSince ??= Date.now();
    // Without the request line, so that kinds failing for one reason read as one failure.
    const msg = describeError(e).replace(/^(?:GET|WATCH) \S+: /, '');
    this.lastError = e.notFound && this.present ? `${this.ref.kind} is no longer served by the API server (${msg})` : msg;
    this.setPhase('backoff');
  }

  private recovered(): void {
    const was = this.failingSince !== undefined;
    this.failures = 0;
    this.failingSince = undefined;
    this.lastError = undefined;
    if (was) this.onStatus();
  }

  private backoffMs(): number {
    return backoffDelay(this.failures - 1, { initialMs: this.opts.minBackoffMs, maxMs: this.opts.maxBackoffMs });
  }

  private sleep(ms: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done(): void {
        clearTimeout(t);
        resolve();
      }
      this.wake = () => {
        this.wake = undefined;
        done();
      };
    });
  }
}
