// The DNS output: mesh snapshots (the model and its VIPs) → desired records → zone (the
// built-in responder) and → any further record stores (desired → plan → store).
//
// Snapshots are applied one at a time; while one is being applied only the latest of those
// that arrive meanwhile is kept. A new name is published only once the sidecars route it
// (`routed`, bounded by `publishTimeoutMs`): a wait on this side, never a driver of xDS.
// A failing record store does not hold the zone back; it is retried with backoff.
import { BehaviorSubject, filter, type Observable } from 'rxjs';
import { backoffDelay } from '../shared/backoff.ts';
import { logger } from '../shared/log.ts';
import { metrics } from '../shared/metrics.ts';
import type { MeshSnapshot } from '../model/mesh-snapshot.ts';
import { DEFAULT_ZONE } from '../model/naming.ts';
import { emptyPlan, type RecordStore, sync } from './plan.ts';
import { DEFAULT_TTL, desiredRecords, type RecordProblem } from './records.ts';
import { type DnsRecord, recordText, sortRecords } from './rr.ts';
import { DEFAULT_DNS_LISTEN, DnsServer } from './server.ts';
import { Zone } from './zone.ts';

const log = logger('dns');
const recordsGauge = metrics.gauge('isthmus_dns_records', 'Records in the DNS zone Isthmus serves.');
const problemsGauge = metrics.gauge('isthmus_dns_record_problems', 'Model names that get no DNS record (reported in the DNS status).');
const updatesTotal = metrics.counter('isthmus_dns_zone_updates_total', 'New zone versions served by the built-in responder.');
const failuresTotal = metrics.counter('isthmus_dns_update_failures_total', 'Model changes that could not be turned into DNS records, by stage.');
const shadowedGauge = metrics.gauge('isthmus_dns_manual_records_shadowed', 'Manual records (records API) not served because the model now gives records to their name.');
const publishWaits = metrics.counter('isthmus_dns_publish_waits_total', 'Waits for sidecars to ACK new VIPs before DNS publishes them, by result.');
const updateSeconds = metrics.histogram('isthmus_dns_update_seconds', 'Time from a model to its records being served.', [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5]);

export const DNS_DEFAULTS = {
  listen: DEFAULT_DNS_LISTEN,
  zone: DEFAULT_ZONE,
  ttl: DEFAULT_TTL,
} as const;

/** Whether every sidecar routes what the current xDS generation routes; see DnsServiceOptions.routed. */
export interface RoutedResult {
  readonly synced: boolean;
  /** Proxies that had not ACKed when the wait ended. */
  readonly lagging: readonly string[];
  /** Why the wait could not succeed, when it is not about lagging proxies. */
  readonly reason?: string;
}

export interface DnsServiceOptions {
  /** HOST:PORT for UDP and TCP (default 127.0.0.1:15053; port 0 picks one). */
  readonly listen: string;
  readonly zone: string;
  /** Record TTL in seconds (default 30). */
  readonly ttl: number;
  /** Upstream HOST:PORT for names outside the zone; without it they are REFUSED. */
  readonly upstream?: string;
  /** Negative-caching TTL (SOA minimum); default: `ttl`. */
  readonly negativeTtl?: number;
  /** Largest UDP answer, advertised in EDNS (default 1232). */
  readonly udpPayloadSize?: number;
  /** Further record stores kept in step with the zone (e.g. etcd for CoreDNS). */
  readonly stores?: readonly RecordStore[];
  /**
   * How often the stores are read back and brought to the current records even without a
   * model change, repairing drift (keys deleted or altered, an etcd restored from a backup);
   * default 30 s, 0: never. A failed store sync is retried with backoff meanwhile.
   */
  readonly storeResyncMs?: number;
  readonly clock?: () => number;
  /**
   * Resolves once every sidecar has ACKed the xDS generation built from the snapshot being
   * applied (or `timeoutMs` passed). Awaited before a name new to the zone is published,
   * so no client resolves a VIP that no sidecar intercepts yet.
   */
  readonly routed?: (snapshot: MeshSnapshot, timeoutMs: number) => Promise<RoutedResult>;
  /** Longest wait for `routed` (default 5 s); a timeout is logged and counted. */
  readonly publishTimeoutMs?: number;
}

