// Wires the pipeline: registries → aggregate → debounce → xDS cache → ADS server, plus admin.
import { instanceStatus } from './admin/instances.ts';
import { BehaviorSubject, combineLatest, distinctUntilChanged, filter, map, type Observable, startWith, Subject, type Subscription, tap } from 'rxjs';
import { mergeStates } from './model/aggregate.ts';
import { debounceWithMax } from './model/debounce.ts';
import type { Registry } from './model/registry.ts';
import type { RegistryState, Service } from './model/types.ts';
import { ModelSnapshot } from './model/snapshot.ts';
import { type Generation, XdsCache } from './xds/cache.ts';
import { AdsServer } from './xds/server/ads.ts';
import type { ResourceSnapshot, SnapshotSource } from './xds/server/types.ts';
import { AdminServer } from './admin/server.ts';
import { DnsService, type DnsServiceOptions, EtcdRecordStore, EtcdVipStore, parseEtcdStoreUrl, RecordsApiServer, recordsApiStore, type RecordsApiFlags } from './dns/index.ts';
import { logger } from './shared/log.ts';
import { metrics } from './shared/metrics.ts';
import { MemoryReturner } from './memory.ts';

const log = logger('server');
const snapshotsBuilt = metrics.counter('isthmus_snapshots_total', 'xDS snapshots built from the model.');
const buildFailures = metrics.counter('isthmus_snapshot_build_failures_total', 'Models that could not be turned into xDS.');
const buildTime = metrics.histogram('isthmus_snapshot_build_seconds', 'Time to turn a model snapshot into xDS resources.');
const publishWaits = metrics.counter('isthmus_dns_publish_waits_total', 'Waits for sidecars to ACK new VIPs before DNS publishes them, by result.');
const modelUpdates = metrics.counter('isthmus_registry_updates_total', 'Registry states received, before debouncing.');

export interface IsthmusOptions {
  readonly registries: readonly Registry[];
  readonly xdsAddress: string;
  readonly adminAddress: string;
  readonly debounceQuietMs: number;
  readonly debounceMaxMs: number;
  /** Bytes of xDS responses in flight across all proxies before further ones wait. */
  readonly xdsMaxInflightBytes?: number;
  /** Bytes of xDS requests received and not yet handled before streams stop being read. */
  readonly xdsIntakeLimitBytes?: number;
  /** Ping a proxy connection silent this long (0: never); see AdsServerOptions. */
  readonly xdsKeepaliveMs?: number;
  /** How long to wait for every registry to sync before serving what is there. */
  readonly syncTimeoutMs: number;
  /** Return freed heap pages to the OS when quiet after growth (default on); see MemoryReturner. */
  readonly memoryReturn?: boolean;
  /** DNS for VIPs and interface names; off when absent. */
  readonly dns?: Omit<DnsServiceOptions, 'beforePublish' | 'stores' | 'vipStore'> & {
    /** Longest wait for sidecars to ACK new VIPs before their names are published. */
    readonly publishTimeoutMs: number;
    /** etcd://HOST:PORT[,HOST:PORT]/PREFIX: also write the zone for CoreDNS's etcd plugin. */
    readonly storeUrl?: string;
    /** etcd://HOST:PORT[,HOST:PORT][/KEY]: keep VIPs in etcd (shared by replicas) instead of the file. */
    readonly vipStoreUrl?: string;
    /** The HTTPS records API for records operators manage by hand. */
    readonly recordsApi?: RecordsApiFlags & { readonly file: string };
  };
}

export const DEFAULTS = {
  xdsAddress: '127.0.0.1:15010',
  adminAddress: '127.0.0.1:15014',
  debounceQuietMs: 100,
  debounceMaxMs: 10_000,
  syncTimeoutMs: 10_000,
  xdsKeepaliveMs: 30_000,
} as const;

/** etcd://HOST:PORT[,HOST:PORT][/KEY] → the etcd VIP store's options. */
function vipStoreOptions(url: string): { endpoints: string[]; key?: string } {
  const m = /^etcd:\/\/([^/]+)(\/.*)?$/.exec(url);
  if (!m) throw new Error(`not an etcd URL (etcd://HOST:PORT[,HOST:PORT][/KEY]): ${url}`);
  return { endpoints: m[1]!.split(','), ...(m[2] && m[2] !== '/' ? { key: m[2] } : {}) };
}

