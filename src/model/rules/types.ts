// Routing rules in the model: Istio VirtualService and DestinationRule, validated and typed.
//
// Shapes follow the Istio API (networking.istio.io/v1) field for field, under `spec`, so a
// field path in an error reads the same as in the document. Differences from the raw
// document, all decided when the document is read (src/rules/):
//  - durations are milliseconds (`timeoutMs`): Istio accepts only whole milliseconds >= 1ms;
//  - a StringMatch is a tagged union (`{ type: 'prefix', value: '/api' }`);
//  - defaults Istio documents are filled in where noted (weights, percentages, redirect code);
//    anything else that is absent is undefined and Istio's (Envoy's) default applies;
//  - fields Isthmus does not support are refused when read, never carried silently.
import type { Origin } from '../origin.ts';

/** Where a rule document was read: for rejections and warnings that point into it. */
export interface RuleLocation {
  /** File path or object reference, as in Rejection.source. */
  readonly source: string;
  /** Index of the document in a multi-document file. */
  readonly document?: number;
}

interface RuleObject {
  readonly name: string;
  readonly namespace: string;
  readonly origin: Origin;
  readonly location: RuleLocation;
}

// ---------------------------------------------------------------------------------------
// Shared

/** How a string is matched. Regexes are RE2 syntax (Envoy's safe_regex), checked when read. */
export type StringMatch =
  | { readonly type: 'exact'; readonly value: string }
  | { readonly type: 'prefix'; readonly value: string }
  | { readonly type: 'regex'; readonly value: string };

/** A header match. `present` is Istio's empty match `{}`: the header is there, any value. */
export type HeaderMatch = StringMatch | { readonly type: 'present' };

/** A service a route sends to. */
export interface Destination {
  /** As written: an FQDN, an RPC interface name, or a short name (see src/rules/hosts.ts). */
  readonly host: string;
  /** A subset defined by a DestinationRule for the host. */
  readonly subset?: string;
  /** Service port; needed only when the service has more than one. */
  readonly port?: number;
}

export interface HeaderOperations {
  /** Overwrite (or add) these headers. */
  readonly set: Readonly<Record<string, string>>;
  /** Append these headers (Envoy: append_action APPEND_IF_EXISTS_OR_ADD). */
  readonly add: Readonly<Record<string, string>>;
  readonly remove: readonly string[];
}

export interface Headers {
  readonly request?: HeaderOperations;
  readonly response?: HeaderOperations;
}

// ---------------------------------------------------------------------------------------
// VirtualService

export interface HttpMatch {
  readonly name?: string;
  readonly uri?: StringMatch;
  readonly method?: StringMatch;
  readonly authority?: StringMatch;
  /** Header name (as written) → match; all must match. */
  readonly headers: Readonly<Record<string, HeaderMatch>>;
  /** Header name → match; the request must match none of them. */
  readonly withoutHeaders: Readonly<Record<string, HeaderMatch>>;
  /** Query parameter → match; only `exact` and `regex` (Istio does not support `prefix` here). */
  readonly queryParams: Readonly<Record<string, StringMatch>>;
  /** The service port the request was sent to. */
  readonly port?: number;
  /** Labels of the calling workload. */
  readonly sourceLabels: Readonly<Record<string, string>>;
  /** Gateways this match is restricted to (Isthmus has only the mesh). */
  readonly gateways: readonly string[];
  /** Match `uri` case-insensitively (exact and prefix). */
  readonly ignoreUriCase: boolean;
}

export interface HttpRouteDestination {
  readonly destination: Destination;
  /**
   * Share of the traffic, 0..100. With one destination it is 100 whatever was written (Istio
   * sends it all the traffic); with several, the weights sum to exactly 100.
   */
  readonly weight: number;
  readonly headers?: Headers;
}

export interface HttpRedirect {
  /** Replaces the path (and query). */
  readonly uri?: string;
  readonly authority?: string;
  readonly scheme?: 'http' | 'https';
  readonly port?: number;
  /** 301 (Istio's default), 302, 303, 307 or 308: the codes Envoy can send. */
  readonly redirectCode: number;
}

