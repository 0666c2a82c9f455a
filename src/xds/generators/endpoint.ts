// EDS: ClusterLoadAssignments, endpoints grouped by locality and labelled with their source.
import { type Endpoint, endpointPort, lbWeight, type Locality, type ServicePort } from '../../model/types.ts';
import type { ClusterLoadAssignment, LbEndpoint } from '../../generated/envoy.ts';
import { struct } from './common.ts';
import { TLS_MODE_LABEL, TRANSPORT_SOCKET_MATCH } from './mtls.ts';
import { effectiveMtls, type PeerAuthentication } from '../../model/rules/peer-authentication.ts';

const HEALTH = { HEALTHY: 'HEALTHY', UNHEALTHY: 'UNHEALTHY', DRAINING: 'DRAINING' } as const;

function localityKey(l: Locality): string {
  return `${l.region ?? ''}/${l.zone ?? ''}/${l.subzone ?? ''}`;
}

/**
 * `peerAuth` (the mesh's PeerAuthentications, with the service's namespace for endpoints
 * that name none): an endpoint whose port is DISABLE gets no mTLS, even with a sidecar.
 */
export function buildLoadAssignment(clusterName: string, port: ServicePort, endpoints: readonly Endpoint[], peerAuth?: { readonly policies: readonly PeerAuthentication[]; readonly namespace: string }): ClusterLoadAssignment {
  const groups = new Map<string, { locality: Locality; weight: number; lb_endpoints: LbEndpoint[] }>();
  const disabled = (ep: Endpoint): boolean =>
    !!peerAuth?.policies.length && effectiveMtls(peerAuth.policies, ep.identity?.namespace ?? peerAuth.namespace, ep.labels, endpointPort(ep, port)) === 'DISABLE';
  for (const ep of endpoints) {
    const key = localityKey(ep.locality);
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { locality: ep.locality, weight: 0, lb_endpoints: [] }));
    const weight = lbWeight(ep.weight);
    g.weight += weight;
    g.lb_endpoints.push({
      endpoint: { address: { socket_address: { address: ep.address, port_value: endpointPort(ep, port) } } },
      health_status: HEALTH[ep.health],
      load_balancing_weight: { value: weight },
      metadata: {
        filter_metadata: {
          'envoy.lb': struct(ep.labels),
          isthmus: struct({ registry: ep.origin.registry }),
          // Whether a sidecar with certificates talks mTLS to it (mtls.ts).
          ...(ep.labels[TLS_MODE_LABEL] && !disabled(ep) ? { [TRANSPORT_SOCKET_MATCH]: struct({ tlsMode: ep.labels[TLS_MODE_LABEL] }) } : {}),
        },
      },
    });
  }
  return {
    cluster_name: clusterName,
    endpoints: [...groups.keys()].sort().map((k) => {
      const g = groups.get(k)!;
      const loc = g.locality;
      return {
        locality: { region: loc.region ?? '', zone: loc.zone ?? '', sub_zone: loc.subzone ?? '' },
        lb_endpoints: g.lb_endpoints,
        // gRPC ignores localities without a weight; Envoy uses it only for locality-weighted LB.
        load_balancing_weight: { value: g.weight },
      };
    }),
  };
}
