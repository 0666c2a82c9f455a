// DestinationRules in xDS: subset clusters, and trafficPolicy as cluster settings (load
// balancer, connection pool, outlier detection) and route hash policies (consistent hash).
//
// A rule's host is a service (or alias) or an RPC interface. A subset of a service is the
// cluster `outbound|PORT|SUBSET|SERVICE`; a subset of an interface is `outbound|PORT|SUBSET|INTERFACE`
// and holds only providers of that interface. Subset names are DNS labels and interface names
// contain dots, so the two uses of the subset slot never collide.
import type { ClusterLoadAssignment } from '../../generated/envoy.ts';
import type { ModelSnapshot } from '../../model/snapshot.ts';
import type { ClientTls, DestinationRule, PolicySettings, Subset } from '../../model/rules/types.ts';
import { endpointLabels, type Endpoint, type Locality, type Service, type ServicePort } from '../../model/types.ts';
import { canonicalHost, hostIndexOf, type HostIndex } from '../../model/rules/hosts.ts';
import { toAny } from '../proto.ts';
import { struct } from './common.ts';

export interface PolicyProblem {
  readonly name: string;
  readonly reason: string;
}

/** The DestinationRule in effect per canonical host (the first one, as checkRules keeps). */
export function destinationRulesByHost(model: ModelSnapshot, index?: HostIndex): Map<string, DestinationRule> {
  const out = new Map<string, DestinationRule>();
  // Without rules the host index is not needed (it costs a pass over every service).
  if (!model.destinationRules.length) return out;
  index ??= hostIndexOf(model);
  for (const dr of model.destinationRules) {
    const host = canonicalHost(dr.spec.host, dr.namespace, index);
    if (!out.has(host)) out.set(host, dr);
  }
  return out;
}

/** The settings for traffic to `port` (and `subset`): subset over rule, port level over both. */
export function effectivePolicy(dr: DestinationRule | undefined, port: number, subset?: Subset): PolicySettings {
  const layers: (PolicySettings | undefined)[] = [];
  const tp = dr?.spec.trafficPolicy;
  layers.push(tp, tp?.portLevelSettings.find((p) => p.port === port));
  const sp = subset?.trafficPolicy;
  layers.push(sp, sp?.portLevelSettings.find((p) => p.port === port));
  const out: { -readonly [K in keyof PolicySettings]: PolicySettings[K] } = {};
  for (const l of layers) {
    if (!l) continue;
    if (l.loadBalancer) out.loadBalancer = l.loadBalancer;
    if (l.connectionPool) out.connectionPool = l.connectionPool;
    if (l.outlierDetection) out.outlierDetection = l.outlierDetection;
    if (l.tls) out.tls = l.tls;
  }
  return out;
}

export function labelsMatch(labels: Readonly<Record<string, string>>, want: Readonly<Record<string, string>>): boolean {
  for (const [k, v] of Object.entries(want)) if (labels[k] !== v) return false;
  return true;
}

/** A subset cluster to build: name, port, its endpoints, and its policy. */
export interface SubsetPlan {
  readonly name: string;
  readonly port: ServicePort;
  readonly endpoints: readonly Endpoint[];
  readonly policy: PolicySettings;
  /** The rule the policy comes from. */
  readonly rule: DestinationRule;
}

export function subsetCluster(host: string, port: number, subset: string): string {
  return `outbound|${port}|${subset}|${host}`;
}

