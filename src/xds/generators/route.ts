// RDS: the sidecar's outbound route table (by Host/:authority), the inbound table, and
// per-target tables for proxyless gRPC clients.
import type { Route, RouteConfiguration } from '../../generated/envoy.ts';
import type { ModelSnapshot } from '../../model/snapshot.ts';
import type { Service, ServicePort } from '../../model/types.ts';
import { isHttpProtocol } from '../../model/types.ts';
import type { AppPort } from '../proxy.ts';
import type { DestinationRule, VirtualService } from '../../model/rules/types.ts';
import { hostIndexOf } from '../../model/rules/hosts.ts';
import { destinationRulesByHost, effectivePolicy, hashPolicy } from './destination-rule.ts';
import { Refusal, type RuleContext, virtualServiceRoutes, virtualServicesByHost } from './http-route.ts';
import { buildTargetRoute, PROXYLESS, proxylessVirtualService } from './proxyless.ts';
import { defaultHttpPort, INBOUND_ROUTE, inboundCluster, interfaceCluster, OUTBOUND_ROUTE, outboundCluster } from './names.ts';

export interface RouteProblem {
  readonly name: string;
  readonly reason: string;
}

function route(cluster: string, hash?: Record<string, unknown>[]): Route {
  // timeout 0: no deadline by default, so gRPC streams are not cut at Envoy's 15 s default.
  return { match: { prefix: '/' }, route: { cluster, timeout: { seconds: 0 }, ...(hash ? { hash_policy: hash } : {}) } };
}

/**
 * Routes of a VirtualService for one virtual host, or none when it is refused (the problem
 * is recorded and the host keeps its default route). `grpcPrefix`: only requests under
 * `/<interface>/` (an interface's rule inside its application's virtual host).
 */
function ruleRoutes(
  ctx: RuleContext,
  vs: VirtualService | undefined,
  port: number,
  problems: RouteProblem[],
  vhName: string,
  grpcPrefix?: string,
  skip?: ReadonlySet<number>,
): Route[] {
  if (!vs) return [];
  const notes: string[] = [];
  const who = `VirtualService ${vs.namespace}/${vs.name}`;
  try {
    let routes = virtualServiceRoutes(ctx, vs, port, notes, skip);
    if (grpcPrefix) {
      routes = routes.flatMap((r) => {
        const m = r.match as Record<string, unknown>;
        if (m.prefix === '/') return [{ ...r, match: { ...m, prefix: grpcPrefix } }];
        if (typeof m.prefix === 'string' && m.prefix.startsWith(grpcPrefix)) return [r];
        if (typeof m.path === 'string' && m.path.startsWith(grpcPrefix)) return [r];
        return [];
      });
    }
    for (const n of notes) problems.push({ name: who, reason: `${vhName}: ${n}` });
    return routes;
  } catch (err) {
    if (!(err instanceof Refusal)) throw err;
    problems.push({ name: who, reason: `refused for ${vhName}: ${err.message}; the host keeps its default route` });
    return [];
  }
}

/** Domains a service port answers to. Envoy rejects a table whose domains repeat. */
function domainsFor(svc: Service, port: ServicePort, isDefault: boolean, vip: string | undefined): string[] {
  const names = [svc.hostname, ...svc.aliases];
  const out = names.map((n) => `${n}:${port.number}`);
  for (const a of svc.addresses) if (!a.includes('/')) out.push(`${a}:${port.number}`);
  if (vip && !svc.addresses.includes(vip)) out.push(`${vip}:${port.number}`);
  if (isDefault) out.push(...names);
  return out;
}

/** `IP:port`, as a service's own addresses give. */
function isAddressDomain(domain: string): boolean {
  return /^[\d.]+:\d+$/.test(domain) || domain.startsWith('[');
}

/** The route hash policy of the DestinationRule for `host` on `port`, if it hashes. */
function hostHash(rules: ReadonlyMap<string, DestinationRule>, host: string, port: number): Record<string, unknown>[] | undefined {
  const dr = rules.get(host);
  return dr ? hashPolicy(effectivePolicy(dr, port)) : undefined;
}

