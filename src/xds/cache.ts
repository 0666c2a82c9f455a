// The xDS resource cache: turns model snapshots into encoded resources, once per content.
// Each generation holds the resources of one model version; unchanged resources are
// carried over byte-for-byte from the previous generation, never re-encoded.
import type { ModelSnapshot } from '../model/snapshot.ts';
import { contentHash } from '../model/hash.ts';
import { sameEntries } from '../model/same.ts';
import { digest, patched, type SetDigest, setVersion } from './resource-sets.ts';
import { messageType } from './proto.ts';
import type { ProxyInfo } from './proxy.ts';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, MESSAGE_OF, ROUTE_TYPE, type TypeUrl } from './resources.ts';
import { encodeAny, encodeDeltaResource } from './wire.ts';
import { buildInboundCluster, buildServiceClusters, planServiceClusters } from './generators/cluster.ts';
import { buildLoadAssignment } from './generators/endpoint.ts';
import { buildApiListener, buildSidecarListeners } from './generators/listener.ts';
import { buildPassthroughClusters, buildTransparentInboundCluster } from './generators/transparent.ts';
import { buildInboundRoute, buildOutboundRoute, buildTargetRoute, resolveTarget, type RouteProblem, targetRuleRoutes } from './generators/route.ts';
import { outboundCluster, parseOutboundCluster } from './generators/names.ts';
import { destinationRulesByHost, localityAssignment, usesLocalityLb } from './generators/destination-rule.ts';
import { sourceSelectors } from './generators/http-route.ts';
import { checkView, missing, referencesOf } from './references.ts';
import { type ClassInputs, inputsKey, type ProxyClass, proxyClass } from './proxy-class.ts';
import type { DestinationRule, PolicySettings } from '../model/rules/types.ts';
import type { Service } from '../model/types.ts';
import { logger } from '../shared/log.ts';
import { metrics } from '../shared/metrics.ts';

const log = logger('xds');
const problemsGauge = metrics.gauge('isthmus_xds_problems', 'Parts of the configuration the xDS generators refused in the current generation (see /debug/registryz xdsProblems).');
const encodes = metrics.counter('isthmus_xds_resource_encodes_total', 'Resources encoded to protobuf, by type (once per content version).');

export class EncodedResource {
  readonly typeUrl: TypeUrl;
  readonly name: string;
  /** Hash of the encoded bytes: equal content gives equal versions in every process. */
  readonly version: string;
  /** The resource as an encoded google.protobuf.Any, shared by every response. */
  readonly any: Buffer;
  private delta?: Buffer;

  constructor(typeUrl: TypeUrl, name: string, message: Record<string, unknown>) {
    const t = messageType(MESSAGE_OF[typeUrl]);
    const bytes = t.encode(t.fromObject(message)).finish();
    this.typeUrl = typeUrl;
    this.name = name;
    this.version = contentHash(bytes);
    this.any = encodeAny(typeUrl, bytes);
    encodes.inc({ type: MESSAGE_OF[typeUrl] });
  }

  /** The delta-protocol Resource wrapper, built on first use and then shared. */
  deltaBytes(): Buffer {
    return (this.delta ??= encodeDeltaResource(this.name, this.version, this.any));
  }
}

export type ResourceMap = ReadonlyMap<string, EncodedResource>;

/** The resources one class of proxies (same listener-shaping metadata) receives. */
export interface ClassView {
  readonly clusters: ResourceMap;
  readonly listeners: ResourceMap;
  readonly routes: ResourceMap;
  readonly versions: Readonly<Record<TypeUrl, string>>;
  /** What the generators refused while building this class's resources. */
  readonly problems: readonly RouteProblem[];
  /** Explicit mode: TCP port → the service its listener serves; the next generation keeps these owners. */
  readonly tcpPorts: ReadonlyMap<number, string>;
}

interface ServiceEntryCache {
  readonly serviceHash: string;
  readonly endpointHash: string;
  readonly clusters: EncodedResource[];
  readonly endpoints: EncodedResource[];
  /** DestinationRule settings refused while building this service's clusters. */
  readonly problems: readonly RouteProblem[];
  /** Clusters with locality load balancing: re-prioritised per proxy locality in each view. */
  readonly locality: readonly LocalityCluster[];
}

/** An EDS cluster whose endpoints are sent inline, ordered by priority from the proxy's locality. */
interface LocalityCluster {
  readonly cluster: Record<string, unknown>;
  readonly assignment: Record<string, unknown>;
  readonly policy: PolicySettings;
}