/** Subset clusters of a service and of its interfaces, from the rules for their names. */
export function planSubsetClusters(svc: Service, endpoints: readonly Endpoint[], rules: ReadonlyMap<string, DestinationRule>): SubsetPlan[] {
  const out: SubsetPlan[] = [];
  const dr = rules.get(svc.hostname) ?? svc.aliases.map((a) => rules.get(a)).find((r) => r);
  for (const subset of dr?.spec.subsets ?? []) {
    const eps = endpoints.filter((e) => labelsMatch(e.labels, subset.labels));
    for (const port of svc.ports) out.push({ name: subsetCluster(svc.hostname, port.number, subset.name), port, endpoints: eps, policy: effectivePolicy(dr, port.number, subset), rule: dr! });
  }
  for (const iface of svc.interfaces) {
    const idr = rules.get(iface.hostname);
    if (!idr) continue;
    const serving = endpoints.filter((e) => !e.interfaces || e.interfaces.includes(iface.hostname));
    for (const subset of idr.spec.subsets) {
      const eps = serving.filter((e) => labelsMatch(endpointLabels(e, iface.hostname), subset.labels));
      for (const port of svc.ports) {
        if (iface.port !== undefined && iface.port !== port.number) continue;
        out.push({ name: subsetCluster(iface.hostname, port.number, subset.name), port, endpoints: eps, policy: effectivePolicy(idr, port.number, subset), rule: idr });
      }
    }
  }
  return out;
}

const ms = (n: number): Record<string, number> => ({ seconds: Math.floor(n / 1000), nanos: (n % 1000) * 1_000_000 });

/**
 * Applies policy settings to a cluster message (mutates it). Settings Envoy would refuse are
 * refused here: they are reported and left out, never sent.
 */
export function applyPolicy(cluster: Record<string, unknown>, policy: PolicySettings, http2: boolean, problems: PolicyProblem[]): void {
  const name = cluster.name as string;
  const lb = policy.loadBalancer;
  if (lb?.consistentHash) {
    cluster.lb_policy = 'RING_HASH';
  } else if (lb?.simple && lb.simple !== 'PASSTHROUGH') {
    cluster.lb_policy = lb.simple;
  } else if (lb?.simple === 'PASSTHROUGH') {
    problems.push({ name, reason: 'loadBalancer.simple PASSTHROUGH is not supported (needs original-destination clusters); ROUND_ROBIN kept' });
  }
  if (lb?.localityLbSetting?.distribute.length) cluster.common_lb_config = { ...(cluster.common_lb_config as object), locality_weighted_lb_config: {} };
  const pool = policy.connectionPool;
  if (pool) {
    const t: Record<string, unknown> = {};
    if (pool.tcp?.maxConnections !== undefined) t.max_connections = { value: pool.tcp.maxConnections };
    if (pool.http?.http1MaxPendingRequests !== undefined) t.max_pending_requests = { value: pool.http.http1MaxPendingRequests };
    if (pool.http?.http2MaxRequests !== undefined) t.max_requests = { value: pool.http.http2MaxRequests };
    if (pool.http?.maxRetries !== undefined) t.max_retries = { value: pool.http.maxRetries };
    if (Object.keys(t).length) cluster.circuit_breakers = { thresholds: [{ priority: 'DEFAULT', ...t }] };
    if (pool.tcp?.connectTimeoutMs !== undefined) cluster.connect_timeout = ms(pool.tcp.connectTimeoutMs);
    const ka = pool.tcp?.tcpKeepalive;
    if (ka) {
      const k: Record<string, unknown> = {};
      if (ka.probes !== undefined) k.keepalive_probes = { value: ka.probes };
      if (ka.timeMs !== undefined) k.keepalive_time = { value: Math.max(1, Math.round(ka.timeMs / 1000)) };
      if (ka.intervalMs !== undefined) k.keepalive_interval = { value: Math.max(1, Math.round(ka.intervalMs / 1000)) };
      cluster.upstream_connection_options = { tcp_keepalive: k };
    }
    const common: Record<string, unknown> = {};
    if (pool.http?.idleTimeoutMs !== undefined) common.idle_timeout = ms(pool.http.idleTimeoutMs);
    if (pool.http?.maxRequestsPerConnection !== undefined) common.max_requests_per_connection = { value: pool.http.maxRequestsPerConnection };
    if (pool.tcp?.maxConnectionDurationMs !== undefined) common.max_connection_duration = ms(pool.tcp.maxConnectionDurationMs);
    const useH2 = http2 || pool.http?.h2UpgradePolicy === 'UPGRADE';
    const h2: Record<string, unknown> = {};
    if (pool.http?.maxConcurrentStreams !== undefined) h2.max_concurrent_streams = { value: pool.http.maxConcurrentStreams };
    if (Object.keys(common).length || useH2 !== http2 || Object.keys(h2).length) {
      cluster.typed_extension_protocol_options = {
        'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': toAny('envoy.extensions.upstreams.http.v3.HttpProtocolOptions', {
          common_http_protocol_options: common,
          explicit_http_config: useH2 ? { http2_protocol_options: h2 } : { http_protocol_options: {} },
        }),
      };
    }
  }
  const od = policy.outlierDetection;
  if (od) {
    const o: Record<string, unknown> = {};
    // Istio: a consecutive-error setting is enforced at 100%, the others Envoy defaults stay off.
    o.enforcing_consecutive_5xx = { value: od.consecutive5xxErrors ? 100 : 0 };
    if (od.consecutive5xxErrors !== undefined) o.consecutive_5xx = { value: od.consecutive5xxErrors };
    o.enforcing_consecutive_gateway_failure = { value: od.consecutiveGatewayErrors ? 100 : 0 };
    if (od.consecutiveGatewayErrors !== undefined) o.consecutive_gateway_failure = { value: od.consecutiveGatewayErrors };
    o.enforcing_success_rate = { value: 0 };
    if (od.intervalMs !== undefined) o.interval = ms(od.intervalMs);
    if (od.baseEjectionTimeMs !== undefined) o.base_ejection_time = ms(od.baseEjectionTimeMs);
    if (od.maxEjectionPercent !== undefined) o.max_ejection_percent = { value: od.maxEjectionPercent };
    if (od.splitExternalLocalOriginErrors !== undefined) o.split_external_local_origin_errors = od.splitExternalLocalOriginErrors;
    if (od.consecutiveLocalOriginFailures !== undefined) {
      o.consecutive_local_origin_failure = { value: od.consecutiveLocalOriginFailures };
      o.enforcing_consecutive_local_origin_failure = { value: 100 };
    }
    cluster.outlier_detection = o;
    if (od.minHealthPercent !== undefined) cluster.common_lb_config = { ...(cluster.common_lb_config as object), healthy_panic_threshold: { value: od.minHealthPercent } };
  }
  if (policy.tls) applyClientTls(cluster, policy.tls);
}