/** `vips`: name → allocated VIP (services without an address of their own, and interfaces). */
export function buildOutboundRoute(
  model: ModelSnapshot,
  problems: RouteProblem[],
  vips: ReadonlyMap<string, string> = new Map(),
  sources?: ReadonlySet<string>,
): RouteConfiguration {
  const claimed = new Map<string, { readonly vhName: string; readonly ref: string }>();
  const claim = (domain: string, vhName: string, ref = ''): boolean => {
    const owner = claimed.get(domain);
    if (owner) {
      // The hosts of one ServiceEntry share its addresses: Host picks among them, not the address.
      if (!(ref && owner.ref === ref && isAddressDomain(domain))) {
        problems.push({ name: domain, reason: `domain ${domain} of ${vhName} is already routed to ${owner.vhName}; first one kept` });
      }
      return false;
    }
    claimed.set(domain, { vhName, ref });
    return true;
  };
  const virtualHosts: Record<string, unknown>[] = [];
  const index = hostIndexOf(model);
  const rules = destinationRulesByHost(model, index);
  const ctx: RuleContext = { model, index, rules, ...(sources ? { sources } : {}) };
  const vsByHost = virtualServicesByHost(model, index);
  const hashOf = (host: string, port: number): Record<string, unknown>[] | undefined => hostHash(rules, host, port);
  for (const svc of model.services.values()) {
    const dflt = defaultHttpPort(svc);
    for (const port of svc.ports) {
      if (!isHttpProtocol(port.protocol)) continue;
      const vhName = `${svc.hostname}:${port.number}`;
      const domains = domainsFor(svc, port, port === dflt, vips.get(svc.hostname)).filter((d) => claim(d, vhName, svc.origin.ref));
      if (!domains.length) continue;
      // Interface rules first (by gRPC path), then the application's own rule, then the default.
      const routes: Route[] = [];
      for (const iface of svc.interfaces) {
        if (iface.port !== undefined && iface.port !== port.number) continue;
        routes.push(...ruleRoutes(ctx, vsByHost.get(iface.hostname), port.number, problems, vhName, `/${iface.name}/`));
      }
      routes.push(...ruleRoutes(ctx, vsByHost.get(svc.hostname), port.number, problems, vhName));
      routes.push(route(outboundCluster(svc.hostname, port.number), hashOf(svc.hostname, port.number)));
      virtualHosts.push({ name: vhName, domains, routes });
    }
    // Each RPC interface is a name of its own, routed to the providers of that interface.
    for (const iface of svc.interfaces) {
      for (const port of svc.ports) {
        if (!isHttpProtocol(port.protocol) || (iface.port !== undefined && iface.port !== port.number)) continue;
        const vhName = `${iface.hostname}:${port.number}`;
        const vip = vips.get(iface.hostname);
        const domains = [vhName, iface.hostname, ...(vip ? [`${vip}:${port.number}`] : [])].filter((d) => claim(d, vhName));
        if (!domains.length) continue;
        const routes = ruleRoutes(ctx, vsByHost.get(iface.hostname), port.number, problems, vhName);
        routes.push(route(interfaceCluster(svc.hostname, port.number, iface.hostname), hashOf(iface.hostname, port.number) ?? hashOf(svc.hostname, port.number)));
        virtualHosts.push({ name: vhName, domains, routes });
      }
    }
  }
  return { name: OUTBOUND_ROUTE, virtual_hosts: virtualHosts, validate_clusters: { value: false } };
}

export function buildInboundRoute(appPorts: readonly AppPort[]): RouteConfiguration {
  const http = appPorts.filter((p) => isHttpProtocol(p.protocol));
  return {
    name: INBOUND_ROUTE,
    virtual_hosts: http.slice(0, 1).map((p) => ({ name: `inbound|${p.port}`, domains: ['*'], routes: [route(inboundCluster(p.port))] })),
  };
}

/** Resolves a proxyless target "HOST[:PORT]" (a service or an interface name) to its cluster. */
export function resolveTarget(model: ModelSnapshot, target: string): { cluster: string; host: string; port: number } | undefined {
  const m = /^(.*?)(?::(\d+))?$/.exec(target);
  if (!m) return undefined;
  const host = m[1]!.toLowerCase();
  const iface = model.interfaces.get(host);
  const svc = iface ? model.services.get(iface.service) : model.lookup(host);
  if (!svc) return undefined;
  const wanted = m[2] ? Number(m[2]) : iface?.iface.port;
  const port = wanted !== undefined ? svc.ports.find((p) => p.number === wanted) : defaultHttpPort(svc);
  if (!port || !isHttpProtocol(port.protocol)) return undefined;
  if (iface && iface.iface.port !== undefined && iface.iface.port !== port.number) return undefined;
  return { cluster: iface ? interfaceCluster(svc.hostname, port.number, host) : outboundCluster(svc.hostname, port.number), host: iface ? host : svc.hostname, port: port.number };
}

/**
 * The route table of a proxyless client's target (a service or interface `host` on `port`):
 * the VirtualService routes as the sidecar gets them, translated for gRPC, where what gRPC
 * cannot do is refused by name (proxyless.ts), then the default route with the host's hash
 * policy.
 */
export function buildProxylessTargetRoute(model: ModelSnapshot, name: string, target: { cluster: string; host: string; port: number }, problems: RouteProblem[]): RouteConfiguration {
  const { host, port } = target;
  const index = hostIndexOf(model);
  const rules = destinationRulesByHost(model, index);
  const ctx: RuleContext = { model, index, rules };
  const vsByHost = virtualServicesByHost(model, index);
  const forClient = (vs: VirtualService | undefined): { vs?: VirtualService; skip?: ReadonlySet<number> } => {
    if (!vs) return {};
    const p = proxylessVirtualService(vs);
    for (const r of p.refused) problems.push({ name: `VirtualService ${vs.namespace}/${vs.name}`, reason: `${name}: not applied for ${PROXYLESS}: ${r.field}: ${r.reason}` });
    return p;
  };
  const routes: Route[] = [];
  const svc = model.services.get(host);
  for (const iface of svc?.interfaces ?? []) {
    if (iface.port !== undefined && iface.port !== port) continue;
    const p = forClient(vsByHost.get(iface.hostname));
    routes.push(...ruleRoutes(ctx, p.vs, port, problems, host, `/${iface.name}/`, p.skip));
  }
  const p = forClient(vsByHost.get(host));
  routes.push(...ruleRoutes(ctx, p.vs, port, problems, host, undefined, p.skip));
  const iface = model.interfaces.get(host);
  const hash = hostHash(rules, host, port) ?? (iface ? hostHash(rules, iface.service, port) : undefined);
  return buildTargetRoute(name, routes, { match: { prefix: '' }, route: { cluster: target.cluster, ...(hash ? { hash_policy: hash } : {}) } });
}