export interface HttpRewrite {
  /** Replaces the matched prefix (or the whole path for an exact match). */
  readonly uri?: string;
  readonly authority?: string;
}

export interface HttpRetry {
  /** Retries allowed (not counting the first try). 0 disables retries. */
  readonly attempts: number;
  readonly perTryTimeoutMs?: number;
  /** Envoy retry_on policies and HTTP status codes, e.g. ["5xx", "connect-failure", "503"]. */
  readonly retryOn?: readonly string[];
}

export type FaultAbort =
  | { readonly type: 'http'; readonly httpStatus: number; readonly percentage: number }
  | { readonly type: 'grpc'; readonly grpcStatus: string; readonly grpcCode: number; readonly percentage: number };

export interface HttpFault {
  /** `percentage` 0..100; Istio: when left out, no request is delayed (0). */
  readonly delay?: { readonly fixedDelayMs: number; readonly percentage: number };
  /** `percentage` 0..100; Istio: when left out, no request is aborted (0). */
  readonly abort?: FaultAbort;
}

export interface HttpMirror {
  readonly destination: Destination;
  /** spec.http[].mirrorPercentage; Istio: 100 when left out. */
  readonly percentage: number;
}

/** One HTTP rule. Rules are tried in order; the first whose match list matches wins. */
export interface HttpRoute {
  readonly name?: string;
  /** Any one of these matches (OR); empty means every request. */
  readonly match: readonly HttpMatch[];
  /** Weighted destinations; empty exactly when `redirect` is set. */
  readonly route: readonly HttpRouteDestination[];
  readonly redirect?: HttpRedirect;
  readonly rewrite?: HttpRewrite;
  readonly timeoutMs?: number;
  readonly retries?: HttpRetry;
  readonly fault?: HttpFault;
  /** spec.http[].mirror with spec.http[].mirrorPercentage. */
  readonly mirror?: HttpMirror;
  readonly headers?: Headers;
}

export interface TcpMatch {
  readonly port?: number;
  /** IP addresses or CIDR blocks of the destination. */
  readonly destinationSubnets: readonly string[];
  readonly sourceLabels: Readonly<Record<string, string>>;
  readonly gateways: readonly string[];
}

export interface RouteDestination {
  readonly destination: Destination;
  /** As for HTTP: 100 for a single destination, otherwise the weights sum to 100. */
  readonly weight: number;
}

export interface TcpRoute {
  /** Any one of these matches; empty means every connection. */
  readonly match: readonly TcpMatch[];
  readonly route: readonly RouteDestination[];
}

export interface VirtualServiceSpec {
  /** As written: FQDNs (possibly `*.` wildcards), interface names, short names, IPs. */
  readonly hosts: readonly string[];
  readonly gateways: readonly string[];
  readonly http: readonly HttpRoute[];
  readonly tcp: readonly TcpRoute[];
  /** Namespaces that see the rule; [] means Istio's default (every namespace). */
  readonly exportTo: readonly string[];
}

export interface VirtualService extends RuleObject {
  readonly spec: VirtualServiceSpec;
  /**
   * True when the rule applies to sidecars and proxyless clients: no gateways are named, or
   * "mesh" is among them. A rule bound only to gateways has no effect in Isthmus.
   */
  readonly appliesToMesh: boolean;
}

// ---------------------------------------------------------------------------------------
// DestinationRule

export type SimpleLoadBalancer = 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RANDOM' | 'PASSTHROUGH';

export interface HttpCookie {
  readonly name: string;
  readonly path?: string;
  /** Absent: Envoy does not generate the cookie, only hashes an existing one. */
  readonly ttlMs?: number;
}

/** The hash key of a consistent-hash load balancer (Envoy ring hash). */
export type ConsistentHash =
  | { readonly type: 'header'; readonly httpHeaderName: string }
  | { readonly type: 'cookie'; readonly httpCookie: HttpCookie }
  | { readonly type: 'sourceIp' }
  | { readonly type: 'queryParameter'; readonly httpQueryParameterName: string };

