// Providers → model. Providers with the same application form one service; each interface
// (with version and group) becomes a first-class name of it, with its own provider set.
import type { Endpoint, Protocol, Rejection, RpcInterface, Service, ServicePort } from '../../model/types.ts';
import { canonicalJson } from '../../model/hash.ts';
import { sameItems } from '../../model/same.ts';
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
  readonly warnings: Rejection[];
}

/** A SoaMapper's output: arrays it may hand out again, so never to be modified. */
export interface MappedProviders {
  readonly services: readonly Service[];
  readonly endpoints: readonly Endpoint[];
  readonly rejections: readonly Rejection[];
  readonly warnings: readonly Rejection[];
}

/** URL protocols and how Envoy can carry them (dubbo: its Dubbo filter). Unknown ones are opaque TCP. */
const PROTOCOL_OF: Readonly<Record<string, Protocol>> = { dubbo: 'DUBBO', tri: 'GRPC', grpc: 'GRPC', http: 'HTTP', rest: 'HTTP', h2: 'HTTP2', h2c: 'HTTP2' };

export function portProtocol(urlProtocol: string): Protocol {
  return PROTOCOL_OF[urlProtocol] ?? 'TCP';
}

function ifaceKey(p: Provider): string {
  return `${p.interface}:${p.version ?? ''}:${p.group ?? ''}`;
}

/** Maps a set of providers once. A registry keeps a SoaMapper instead, so that a change costs what changed. */
export function mapProviders(providers: readonly Provider[], opts: SoaMappingOptions): SoaModel {
  const m = new SoaMapper(opts).map(providers);
  return { services: [...m.services], endpoints: [...m.endpoints], rejections: [...m.rejections], warnings: [...m.warnings] };
}

type Naming = { readonly host: string; readonly appHost: string } | { readonly error: string };

/** What one application mapped to, and what that depended on. */
interface AppResult {
  /** Its providers, in key order. */
  readonly list: readonly Provider[];
  /** Hostname → the distinct claims the application makes on it. */
  readonly claims: ReadonlyMap<string, ReadonlySet<string>>;
  /** Which of its names were contested by anyone. */
  contested?: string;
  service?: Service;
  endpoints?: readonly Endpoint[];
  rejections?: readonly Rejection[];
  warnings?: readonly Rejection[];
}

/**
 * Providers → model, remembering the last mapping: an application whose provider objects
 * and contested names are unchanged keeps its Service and Endpoint objects, and unchanged
 * output arrays are the previous ones, so the model downstream sees only what changed.
 * Provider objects are never mutated (registries replace a changed key's provider).
 */
export class SoaMapper {
  private readonly opts: SoaMappingOptions;
  private readonly zone: string;
  private readonly names = new WeakMap<Provider, Naming>();
  private apps = new Map<string, AppResult>();
  private last?: MappedProviders;

  constructor(opts: SoaMappingOptions) {
    this.opts = opts;
    this.zone = opts.zone ?? DEFAULT_ZONE;
  }

  private naming(p: Provider): Naming {
    let n = this.names.get(p);
    if (!n) {
      try {
        const appHost = applicationHostname(p.application, this.zone);
        n = { host: p.instanceOnly ? appHost : interfaceHostname(p.interface, p.version, p.group, this.zone), appHost };
      } catch (e) {
        if (!(e instanceof NamingError)) throw e;
        n = { error: e.message };
      }
      this.names.set(p, n);
    }
    return n;
  }