/** One applied model: what the responder serves from now on. */
export interface DnsGeneration {
  readonly modelVersion: string;
  readonly serial: number;
  readonly records: readonly DnsRecord[];
  readonly problems: readonly RecordProblem[];
  readonly vips: ReadonlyMap<string, string>;
  /** Names waiting for a VIP (not published until they have one), and why. */
  readonly pending: readonly string[];
  readonly pendingReason?: string;
  readonly cidr?: string;
  readonly vipStore?: string;
}

export interface DnsStatus {
  readonly listen: string;
  readonly zone: string;
  readonly cidr?: string;
  readonly vipStore?: string;
  readonly serial?: number;
  readonly modelVersion?: string;
  readonly records: number;
  readonly vips: number;
  /** Names of the model that wait for a VIP (the VIP store unreachable, the range exhausted), and why. */
  readonly pendingNames: readonly string[];
  readonly pendingReason?: string;
  readonly problems: readonly RecordProblem[];
  readonly error?: string;
  /** Last failure to bring a record store (etcd) in step; cleared by the next success. */
  readonly storeError?: string;
}

export class DnsService {
  readonly server: DnsServer;
  private readonly opts: DnsServiceOptions;
  private readonly zoneName: string;
  private readonly generations = new BehaviorSubject<DnsGeneration | undefined>(undefined);
  /** Every applied generation, the current one first. */
  readonly changes: Observable<DnsGeneration>;
  private pending: { snapshot: MeshSnapshot; at: number } | undefined;
  private running: Promise<void> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private retries = 0;
  private lastError: string | undefined;
  private serial = 0;
  private closed = false;
  private resyncTimer: NodeJS.Timeout | undefined;
  private storeRetryTimer: NodeJS.Timeout | undefined;
  private storeRetries = 0;
  private storeError: string | undefined;
  private manual: readonly DnsRecord[] = [];
  private shadowed: readonly string[] = [];
  private lastSnapshot: MeshSnapshot | undefined;
  /** The model's records of the current generation (without manual ones): what `stores` hold. */
  private modelRecords: readonly DnsRecord[] = [];

  constructor(opts: DnsServiceOptions) {
    this.opts = opts;
    this.zoneName = opts.zone.toLowerCase().replace(/\.$/, '');
    this.server = new DnsServer({
      listen: opts.listen,
      zone: this.zoneName,
      ...(opts.upstream ? { upstream: opts.upstream } : {}),
      ...(opts.udpPayloadSize ? { udpPayloadSize: opts.udpPayloadSize } : {}),
    });
    this.changes = this.generations.pipe(filter((g): g is DnsGeneration => g !== undefined));
  }

  /** Port the responder listens on (UDP and TCP), once started. */
  get port(): number {
    return this.server.port;
  }

  /** Binds the responder. Until the first snapshot is applied (`offer`), in-zone queries get SERVFAIL. */
  async start(): Promise<void> {
    await this.server.listen();
    const every = this.opts.storeResyncMs ?? 30_000;
    if (every > 0 && this.opts.stores?.length) {
      this.resyncTimer = setInterval(() => {
        if (this.running || this.closed) return;
        this.running = this.resyncStores()
          .then(() => this.storeFailed(undefined), (e: unknown) => this.storeFailed(e))
          .finally(() => {
            this.running = undefined;
            // A model that came during the resync waits in `pending`.
            if (this.pending && !this.closed) this.running = this.drain().finally(() => (this.running = undefined));
          });
      }, every);
      this.resyncTimer.unref();
    }
  }

