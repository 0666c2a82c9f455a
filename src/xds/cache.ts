// The xDS resource cache: turns model snapshots into encoded resources, once per content.
// Each generation holds the resources of one model version; unchanged resources are
// carried over byte-for-byte from the previous generation, never re-encoded.
import type { ModelSnapshot } from '../model/snapshot.ts';
import { sameEntries } from '../model/same.ts';
import type { DestinationRule } from '../model/rules/types.ts';
import type { Service } from '../model/types.ts';
import { logger } from '../shared/log.ts';
import { metrics } from '../shared/metrics.ts';
import { EncodedResource, type ResourceMap } from './encoded.ts';
import { Generation, type GenerationInit, type LocalityCluster } from './generation.ts';
import { buildServiceClusters, planServiceClusters } from './generators/cluster.ts';
import { destinationRulesByHost, usesLocalityLb } from './generators/destination-rule.ts';
import { buildLoadAssignment } from './generators/endpoint.ts';
import { sourceSelectors } from './generators/http-route.ts';
import { outboundCluster, parseOutboundCluster } from './generators/names.ts';
import { buildOutboundRoute, type RouteProblem } from './generators/route.ts';
import { missing, referencesOf } from './references.ts';
import { digest, patched, type SetDigest } from './resource-sets.ts';
import { CLUSTER_TYPE, DUBBO_ROUTE_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, type TypeUrl } from './resources.ts';
import { dubboRouteNames } from './generators/dubbo-route.ts';

export { EncodedResource, type ResourceMap } from './encoded.ts';
export { type ClassView, Generation } from './generation.ts';

const log = logger('xds');
const problemsGauge = metrics.gauge('isthmus_xds_problems', 'Parts of the configuration the xDS generators refused in the current generation (see /debug/registryz xdsProblems).');

interface ServiceEntryCache {
  readonly serviceHash: string;
  readonly endpointHash: string;
  readonly clusters: EncodedResource[];
  readonly endpoints: EncodedResource[];
  /** DestinationRule settings refused while building this service's clusters. */
  readonly problems: readonly RouteProblem[];
  /** Clusters with locality load balancing: re-prioritised per proxy locality in each view. */
  readonly locality: readonly LocalityCluster[];
  /** Clusters a DestinationRule gives tls ISTIO_MUTUAL: only sidecars with certificates can use them. */
  readonly istioMutual: readonly string[];
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
  /** Of the SPIFFE IDs sidecars with certificates accept from each other. */
  readonly trustDomain: string | undefined;
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

  constructor(opts: { readonly trustDomain?: string } = {}) {
    this.trustDomain = opts.trustDomain;
  }

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
    this.current = new Generation({ ...built.init, ...(this.trustDomain ? { trustDomain: this.trustDomain } : {}), seq: ++this.seq, ...(prev ? { previous: prev } : {}), report: (ps) => this.reportProblems(ps) });
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
        istioMutual: prev.istioMutual,
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
          // Dubbo route tables follow services and rules, not endpoints.
          [DUBBO_ROUTE_TYPE, new Set()],
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
    const istioMutual = new Set<string>();
    for (const host of model.services.keys()) {
      const before = this.services.get(host);
      if (before?.serviceHash !== model.serviceHashes.get(host)) servicesChanged = true;
      const entry = serviceEntry(model, host, rules, before, rulesChanged);
      clusterProblems.push(...entry.problems);
      for (const l of entry.locality) locality.set(l.cluster.name as string, l);
      entries.set(host, entry);
      for (const c of entry.clusters) clusters.set(c.name, c);
      for (const e of entry.endpoints) endpoints.set(e.name, e);
      for (const n of entry.istioMutual) istioMutual.add(n);
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
      // Built per proxy class: every table a Dubbo port could have, when services or rules changed.
      [DUBBO_ROUTE_TYPE, prev && !servicesChanged && !rulesChanged ? new Set() : new Set(dubboRouteNames(model))],
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
      init: { model, clusters, endpoints, endpointsVersion: endpointDigest.version, outboundRoute, problems, changed, servicesChanged, vips, locality, istioMutual },
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
  const peerAuth = model.peerAuthentications.length ? { policies: model.peerAuthentications, namespace: svc.namespace } : undefined;
  const problems: RouteProblem[] = [];
  const messages = sameService && svc.resolution !== 'DNS' ? undefined : buildServiceClusters(svc, plans, problems);
  const clusters = messages ? messages.map((c) => reuseIfSame(before?.clusters, new EncodedResource(CLUSTER_TYPE, c.name as string, c))) : before!.clusters;
  const locality: LocalityCluster[] = [];
  if (svc.resolution !== 'DNS') {
    const byName = new Map((messages ?? before!.locality.map((l) => l.cluster)).map((m) => [m.name as string, m]));
    for (const p of plans) {
      const cluster = byName.get(p.name);
      if (p.policy && usesLocalityLb(p.policy) && cluster) locality.push({ cluster, policy: p.policy, assignment: buildLoadAssignment(p.name, p.port, p.endpoints, peerAuth) });
    }
  }
  const endpoints =
    svc.resolution === 'DNS' ? [] : plans.map((p) => reuseIfSame(before?.endpoints, new EncodedResource(ENDPOINT_TYPE, p.name, buildLoadAssignment(p.name, p.port, p.endpoints, peerAuth))));
  const istioMutual = plans.filter((p) => p.policy?.tls?.mode === 'ISTIO_MUTUAL').map((p) => p.name);
  return { serviceHash, endpointHash, clusters, endpoints, problems: messages ? problems : before!.problems, locality, istioMutual };
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

