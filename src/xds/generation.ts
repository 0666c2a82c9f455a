// One generation: the resources of one mesh snapshot, shared ones built when the generation
// is, per-class ones (listeners, inbound and locality clusters, labelled tables) in `view()`
// on first use by a proxy of that class.
import { contentHash } from '../model/hash.ts';
import type { ModelSnapshot } from '../model/snapshot.ts';
import type { DestinationRule, PolicySettings } from '../model/rules/types.ts';
import type { Cluster, ClusterLoadAssignment, MultipleRouteConfiguration } from '../generated/envoy.ts';
import { EncodedResource, type ResourceMap } from './encoded.ts';
import { buildInboundCluster, buildProxylessCluster } from './generators/cluster.ts';
import { destinationRulesByHost, localityAssignment } from './generators/destination-rule.ts';
import { sourceSelectors } from './generators/http-route.ts';
import { buildApiListener, buildSidecarListeners } from './generators/listener.ts';
import { parseLocalityEndpointsName } from './generators/proxyless.ts';
import { buildInboundRoute, buildOutboundRoute, buildProxylessTargetRoute, resolveTarget, type RouteProblem } from './generators/route.ts';
import { buildPassthroughClusters, buildTransparentInboundCluster } from './generators/transparent.ts';
import type { ProxyInfo } from './proxy.ts';
import { type ClassInputs, inputsKey, type ProxyClass, proxyClass } from './proxy-class.ts';
import { checkView } from './references.ts';
import { withAutoMtls } from './generators/mtls.ts';
import { decodeToJson } from './proto.ts';
import { DEFAULT_TRUST_DOMAIN } from '../model/identity.ts';
import { setVersion } from './resource-sets.ts';
import { CLUSTER_TYPE, DUBBO_ROUTE_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, MESSAGE_OF, type MessageOf, ROUTE_TYPE, type TypeUrl } from './resources.ts';

/** The resources one class of proxies (same listener-shaping metadata) receives. */
export interface ClassView {
  readonly clusters: ResourceMap;
  readonly listeners: ResourceMap;
  readonly routes: ResourceMap;
  /** Route tables of the Dubbo filters its listeners name (DRDS). */
  readonly dubboRoutes: ResourceMap;
  readonly versions: Readonly<Record<TypeUrl, string>>;
  /** What the generators refused while building this class's resources. */
  readonly problems: readonly RouteProblem[];
  /** Explicit mode: TCP port → the service its listener serves; the next generation keeps these owners. */
  readonly tcpPorts: ReadonlyMap<number, string>;
}

/** An EDS cluster whose endpoints are sent inline, ordered by priority from the proxy's locality. */
export interface LocalityCluster {
  readonly cluster: Cluster;
  readonly assignment: ClusterLoadAssignment;
  readonly policy: PolicySettings;
}

/** What an update computes for a generation; the cache adds the sequence number and the link back. */
export interface GenerationInit {
  readonly model: ModelSnapshot;
  readonly clusters: ResourceMap;
  readonly endpoints: ResourceMap;
  readonly endpointsVersion: string;
  readonly outboundRoute: EncodedResource;
  readonly problems: readonly RouteProblem[];
  readonly changed: ReadonlyMap<TypeUrl, ReadonlySet<string>>;
  readonly servicesChanged: boolean;
  readonly vips: ReadonlyMap<string, string>;
  readonly locality: ReadonlyMap<string, LocalityCluster>;
  /** Of the SPIFFE IDs sidecars with certificates accept from each other (default cluster.local). */
  readonly trustDomain?: string;
  /** Clusters a DestinationRule gives tls ISTIO_MUTUAL. */
  readonly istioMutual?: ReadonlySet<string>;
}

// A service cluster's mTLS twin, per encoded cluster: an unchanged cluster keeps its twin
// across generations, so a generation costs only the clusters that changed.
const mtlsTwins = new WeakMap<EncodedResource, { readonly trustDomain: string; readonly twin: EncodedResource }>();

