// The ZooKeeper SOA registry: Dubbo-layout providers (`/<root>/<interface>/providers/<url>`,
// ephemeral nodes) watched with re-armed child watches, turned into services and endpoints.
//
// Faults are handled the ZooKeeper way:
//  - unreachable at start: not synced, `error` set, new connection attempts with backoff;
//  - connection lost: the session may resume, so the last known providers are kept (error
//    set) and the client reconnects; the server replays missed watch events on resume;
//  - session expired: a new session reads everything again and the difference is applied
//    as one new state (no flap through empty);
// so a provider disappears only when ZooKeeper deletes its node (deletion, or the end of
// its owner's session).
import { backoffDelay } from '../../shared/backoff.ts';
import { createHash } from 'node:crypto';
import { Observable } from 'rxjs';
import type { Registry } from '../../model/registry.ts';
import type { Rejection, RegistryState } from '../../model/types.ts';
import { logger } from '../../shared/log.ts';
import { SoaMapper } from './mapping.ts';
import { parseProviderKey, ProviderError, type Provider } from './provider.ts';
import { normalizeRoot } from '../../shared/paths.ts';
import { ZK_CODES, ZkClient, ZkError, type ZkWatcher } from './zk-client.ts';
import { AppLevelTree, appLevelInput, instanceProviders } from './instances.ts';
import { ZkAppLevel, type ZkReads } from './zk-app-level.ts';
import { registryEvents as events, registryRejections as rejectionsGauge, soaConnected as connectedGauge, soaMalformed as malformedTotal, soaProviders as providersGauge, soaRejected as rejectedGauge } from '../metrics.ts';

export interface ZkRegistryOptions {
  /** host:port[,host:port] */
  readonly connect: string;
  /** Root of the Dubbo layout, e.g. /dubbo. */
  readonly root: string;
  /** Where application-level instances are registered (Dubbo's default /services). */
  readonly services?: string;
  readonly namespace?: string;
  readonly zone?: string;
  /** Requested session timeout (the server bounds it). Default 30 s. */
  readonly sessionTimeoutMs?: number;
  /** How long one connection attempt may take before backing off. Default 3 s. */
  readonly connectTimeoutMs?: number;
  /** Backoff between connection attempts: initial and cap. Defaults 500 ms and 10 s. */
  readonly retryInitialMs?: number;
  readonly retryMaxMs?: number;
  /** Quiet time to gather a burst of watch events into one state. Default 20 ms. */
  readonly settleMs?: number;
}

const log = logger('registry.zk');
// Shared with the etcd registry (same names and meaning).

/** Longest key kept verbatim in a rejection or a log line. */
const MAX_SHOWN_KEY = 512;

export class ZkRegistry implements Registry {
  readonly id: string;
  readonly states: Observable<RegistryState>;

  constructor(opts: ZkRegistryOptions) {
    const root = normalizeRoot(opts.root);
    this.id = `zk://${opts.connect}${root}`;
    const settings: Settings = {
      id: this.id,
      connect: opts.connect,
      root,
      services: normalizeRoot(opts.services ?? '/services'),
      mapping: { registry: this.id, ...(opts.namespace ? { namespace: opts.namespace } : {}), ...(opts.zone ? { zone: opts.zone } : {}) },
      sessionTimeoutMs: opts.sessionTimeoutMs ?? 30_000,
      connectTimeoutMs: opts.connectTimeoutMs ?? 3000,
      retryInitialMs: opts.retryInitialMs ?? 500,
      retryMaxMs: opts.retryMaxMs ?? 10_000,
      settleMs: opts.settleMs ?? 20,
    };
    this.states = new Observable<RegistryState>((subscriber) => {
      const w = new ZkWatch(settings, (s) => subscriber.next(s));
      w.start();
      return () => w.close();
    });
  }
}

interface Settings {
  readonly id: string;
  readonly connect: string;
  readonly root: string;
  readonly services: string;
  readonly mapping: { registry: string; namespace?: string; zone?: string };
  readonly sessionTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly retryInitialMs: number;
  readonly retryMaxMs: number;
  readonly settleMs: number;
}

/** One provider node, parsed once: a provider or why it is not one. */
type Entry = { readonly provider: Provider } | { readonly rejection: Rejection };

/** Interface name → (child node name → entry). */
type Tree = Map<string, Map<string, Entry>>;

