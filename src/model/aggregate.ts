import { combineLatest, distinctUntilChanged, type Observable, scan, startWith } from 'rxjs';
import type { Registry } from './registry.ts';
import type { DestinationRule, VirtualService } from './rules/types.ts';
import type { Endpoint, RegistryState, Service, ServicePort, Workload } from './types.ts';
import { type Conflict, ModelSnapshot, registryStatus } from './snapshot.ts';
import { sameEntries, sameItems } from './same.ts';
import { checkRules, hostIndex, type RuleCheckResult } from './rules/index.ts';
import { metrics } from '../shared/metrics.ts';

const ruleRejectionsGauge = metrics.gauge('isthmus_rules_rejected', 'Routing rules currently refused at serve time (see /debug/registryz).');

type Parts = readonly (readonly Endpoint[])[];

/** What one merge leaves for the next, so that what did not change keeps its identity. */
interface MergeMemo {
  /**
   * The registries' service arrays, and what they merged into: in registry order (the
   * host index depends on it) and as the snapshot's sorted map.
   */
  readonly services: {
    readonly sources: readonly (readonly Service[])[];
    readonly ordered: ReadonlyMap<string, Service>;
    readonly merged: ReadonlyMap<string, Service>;
    readonly conflicts: readonly Conflict[];
  };
  /** Per registry (by position): its endpoints grouped by service. */
  readonly grouped: readonly Grouped[];
  readonly workloads?: { readonly sources: readonly (readonly Workload[])[]; readonly index: WorkloadIndex };
  /** Per selecting service: the endpoints its selector picked, for that service object and index. */
  readonly selected: ReadonlyMap<string, { readonly svc: Service; readonly index: WorkloadIndex; readonly part: readonly Endpoint[] }>;
  /** Hostnames whose list joins several parts (registries, selected workloads): the parts and the list. */
  readonly joined: ReadonlyMap<string, { readonly parts: Parts; readonly list: readonly Endpoint[] }>;
  readonly rules: { readonly vss: readonly VirtualService[]; readonly drs: readonly DestinationRule[]; readonly result: RuleCheckResult };
}
const memos = new WeakMap<ModelSnapshot, MergeMemo>();

/**
 * Merges the states of several registries into one snapshot. A hostname defined by
 * several registries is one service: ports and interfaces are united, endpoints from
 * every registry are kept side by side (the migration case). Attributes that disagree
 * are reported as conflicts; the first registry in order wins.
 *
 * `previous` (the last merge's result) makes the cost follow what changed: a registry's
 * endpoints are regrouped only for the services whose endpoint objects changed, and an
 * unchanged list stays the same (frozen) object, whose order and hash the snapshot reuses;
 * unchanged service arrays reuse the previous services outright. Any previous snapshot is
 * safe: every reuse is checked by object identity.
 */