function mtlsTwin(c: EncodedResource, trustDomain: string): EncodedResource {
  const hit = mtlsTwins.get(c);
  if (hit?.trustDomain === trustDomain) return hit.twin;
  const msg = decodeToJson(MESSAGE_OF[CLUSTER_TYPE], c.payload()) as Cluster;
  const twin = new EncodedResource(CLUSTER_TYPE, c.name, withAutoMtls(msg, trustDomain));
  mtlsTwins.set(c, { trustDomain, twin });
  return twin;
}

export class Generation {
  readonly seq: number;
  readonly model: ModelSnapshot;
  /** Name → allocated VIP, for VIP filter chains and VIP:port domains. */
  readonly vips: ReadonlyMap<string, string>;
  readonly clusters: ResourceMap;
  readonly endpoints: ResourceMap;
  readonly outboundRoute: EncodedResource;
  /** Version over all endpoint assignments, used as the EDS version_info. */
  readonly endpointsVersion: string;
  /** Problems of the resources every proxy shares (clusters, the outbound table). */
  readonly sharedProblems: readonly RouteProblem[];
  readonly trustDomain: string;
  readonly istioMutual: ReadonlySet<string>;
  /** sourceLabels selectors of the rules: proxies matching any get an outbound table of their own. */
  private readonly selectors: readonly Readonly<Record<string, string>>[];
  /** Outbound tables of proxies matching some sourceLabels selectors, by the selectors they match. */
  private readonly labelledRoutes = new Map<string, EncodedResource>();
  /** What decides which proxy attributes matter in this generation, and its text (see proxyClass). */
  private readonly classInputs: ClassInputs;
  private readonly classInputsKey: string;
  /** Clusters built per proxy locality (DestinationRule localityLbSetting), by name. */
  readonly locality: ReadonlyMap<string, LocalityCluster>;
  /** Names whose resource differs from the previous generation (added, changed or removed). */
  readonly changed: ReadonlyMap<TypeUrl, ReadonlySet<string>>;
  private readonly views = new Map<string, ClassView>();
  /** No service definition and no cluster changed since the previous generation. */
  private readonly shapeUnchanged: boolean;
  private readonly named = new Map<string, EncodedResource | null>();
  /** Resources built for proxyless clients (their clusters, locality-ordered endpoints), by type, class part and name. */
  private readonly proxyless = new Map<string, EncodedResource | null>();
  /** What was refused while building resources for proxyless clients. */
  private readonly proxylessProblems: RouteProblem[] = [];
  private rulesByHost?: ReadonlyMap<string, DestinationRule>;
  /** Only the generation just before, to carry unchanged per-class resources over. */
  private previous?: Generation;
  /** Told of the problems of each class view when it is first built (kept, shown and logged by the cache). */
  private readonly report: (problems: readonly RouteProblem[]) => void;

  constructor(init: GenerationInit & { seq: number; previous?: Generation; report?: (problems: readonly RouteProblem[]) => void }) {
    this.seq = init.seq;
    this.model = init.model;
    this.vips = init.vips;
    this.clusters = init.clusters;
    this.endpoints = init.endpoints;
    this.outboundRoute = init.outboundRoute;
    this.sharedProblems = init.problems;
    this.report = init.report ?? (() => undefined);
    this.previous = init.previous;
    this.locality = init.locality;
    this.trustDomain = init.trustDomain ?? DEFAULT_TRUST_DOMAIN;
    this.istioMutual = init.istioMutual ?? new Set();
    // Locality-ordered endpoints of proxyless clients follow the rules as well as the endpoints.
    this.endpointsVersion = this.locality.size ? contentHash(`${init.endpointsVersion}\n${init.model.rulesHash}`) : init.endpointsVersion;
    this.changed = withLocalityEndpoints(init.changed, init.previous);
    this.selectors = sourceSelectors(init.model);
    // Proxies differ by locality only where a DestinationRule asks for locality load balancing.
    const pas = init.model.peerAuthentications;
    this.classInputs = { localityLb: this.locality.size > 0, selectors: this.selectors, ...(pas.length ? { peerAuthentications: pas, peerAuthKey: init.model.rulesHash } : {}) };
    this.classInputsKey = inputsKey(this.classInputs);
    // Locality clusters carry their endpoints inline: an endpoint change reshapes them.
    this.shapeUnchanged = !init.servicesChanged && init.changed.get(CLUSTER_TYPE)!.size === 0 && this.locality.size === 0;
  }

