// Providers → model. Providers with the same application form one service; each interface
// (with version and group) becomes a first-class name of it, with its own provider set.
import type { Endpoint, Protocol, Rejection, RpcInterface, Service, ServicePort } from '../../model/types.ts';
import { applicationHostname, DEFAULT_ZONE, interfaceHostname, NamingError } from '../../model/naming.ts';
import type { Provider } from './provider.ts';

export interface SoaMappingOptions {
  /** Registry id, e.g. etcd://127.0.0.1:2379/dubbo. */
  readonly registry: string;
  /** Namespace the services live in; WorkloadEntries of the same app join from there. */
  readonly namespace?: string;
  readonly zone?: string;
}

export interface SoaModel {
  readonly services: Service[];
  readonly endpoints: Endpoint[];
  readonly rejections: Rejection[];
}

/** URL protocols and how Envoy can carry them. Unknown ones are opaque TCP. */
const PROTOCOL_OF: Readonly<Record<string, Protocol>> = { tri: 'GRPC', grpc: 'GRPC', http: 'HTTP', rest: 'HTTP', h2: 'HTTP2', h2c: 'HTTP2' };

export function portProtocol(urlProtocol: string): Protocol {
  return PROTOCOL_OF[urlProtocol] ?? 'TCP';
}

function ifaceKey(p: Provider): string {
  return `${p.interface}:${p.version ?? ''}:${p.group ?? ''}`;
}

export function mapProviders(providers: readonly Provider[], opts: SoaMappingOptions): SoaModel {
  const zone = opts.zone ?? DEFAULT_ZONE;
  const namespace = opts.namespace ?? 'default';
  const rejections: Rejection[] = [];
  const reject = (p: Provider, field: string, reason: string): void => {
    rejections.push({ source: p.key, kind: 'provider', name: p.interface, field, reason });
  };

  // Canonical names, and who claims each: an interface name claimed by two different
  // interfaces (or by two applications) is reported for all of them and served by none.
  const hostOf = new Map<string, string>();
  const claims = new Map<string, Set<string>>();
  const apps = new Map<string, Provider[]>();
  for (const p of [...providers].sort((a, b) => (a.key < b.key ? -1 : 1))) {
    let host: string;
    let appHost: string;
    try {
      host = interfaceHostname(p.interface, p.version, p.group, zone);
      appHost = applicationHostname(p.application, zone);
    } catch (e) {
      if (e instanceof NamingError) {
        reject(p, 'interface', e.message);
        continue;
      }
      throw e;
    }
    hostOf.set(ifaceKey(p), host);
    const claim = `${p.application}|${ifaceKey(p)}`;
    (claims.get(host) ?? claims.set(host, new Set()).get(host)!).add(claim);
    (claims.get(appHost) ?? claims.set(appHost, new Set()).get(appHost)!).add(`${p.application}|`);
    const list = apps.get(p.application);
    if (list) list.push(p);
    else apps.set(p.application, [p]);
  }
  const contested = new Set([...claims].filter(([, c]) => c.size > 1).map(([h]) => h));
  for (const list of apps.values()) {
    for (const p of list) {
      const host = hostOf.get(ifaceKey(p))!;
      if (contested.has(host)) {
        const others = [...claims.get(host)!].filter((c) => c !== `${p.application}|${ifaceKey(p)}`).map(describeClaim);
        reject(p, 'interface', `name ${host} is also claimed by ${others.join(', ')}; neither is served under it`);
      }
    }
  }

  const services: Service[] = [];
  const endpoints: Endpoint[] = [];
  for (const [application, list] of [...apps].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const hostname = applicationHostname(application, zone);
    if (contested.has(hostname)) {
      for (const p of list) reject(p, 'application', `application name ${hostname} collides with an interface name; the application is not served`);
      continue;
    }
    // One port per protocol: the lowest port seen; endpoints carry their own.
    const ports = new Map<string, ServicePort>();
    for (const p of list) {
      const prev = ports.get(p.protocol);
      if (!prev || p.port < prev.number) ports.set(p.protocol, { name: p.protocol, number: p.port, protocol: portProtocol(p.protocol) });
    }
    const byNumber = new Map<number, string>();
    for (const port of [...ports.values()].sort((a, b) => a.number - b.number || (a.name < b.name ? -1 : 1))) {
      const other = byNumber.get(port.number);
      if (other) {
        for (const p of list) if (p.protocol === port.name) reject(p, 'protocol', `application ${application} serves ${other} and ${port.name} on port ${port.number}; ${port.name} is not served`);
        ports.delete(port.name);
      } else byNumber.set(port.number, port.name);
    }

    const interfaces = new Map<string, RpcInterface>();
    const instances = new Map<string, { providers: Provider[] }>();
    for (const p of list) {
      if (!ports.has(p.protocol)) continue;
      const host = hostOf.get(ifaceKey(p))!;
      if (!contested.has(host)) {
        const prev = interfaces.get(host);
        const methods = [...new Set([...(prev?.methods ?? []), ...p.methods])].sort();
        interfaces.set(host, {
          name: p.interface,
          ...(p.version ? { version: p.version } : {}),
          ...(p.group ? { group: p.group } : {}),
          methods,
          port: ports.get(p.protocol)!.number,
          hostname: host,
        });
      }
      const inst = `${p.address}|${p.protocol}|${p.port}`;
      (instances.get(inst) ?? instances.set(inst, { providers: [] }).get(inst)!).providers.push(p);
    }

    services.push({
      hostname,
      aliases: [],
      namespace,
      ports: [...ports.values()].sort((a, b) => a.number - b.number),
      addresses: [],
      resolution: 'STATIC',
      location: 'MESH_INTERNAL',
      interfaces: [...interfaces.values()].sort((a, b) => (a.hostname < b.hostname ? -1 : 1)),
      // Instances of the same application from other registries (WorkloadEntry, pods) join this service.
      workloadSelector: { app: application },
      origin: { registry: opts.registry, ref: `application ${application}` },
    });

    // An instance (address, protocol port) serving several interfaces is one endpoint.
    for (const { providers: ps } of instances.values()) {
      const first = ps[0]!;
      const labels: Record<string, string> = { app: application };
      for (const [k, v] of Object.entries(first.params)) if (ps.every((p) => p.params[k] === v)) labels[k] = v;
      endpoints.push({
        service: hostname,
        address: first.address,
        ports: { [first.protocol]: first.port },
        labels,
        locality: { ...(first.params.region ? { region: first.params.region } : {}), ...(first.params.zone ? { zone: first.params.zone } : {}) },
        // Dubbo's default weight 100 is a normal instance, weight 1 in the model, so VM
        // providers and instances from other registries share traffic evenly.
        weight: Math.max(...ps.map((p) => p.weight)) / 100,
        health: ps.some((p) => p.enabled) ? 'HEALTHY' : 'UNHEALTHY',
        origin: { registry: opts.registry, ref: first.key },
        interfaces: [...new Set(ps.map((p) => hostOf.get(ifaceKey(p))!).filter((h) => !contested.has(h)))].sort(),
      });
    }
  }
  return { services, endpoints, rejections };
}

function describeClaim(c: string): string {
  const [app, key] = c.split('|');
  if (!key) return `application ${app}`;
  const [iface, version, group] = key.split(':');
  return `${iface}${version ? ` version ${version}` : ''}${group ? ` group ${group}` : ''} of application ${app}`;
}
