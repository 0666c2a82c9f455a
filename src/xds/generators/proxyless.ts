// What proxyless gRPC clients (grpc-go, grpc-java, @grpc/grpc-js-xds) are sent, and what of
// the Istio API they cannot apply. A gRPC client NACKs a cluster whose type or lb_policy it
// does not know (all clusters of the response with it) and silently ignores most other
// fields it does not implement; so every rule field is either carried (translated where gRPC
// has the equivalent) or refused by name here, never sent to be ignored. The table is
// docs/CLIENTS.md; it is the intersection of the three clients (gRFCs A27, A28, A31, A33,
// A37, A42, A44).
import type { Cluster, Route, RouteConfiguration } from '../../generated/envoy.ts';
import type { ConnectionPool, DestinationRule, HttpRoute, PolicySettings, VirtualService } from '../../model/rules/types.ts';
import type { Locality } from '../../model/types.ts';

export const PROXYLESS = 'proxyless gRPC clients';

/** A rule field a proxyless client cannot apply: `field` is its path in the rule. */
export interface Refused {
  readonly field: string;
  readonly reason: string;
}

/** The lb policies all three gRPC clients implement (A27 round robin, A42 ring hash). */
const LB_POLICIES = new Set(['ROUND_ROBIN']);

/** Retry conditions gRPC implements (A44); the rest of Envoy's list means nothing to it. */
export const GRPC_RETRY_ON = new Set(['cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable']);

/**
 * The settings a proxyless client can apply (`field`: where they were written, for the
 * messages), and what it cannot. Refused settings are left out: the client keeps its
 * defaults for them (round robin, no limits), which the refusal says.
 */
export function proxylessPolicy(policy: PolicySettings, field: string): { policy: PolicySettings; refused: Refused[] } {
  const refused: Refused[] = [];
  const out: { -readonly [K in keyof PolicySettings]: PolicySettings[K] } = {};
  const lb = policy.loadBalancer;
  if (lb) {
    const kept: { -readonly [K in keyof typeof lb]: (typeof lb)[K] } = {};
    if (lb.simple && !LB_POLICIES.has(lb.simple)) {
      refused.push({ field: `${field}.loadBalancer.simple`, reason: `${lb.simple} is not implemented by gRPC; they balance ROUND_ROBIN` });
    } else if (lb.simple) kept.simple = lb.simple;
    const ch = lb.consistentHash;
    if (ch?.type === 'cookie' || ch?.type === 'queryParameter') {
      const what = ch.type === 'cookie' ? 'httpCookie' : 'httpQueryParameterName';
      refused.push({ field: `${field}.loadBalancer.consistentHash.${what}`, reason: 'gRPC hashes only on a header or the channel (A42); they balance ROUND_ROBIN' });
    } else if (ch) kept.consistentHash = ch;
    if (lb.localityLbSetting) kept.localityLbSetting = lb.localityLbSetting;
    if (Object.keys(kept).length) out.loadBalancer = kept;
  }
  if (policy.connectionPool) {
    const { pool, names } = proxylessPool(policy.connectionPool);
    if (pool) out.connectionPool = pool;
    for (const n of names) refused.push({ field: `${field}.connectionPool.${n}`, reason: 'not implemented by gRPC (its only circuit breaker is http.http2MaxRequests)' });
  }
  if (policy.outlierDetection) {
    refused.push({ field: `${field}.outlierDetection`, reason: 'gRPC ejects by success rate or failure percentage (A50), not by consecutive errors; they eject no host' });
  }
  // TLS for gRPC clients needs certificate providers in their own bootstrap, which Isthmus's
  // does not give: a TLS mode is refused, and the cluster then has no endpoints for them
  // (cluster.ts) rather than serve plaintext in its place.
  if (policy.tls && policy.tls.mode !== 'DISABLE') refused.push({ field: `${field}.tls.mode`, reason: `${policy.tls.mode} is not applied for gRPC clients (no certificate providers in their bootstrap): the cluster has no endpoints for them rather than plaintext` });
  return { policy: out, refused };
}

function proxylessPool(pool: ConnectionPool): { pool?: ConnectionPool; names: string[] } {
  const names: string[] = [];
  for (const [k, v] of Object.entries(pool.tcp ?? {})) if (v !== undefined) names.push(`tcp.${k}`);
  for (const [k, v] of Object.entries(pool.http ?? {})) if (v !== undefined && k !== 'http2MaxRequests') names.push(`http.${k}`);
  const max = pool.http?.http2MaxRequests;
  return { ...(max !== undefined ? { pool: { http: { http2MaxRequests: max } } } : {}), names };
}