  /** Every problem found so far: the shared resources' and those of each class view built (one entry per name and reason). */
  get problems(): readonly RouteProblem[] {
    const out = new Map<string, RouteProblem>();
    for (const p of this.sharedProblems) out.set(`${p.name}\n${p.reason}`, p);
    for (const v of this.views.values()) for (const p of v.problems) out.set(`${p.name}\n${p.reason}`, p);
    for (const p of this.proxylessProblems) out.set(`${p.name}\n${p.reason}`, p);
    return [...out.values()];
  }

  /** Drops the link to the generation before, so that only two are ever kept alive. */
  forgetPrevious(): void {
    this.previous = undefined;
  }

  /** The proxy's class in this generation: everything that shapes its configuration. */
  classOf(proxy: ProxyInfo): ProxyClass {
    return proxyClass(proxy, this.classInputs, this.classInputsKey);
  }

  /** Resources for one class of proxies; built once per class and generation. */
  view(proxy: ProxyInfo): ClassView {
    return this.viewOf(this.classOf(proxy));
  }

  private viewOf(cls: ProxyClass): ClassView {
    const key = cls.key;
    let v = this.views.get(key);
    if (v) return v;
    const prev = this.previous?.views.get(key);
    if (prev && this.shapeUnchanged) {
      // Endpoint-only change: listeners, clusters and routes are the previous ones.
      v = { ...prev, versions: { ...prev.versions, [ENDPOINT_TYPE]: this.endpointsVersion } };
      this.views.set(key, v);
      return v;
    }
    const problems: RouteProblem[] = [];
    const reuse = (typeUrl: TypeUrl, name: string, msg: MessageOf[TypeUrl], old?: ResourceMap): EncodedResource => {
      const fresh = new EncodedResource(typeUrl, name, msg);
      const before = old?.get(name);
      return before && before.version === fresh.version ? before : fresh;
    };
    // A sidecar with the agent's certificates gets every service cluster with automatic mTLS,
    // and its inbound side accepts mTLS beside plaintext.
    const mtls = cls.sds && cls.kind === 'envoy';
    const listeners = new Map<string, EncodedResource>();
    const tcpPorts = new Map<number, string>();
    const tables = new Map<string, MultipleRouteConfiguration>();
    const security = { sds: mtls, trustDomain: this.trustDomain, ...(cls.peerAuth ? { peerAuth: cls.peerAuth } : {}) };
    for (const l of buildSidecarListeners(this.model, cls, problems, this.vips, { held: prev?.tcpPorts, bound: tcpPorts }, tables, security)) {
      listeners.set(l.name as string, reuse(LISTENER_TYPE, l.name as string, l, prev?.listeners));
    }
    const dubboRoutes = new Map<string, EncodedResource>();
    for (const [name, t] of tables) dubboRoutes.set(name, reuse(DUBBO_ROUTE_TYPE, name, t, prev?.dubboRoutes));
    const clusters = new Map<string, EncodedResource>(mtls ? [...this.clusters].map(([n, c]) => [n, mtlsTwin(c, this.trustDomain)]) : this.clusters);
    for (const [name, lc] of this.locality) {
      const msg: Cluster = { ...lc.cluster, type: 'STATIC', load_assignment: localityAssignment(lc.assignment, cls.locality ?? {}, lc.policy) };
      delete msg.eds_cluster_config;
      clusters.set(name, reuse(CLUSTER_TYPE, name, mtls ? withAutoMtls(msg, this.trustDomain) : msg, prev?.clusters));
    }
    // Without certificates, a cluster that must be ISTIO_MUTUAL gets no endpoints: never plaintext.
    if (!mtls && cls.kind === 'envoy') {
      for (const name of this.istioMutual) {
        if (!clusters.has(name)) continue;
        clusters.set(name, reuse(CLUSTER_TYPE, name, { name, type: 'STATIC', connect_timeout: { seconds: 1 }, load_assignment: { cluster_name: name, endpoints: [] } }, prev?.clusters));
        problems.push({ name, reason: 'DestinationRule tls ISTIO_MUTUAL, but this sidecar has no certificates (isthmus agent, isthmus bootstrap --sds-socket): the cluster has no endpoints for it rather than plaintext' });
      }
    }
    const outbound = this.outboundFor(cls);
    const routes = new Map<string, EncodedResource>([[outbound.name, outbound]]);
    // Transparent sidecars send what Isthmus does not route to its original destination.
    if (cls.mode === 'transparent' && cls.kind === 'envoy') {
      for (const c of buildPassthroughClusters()) clusters.set(c.name as string, reuse(CLUSTER_TYPE, c.name as string, c, prev?.clusters));
    }
    if (cls.appPorts.length) {
      for (const app of cls.appPorts) {
        const c = cls.mode === 'transparent' ? buildTransparentInboundCluster(cls.appAddress, app) : buildInboundCluster(cls.appAddress, app);
        clusters.set(c.name as string, reuse(CLUSTER_TYPE, c.name as string, c, prev?.clusters));
      }
      const r = buildInboundRoute(cls.appPorts);
      routes.set(r.name as string, reuse(ROUTE_TYPE, r.name as string, r, prev?.routes));
    }
    checkView({ listeners, routes, dubboRoutes, clusters }, problems);
    v = {
      clusters,
      listeners,
      routes,
      dubboRoutes,
      versions: {
        [CLUSTER_TYPE]: setVersion(clusters),
        [LISTENER_TYPE]: setVersion(listeners),
        [ROUTE_TYPE]: setVersion(routes),
        [DUBBO_ROUTE_TYPE]: setVersion(dubboRoutes),
        [ENDPOINT_TYPE]: this.endpointsVersion,
      },
      problems,
      tcpPorts,
    };
    this.views.set(key, v);
    if (problems.length) this.report(problems);
    return v;
  }