export class Isthmus implements SnapshotSource {
  readonly cache = new XdsCache();
  readonly ads: AdsServer;
  readonly admin: AdminServer;
  private readonly opts: IsthmusOptions;
  private readonly generations = new BehaviorSubject<Generation | undefined>(undefined);
  readonly snapshots: Observable<ResourceSnapshot>;
  private latestModel?: ModelSnapshot;
  private states: readonly RegistryState[] = [];
  private accepting = false;
  private readonly accepted = new Subject<readonly RegistryState[]>();
  private readonly modelSubject = new BehaviorSubject<ModelSnapshot | undefined>(undefined);
  /** The merged model after debouncing: what xDS (and DNS) are built from. */
  readonly models: Observable<ModelSnapshot> = this.modelSubject.pipe(filter((m): m is ModelSnapshot => m !== undefined));
  private subs: Subscription[] = [];
  private syncTimer?: NodeJS.Timeout;
  readonly dns?: DnsService;
  private recordStore?: EtcdRecordStore;
  private recordsApi?: RecordsApiServer;
  private built?: { version: string; vips: string };
  private publishedNames = new Set<string>();
  private lastOffered?: { model: ModelSnapshot; vips: ReadonlyMap<string, string> };
  private lastXds?: { model: ModelSnapshot; vips: ReadonlyMap<string, string> };
  private readonly retiring = new Map<string, { svc: Service; vips: Map<string, string>; until: number }>();
  private retireTimer?: NodeJS.Timeout;
  private memoryReturner?: MemoryReturner;
  xdsPort = 0;
  adminPort = 0;

  constructor(opts: IsthmusOptions) {
    this.opts = opts;
    this.snapshots = this.generations.pipe(filter((g): g is Generation => g !== undefined));
    this.ads = new AdsServer(this, {
      ...(opts.xdsMaxInflightBytes ? { maxInflightBytes: opts.xdsMaxInflightBytes } : {}),
      ...(opts.xdsIntakeLimitBytes ? { intakeLimitBytes: opts.xdsIntakeLimitBytes } : {}),
      ...(opts.xdsKeepaliveMs !== undefined ? { keepaliveMs: opts.xdsKeepaliveMs } : {}),
    });
    this.admin = new AdminServer({
      ready: () => this.readiness(),
      model: () => this.model,
      problems: () => this.generations.value?.problems ?? [],
      syncz: () => this.ads.status(),
      configDump: (id) => this.ads.configDump(id),
      dnsz: () => this.dns?.status(),
      instances: () => instanceStatus(this.model, this.ads.proxies().map(({ proxy, peer }) => ({ ...proxy, peer }))),
    });
    if (opts.dns) {
      const d = opts.dns;
      if (d.storeUrl) {
        const { endpoints, prefix } = parseEtcdStoreUrl(d.storeUrl);
        this.recordStore = new EtcdRecordStore({ endpoints, prefix, zone: d.zone });
      }
      const vipStore = d.vipStoreUrl ? new EtcdVipStore(vipStoreOptions(d.vipStoreUrl)) : undefined;
      this.dns = new DnsService({
        ...d,
        ...(this.recordStore ? { stores: [this.recordStore] } : {}),
        ...(vipStore ? { vipStore } : {}),
        beforePublish: (m, vips) => this.publish(m, vips),
      });
      if (d.recordsApi) {
        const dns = this.dns;
        this.recordsApi = RecordsApiServer.fromFiles(d.recordsApi, {
          zone: d.zone,
          store: recordsApiStore({ ...(d.storeUrl ? { dnsStore: d.storeUrl } : {}), zone: d.zone, file: d.recordsApi.file }),
          reservedNames: () => dns.modelNames(),
          publish: (r) => dns.setManualRecords(r),
        });
      }
    }
  }

  current(): ResourceSnapshot | undefined {
    return this.generations.value;
  }