/** One ZooKeeper session and what it has read. */
class Session {
  readonly gen: number;
  readonly client: ZkClient;
  readonly tree: Tree = new Map();
  /** Application-level instances, mappings and metadata. */
  readonly app = new AppLevelTree();
  /** Paths that could not be read for a reason other than the connection. */
  readonly problems = new Map<string, Rejection>();
  readonly watchers = new Map<string, ZkWatcher>();
  readonly running = new Set<string>();
  readonly rerun = new Set<string>();
  pending = 0;
  loaded = false;
  everConnected = false;

  constructor(gen: number, client: ZkClient) {
    this.gen = gen;
    this.client = client;
  }
}

class ZkWatch {
  private readonly s: Settings;
  private readonly emit: (state: RegistryState) => void;
  private session: Session | undefined;
  private gen = 0;
  /** The tree being served: the loaded session's, or the last one loaded before it. */
  private served: Tree = new Map();
  private servedApp = new AppLevelTree();
  private servedProblems = new Map<string, Rejection>();
  private synced = false;
  private error: string | undefined;
  private closed = false;
  private dirty = true;
  private attempt = 0;
  private readonly timers = new Set<NodeJS.Timeout>();
  private publishTimer: NodeJS.Timeout | undefined;
  /** How long the last publish took: the next one waits at least as long (at most half the CPU). */
  private publishCostMs = 0;
  private connectTimer: NodeJS.Timeout | undefined;
  private logged = new Set<string>();
  private lastLoggedError: string | undefined | null = null;
  /** Remembers the last mapping: a change re-maps only the applications it touches. */
  private readonly mapper: SoaMapper;

  constructor(settings: Settings, emit: (state: RegistryState) => void) {
    this.s = settings;
    this.emit = emit;
    this.mapper = new SoaMapper(settings.mapping);
  }

  start(): void {
    this.openSession();
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    clearTimeout(this.publishTimer);
    clearTimeout(this.connectTimer);
    const s = this.session;
    this.session = undefined;
    if (s) void s.client.close();
    connectedGauge.set({ registry: this.s.id }, 0);
  }

  private count(event: string): void {
    events.inc({ registry: this.s.id, event });
  }

