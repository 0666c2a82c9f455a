// The Kubernetes registry: Services, EndpointSlices, Pods, Nodes, RPCServices and the Istio
// ServiceEntry/WorkloadEntry CRDs of one cluster, each kept by its own list+watch, mapped
// to the model on every change (debounced: a quiet period and a maximum wait).
//
// A watch that fails keeps its objects; the state says which kinds are failing since when
// (`error`), and metrics carry the per-kind last sync time. An API server restart or a
// 410 Gone makes the watches list again, and a complete list replaces a store in one step,
// so nothing is dropped and put back on the way.
import type { PeerAuthentication } from '../../model/rules/peer-authentication.ts';
import { Observable } from 'rxjs';
import type { KubeConfig } from '@kubernetes/client-node';
import { canonicalJson } from '../../model/hash.ts';
import type { Registry } from '../../model/registry.ts';
import type { DestinationRule, VirtualService } from '../../model/rules/types.ts';
import type { Endpoint, Rejection, RegistryState, Service, Workload } from '../../model/types.ts';
import { logger } from '../../shared/log.ts';
import { metrics } from '../../shared/metrics.ts';
import { type KubeApi, KubeConfigApi, type KubeConfigOptions, type KubeObject, loadKubeConfig } from './client.ts';
import { type IstioResult, parseIstioObject } from './istio.ts';
import { ListWatch, type ListWatchOptions, type WatchStatus } from './list-watch.ts';
import { type ClusterContext, type NodeLike, type PodLike, podWorkloads } from './pods.ts';
import { ENDPOINT_SLICES, ISTIO_KINDS, NODES, PODS, type ResourceRef, RPC_SERVICES, SERVICES } from './resources.ts';
import { mapRpcServices, type RpcServiceLike, type RpcServiceStatus } from './rpcservice.ts';
import { type EndpointSliceLike, mapServices, type ServiceLike } from './services.ts';
import { StatusWriter } from './status-writer.ts';
import { KubeUrlError } from './errors.ts';
import { registryRejections as rejectionsGauge } from '../metrics.ts';

export interface KubeRegistryOptions {
  /** Kubeconfig context; the current context when absent (in-cluster config inside a pod). */
  readonly context?: string;
  /** Kubeconfig file; $KUBECONFIG or ~/.kube/config when absent. */
  readonly kubeconfig?: string;
  /** Cluster name: endpoints carry the label topology.istio.io/cluster=NAME. */
  readonly clusterName?: string;
  /** Region (IDC) of the cluster: the locality region of all its endpoints. */
  readonly region?: string;
  /** Watch only these namespaces (default: all). Nodes are read cluster-wide when allowed. */
  readonly namespaces?: readonly string[];
  /** Cluster DNS domain. Default cluster.local. */
  readonly domain?: string;
  /** DNS zone of RPC names. Default rpc.cluster.local. */
  readonly zone?: string;
  /** `<svc>.<ns>.svc` and `<svc>.<ns>` as aliases of `<svc>.<ns>.svc.<domain>`. Default true. */
  readonly shortNames?: boolean;
  /** Write RPCService status. Default true. */
  readonly writeStatus?: boolean;
  /** Quiet period after a change before the model is rebuilt. Default 50 ms. */
  readonly settleMs?: number;
  /** Longest a stream of changes may delay a rebuild. Default 500 ms. */
  readonly maxWaitMs?: number;
  readonly watch?: ListWatchOptions;
  /** Registry id; default kube://CONTEXT. */
  readonly id?: string;
  /** An API client to use instead of a kubeconfig (tests, embedding). */
  readonly api?: KubeApi;
}

const log = logger('registry.kube');
const rebuilds = metrics.counter('isthmus_kube_rebuilds_total', 'Model rebuilds of a Kubernetes registry, by result (emitted, unchanged)');