  /** Everything of a type a wildcard subscription receives. */
  wildcard(typeUrl: TypeUrl, proxy: ProxyInfo): ResourceMap {
    switch (typeUrl) {
      case CLUSTER_TYPE:
        return this.view(proxy).clusters;
      case LISTENER_TYPE:
        return proxy.kind === 'envoy' ? this.view(proxy).listeners : new Map();
      case ROUTE_TYPE:
        return this.view(proxy).routes;
      case DUBBO_ROUTE_TYPE:
        return proxy.kind === 'envoy' ? this.view(proxy).dubboRoutes : new Map();
      case ENDPOINT_TYPE:
        return this.endpoints;
    }
  }

  /** One named resource, or undefined if it does not exist. */
  resolve(typeUrl: TypeUrl, name: string, proxy: ProxyInfo): EncodedResource | undefined {
    switch (typeUrl) {
      case ENDPOINT_TYPE:
        return this.endpoints.get(name) ?? this.localityEndpoints(name);
      case CLUSTER_TYPE:
        if (proxy.kind === 'grpc') return this.proxylessCluster(name, this.classOf(proxy));
        // The proxy's own view: it holds the mTLS twins and the ISTIO_MUTUAL placeholders.
        return this.view(proxy).clusters.get(name);
      case LISTENER_TYPE:
        return (proxy.kind === 'envoy' ? this.view(proxy).listeners.get(name) : undefined) ?? this.target(LISTENER_TYPE, name);
      case ROUTE_TYPE:
        return (name === this.outboundRoute.name ? this.outboundFor(this.classOf(proxy)) : this.view(proxy).routes.get(name)) ?? this.target(ROUTE_TYPE, name);
      case DUBBO_ROUTE_TYPE:
        return proxy.kind === 'envoy' ? this.view(proxy).dubboRoutes.get(name) : undefined;
    }
  }

  /** The outbound table: the shared one, or one built for the sourceLabels selectors a class matches. */
  private outboundFor(cls: ProxyClass): EncodedResource {
    if (!cls.sources.length) return this.outboundRoute;
    const sig = cls.sources.join('\n');
    let r = this.labelledRoutes.get(sig);
    if (!r) {
      r = new EncodedResource(ROUTE_TYPE, this.outboundRoute.name, buildOutboundRoute(this.model, [], this.vips, new Set(cls.sources)));
      const before = this.previous?.labelledRoutes.get(sig);
      if (before && before.version === r.version) r = before;
      this.labelledRoutes.set(sig, r);
    }
    return r;
  }