/**
 * A DestinationRule's tls: SIMPLE and MUTUAL originate TLS with the files it names (on the
 * proxy's host); DISABLE and ISTIO_MUTUAL are marked on the cluster (metadata isthmus.tls)
 * for the sidecar views: DISABLE turns automatic mTLS off, ISTIO_MUTUAL makes mesh mTLS
 * mandatory (a sidecar without certificates gets the cluster without endpoints).
 */
function applyClientTls(cluster: Record<string, unknown>, tls: ClientTls): void {
  if (tls.mode === 'DISABLE' || tls.mode === 'ISTIO_MUTUAL') {
    const mark: Record<string, string> = { tls: tls.mode };
    if (tls.sni) mark.sni = tls.sni;
    if (tls.subjectAltNames.length) mark.sans = tls.subjectAltNames.join(',');
    cluster.metadata = { filter_metadata: { isthmus: struct(mark) } };
    return;
  }
  const sans = tls.subjectAltNames.flatMap((s) => [{ san_type: 'DNS', matcher: { exact: s } }, { san_type: 'URI', matcher: { exact: s } }]);
  cluster.transport_socket = {
    name: 'envoy.transport_sockets.tls',
    typed_config: toAny('envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', {
      ...(tls.sni ? { sni: tls.sni } : {}),
      common_tls_context: {
        ...(tls.mode === 'MUTUAL' ? { tls_certificates: [{ certificate_chain: { filename: tls.clientCertificate! }, private_key: { filename: tls.privateKey! } }] } : {}),
        ...(tls.insecureSkipVerify
          ? {}
          : { validation_context: { trusted_ca: { filename: tls.caCertificates! }, ...(sans.length ? { match_typed_subject_alt_names: sans as never } : {}), ...(tls.caCrl ? { crl: { filename: tls.caCrl } } : {}) } }),
      },
    }),
  };
}