export function mergeStates(states: readonly RegistryState[], previous?: ModelSnapshot): ModelSnapshot {
  const memo = previous && memos.get(previous);
  const serviceSources = states.map((s) => s.services);
  let services: ReadonlyMap<string, Service>;
  let ordered: ReadonlyMap<string, Service>;
  let conflicts: readonly Conflict[];
  if (memo && sameItems(memo.services.sources, serviceSources)) ({ merged: services, ordered, conflicts } = memo.services);
  else {
    ({ services, conflicts } = mergeServices(states));
    ordered = services;
  }

  const grouped = states.map((s, i) => groupEndpoints(s.endpoints, memo?.grouped[i]));
  const workloadSources = states.map((s) => s.workloads);
  let workloads = memo?.workloads && sameItems(memo.workloads.sources, workloadSources) ? memo.workloads : undefined;
  const selected = new Map<string, { svc: Service; index: WorkloadIndex; part: readonly Endpoint[] }>();
  const joined = new Map<string, { parts: Parts; list: readonly Endpoint[] }>();
  const endpoints = new Map<string, readonly Endpoint[]>();
  for (const [host, svc] of services) {
    // Usually one registry's group, used as it is; several parts are joined.
    let list: readonly Endpoint[] | undefined;
    let parts: (readonly Endpoint[])[] | undefined;
    for (const g of grouped) {
      const part = g.groups.get(host);
      if (!part) continue;
      if (!list) list = part;
      else (parts ??= [list]).push(part);
    }
    const sel = svc.workloadSelector;
    if (sel) {
      workloads ??= { sources: workloadSources, index: new WorkloadIndex(workloadSources) };
      let pick = memo?.selected.get(host);
      if (pick?.svc !== svc || pick.index !== workloads.index) {
        const part: Endpoint[] = [];
        for (const w of workloads.index.candidates(svc.namespace, sel)) if (matches(sel, w.labels)) part.push(workloadEndpoint(w, host));
        pick = { svc, index: workloads.index, part };
      }
      selected.set(host, pick);
      if (pick.part.length) {
        if (!list) list = pick.part;
        else (parts ??= [list]).push(pick.part);
      }
    }
    if (parts) {
      const before = memo?.joined.get(host);
      // Registry groups keep their identity while unchanged; selected parts are compared item by item.
      const same = before && before.parts.length === parts.length && parts.every((p, i) => p === before.parts[i] || sameItems(p, before.parts[i]!));
      const entry = same ? before : { parts, list: Object.freeze(parts.flat()) };
      joined.set(host, entry);
      list = entry.list;
    }
    if (list) endpoints.set(host, list);
  }

  // Rules are checked against the merged services: an invalid rule is refused, the others apply.
  const vss = states.flatMap((s) => s.virtualServices ?? []);
  const drs = states.flatMap((s) => s.destinationRules ?? []);
  let rules = memo?.rules;
  if (!rules || !sameItems(rules.vss, vss) || !sameItems(rules.drs, drs) || !sameEntries(previous!.services, services)) {
    // Without rules the host index is not needed (it costs a pass over every service).
    const result = checkRules(vss, drs, vss.length || drs.length ? hostIndex(ordered.values()) : undefined);
    rules = { vss, drs, result };
  }
  const { result } = rules;
  ruleRejectionsGauge.set({}, result.rejections.length);
  const snapshot = new ModelSnapshot({
    services,
    endpoints,
    registries: states.map(registryStatus),
    conflicts,
    rules: {
      // Frozen, so the snapshot may memoise their hash (they are reused while the inputs are).
      virtualServices: Object.freeze(result.accepted.virtualServices),
      destinationRules: Object.freeze(result.accepted.destinationRules),
      peerAuthentications: states.flatMap((s) => s.peerAuthentications ?? []),
      rejections: result.rejections,
      warnings: result.warnings,
    },
    ...(previous ? { previous } : {}),
  });
  memos.set(snapshot, {
    // The snapshot's own map: passed back as is, it lets the next snapshot reuse what it derived from it.
    services: { sources: serviceSources, ordered, merged: snapshot.services, conflicts },
    grouped,
    ...(workloads ? { workloads } : {}),
    selected,
    joined,
    rules,
  });
  return snapshot;
}

function mergeServices(states: readonly RegistryState[]): { services: Map<string, Service>; conflicts: Conflict[] } {
  const services = new Map<string, Service>();
  const conflicts: Conflict[] = [];
  for (const state of states) {
    for (const svc of state.services) {
      const prev = services.get(svc.hostname);
      services.set(svc.hostname, prev ? mergeService(prev, svc, conflicts) : svc);
    }
  }
  dropAliasClashes(services, conflicts);
  return { services, conflicts };
}

/** One registry's endpoints by service, each list frozen. */
interface Grouped {
  readonly source: readonly Endpoint[];
  readonly groups: ReadonlyMap<string, readonly Endpoint[]>;
}

/**
 * Groups a registry's endpoints by service. Against the grouping of its previous array,
 * only the services with an endpoint object added, removed or replaced are regrouped;
 * the other lists are the previous objects.
 */
