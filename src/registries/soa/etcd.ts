// The etcd SOA registry: Dubbo-layout provider keys under a root, read with one prefix
// watch. A session lists the prefix (paged, at one revision), then watches from the next
// revision; when the session fails the last known providers stay, the state says why, and
// a new session starts after a capped, jittered backoff. Providers leave only when etcd
// deletes their keys (a delete or an expired lease), never because a connection dropped.
import { backoffDelay } from '../../shared/backoff.ts';
import { createHash } from 'node:crypto';
import { Etcd3, type IKeyValue, type IRangeResponse, isRecoverableError, Range, type Watcher } from 'etcd3';
import { clientOptions } from '../../shared/etcd.ts';
import { normalizeRoot } from '../../shared/paths.ts';
import { Observable } from 'rxjs';
import { canonicalJson } from '../../model/hash.ts';
import type { Registry } from '../../model/registry.ts';
import type { RegistryState, Rejection } from '../../model/types.ts';
import { logger } from '../../shared/log.ts';
import { SoaMapper } from './mapping.ts';
import { parseProviderKey, type Provider, ProviderError } from './provider.ts';
import { applyAppLevelKey, AppLevelTree, appLevelInput, type AppLevelPaths, instanceProviders, isAppLevelKey } from './instances.ts';
import { registryEvents as events, soaConnected as connectedGauge, soaMalformed as malformedTotal, soaProviders as providersGauge, soaRejected as rejectedGauge } from '../metrics.ts';

export interface EtcdRegistryOptions {
  /** `host:port` (or `http://host:port`) of each etcd member. */
  readonly endpoints: readonly string[];
  /** Root of the Dubbo layout, e.g. /dubbo. */
  readonly root: string;
  /** Where application-level instances are registered (Dubbo's default /services). */
  readonly services?: string;
  /** Namespace of the services (default "default"). */
  readonly namespace?: string;
  /** DNS zone of interface and application names (default rpc.cluster.local). */
  readonly zone?: string;
  /** First retry delay after a failed session (default 200 ms); doubles per failure. */
  readonly backoffInitialMs?: number;
  /** Longest retry delay (default 5 s). Delays are jittered between half and all of it. */
  readonly backoffMaxMs?: number;
  /** Deadline of one list request (default 5 s). */
  readonly requestTimeoutMs?: number;
  /** Keys per list page (default 1000). */
  readonly pageSize?: number;
  /** Least time between two emitted states under steady churn (default 20 ms; more when a state is costly to build). */
  readonly minIntervalMs?: number;
}

const log = logger('registry.etcd');

/** Keys longer than this are remembered by hash only; they are malformed anyway. */
const MAX_IDENTITY_BYTES = 16 * 1024;
const MAX_SHOWN_KEY = 300;

/** Reads Dubbo-layout providers from etcd. */
export class EtcdRegistry implements Registry {
  readonly id: string;
  readonly states: Observable<RegistryState>;

  constructor(opts: EtcdRegistryOptions) {
    if (opts.endpoints.length === 0) throw new Error('etcd registry: at least one endpoint is needed');
    const root = normalizeRoot(opts.root);
    this.id = `etcd://${opts.endpoints.map(stripScheme).join(',')}${root}`;
    const settings: Settings = {
      id: this.id,
      endpoints: opts.endpoints,
      root,
      app: { root, services: normalizeRoot(opts.services ?? '/services') },
      namespace: opts.namespace ?? 'default',
      ...(opts.zone ? { zone: opts.zone } : {}),
      backoffInitialMs: opts.backoffInitialMs ?? 200,
      backoffMaxMs: opts.backoffMaxMs ?? 5000,
      requestTimeoutMs: opts.requestTimeoutMs ?? 5000,
      pageSize: opts.pageSize ?? 1000,
      minIntervalMs: opts.minIntervalMs ?? 20,
    };
    this.states = new Observable<RegistryState>((subscriber) => {
      const w = new EtcdWatch(settings, (s) => subscriber.next(s));
      w.start();
      return () => w.close();
    });
  }
}

interface Settings {
  readonly id: string;
  readonly endpoints: readonly string[];
  readonly root: string;
  readonly app: AppLevelPaths;
  readonly namespace: string;
  readonly zone?: string;
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
  readonly requestTimeoutMs: number;
  readonly pageSize: number;
  readonly minIntervalMs: number;
}