/** What an update computes for a generation; the cache adds the sequence number and the link back. */
interface GenerationInit {
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
    this.changed = init.changed;
    this.endpointsVersion = init.endpointsVersion;
    this.previous = init.previous;
    this.locality = init.locality;
    this.selectors = sourceSelectors(init.model);
    // Proxies differ by locality only where a DestinationRule asks for locality load balancing.
    this.classInputs = { localityLb: this.locality.size > 0, selectors: this.selectors };
    this.classInputsKey = inputsKey(this.classInputs);
    // Locality clusters carry their endpoints inline: an endpoint change reshapes them.
    this.shapeUnchanged = !init.servicesChanged && init.changed.get(CLUSTER_TYPE)!.size === 0 && this.locality.size === 0;
  }

  /** Every problem found so far: the shared resources' and those of each class view built (one entry per name and reason). */
  get problems(): readonly RouteProblem[] {
    const out = new Map<string, RouteProblem>();
    for (const p of this.sharedProblems) out.set(`${p.name}\n${p.reason}`, p);
    for (const v of this.views.values()) for (const p of v.problems) out.set(`${p.name}\n${p.reason}`, p);
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
    const reuse = (typeUrl: TypeUrl, name: string, msg: Record<string, unknown>, old?: ResourceMap): EncodedResource => {
      const fresh = new EncodedResource(typeUrl, name, msg);
      const before = old?.get(name);
      return before && before.version === fresh.version ? before : fresh;
    };
    const listeners = new Map<string, EncodedResource>();
    const tcpPorts = new Map<number, string>();
    for (const l of buildSidecarListeners(this.model, cls, problems, this.vips, { held: prev?.tcpPorts, bound: tcpPorts })) {
      listeners.set(l.name as string, reuse(LISTENER_TYPE, l.name as string, l, prev?.listeners));
    }
    const clusters = new Map<string, EncodedResource>(this.clusters);
    for (const [name, lc] of this.locality) {
      const msg: Record<string, unknown> = { ...lc.cluster, type: 'STATIC', load_assignment: localityAssignment(lc.assignment, cls.locality ?? {}, lc.policy) };
      delete msg.eds_cluster_config;
      clusters.set(name, reuse(CLUSTER_TYPE, name, msg, prev?.clusters));
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
    checkView({ listeners, routes, clusters }, problems);
    v = {
      clusters,
      listeners,
      routes,
      versions: {
        [CLUSTER_TYPE]: setVersion(clusters),
        [LISTENER_TYPE]: setVersion(listeners),
        [ROUTE_TYPE]: setVersion(routes),
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
      case ENDPOINT_TYPE:
        return this.endpoints;
    }
  }

  /** One named resource, or undefined if it does not exist. */
  resolve(typeUrl: TypeUrl, name: string, proxy: ProxyInfo): EncodedResource | undefined {
    switch (typeUrl) {
      case ENDPOINT_TYPE:
        return this.endpoints.get(name);
      case CLUSTER_TYPE:
        return (this.locality.has(name) ? undefined : this.clusters.get(name)) ?? this.view(proxy).clusters.get(name);
      case LISTENER_TYPE:
        return (proxy.kind === 'envoy' ? this.view(proxy).listeners.get(name) : undefined) ?? this.target(LISTENER_TYPE, name);
      case ROUTE_TYPE:
        return (name === this.outboundRoute.name ? this.outboundFor(this.classOf(proxy)) : this.view(proxy).routes.get(name)) ?? this.target(ROUTE_TYPE, name);
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
      const msg = typeUrl === LISTENER_TYPE ? buildApiListener(name) : buildTargetRoute(name, t.cluster, targetRuleRoutes(this.model, t.host, t.port, []));
      r = new EncodedResource(typeUrl, name, msg);
      const before = this.previous?.named.get(key);
      if (before && before.version === r.version) r = before;
    }
    this.named.set(key, r);
    return r ?? undefined;
  }
}

/** An update's result, committed to the cache only once it has passed the consistency check. */
interface Built {
  readonly init: GenerationInit;
  /** Service entries built by this update: every entry when `all`, else the ones to replace. */
  readonly entries: Map<string, ServiceEntryCache>;
  readonly all: boolean;
  readonly endpointDigest: SetDigest;
}

/** Builds generations from model snapshots, reusing what did not change. */
export class XdsCache {
  private seq = 0;
  private current?: Generation;
  private services = new Map<string, ServiceEntryCache>();
  private vips: ReadonlyMap<string, string> = new Map();
  private rulesHash = '';
  /** Digest of the current generation's endpoints, behind its endpointsVersion. */
  private endpointDigest?: SetDigest;
  private rules?: { readonly services: ReadonlyMap<string, Service>; readonly drs: readonly DestinationRule[]; readonly byHost: ReadonlyMap<string, DestinationRule> };
  /** Problems already logged: each is logged once while it lasts. */
  private logged = new Set<string>();

  get generation(): Generation | undefined {
    return this.current;
  }

  update(model: ModelSnapshot, vips: ReadonlyMap<string, string> = new Map()): Generation {
    const prev = this.current;
    const rulesChanged = model.rulesHash !== this.rulesHash;
    const vipsChanged = !sameEntries(vips, this.vips);
    // The model reuses its service map while no service changed: then only endpoints can differ.
    const built =
      (prev && model.services === prev.model.services && !rulesChanged && !vipsChanged ? this.endpointsOnly(model, vips, prev) : undefined) ??
      this.rebuild(model, vips, prev, rulesChanged || vipsChanged);
    if (built.all) this.services = built.entries;
    else for (const [host, entry] of built.entries) this.services.set(host, entry);
    this.vips = vips;
    this.rulesHash = model.rulesHash;
    this.endpointDigest = built.endpointDigest;
    this.current = new Generation({ ...built.init, seq: ++this.seq, ...(prev ? { previous: prev } : {}), report: (ps) => this.reportProblems(ps) });
    // What the previous generation still had stays logged; what went away may be logged again should it return.
    const lasting = new Set([...(prev?.problems ?? []), ...built.init.problems].map(problemKey));
    this.logged = new Set([...this.logged].filter((k) => lasting.has(k)));
    this.reportProblems(built.init.problems);
    prev?.forgetPrevious();
    return this.current;
  }

  private reportProblems(problems: readonly RouteProblem[]): void {
    for (const p of problems) {
      const key = problemKey(p);
      if (this.logged.has(key)) continue;
      this.logged.add(key);
      log.warn('refused in xDS (see /debug/registryz xdsProblems)', { name: p.name, reason: p.reason });
    }
    problemsGauge.set({}, this.current?.problems.length ?? 0);
  }

  /**
   * Only the services whose endpoints changed are visited, and the previous generation's maps
   * are patched. Undefined when that cannot give what a rebuild would (a resource name
   * added or removed, or held by another service): the caller then rebuilds.
   */
  private endpointsOnly(model: ModelSnapshot, vips: ReadonlyMap<string, string>, prev: Generation): Built | undefined {
    const hosts = changedEndpointHosts(prev.model, model);
    if (!hosts) return undefined;
    const rules = this.rulesByHost(model);
    const entries = new Map<string, ServiceEntryCache>();
    const clusterChanges = new Map<string, EncodedResource>();
    const endpointChanges = new Map<string, EncodedResource>();
    let locality: Map<string, LocalityCluster> | undefined;
    for (const host of hosts) {
      const before = this.services.get(host);
      if (!before) return undefined;
      const entry = serviceEntry(model, host, rules, before, false);
      if (!replaces(before.clusters, entry.clusters, prev.clusters, clusterChanges)) return undefined;
      if (!replaces(before.endpoints, entry.endpoints, prev.endpoints, endpointChanges)) return undefined;
      if (before.locality.length || entry.locality.length) {
        if (before.locality.length !== entry.locality.length || entry.locality.some((l, i) => l.cluster.name !== before.locality[i]!.cluster.name)) return undefined;
        locality ??= new Map(prev.locality);
        for (const l of entry.locality) locality.set(l.cluster.name as string, l);
      }
      entries.set(host, entry);
    }
    const clusters = patched(prev.clusters, clusterChanges);
    const endpoints = patched(prev.endpoints, endpointChanges);
    // Same services and names as the previous generation, which passed: only these services' resources are new.
    checkConsistent(model, clusters, endpoints, entries.keys(), [...entries.values()].flatMap((e) => e.clusters.map((c) => c.name)));
    const endpointDigest = digest(this.endpointDigest, [...endpointChanges].map(([n, r]) => [n, r.version]));
    return {
      entries,
      all: false,
      endpointDigest,
      init: {
        model,
        clusters,
        endpoints,
        endpointsVersion: endpointDigest.version,
        outboundRoute: prev.outboundRoute,
        problems: prev.sharedProblems,
        changed: new Map<TypeUrl, ReadonlySet<string>>([
          [CLUSTER_TYPE, new Set(clusterChanges.keys())],
          [ENDPOINT_TYPE, new Set(endpointChanges.keys())],
          [ROUTE_TYPE, new Set()],
          [LISTENER_TYPE, new Set()],
        ]),
        servicesChanged: false,
        vips,
        locality: locality ?? prev.locality,
      },
    };
  }

  /** Every service visited; entries whose service and endpoints are unchanged are reused. */
  private rebuild(model: ModelSnapshot, vips: ReadonlyMap<string, string>, prev: Generation | undefined, broad: boolean): Built {
    // A rule or VIP change rebuilds the routes, like a service change; a rule change rebuilds every service's clusters too.
    let servicesChanged = !prev || model.services.size !== this.services.size || broad;
    const rulesChanged = model.rulesHash !== this.rulesHash;
    const rules = this.rulesByHost(model);
    const entries = new Map<string, ServiceEntryCache>();
    const clusterProblems: RouteProblem[] = [];
    const locality = new Map<string, LocalityCluster>();
    const clusters = new Map<string, EncodedResource>();
    const endpoints = new Map<string, EncodedResource>();
    for (const host of model.services.keys()) {
      const before = this.services.get(host);
      if (before?.serviceHash !== model.serviceHashes.get(host)) servicesChanged = true;
      const entry = serviceEntry(model, host, rules, before, rulesChanged);
      clusterProblems.push(...entry.problems);
      for (const l of entry.locality) locality.set(l.cluster.name as string, l);
      entries.set(host, entry);
      for (const c of entry.clusters) clusters.set(c.name, c);
      for (const e of entry.endpoints) endpoints.set(e.name, e);
    }

    // The route table depends on service definitions only: an endpoint change keeps it.
    let outboundRoute: EncodedResource;
    let problems: RouteProblem[];
    if (prev && !servicesChanged) {
      outboundRoute = prev.outboundRoute;
      problems = [...prev.sharedProblems];
    } else {
      problems = [];
      outboundRoute = new EncodedResource(ROUTE_TYPE, 'outbound', buildOutboundRoute(model, problems, vips));
      if (prev && prev.outboundRoute.version === outboundRoute.version) outboundRoute = prev.outboundRoute;
      problems.push(...clusterProblems);
    }

    const labelled = sourceSelectors(model).length > 0 || (prev !== undefined && sourceSelectors(prev.model).length > 0);
    const changedEndpoints = diff(prev?.endpoints, endpoints);
    const changed = new Map<TypeUrl, Set<string>>([
      [CLUSTER_TYPE, diff(prev?.clusters, clusters)],
      [ENDPOINT_TYPE, changedEndpoints],
      // Tables built per proxy labels (sourceLabels rules) may change while the shared one does not.
      [ROUTE_TYPE, prev && prev.outboundRoute === outboundRoute && !(servicesChanged && labelled) ? new Set() : new Set([outboundRoute.name])],
      [LISTENER_TYPE, new Set()],
    ]);
    // Proxyless target routes follow services and rules: reconcile the ones clients asked for.
    if (prev && servicesChanged) for (const n of prev.targetNames(ROUTE_TYPE)) changed.get(ROUTE_TYPE)!.add(n);
    checkConsistent(model, clusters, endpoints);
    // Routes → clusters: the shared table names only clusters every proxy gets.
    const dangling = missing(referencesOf(outboundRoute), { routes: new Map(), clusters });
    if (dangling.length) throw new Error(`inconsistent snapshot: route ${outboundRoute.name} names missing ${dangling.slice(0, 5).join(', ')}`);
    const endpointDigest = digest(
      prev && this.endpointDigest,
      [...changedEndpoints].map((n) => [n, endpoints.get(n)?.version]),
    );
    return {
      entries,
      all: true,
      endpointDigest,
      init: { model, clusters, endpoints, endpointsVersion: endpointDigest.version, outboundRoute, problems, changed, servicesChanged, vips, locality },
    };
  }

  /** DestinationRules by host, rebuilt only when the services or the rules are new objects. */
  private rulesByHost(model: ModelSnapshot): ReadonlyMap<string, DestinationRule> {
    const r = this.rules;
    if (r?.services === model.services && r.drs === model.destinationRules) return r.byHost;
    const byHost = destinationRulesByHost(model);
    this.rules = { services: model.services, drs: model.destinationRules, byHost };
    return byHost;
  }
}

/**
 * The entry of one service: `before` itself while its service and endpoints are unchanged;
 * else rebuilt, keeping the resources whose content is unchanged.
 */
function serviceEntry(model: ModelSnapshot, host: string, rules: ReadonlyMap<string, DestinationRule>, before: ServiceEntryCache | undefined, rulesChanged: boolean): ServiceEntryCache {
  const svc = model.services.get(host)!;
  const serviceHash = model.serviceHashes.get(host)!;
  const endpointHash = model.endpointHashes.get(host)!;
  if (before && !rulesChanged && before.serviceHash === serviceHash && before.endpointHash === endpointHash) return before;
  const eps = model.endpoints.get(host) ?? [];
  const sameService = before?.serviceHash === serviceHash && !rulesChanged;
  // A DNS cluster carries its endpoints inline, so an endpoint change rebuilds it.
  const plans = planServiceClusters(svc, eps, rules);
  const problems: RouteProblem[] = [];
  const messages = sameService && svc.resolution !== 'DNS' ? undefined : buildServiceClusters(svc, plans, problems);
  const clusters = messages ? messages.map((c) => reuseIfSame(before?.clusters, new EncodedResource(CLUSTER_TYPE, c.name as string, c))) : before!.clusters;
  const locality: LocalityCluster[] = [];
  if (svc.resolution !== 'DNS') {
    const byName = new Map((messages ?? before!.locality.map((l) => l.cluster)).map((m) => [m.name as string, m]));
    for (const p of plans) {
      const cluster = byName.get(p.name);
      if (p.policy && usesLocalityLb(p.policy) && cluster) locality.push({ cluster, policy: p.policy, assignment: buildLoadAssignment(p.name, p.port, p.endpoints) });
    }
  }
  const endpoints =
    svc.resolution === 'DNS' ? [] : plans.map((p) => reuseIfSame(before?.endpoints, new EncodedResource(ENDPOINT_TYPE, p.name, buildLoadAssignment(p.name, p.port, p.endpoints))));
  return { serviceHash, endpointHash, clusters, endpoints, problems: messages ? problems : before!.problems, locality };
}

/** Keeps the previous object when content is equal, so diffs see only what really changed. */
function reuseIfSame(previous: readonly EncodedResource[] | undefined, fresh: EncodedResource): EncodedResource {
  const before = previous?.find((r) => r.name === fresh.name);
  return before && before.version === fresh.version ? before : fresh;
}

/**
 * Adds to `changes` the resources of `after` that replace those of `before`, name for name.
 * False when the names differ, or when `map` holds another service's resource under a name.
 */
function replaces(before: readonly EncodedResource[], after: readonly EncodedResource[], map: ResourceMap, changes: Map<string, EncodedResource>): boolean {
  if (before.length !== after.length) return false;
  for (let i = 0; i < after.length; i++) {
    const a = before[i]!;
    const b = after[i]!;
    if (a === b) continue;
    if (a.name !== b.name || map.get(a.name) !== a) return false;
    changes.set(b.name, b);
  }
  return true;
}

/**
 * Hosts whose endpoints differ between two snapshots of one service map. Both list endpoint
 * hashes in that map's order, so they are compared in one pass, without lookups; undefined
 * if the hosts do not pair up.
 */
function changedEndpointHosts(before: ModelSnapshot, after: ModelSnapshot): string[] | undefined {
  if (before.endpointHashes.size !== after.endpointHashes.size) return undefined;
  const out: string[] = [];
  const was = before.endpointHashes.entries();
  for (const [host, hash] of after.endpointHashes) {
    const [h, w] = was.next().value!;
    if (h !== host) return undefined;
    if (w !== hash) out.push(host);
  }
  return out;
}

/**
 * Every EDS cluster has its assignment, and every service port its cluster; else the snapshot
 * is not served. With `hosts` and `names`, checks those services' ports and those clusters only.
 */
function checkConsistent(
  model: ModelSnapshot,
  clusters: ResourceMap,
  endpoints: ResourceMap,
  hosts: Iterable<string> = model.services.keys(),
  names: Iterable<string> = clusters.keys(),
): void {
  const missing: string[] = [];
  for (const host of hosts) {
    for (const p of model.services.get(host)?.ports ?? []) {
      const name = outboundCluster(host, p.number);
      if (!clusters.has(name)) missing.push(`cluster ${name}`);
    }
  }
  for (const name of names) {
    const svc = model.services.get(parseOutboundCluster(name)?.host ?? '');
    if (svc && svc.resolution !== 'DNS' && clusters.has(name) && !endpoints.has(name)) missing.push(`endpoints of ${name}`);
  }
  if (missing.length) throw new Error(`inconsistent snapshot: missing ${missing.slice(0, 5).join(', ')}`);
}

function diff(before: ResourceMap | undefined, after: ResourceMap): Set<string> {
  const out = new Set<string>();
  for (const [name, r] of after) if (before?.get(name) !== r) out.add(name);
  if (before) for (const name of before.keys()) if (!after.has(name)) out.add(name);
  return out;
}

function problemKey(p: RouteProblem): string {
  return `${p.name}\n${p.reason}`;
}