function groupEndpoints(source: readonly Endpoint[], prev: Grouped | undefined): Grouped {
  if (prev?.source === source) return prev;
  // Beyond a quarter of the services, one pass over everything is cheaper.
  const diff = prev && diffEndpoints(prev.source, source, Math.max(16, prev.groups.size >> 2));
  if (!prev || !diff) {
    const fresh = new Map<string, Endpoint[]>();
    for (const e of source) push(fresh, e.service, e);
    const groups = new Map<string, readonly Endpoint[]>();
    for (const [host, list] of fresh) {
      const before = prev?.groups.get(host);
      groups.set(host, before && sameItems(before, list) ? before : Object.freeze(list));
    }
    return { source, groups };
  }
  const groups = new Map(prev.groups);
  // An endpoint replaced in place (same position, same service) takes the old one's place
  // in its list; anything else regroups its services with a pass over the array.
  const edited = new Map<string, Endpoint[]>();
  const rescan = new Set(diff.rescan);
  for (const [a, b] of diff.replaced) {
    if (rescan.has(a.service)) continue;
    const list = edited.get(a.service) ?? [...(prev.groups.get(a.service) ?? [])];
    edited.set(a.service, list);
    const k = list.indexOf(a);
    if (k >= 0 && list.lastIndexOf(a) === k) list[k] = b;
    else rescan.add(a.service);
  }
  for (const [host, list] of edited) if (!rescan.has(host)) groups.set(host, Object.freeze(list));
  if (rescan.size) {
    const fresh = new Map<string, Endpoint[]>();
    for (const e of source) if (rescan.has(e.service)) push(fresh, e.service, e);
    for (const host of rescan) {
      const list = fresh.get(host);
      if (list) groups.set(host, Object.freeze(list));
      else groups.delete(host);
    }
  }
  return { source, groups };
}

/**
 * How a registry's endpoint array changed, by object identity: position by position when
 * the length is the same, else the span between the common head and tail. `replaced` are
 * endpoints swapped in place for one of the same service; the services of any other
 * change are in `rescan`. Undefined when more than `limit` changes.
 */
function diffEndpoints(before: readonly Endpoint[], after: readonly Endpoint[], limit: number): { replaced: [Endpoint, Endpoint][]; rescan: Set<string> } | undefined {
  const replaced: [Endpoint, Endpoint][] = [];
  const rescan = new Set<string>();
  if (before.length === after.length) {
    for (let i = 0; i < after.length; i++) {
      const a = before[i]!;
      const b = after[i]!;
      if (a === b) continue;
      if (a.service === b.service) replaced.push([a, b]);
      else rescan.add(a.service).add(b.service);
      if (replaced.length + rescan.size > limit) return undefined;
    }
    return { replaced, rescan };
  }
  const n = Math.min(before.length, after.length);
  let head = 0;
  while (head < n && before[head] === after[head]) head++;
  let tail = 0;
  while (tail < n - head && before[before.length - 1 - tail] === after[after.length - 1 - tail]) tail++;
  for (let i = head; i < before.length - tail; i++) rescan.add(before[i]!.service);
  for (let i = head; i < after.length - tail; i++) rescan.add(after[i]!.service);
  return rescan.size > limit ? undefined : { replaced, rescan };
}

function push<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const list = m.get(k);
  if (list) list.push(v);
  else m.set(k, [v]);
}

/** Workloads by namespace and by namespace and label, in registry order. */
class WorkloadIndex {
  private readonly byNamespace = new Map<string, Workload[]>();
  private readonly byLabel = new Map<string, Workload[]>();

  constructor(sources: readonly (readonly Workload[])[]) {
    for (const workloads of sources) {
      for (const w of workloads) {
        push(this.byNamespace, w.namespace, w);
        for (const [k, v] of Object.entries(w.labels)) push(this.byLabel, labelKey(w.namespace, k, v), w);
      }
    }
  }

  /** Workloads that may match: those having the selector's first label (all, for an empty selector). */
  candidates(namespace: string, selector: Readonly<Record<string, string>>): readonly Workload[] {
    for (const [k, v] of Object.entries(selector)) return this.byLabel.get(labelKey(namespace, k, v)) ?? [];
    return this.byNamespace.get(namespace) ?? [];
  }
}

function labelKey(namespace: string, k: string, v: string): string {
  return `${namespace}\0${k}\0${v}`;
}

// The endpoint a workload gives a selecting service: one object per pair, so unchanged
// workloads keep unchanged endpoint lists.
const workloadEndpoints = new WeakMap<Workload, Map<string, Endpoint>>();

function workloadEndpoint(w: Workload, service: string): Endpoint {
  let byService = workloadEndpoints.get(w);
  if (!byService) workloadEndpoints.set(w, (byService = new Map()));
  let e = byService.get(service);
  if (!e) {
    e = { service, address: w.address, ports: w.ports, labels: w.labels, locality: w.locality, weight: w.weight, health: w.health, origin: w.origin, ...(w.identity ? { identity: w.identity } : {}) };
    byService.set(service, e);
  }
  return e;
}

function matches(selector: Readonly<Record<string, string>>, labels: Readonly<Record<string, string>>): boolean {
  for (const [k, v] of Object.entries(selector)) if (labels[k] !== v) return false;
  return true;
}

