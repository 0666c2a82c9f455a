// VirtualService spec → model, checked the way Istio's validation webhook does
// (pkg/config/validation: ValidateVirtualService, validateHTTPRoute, virtualservice.go), and
// stricter where Isthmus cannot do what Istio would: such documents are refused with the
// reason, never served differently from Istio. Per-document only; see cross-checks.ts.

import type {
  Destination,
  FaultAbort,
  HttpFault,
  HttpMatch,
  HttpMirror,
  HttpRedirect,
  HttpRetry,
  HttpRewrite,
  HttpRoute,
  HttpRouteDestination,
  RouteDestination,
  TcpMatch,
  TcpRoute,
  VirtualService,
} from './types.ts';
import { Checker, isIpOrCidr } from '../../shared/checks.ts';
import {
  absent,
  bool,
  count,
  duration,
  exportTo,
  gatewayNames,
  headerMatches,
  headers,
  items,
  num,
  obj,
  percent,
  port,
  queryMatches,
  required,
  stringMatch,
  sub,
  text,
  type Warnings,
} from './fields.ts';
import { hostSyntaxError, hostsOverlap, isIpAddress } from './hosts.ts';
import type { RuleMeta } from './meta.ts';

const VS_KEYS = ['hosts', 'gateways', 'http', 'tcp', 'exportTo'];
const VS_UNSUPPORTED = { tls: 'TLS routes (by SNI) are not implemented; route TLS traffic with tcp routes' };
const HTTP_KEYS = ['name', 'match', 'route', 'redirect', 'rewrite', 'timeout', 'retries', 'fault', 'mirror', 'mirrorPercentage', 'headers'];
const HTTP_UNSUPPORTED = {
  directResponse: 'direct responses are not implemented',
  delegate: 'delegate VirtualServices are not implemented',
  mirrors: 'use mirror with mirrorPercentage (one mirror per route)',
  mirrorPercent: 'deprecated in Istio; use mirrorPercentage: { value: N }',
  corsPolicy: 'CORS policies are not implemented',
};
const MATCH_KEYS = ['name', 'uri', 'method', 'authority', 'headers', 'port', 'sourceLabels', 'gateways', 'queryParams', 'ignoreUriCase', 'withoutHeaders'];
const MATCH_UNSUPPORTED = {
  scheme: 'matching on the scheme is not implemented',
  sourceNamespace: 'matching on the source namespace is not implemented; use sourceLabels',
  statPrefix: 'per-route stats are not implemented',
};
const DEST_KEYS = ['host', 'subset', 'port'];
const REDIRECT_KEYS = ['uri', 'authority', 'redirectCode', 'scheme', 'port'];
const REDIRECT_CODES = [301, 302, 303, 307, 308];
const RETRY_KEYS = ['attempts', 'perTryTimeout', 'retryOn'];
const RETRY_UNSUPPORTED = {
  retryRemoteLocalities: 'not implemented',
  retryIgnorePreviousHosts: 'not implemented',
  backoff: 'not implemented; Envoy\'s default backoff (25ms base) applies',
};

/** Envoy's x-envoy-retry-on and x-envoy-retry-grpc-on policies, as Istio lists them. */
export const RETRY_ON_POLICIES: readonly string[] = [
  '5xx', 'gateway-error', 'reset', 'reset-before-request', 'connect-failure', 'retriable-4xx', 'refused-stream',
  'retriable-status-codes', 'retriable-headers', 'envoy-ratelimited', 'http3-post-connect-failure',
  'cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable',
];

/** Status codes Go's net/http knows (Istio accepts a retryOn entry that is one of them). */
const HTTP_STATUS_CODES = new Set([
  100, 101, 102, 103, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 307, 308,
  400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 418, 421, 422, 423,
  424, 425, 426, 428, 429, 431, 451, 500, 501, 502, 503, 504, 505, 506, 507, 508, 510, 511,
]);

