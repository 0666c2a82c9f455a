// The unified service model: what every registry produces and every output consumes.
import type { DestinationRule, VirtualService } from './rules/types.ts';
import type { PeerAuthentication } from './rules/peer-authentication.ts';
import type { Origin } from './origin.ts';

export type { Origin } from './origin.ts';

/** DUBBO: Dubbo's own protocol (Hessian2 on TCP), decoded by Envoy's Dubbo filter; otherwise like TCP. */
export type Protocol = 'HTTP' | 'HTTP2' | 'GRPC' | 'TCP' | 'TLS' | 'HTTPS' | 'DUBBO';
/** Protocols an app port may be declared with (a DUBBO port is known from the registry; inbound it is TCP). */
export const PROTOCOLS: readonly Protocol[] = ['HTTP', 'HTTP2', 'GRPC', 'TCP', 'TLS', 'HTTPS'];

/** Protocols Envoy can route by Host/:authority. */
export function isHttpProtocol(p: Protocol): boolean {
  return p === 'HTTP' || p === 'HTTP2' || p === 'GRPC';
}

/**
 * Model weights are relative with 1 for a normal instance (a Dubbo weight of 100); Envoy
 * wants whole numbers of at least 1, so they are sent in hundredths (SRV weights too).
 */
export function lbWeight(weight: number): number {
  return Math.max(1, Math.round(weight * 100));
}

/** The port an endpoint serves a service port on. */
export function endpointPort(ep: Endpoint, port: ServicePort): number {
  return ep.ports[port.name] ?? port.targetPort ?? port.number;
}

export interface ServicePort {
  readonly name: string;
  readonly number: number;
  readonly protocol: Protocol;
  /** Port on the endpoints when an endpoint does not name one. Defaults to `number`. */
  readonly targetPort?: number;
}

/** An RPC interface: a first-class name that belongs to a service. */
export interface RpcInterface {
  /** Interface name as the registry spells it, e.g. com.alipay.userservice.UserQuery. */
  readonly name: string;
  readonly version?: string;
  readonly group?: string;
  readonly methods: readonly string[];
  /** Service port the interface is served on; undefined means every port. */
  readonly port?: number;
  /** Canonical DNS name of the interface (see src/model/naming.ts); unique in the model. */
  readonly hostname: string;
}

export type Resolution = 'STATIC' | 'DNS' | 'NONE';
export type Location = 'MESH_EXTERNAL' | 'MESH_INTERNAL';

export interface Locality {
  readonly region?: string;
  readonly zone?: string;
  readonly subzone?: string;
}

export interface Service {
  /** Primary hostname: the cluster and DNS name. */
  readonly hostname: string;
  /** Further hostnames routed to the same service (ServiceEntry hosts[1:]). */
  readonly aliases: readonly string[];
  readonly namespace: string;
  readonly ports: readonly ServicePort[];
  /** Virtual IPs (or CIDRs) of the service. */
  readonly addresses: readonly string[];
  readonly resolution: Resolution;
  readonly location: Location;
  readonly interfaces: readonly RpcInterface[];
  /** Selects workloads (same namespace) whose addresses become endpoints. */
  readonly workloadSelector?: Readonly<Record<string, string>>;
  readonly origin: Origin;
}

export type Health = 'HEALTHY' | 'UNHEALTHY' | 'DRAINING';

export interface Endpoint {
  /** Hostname of the service this endpoint belongs to. */
  readonly service: string;
  readonly address: string;
  /** Port name → port on this endpoint; a missing name means the service port's target. */
  readonly ports: Readonly<Record<string, number>>;
  readonly labels: Readonly<Record<string, string>>;
  readonly locality: Locality;
  /** Relative load-balancing weight; 1 is a normal instance in every registry. */
  readonly weight: number;
  readonly health: Health;
  readonly origin: Origin;
  /**
   * Canonical names of the interfaces this endpoint serves. Undefined means every
   * interface of its service (an instance of the same application, e.g. a migrated pod).
   */
  readonly interfaces?: readonly string[];
  /**
   * Labels of one interface on this endpoint where they differ from `labels` (e.g. each
   * interface's own version or revision), by interface name. Subsets of that interface
   * match `labels` overlaid with these.
   */
  readonly interfaceLabels?: Readonly<Record<string, Readonly<Record<string, string>>>>;
  /** Who the workload runs as (a pod's ServiceAccount, a WorkloadEntry's serviceAccount): its SPIFFE ID names these. */
  readonly identity?: EndpointIdentity;
}

/** The namespace and service account of a workload; with the trust domain, its SPIFFE ID. */
export interface EndpointIdentity {
  readonly namespace: string;
  readonly serviceAccount: string;
}

/** The labels an endpoint has as a provider of one interface (or of its service when none is named). */
export function endpointLabels(e: Endpoint, iface?: string): Readonly<Record<string, string>> {
  const own = iface === undefined ? undefined : e.interfaceLabels?.[iface];
  return own ? { ...e.labels, ...own } : e.labels;
}

/** A workload instance that services select by labels (WorkloadEntry, pod, VM). */
export interface Workload {
  readonly name: string;
  readonly namespace: string;
  readonly address: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly ports: Readonly<Record<string, number>>;
  readonly locality: Locality;
  readonly weight: number;
  readonly health: Health;
  readonly origin: Origin;
  readonly identity?: EndpointIdentity;
}

/** A document or key a registry could not use, and why. */
export interface Rejection {
  /** File, key or object reference. */
  readonly source: string;
  /** Document index inside a multi-document file, when there is one. */
  readonly document?: number;
  readonly kind?: string;
  readonly name?: string;
  /** Dotted field path, e.g. spec.ports[0].number. */
  readonly field?: string;
  readonly reason: string;
}

/** Everything one registry knows at one moment. Registries emit a new state on each change. */
export interface RegistryState {
  /** Registry id (its URL). */
  readonly id: string;
  /** True once the registry has read its source completely at least once. */
  readonly synced: boolean;
  /** Set when the source is unreachable; the last known state is still served. */
  readonly error?: string;
  readonly services: readonly Service[];
  readonly endpoints: readonly Endpoint[];
  readonly workloads: readonly Workload[];
  readonly rejections: readonly Rejection[];
  /** What the registry serves but an operator should know (e.g. an interface provided by two applications). */
  readonly warnings?: readonly Rejection[];
  /** Routing rules (registries that carry Istio documents: files, Kubernetes). */
  readonly virtualServices?: readonly VirtualService[];
  readonly destinationRules?: readonly DestinationRule[];
  /** security.istio.io PeerAuthentications: which connections sidecars accept. */
  readonly peerAuthentications?: readonly PeerAuthentication[];
}