/** What one key under the root is to us. Keys that are not providers (consumers, ...) are not kept. */
type Entry = { readonly provider: Provider } | { readonly rejection: Rejection };

/** The life of one subscription's watch. */
type Phase = 'idle' | 'listing' | 'watching' | 'backoff' | 'closed';

class EtcdWatch {
  private readonly s: Settings;
  private readonly emit: (s: RegistryState) => void;
  private readonly prefix: string;
  private phase: Phase = 'idle';
  /** Identity (see keyIdentity) → provider or rejection. */
  private entries = new Map<string, Entry>();
  /** Application-level instances, mappings and metadata (keys with their values). */
  private app = new AppLevelTree();
  private synced = false;
  private error: string | undefined;
  /** Bumped per session; callbacks of an older session are ignored. */
  private session = 0;
  private client: Etcd3 | undefined;
  private watcher: Watcher | undefined;
  private servicesWatcher: Watcher | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private publishTimer: { readonly cancel: () => void } | undefined;
  private failures = 0;
  private watchingSince = 0;
  private lastPublishAt = 0;
  /** How long the last state took to build, in ms. */
  private lastPublishCost = 0;
  private dirty = true;
  private lastSynced: boolean | undefined;
  private lastError: string | undefined;
  /** Mapping rejections (conflicts) already logged, as canonical JSON. */
  private loggedConflicts = new Set<string>();
  /** null until the first state is reported, so the first sync is logged too. */
  private lastLoggedError: string | undefined | null = null;
  /** Remembers the last mapping: a change re-maps only the applications it touches. */
  private readonly mapper: SoaMapper;

  constructor(s: Settings, emit: (s: RegistryState) => void) {
    this.s = s;
    this.emit = emit;
    this.prefix = s.root === '/' ? '/' : `${s.root}/`;
    this.mapper = new SoaMapper({ registry: s.id, namespace: s.namespace, ...(s.zone ? { zone: s.zone } : {}) });
  }

  start(): void {
    connectedGauge.set({ registry: this.s.id }, 0);
    void this.runSession();
  }

  close(): void {
    if (this.phase === 'closed') return;
    this.phase = 'closed';
    this.session++;
    clearTimeout(this.retryTimer);
    this.clearPublishTimer();
    this.retryTimer = undefined;
    this.teardown();
    connectedGauge.set({ registry: this.s.id }, 0);
  }

  private count(event: string, n = 1): void {
    events.inc({ registry: this.s.id, event }, n);
  }