  /** A cluster as a proxyless client of class `cls` gets it (generators/proxyless.ts). */
  private proxylessCluster(name: string, cls: ProxyClass): EncodedResource | undefined {
    const local = this.locality.has(name) ? (cls.locality ?? {}) : undefined;
    return this.built(CLUSTER_TYPE, local ? JSON.stringify(local) : '', name, (problems) => {
      this.rulesByHost ??= destinationRulesByHost(this.model);
      return buildProxylessCluster(this.model, this.rulesByHost, name, local, problems);
    });
  }

  /** Endpoints of a locality-balanced cluster ordered for a proxyless client's locality (named by localityEndpointsName). */
  private localityEndpoints(name: string): EncodedResource | undefined {
    const parsed = parseLocalityEndpointsName(name);
    const lc = parsed && this.locality.get(parsed.cluster);
    if (!parsed || !lc) return undefined;
    return this.built(ENDPOINT_TYPE, '', name, () => ({ ...localityAssignment(lc.assignment, parsed.locality, lc.policy), cluster_name: name }));
  }

  /** Built once per generation; the previous generation's object kept when equal, problems reported once. */
  private built<T extends TypeUrl>(typeUrl: T, part: string, name: string, build: (problems: RouteProblem[]) => MessageOf[T] | undefined): EncodedResource | undefined {
    const key = `${typeUrl}\n${part}\n${name}`;
    const hit = this.proxyless.get(key);
    if (hit !== undefined) return hit ?? undefined;
    const problems: RouteProblem[] = [];
    const msg = build(problems);
    let r: EncodedResource | null = msg ? new EncodedResource(typeUrl, name, msg) : null;
    const before = this.previous?.proxyless.get(key);
    if (r && before && before.version === r.version) r = before;
    this.proxyless.set(key, r);
    if (problems.length) {
      this.proxylessProblems.push(...problems);
      this.report(problems);
    }
    return r ?? undefined;
  }

  /** Names of locality-ordered endpoints resolved in this generation. */
  localityEndpointNames(): string[] {
    const prefix = `${ENDPOINT_TYPE}\n\n`;
    return [...this.proxyless.keys()].filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length));
  }

  /** Proxyless targets resolved in this generation, by type: what a rule or service change may alter. */
  targetNames(typeUrl: TypeUrl): string[] {
    const prefix = `${typeUrl}\n`;
    return [...this.named.keys()].filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length));
  }

  /** Listener and route of a proxyless client's target "HOST:PORT". */
  private target(typeUrl: typeof LISTENER_TYPE | typeof ROUTE_TYPE, name: string): EncodedResource | undefined {
    const key = `${typeUrl}\n${name}`;
    const hit = this.named.get(key);
    if (hit !== undefined) return hit ?? undefined;
    const t = resolveTarget(this.model, name);
    let r: EncodedResource | null = null;
    if (t) {
      const problems: RouteProblem[] = [];
      const msg = typeUrl === LISTENER_TYPE ? buildApiListener(name) : buildProxylessTargetRoute(this.model, name, t, problems);
      if (problems.length) {
        this.proxylessProblems.push(...problems);
        this.report(problems);
      }
      r = new EncodedResource(typeUrl, name, msg);
      const before = this.previous?.named.get(key);
      if (before && before.version === r.version) r = before;
    }
    this.named.set(key, r);
    return r ?? undefined;
  }
}

/**
 * `changed` plus the locality-ordered endpoints proxyless clients were sent in the generation
 * before: they are rebuilt from this generation's endpoints and rules, and compared by the server.
 */
function withLocalityEndpoints(changed: ReadonlyMap<TypeUrl, ReadonlySet<string>>, previous: Generation | undefined): ReadonlyMap<TypeUrl, ReadonlySet<string>> {
  const names = previous?.localityEndpointNames() ?? [];
  if (!names.length) return changed;
  const out = new Map(changed);
  out.set(ENDPOINT_TYPE, new Set([...(changed.get(ENDPOINT_TYPE) ?? []), ...names]));
  return out;
}
