// DestinationRule spec → model, checked the way Istio's validation webhook does
// (pkg/config/validation: ValidateDestinationRule, validateTrafficPolicy, agent's
// ValidateLocalityLbSetting and ValidateTLS). Fields Isthmus cannot honour are refused.

import type {
  ClientTls,
  ConnectionPool,
  ConsistentHash,
  DestinationRule,
  HttpCookie,
  HttpPoolSettings,
  LoadBalancer,
  LocalityLbSetting,
  OutlierDetection,
  PolicySettings,
  PortTrafficPolicy,
  SimpleLoadBalancer,
  Subset,
  TcpPoolSettings,
  TrafficPolicy,
} from './types.ts';
import { Checker, isMapping } from '../../shared/checks.ts';
import { absent, bool, count, duration, exportTo, items, obj, port, required, sub, text, UINT32_MAX, type Warnings } from './fields.ts';
import { hostSyntaxError } from './hosts.ts';
import type { RuleMeta } from './meta.ts';

const DR_KEYS = ['host', 'trafficPolicy', 'subsets', 'exportTo'];
const DR_UNSUPPORTED = { workloadSelector: 'per-workload DestinationRules are not implemented' };
const POLICY_KEYS = ['loadBalancer', 'connectionPool', 'outlierDetection', 'tls'];
const TP_UNSUPPORTED = {
  tunnel: 'tunneling is not implemented',
  proxyProtocol: 'PROXY protocol is not implemented',
  retryBudget: 'retry budgets are not implemented',
};
const SIMPLE = ['ROUND_ROBIN', 'LEAST_REQUEST', 'RANDOM', 'PASSTHROUGH', 'LEAST_CONN', 'UNSPECIFIED'] as const;
const HASH_KEYS = ['httpHeaderName', 'httpCookie', 'useSourceIp', 'httpQueryParameterName'] as const;
const TLS_MODES = ['DISABLE', 'SIMPLE', 'MUTUAL', 'ISTIO_MUTUAL'] as const;
const SUBSET_NAME = /^[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?$/;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

export function destinationRule(spec: unknown, c: Checker, w: Warnings, meta: RuleMeta): DestinationRule | undefined {
  const s = obj(c, spec, 'spec', DR_KEYS, DR_UNSUPPORTED);
  if (!s) return undefined;
  required(c, s.host, 'spec.host', 'the name of a service, interface or short name');
  const host = c.string(s.host, 'spec.host');
  if (host !== undefined) {
    const err = hostSyntaxError(host, { wildcard: true });
    if (err) c.fail('spec.host', `host ${JSON.stringify(host)} ${err}`);
  }
  const trafficPolicy = policy(c, w, s.trafficPolicy, 'spec.trafficPolicy');
  const names = new Map<string, string>();
  const subsets = items(c, s.subsets, 'spec.subsets', (item, f) => {
    const sb = subset(c, w, item, f);
    if (sb) {
      const prior = names.get(sb.name);
      if (prior !== undefined) c.fail(`${f}.name`, `subset name ${JSON.stringify(sb.name)} is already used by ${prior}; subset names must be unique`);
      else names.set(sb.name, f);
    }
    return sb;
  });
  const exp = exportTo(c, s.exportTo, 'spec.exportTo', meta.namespace);
  if (c.problems.length > 0 || host === undefined) return undefined;
  return { ...meta, spec: { host, ...(trafficPolicy ? { trafficPolicy } : {}), subsets, exportTo: exp } };
}

function subset(c: Checker, w: Warnings, v: unknown, field: string): Subset | undefined {
  const s = obj(c, v, field, ['name', 'labels', 'trafficPolicy']);
  if (!s) return undefined;
  required(c, s.name, `${field}.name`, 'a DNS-1123 label such as "v1"');
  const name = c.string(s.name, `${field}.name`);
  if (name !== undefined && (name.length > 63 || !SUBSET_NAME.test(name))) {
    c.fail(`${field}.name`, `subset name ${JSON.stringify(name)} is not a valid DNS-1123 label; expected letters, digits and "-", at most 63 characters`);
  }
  const labels = c.labels(s.labels, `${field}.labels`, { noWildcard: true }) ?? {};
  const trafficPolicy = policy(c, w, s.trafficPolicy, `${field}.trafficPolicy`);
  if (name === undefined) return undefined;
  return { name, labels, ...(trafficPolicy ? { trafficPolicy } : {}) };
}

function policy(c: Checker, w: Warnings, v: unknown, field: string): TrafficPolicy | undefined {
  const p = obj(c, v, field, [...POLICY_KEYS, 'portLevelSettings'], TP_UNSUPPORTED);
  if (!p) return undefined;
  if ([...POLICY_KEYS, 'portLevelSettings'].every((k) => absent(p[k]))) c.fail(field, `${field} is empty; a traffic policy needs at least one setting`);
  const settings = policySettings(c, w, p, field);
  const ports = new Map<number, string>();
  const portLevelSettings = items(c, p.portLevelSettings, `${field}.portLevelSettings`, (item, f) => {
    const pl = obj(c, item, f, ['port', ...POLICY_KEYS]);
    if (!pl) return undefined;
    let n: number | undefined;
    const portSel = obj(c, pl.port, `${f}.port`, ['number']);
    if (!required(c, pl.port, `${f}.port`, 'a mapping with the port number, e.g. { number: 80 }')) {
      // reported
    } else if (portSel) {
      required(c, portSel.number, `${f}.port.number`, 'a port number from 1 to 65535');
      n = port(c, portSel.number, `${f}.port.number`);
    }
    if (POLICY_KEYS.every((k) => absent(pl[k]))) c.fail(f, `${f} has no settings; give loadBalancer, connectionPool, outlierDetection or tls`);
    if (n !== undefined) {
      const prior = ports.get(n);
      if (prior !== undefined) c.fail(`${f}.port.number`, `port ${n} already has settings in ${prior}`);
      else ports.set(n, f);
    }
    const s = policySettings(c, w, pl, f);
    return n === undefined ? undefined : ({ port: n, ...s } satisfies PortTrafficPolicy);
  });
  return { ...settings, portLevelSettings };
}

function policySettings(c: Checker, w: Warnings, p: Record<string, unknown>, field: string): PolicySettings {
  const loadBalancer = loadBalancerSettings(c, w, p.loadBalancer, `${field}.loadBalancer`, !absent(p.outlierDetection));
  const connectionPool = pool(c, p.connectionPool, `${field}.connectionPool`);
  const outlierDetection = outlier(c, p.outlierDetection, `${field}.outlierDetection`);
  const tls = clientTls(c, p.tls, `${field}.tls`);
  return {
    ...(loadBalancer ? { loadBalancer } : {}),
    ...(connectionPool ? { connectionPool } : {}),
    ...(outlierDetection ? { outlierDetection } : {}),
    ...(tls ? { tls } : {}),
  };
}

function loadBalancerSettings(c: Checker, w: Warnings, v: unknown, field: string, hasOutlier: boolean): LoadBalancer | undefined {
  const lb = obj(c, v, field, ['simple', 'consistentHash', 'localityLbSetting'], {
    warmupDurationSecs: 'slow start is not implemented',
    warmup: 'slow start is not implemented',
  });
  if (!lb) return undefined;
  if (!absent(lb.simple) && !absent(lb.consistentHash)) c.fail(field, `${field} sets both simple and consistentHash; choose one`);
  let simple: SimpleLoadBalancer | undefined;
  const raw = c.oneOf(lb.simple, `${field}.simple`, SIMPLE);
  if (raw === 'LEAST_CONN') {
    w.add(`${field}.simple`, 'LEAST_CONN is deprecated in Istio; it means LEAST_REQUEST, write that');
    simple = 'LEAST_REQUEST';
  } else if (raw !== undefined && raw !== 'UNSPECIFIED') simple = raw;
  const consistentHash = hash(c, lb.consistentHash, `${field}.consistentHash`);
  const localityLbSetting = locality(c, w, lb.localityLbSetting, `${field}.localityLbSetting`, hasOutlier);
  return {
    ...(simple ? { simple } : {}),
    ...(consistentHash ? { consistentHash } : {}),
    ...(localityLbSetting ? { localityLbSetting } : {}),
  };
}

function hash(c: Checker, v: unknown, field: string): ConsistentHash | undefined {
  const h = obj(c, v, field, HASH_KEYS, {
    ringHash: 'the ring size is not configurable; Envoy\'s ring hash defaults apply',
    maglev: 'Maglev is not implemented; the ring hash is used',
    minimumRingSize: 'deprecated in Istio and not implemented',
  });
  if (!h) return undefined;
  const set = HASH_KEYS.filter((k) => !absent(h[k]) && h[k] !== false);
  if (set.length === 0) {
    c.fail(field, `${field} needs a hash key: one of ${HASH_KEYS.join(', ')}`);
    return undefined;
  }
  if (set.length > 1) {
    c.fail(field, `${field} sets ${set.join(' and ')}; exactly one hash key is allowed`);
    return undefined;
  }
  switch (set[0]!) {
    case 'httpHeaderName': {
      const name = text(c, h.httpHeaderName, `${field}.httpHeaderName`);
      if (name !== undefined && !TOKEN.test(name)) c.fail(`${field}.httpHeaderName`, `header name ${JSON.stringify(name)} contains characters not allowed in an HTTP header name`);
      else if (name !== undefined) return { type: 'header', httpHeaderName: name };
      return undefined;
    }
    case 'httpQueryParameterName': {
      const name = text(c, h.httpQueryParameterName, `${field}.httpQueryParameterName`);
      return name !== undefined ? { type: 'queryParameter', httpQueryParameterName: name } : undefined;
    }
    case 'useSourceIp':
      return bool(c, h.useSourceIp, `${field}.useSourceIp`) ? { type: 'sourceIp' } : undefined;
    case 'httpCookie': {
      const cookie = cookieSettings(c, h.httpCookie, `${field}.httpCookie`);
      return cookie ? { type: 'cookie', httpCookie: cookie } : undefined;
    }
  }
}

function cookieSettings(c: Checker, v: unknown, field: string): HttpCookie | undefined {
  const k = obj(c, v, field, ['name', 'path', 'ttl'], { attributes: 'cookie attributes are not implemented' });
  if (!k) return undefined;
  required(c, k.name, `${field}.name`, 'the cookie name');
  const name = text(c, k.name, `${field}.name`);
  if (name !== undefined && !TOKEN.test(name)) c.fail(`${field}.name`, `cookie name ${JSON.stringify(name)} contains characters not allowed in a cookie name`);
  const path = c.string(k.path, `${field}.path`);
  const ttlMs = duration(c, k.ttl, `${field}.ttl`, { allowZero: true });
  if (name === undefined || !TOKEN.test(name)) return undefined;
  return { name, ...(path !== undefined ? { path } : {}), ...(ttlMs !== undefined ? { ttlMs } : {}) };
}

function locality(c: Checker, w: Warnings, v: unknown, field: string, hasOutlier: boolean): LocalityLbSetting | undefined {
  const l = obj(c, v, field, ['distribute', 'failover', 'enabled'], { failoverPriority: 'failover by label priority is not implemented; use failover' });
  if (!l) return undefined;
  const enabled = bool(c, l.enabled, `${field}.enabled`);
  const distribute = items(c, l.distribute, `${field}.distribute`, (item, f) => {
    const d = obj(c, item, f, ['from', 'to']);
    if (!d) return undefined;
    required(c, d.from, `${f}.from`, 'a locality such as "region/zone/*"');
    const from = c.string(d.from, `${f}.from`);
    const to: Record<string, number> = {};
    if (!required(c, d.to, `${f}.to`, 'a mapping of locality to weight')) return undefined;
    if (!isMapping(d.to)) {
      c.fail(`${f}.to`, `${f}.to must be a mapping of locality to weight`);
      return undefined;
    }
    let sum = 0;
    for (const [loc, weight] of Object.entries(d.to)) {
      const n = c.integer(weight, sub(`${f}.to`, loc), 1, 100);
      if (n !== undefined) {
        to[loc] = n;
        sum += n;
      }
    }
    if (Object.keys(to).length === Object.keys(d.to).length && sum !== 100) c.fail(`${f}.to`, `locality weights sum to ${sum}; they must sum to 100`);
    checkLocalities(c, Object.keys(to).map((loc) => ({ loc, field: sub(`${f}.to`, loc) })));
    return from === undefined ? undefined : { from, to };
  });
  checkLocalities(c, distribute.map((d, i) => ({ loc: d.from, field: `${field}.distribute[${i}].from` })));
  const failover = items(c, l.failover, `${field}.failover`, (item, f) => {
    const d = obj(c, item, f, ['from', 'to']);
    if (!d) return undefined;
    required(c, d.from, `${f}.from`, 'a region');
    required(c, d.to, `${f}.to`, 'a region');
    const from = c.string(d.from, `${f}.from`);
    const to = c.string(d.to, `${f}.to`);
    if (from === undefined || to === undefined) return undefined;
    if (from === to) c.fail(f, `failover from ${JSON.stringify(from)} to itself; from and to must be different regions`);
    for (const [k, r] of [['from', from], ['to', to]] as const) {
      if (r.includes('/')) c.fail(`${f}.${k}`, `${JSON.stringify(r)} is not a region; failover is between regions (no "/")`);
      else if (r.includes('*')) c.fail(`${f}.${k}`, `${JSON.stringify(r)} contains "*"; failover regions are named exactly`);
      else if (r === '') c.fail(`${f}.${k}`, `${f}.${k} is empty`);
    }
    return { from, to };
  });
  if (distribute.length > 0 && failover.length > 0) c.fail(field, `${field} sets both distribute and failover; choose one`);
  if (failover.length > 0 && !hasOutlier) {
    w.add(`${field}.failover`, 'failover without outlierDetection in the same policy: unhealthy endpoints are never detected, so traffic does not fail over');
  }
  return { distribute, failover, ...(enabled !== undefined ? { enabled } : {}) };
}

/** Istio's validateLocalities: "*" once and last; no empty part; no overlap between entries. */
function checkLocalities(c: Checker, list: readonly { loc: string; field: string }[]): void {
  const seen: string[][] = [];
  for (const { loc, field } of list) {
    const stars = loc.split('*').length - 1;
    if (stars > 1 || (stars === 1 && !loc.endsWith('*'))) {
      c.fail(field, `locality ${JSON.stringify(loc)}: "*" may appear once, at the end`);
      continue;
    }
    const parts = loc.split('/');
    if (parts.length > 3 || parts.some((p) => p === '')) {
      c.fail(field, `locality ${JSON.stringify(loc)} is malformed; expected region, region/zone or region/zone/subzone, possibly ending in "*"`);
      continue;
    }
    const clash = seen.find((s) => covers(s, parts) || covers(parts, s));
    if (clash) c.fail(field, `locality ${JSON.stringify(loc)} overlaps ${JSON.stringify(clash.join('/'))}`);
    else seen.push(parts);
  }
}

/** Whether locality a (a prefix, possibly ending in "*") includes every locality b names. */
function covers(a: readonly string[], b: readonly string[]): boolean {
  for (let i = 0; i < a.length; i++) {
    if (a[i] === '*') return true;
    if (i >= b.length || a[i] !== b[i]) return false;
  }
  return a.length <= b.length;
}

function pool(c: Checker, v: unknown, field: string): ConnectionPool | undefined {
  const p = obj(c, v, field, ['tcp', 'http']);
  if (!p) return undefined;
  if (absent(p.tcp) && absent(p.http)) c.fail(field, `${field} is empty; give tcp or http settings`);
  let tcp: TcpPoolSettings | undefined;
  const t = obj(c, p.tcp, `${field}.tcp`, ['maxConnections', 'connectTimeout', 'tcpKeepalive', 'maxConnectionDuration', 'idleTimeout']);
  if (t) {
    const f = `${field}.tcp`;
    const ka = obj(c, t.tcpKeepalive, `${f}.tcpKeepalive`, ['probes', 'time', 'interval']);
    tcp = defined({
      maxConnections: count(c, t.maxConnections, `${f}.maxConnections`),
      connectTimeoutMs: duration(c, t.connectTimeout, `${f}.connectTimeout`),
      tcpKeepalive: ka
        ? defined({
          probes: c.integer(ka.probes, `${f}.tcpKeepalive.probes`, 0, UINT32_MAX),
          timeMs: duration(c, ka.time, `${f}.tcpKeepalive.time`),
          intervalMs: duration(c, ka.interval, `${f}.tcpKeepalive.interval`),
        })
        : undefined,
      maxConnectionDurationMs: duration(c, t.maxConnectionDuration, `${f}.maxConnectionDuration`),
      idleTimeoutMs: duration(c, t.idleTimeout, `${f}.idleTimeout`),
    });
  }
  let http: HttpPoolSettings | undefined;
  const h = obj(c, p.http, `${field}.http`, [
    'http1MaxPendingRequests', 'http2MaxRequests', 'maxRequestsPerConnection', 'maxRetries', 'idleTimeout', 'h2UpgradePolicy', 'useClientProtocol', 'maxConcurrentStreams',
  ]);
  if (h) {
    const f = `${field}.http`;
    const h2UpgradePolicy = c.oneOf(h.h2UpgradePolicy, `${f}.h2UpgradePolicy`, ['DEFAULT', 'DO_NOT_UPGRADE', 'UPGRADE'] as const);
    const useClientProtocol = bool(c, h.useClientProtocol, `${f}.useClientProtocol`);
    if (h2UpgradePolicy === 'UPGRADE' && useClientProtocol) c.fail(`${f}.useClientProtocol`, 'useClientProtocol must not be true when h2UpgradePolicy is UPGRADE');
    http = defined({
      http1MaxPendingRequests: count(c, h.http1MaxPendingRequests, `${f}.http1MaxPendingRequests`),
      http2MaxRequests: count(c, h.http2MaxRequests, `${f}.http2MaxRequests`),
      maxRequestsPerConnection: count(c, h.maxRequestsPerConnection, `${f}.maxRequestsPerConnection`),
      maxRetries: count(c, h.maxRetries, `${f}.maxRetries`),
      idleTimeoutMs: duration(c, h.idleTimeout, `${f}.idleTimeout`),
      h2UpgradePolicy,
      useClientProtocol,
      maxConcurrentStreams: count(c, h.maxConcurrentStreams, `${f}.maxConcurrentStreams`),
    });
  }
  return { ...(tcp ? { tcp } : {}), ...(http ? { http } : {}) };
}

function outlier(c: Checker, v: unknown, field: string): OutlierDetection | undefined {
  const o = obj(c, v, field, [
    'consecutive5xxErrors', 'consecutiveGatewayErrors', 'interval', 'baseEjectionTime', 'maxEjectionPercent', 'minHealthPercent',
    'splitExternalLocalOriginErrors', 'consecutiveLocalOriginFailures',
  ], { consecutiveErrors: 'deprecated in Istio; use consecutive5xxErrors or consecutiveGatewayErrors' });
  if (!o) return undefined;
  const split = bool(c, o.splitExternalLocalOriginErrors, `${field}.splitExternalLocalOriginErrors`);
  const localOrigin = c.integer(o.consecutiveLocalOriginFailures, `${field}.consecutiveLocalOriginFailures`, 0, UINT32_MAX);
  if (!split && localOrigin !== undefined && localOrigin > 0) {
    c.fail(`${field}.consecutiveLocalOriginFailures`, 'consecutiveLocalOriginFailures needs splitExternalLocalOriginErrors: true');
  }
  return defined({
    consecutive5xxErrors: c.integer(o.consecutive5xxErrors, `${field}.consecutive5xxErrors`, 0, UINT32_MAX),
    consecutiveGatewayErrors: c.integer(o.consecutiveGatewayErrors, `${field}.consecutiveGatewayErrors`, 0, UINT32_MAX),
    intervalMs: duration(c, o.interval, `${field}.interval`),
    baseEjectionTimeMs: duration(c, o.baseEjectionTime, `${field}.baseEjectionTime`),
    maxEjectionPercent: c.integer(o.maxEjectionPercent, `${field}.maxEjectionPercent`, 0, 100),
    minHealthPercent: c.integer(o.minHealthPercent, `${field}.minHealthPercent`, 0, 100),
    splitExternalLocalOriginErrors: split,
    consecutiveLocalOriginFailures: localOrigin,
  });
}

function clientTls(c: Checker, v: unknown, field: string): ClientTls | undefined {
  const t = obj(c, v, field, ['mode', 'clientCertificate', 'privateKey', 'caCertificates', 'credentialName', 'subjectAltNames', 'sni', 'insecureSkipVerify', 'caCrl']);
  if (!t) return undefined;
  const mode = c.oneOf(t.mode, `${field}.mode`, TLS_MODES) ?? 'DISABLE';
  const str = (k: string): string | undefined => c.string(t[k], `${field}.${k}`);
  const tls = {
    mode,
    clientCertificate: str('clientCertificate'),
    privateKey: str('privateKey'),
    caCertificates: str('caCertificates'),
    credentialName: str('credentialName'),
    subjectAltNames: (c.strings(t.subjectAltNames, `${field}.subjectAltNames`) ?? []).map((s) => s.value),
    sni: str('sni'),
    insecureSkipVerify: bool(c, t.insecureSkipVerify, `${field}.insecureSkipVerify`),
    caCrl: str('caCrl'),
  };
  // Istio's agent.ValidateTLS.
  if (tls.insecureSkipVerify) {
    if (mode === 'SIMPLE' && (tls.caCertificates || tls.credentialName || !absent(t.subjectAltNames))) {
      c.fail(field, 'insecureSkipVerify cannot be combined with caCertificates, credentialName or subjectAltNames');
    }
    if (mode === 'MUTUAL' && (tls.caCertificates || !absent(t.subjectAltNames))) c.fail(field, 'insecureSkipVerify cannot be combined with caCertificates or subjectAltNames');
  }
  if ((mode === 'SIMPLE' || mode === 'MUTUAL') && tls.credentialName) {
    if (tls.clientCertificate || tls.caCertificates || tls.privateKey || tls.caCrl) {
      c.fail(`${field}.credentialName`, 'with credentialName, clientCertificate, privateKey, caCertificates and caCrl must not be set');
    }
  } else if (mode === 'MUTUAL') {
    if (!tls.clientCertificate) c.fail(`${field}.clientCertificate`, 'mode MUTUAL needs clientCertificate (or credentialName)');
    if (!tls.privateKey) c.fail(`${field}.privateKey`, 'mode MUTUAL needs privateKey (or credentialName)');
  }
  // What Isthmus's sidecars cannot do is refused, never served as something weaker.
  if ((mode === 'SIMPLE' || mode === 'MUTUAL') && tls.credentialName) {
    c.fail(`${field}.credentialName`, 'credentialName (a Kubernetes Secret the proxy reads) is not supported: give clientCertificate, privateKey and caCertificates as files on the proxy\'s host');
  }
  if ((mode === 'SIMPLE' || mode === 'MUTUAL') && !tls.caCertificates && !tls.credentialName && !tls.insecureSkipVerify) {
    c.fail(`${field}.caCertificates`, `mode ${mode} needs caCertificates (a PEM file on the proxy's host) to verify the server, or insecureSkipVerify: true`);
  }
  if (mode === 'ISTIO_MUTUAL' && (tls.clientCertificate || tls.privateKey || tls.caCertificates || tls.credentialName)) {
    c.fail(field, 'mode ISTIO_MUTUAL uses the workload certificate from the agent: clientCertificate, privateKey, caCertificates and credentialName must not be set');
  }
  return defined(tls) as ClientTls;
}

/** Drops undefined values, so absent settings stay absent in the model. */
function defined<T extends Record<string, unknown>>(o: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as { [K in keyof T]: Exclude<T[K], undefined> };
}