  /** After a store sync: on failure, retry (backoff 0.5 s doubling to 30 s) unless a model comes first. */
  private storeFailed(error: unknown): void {
    clearTimeout(this.storeRetryTimer);
    this.storeRetryTimer = undefined;
    if (error === undefined) {
      this.storeRetries = 0;
      this.storeError = undefined;
      return;
    }
    this.storeError = (error as Error).message;
    this.storeRetryTimer = setTimeout(() => {
      if (this.closed) return;
      if (this.running) return this.storeFailed(error);
      this.running = this.resyncStores()
        .then(() => this.storeFailed(undefined), (e: unknown) => this.storeFailed(e))
        .finally(() => {
          this.running = undefined;
          if (this.pending && !this.closed) this.running = this.drain().finally(() => (this.running = undefined));
        });
    }, backoffDelay(this.storeRetries++, RETRY));
    this.storeRetryTimer.unref();
  }

  /**
   * Reads every store back and brings it to the records served now (a full resync: what went
   * missing or was altered while nobody looked is written again). Throws on a store failure.
   */
  async resyncStores(): Promise<void> {
    if (!this.generations.value) return;
    const records = this.modelRecords;
    for (const store of this.opts.stores ?? []) {
      try {
        const p = await sync(store, records);
        if (!emptyPlan(p)) log.info('record store resynced', { store: store.id, create: p.create.length, update: p.update.length, delete: p.delete.length });
      } catch (e) {
        failuresTotal.inc({ stage: 'store' });
        log.warn('record store resync failed; retried later', { store: store.id, error: e });
        throw e;
      }
    }
  }

  /**
   * Records managed by hand (the records API) served by the built-in responder next to the
   * model's. A manual record on a name the model gives records to is not served (the
   * model's name wins); the records API refuses such names in the first place. Not written
   * to `stores`: the records API keeps them in its own store, under its own owner.
   */
  setManualRecords(records: readonly DnsRecord[]): void {
    this.manual = [...records];
    if (this.lastSnapshot) this.offer(this.lastSnapshot, true);
  }

  /** Names the model gives records to now (what the records API must not touch). */
  modelNames(): ReadonlySet<string> {
    return new Set(this.modelRecords.map((r) => r.name));
  }

  /** The records served now (sorted), without the synthesized SOA/NS. */
  records(): readonly DnsRecord[] {
    return this.generations.value?.records ?? [];
  }

  /** Name → VIP of the current generation. */
  vips(): ReadonlyMap<string, string> {
    return this.generations.value?.vips ?? new Map();
  }

  current(): DnsGeneration | undefined {
    return this.generations.value;
  }

  status(): DnsStatus {
    const g = this.generations.value;
    return {
      listen: `${this.server.host}:${this.server.port}`,
      zone: this.zoneName,
      ...(g?.cidr ? { cidr: g.cidr } : {}),
      ...(g?.vipStore ? { vipStore: g.vipStore } : {}),
      ...(g ? { serial: g.serial, modelVersion: g.modelVersion } : {}),
      records: g?.records.length ?? 0,
      vips: g?.vips.size ?? 0,
      pendingNames: g?.pending ?? [],
      ...(g?.pendingReason ? { pendingReason: g.pendingReason } : {}),
      problems: g?.problems ?? [],
      ...(this.lastError ? { error: this.lastError } : {}),
      ...(this.storeError ? { storeError: this.storeError } : {}),
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.resyncTimer);
    clearTimeout(this.storeRetryTimer);
    this.pending = undefined;
    await this.running;
    await this.server.close();
    this.generations.complete();
  }

  /** Applies a snapshot (after the one being applied, if any); an equal version is applied once, unless `force`. */
  offer(snapshot: MeshSnapshot, force = false): void {
    if (this.closed) return;
    if (!force && snapshot.version === this.lastSnapshot?.version) return;
    this.lastSnapshot = snapshot;
    this.pending = { snapshot, at: performance.now() };
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.running ??= this.drain().finally(() => (this.running = undefined));
  }

  private async drain(): Promise<void> {
    while (this.pending && !this.closed) {
      const { snapshot, at } = this.pending;
      this.pending = undefined;
      try {
        await this.apply(snapshot);
        updateSeconds.observe({}, (performance.now() - at) / 1000);
        this.retries = 0;
        this.lastError = undefined;
      } catch (e) {
        failuresTotal.inc({ stage: 'model' });
        this.lastError = (e as Error).message;
        const delay = backoffDelay(this.retries++, RETRY);
        log.error('DNS update failed; the last zone is still served', { model: snapshot.model.version, retryInMs: delay, error: e });
        if (!this.pending && !this.closed) {
          this.retryTimer = setTimeout(() => this.offer(snapshot, true), delay);
          this.retryTimer.unref();
        }
      }
    }
  }