  private later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (!this.closed) fn();
    }, ms);
    this.timers.add(t);
  }

  private live(s: Session): boolean {
    return !this.closed && s === this.session;
  }

  private setError(error: string | undefined): void {
    if (error === this.error) return;
    this.error = error;
    this.dirty = true;
    this.schedulePublish();
  }

  // --- sessions ----------------------------------------------------------------------

  private openSession(): void {
    if (this.closed) return;
    const client = new ZkClient(this.s.connect, { sessionTimeoutMs: this.s.sessionTimeoutMs });
    const s = new Session(++this.gen, client);
    this.session = s;
    client.on('connected', () => {
      if (!this.live(s)) return;
      clearTimeout(this.connectTimer);
      connectedGauge.set({ registry: this.s.id }, 1);
      if (!s.everConnected) {
        s.everConnected = true;
        this.count('session');
        log.debug('ZooKeeper session opened', { registry: this.s.id, session: client.sessionId, timeoutMs: client.sessionTimeoutMs });
        this.run(s, 'root', () => this.readRoot(s));
        new ZkAppLevel(this.reads(s), s.app, { root: this.s.root, services: this.s.services }).start();
      } else {
        // Same session: the server re-arms our watches and replays what we missed.
        this.count('reconnect');
        if (s.loaded) this.setError(undefined);
      }
    });
    client.on('disconnected', () => {
      if (!this.live(s)) return;
      connectedGauge.set({ registry: this.s.id }, 0);
      this.count('disconnect');
      this.setError(`connection to ZooKeeper ${this.s.connect} lost; keeping the last known providers while reconnecting`);
    });
    let failed = 0;
    client.on('attemptFailed', () => {
      if (!this.live(s) || s.everConnected) return;
      this.count('connect_failed');
      // Every server tried once (the client goes through them in turn) before saying so.
      if (++failed < this.s.connect.split(',').length) return;
      // Said at once (Isthmus reports it while waiting to sync); the client goes on trying until the deadline.
      this.setError(this.connectError());
    });
    client.on('readTimeout', () => {
      if (this.live(s)) this.count('read_timeout');
    });
    client.on('expired', () => {
      if (!this.live(s)) return;
      this.count('session_expired');
      this.setError('ZooKeeper session expired; reading the registry again in a new session');
      void client.close();
      this.attempt = 0;
      this.openSession();
    });
    client.on('authFailed', () => {
      if (!this.live(s)) return;
      this.count('auth_failed');
      this.setError(`ZooKeeper ${this.s.connect} refused authentication`);
      this.retrySession(s);
    });
    // A new client keeps trying every server; if none answers in time, back off and start over.
    clearTimeout(this.connectTimer);
    this.connectTimer = setTimeout(() => {
      if (!this.live(s) || client.connected || s.everConnected) return;
      this.count('connect_timeout');
      this.setError(this.connectError());
      this.retrySession(s);
    }, this.s.connectTimeoutMs);
    client.connect();
  }

  private connectError(): string {
    const keeping = this.synced ? '; keeping the last known providers' : '';
    return `cannot connect to ZooKeeper ${this.s.connect} (attempt ${this.attempt + 1}); retrying${keeping}`;
  }

  private retrySession(s: Session): void {
    void s.client.close();
    const delay = backoffDelay(this.attempt++, { initialMs: this.s.retryInitialMs, maxMs: this.s.retryMaxMs });
    this.session = undefined;
    this.later(delay, () => this.openSession());
  }

  /** Every read of a session has finished: it becomes the served state. */
  private onLoaded(s: Session): void {
    s.loaded = true;
    this.attempt = 0;
    const changed = !sameKeys(this.served, s.tree) || !sameProblems(this.servedProblems, s.problems);
    this.served = s.tree;
    this.servedApp = s.app;
    this.servedProblems = s.problems;
    // Application-level trees are compared by what they map to, at publish.
    if (changed || !this.synced || s.app.instances.size || s.app.mapping.size) this.dirty = true;
    this.synced = true;
    this.setError(s.client.connected ? undefined : this.error);
    this.schedulePublish();
  }

  // --- reads -------------------------------------------------------------------------

  /** Runs one read per key at a time; a request during a run makes it run once more. */
  private run(s: Session, key: string, fn: () => Promise<void>): void {
    if (!this.live(s)) return;
    if (s.running.has(key)) {
      s.rerun.add(key);
      return;
    }
    s.running.add(key);
    s.pending++;
    void (async () => {
      try {
        do {
          s.rerun.delete(key);
          await fn();
        } while (s.rerun.has(key) && this.live(s));
      } catch (err) {
        log.error('registry read failed', { registry: this.s.id, key, err });
      } finally {
        s.running.delete(key);
        s.pending--;
        if (s.pending === 0 && !s.loaded && this.live(s)) this.onLoaded(s);
      }
    })();
  }

  /** The session's reads, for the application-level trees. */
  private reads(s: Session): ZkReads {
    return {
      client: s.client,
      live: () => this.live(s),
      run: (key, fn) => this.run(s, `a:${key}`, fn),
      watcher: (key, onEvent) => this.watcher(s, `a:${key}`, onEvent),
      request: (fn) => this.request(s, fn),
      problem: (path, err) => this.problem(s, path, err),
      clearProblem: (path) => s.problems.delete(path),
      changed: () => {
        if (s.loaded && this.live(s)) {
          this.dirty = true;
          this.schedulePublish();
        }
      },
      show: showKey,
    };
  }

  private watcher(s: Session, path: string, onEvent: () => void): ZkWatcher {
    let w = s.watchers.get(path);
    if (!w) {
      w = () => {
        if (!this.live(s)) return;
        this.count('watch');
        onEvent();
      };
      s.watchers.set(path, w);
    }
    return w;
  }

  /**
   * A request, retried while the connection is lost (requests wait for the reconnect).
   * Undefined when the session is over; NO_NODE and other ZooKeeper errors are thrown.
   */
  private async request<T>(s: Session, fn: () => Promise<T>): Promise<T | undefined> {
    for (let i = 0; this.live(s); i++) {
      try {
        return await fn();
      } catch (err) {
        if (!(err instanceof ZkError)) throw err;
        if (err.code === ZK_CODES.SESSION_EXPIRED) return undefined;
        if (!err.connectionLoss) throw err;
        await new Promise((r) => setTimeout(r, backoffDelay(i, { initialMs: 100, maxMs: 2000 })).unref());
      }
    }
    return undefined;
  }

  private async readRoot(s: Session): Promise<void> {
    const root = this.s.root;
    const w = this.watcher(s, root, () => this.run(s, 'root', () => this.readRoot(s)));
    let children: string[] | undefined;
    try {
      children = await this.request(s, () => s.client.getChildren(root, w));
    } catch (err) {
      if (err instanceof ZkError && err.code === ZK_CODES.NO_NODE) {
        // No root yet: no providers. Watch for its creation.
        const stat = await this.request(s, () => s.client.exists(root, w)).catch((e: unknown) => this.problem(s, root, e));
        if (stat) s.rerun.add('root');
        children = [];
      } else {
        this.problem(s, root, err);
        this.later(30_000, () => this.run(s, 'root', () => this.readRoot(s)));
        return;
      }
    }
    if (children === undefined || !this.live(s)) return;
    s.problems.delete(root);
    const now = new Set(children);
    for (const iface of [...s.tree.keys()]) if (!now.has(iface)) this.dropInterface(s, iface);
    for (const iface of children) {
      if (this.reserved.has(iface)) continue;
      if (!s.watchers.has(this.ifacePath(iface))) this.run(s, `i:${iface}`, () => this.readInterface(s, iface));
    }
  }

  /** Children of the root that are Dubbo's other trees, not interfaces. */
  private get reserved(): ReadonlySet<string> {
    const own = this.s.root === '/' ? [this.s.services.split('/')[1]!, 'zookeeper'] : [];
    return new Set(['config', 'mapping', 'metadata', ...own]);
  }

  private ifacePath(iface: string): string {
    return this.s.root === '/' ? `/${iface}` : `${this.s.root}/${iface}`;
  }

  private async readInterface(s: Session, iface: string): Promise<void> {
    const path = this.ifacePath(iface);
    const w = this.watcher(s, path, () => this.run(s, `i:${iface}`, () => this.readInterface(s, iface)));
    let children: string[] | undefined;
    try {
      children = await this.request(s, () => s.client.getChildren(path, w));
    } catch (err) {
      if (err instanceof ZkError && err.code === ZK_CODES.NO_NODE) {
        // Deleted: forget it (a re-created one is seen by the root watch).
        s.watchers.delete(path);
        this.dropInterface(s, iface);
        return;
      }
      this.problem(s, path, err);
      this.later(30_000, () => this.run(s, `i:${iface}`, () => this.readInterface(s, iface)));
      return;
    }
    if (children === undefined || !this.live(s)) return;
    s.problems.delete(path);
    // Consumers, configurators and routers share the layout; only providers matter.
    if (children.includes('providers')) this.run(s, `p:${iface}`, () => this.readProviders(s, iface));
    else this.setProviders(s, iface, undefined);
  }

  private async readProviders(s: Session, iface: string): Promise<void> {
    const path = `${this.ifacePath(iface)}/providers`;
    const w = this.watcher(s, path, () => this.run(s, `p:${iface}`, () => this.readProviders(s, iface)));
    let children: string[] | undefined;
    try {
      children = await this.request(s, () => s.client.getChildren(path, w));
    } catch (err) {
      if (err instanceof ZkError && err.code === ZK_CODES.NO_NODE) {
        // The interface node's watch fires too and re-reads it.
        this.setProviders(s, iface, undefined);
        return;
      }
      this.problem(s, path, err);
      this.later(30_000, () => this.run(s, `p:${iface}`, () => this.readProviders(s, iface)));
      return;
    }
    if (children === undefined || !this.live(s)) return;
    s.problems.delete(path);
    const prev = s.tree.get(iface);
    const served = this.served.get(iface);
    const next = new Map<string, Entry>();
    for (const name of children) next.set(name, prev?.get(name) ?? served?.get(name) ?? this.parse(`${path}/${name}`));
    this.setProviders(s, iface, next);
  }

  private dropInterface(s: Session, iface: string): void {
    this.setProviders(s, iface, undefined);
  }

  private setProviders(s: Session, iface: string, next: Map<string, Entry> | undefined): void {
    const prev = s.tree.get(iface);
    if (next && next.size) s.tree.set(iface, next);
    else s.tree.delete(iface);
    if (s.loaded && this.live(s) && !sameEntries(prev, next)) {
      this.dirty = true;
      this.schedulePublish();
    }
  }

  private problem(s: Session, path: string, err: unknown): undefined {
    if (!this.live(s)) return undefined;
    this.count('read_error');
    const reason = err instanceof Error ? err.message : String(err);
    const prev = s.problems.get(path);
    s.problems.set(path, { source: showKey(path), reason: `cannot read: ${reason}` });
    if (s.loaded && prev?.reason !== s.problems.get(path)!.reason) {
      this.dirty = true;
      this.schedulePublish();
    }
    return undefined;
  }

  /** Parses a provider node path; malformed ones become rejections, never exceptions. */
  private parse(key: string): Entry {
    try {
      const provider = parseProviderKey(key, this.s.root);
      if (provider) return { provider };
      return { rejection: { source: showKey(key), kind: 'provider', field: 'key', reason: 'not a provider key' } };
    } catch (err) {
      malformedTotal.inc({ registry: this.s.id });
      const field = err instanceof ProviderError ? err.field : 'key';
      const reason = err instanceof Error ? err.message : String(err);
      return { rejection: { source: showKey(key), kind: 'provider', field, reason } };
    }
  }

  // --- publishing --------------------------------------------------------------------

  private schedulePublish(): void {
    if (this.closed || this.publishTimer) return;
    this.publishTimer = setTimeout(() => {
      this.publishTimer = undefined;
      const t0 = performance.now();
      this.publish();
      this.publishCostMs = performance.now() - t0;
    }, Math.max(this.s.settleMs, Math.min(this.publishCostMs, 1000)));
  }

  private publish(): void {
    if (this.closed || !this.dirty) return;
    // Not connected yet and nothing to say: wait for the first read or the first error.
    if (!this.synced && this.error === undefined) return;
    this.dirty = false;
    const providers: Provider[] = [];
    const malformed: Rejection[] = [];
    for (const entries of this.served.values()) {
      for (const e of entries.values()) {
        if ('provider' in e) providers.push(e.provider);
        else malformed.push(e.rejection);
      }
    }
    const { input, rejections: appRejections } = appLevelInput(this.servedApp, providers, { root: this.s.root, services: this.s.services });
    const appLevel = instanceProviders(input);
    const model = this.mapper.map(appLevel.providers.length ? [...providers, ...appLevel.providers] : providers);
    malformed.push(...appRejections);
    const warnings = [...appLevel.warnings, ...model.warnings];
    const state: RegistryState = {
      id: this.s.id,
      synced: this.synced,
      ...(this.error ? { error: this.error } : {}),
      services: model.services,
      endpoints: model.endpoints,
      workloads: [],
      rejections: [...[...this.servedProblems.values()], ...malformed, ...model.rejections],
      ...(warnings.length ? { warnings } : {}),
    };
    rejectedGauge.set({ registry: this.s.id }, malformed.length + model.rejections.length);
    providersGauge.set({ registry: this.s.id }, providers.length);
    this.count('publish');
    this.report(state);
    this.emit(state);
  }

  /** Logs each distinct rejection once while it lasts, and each change of the error. */
  private report(state: RegistryState): void {
    rejectionsGauge.set({ registry: this.s.id }, state.rejections.length);
    const current = new Set<string>();
    for (const r of state.rejections) {
      const k = `${r.source}\u0000${r.field ?? ''}\u0000${r.reason}`;
      current.add(k);
      if (!this.logged.has(k)) log.warn('provider rejected', { registry: this.s.id, ...r });
    }
    this.logged = current;
    if (state.error !== this.lastLoggedError) {
      if (state.error) log.warn('registry source unavailable; serving the last known state', { registry: this.s.id, synced: state.synced, error: state.error });
      else log.info('registry synced', { registry: this.s.id, services: state.services.length, endpoints: state.endpoints.length, rejections: state.rejections.length });
      this.lastLoggedError = state.error;
    }
  }
}

/** A key as shown in rejections and logs: verbatim up to a bound, else clipped with a hash. */
export function showKey(key: string): string {
  if (key.length <= MAX_SHOWN_KEY) return key;
  const hash = createHash('sha256').update(key).digest('hex').slice(0, 12);
  return `${key.slice(0, MAX_SHOWN_KEY - 64)}… (${Buffer.byteLength(key)} bytes, sha256 ${hash})`;
}

function sameEntries(a: Map<string, Entry> | undefined, b: Map<string, Entry> | undefined): boolean {
  const sa = a?.size ?? 0;
  const sb = b?.size ?? 0;
  if (sa !== sb) return false;
  if (sa === 0) return true;
  for (const k of a!.keys()) if (!b!.has(k)) return false;
  return true;
}

function sameKeys(a: Tree, b: Tree): boolean {
  if (a.size !== b.size) return false;
  for (const [iface, entries] of a) if (!sameEntries(entries, b.get(iface))) return false;
  return true;
}

function sameProblems(a: Map<string, Rejection>, b: Map<string, Rejection>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k)?.reason !== v.reason) return false;
  return true;
}
