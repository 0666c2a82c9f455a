import { combineLatest, distinctUntilChanged, map, type Observable, startWith } from 'rxjs';
import type { Registry } from './registry.ts';
import type { Endpoint, RegistryState, Service, ServicePort, Workload } from './types.ts';
import { type Conflict, ModelSnapshot, registryStatus } from './snapshot.ts';
import { checkRules, hostIndex } from '../rules/index.ts';
import { metrics } from '../metrics.ts';

const ruleRejectionsGauge = metrics.gauge('isthmus_rules_rejected', 'Routing rules currently refused at serve time (see /debug/registryz).');

/**
 * Merges the states of several registries into one snapshot. A hostname defined by
 * several registries is one service: ports and interfaces are united, endpoints from
 * every registry are kept side by side (the migration case). Attributes that disagree
 * are reported as conflicts; the first registry in order wins.
 */
export function mergeStates(states: readonly RegistryState[]): ModelSnapshot {
  const services = new Map<string, Service>();
  const owners = new Map<string, string>();
  const conflicts: Conflict[] = [];
  for (const state of states) {
    for (const svc of state.services) {
      const prev = services.get(svc.hostname);
      if (!prev) {
        services.set(svc.hostname, svc);
        owners.set(svc.hostname, svc.origin.ref);
        continue;
      }
      services.set(svc.hostname, mergeService(prev, svc, conflicts));
    }
  }
  dropAliasClashes(services, conflicts);

  const endpoints = new Map<string, Endpoint[]>();
  const add = (e: Endpoint): void => {
    const list = endpoints.get(e.service);
    if (list) list.push(e);
    else endpoints.set(e.service, [e]);
  };
  const workloads: Workload[] = states.flatMap((s) => s.workloads);
  for (const state of states) for (const e of state.endpoints) if (services.has(e.service)) add(e);
  for (const svc of services.values()) {
    const sel = svc.workloadSelector;
    if (!sel) continue;
    for (const w of workloads) {
      if (w.namespace !== svc.namespace || !matches(sel, w.labels)) continue;
      add({
        service: svc.hostname,
        address: w.address,
        ports: w.ports,
        labels: w.labels,
        locality: w.locality,
        weight: w.weight,
        health: w.health,
        origin: w.origin,
      });
    }
  }
  // Rules are checked against the merged services: an invalid rule is refused, the others apply.
  const rules = checkRules(
    states.flatMap((s) => s.virtualServices ?? []),
    states.flatMap((s) => s.destinationRules ?? []),
    hostIndex(services.values()),
  );
  ruleRejectionsGauge.set({}, rules.rejections.length);
  return new ModelSnapshot({
    services,
    endpoints,
    registries: states.map(registryStatus),
    conflicts,
    rules: { ...rules.accepted, rejections: rules.rejections, warnings: rules.warnings },
  });
}

function matches(selector: Readonly<Record<string, string>>, labels: Readonly<Record<string, string>>): boolean {
  for (const [k, v] of Object.entries(selector)) if (labels[k] !== v) return false;
  return true;
}

function mergeService(a: Service, b: Service, conflicts: Conflict[]): Service {
  const ports = [...a.ports];
  for (const p of b.ports) {
    const same = ports.find((x) => x.number === p.number);
    if (!same) ports.push(p);
    else if (same.protocol !== p.protocol) {
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
    if (kept.length !== svc.aliases.length) services.set(host, { ...svc, aliases: kept });
  }
}

const EMPTY = (id: string): RegistryState => ({ id, synced: false, services: [], endpoints: [], workloads: [], rejections: [] });

/** The aggregate over registries: a new snapshot whenever any registry's content changes. */
export function aggregate(registries: readonly Registry[]): Observable<ModelSnapshot> {
  return combineLatest(registries.map((r) => r.states.pipe(startWith(EMPTY(r.id))))).pipe(
    map((states) => mergeStates(states)),
    distinctUntilChanged((a, b) => a.version === b.version && sameStatus(a, b)),
  );
}

function sameStatus(a: ModelSnapshot, b: ModelSnapshot): boolean {
  return JSON.stringify(a.registries) === JSON.stringify(b.registries) && a.conflicts.length === b.conflicts.length;
}
