// Pods and Nodes → workloads: a pod's labels, address, named ports, readiness, and the
// locality of the node it runs on (overridden by the cluster's region/IDC when one is set).
import type { Health, Locality, Workload } from '../../model/types.ts';
import type { KubeObject, ObjectMeta } from './client.ts';

/** Where this cluster's objects come from and what every endpoint of it carries. */
export interface ClusterContext {
  /** Registry id, for Origin.registry. */
  readonly registry: string;
  /** Cluster name; endpoints are labelled topology.istio.io/cluster=NAME when set. */
  readonly clusterName?: string;
  /** Region (or IDC) of the whole cluster; wins over the nodes' region labels. */
  readonly region?: string;
  /** Cluster DNS domain. Default cluster.local. */
  readonly domain: string;
}

export const CLUSTER_LABEL = 'topology.istio.io/cluster';
const REGION_LABELS = ['topology.kubernetes.io/region', 'failure-domain.beta.kubernetes.io/region'];
const ZONE_LABELS = ['topology.kubernetes.io/zone', 'failure-domain.beta.kubernetes.io/zone'];
const SUBZONE_LABEL = 'topology.istio.io/subzone';

export interface PodLike extends KubeObject {
  readonly spec?: {
    readonly nodeName?: string;
    readonly hostNetwork?: boolean;
    readonly serviceAccountName?: string;
    readonly containers?: readonly { readonly ports?: readonly { readonly name?: string; readonly containerPort?: number; readonly protocol?: string }[] }[];
  };
  readonly status?: {
    readonly phase?: string;
    readonly podIP?: string;
    readonly podIPs?: readonly { readonly ip?: string }[];
    readonly conditions?: readonly { readonly type?: string; readonly status?: string }[];
  };
}

export interface NodeLike extends KubeObject {
  readonly metadata?: ObjectMeta;
}

function firstLabel(labels: Readonly<Record<string, string>> | undefined, keys: readonly string[]): string | undefined {
  for (const k of keys) if (labels?.[k]) return labels[k];
  return undefined;
}

/** Locality of something on `nodeName` (zone given by an EndpointSlice wins over the node's). */
export function localityOf(ctx: ClusterContext, nodes: ReadonlyMap<string, NodeLike>, nodeName: string | undefined, zone?: string): Locality {
  const labels = nodeName ? nodes.get(nodeName)?.metadata?.labels : undefined;
  const region = ctx.region ?? firstLabel(labels, REGION_LABELS);
  const z = zone ?? firstLabel(labels, ZONE_LABELS);
  const subzone = labels?.[SUBZONE_LABEL];
  return { ...(region ? { region } : {}), ...(z ? { zone: z } : {}), ...(subzone ? { subzone } : {}) };
}

/** Labels an endpoint of this cluster carries: the pod's, plus the cluster name. */
export function endpointLabels(ctx: ClusterContext, podLabels: Readonly<Record<string, string>> | undefined): Record<string, string> {
  return { ...podLabels, ...(ctx.clusterName ? { [CLUSTER_LABEL]: ctx.clusterName } : {}) };
}

export function podReady(pod: PodLike): boolean {
  return (pod.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

export function podHealth(pod: PodLike): Health {
  if (pod.metadata?.deletionTimestamp) return 'DRAINING';
  return podReady(pod) ? 'HEALTHY' : 'UNHEALTHY';
}

/** The pod's address, when it has one and is (or may soon be) running. */
export function podAddress(pod: PodLike): string | undefined {
  const phase = pod.status?.phase;
  if (phase === 'Succeeded' || phase === 'Failed') return undefined;
  return pod.status?.podIP || pod.status?.podIPs?.[0]?.ip || undefined;
}

/** Named TCP container ports: name → port. */
export function podPorts(pod: PodLike): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of pod.spec?.containers ?? []) {
    for (const p of c.ports ?? []) {
      if (p.name && p.containerPort && (p.protocol ?? 'TCP') === 'TCP' && out[p.name] === undefined) out[p.name] = p.containerPort;
    }
  }
  return out;
}

/** Every pod with an address is a workload: services with a selector (ServiceEntry, SOA applications, RPCService) pick them up. */
export function podWorkloads(ctx: ClusterContext, pods: Iterable<PodLike>, nodes: ReadonlyMap<string, NodeLike>): Workload[] {
  const out: Workload[] = [];
  for (const pod of pods) {
    const address = podAddress(pod);
    const name = pod.metadata?.name;
    const namespace = pod.metadata?.namespace ?? 'default';
    if (!address || !name) continue;
    out.push({
      name,
      namespace,
      address,
      labels: endpointLabels(ctx, pod.metadata?.labels),
      ports: podPorts(pod),
      locality: localityOf(ctx, nodes, pod.spec?.nodeName),
      weight: 1,
      health: podHealth(pod),
      origin: { registry: ctx.registry, ref: `Pod ${namespace}/${name}` },
      identity: podIdentity(pod, namespace),
    });
  }
  return out.sort((a, b) => (a.namespace + '/' + a.name < b.namespace + '/' + b.name ? -1 : 1));
}

/** A pod runs as its ServiceAccount (Kubernetes' default: "default"). */
export function podIdentity(pod: PodLike, namespace: string): { namespace: string; serviceAccount: string } {
  return { namespace, serviceAccount: pod.spec?.serviceAccountName || 'default' };
}

/** True when every selector label is on the object (an empty selector selects nothing, like a Service's). */
export function selects(selector: Readonly<Record<string, string>>, labels: Readonly<Record<string, string>> | undefined): boolean {
  const keys = Object.keys(selector);
  if (keys.length === 0) return false;
  return keys.every((k) => labels?.[k] === selector[k]);
}
