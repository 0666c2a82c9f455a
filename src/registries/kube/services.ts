// Services and EndpointSlices → model services and endpoints.
//
// A Service is `<name>.<namespace>.svc.<domain>` (aliases `<name>.<namespace>.svc` and
// `<name>.<namespace>`, the names pods reach it by through their DNS search path); its
// ClusterIPs are its VIPs; a headless Service has none; an ExternalName Service resolves
// its target by DNS. A port's protocol comes from appProtocol, else from the Istio port
// naming convention (`grpc`, `http`, `http2`, `https`, `tls`, `tcp`, with an optional
// `-suffix`), else TCP. UDP and SCTP ports are not served (Envoy here proxies TCP only).
//
// Endpoints follow kube-proxy: ready endpoints serve; serving-but-terminating ones serve
// only while no endpoint of the service is ready, and drain otherwise; the rest are
// unhealthy. An address listed by several slices of one service (while the controller
// moves it) counts once, in its best state.
import type { Endpoint, Health, Protocol, Rejection, Resolution, Service, ServicePort } from '../../model/types.ts';
import type { KubeObject } from './client.ts';
import { type ClusterContext, endpointLabels, localityOf, type NodeLike, podIdentity, type PodLike } from './pods.ts';

interface ServiceSpecPort {
  readonly name?: string;
  readonly port?: number;
  readonly protocol?: string;
  readonly appProtocol?: string;
  readonly targetPort?: number | string;
}

export interface ServiceLike extends KubeObject {
  readonly spec?: {
    readonly type?: string;
    readonly clusterIP?: string;
    readonly clusterIPs?: readonly string[];
    readonly ports?: readonly ServiceSpecPort[];
    readonly externalName?: string;
  };
}

interface SliceEndpoint {
  readonly addresses?: readonly string[];
  readonly conditions?: { readonly ready?: boolean | null; readonly serving?: boolean | null; readonly terminating?: boolean | null };
  readonly nodeName?: string;
  readonly zone?: string;
  readonly targetRef?: { readonly kind?: string; readonly name?: string; readonly namespace?: string };
}

export interface EndpointSliceLike extends KubeObject {
  readonly addressType?: string;
  readonly endpoints?: readonly SliceEndpoint[] | null;
  readonly ports?: readonly { readonly name?: string | null; readonly port?: number | null; readonly protocol?: string | null }[] | null;
}

export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

// appProtocol values (IANA names, Kubernetes-defined ones, and Istio's) → model.
const APP_PROTOCOLS: Readonly<Record<string, Protocol>> = {
  http: 'HTTP', 'http/1.1': 'HTTP', http2: 'HTTP2', h2c: 'HTTP2', 'kubernetes.io/h2c': 'HTTP2', grpc: 'GRPC', 'grpc-web': 'HTTP',
  https: 'HTTPS', tls: 'TLS', tcp: 'TCP', 'kubernetes.io/ws': 'HTTP', 'kubernetes.io/wss': 'HTTPS',
  mongo: 'TCP', mysql: 'TCP', redis: 'TCP',
};
// Port-name prefixes of the Istio convention: `<protocol>[-<suffix>]`.
const NAME_PROTOCOLS: Readonly<Record<string, Protocol>> = {
  http: 'HTTP', http2: 'HTTP2', grpc: 'GRPC', 'grpc-web': 'HTTP', https: 'HTTPS', tls: 'TLS', tcp: 'TCP', mongo: 'TCP', mysql: 'TCP', redis: 'TCP',
};

/** The protocol of a Service port: appProtocol, then the port-name convention, then TCP. */
export function servicePortProtocol(name: string | undefined, appProtocol: string | undefined): Protocol {
  if (appProtocol) {
    const p = APP_PROTOCOLS[appProtocol.toLowerCase()];
    if (p) return p;
  }
  const n = (name ?? '').toLowerCase();
  if (n.startsWith('grpc-web')) return 'HTTP';
  const prefix = n.split('-')[0]!;
  return NAME_PROTOCOLS[prefix] ?? 'TCP';
}

/** Model name of a port: its name, or `port-N` for the single unnamed port a Service may have. */
export function portKey(name: string | null | undefined, number: number): string {
  return name || `port-${number}`;
}

export function serviceHostname(name: string, namespace: string, domain: string): string {
  return `${name}.${namespace}.svc.${domain}`;
}

export interface ServiceModel {
  readonly services: Service[];
  readonly endpoints: Endpoint[];
  readonly rejections: Rejection[];
}

export interface ServiceInputs {
  readonly services: Iterable<ServiceLike>;
  readonly slices: Iterable<EndpointSliceLike>;
  readonly pods: ReadonlyMap<string, PodLike>;
  readonly nodes: ReadonlyMap<string, NodeLike>;
  /** Add `<name>.<namespace>.svc` and `<name>.<namespace>` as aliases. Default true. */
  readonly shortNames?: boolean;
}

