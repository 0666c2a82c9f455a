// The Kubernetes resources the registry reads, and their API paths.

export interface ResourceRef {
  /** Kind, e.g. "EndpointSlice". */
  readonly kind: string;
  /** API group; "" for the core group. */
  readonly group: string;
  readonly version: string;
  /** Resource name in paths, e.g. "endpointslices". */
  readonly plural: string;
  readonly namespaced: boolean;
  /**
   * The API may be absent (a CRD that is not installed, nodes a namespaced role cannot
   * read): 404 then means "no objects", and the registry looks again now and then.
   */
  readonly optional?: boolean;
}

export const SERVICES: ResourceRef = { kind: 'Service', group: '', version: 'v1', plural: 'services', namespaced: true };
export const ENDPOINT_SLICES: ResourceRef = { kind: 'EndpointSlice', group: 'discovery.k8s.io', version: 'v1', plural: 'endpointslices', namespaced: true };
export const PODS: ResourceRef = { kind: 'Pod', group: '', version: 'v1', plural: 'pods', namespaced: true };
export const NODES: ResourceRef = { kind: 'Node', group: '', version: 'v1', plural: 'nodes', namespaced: false, optional: true };

export const RPC_GROUP = 'rpc.isthmus.io';
export const RPC_VERSION = 'v1alpha1';
export const RPC_SERVICES: ResourceRef = { kind: 'RPCService', group: RPC_GROUP, version: RPC_VERSION, plural: 'rpcservices', namespaced: true, optional: true };

// Istio kinds read from the cluster; v1 is the version the file parser checks documents against.
export const SERVICE_ENTRIES: ResourceRef = { kind: 'ServiceEntry', group: 'networking.istio.io', version: 'v1', plural: 'serviceentries', namespaced: true, optional: true };
export const WORKLOAD_ENTRIES: ResourceRef = { kind: 'WorkloadEntry', group: 'networking.istio.io', version: 'v1', plural: 'workloadentries', namespaced: true, optional: true };
export const VIRTUAL_SERVICES: ResourceRef = { kind: 'VirtualService', group: 'networking.istio.io', version: 'v1', plural: 'virtualservices', namespaced: true, optional: true };
export const DESTINATION_RULES: ResourceRef = { kind: 'DestinationRule', group: 'networking.istio.io', version: 'v1', plural: 'destinationrules', namespaced: true, optional: true };

export const PEER_AUTHENTICATIONS: ResourceRef = { kind: 'PeerAuthentication', group: 'security.istio.io', version: 'v1', plural: 'peerauthentications', namespaced: true, optional: true };

/** The Istio kinds, in the order their objects are read. */
export const ISTIO_KINDS: readonly ResourceRef[] = [SERVICE_ENTRIES, WORKLOAD_ENTRIES, VIRTUAL_SERVICES, DESTINATION_RULES, PEER_AUTHENTICATIONS];

/** Path of a resource collection, cluster-wide or in one namespace. */
export function collectionPath(r: ResourceRef, namespace?: string): string {
  const base = r.group ? `/apis/${r.group}/${r.version}` : `/api/${r.version}`;
  return r.namespaced && namespace ? `${base}/namespaces/${encodeURIComponent(namespace)}/${r.plural}` : `${base}/${r.plural}`;
}

/** Path of one object (and optionally a subresource such as "status"). */
export function objectPath(r: ResourceRef, namespace: string | undefined, name: string, subresource?: string): string {
  return `${collectionPath(r, namespace)}/${encodeURIComponent(name)}${subresource ? `/${subresource}` : ''}`;
}

export function apiVersionOf(r: ResourceRef): string {
  return r.group ? `${r.group}/${r.version}` : r.version;
}
