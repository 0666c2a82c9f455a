// Checks across rule documents, which no single document can pass or fail alone:
//  - two DestinationRules for one host (visible to a common namespace): the first is kept;
//  - a destination subset that no DestinationRule for its host defines: the VirtualService
//    is refused, since Envoy would be sent a route to a cluster that does not exist;
//  - two VirtualServices for the mesh claiming one host (visible to a common namespace):
//    the first is kept (Istio's analyzer reports these as conflicting mesh hosts). Only rules
//    that passed the checks above take part, so a refused rule never shadows a good one;
//  - hosts the model does not know: a warning only, as they may come from another registry.
// "First" is the order given: callers pass rules in registry order, then file order.

import type { Destination, DestinationRule, VirtualService } from './types.ts';
import type { Rejection } from '../types.ts';
import { canonicalHost, hostCovers, type HostIndex, isIpAddress, isKnownHost } from './hosts.ts';

export interface RuleCheckResult {
  readonly accepted: {
    readonly virtualServices: readonly VirtualService[];
    readonly destinationRules: readonly DestinationRule[];
  };
  /** Rules refused, with why; each refused rule appears at least once. */
  readonly rejections: readonly Rejection[];
  /** Problems that do not stop a rule from applying. */
  readonly warnings: readonly Rejection[];
}

type Rule = VirtualService | DestinationRule;

function kindOf(r: Rule): 'VirtualService' | 'DestinationRule' {
  return 'hosts' in r.spec ? 'VirtualService' : 'DestinationRule';
}

/** A rejection (or warning) pointing at a field of a rule document. */
export function ruleProblem(r: Rule, field: string, reason: string): Rejection {
  return {
    source: r.location.source,
    ...(r.location.document !== undefined ? { document: r.location.document } : {}),
    kind: kindOf(r),
    name: r.name,
    field,
    reason,
  };
}

function where(r: Rule): string {
  const doc = r.location.document !== undefined ? `#${r.location.document}` : '';
  return `${kindOf(r)} ${r.namespace}/${r.name} (${r.location.source}${doc})`;
}

/** Namespaces that see a rule: '*' for all. Istio's default exportTo is every namespace. */
type Visibility = '*' | ReadonlySet<string>;

function visibility(r: Rule): Visibility {
  const e = r.spec.exportTo;
  if (e.length === 0 || e.includes('*')) return '*';
  return new Set(e.map((x) => (x === '.' ? r.namespace : x)));
}

function overlaps(a: Visibility, b: Visibility): boolean {
  if (a === '*' || b === '*') return true;
  for (const ns of a) if (b.has(ns)) return true;
  return false;
}

function visibleIn(v: Visibility, namespace: string): boolean {
  return v === '*' || v.has(namespace);
}

/**
 * Cross-document checks over all rules in effect. `knownHosts` (see hostIndexOf) enables
 * the "host does not exist" warnings and lets interface names and canonical names meet;
 * without it hosts are compared by their qualified names only.
 */