/** Every setting of a DestinationRule proxyless clients cannot apply, with its exact path. */
export function refusedInDestinationRule(dr: DestinationRule): Refused[] {
  const out: Refused[] = [];
  const tp = dr.spec.trafficPolicy;
  const check = (p: PolicySettings | undefined, field: string): void => {
    if (p) out.push(...proxylessPolicy(p, field).refused);
  };
  check(tp, 'spec.trafficPolicy');
  tp?.portLevelSettings.forEach((p, i) => check(p, `spec.trafficPolicy.portLevelSettings[${i}]`));
  dr.spec.subsets.forEach((s, i) => {
    check(s.trafficPolicy, `spec.subsets[${i}].trafficPolicy`);
    s.trafficPolicy?.portLevelSettings.forEach((p, j) => check(p, `spec.subsets[${i}].trafficPolicy.portLevelSettings[${j}]`));
  });
  return out;
}

/**
 * One http route as a proxyless client can follow it: undefined when it cannot be followed at
 * all (a redirect, or only query-parameter matches, which would match every call without
 * them); otherwise the route without the fields gRPC does not implement.
 */
export function proxylessHttpRoute(r: HttpRoute, field: string): { route?: HttpRoute; refused: Refused[] } {
  const refused: Refused[] = [];
  if (r.redirect) {
    refused.push({ field: `${field}.redirect`, reason: 'gRPC cannot follow a redirect; the route is left out' });
    return { refused };
  }
  let match = r.match;
  if (match.some((m) => Object.keys(m.queryParams).length)) {
    match = match.filter((m) => !Object.keys(m.queryParams).length);
    refused.push({
      field: `${field}.match[].queryParams`,
      reason: `a gRPC call has no query string; ${match.length ? 'those matches are' : 'the route is'} left out`,
    });
    if (!match.length) return { refused };
  }
  const out: { -readonly [K in keyof HttpRoute]: HttpRoute[K] } = { ...r, match };
  const drop = (key: 'rewrite' | 'mirror' | 'headers', reason: string): void => {
    if (out[key] === undefined) return;
    refused.push({ field: `${field}.${key}`, reason });
    delete out[key];
  };
  drop('rewrite', 'rewrites are not implemented by gRPC');
  drop('mirror', 'mirroring is not implemented by gRPC');
  drop('headers', 'header changes are not implemented by gRPC');
  if (r.route.some((d) => d.headers)) {
    refused.push({ field: `${field}.route[].headers`, reason: 'header changes are not implemented by gRPC' });
    out.route = r.route.map(({ headers: _h, ...d }) => d);
  }
  if (r.retries) {
    const rt = r.retries;
    const kept: { -readonly [K in keyof typeof rt]: (typeof rt)[K] } = { ...rt };
    if (rt.perTryTimeoutMs !== undefined) {
      refused.push({ field: `${field}.retries.perTryTimeout`, reason: "not implemented by gRPC (the call's deadline covers every try)" });
      delete kept.perTryTimeoutMs;
    }
    if (rt.retryOn) {
      const other = rt.retryOn.filter((x) => !GRPC_RETRY_ON.has(x));
      if (other.length) refused.push({ field: `${field}.retries.retryOn`, reason: `${other.join(', ')}: gRPC retries only on ${[...GRPC_RETRY_ON].join(', ')} (A44)` });
      kept.retryOn = rt.retryOn.filter((x) => GRPC_RETRY_ON.has(x));
      if (!kept.retryOn.length) kept.attempts = 0;
    }
    out.retries = kept;
  }
  return { route: out, refused };
}

/** A VirtualService as proxyless clients get it: its routes translated, and what was refused. */
export function proxylessVirtualService(vs: VirtualService): { vs: VirtualService; skip: ReadonlySet<number>; refused: Refused[] } {
  const refused: Refused[] = [];
  const skip = new Set<number>();
  const http = vs.spec.http.map((r, i) => {
    const t = proxylessHttpRoute(r, `spec.http[${i}]`);
    refused.push(...t.refused);
    if (!t.route) skip.add(i);
    return t.route ?? r;
  });
  return { vs: refused.length ? { ...vs, spec: { ...vs.spec, http } } : vs, skip, refused };
}

