// The composition root of `serve`: the pipeline (src/pipeline/) and its outputs side by
// side — xDS (built, then served by ADS), DNS (waits for sidecars to route new names) and
// admin (reads the latest snapshot). No output feeds back into a stage.
import { type Subscription } from 'rxjs';
import { instanceStatus } from './admin/instances.ts';
import { AdminServer } from './admin/server.ts';
import { VipAllocator, vipStoreFromUrl, type VipStore } from './addresses/index.ts';
import { type CaOptions, type CaServer, startCa } from './ca/index.ts';
import { DnsService, type DnsServiceOptions, EtcdRecordStore, parseEtcdStoreUrl, RecordsApiServer, recordsApiStore, type RecordsApiFlags } from './dns/index.ts';
import { mergeStates } from './model/aggregate.ts';
import type { MeshSnapshot } from './model/mesh-snapshot.ts';
import type { Registry } from './model/registry.ts';
import type { ModelSnapshot } from './model/snapshot.ts';
import type { RegistryState } from './model/types.ts';
import { MemoryReturner } from './memory.ts';
import { pipeline } from './pipeline/pipeline.ts';
import { logger } from './shared/log.ts';
import { XdsOutput } from './xds/output.ts';
import { loadProtos } from './xds/proto.ts';
import { AdsServer } from './xds/server/ads.ts';

const log = logger('server');