  /** List the prefix at one revision, then watch from the next one. Never throws. */
  private async runSession(): Promise<void> {
    if (this.phase === 'closed') return;
    const session = ++this.session;
    this.phase = 'listing';
    const client = new Etcd3(clientOptions(this.s.endpoints, this.s.requestTimeoutMs));
    this.client = client;
    let listing: { revision: string; kvs: IKeyValue[] };
    const appKvs: IKeyValue[] = [];
    // Application-level trees need values; /services is outside the root unless the root is /.
    const appPrefixes = [`${this.s.root}/mapping/`, `${this.s.root}/metadata/`, `${this.s.app.services}/`].map((p) => p.replace(/^\/\//, '/'));
    const ownServices = !`${this.s.app.services}/`.startsWith(this.prefix);
    try {
      // One listing after another: a member that failed one rests, and the next goes elsewhere.
      const onMember = <T>(fn: () => Promise<T>): Promise<T> => retryOnMembers(fn, this.s.endpoints.length);
      listing = await onMember(() => listPrefix(client, this.prefix, this.s.pageSize));
      const rev = listing.revision;
      for (const p of appPrefixes) appKvs.push(...(await onMember(() => listPrefix(client, p, this.s.pageSize, { values: true, revision: rev }))).kvs);
    } catch (err) {
      // The history moved past the root listing's revision before the other prefixes were
      // read at it: list again, as for a canceled watch; nothing is unreachable.
      if (session === this.session) this.fail(err, /compacted/.test(describeError(err)) ? 'list_compacted' : 'list_error', !/compacted/.test(describeError(err)));
      return;
    }
    if (session !== this.session) return;
    this.count('relist');
    this.replaceAll(listing.kvs.filter((kv) => !isAppLevelKey(kv.key.toString('utf8'), this.s.app)));
    const app = new AppLevelTree();
    for (const kv of appKvs) applyAppLevelKey(app, this.s.app, kv.key.toString('utf8'), kv.value.toString('utf8'), (k) => showKey(k, k.length));
    this.app = app;
    this.dirty = true;

    const watcher = client.watch().inRange(Range.prefix(this.prefix)).startRevision(String(BigInt(listing.revision) + 1n)).watcher();
    this.watcher = watcher;
    watcher.on('connected', () => {
      if (session !== this.session) return;
      this.phase = 'watching';
      this.watchingSince = Date.now();
      this.synced = true;
      this.error = undefined;
      connectedGauge.set({ registry: this.s.id }, 1);
      this.schedulePublish(true);
    });
    const onData = (res: { events: { type: string; kv: IKeyValue }[] }): void => {
      if (session !== this.session) return;
      let changed = false;
      for (const ev of res.events) {
        const key = ev.kv.key.toString('utf8');
        if (isAppLevelKey(key, this.s.app)) {
          if (applyAppLevelKey(this.app, this.s.app, key, ev.type === 'Delete' ? undefined : ev.kv.value.toString('utf8'), (k) => showKey(k, k.length))) {
            this.dirty = true;
            changed = true;
          }
        } else changed = (ev.type === 'Delete' ? this.remove(ev.kv.key) : this.put(ev.kv.key)) || changed;
      }
      if (changed) this.schedulePublish();
    };
    watcher.on('data', onData);
    if (ownServices) {
      const services = client.watch().prefix(`${this.s.app.services}/`).startRevision(String(BigInt(listing.revision) + 1n)).watcher();
      this.servicesWatcher = services;
      services.on('data', onData);
      services.on('disconnected', (err: Error) => {
        if (session === this.session) this.fail(err, 'watch_error');
      });
      services.on('error', (err: Error) => {
        if (session === this.session) this.fail(err, 'watch_canceled', false);
      });
    }
    watcher.on('disconnected', (err: Error) => {
      if (session === this.session) this.fail(err, 'watch_error');
    });
    // A cancellation from etcd (its history compacted past our revision, or the watch refused):
    // nothing is lost by listing again, and the connection itself is fine.
    watcher.on('error', (err: Error) => {
      if (session === this.session) this.fail(err, 'watch_canceled', false);
    });
  }

  /** Ends the session; keeps every provider; retries after a backoff. */
  private fail(err: unknown, event: string, connectionLost = true): void {
    if (this.phase === 'closed') return;
    this.count(event);
    this.session++;
    this.teardown();
    connectedGauge.set({ registry: this.s.id }, 0);
    // The first cause names the outage; later retries fail for the same reason in other words,
    // and a state per retry would be noise.
    if (connectionLost && !this.error) this.error = `cannot reach etcd at ${this.s.endpoints.map(stripScheme).join(',')}: ${describeError(err)}`;
    else log.info('etcd watch canceled; listing again', { registry: this.s.id, reason: describeError(err) });
    // A session that stayed up a while starts the backoff over.
    if (this.watchingSince && Date.now() - this.watchingSince > this.s.backoffMaxMs) this.failures = 0;
    this.watchingSince = 0;
    const delay = backoffDelay(this.failures++, { initialMs: this.s.backoffInitialMs, maxMs: this.s.backoffMaxMs });
    this.phase = 'backoff';
    log.debug('etcd session failed; retrying', { registry: this.s.id, event, delayMs: delay, err: describeError(err) });
    this.schedulePublish(true);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.runSession();
    }, delay);
  }

  /** Drops the watcher and the client of the current session, if any. */
  private teardown(): void {
    const watchers = [this.watcher, this.servicesWatcher];
    const client = this.client;
    this.watcher = this.servicesWatcher = this.client = undefined;
    for (const watcher of watchers) {
      if (!watcher) continue;
      // Keep an error listener: a late cancellation must not become an unhandled 'error' event.
      watcher.removeAllListeners();
      watcher.on('error', () => undefined);
      void watcher.cancel().catch(() => undefined);
    }
    client?.close();
  }