  /** The served model; before the first push, the registries as they are now. */
  get model(): ModelSnapshot {
    return this.latestModel ?? mergeStates(this.states);
  }

  async start(): Promise<void> {
    this.adminPort = await this.admin.listen(this.opts.adminAddress);
    if (this.opts.memoryReturn !== false) this.memoryReturner = new MemoryReturner();
    // Debounce registry states before merging them: a burst of registry events costs one
    // merge and one build, not one per event.
    this.subs.push(
      this.accepted
        .pipe(
          debounceWithMax(this.opts.debounceQuietMs, this.opts.debounceMaxMs),
          map((states) => mergeStates(states, this.latestModel)),
          tap((m) => {
            this.latestModel = m;
            this.modelSubject.next(m);
          }),
          // With DNS on, VIPs are allocated first and the DNS service drives xDS (publish()).
          filter(() => !this.dns),
          distinctUntilChanged((a, b) => a.version === b.version),
          map((m) => this.build(m, new Map())),
          filter((g): g is Generation => g !== undefined),
        )
        .subscribe((g) => this.generations.next(g)),
    );
    const empty = (id: string): RegistryState => ({ id, synced: false, services: [], endpoints: [], workloads: [], rejections: [] });
    this.subs.push(
      combineLatest(this.opts.registries.map((r) => r.states.pipe(startWith(empty(r.id))))).subscribe({
        next: (states) => this.onStates(states),
        error: (e) => log.error('registry pipeline failed', { error: e }),
      }),
    );
    this.syncTimer = setTimeout(() => {
      if (this.accepting) return;
      const waiting = this.states.filter((r) => !r.synced).map((r) => r.id);
      log.warn('serving before every registry synced', { waiting, afterMs: this.opts.syncTimeoutMs });
      this.accepting = true;
      this.accepted.next(this.states);
    }, this.opts.syncTimeoutMs);
    this.xdsPort = await this.ads.listen(this.opts.xdsAddress);
    await this.dns?.start(this.models);
    await this.recordsApi?.start();
    log.info('isthmus serving', { xds: `${this.opts.xdsAddress.replace(/:\d+$/, '')}:${this.xdsPort}`, admin: this.adminPort, registries: this.opts.registries.map((r) => r.id) });
  }

  private onStates(states: readonly RegistryState[]): void {
    this.states = states;
    modelUpdates.inc();
    // Serving an empty or partial model before the registries have synced would make
    // connected proxies drop what they have; wait for every registry (bounded).
    if (!this.accepting && states.every((r) => r.synced)) {
      this.accepting = true;
      clearTimeout(this.syncTimer);
    }
    if (this.accepting) this.accepted.next(states);
  }

  /**
   * Ordered publishing: route the model's VIPs in xDS, then, if names were added, wait
   * (bounded) for every sidecar to ACK before DNS answers for them.
   */
  private async publish(m: ModelSnapshot, vips: ReadonlyMap<string, string>): Promise<void> {
    this.lastOffered = { model: m, vips };
    const [xdsModel, xdsVips] = this.withRetiring(m, vips);
    const vipsKey = [...xdsVips].map(([n, v]) => `${n}=${v}`).sort().join(';');
    if (this.built?.version !== xdsModel.version || this.built.vips !== vipsKey) {
      const g = this.build(xdsModel, xdsVips);
      if (!g) return;
      this.built = { version: xdsModel.version, vips: vipsKey };
      this.generations.next(g);
    }
    const added = [...vips.keys()].filter((n) => !this.publishedNames.has(n));
    this.publishedNames = new Set(vips.keys());
    if (!added.length || !this.opts.dns) return;
    const seq = this.generations.value!.seq;
    const start = performance.now();
    const r = await this.ads.whenSynced(seq, this.opts.dns.publishTimeoutMs);
    publishWaits.inc({ result: r.synced ? 'acked' : 'timeout' });
    if (!r.synced) log.warn('publishing DNS names before every sidecar ACKed their VIPs', { names: added.slice(0, 10), lagging: r.lagging.slice(0, 10), waitedMs: Math.round(performance.now() - start) });
  }