export function checkRules(
  virtualServices: readonly VirtualService[],
  destinationRules: readonly DestinationRule[],
  knownHosts?: HostIndex,
): RuleCheckResult {
  const rejections: Rejection[] = [];
  const warnings: Rejection[] = [];
  const canon = (host: string, ns: string): string => canonicalHost(host, ns, knownHosts);

  // DestinationRules: one per host.
  type DrEntry = { rule: DestinationRule; host: string; vis: Visibility };
  const drs: DrEntry[] = [];
  const drsByHost = new HostTable<DrEntry>();
  for (const rule of destinationRules) {
    const host = canon(rule.spec.host, rule.namespace);
    const vis = visibility(rule);
    const prior = drsByHost.get(host).find((d) => overlaps(d.vis, vis));
    if (prior) {
      rejections.push(ruleProblem(rule, 'spec.host', `host ${JSON.stringify(rule.spec.host)} already has ${where(prior.rule)}; one DestinationRule per host: the first is kept and this one is ignored (merge the two)`));
      continue;
    }
    const entry = { rule, host, vis };
    drs.push(entry);
    drsByHost.add(host, entry);
    if (knownHosts && !isKnownHost(rule.spec.host, rule.namespace, knownHosts)) {
      warnings.push(ruleProblem(rule, 'spec.host', `host ${JSON.stringify(rule.spec.host)} is not a service or interface any registry knows (yet); the rule applies once it appears`));
    }
  }

  // Subsets: each must be defined by the DestinationRule for its host that the VirtualService
  // sees. Checked before host conflicts, so a refused rule does not shadow a good one.
  const withSubsets: VirtualService[] = [];
  for (const rule of virtualServices) {
    const problems: Rejection[] = [];
    for (const { d, field } of destinations(rule)) {
      if (knownHosts && !isKnownHost(d.host, rule.namespace, knownHosts)) {
        warnings.push(ruleProblem(rule, `${field}.host`, `destination host ${JSON.stringify(d.host)} is not a service or interface any registry knows (yet); requests routed there fail until it appears`));
      }
      if (d.subset === undefined) continue;
      const host = canon(d.host, rule.namespace);
      const dr = drsByHost.best(host, (x) => visibleIn(x.vis, rule.namespace));
      if (!dr) {
        const hidden = drsByHost.get(host).length > 0 ? ` visible in namespace ${rule.namespace}` : '';
        problems.push(ruleProblem(rule, `${field}.subset`, `subset ${JSON.stringify(d.subset)} of host ${JSON.stringify(d.host)} is defined by no DestinationRule${hidden}`));
      } else if (!dr.rule.spec.subsets.some((s) => s.name === d.subset)) {
        const names = dr.rule.spec.subsets.map((s) => s.name);
        problems.push(ruleProblem(rule, `${field}.subset`, `subset ${JSON.stringify(d.subset)} is not defined by ${where(dr.rule)}, which defines ${names.length ? names.map((n) => JSON.stringify(n)).join(', ') : 'no subsets'}`));
      }
    }
    if (problems.length > 0) rejections.push(...problems);
    else withSubsets.push(rule);
  }

  // VirtualServices for the mesh: one per host.
  const claimed = new HostTable<{ rule: VirtualService; vis: Visibility }>();
  const accepted: VirtualService[] = [];
  for (const rule of withSubsets) {
    if (!rule.appliesToMesh) {
      accepted.push(rule);
      continue;
    }
    const vis = visibility(rule);
    const mine = rule.spec.hosts.map((h, i) => ({ h, i, host: canon(h, rule.namespace) }));
    const clash = mine.map((m) => ({ ...m, prior: claimed.get(m.host).find((c) => overlaps(c.vis, vis)) })).filter((m) => m.prior);
    if (clash.length > 0) {
      for (const m of clash) {
        rejections.push(ruleProblem(rule, `spec.hosts[${m.i}]`, `host ${JSON.stringify(m.h)} is already routed by ${where(m.prior!.rule)}; one VirtualService per host: the first is kept and this one is ignored (merge the two)`));
      }
      continue;
    }
    for (const m of mine) claimed.add(m.host, { rule, vis });
    accepted.push(rule);
  }
  if (knownHosts) {
    for (const rule of accepted) {
      rule.spec.hosts.forEach((h, i) => {
        if (!h.startsWith('*') && !isIpAddress(h) && !isKnownHost(h, rule.namespace, knownHosts)) {
          warnings.push(ruleProblem(rule, `spec.hosts[${i}]`, `host ${JSON.stringify(h)} is not a service or interface any registry knows (yet)`));
        }
      });
    }
  }
  return {
    accepted: { virtualServices: accepted, destinationRules: drs.map((d) => d.rule) },
    rejections,
    warnings,
  };
}

/** Every destination of a VirtualService with its field path. */
export function destinations(vs: VirtualService): { d: Destination; field: string }[] {
  const out: { d: Destination; field: string }[] = [];
  vs.spec.http.forEach((r, i) => {
    r.route.forEach((rd, j) => out.push({ d: rd.destination, field: `spec.http[${i}].route[${j}].destination` }));
    if (r.mirror) out.push({ d: r.mirror.destination, field: `spec.http[${i}].mirror` });
  });
  vs.spec.tcp.forEach((r, i) => r.route.forEach((rd, j) => out.push({ d: rd.destination, field: `spec.tcp[${i}].route[${j}].destination` })));
  return out;
}

/** Entries by host name, wildcard patterns kept apart so exact lookups stay cheap. */
class HostTable<T> {
  private readonly exact = new Map<string, T[]>();
  private readonly wildcards: { host: string; entry: T }[] = [];

  add(host: string, entry: T): void {
    if (host.startsWith('*')) this.wildcards.push({ host, entry });
    const list = this.exact.get(host);
    if (list) list.push(entry);
    else this.exact.set(host, [entry]);
  }

  get(host: string): readonly T[] {
    return this.exact.get(host) ?? [];
  }

  /** Istio's choice for a host: an exact entry, else the most specific wildcard covering it. */
  best(host: string, usable: (e: T) => boolean): T | undefined {
    const exact = this.get(host).find(usable);
    if (exact) return exact;
    let best: { host: string; entry: T } | undefined;
    for (const w of this.wildcards) if (hostCovers(w.host, host) && usable(w.entry) && (!best || w.host.length > best.host.length)) best = w;
    return best?.entry;
  }
}

/**
 * The DestinationRule that applies to traffic from `namespace` to `host`, as checkRules
 * matched subsets: visible in the namespace, exact host first, else the most specific wildcard.
 */
export function findDestinationRule(
  destinationRules: readonly DestinationRule[],
  host: string,
  namespace: string,
  knownHosts?: HostIndex,
): DestinationRule | undefined {
  const table = new HostTable<DestinationRule>();
  for (const r of destinationRules) table.add(canonicalHost(r.spec.host, r.namespace, knownHosts), r);
  return table.best(canonicalHost(host, namespace, knownHosts), (r) => visibleIn(visibility(r), namespace));
}
