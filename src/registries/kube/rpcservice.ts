// The RPCService custom resource (rpc.isthmus.io/v1alpha1) → a model service whose RPC
// interfaces are first-class names, exactly as the SOA registry names them:
//
//   apiVersion: rpc.isthmus.io/v1alpha1
//   kind: RPCService
//   metadata: { name: userservice, namespace: default }
//   spec:
//     application: userservice          # default: metadata.name
//     selector: { app: userservice }    # pods of the application; default { app: <application> }
//     interfaces:
//       - { name: com.alipay.userservice.UserQuery, port: 20880, protocol: tri, version: 1.0.0, group: blue, methods: [get] }
//
// The service is `<application>.rpc.cluster.local`, the name the SOA registry gives the same
// application, so providers registered by VMs (or by the registration agent of a pod) and
// the pods selected here end up in one service; the model merges their interfaces. The pods
// join through the service's workload selector, as they would for a ServiceEntry.
//
// Names claimed twice are conflicts, reported in the status of every RPCService involved:
// an application defined by two RPCServices is served from the first (by namespace/name);
// an interface name claimed by two different interfaces or applications is served by none.
import type { Protocol, Rejection, RpcInterface, Service, ServicePort } from '../../model/types.ts';
import { applicationHostname, DEFAULT_ZONE, interfaceHostname, NamingError } from '../../model/naming.ts';
import { portProtocol } from '../soa/mapping.ts';
import { Checker, isDns1123Label, sub } from '../../shared/checks.ts';
import type { KubeObject } from './client.ts';
import { type ClusterContext, podAddress, type PodLike, podReady, selects } from './pods.ts';

export interface RpcServiceLike extends KubeObject {
  readonly spec?: unknown;
  readonly status?: RpcServiceStatus;
}

export interface RpcInterfaceStatus {
  readonly name: string;
  readonly version?: string;
  readonly group?: string;
  readonly port: number;
  readonly protocol: string;
  readonly hostname: string;
}

export interface RpcConflict {
  /** The contested name, or the field that could not be used. */
  readonly name: string;
  readonly reason: string;
}

export interface RpcCondition {
  readonly type: string;
  readonly status: 'True' | 'False' | 'Unknown';
  readonly reason: string;
  readonly message: string;
  readonly lastTransitionTime?: string;
  readonly observedGeneration?: number;
}

/** What Isthmus resolved for one RPCService: written to its status subresource. */
export interface RpcServiceStatus {
  readonly observedGeneration?: number;
  /** The application's service name, when it is served. */
  readonly hostname?: string;
  /** Interfaces served under their own names. */
  readonly interfaces: readonly RpcInterfaceStatus[];
  /** Selected pods that are ready (endpoints that take traffic). */
  readonly endpoints: number;
  /** Selected pods with an address, ready or not. */
  readonly selectedPods: number;
  readonly conflicts: readonly RpcConflict[];
  readonly conditions?: readonly RpcCondition[];
}

export interface RpcServiceModel {
  readonly services: Service[];
  readonly rejections: Rejection[];
  /** Desired status by "namespace/name" (without conditions' transition times). */
  readonly statuses: Map<string, RpcServiceStatus>;
}

const SPEC_KEYS = ['application', 'selector', 'interfaces'];
const IFACE_KEYS = ['name', 'port', 'protocol', 'version', 'group', 'methods'];
// Istio protocol names that the SOA layer does not know; the rest go through the SOA mapping
// (tri and grpc → GRPC, http and rest → HTTP, h2 and h2c → HTTP2, anything else opaque TCP).
const EXTRA_PROTOCOLS: Readonly<Record<string, Protocol>> = { http2: 'HTTP2', https: 'HTTPS', tls: 'TLS', tcp: 'TCP' };

export function rpcProtocol(name: string): Protocol {
  return EXTRA_PROTOCOLS[name] ?? portProtocol(name);
}

interface ParsedIface {
  readonly name: string;
  readonly version?: string;
  readonly group?: string;
  readonly port: number;
  readonly protocol: string;
  readonly methods: readonly string[];
  readonly field: string;
}

interface Parsed {
  readonly key: string;
  readonly namespace: string;
  readonly name: string;
  readonly generation?: number;
  readonly application: string;
  readonly selector: Record<string, string>;
  readonly interfaces: ParsedIface[];
  readonly problems: { field: string; reason: string }[];
}