  /** A complete listing replaces what we knew: entries of unchanged keys are kept as they are. */
  private replaceAll(kvs: readonly IKeyValue[]): void {
    const next = new Map<string, Entry>();
    const seen = new Set<string>();
    for (const kv of kvs) {
      const id = keyIdentity(kv.key);
      seen.add(id);
      const prev = this.entries.get(id);
      if (prev) next.set(id, prev);
      else {
        const e = this.parse(kv.key);
        if (e) next.set(id, e);
      }
    }
    const changed = next.size !== this.entries.size || [...this.entries.keys()].some((k) => !next.has(k));
    this.entries = next;
    if (changed) this.dirty = true;
  }

  /** Applies a put; true when the model may have changed. */
  private put(key: Buffer): boolean {
    this.count('put');
    const id = keyIdentity(key);
    if (this.entries.has(id)) return false; // a provider is all in its key: a re-put changes nothing
    const e = this.parse(key);
    if (!e) return false;
    this.entries.set(id, e);
    this.dirty = true;
    return true;
  }

  private remove(key: Buffer): boolean {
    this.count('delete');
    const existed = this.entries.delete(keyIdentity(key));
    if (existed) this.dirty = true;
    return existed;
  }

  /** Parses a key new to us; a malformed one is counted and logged here, once. */
  private parse(raw: Buffer): Entry | undefined {
    let key: string;
    try {
      key = new TextDecoder('utf-8', { fatal: true }).decode(raw);
    } catch {
      return this.reject(`${showKey(raw.toString('utf8'), raw.length)} (hex ${raw.subarray(0, 32).toString('hex')})`, 'key', 'key is not UTF-8 text');
    }
    // Keys with more levels whose second one is not "providers" are other Dubbo data sharing
    // the root (metadata reports, config-center items): not providers, so not malformed ones.
    const rest = key.startsWith(this.prefix) ? key.slice(this.prefix.length).split('/', 3) : [];
    if (rest.length === 3 && rest[1] !== 'providers') return undefined;
    try {
      const provider = parseProviderKey(key, this.s.root);
      return provider ? { provider } : undefined;
    } catch (err) {
      if (err instanceof ProviderError) return this.reject(showKey(key, raw.length), err.field, err.message);
      return this.reject(showKey(key, raw.length), 'key', `cannot parse: ${describeError(err)}`);
    }
  }

  private reject(source: string, field: string, reason: string): Entry {
    const rejection: Rejection = { source, kind: 'provider', field, reason };
    malformedTotal.inc({ registry: this.s.id });
    log.warn('provider key rejected', { registry: this.s.id, key: source, field, reason });
    return { rejection };
  }

  /** Emits soon: merges the events of one burst, and under churn at most once per minIntervalMs. */
  private schedulePublish(statusChanged = false): void {
    if (this.phase === 'closed') return;
    if (statusChanged) {
      // Connection state is news of its own: report it without waiting for the throttle.
      this.clearPublishTimer();
      this.publish();
      return;
    }
    if (this.publishTimer) return;
    // Mapping costs time proportional to the registry; under churn, leave at least twice
    // that between two states so a large registry batches changes instead of falling behind.
    const wait = this.lastPublishAt + Math.max(this.s.minIntervalMs, 2 * this.lastPublishCost) - Date.now();
    const fire = (): void => {
      this.publishTimer = undefined;
      this.publish();
    };
    if (wait > 0) {
      const t = setTimeout(fire, wait);
      this.publishTimer = { cancel: () => clearTimeout(t) };
    } else {
      const t = setImmediate(fire);
      this.publishTimer = { cancel: () => clearImmediate(t) };
    }
  }

  private clearPublishTimer(): void {
    this.publishTimer?.cancel();
    this.publishTimer = undefined;
  }