/** gRPC status names (Istio's grpc.SupportedGRPCStatus) → codes. */
export const GRPC_STATUS: Readonly<Record<string, number>> = {
  OK: 0, CANCELLED: 1, UNKNOWN: 2, INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5, ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7, RESOURCE_EXHAUSTED: 8, FAILED_PRECONDITION: 9, ABORTED: 10, OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12, INTERNAL: 13, UNAVAILABLE: 14, DATA_LOSS: 15, UNAUTHENTICATED: 16,
};

const SUBSET_NAME = /^[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?$/;

export function virtualService(spec: unknown, c: Checker, w: Warnings, meta: RuleMeta): VirtualService | undefined {
  const s = obj(c, spec, 'spec', VS_KEYS, VS_UNSUPPORTED);
  if (!s) return undefined;
  const gateways = gatewayNames(c, s.gateways, 'spec.gateways');
  const appliesToMesh = gateways.length === 0 || gateways.includes('mesh');
  if (!appliesToMesh) {
    w.add('spec.gateways', 'the rule is bound only to gateways, not to "mesh"; Isthmus serves sidecars and proxyless clients only, so it has no effect');
  }
  const hosts = checkHosts(c, s.hosts, appliesToMesh);
  const http = items(c, s.http, 'spec.http', (item, f) => httpRoute(c, w, item, f));
  const tcp = items(c, s.tcp, 'spec.tcp', (item, f) => tcpRoute(c, item, f));
  const hasHttp = Array.isArray(s.http) && s.http.length > 0;
  const hasTcp = Array.isArray(s.tcp) && s.tcp.length > 0;
  if (!hasHttp && !hasTcp && (absent(s.tls) || (Array.isArray(s.tls) && s.tls.length === 0))) {
    c.fail('spec', 'spec has no routes; a VirtualService needs http or tcp routes');
  }
  warnUnreachable(w, 'spec.http', http.map((r) => r.match.length));
  warnUnreachable(w, 'spec.tcp', tcp.map((r) => r.match.length));
  const exp = exportTo(c, s.exportTo, 'spec.exportTo', meta.namespace);
  if (c.problems.length > 0) return undefined;
  return { ...meta, spec: { hosts, gateways, http, tcp, exportTo: exp }, appliesToMesh };
}

function checkHosts(c: Checker, v: unknown, appliesToMesh: boolean): string[] {
  if (absent(v) || (Array.isArray(v) && v.length === 0)) {
    c.fail('spec.hosts', 'spec.hosts is empty; name the services this rule routes (delegate VirtualServices without hosts are not supported)');
    return [];
  }
  const hosts = c.strings(v, 'spec.hosts') ?? [];
  const ok: { value: string; field: string; q: string }[] = [];
  for (const h of hosts) {
    if (isIpAddress(h.value)) {
      ok.push({ ...h, q: h.value });
      continue;
    }
    const err = hostSyntaxError(h.value, { wildcard: true });
    if (err) c.fail(h.field, `host ${JSON.stringify(h.value)} ${err}`);
    else if (h.value === '*' && appliesToMesh) c.fail(h.field, 'host "*" is not allowed for a rule that applies to the mesh; name the hosts or use a "*.domain" wildcard');
    else ok.push({ ...h, q: h.value.toLowerCase() });
  }
  for (const [j, b] of ok.entries()) {
    const a = ok.slice(0, j).find((x) => hostsOverlap(x.q, b.q));
    if (a) c.fail(b.field, `host ${JSON.stringify(b.value)} duplicates ${JSON.stringify(a.value)} (${a.field}); every host may appear once`);
  }
  return hosts.map((h) => h.value);
}

/** A rule after one without matches is never used (Istio's warning). */
function warnUnreachable(w: Warnings, field: string, matchCounts: readonly number[]): void {
  const catchAll = matchCounts.indexOf(0);
  if (catchAll < 0) return;
  for (let j = catchAll + 1; j < matchCounts.length; j++) {
    w.add(sub(field, j), `this rule is never used: ${sub(field, catchAll)} before it has no match and takes all traffic`);
  }
}

function httpRoute(c: Checker, w: Warnings, v: unknown, field: string): HttpRoute | undefined {
  const r = obj(c, v, field, HTTP_KEYS, HTTP_UNSUPPORTED);
  if (!r) return undefined;
  const before = c.problems.length;
  const name = c.string(r.name, `${field}.name`);
  const match = items(c, r.match, `${field}.match`, (m, f) => httpMatch(c, m, f));
  const hasRedirect = !absent(r.redirect);
  const routeGiven = Array.isArray(r.route) && r.route.length > 0;
  if (hasRedirect) {
    if (routeGiven) c.fail(`${field}.redirect`, `${field} has both route and redirect; a rule either routes or redirects`);
    if (!absent(r.fault)) c.fail(`${field}.fault`, `${field} has both fault and redirect; faults apply only to routed requests`);
    if (!absent(r.rewrite)) c.fail(`${field}.rewrite`, `${field} has both rewrite and redirect; use the redirect's uri and authority`);
  } else if (!routeGiven && (absent(r.route) || Array.isArray(r.route))) {
    c.fail(`${field}.route`, `${field}.route is missing; every HTTP rule needs route destinations or a redirect`);
  }
  const route = weighted(c, r.route, `${field}.route`, (d, f) => httpRouteDestination(c, d, f));
  const redirect = httpRedirect(c, r.redirect, `${field}.redirect`);
  const rewrite = httpRewrite(c, r.rewrite, `${field}.rewrite`);
  const timeoutMs = duration(c, r.timeout, `${field}.timeout`);
  const retries = httpRetry(c, r.retries, `${field}.retries`);
  const fault = httpFault(c, w, r.fault, `${field}.fault`);
  const mirror = httpMirror(c, r.mirror, r.mirrorPercentage, field);
  const hdrs = headers(c, r.headers, `${field}.headers`, rewrite?.authority);
  if (c.problems.length > before) return undefined;
  return {
    ...(name !== undefined ? { name } : {}),
    match,
    route,
    ...(redirect ? { redirect } : {}),
    ...(rewrite ? { rewrite } : {}),
    ...(timeoutMs !== undefined ? { timeoutMs } : {}),
    ...(retries ? { retries } : {}),
    ...(fault ? { fault } : {}),
    ...(mirror ? { mirror } : {}),
    ...(hdrs ? { headers: hdrs } : {}),
  };
}

function httpMatch(c: Checker, v: unknown, field: string): HttpMatch | undefined {
  const m = obj(c, v, field, MATCH_KEYS, MATCH_UNSUPPORTED);
  if (!m) return undefined;
  const name = c.string(m.name, `${field}.name`);
  const uri = stringMatch(c, m.uri, `${field}.uri`);
  const method = stringMatch(c, m.method, `${field}.method`);
  const authority = stringMatch(c, m.authority, `${field}.authority`);
  const p = port(c, m.port, `${field}.port`);
  const ignoreUriCase = bool(c, m.ignoreUriCase, `${field}.ignoreUriCase`) ?? false;
  if (ignoreUriCase && uri?.type === 'regex') c.fail(`${field}.ignoreUriCase`, 'ignoreUriCase applies to exact and prefix uri matches; write a case-insensitive regex, e.g. "(?i)/api/.*"');
  return {
    ...(name !== undefined ? { name } : {}),
    ...(uri ? { uri } : {}),
    ...(method ? { method } : {}),
    ...(authority ? { authority } : {}),
    headers: headerMatches(c, m.headers, `${field}.headers`),
    withoutHeaders: headerMatches(c, m.withoutHeaders, `${field}.withoutHeaders`),
    queryParams: queryMatches(c, m.queryParams, `${field}.queryParams`),
    ...(p !== undefined ? { port: p } : {}),
    sourceLabels: c.labels(m.sourceLabels, `${field}.sourceLabels`, { noWildcard: true }) ?? {},
    gateways: gatewayNames(c, m.gateways, `${field}.gateways`),
    ignoreUriCase,
  };
}

/**
 * Weighted destinations. Each weight is 0..100; with more than one destination they must sum
 * to exactly 100 — Istio's original rule, kept because Istio today reads weights as relative
 * shares, so a sum of 100 means the same thing to both. A single destination gets 100.
 */
function weighted<T extends { destination: Destination; weight: number }>(
  c: Checker,
  v: unknown,
  field: string,
  read: (item: unknown, field: string) => T | undefined,
): T[] {
  const list = items(c, v, field, (d, f) => read(d, f));
  const raw = Array.isArray(v) ? v : [];
  if (raw.length > 1 && list.length === raw.length) {
    const sum = list.reduce((a, d) => a + d.weight, 0);
    if (sum !== 100) {
      const shown = list.map((d) => d.weight).join(' + ');
      c.fail(field, `weights ${shown} sum to ${sum}; with more than one destination the weights must sum to 100`);
    }
  }
  return raw.length === 1 ? list.map((d) => ({ ...d, weight: 100 })) : list;
}

function httpRouteDestination(c: Checker, v: unknown, field: string): HttpRouteDestination | undefined {
  const d = obj(c, v, field, ['destination', 'weight', 'headers']);
  if (!d) return undefined;
  required(c, d.destination, `${field}.destination`, 'a mapping with at least a host');
  const destination = dest(c, d.destination, `${field}.destination`);
  const weight = c.integer(d.weight, `${field}.weight`, 0, 100);
  const hdrs = headers(c, d.headers, `${field}.headers`);
  if (!destination || (weight === undefined && !absent(d.weight))) return undefined;
  return { destination, weight: weight ?? 0, ...(hdrs ? { headers: hdrs } : {}) };
}

function routeDestination(c: Checker, v: unknown, field: string): RouteDestination | undefined {
  const d = obj(c, v, field, ['destination', 'weight']);
  if (!d) return undefined;
  required(c, d.destination, `${field}.destination`, 'a mapping with at least a host');
  const destination = dest(c, d.destination, `${field}.destination`);
  const weight = c.integer(d.weight, `${field}.weight`, 0, 100);
  if (!destination || (weight === undefined && !absent(d.weight))) return undefined;
  return { destination, weight: weight ?? 0 };
}

/** Istio's validateDestination, plus: a destination names one service (no wildcard). */
export function dest(c: Checker, v: unknown, field: string): Destination | undefined {
  const d = obj(c, v, field, DEST_KEYS);
  if (!d) return undefined;
  const before = c.problems.length;
  required(c, d.host, `${field}.host`, 'a service name, interface name or short name');
  const host = c.string(d.host, `${field}.host`);
  if (host !== undefined) {
    const err = hostSyntaxError(host, { wildcard: false });
    if (err) c.fail(`${field}.host`, `destination host ${JSON.stringify(host)} ${err}`);
  }
  const subset = c.string(d.subset, `${field}.subset`);
  if (subset !== undefined && (subset.length > 63 || !SUBSET_NAME.test(subset))) {
    c.fail(`${field}.subset`, `subset name ${JSON.stringify(subset)} is not a valid DNS-1123 label`);
  }
  let portNumber: number | undefined;
  const p = obj(c, d.port, `${field}.port`, ['number']);
  if (p) {
    required(c, p.number, `${field}.port.number`, 'a port number from 1 to 65535');
    portNumber = port(c, p.number, `${field}.port.number`);
  }
  if (host === undefined || c.problems.length > before) return undefined;
  return { host, ...(subset !== undefined ? { subset } : {}), ...(portNumber !== undefined ? { port: portNumber } : {}) };
}

function httpRedirect(c: Checker, v: unknown, field: string): HttpRedirect | undefined {
  const r = obj(c, v, field, REDIRECT_KEYS, { derivePort: 'not implemented; give port explicitly' });
  if (!r) return undefined;
  const uri = text(c, r.uri, `${field}.uri`);
  const authority = text(c, r.authority, `${field}.authority`);
  const scheme = c.oneOf(r.scheme, `${field}.scheme`, ['http', 'https'] as const);
  const p = port(c, r.port, `${field}.port`);
  if ([r.uri, r.authority, r.scheme, r.port].every(absent)) c.fail(field, `${field} must set at least one of uri, authority, scheme, port`);
  let code = 301;
  if (!absent(r.redirectCode)) {
    const n = c.integer(r.redirectCode, `${field}.redirectCode`, 300, 399);
    if (n !== undefined && !REDIRECT_CODES.includes(n)) {
      c.fail(`${field}.redirectCode`, `${field}.redirectCode ${n} cannot be sent by Envoy; expected one of: ${REDIRECT_CODES.join(', ')}`);
    } else if (n !== undefined) code = n;
  }
  return {
    ...(uri !== undefined ? { uri } : {}),
    ...(authority !== undefined ? { authority } : {}),
    ...(scheme !== undefined ? { scheme } : {}),
    ...(p !== undefined ? { port: p } : {}),
    redirectCode: code,
  };
}

function httpRewrite(c: Checker, v: unknown, field: string): HttpRewrite | undefined {
  const r = obj(c, v, field, ['uri', 'authority'], { uriRegexRewrite: 'regex rewrites are not implemented' });
  if (!r) return undefined;
  const uri = text(c, r.uri, `${field}.uri`);
  const authority = text(c, r.authority, `${field}.authority`);
  if (absent(r.uri) && absent(r.authority)) c.fail(field, `${field} must set uri or authority`);
  return { ...(uri !== undefined ? { uri } : {}), ...(authority !== undefined ? { authority } : {}) };
}

function httpRetry(c: Checker, v: unknown, field: string): HttpRetry | undefined {
  const r = obj(c, v, field, RETRY_KEYS, RETRY_UNSUPPORTED);
  if (!r) return undefined;
  const attempts = count(c, r.attempts, `${field}.attempts`) ?? 0;
  const perTryTimeoutMs = duration(c, r.perTryTimeout, `${field}.perTryTimeout`);
  const retryOn = c.string(r.retryOn, `${field}.retryOn`);
  let policies: string[] | undefined;
  if (retryOn !== undefined) {
    policies = retryOn.split(',');
    for (const p of policies) {
      const code = /^\d+$/.test(p) ? Number(p) : NaN;
      if (!RETRY_ON_POLICIES.includes(p) && !HTTP_STATUS_CODES.has(code)) {
        c.fail(`${field}.retryOn`, `${JSON.stringify(p)} is not a retryOn policy; expected a comma-separated list (no spaces) of: ${RETRY_ON_POLICIES.join(', ')}, or HTTP status codes`);
      }
    }
  }
  if (attempts === 0 && (!absent(r.perTryTimeout) || !absent(r.retryOn))) {
    c.fail(`${field}.attempts`, `${field}.attempts is ${absent(r.attempts) ? 'missing (0)' : '0'}, which disables retries, yet perTryTimeout or retryOn is set; set attempts`);
  }
  return { attempts, ...(perTryTimeoutMs !== undefined ? { perTryTimeoutMs } : {}), ...(policies ? { retryOn: policies } : {}) };
}

function httpFault(c: Checker, w: Warnings, v: unknown, field: string): HttpFault | undefined {
  const f = obj(c, v, field, ['delay', 'abort']);
  if (!f) return undefined;
  if (absent(f.delay) && absent(f.abort)) c.fail(field, `${field} must have a delay, an abort, or both`);
  let delay: HttpFault['delay'];
  const d = obj(c, f.delay, `${field}.delay`, ['fixedDelay', 'percentage'], {
    exponentialDelay: 'not implemented (nor by Istio); use fixedDelay',
    percent: 'deprecated in Istio; use percentage: { value: N }',
  });
  if (d) {
    required(c, d.fixedDelay, `${field}.delay.fixedDelay`, 'a duration such as "5s"');
    const fixedDelayMs = duration(c, d.fixedDelay, `${field}.delay.fixedDelay`);
    const percentage = faultPercentage(c, w, d.percentage, `${field}.delay`, 'delayed');
    if (fixedDelayMs !== undefined && percentage !== undefined) delay = { fixedDelayMs, percentage };
  }
  let abort: FaultAbort | undefined;
  const a = obj(c, f.abort, `${field}.abort`, ['httpStatus', 'grpcStatus', 'percentage'], { http2Error: 'not implemented (nor by Istio); use httpStatus or grpcStatus' });
  if (a) {
    const percentage = faultPercentage(c, w, a.percentage, `${field}.abort`, 'aborted');
    if (!absent(a.httpStatus) && !absent(a.grpcStatus)) c.fail(`${field}.abort`, `${field}.abort sets both httpStatus and grpcStatus; choose one`);
    else if (absent(a.httpStatus) && absent(a.grpcStatus)) c.fail(`${field}.abort`, `${field}.abort needs httpStatus or grpcStatus`);
    else if (!absent(a.httpStatus)) {
      // Envoy's abort http_status is 200..599 (Istio's check allows 600, which Envoy would NACK).
      const httpStatus = c.integer(a.httpStatus, `${field}.abort.httpStatus`, 200, 599);
      if (httpStatus !== undefined && percentage !== undefined) abort = { type: 'http', httpStatus, percentage };
    } else {
      const grpcStatus = c.oneOf(a.grpcStatus, `${field}.abort.grpcStatus`, Object.keys(GRPC_STATUS));
      if (grpcStatus !== undefined && percentage !== undefined) abort = { type: 'grpc', grpcStatus, grpcCode: GRPC_STATUS[grpcStatus]!, percentage };
    }
  }
  return { ...(delay ? { delay } : {}), ...(abort ? { abort } : {}) };
}

function faultPercentage(c: Checker, w: Warnings, v: unknown, field: string, verb: string): number | undefined {
  if (absent(v)) {
    w.add(`${field}.percentage`, `percentage is not set; Istio then leaves every request un${verb === 'delayed' ? 'delayed' : 'aborted'}; set percentage: { value: 100 } to ${verb === 'delayed' ? 'delay' : 'abort'} all`);
    return 0;
  }
  return percent(c, v, `${field}.percentage`);
}

function httpMirror(c: Checker, v: unknown, pct: unknown, field: string): HttpMirror | undefined {
  let percentage = 100;
  const p = obj(c, pct, `${field}.mirrorPercentage`, ['value']);
  if (p) {
    const n = num(c, p.value, `${field}.mirrorPercentage.value`, 0, 100);
    if (n !== undefined) percentage = n;
    else if (absent(p.value)) percentage = 0;
    if (absent(v)) c.fail(`${field}.mirrorPercentage`, `${field}.mirrorPercentage is set but ${field}.mirror is not`);
  }
  if (absent(v)) return undefined;
  const destination = dest(c, v, `${field}.mirror`);
  return destination ? { destination, percentage } : undefined;
}

function tcpRoute(c: Checker, v: unknown, field: string): TcpRoute | undefined {
  const r = obj(c, v, field, ['match', 'route']);
  if (!r) return undefined;
  const before = c.problems.length;
  const match = items(c, r.match, `${field}.match`, (m, f) => tcpMatch(c, m, f));
  if (absent(r.route) || (Array.isArray(r.route) && r.route.length === 0)) c.fail(`${field}.route`, `${field}.route is missing; every TCP rule needs route destinations`);
  const route = weighted(c, r.route, `${field}.route`, (d, f) => routeDestination(c, d, f));
  if (c.problems.length > before) return undefined;
  return { match, route };
}

function tcpMatch(c: Checker, v: unknown, field: string): TcpMatch | undefined {
  const m = obj(c, v, field, ['port', 'destinationSubnets', 'sourceLabels', 'gateways'], { sourceNamespace: MATCH_UNSUPPORTED.sourceNamespace });
  if (!m) return undefined;
  const subnets = c.strings(m.destinationSubnets, `${field}.destinationSubnets`) ?? [];
  for (const s of subnets) if (!isIpOrCidr(s.value)) c.fail(s.field, `${JSON.stringify(s.value)} is not an IP address or CIDR block (e.g. 10.0.0.0/24)`);
  const p = port(c, m.port, `${field}.port`);
  return {
    ...(p !== undefined ? { port: p } : {}),
    destinationSubnets: subnets.map((s) => s.value),
    sourceLabels: c.labels(m.sourceLabels, `${field}.sourceLabels`, { noWildcard: true }) ?? {},
    gateways: gatewayNames(c, m.gateways, `${field}.gateways`),
  };
}