  map(providers: readonly Provider[]): MappedProviders {
    const rejections: Rejection[] = [];
    const warnings: Rejection[] = [];
    const reject = (p: Provider, field: string, reason: string): void => {
      rejections.push({ source: p.key, kind: 'provider', name: p.interface, field, reason });
    };
    const hostOf = (p: Provider): string => (this.naming(p) as { host: string }).host;

    // Canonical names, and who claims each: an interface name claimed by two different
    // interfaces (or by two applications) is reported for all of them and served by none.
    const sorted = [...providers].sort((a, b) => (a.key < b.key ? -1 : 1));
    const lists = new Map<string, Provider[]>();
    for (const p of sorted) {
      const n = this.naming(p);
      if ('error' in n) {
        reject(p, 'interface', n.error);
        continue;
      }
      const list = lists.get(p.application);
      if (list) list.push(p);
      else lists.set(p.application, [p]);
    }
    const apps = new Map<string, AppResult>();
    const owner = new Map<string, string>();
    const contested = new Set<string>();
    for (const [application, list] of lists) {
      const before = this.apps.get(application);
      const app: AppResult = before && sameItems(before.list, list) ? before : { list, claims: appClaims(application, list, hostOf, (this.naming(list[0]!) as { appHost: string }).appHost) };
      apps.set(application, app);
      for (const [host, claims] of app.claims) {
        if (claims.size > 1) contested.add(host);
        // Claims of different applications always differ.
        const first = owner.get(host);
        if (first === undefined) owner.set(host, application);
        else if (first !== application) contested.add(host);
      }
    }
    // An interface provided by several applications (a rename or a split in progress) is
    // Dubbo's normal case: its name resolves to the providers of all of them.
    const shared = new Map<string, string[]>();
    if (contested.size) {
      // Who claims each contested name, in key order, for the messages.
      const claims = new Map<string, Set<string>>();
      const add = (host: string, claim: string): void => {
        if (contested.has(host)) (claims.get(host) ?? claims.set(host, new Set()).get(host)!).add(claim);
      };
      for (const p of sorted) {
        const n = this.naming(p);
        if ('error' in n) continue;
        if (!p.instanceOnly) add(n.host, `${p.application}|${ifaceKey(p)}`);
        add(n.appHost, `${p.application}|`);
      }
      for (const [host, cs] of claims) {
        const keys = new Set([...cs].map((c) => c.slice(c.indexOf('|') + 1)));
        if (keys.size === 1 && !keys.has('')) shared.set(host, [...cs].map((c) => c.slice(0, c.indexOf('|'))).sort());
      }
      for (const { list } of apps.values()) {
        for (const p of list) {
          const host = hostOf(p);
          if (contested.has(host) && !shared.has(host) && !p.instanceOnly) {
            const others = [...claims.get(host)!].filter((c) => c !== `${p.application}|${ifaceKey(p)}`).map(describeClaim);
            reject(p, 'interface', `name ${host} is also claimed by ${others.join(', ')}; neither is served under it`);
          }
        }
      }
    }

    const services: Service[] = [];
    const endpoints: Endpoint[] = [];
    for (const [application, app] of [...apps].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const mine = contested.size ? [...app.claims.keys()].filter((h) => contested.has(h)).join(' ') : '';
      if (app.contested !== mine || !app.endpoints) {
        const out = this.mapApplication(application, app.list, contested, hostOf);
        // Equal content keeps the previous objects (e.g. one instance's weight changed: the service did not).
        const prior = this.apps.get(application);
        app.service = out.service && prior?.service && canonicalJson(out.service) === canonicalJson(prior.service) ? prior.service : out.service;
        app.endpoints = out.endpoints.map((e, i) => {
          const old = prior?.endpoints?.[i];
          return old && canonicalJson(old) === canonicalJson(e) ? old : e;
        });
        app.rejections = out.rejections;
        app.warnings = out.warnings;
        app.contested = mine;
      }
      if (app.service) services.push(app.service);
      endpoints.push(...app.endpoints);
      rejections.push(...app.rejections!);
      warnings.push(...app.warnings!);
    }
    for (const [host, owners] of [...shared].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const list = sorted.filter((p) => !p.instanceOnly && owners.includes(p.application) && !('error' in this.naming(p)) && hostOf(p) === host);
      const out = this.mapShared(host, list);
      services.push(out.service);
      endpoints.push(...out.endpoints);
      rejections.push(...out.rejections);
      warnings.push(...out.warnings);
      const p = list[0]!;
      warnings.push({
        source: host,
        kind: 'interface',
        name: p.interface,
        reason: `interface ${describeKey(ifaceKey(p))} is provided by applications ${owners.join(', ')}; ${host} resolves to the providers of all of them (each endpoint labelled app=<application>), and each application's own name to its own`,
      });
    }
    this.apps = apps;
    const last = this.last;
    this.last = {
      services: last && sameItems(last.services, services) ? last.services : services,
      endpoints: last && sameItems(last.endpoints, endpoints) ? last.endpoints : endpoints,
      rejections,
      warnings,
    };
    return this.last;
  }