export function mapServices(ctx: ClusterContext, input: ServiceInputs): ServiceModel {
  const services: Service[] = [];
  const endpoints: Endpoint[] = [];
  const rejections: Rejection[] = [];
  const slicesByService = new Map<string, EndpointSliceLike[]>();
  for (const s of input.slices) {
    const svc = s.metadata?.labels?.[SERVICE_NAME_LABEL];
    if (!svc) continue;
    const k = `${s.metadata?.namespace ?? 'default'}/${svc}`;
    (slicesByService.get(k) ?? slicesByService.set(k, []).get(k)!).push(s);
  }

  const sorted = [...input.services].sort((a, b) => (keyOf(a) < keyOf(b) ? -1 : 1));
  for (const svc of sorted) {
    const name = svc.metadata?.name;
    const namespace = svc.metadata?.namespace ?? 'default';
    if (!name) continue;
    const ref = `Service ${namespace}/${name}`;
    const origin = { registry: ctx.registry, ref };
    const hostname = serviceHostname(name, namespace, ctx.domain);
    const spec = svc.spec ?? {};
    const ports: ServicePort[] = [];
    for (const p of spec.ports ?? []) {
      if (!p.port || (p.protocol ?? 'TCP') !== 'TCP') continue;
      ports.push({
        name: portKey(p.name, p.port),
        number: p.port,
        protocol: servicePortProtocol(p.name, p.appProtocol),
        ...(typeof p.targetPort === 'number' ? { targetPort: p.targetPort } : {}),
      });
    }
    if (ports.length === 0) continue; // nothing Envoy could carry
    const aliases = input.shortNames === false ? [] : [`${name}.${namespace}.svc`, `${name}.${namespace}`];
    const external = spec.type === 'ExternalName';
    const headless = spec.clusterIP === 'None';
    const vips = external || headless ? [] : [...new Set((spec.clusterIPs?.length ? spec.clusterIPs : [spec.clusterIP]).filter((ip): ip is string => !!ip && ip !== 'None'))];
    const resolution: Resolution = external ? 'DNS' : 'STATIC';
    services.push({
      hostname,
      aliases,
      namespace,
      ports: ports.sort((a, b) => a.number - b.number),
      addresses: vips,
      resolution,
      location: external ? 'MESH_EXTERNAL' : 'MESH_INTERNAL',
      interfaces: [],
      origin,
    });
    if (external) {
      if (spec.externalName) {
        endpoints.push({ service: hostname, address: spec.externalName, ports: {}, labels: endpointLabels(ctx, undefined), locality: localityOf(ctx, input.nodes, undefined), weight: 1, health: 'HEALTHY', origin });
      } else {
        rejections.push({ source: `${ctx.registry} ${ref}`, kind: 'Service', name, field: 'spec.externalName', reason: 'an ExternalName Service needs spec.externalName' });
      }
      continue;
    }
    // A Service's only port may be unnamed; its slices then list the endpoint port unnamed too.
    const unnamed = (spec.ports ?? []).find((p) => !p.name && p.port);
    const unnamedKey = unnamed ? portKey(undefined, unnamed.port!) : undefined;
    endpoints.push(...sliceEndpoints(ctx, hostname, namespace, slicesByService.get(`${namespace}/${name}`) ?? [], input, unnamedKey));
  }
  return { services, endpoints, rejections };
}

function keyOf(o: KubeObject): string {
  return `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
}

interface Candidate {
  endpoint: Endpoint;
  ready: boolean;
  servingTerminating: boolean;
}

function sliceEndpoints(
  ctx: ClusterContext,
  hostname: string,
  namespace: string,
  slices: readonly EndpointSliceLike[],
  input: ServiceInputs,
  unnamedKey: string | undefined,
): Endpoint[] {
  const byAddress = new Map<string, Candidate>();
  for (const slice of [...slices].sort((a, b) => (keyOf(a) < keyOf(b) ? -1 : 1))) {
    if (slice.addressType && slice.addressType !== 'IPv4' && slice.addressType !== 'IPv6') continue;
    const ports: Record<string, number> = {};
    for (const p of slice.ports ?? []) {
      if (!p.port || (p.protocol ?? 'TCP') !== 'TCP') continue;
      const name = p.name || unnamedKey;
      if (name) ports[name] = p.port;
    }
    const ref = `EndpointSlice ${namespace}/${slice.metadata?.name ?? '?'}`;
    for (const e of slice.endpoints ?? []) {
      const ready = e.conditions?.ready ?? true;
      const serving = e.conditions?.serving ?? ready;
      const terminating = e.conditions?.terminating ?? false;
      const pod = e.targetRef?.kind === 'Pod' && e.targetRef.name ? input.pods.get(`${e.targetRef.namespace ?? namespace}/${e.targetRef.name}`) : undefined;
      for (const address of e.addresses ?? []) {
        const endpoint: Endpoint = {
          service: hostname,
          address,
          ports: { ...ports },
          labels: endpointLabels(ctx, pod?.metadata?.labels),
          locality: localityOf(ctx, input.nodes, e.nodeName ?? pod?.spec?.nodeName, e.zone),
          weight: 1,
          health: 'UNHEALTHY',
          origin: { registry: ctx.registry, ref },
          ...(pod ? { identity: podIdentity(pod, pod.metadata?.namespace ?? namespace) } : {}),
        };
        const c: Candidate = { endpoint, ready, servingTerminating: !ready && serving && terminating };
        const key = `${address}|${JSON.stringify(endpoint.ports)}`;
        const prev = byAddress.get(key);
        if (!prev || rank(c) > rank(prev)) byAddress.set(key, c);
      }
    }
  }
  const all = [...byAddress.values()];
  const anyReady = all.some((c) => c.ready);
  return all.map((c) => ({ ...c.endpoint, health: healthOf(c, anyReady) }));
}

function rank(c: Candidate): number {
  return c.ready ? 2 : c.servingTerminating ? 1 : 0;
}

function healthOf(c: Candidate, anyReady: boolean): Health {
  if (c.ready) return 'HEALTHY';
  if (c.servingTerminating) return anyReady ? 'DRAINING' : 'HEALTHY';
  return 'UNHEALTHY';
}