function parse(obj: RpcServiceLike): Parsed | undefined {
  const name = obj.metadata?.name;
  if (!name) return undefined;
  const namespace = obj.metadata?.namespace ?? 'default';
  const c = new Checker();
  const spec = c.object(obj.spec, 'spec', SPEC_KEYS) ?? {};
  if (obj.spec === undefined || obj.spec === null) c.fail('spec', 'spec is missing; an RPCService needs spec.interfaces');
  const application = c.string(spec.application, 'spec.application') || name;
  const selector = spec.selector === undefined || spec.selector === null ? { app: application } : (c.labels(spec.selector, 'spec.selector', { noWildcard: true }) ?? {});
  if (Object.keys(selector).length === 0) c.fail('spec.selector', 'spec.selector is empty; it would select no pods (omit it to select app=<application>)');
  const interfaces: ParsedIface[] = [];
  const list = c.list(spec.interfaces, 'spec.interfaces') ?? [];
  if (list.length === 0 && (spec.interfaces === undefined || Array.isArray(spec.interfaces))) c.fail('spec.interfaces', 'spec.interfaces is empty; list the RPC interfaces the pods expose');
  list.forEach((item, i) => {
    const field = sub('spec.interfaces', i);
    const before = c.problems.length;
    const it = c.object(item, field, IFACE_KEYS);
    if (!it) {
      if (item === null || item === undefined) c.fail(field, `${field} is empty; expected a mapping with name and port`);
      return;
    }
    const iname = c.string(it.name, `${field}.name`);
    if (!iname) c.fail(`${field}.name`, `${field}.name is missing; expected the interface name, e.g. com.example.UserQuery`);
    if (it.port === undefined || it.port === null) c.fail(`${field}.port`, `${field}.port is missing; expected the port the pods serve the interface on`);
    const port = c.integer(it.port, `${field}.port`, 1, 65535);
    const protocol = (c.string(it.protocol, `${field}.protocol`) ?? 'grpc').toLowerCase();
    if (!isDns1123Label(protocol)) c.fail(`${field}.protocol`, `protocol ${JSON.stringify(protocol)} is not a valid port name; expected e.g. grpc, tri, dubbo, http`);
    const version = c.string(it.version, `${field}.version`) || undefined;
    const group = c.string(it.group, `${field}.group`) || undefined;
    const methods = (c.strings(it.methods, `${field}.methods`) ?? []).map((m) => m.value);
    if (c.problems.length > before || !iname || port === undefined) return;
    interfaces.push({ name: iname, ...(version ? { version } : {}), ...(group ? { group } : {}), port, protocol, methods: [...new Set(methods)].sort(), field });
  });
  return { key: `${namespace}/${name}`, namespace, name, ...(obj.metadata?.generation !== undefined ? { generation: obj.metadata.generation } : {}), application, selector, interfaces, problems: c.problems };
}