/** Every kind the registry reads, in the order states are built from them. */
export const KINDS: readonly ResourceRef[] = [SERVICES, ENDPOINT_SLICES, PODS, NODES, RPC_SERVICES, ...ISTIO_KINDS];

export class KubeRegistry implements Registry {
  readonly id: string;
  readonly states: Observable<RegistryState>;
  readonly api: KubeApi;
  private sessions = new Set<Session>();

  constructor(opts: KubeRegistryOptions = {}) {
    this.id = opts.id ?? `kube://${opts.context ?? ''}`;
    // Loaded now, so a missing file or an unknown context fails at startup, not later.
    this.api = opts.api ?? KubeRegistry.connect(this.id, opts);
    this.states = new Observable<RegistryState>((subscriber) => {
      const s = new Session(this.id, this.api, opts, (state) => subscriber.next(state));
      this.sessions.add(s);
      s.start();
      return () => {
        this.sessions.delete(s);
        void s.close();
      };
    });
  }

  private static connect(id: string, opts: KubeConfigOptions): KubeApi {
    try {
      return new KubeConfigApi(loadKubeConfig(opts));
    } catch (e) {
      throw new KubeUrlError(`--registry "${id}": cannot load the Kubernetes client configuration: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
  }

  /** Per-kind watch state of the running subscriptions (for status pages). */
  watchStatus(): WatchStatus[] {
    return [...this.sessions].flatMap((s) => s.watchStatus());
  }

  static fromKubeConfig(kc: KubeConfig, opts: Omit<KubeRegistryOptions, 'api' | 'context' | 'kubeconfig'> = {}): KubeRegistry {
    return new KubeRegistry({ ...opts, api: new KubeConfigApi(kc) });
  }
}

/** One subscription: its own watches, timers and memory. */
class Session {
  private readonly id: string;
  private readonly opts: KubeRegistryOptions;
  private readonly ctx: ClusterContext;
  private readonly emit: (s: RegistryState) => void;
  private readonly watches = new Map<string, ListWatch[]>();
  private readonly statusWriter: StatusWriter | undefined;
  /** Last valid version of each Istio object, by uid: served while a later edit is invalid. */
  private lastGood = new Map<string, IstioResult>();
  private settleTimer: NodeJS.Timeout | undefined;
  private burstStart: number | undefined;
  private closed = false;
  private lastEmitted: string | undefined;
  private logged = new Set<string>();
  private warned = new Set<string>();
  private lastLoggedError: string | undefined | null = null;

  constructor(id: string, api: KubeApi, opts: KubeRegistryOptions, emit: (s: RegistryState) => void) {
    this.id = id;
    this.opts = opts;
    this.emit = emit;
    this.ctx = {
      registry: id,
      domain: opts.domain ?? 'cluster.local',
      ...(opts.clusterName ? { clusterName: opts.clusterName } : {}),
      ...(opts.region ? { region: opts.region } : {}),
    };
    const namespaces = opts.namespaces?.length ? [...opts.namespaces] : [undefined];
    for (const ref of KINDS) {
      const list = (ref.namespaced ? namespaces : [undefined]).map(
        (ns) => new ListWatch(api, ref, ns, id, opts.watch ?? {}, () => this.schedule(), () => this.schedule()),
      );
      this.watches.set(ref.kind, list);
    }
    if (opts.writeStatus !== false) this.statusWriter = new StatusWriter(api, id, () => this.schedule());
  }

  start(): void {
    for (const list of this.watches.values()) for (const w of list) w.start();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.settleTimer);
    this.statusWriter?.close();
    await Promise.all([...this.watches.values()].flat().map((w) => w.stop()));
  }

  watchStatus(): WatchStatus[] {
    return [...this.watches.values()].flat().map((w) => w.status);
  }

  private objects<T extends KubeObject>(ref: ResourceRef): T[] {
    return (this.watches.get(ref.kind) ?? []).flatMap((w) => [...w.store.values()] as T[]);
  }

  /** Debounce with a cap: a steady stream of events still rebuilds every maxWaitMs. */
  private schedule(): void {
    if (this.closed) return;
    const now = Date.now();
    this.burstStart ??= now;
    clearTimeout(this.settleTimer);
    const delay = Math.max(0, Math.min(this.opts.settleMs ?? 50, this.burstStart + (this.opts.maxWaitMs ?? 500) - now));
    this.settleTimer = setTimeout(() => {
      this.settleTimer = this.burstStart = undefined;
      this.rebuild();
    }, delay);
  }

  private rebuild(): void {
    if (this.closed) return;
    let built: { state: RegistryState; rpcObjects: RpcServiceLike[]; rpcStatuses: Map<string, RpcServiceStatus> };
    try {
      built = this.build();
    } catch (err) {
      // A bug in the mapping must not end the registry; the last state stays served.
      log.error('cannot map the cluster to the model; keeping the last state', { registry: this.id, err });
      return;
    }
    const { state } = built;
    if (this.statusWriter && state.synced && this.canWriteStatus()) this.statusWriter.update(built.rpcObjects, built.rpcStatuses);
    const text = canonicalJson(state);
    if (text === this.lastEmitted) {
      rebuilds.inc({ registry: this.id, result: 'unchanged' });
      return;
    }
    this.lastEmitted = text;
    rebuilds.inc({ registry: this.id, result: 'emitted' });
    this.report(state);
    this.emit(state);
  }

  private build(): { state: RegistryState; rpcObjects: RpcServiceLike[]; rpcStatuses: Map<string, RpcServiceStatus> } {
    const pods = this.objects<PodLike>(PODS);
    const nodes = new Map(this.objects<NodeLike>(NODES).map((n) => [n.metadata?.name ?? '', n]));
    const podMap = new Map(pods.map((p) => [`${p.metadata?.namespace ?? 'default'}/${p.metadata?.name ?? ''}`, p]));

    const svc = mapServices(this.ctx, {
      services: this.objects<ServiceLike>(SERVICES),
      slices: this.objects<EndpointSliceLike>(ENDPOINT_SLICES),
      pods: podMap,
      nodes,
      shortNames: this.opts.shortNames !== false,
    });
    const rpcObjects = this.objects<RpcServiceLike>(RPC_SERVICES);
    const rpc = mapRpcServices(this.ctx, rpcObjects, pods, this.opts.zone);
    const istio = this.istioObjects();

    const services: Service[] = [...svc.services, ...rpc.services, ...istio.services];
    const endpoints: Endpoint[] = [...svc.endpoints, ...istio.endpoints];
    const workloads: Workload[] = [...podWorkloads(this.ctx, pods, nodes), ...istio.workloads];
    const rejections: Rejection[] = [...svc.rejections, ...rpc.rejections, ...istio.rejections];

    const statuses = this.watchStatus();
    const synced = statuses.every((s) => s.synced);
    const error = describeFailures(statuses);
    this.logWarnings(istio.warnings);
    const state: RegistryState = {
      id: this.id,
      synced,
      ...(error ? { error } : {}),
      services,
      endpoints,
      workloads,
      rejections,
      virtualServices: istio.virtualServices,
      destinationRules: istio.destinationRules,
      ...(istio.peerAuthentications.length ? { peerAuthentications: istio.peerAuthentications } : {}),
    };
    return { state, rpcObjects, rpcStatuses: rpc.statuses };
  }

  /** Status counts are only right while RPCServices and pods are being watched. */
  private canWriteStatus(): boolean {
    return [RPC_SERVICES, PODS].every((r) => (this.watches.get(r.kind) ?? []).every((w) => w.status.phase === 'watching'));
  }

  private istioObjects(): Omit<IstioResult, 'ok'> & { services: Service[]; endpoints: Endpoint[]; workloads: Workload[]; rejections: Rejection[] } {
    const out = {
      services: [] as Service[],
      endpoints: [] as Endpoint[],
      workloads: [] as Workload[],
      virtualServices: [] as VirtualService[],
      destinationRules: [] as DestinationRule[],
      peerAuthentications: [] as PeerAuthentication[],
      rejections: [] as Rejection[],
      warnings: [] as Rejection[],
    };
    const good = new Map<string, IstioResult>();
    for (const ref of ISTIO_KINDS) {
      const objs = this.objects(ref).sort((a, b) => (`${a.metadata?.namespace}/${a.metadata?.name}` < `${b.metadata?.namespace}/${b.metadata?.name}` ? -1 : 1));
      for (const o of objs) {
        const uid = o.metadata?.uid ?? `${ref.kind}/${o.metadata?.namespace}/${o.metadata?.name}`;
        let r = parseIstioObject(this.id, ref.kind, o);
        if (r.ok) good.set(uid, r);
        else {
          const kept = this.lastGood.get(uid);
          if (kept) {
            good.set(uid, kept);
            r = { ...kept, rejections: r.rejections.map((x) => ({ ...x, reason: `${x.reason}; the last good version of this object is still served` })) };
          }
        }
        out.services.push(...r.services);
        out.endpoints.push(...r.endpoints);
        out.workloads.push(...r.workloads);
        out.virtualServices.push(...r.virtualServices);
        out.destinationRules.push(...r.destinationRules);
        out.peerAuthentications.push(...r.peerAuthentications);
        out.rejections.push(...r.rejections);
        out.warnings.push(...r.warnings);
      }
    }
    this.lastGood = good;
    return out;
  }

  /** Logs each distinct validation warning once while it lasts (the state has no place for them). */
  private logWarnings(warnings: readonly Rejection[]): void {
    const current = new Set<string>();
    for (const w of warnings) {
      const k = canonicalJson(w);
      current.add(k);
      if (!this.warned.has(k)) log.warn('object accepted with a warning', { registry: this.id, ...w });
    }
    this.warned = current;
  }

  /** Logs each distinct rejection once while it lasts, and every change of health. */
  private report(state: RegistryState): void {
    rejectionsGauge.set({ registry: this.id }, state.rejections.length);
    const current = new Set<string>();
    for (const r of state.rejections) {
      const k = canonicalJson(r);
      current.add(k);
      if (!this.logged.has(k)) log.warn('object rejected', { registry: this.id, ...r });
    }
    this.logged = current;
    if (state.error !== this.lastLoggedError && (state.synced || state.error)) {
      // Warn when trouble starts; how it evolves (refused, then 503 while the server starts) is debug.
      if (state.error) (this.lastLoggedError ? log.debug : log.warn)('Kubernetes API unavailable; serving the last known state', { registry: this.id, error: state.error });
      else log.info('registry synced', { registry: this.id, services: state.services.length, endpoints: state.endpoints.length, workloads: state.workloads.length, rejections: state.rejections.length });
      this.lastLoggedError = state.error;
    }
  }
}

function iso(ms: number | undefined): string {
  return ms === undefined ? 'never' : new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
}

/** One line per distinct failure: which kinds, since when, last synced when. */
export function describeFailures(statuses: readonly WatchStatus[]): string | undefined {
  const byError = new Map<string, WatchStatus[]>();
  for (const s of statuses) {
    if (s.failingSince === undefined) continue;
    const k = s.lastError ?? 'unknown error';
    (byError.get(k) ?? byError.set(k, []).get(k)!).push(s);
  }
  if (byError.size === 0) return undefined;
  const parts = [...byError].map(([err, list]) => {
    const since = Math.min(...list.map((s) => s.failingSince!));
    const synced = list.map((s) => s.lastSync).filter((t): t is number => t !== undefined);
    const last = synced.length ? Math.min(...synced) : undefined;
    return `${list.map((s) => s.resource).join(', ')}: ${err} (failing since ${iso(since)}, last synced ${iso(last)})`;
  });
  return `${parts.join('; ')}; serving the last known state`;
}