export interface LocalityLbSetting {
  /** Locality (region/zone/subzone, `*` allowed at the end) → weights of target localities, summing to 100. */
  readonly distribute: readonly { readonly from: string; readonly to: Readonly<Record<string, number>> }[];
  /** Regions to fail over to when a region has no healthy endpoint. */
  readonly failover: readonly { readonly from: string; readonly to: string }[];
  /** Absent: Istio's mesh-wide default (enabled). */
  readonly enabled?: boolean;
}

export interface LoadBalancer {
  /** At most one of `simple` and `consistentHash`; neither means Istio's default (LEAST_REQUEST). */
  readonly simple?: SimpleLoadBalancer;
  readonly consistentHash?: ConsistentHash;
  readonly localityLbSetting?: LocalityLbSetting;
}

export interface TcpKeepalive {
  readonly probes?: number;
  readonly timeMs?: number;
  readonly intervalMs?: number;
}

export interface TcpPoolSettings {
  readonly maxConnections?: number;
  readonly connectTimeoutMs?: number;
  readonly tcpKeepalive?: TcpKeepalive;
  readonly maxConnectionDurationMs?: number;
  readonly idleTimeoutMs?: number;
}

export interface HttpPoolSettings {
  readonly http1MaxPendingRequests?: number;
  readonly http2MaxRequests?: number;
  readonly maxRequestsPerConnection?: number;
  readonly maxRetries?: number;
  readonly idleTimeoutMs?: number;
  readonly h2UpgradePolicy?: 'DEFAULT' | 'DO_NOT_UPGRADE' | 'UPGRADE';
  readonly useClientProtocol?: boolean;
  readonly maxConcurrentStreams?: number;
}

export interface ConnectionPool {
  readonly tcp?: TcpPoolSettings;
  readonly http?: HttpPoolSettings;
}

export interface OutlierDetection {
  readonly consecutive5xxErrors?: number;
  readonly consecutiveGatewayErrors?: number;
  readonly intervalMs?: number;
  readonly baseEjectionTimeMs?: number;
  /** 0..100 */
  readonly maxEjectionPercent?: number;
  /** 0..100 */
  readonly minHealthPercent?: number;
  readonly splitExternalLocalOriginErrors?: boolean;
  readonly consecutiveLocalOriginFailures?: number;
}

/** Upstream TLS as Istio writes it; accepted and carried, see the xDS generators for use. */
export interface ClientTls {
  readonly mode: 'DISABLE' | 'SIMPLE' | 'MUTUAL' | 'ISTIO_MUTUAL';
  readonly clientCertificate?: string;
  readonly privateKey?: string;
  readonly caCertificates?: string;
  readonly credentialName?: string;
  readonly subjectAltNames: readonly string[];
  readonly sni?: string;
  readonly insecureSkipVerify?: boolean;
  readonly caCrl?: string;
}

/** Settings that can be given for the whole host, per port, and per subset. */
export interface PolicySettings {
  readonly loadBalancer?: LoadBalancer;
  readonly connectionPool?: ConnectionPool;
  readonly outlierDetection?: OutlierDetection;
  readonly tls?: ClientTls;
}

export interface PortTrafficPolicy extends PolicySettings {
  readonly port: number;
}

export interface TrafficPolicy extends PolicySettings {
  /** Per-port overrides; ports are unique. */
  readonly portLevelSettings: readonly PortTrafficPolicy[];
}

export interface Subset {
  /** Unique within the rule. */
  readonly name: string;
  /** Endpoints with all these labels belong to the subset (in addition to the service's selector). */
  readonly labels: Readonly<Record<string, string>>;
  /** Overrides the rule-level policy for traffic sent to this subset. */
  readonly trafficPolicy?: TrafficPolicy;
}

export interface DestinationRuleSpec {
  /** As written: FQDN (possibly a `*.` wildcard), interface name or short name. */
  readonly host: string;
  readonly trafficPolicy?: TrafficPolicy;
  readonly subsets: readonly Subset[];
  readonly exportTo: readonly string[];
}

export interface DestinationRule extends RuleObject {
  readonly spec: DestinationRuleSpec;
}