/** Every field of a VirtualService proxyless clients cannot apply, with its exact path. */
export function refusedInVirtualService(vs: VirtualService): Refused[] {
  return proxylessVirtualService(vs).refused;
}

/**
 * An Envoy route as gRPC reads it: the deadline of a call is `max_stream_duration` (A31),
 * not `timeout`; a source-IP hash is the client's channel (A42: all its calls go to one
 * host, which is what source-IP affinity gives one client); retries on gRPC's conditions only.
 */
export function proxylessRoute(r: Route): Route {
  if (!r.route) return r;
  const { timeout, hash_policy, retry_policy, ...action } = r.route;
  const out: NonNullable<Route['route']> = { ...action };
  const ms = timeout ? Number(timeout.seconds ?? 0) * 1000 + Math.round(Number(timeout.nanos ?? 0) / 1e6) : 0;
  if (ms > 0) out.max_stream_duration = { max_stream_duration: timeout };
  const hash = hash_policy?.flatMap((h) => (h.header ? [h] : h.connection_properties?.source_ip ? [{ filter_state: { key: 'io.grpc.channel_id' } }] : []));
  if (hash?.length) out.hash_policy = hash;
  if (retry_policy) {
    const on = String(retry_policy.retry_on ?? '')
      .split(',')
      .filter((x) => GRPC_RETRY_ON.has(x));
    if (on.length && Number(retry_policy.num_retries?.value ?? 0) > 0) out.retry_policy = { retry_on: on.join(','), num_retries: retry_policy.num_retries };
  }
  return { ...r, route: out };
}

/** Name of the endpoints of a locality-balanced cluster as ordered for a client in `locality`. */
export function localityEndpointsName(cluster: string, locality: Locality): string {
  return `${cluster}@${[locality.region, locality.zone, locality.subzone].map((p) => encodeURIComponent(p ?? '')).join('/')}`;
}

/** Inverse of localityEndpointsName; undefined for any other name. */
export function parseLocalityEndpointsName(name: string): { cluster: string; locality: Locality } | undefined {
  const at = name.lastIndexOf('@');
  if (at < 0) return undefined;
  const parts = name.slice(at + 1).split('/');
  if (parts.length !== 3) return undefined;
  let region: string, zone: string, subzone: string;
  try {
    [region, zone, subzone] = parts.map(decodeURIComponent) as [string, string, string];
  } catch {
    return undefined;
  }
  return { cluster: name.slice(0, at), locality: { ...(region ? { region } : {}), ...(zone ? { zone } : {}), ...(subzone ? { subzone } : {}) } };
}

/**
 * A cluster (as built for Envoy from the client's policy) in the form gRPC accepts: EDS, or a
 * LOGICAL_DNS cluster for a DNS service of one host (A37); locality-balanced clusters read
 * endpoints ordered for the client's locality under a name of their own, since gRPC takes
 * no inline endpoints for EDS. Undefined when no form exists (a DNS service of several hosts).
 */
export function proxylessClusterForm(cluster: Cluster, locality: Locality | undefined, problems: Refused[]): Cluster | undefined {
  const out: Cluster = { ...cluster };
  // Envoy's upstream HTTP options mean nothing to gRPC, which always speaks HTTP/2.
  delete out.typed_extension_protocol_options;
  if (cluster.type === 'STRICT_DNS') {
    const hosts = cluster.load_assignment?.endpoints?.flatMap((g) => g.lb_endpoints ?? []) ?? [];
    if (hosts.length !== 1) {
      problems.push({ field: 'resolution: DNS', reason: `${hosts.length} hosts: gRPC resolves one host name per cluster (LOGICAL_DNS, A37); the cluster is not sent` });
      return undefined;
    }
    out.type = 'LOGICAL_DNS';
    return out;
  }
  if (locality && out.eds_cluster_config) out.eds_cluster_config = { ...out.eds_cluster_config, service_name: localityEndpointsName(cluster.name!, locality) };
  return out;
}

/** The route table a proxyless client gets for the target it dialed: the rules' routes, then the default. */
export function buildTargetRoute(name: string, rules: readonly Route[], fallback: Route): RouteConfiguration {
  return { name, virtual_hosts: [{ name, domains: ['*'], routes: [...rules, fallback].map(proxylessRoute) }] };
}