// Merged and alias-trimmed services are derived objects: made once per input pair, so a
// service defined by several registries keeps its identity (and memoised hash) while they do.
const merged = new WeakMap<Service, WeakMap<Service, { readonly svc: Service; readonly conflicts: readonly Conflict[] }>>();
const trimmed = new WeakMap<Service, { readonly aliases: readonly string[]; readonly svc: Service }>();

function mergeService(a: Service, b: Service, conflicts: Conflict[]): Service {
  let withA = merged.get(a);
  if (!withA) merged.set(a, (withA = new WeakMap()));
  let hit = withA.get(b);
  if (!hit) {
    const found: Conflict[] = [];
    hit = { svc: mergeTwo(a, b, found), conflicts: found };
    withA.set(b, hit);
  }
  conflicts.push(...hit.conflicts);
  return hit.svc;
}

function isDubboOfTcp(a: ServicePort, b: ServicePort): boolean {
  return (a.protocol === 'DUBBO' && b.protocol === 'TCP') || (a.protocol === 'TCP' && b.protocol === 'DUBBO');
}

function mergeTwo(a: Service, b: Service, conflicts: Conflict[]): Service {
  const ports = [...a.ports];
  for (const p of b.ports) {
    const same = ports.find((x) => x.number === p.number);
    if (!same) ports.push(p);
    else if (isDubboOfTcp(same, p)) {
      // A Dubbo registry knows what a manifest calls TCP: the port is Dubbo's.
      ports[ports.indexOf(same)] = same.protocol === 'DUBBO' ? same : { ...same, protocol: 'DUBBO' };
    } else if (same.protocol !== p.protocol) {
      conflicts.push({
        name: a.hostname,
        reason: `port ${p.number} is ${same.protocol} in one registry and ${p.protocol} in another; using ${same.protocol}`,
        origins: [a.origin.ref, b.origin.ref],
      });
    }
  }
  ports.sort((x: ServicePort, y: ServicePort) => x.number - y.number);
  const ifaces = [...a.interfaces];
  // One interface name may be served in several versions or groups: each has its own hostname.
  for (const i of b.interfaces) if (!ifaces.some((x) => x.hostname === i.hostname)) ifaces.push(i);
  return {
    ...a,
    // A service known to one registry by selector (e.g. a ServiceEntry) keeps selecting.
    ...(a.workloadSelector || !b.workloadSelector ? {} : { workloadSelector: b.workloadSelector }),
    aliases: [...new Set([...a.aliases, ...b.aliases])],
    addresses: [...new Set([...a.addresses, ...b.addresses])],
    ports,
    interfaces: ifaces,
  };
}

/** An alias that is also another service's hostname, or claimed twice, is dropped and reported. */
function dropAliasClashes(services: Map<string, Service>, conflicts: Conflict[]): void {
  const claimed = new Map<string, string>();
  for (const [host, svc] of services) {
    const kept = svc.aliases.filter((alias) => {
      const other = services.has(alias) ? alias : claimed.get(alias);
      if (other && other !== host) {
        conflicts.push({ name: alias, reason: `host is claimed by ${other} and ${host}`, origins: [svc.origin.ref] });
        return false;
      }
      claimed.set(alias, host);
      return true;
    });
    if (kept.length === svc.aliases.length) continue;
    let t = trimmed.get(svc);
    if (!t || !sameItems(t.aliases, kept)) trimmed.set(svc, (t = { aliases: kept, svc: { ...svc, aliases: kept } }));
    services.set(host, t.svc);
  }
}

const EMPTY = (id: string): RegistryState => ({ id, synced: false, services: [], endpoints: [], workloads: [], rejections: [] });

/** The aggregate over registries: a new snapshot whenever any registry's content changes. */
export function aggregate(registries: readonly Registry[]): Observable<ModelSnapshot> {
  return combineLatest(registries.map((r) => r.states.pipe(startWith(EMPTY(r.id))))).pipe(
    scan<readonly RegistryState[], ModelSnapshot, undefined>((prev, states) => mergeStates(states, prev), undefined),
    distinctUntilChanged((a, b) => a.version === b.version && sameStatus(a, b)),
  );
}

function sameStatus(a: ModelSnapshot, b: ModelSnapshot): boolean {
  return JSON.stringify(a.registries) === JSON.stringify(b.registries) && a.conflicts.length === b.conflicts.length;
}