  private async apply(snapshot: MeshSnapshot): Promise<void> {
    const { model, addresses } = snapshot;
    const { vips } = addresses;
    const waiting = addresses.pending.length ? { names: new Set(addresses.pending), reason: addresses.error ?? 'not allocated yet' } : undefined;
    const desired = desiredRecords(model, vips, { zone: this.zoneName, ttl: this.opts.ttl, ...(waiting ? { waiting } : {}) });
    const prev = this.generations.value;
    const added = [...vips.keys()].filter((n) => !prev?.vips.has(n));
    if (added.length && this.opts.routed) {
      const start = performance.now();
      const r = await this.opts.routed(snapshot, this.opts.publishTimeoutMs ?? 5000);
      publishWaits.inc({ result: r.synced ? 'acked' : 'timeout' });
      if (!r.synced) log.warn('publishing DNS names before every sidecar ACKed their VIPs', { names: added.slice(0, 10), lagging: r.lagging.slice(0, 10), ...(r.reason ? { reason: r.reason } : {}), waitedMs: Math.round(performance.now() - start) });
    }
    const modelNames = new Set(desired.records.map((r) => r.name));
    const manual = this.manual.filter((r) => !modelNames.has(r.name));
    shadowedGauge.set({}, this.manual.length - manual.length);
    const shadowed = [...new Set(this.manual.filter((r) => modelNames.has(r.name)).map((r) => r.name))];
    if (shadowed.join() !== this.shadowed.join() && shadowed.length) {
      const names = shadowed;
      log.warn('manual records shadowed by model names (the model wins); delete them through the records API', { names: names.slice(0, 10), count: names.length });
    }
    this.shadowed = shadowed;
    const served = manual.length ? sortRecords([...desired.records, ...manual]) : desired.records;
    const changed = !prev || !sameRecords(prev.records, served);
    if (changed) this.serial = Math.max(this.serial + 1, Math.floor((this.opts.clock ?? Date.now)() / 1000)) >>> 0;
    if (changed || !this.server.currentZone()) {
      this.server.setZone(
        new Zone(served, {
          zone: this.zoneName,
          ttl: this.opts.ttl,
          negativeTtl: this.opts.negativeTtl ?? this.opts.ttl,
          serial: this.serial,
          nsAddresses: [this.server.host],
        }),
      );
      updatesTotal.inc();
      log.info('DNS zone updated', { model: model.version, serial: this.serial, records: served.length, manual: manual.length, problems: desired.problems.length });
    }
    recordsGauge.set({}, served.length);
    problemsGauge.set({}, desired.problems.length);
    // A store that fails (etcd down) does not hold the zone back: it is retried with backoff.
    let storeError: unknown;
    for (const store of this.opts.stores ?? []) {
      try {
        const p = await sync(store, desired.records);
        log.debug('record store synced', { store: store.id, create: p.create.length, update: p.update.length, delete: p.delete.length });
      } catch (e) {
        storeError ??= e;
        failuresTotal.inc({ stage: 'store' });
        log.warn('record store sync failed; retried with backoff', { store: store.id, error: e });
      }
    }
    this.modelRecords = desired.records;
    this.storeFailed(storeError);
    this.generations.next({
      modelVersion: model.version,
      serial: this.serial,
      records: served,
      problems: desired.problems,
      vips,
      pending: addresses.pending,
      ...(addresses.error ? { pendingReason: addresses.error } : {}),
      ...(addresses.cidr ? { cidr: addresses.cidr } : {}),
      ...(addresses.store ? { vipStore: addresses.store } : {}),
    });
  }
}

const RETRY = { initialMs: 500, maxMs: 30_000 } as const;

function sameRecords(a: readonly DnsRecord[], b: readonly DnsRecord[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (recordText(a[i]!) !== recordText(b[i]!)) return false;
  return true;
}