  /**
   * Removal runs the other way round: a service gone from the model leaves DNS at once but
   * keeps its routes (and VIPs) in xDS for the record TTL, so clients that still hold the
   * cached address are routed until it expires.
   */
  private withRetiring(m: ModelSnapshot, vips: ReadonlyMap<string, string>): [ModelSnapshot, ReadonlyMap<string, string>] {
    const now = Date.now();
    const ttlMs = (this.opts.dns?.ttl ?? 0) * 1000;
    const prev = this.lastXds;
    if (prev && ttlMs > 0) {
      for (const [host, svc] of prev.model.services) {
        if (m.services.has(host) || this.retiring.has(host)) continue;
        const names = [host, ...svc.interfaces.map((i) => i.hostname)];
        const retiredVips = new Map(names.filter((n) => prev.vips.has(n)).map((n) => [n, prev.vips.get(n)!] as const));
        this.retiring.set(host, { svc, vips: retiredVips, until: now + ttlMs });
      }
    }
    for (const [host, r] of this.retiring) if (m.services.has(host) || r.until <= now) this.retiring.delete(host);
    clearTimeout(this.retireTimer);
    let out: [ModelSnapshot, ReadonlyMap<string, string>] = [m, vips];
    if (this.retiring.size) {
      const services = new Map(m.services);
      const endpoints = new Map([...m.endpoints].map(([h, e]) => [h, [...e]]));
      const allVips = new Map(vips);
      for (const [host, r] of this.retiring) {
        // The name stays routable, but to no one: a deregistered instance gets no more calls,
        // and a client with a cached answer fails fast instead of hanging on an unowned VIP.
        services.set(host, r.svc);
        endpoints.set(host, []);
        for (const [n, v] of r.vips) if (!allVips.has(n)) allVips.set(n, v);
      }
      const model = new ModelSnapshot({
        services,
        endpoints,
        registries: [...m.registries],
        conflicts: [...m.conflicts],
        rules: { virtualServices: m.virtualServices, destinationRules: m.destinationRules, rejections: m.ruleRejections, warnings: m.ruleWarnings },
      });
      out = [model, allVips];
      const next = Math.min(...[...this.retiring.values()].map((r) => r.until));
      this.retireTimer = setTimeout(() => {
        if (this.lastOffered) void this.publish(this.lastOffered.model, this.lastOffered.vips);
      }, Math.max(0, next - now) + 10);
      this.retireTimer.unref();
    }
    this.lastXds = { model: m, vips };
    return out;
  }

  /** A model that cannot be turned into xDS is logged and skipped; proxies keep the last good one. */
  private build(m: ModelSnapshot, vips: ReadonlyMap<string, string>): Generation | undefined {
    const start = performance.now();
    let g: Generation;
    try {
      g = this.cache.update(m, vips);
    } catch (e) {
      buildFailures.inc();
      log.error('cannot build xDS from the model; keeping the previous snapshot', { version: m.version, error: e });
      return undefined;
    }
    const seconds = (performance.now() - start) / 1000;
    snapshotsBuilt.inc();
    buildTime.observe({}, seconds);
    log.info('snapshot built', { seq: g.seq, version: m.version, services: m.services.size, ms: Math.round(seconds * 1000), changed: Object.fromEntries([...g.changed].map(([t, s]) => [t.split('.').pop(), s.size])) });
    return g;
  }

  private readiness(): { ready: boolean; reason?: string } {
    if (this.generations.value) return { ready: true };
    const waiting = this.states.filter((r) => !r.synced).map((r) => `${r.id}${r.error ? ` (${r.error})` : ''}`);
    return { ready: false, reason: waiting.length ? `waiting for registries to sync: ${waiting.join(', ')}` : 'building the first snapshot' };
  }

  async close(): Promise<void> {
    this.memoryReturner?.stop();
    clearTimeout(this.syncTimer);
    clearTimeout(this.retireTimer);
    for (const s of this.subs) s.unsubscribe();
    this.subs = [];
    // Proxies are told the server is going (UNAVAILABLE), not cut off: they reconnect at once.
    await this.ads.close();
    await this.recordsApi?.close();
    await this.dns?.close();
    await this.recordStore?.close();
    await this.admin.close();
  }
}