  /** An interface of several applications: a service of its own, every provider an endpoint labelled with its application. */
  private mapShared(host: string, list: readonly Provider[]): { service: Service; endpoints: Endpoint[]; rejections: Rejection[]; warnings: Rejection[] } {
    const { ports, rejections, warnings } = servicePorts(list, `interface ${list[0]!.interface}`);
    const methods = [...new Set(list.flatMap((p) => p.methods))].sort();
    const first = list[0]!;
    const service: Service = {
      hostname: host,
      aliases: [],
      namespace: this.opts.namespace ?? 'default',
      ports: [...ports.values()].sort((a, b) => a.number - b.number),
      addresses: [],
      resolution: 'STATIC',
      location: 'MESH_INTERNAL',
      interfaces: [],
      origin: { registry: this.opts.registry, ref: `interface ${first.interface}${methods.length ? ` (${methods.join(',')})` : ''} of applications ${[...new Set(list.map((p) => p.application))].join(', ')}` },
    };
    const endpoints = instanceEndpoints(list.filter((p) => ports.has(p.protocol)), host, this.opts.registry, () => undefined);
    return { service, endpoints, rejections, warnings };
  }

  /** One application's service, endpoints and problems, given which names are contested. */
  private mapApplication(application: string, list: readonly Provider[], contested: ReadonlySet<string>, hostOf: (p: Provider) => string): { service?: Service; endpoints: Endpoint[]; rejections: Rejection[]; warnings: Rejection[] } {
    const zone = this.zone;
    const namespace = this.opts.namespace ?? 'default';
    const opts = this.opts;
    const rejections: Rejection[] = [];
    const reject = (p: Provider, field: string, reason: string): void => {
      rejections.push({ source: p.key, kind: 'provider', name: p.interface, field, reason });
    };
    const endpoints: Endpoint[] = [];
    const hostname = applicationHostname(application, zone);
    if (contested.has(hostname)) {
      for (const p of list) reject(p, 'application', `application name ${hostname} collides with an interface name; the application is not served`);
      return { endpoints, rejections, warnings: [] };
    }
    const { ports, rejections: portProblems, warnings } = servicePorts(list, `application ${application}`);
    rejections.push(...portProblems);

    const interfaces = new Map<string, RpcInterface>();
    for (const p of list) {
      if (!ports.has(p.protocol) || p.instanceOnly) continue;
      const host = hostOf(p);
      if (contested.has(host)) continue;
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

    const service: Service = {
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
    };
    const served = (p: Provider): string | undefined => {
      if (p.instanceOnly) return undefined;
      const h = hostOf(p);
      return contested.has(h) ? undefined : h;
    };
    endpoints.push(...instanceEndpoints(list.filter((p) => ports.has(p.protocol)), hostname, opts.registry, served));
    return { service, endpoints, rejections, warnings };
  }
}

/** One port per protocol, the lowest seen (endpoints carry their own); two protocols on one number keep the first. */
function servicePorts(list: readonly Provider[], owner: string): { ports: Map<string, ServicePort>; rejections: Rejection[]; warnings: Rejection[] } {
  const rejections: Rejection[] = [];
  const warnings: Rejection[] = [];
  const ports = new Map<string, ServicePort>();
  for (const p of list) {
    const prev = ports.get(p.protocol);
    if (!prev || p.port < prev.number) ports.set(p.protocol, { name: p.protocol, number: p.port, protocol: portProtocol(p.protocol) });
  }
  // Envoy decodes a Dubbo port only when every provider on it is the Dubbo framework's and
  // its calls are Hessian2 (Dubbo 3.2+ may prefer fastjson2, which the filter cannot decode).
  const dubbo = ports.get('dubbo');
  if (dubbo && list.some((p) => p.protocol === 'dubbo' && !p.speaksDubbo)) ports.set('dubbo', { ...dubbo, protocol: 'TCP' });
  else if (dubbo) {
    const other = list.find((p) => p.protocol === 'dubbo' && undecodable(p));
    if (other) {
      ports.set('dubbo', { ...dubbo, protocol: 'TCP' });
      warnings.push({ source: other.key, kind: 'provider', name: other.interface, field: 'prefer.serialization', reason: `${owner}: Dubbo port ${dubbo.number} served as opaque TCP (per-connection balancing, no method routes): provider ${other.address} ${undecodable(other)}, which Envoy's Dubbo filter cannot decode` });
    }
  }
  const byNumber = new Map<number, string>();
  for (const port of [...ports.values()].sort((a, b) => a.number - b.number || (a.name < b.name ? -1 : 1))) {
    const other = byNumber.get(port.number);
    if (other) {
      for (const p of list) {
        if (p.protocol === port.name) rejections.push({ source: p.key, kind: 'provider', name: p.interface, field: 'protocol', reason: `${owner} serves ${other} and ${port.name} on port ${port.number}; ${port.name} is not served` });
      }
      ports.delete(port.name);
    } else byNumber.set(port.number, port.name);
  }
  return { ports, rejections, warnings };
}

/** Serializations Envoy's Dubbo filter decodes. */
const DECODED = new Set(['hessian2']);

/** Why a provider's calls may not be Hessian2, or undefined. */
function undecodable(p: Provider): string | undefined {
  const s = p.params.serialization;
  if (s && !DECODED.has(s)) return `uses serialization ${s}`;
  const prefer = p.params['prefer.serialization']?.split(',')[0]?.trim();
  if (prefer && !DECODED.has(prefer)) return `prefers serialization ${prefer}`;
  return undefined;
}

/**
 * One endpoint per instance (address, protocol, port), however many interfaces it serves or
 * ways it registered. Labels equal on all its providers are the endpoint's; what differs per
 * interface (version, revision…) is kept under that interface.
 */
function instanceEndpoints(list: readonly Provider[], service: string, registry: string, served: (p: Provider) => string | undefined): Endpoint[] {
  const instances = new Map<string, Provider[]>();
  for (const p of list) {
    const inst = `${p.address}|${p.protocol}|${p.port}`;
    (instances.get(inst) ?? instances.set(inst, []).get(inst)!).push(p);
  }
  const endpoints: Endpoint[] = [];
  for (const ps of instances.values()) {
    const first = ps[0]!;
    const labels: Record<string, string> = { app: first.application };
    for (const [k, v] of Object.entries(first.params)) if (k !== 'app' && ps.every((p) => p.params[k] === v)) labels[k] = v;
    const own: Record<string, Record<string, string>> = {};
    for (const p of ps) {
      const host = served(p);
      if (!host) continue;
      for (const [k, v] of Object.entries(p.params)) {
        if (k !== 'app' && labels[k] !== v) (own[host] ??= {})[k] = v;
      }
    }
    const interfaces = [...new Set(ps.map(served).filter((h): h is string => h !== undefined))].sort();
    endpoints.push({
      service,
      address: first.address,
      ports: { [first.protocol]: first.port },
      labels,
      locality: { ...(first.params.region ? { region: first.params.region } : {}), ...(first.params.zone ? { zone: first.params.zone } : {}) },
      // Dubbo's default weight 100 is a normal instance, weight 1 in the model, so VM
      // providers and instances from other registries share traffic evenly.
      weight: Math.max(...ps.map((p) => p.weight)) / 100,
      health: ps.some((p) => p.enabled) ? 'HEALTHY' : 'UNHEALTHY',
      origin: { registry, ref: first.key },
      interfaces,
      ...(Object.keys(own).length ? { interfaceLabels: own } : {}),
    });
  }
  return endpoints;
}

/** Hostname → the distinct claims one application makes on it (its interfaces' names and its own). */
function appClaims(application: string, list: readonly Provider[], hostOf: (p: Provider) => string, appHost: string): Map<string, Set<string>> {
  const claims = new Map<string, Set<string>>();
  const add = (host: string, claim: string): void => {
    (claims.get(host) ?? claims.set(host, new Set()).get(host)!).add(claim);
  };
  for (const p of list) if (!p.instanceOnly) add(hostOf(p), `${application}|${ifaceKey(p)}`);
  add(appHost, `${application}|`);
  return claims;
}

function describeClaim(c: string): string {
  const [app, key] = c.split('|');
  if (!key) return `application ${app}`;
  return `${describeKey(key)} of application ${app}`;
}

function describeKey(key: string): string {
  const [iface, version, group] = key.split(':');
  return `${iface}${version ? ` version ${version}` : ''}${group ? ` group ${group}` : ''}`;
}
