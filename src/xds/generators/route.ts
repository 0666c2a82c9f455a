// RDS: the sidecar's outbound route table (by Host/:authority), the inbound table, and
// per-target tables for proxyless gRPC clients.
import type { ModelSnapshot } from '../../model/snapshot.ts';
import type { Service, ServicePort } from '../../model/types.ts';
import { isHttpProtocol } from '../../model/types.ts';
import type { AppPort } from '../proxy.ts';
import { defaultHttpPort, INBOUND_ROUTE, inboundCluster, interfaceCluster, OUTBOUND_ROUTE, outboundCluster } from './names.ts';

export interface RouteProblem {
  readonly name: string;
  readonly reason: string;
}

function route(cluster: string): Record<string, unknown> {
  // timeout 0: no deadline by default, so gRPC streams are not cut at Envoy's 15 s default.
  return { match: { prefix: '/' }, route: { cluster, timeout: { seconds: 0 } } };
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

/** `vips`: name → allocated VIP (services without an address of their own, and interfaces). */
export function buildOutboundRoute(model: ModelSnapshot, problems: RouteProblem[], vips: ReadonlyMap<string, string> = new Map()): Record<string, unknown> {
  const claimed = new Map<string, string>();
  const claim = (domain: string, vhName: string): boolean => {
    const owner = claimed.get(domain);
    if (owner) {
      problems.push({ name: domain, reason: `domain ${domain} of ${vhName} is already routed to ${owner}; first one kept` });
      return false;
    }
    claimed.set(domain, vhName);
    return true;
  };
  const virtualHosts: Record<string, unknown>[] = [];
  for (const svc of model.services.values()) {
    const dflt = defaultHttpPort(svc);
    for (const port of svc.ports) {
      if (!isHttpProtocol(port.protocol)) continue;
      const vhName = `${svc.hostname}:${port.number}`;
      const domains = domainsFor(svc, port, port === dflt, vips.get(svc.hostname)).filter((d) => claim(d, vhName));
      if (domains.length) virtualHosts.push({ name: vhName, domains, routes: [route(outboundCluster(svc.hostname, port.number))] });
    }
    // Each RPC interface is a name of its own, routed to the providers of that interface.
    for (const iface of svc.interfaces) {
      for (const port of svc.ports) {
        if (!isHttpProtocol(port.protocol) || (iface.port !== undefined && iface.port !== port.number)) continue;
        const vhName = `${iface.hostname}:${port.number}`;
        const vip = vips.get(iface.hostname);
        const domains = [vhName, iface.hostname, ...(vip ? [`${vip}:${port.number}`] : [])].filter((d) => claim(d, vhName));
        if (domains.length) virtualHosts.push({ name: vhName, domains, routes: [route(interfaceCluster(svc.hostname, port.number, iface.hostname))] });
      }
    }
  }
  return { name: OUTBOUND_ROUTE, virtual_hosts: virtualHosts, validate_clusters: { value: false } };
}

export function buildInboundRoute(appPorts: readonly AppPort[]): Record<string, unknown> {
  const http = appPorts.filter((p) => isHttpProtocol(p.protocol));
  return {
    name: INBOUND_ROUTE,
    virtual_hosts: http.slice(0, 1).map((p) => ({ name: `inbound|${p.port}`, domains: ['*'], routes: [route(inboundCluster(p.port))] })),
  };
}

/** Resolves a proxyless target "HOST[:PORT]" (a service or an interface name) to its cluster. */
export function resolveTarget(model: ModelSnapshot, target: string): { cluster: string } | undefined {
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
  return { cluster: iface ? interfaceCluster(svc.hostname, port.number, host) : outboundCluster(svc.hostname, port.number) };
}

/** The route table a proxyless client gets for the target it dialed. */
export function buildTargetRoute(name: string, cluster: string): Record<string, unknown> {
  return { name, virtual_hosts: [{ name, domains: ['*'], routes: [{ match: { prefix: '' }, route: { cluster } }] }] };
}
