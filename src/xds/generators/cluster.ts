// CDS: one outbound cluster per service port; one inbound cluster per app port of a proxy.
import type { Cluster } from '../../generated/envoy.ts';
import type { DestinationRule, PolicySettings } from '../../model/rules/types.ts';
import type { ModelSnapshot } from '../../model/snapshot.ts';
import type { Endpoint, Locality, Service, ServicePort } from '../../model/types.ts';
import { isHttpProtocol } from '../../model/types.ts';
import type { AppPort } from '../proxy.ts';
import { ADS_SOURCE, http2Options } from './common.ts';
import { inboundCluster, interfaceCluster, outboundCluster, parseOutboundCluster } from './names.ts';
import { buildLoadAssignment } from './endpoint.ts';
import { applyPolicy, effectivePolicy, planSubsetClusters, type PolicyProblem, usesLocalityLb } from './destination-rule.ts';
import { PROXYLESS, proxylessClusterForm, proxylessPolicy, type Refused } from './proxyless.ts';

const CONNECT_TIMEOUT = { seconds: 10 };

function usesHttp2(p: { protocol: ServicePort['protocol'] }): boolean {
  return p.protocol === 'HTTP2' || p.protocol === 'GRPC';
}

/** A cluster to build: its name, the service port, and the endpoints it holds. */
export interface ClusterPlan {
  readonly name: string;
  readonly port: ServicePort;
  readonly endpoints: readonly Endpoint[];
  /** DestinationRule traffic policy for this cluster, when a rule applies. */
  readonly policy?: PolicySettings;
  /** The rule the policy comes from. */
  readonly rule?: DestinationRule;
}

/**
 * Every cluster of a service: one per port with all endpoints, and one per RPC interface
 * and port with only the endpoints that serve that interface.
 */
export function planServiceClusters(svc: Service, endpoints: readonly Endpoint[], rules: ReadonlyMap<string, DestinationRule> = new Map()): ClusterPlan[] {
  const dr = rules.get(svc.hostname) ?? svc.aliases.map((a) => rules.get(a)).find((r) => r);
  const policy = (p: number, r: DestinationRule | undefined): Pick<ClusterPlan, 'policy' | 'rule'> => (r ? { policy: effectivePolicy(r, p), rule: r } : {});
  const plans: ClusterPlan[] = svc.ports.map((port) => ({ name: outboundCluster(svc.hostname, port.number), port, endpoints, ...policy(port.number, dr) }));
  for (const iface of svc.interfaces) {
    const serving = endpoints.filter((e) => !e.interfaces || e.interfaces.includes(iface.hostname));
    const idr = rules.get(iface.hostname) ?? dr;
    for (const port of svc.ports) {
      if (iface.port !== undefined && iface.port !== port.number) continue;
      plans.push({ name: interfaceCluster(svc.hostname, port.number, iface.hostname), port, endpoints: serving, ...policy(port.number, idr) });
    }
  }
  plans.push(...planSubsetClusters(svc, endpoints, rules));
  return plans;
}

/** Clusters of one service. DNS services resolve their endpoints (or hosts) in Envoy. */
export function buildServiceClusters(svc: Service, plans: readonly ClusterPlan[], problems: PolicyProblem[] = []): Cluster[] {
  return plans.map(({ name, port, endpoints, policy }) => {
    const cluster: Record<string, unknown> = { name, connect_timeout: CONNECT_TIMEOUT, lb_policy: 'ROUND_ROBIN' };
    if (svc.resolution === 'DNS') {
      cluster.type = 'STRICT_DNS';
      cluster.dns_lookup_family = 'V4_ONLY';
      const eps: readonly Endpoint[] = endpoints.length
        ? endpoints
        : [{ service: svc.hostname, address: svc.hostname, ports: {}, labels: {}, locality: {}, weight: 1, health: 'HEALTHY', origin: svc.origin }];
      cluster.load_assignment = buildLoadAssignment(name, port, eps);
    } else {
      cluster.type = 'EDS';
      cluster.eds_cluster_config = { eds_config: ADS_SOURCE, service_name: name };
    }
    if (usesHttp2(port)) cluster.typed_extension_protocol_options = http2Options();
    if (policy) applyPolicy(cluster, policy, usesHttp2(port), problems);
    return cluster;
  });
}

/** Inbound clusters forward to the local app. */
export function buildInboundCluster(appAddress: string, app: AppPort): Cluster {
  const name = inboundCluster(app.port);
  const cluster: Record<string, unknown> = {
    name,
    type: 'STATIC',
    connect_timeout: CONNECT_TIMEOUT,
    load_assignment: {
      cluster_name: name,
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: appAddress, port_value: app.port } } } }] }],
    },
  };
  if (isHttpProtocol(app.protocol) && usesHttp2(app)) cluster.typed_extension_protocol_options = http2Options();
  return cluster;
}

/**
 * The cluster `name` as a proxyless gRPC client gets it (proxyless.ts): the client's form of
 * the service's cluster, built from the part of its policy gRPC implements. `locality`: the
 * client's, when it balances by locality. Undefined when no such cluster can be sent.
 */
export function buildProxylessCluster(
  model: ModelSnapshot,
  rules: ReadonlyMap<string, DestinationRule>,
  name: string,
  locality: Locality | undefined,
  problems: PolicyProblem[],
): Cluster | undefined {
  const parsed = parseOutboundCluster(name);
  if (!parsed) return undefined;
  const svc = model.services.get(parsed.host) ?? model.services.get(model.interfaces.get(parsed.host)?.service ?? '');
  const plan = svc && planServiceClusters(svc, model.endpoints.get(svc.hostname) ?? [], rules).find((p) => p.name === name);
  if (!svc || !plan) return undefined;
  const who = plan.rule ? `DestinationRule ${plan.rule.namespace}/${plan.rule.name}` : name;
  const refused: Refused[] = [];
  let policy = plan.policy;
  if (policy) {
    const p = proxylessPolicy(policy, 'trafficPolicy');
    policy = p.policy;
    refused.push(...p.refused);
  }
  // A TLS mode gRPC clients cannot apply: no endpoints rather than plaintext (proxyless.ts).
  const tlsRefused = plan.policy?.tls !== undefined && plan.policy.tls.mode !== 'DISABLE';
  const [cluster] = buildServiceClusters(svc, [{ ...plan, ...(policy ? { policy } : {}) }], problems);
  const form = proxylessClusterForm(cluster!, policy && usesLocalityLb(policy) ? locality ?? {} : undefined, refused);
  for (const r of refused) problems.push({ name: who, reason: `${name}: not applied for ${PROXYLESS}: ${r.field}: ${r.reason}` });
  return tlsRefused ? { name, type: 'STATIC', connect_timeout: CONNECT_TIMEOUT, lb_policy: 'ROUND_ROBIN', load_assignment: { cluster_name: name, endpoints: [] } } : form;
}