export interface IsthmusOptions {
  readonly registries: readonly Registry[];
  /** The certificate authority (off when absent). */
  readonly ca?: CaOptions;
  /** Of workload SPIFFE IDs (default cluster.local). */
  readonly trustDomain?: string;
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
  readonly dns?: Omit<DnsServiceOptions, 'routed' | 'stores'> & {
    /** VIP range, e.g. 240.240.0.0/16. */
    readonly cidr: string;
    /** The VIP table: a file path, or etcd://HOST:PORT[,HOST:PORT][/KEY] (shared by replicas). */
    readonly vipStore: string;
    /** How long a model waits for its VIPs before it goes on without the new ones (default 1 s). */
    readonly vipWaitMs?: number;
    /** etcd://HOST:PORT[,HOST:PORT]/PREFIX: also write the zone for CoreDNS's etcd plugin. */
    readonly storeUrl?: string;
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

export class Isthmus {
  readonly xds: XdsOutput;
  readonly ads: AdsServer;
  readonly admin: AdminServer;
  readonly dns?: DnsService;
  private readonly opts: IsthmusOptions;
  private readonly vipStore?: VipStore;
  private readonly allocator?: VipAllocator;
  private recordStore?: EtcdRecordStore;
  private recordsApi?: RecordsApiServer;
  private caServer?: CaServer;
  /** Identities join tokens bind to host addresses (the CA's), for registryz. */
  private vmIdentities: () => ReadonlyMap<string, { namespace: string; serviceAccount: string }> = () => new Map();
  private latest?: MeshSnapshot;
  private states: readonly RegistryState[] = [];
  private subs: Subscription[] = [];
  private memoryReturner?: MemoryReturner;
  xdsPort = 0;
  adminPort = 0;

  constructor(opts: IsthmusOptions) {
    this.xds = new XdsOutput(opts.trustDomain ? { trustDomain: opts.trustDomain } : {});
    this.opts = opts;
    this.ads = new AdsServer(this.xds, {
      ...(opts.xdsMaxInflightBytes ? { maxInflightBytes: opts.xdsMaxInflightBytes } : {}),
      ...(opts.xdsIntakeLimitBytes ? { intakeLimitBytes: opts.xdsIntakeLimitBytes } : {}),
      ...(opts.xdsKeepaliveMs !== undefined ? { keepaliveMs: opts.xdsKeepaliveMs } : {}),
    });
    this.admin = new AdminServer({
      ready: () => this.readiness(),
      model: () => this.model,
      problems: () => this.xds.current()?.problems ?? [],
      syncz: () => this.ads.status(),
      configDump: (id) => this.ads.configDump(id),
      dnsz: () => this.dns?.status(),
      instances: () => instanceStatus(this.model, this.ads.proxies().map(({ proxy, peer }) => ({ ...proxy, peer })), opts.trustDomain, this.vmIdentities()),
    });
    const d = opts.dns;
    if (d) {
      if (d.storeUrl) {
        const { endpoints, prefix } = parseEtcdStoreUrl(d.storeUrl);
        this.recordStore = new EtcdRecordStore({ endpoints, prefix, zone: d.zone });
      }
      this.vipStore = vipStoreFromUrl(d.vipStore);
      this.allocator = new VipAllocator(this.vipStore, { cidr: d.cidr, ttl: d.ttl, ...(d.clock ? { clock: d.clock } : {}) });
      this.dns = new DnsService({
        ...d,
        ...(this.recordStore ? { stores: [this.recordStore] } : {}),
        // xDS was handed the snapshot before DNS, so its generation exists unless the build failed.
        routed: async (s, timeoutMs) => {
          const seq = this.xds.seqOf(s.version);
          if (seq === undefined) return { synced: false, lagging: [], reason: 'xDS could not be built from this snapshot (see isthmus_snapshot_build_failures_total)' };
          return this.ads.whenSynced(seq, timeoutMs);
        },
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

  /** The latest generation the ADS server serves. */
  current(): ReturnType<XdsOutput['current']> {
    return this.xds.current();
  }

  /** The served model; before the first snapshot, the registries as they are now. */
  get model(): ModelSnapshot {
    return this.latest?.model ?? mergeStates(this.states);
  }

  /** The latest mesh snapshot: the model and its addresses. */
  get snapshot(): MeshSnapshot | undefined {
    return this.latest;
  }

  async start(): Promise<void> {
    // A broken install stops start-up here, naming the proto or version, not at the first build.
    loadProtos();
    this.adminPort = await this.admin.listen(this.opts.adminAddress);
    if (this.opts.memoryReturn !== false) this.memoryReturner = new MemoryReturner();
    this.xdsPort = await this.ads.listen(this.opts.xdsAddress);
    await this.dns?.start();
    const d = this.opts.dns;
    const p = pipeline({
      registries: this.opts.registries,
      syncTimeoutMs: this.opts.syncTimeoutMs,
      debounceQuietMs: this.opts.debounceQuietMs,
      debounceMaxMs: this.opts.debounceMaxMs,
      ...(this.allocator && d ? { addresses: { allocator: this.allocator, ttlSeconds: d.ttl, ...(d.vipWaitMs !== undefined ? { waitMs: d.vipWaitMs } : {}) } } : {}),
    });
    this.subs.push(p.states.subscribe((s) => (this.states = s)));
    this.subs.push(
      p.snapshots.subscribe({
        next: (s) => this.publish(s),
        error: (e: unknown) => log.error('pipeline failed', { error: e }),
      }),
    );
    await this.recordsApi?.start();
    if (this.opts.ca) ({ server: this.caServer, identitiesByAddress: this.vmIdentities } = await startCa(this.opts.ca));
    log.info('isthmus serving', { xds: `${this.opts.xdsAddress.replace(/:\d+$/, '')}:${this.xdsPort}`, admin: this.adminPort, registries: this.opts.registries.map((r) => r.id), ...(this.caServer ? { ca: this.caServer.port } : {}) });
  }

  /** Hands a snapshot to every output, xDS first; one output failing never keeps it from the others. */
  private publish(s: MeshSnapshot): void {
    this.latest = s;
    for (const [name, apply] of [
      ['xds', () => this.xds.apply(s)],
      ['dns', () => this.dns?.offer(s)],
    ] as const) {
      try {
        apply();
      } catch (e) {
        log.error('output failed on a snapshot; the others still got it', { output: name, version: s.version, error: e });
      }
    }
  }

  private readiness(): { ready: boolean; reason?: string } {
    if (this.xds.current()) return { ready: true };
    const waiting = this.states.filter((r) => !r.synced).map((r) => `${r.id}${r.error ? ` (${r.error})` : ''}`);
    return { ready: false, reason: waiting.length ? `waiting for registries to sync: ${waiting.join(', ')}` : 'building the first snapshot' };
  }

  async close(): Promise<void> {
    this.memoryReturner?.stop();
    for (const s of this.subs) s.unsubscribe();
    this.subs = [];
    // Proxies are told the server is going (UNAVAILABLE), not cut off: they reconnect at once.
    await this.ads.close();
    await this.recordsApi?.close();
    await this.caServer?.stop();
    await this.dns?.close();
    await this.vipStore?.close();
    await this.recordStore?.close();
    await this.admin.close();
    this.xds.complete();
  }
}