  /** Emits the complete state if anything in it changed since the last emission. */
  private publish(): void {
    if (this.phase === 'closed') return;
    if (!this.dirty && this.synced === this.lastSynced && this.error === this.lastError) {
      this.count('unchanged');
      return;
    }
    this.dirty = false;
    this.lastSynced = this.synced;
    this.lastError = this.error;
    this.lastPublishAt = Date.now();
    const providers: Provider[] = [];
    const rejections: Rejection[] = [];
    for (const e of this.entries.values()) {
      if ('provider' in e) providers.push(e.provider);
      else rejections.push(e.rejection);
    }
    const { input, rejections: appRejections } = appLevelInput(this.app, providers, this.s.app);
    const appLevel = instanceProviders(input);
    rejections.push(...appRejections);
    rejections.sort((a, b) => (a.source < b.source ? -1 : a.source > b.source ? 1 : 0));
    const model = this.mapper.map(appLevel.providers.length ? [...providers, ...appLevel.providers] : providers);
    const warnings = [...appLevel.warnings, ...model.warnings];
    const state: RegistryState = {
      id: this.s.id,
      synced: this.synced,
      ...(this.error ? { error: this.error } : {}),
      services: model.services,
      endpoints: model.endpoints,
      workloads: [],
      rejections: [...rejections, ...model.rejections],
      ...(warnings.length ? { warnings } : {}),
    };
    this.report(state, providers.length, model.rejections);
    this.count('reload');
    this.lastPublishCost = Date.now() - this.lastPublishAt;
    this.emit(state);
  }

  /** Metrics, and logs of what is new: conflicts once while they last, and the source's health on change. */
  private report(state: RegistryState, providers: number, conflicts: readonly Rejection[]): void {
    providersGauge.set({ registry: this.s.id }, providers);
    rejectedGauge.set({ registry: this.s.id }, state.rejections.length);
    const current = new Set<string>();
    for (const r of conflicts) {
      const k = canonicalJson(r);
      current.add(k);
      if (!this.loggedConflicts.has(k)) log.warn('provider not served', { registry: this.s.id, key: r.source, field: r.field, reason: r.reason });
    }
    this.loggedConflicts = current;
    if (state.error !== this.lastLoggedError) {
      if (state.error) {
        log.warn(state.synced ? 'etcd lost; serving the last known providers' : 'etcd unreachable; not synced yet', {
          registry: this.s.id,
          error: state.error,
          providers,
        });
      } else {
        log.info('registry synced', { registry: this.s.id, services: state.services.length, providers, rejections: state.rejections.length });
      }
      this.lastLoggedError = state.error;
    }
  }
}

/** Every key under the prefix at one revision, in pages (a large registry exceeds one gRPC message). */
async function listPrefix(client: Etcd3, prefix: string, pageSize: number, opts: { values?: boolean; revision?: string } = {}): Promise<{ revision: string; kvs: IKeyValue[] }> {
  const range = Range.prefix(prefix);
  const kvs: IKeyValue[] = [];
  let start = range.start;
  let revision: string | undefined = opts.revision;
  while (true) {
    const res: IRangeResponse = await client.kv.range({
      key: start,
      range_end: range.end,
      limit: pageSize,
      keys_only: !opts.values,
      ...(revision ? { revision } : {}),
    });
    revision ??= res.header.revision;
    kvs.push(...res.kvs);
    if (!res.more || res.kvs.length === 0) return { revision, kvs };
    start = Buffer.concat([res.kvs[res.kvs.length - 1]!.key, Buffer.from([0])]);
  }
}

/** Runs a request again on a recoverable error while other members may answer (the one that failed rests). */
async function retryOnMembers<T>(fn: () => Promise<T>, members: number): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (i >= members || !(err instanceof Error) || !isRecoverableError(err)) throw err;
    }
  }
}

function stripScheme(endpoint: string): string {
  return endpoint.replace(/^https?:\/\//, '');
}

/** A lossless map key for a raw key; very long keys by hash, to bound memory. */
function keyIdentity(key: Buffer): string {
  return key.length <= MAX_IDENTITY_BYTES ? key.toString('latin1') : `#sha256:${createHash('sha256').update(key).digest('hex')}`;
}

function showKey(key: string, bytes: number): string {
  return key.length > MAX_SHOWN_KEY ? `${key.slice(0, MAX_SHOWN_KEY)}… (${bytes} bytes)` : key;
}

/** One line, without gRPC's resolution notes; bounded. */
export function describeError(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  let msg = e instanceof Error ? e.message : String(err);
  msg = msg.replace(/\s*Resolution note:.*$/s, '').replace(/Last error: (Error: )?/, 'last error: ').replace(/\s+/g, ' ').trim();
  if (!msg) msg = e?.constructor?.name ?? 'unknown error';
  return msg.length > 300 ? `${msg.slice(0, 297)}...` : msg;
}