export function mapRpcServices(ctx: ClusterContext, objects: Iterable<RpcServiceLike>, pods: Iterable<PodLike>, zone = DEFAULT_ZONE): RpcServiceModel {
  const parsed = [...objects].map(parse).filter((p): p is Parsed => p !== undefined).sort((a, b) => (a.key < b.key ? -1 : 1));
  const conflicts = new Map<string, RpcConflict[]>(parsed.map((p) => [p.key, p.problems.map((x) => ({ name: x.field, reason: x.reason }))]));
  const conflict = (key: string, name: string, reason: string): void => void conflicts.get(key)!.push({ name, reason });

  // Applications: the first RPCService of an application defines it.
  const appHost = new Map<string, string>();
  const appOwner = new Map<string, string>();
  const usable: Parsed[] = [];
  for (const p of parsed) {
    let host: string;
    try {
      host = applicationHostname(p.application, zone);
    } catch (e) {
      if (!(e instanceof NamingError)) throw e;
      conflict(p.key, 'spec.application', e.message);
      continue;
    }
    const owner = appOwner.get(host);
    if (owner) {
      conflict(p.key, host, `application ${p.application} is already defined by RPCService ${owner}; this one is not served`);
      continue;
    }
    appOwner.set(host, p.key);
    appHost.set(p.key, host);
    usable.push(p);
  }

  // Interface names, and who claims each. Claimed by two different interfaces (or also an
  // application's name): reported for all of them and served by none, as in the SOA registry.
  const claims = new Map<string, Set<string>>();
  const hostOf = new Map<ParsedIface, string>();
  const claim = (host: string, who: string): void => void (claims.get(host) ?? claims.set(host, new Set()).get(host)!).add(who);
  for (const [host, key] of appOwner) claim(host, `application of RPCService ${key}`);
  for (const p of usable) {
    for (const i of p.interfaces) {
      try {
        const h = interfaceHostname(i.name, i.version, i.group, zone);
        hostOf.set(i, h);
        claim(h, `${describeIface(i)} of RPCService ${p.key}`);
      } catch (e) {
        if (!(e instanceof NamingError)) throw e;
        conflict(p.key, `${i.field}.name`, e.message);
      }
    }
  }

  const services: Service[] = [];
  const statuses = new Map<string, RpcServiceStatus>();
  const podList = [...pods];
  for (const p of parsed) {
    const host = appHost.get(p.key);
    const served: RpcInterface[] = [];
    const ifaceStatus: RpcInterfaceStatus[] = [];
    const ports = new Map<number, ServicePort>();
    if (host) {
      if ((claims.get(host)?.size ?? 0) > 1) {
        const others = [...claims.get(host)!].filter((c) => c !== `application of RPCService ${p.key}`);
        conflict(p.key, host, `application name ${host} is also claimed by ${others.join(', ')}; the application is not served`);
      }
      for (const i of p.interfaces) {
        const h = hostOf.get(i);
        if (!h) continue;
        const mine = `${describeIface(i)} of RPCService ${p.key}`;
        const others = [...(claims.get(h) ?? [])].filter((c) => c !== mine);
        if (others.length) {
          conflict(p.key, h, `name ${h} is also claimed by ${others.join(', ')}; neither is served under it`);
          continue;
        }
        const port = ports.get(i.port);
        if (port && port.name !== i.protocol) {
          conflict(p.key, `${i.field}.protocol`, `port ${i.port} already serves ${port.name}; ${describeIface(i)} (${i.protocol}) is not served`);
          continue;
        }
        if (served.some((s) => s.hostname === h)) {
          conflict(p.key, `${i.field}.name`, `${describeIface(i)} is listed twice; the first entry is used`);
          continue;
        }
        if (!port) ports.set(i.port, { name: i.protocol, number: i.port, protocol: rpcProtocol(i.protocol) });
        served.push({ name: i.name, ...(i.version ? { version: i.version } : {}), ...(i.group ? { group: i.group } : {}), methods: i.methods, port: i.port, hostname: h });
        ifaceStatus.push({ name: i.name, ...(i.version ? { version: i.version } : {}), ...(i.group ? { group: i.group } : {}), port: i.port, protocol: i.protocol, hostname: h });
      }
    }
    const applicationServed = host !== undefined && (claims.get(host)?.size ?? 0) <= 1 && ports.size > 0;
    if (applicationServed) {
      services.push({
        hostname: host,
        aliases: [],
        namespace: p.namespace,
        ports: [...ports.values()].sort((a, b) => a.number - b.number),
        addresses: [],
        resolution: 'STATIC',
        location: 'MESH_INTERNAL',
        interfaces: served.sort((a, b) => (a.hostname < b.hostname ? -1 : 1)),
        workloadSelector: p.selector,
        origin: { registry: ctx.registry, ref: `RPCService ${p.key}` },
      });
    }
    const selected = podList.filter((pod) => (pod.metadata?.namespace ?? 'default') === p.namespace && podAddress(pod) && selects(p.selector, pod.metadata?.labels));
    statuses.set(p.key, {
      ...(p.generation !== undefined ? { observedGeneration: p.generation } : {}),
      ...(applicationServed ? { hostname: host } : {}),
      interfaces: applicationServed ? ifaceStatus.sort((a, b) => (a.hostname < b.hostname ? -1 : 1)) : [],
      endpoints: selected.filter((pod) => podReady(pod) && !pod.metadata?.deletionTimestamp).length,
      selectedPods: selected.length,
      conflicts: conflicts.get(p.key)!,
    });
  }

  const rejections: Rejection[] = [];
  for (const [key, list] of conflicts) {
    const [, name] = key.split('/');
    for (const c of list) rejections.push({ source: `${ctx.registry} RPCService ${key}`, kind: 'RPCService', ...(name ? { name } : {}), field: c.name, reason: c.reason });
  }
  return { services, rejections, statuses };
}

function describeIface(i: { name: string; version?: string; group?: string }): string {
  return `${i.name}${i.version ? ` version ${i.version}` : ''}${i.group ? ` group ${i.group}` : ''}`;
}

/** The status with its Resolved condition; the transition time is kept while the condition holds. */
export function withConditions(desired: RpcServiceStatus, current: RpcServiceStatus | undefined, now: Date): RpcServiceStatus {
  const ok = desired.hostname !== undefined && desired.conflicts.length === 0;
  const cond: RpcCondition = {
    type: 'Resolved',
    status: ok ? 'True' : 'False',
    reason: ok ? 'Resolved' : desired.hostname ? 'PartlyResolved' : 'NotServed',
    message: ok
      ? `${desired.interfaces.length} interface(s) served under ${desired.hostname}`
      : `${desired.conflicts.length} problem(s); see status.conflicts`,
    ...(desired.observedGeneration !== undefined ? { observedGeneration: desired.observedGeneration } : {}),
  };
  const prev = current?.conditions?.find((c) => c.type === 'Resolved');
  const since = prev && prev.status === cond.status && prev.reason === cond.reason && prev.lastTransitionTime ? prev.lastTransitionTime : now.toISOString().replace(/\.\d+Z$/, 'Z');
  return { ...desired, conditions: [{ ...cond, lastTransitionTime: since }] };
}