/** Route hash policy for a consistent-hash load balancer; undefined otherwise. */
export function hashPolicy(policy: PolicySettings): Record<string, unknown>[] | undefined {
  const ch = policy.loadBalancer?.consistentHash;
  if (!ch) return undefined;
  switch (ch.type) {
    case 'header':
      return [{ header: { header_name: ch.httpHeaderName } }];
    case 'cookie': {
      const c = ch.httpCookie;
      return [{ cookie: { name: c.name, ...(c.path ? { path: c.path } : {}), ...(c.ttlMs !== undefined ? { ttl: ms(c.ttlMs) } : {}) } }];
    }
    case 'sourceIp':
      return [{ connection_properties: { source_ip: true } }];
    case 'queryParameter':
      return [{ query_parameter: { name: ch.httpQueryParameterName } }];
  }
}

/** A subset of a rule by name. */
export function subsetsOf(dr: DestinationRule | undefined, name: string): Subset | undefined {
  return dr?.spec.subsets.find((s) => s.name === name);
}

/** Whether a policy asks for locality-aware load balancing (per-proxy endpoint priorities). */
export function usesLocalityLb(policy: PolicySettings | undefined): boolean {
  const l = policy?.loadBalancer?.localityLbSetting;
  return !!l && l.enabled !== false;
}

function localityParts(l: Locality): string[] {
  return [l.region ?? '', l.zone ?? '', l.subzone ?? ''];
}

/** Istio's locality pattern "region/zone/subzone", `*` matching the rest. */
function localityMatches(pattern: string, l: Locality): boolean {
  const want = pattern.split('/');
  const have = localityParts(l);
  for (let i = 0; i < want.length; i++) {
    if (want[i] === '*') return true;
    if (want[i] !== have[i]) return false;
  }
  return true;
}

/**
 * A ClusterLoadAssignment (from buildLoadAssignment) re-prioritised for a proxy in
 * `proxy`: the proxy's own subzone first, then its zone, its region, the failover region
 * for its region, then the rest — Istio's failover order. With `distribute`, the matching
 * entry for the proxy sets locality weights instead (all at priority 0).
 */
export function localityAssignment(cla: ClusterLoadAssignment, proxy: Locality, policy: PolicySettings): ClusterLoadAssignment {
  const setting = policy.loadBalancer!.localityLbSetting!;
  type Group = { locality: { region: string; zone: string; sub_zone: string }; load_balancing_weight: { value: number }; priority?: number };
  const groups = (cla.endpoints as Group[]).map((g) => ({ ...g }));
  const loc = (g: Group): Locality => ({ region: g.locality.region, zone: g.locality.zone, subzone: g.locality.sub_zone });
  const dist = setting.distribute.find((d) => localityMatches(d.from, proxy));
  if (dist) {
    for (const g of groups) {
      let w = 0;
      for (const [to, pct] of Object.entries(dist.to)) {
        const n = groups.filter((x) => localityMatches(to, loc(x))).length;
        if (localityMatches(to, loc(g)) && n) w += (pct * 1000) / n;
      }
      g.load_balancing_weight = { value: Math.round(w) };
    }
    // Envoy refuses weight 0 inside a locality list only when every weight is 0; drop unused localities.
    return { ...cla, endpoints: groups.filter((g) => g.load_balancing_weight.value > 0) };
  }
  const me = localityParts(proxy);
  const failoverTo = setting.failover.find((f) => f.from === me[0])?.to;
  const rank = (g: Group): number => {
    const p = localityParts(loc(g));
    if (!me[0]) return 0;
    if (p[0] === me[0] && p[1] === me[1] && p[2] === me[2]) return 0;
    if (p[0] === me[0] && p[1] === me[1]) return 1;
    if (p[0] === me[0]) return 2;
    if (failoverTo !== undefined && p[0] === failoverTo) return 3;
    return 4;
  };
  // Envoy wants priorities without gaps, from 0.
  const used = [...new Set(groups.map(rank))].sort((a, b) => a - b);
  for (const g of groups) g.priority = used.indexOf(rank(g));
  return { ...cla, endpoints: groups };
}
