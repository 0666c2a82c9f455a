// VirtualService http routes in RDS: the routes of one virtual host, in rule order (first
// match wins, as Istio), before the host's default route.
//
// Envoy must never NACK what Isthmus sends: a rule that cannot be expressed is refused here
// as a whole (a RouteProblem, shown in /debug/registryz) and its host keeps its default route.
import type { HeaderMatcher, Route, RouteMatch, envoy_type_matcher_v3_StringMatcher as StringMatcher } from '../../generated/envoy.ts';
import type { ModelSnapshot } from '../../model/snapshot.ts';
import type {
  Destination,
  DestinationRule,
  HeaderMatch,
  HeaderOperations,
  Headers,
  HttpMatch,
  HttpRoute,
  StringMatch,
  VirtualService,
} from '../../model/rules/types.ts';
import type { Service } from '../../model/types.ts';
import { canonicalHost, type HostIndex } from '../../model/rules/hosts.ts';
import { toAny } from '../proto.ts';
import { FAULT_FILTER, FAULT_TYPE } from './common.ts';
import { effectivePolicy, hashPolicy, subsetCluster, subsetsOf } from './destination-rule.ts';
import { defaultHttpPort, interfaceCluster, outboundCluster } from './names.ts';

/** A rule that cannot be sent to Envoy as written. */
export class Refusal extends Error {}

/** What route translation needs to know about the model, computed once per route build. */
export interface RuleContext {
  readonly model: ModelSnapshot;
  readonly index: HostIndex;
  readonly rules: ReadonlyMap<string, DestinationRule>;
  /** The sourceLabels selectors (selectorKey) the proxies of this table match; undefined: the table shared by every proxy. */
  readonly sources?: ReadonlySet<string>;
}

/** A destination resolved to its cluster, with the policy that applies to it. */
export interface Target {
  readonly cluster: string;
  readonly hash?: Record<string, unknown>[];
}

/** The cluster a destination names, as seen from a virtual host (or listener) on `vhostPort`; throws Refusal. */
export function resolveDestination(ctx: RuleContext, d: Destination, namespace: string, vhostPort: number): Target {
  const host = canonicalHost(d.host, namespace, ctx.index);
  const iface = ctx.model.interfaces.get(host);
  const svc: Service | undefined = iface ? ctx.model.services.get(iface.service) : ctx.model.lookup(host);
  if (!svc) {
    // Unknown (yet): validation warned; the route answers 503 until the host appears.
    return { cluster: d.subset ? subsetCluster(host, d.port ?? vhostPort, d.subset) : outboundCluster(host, d.port ?? vhostPort) };
  }
  const port =
    d.port !== undefined
      ? svc.ports.find((p) => p.number === d.port)
      : svc.ports.length === 1
        ? svc.ports[0]
        : (svc.ports.find((p) => p.number === (iface?.iface.port ?? vhostPort)) ?? defaultHttpPort(svc));
  if (!port) throw new Refusal(`destination ${d.host}: service ${svc.hostname} has no port ${d.port ?? vhostPort}`);
  if (iface && iface.iface.port !== undefined && iface.iface.port !== port.number) throw new Refusal(`destination ${d.host}: interface is served on port ${iface.iface.port}, not ${port.number}`);
  const drHost = iface ? host : svc.hostname;
  const dr = ctx.rules.get(drHost);
  const subset = d.subset ? subsetsOf(dr, d.subset) : undefined;
  if (d.subset && !subset) throw new Refusal(`destination ${d.host}: subset ${d.subset} is defined by no DestinationRule for ${drHost}`);
  const cluster = d.subset ? subsetCluster(drHost, port.number, d.subset) : iface ? interfaceCluster(svc.hostname, port.number, host) : outboundCluster(svc.hostname, port.number);
  const hash = hashPolicy(effectivePolicy(dr, port.number, subset));
  return hash ? { cluster, hash } : { cluster };
}

function stringMatcher(m: StringMatch, ignoreCase = false): StringMatcher {
  // Envoy's StringMatcher wants a non-empty prefix or regex.
  if (m.value === '' && m.type !== 'exact') throw new Refusal(`an empty ${m.type} match cannot be sent to Envoy; use exact "" or leave the match out`);
  const base = m.type === 'exact' ? { exact: m.value } : m.type === 'prefix' ? { prefix: m.value } : { safe_regex: { regex: m.value } };
  return ignoreCase && m.type !== 'regex' ? { ...base, ignore_case: true } : base;
}

function headerMatcher(name: string, m: HeaderMatch, invert: boolean): HeaderMatcher {
  // Istio's empty prefix means "present".
  const present = m.type === 'present' || (m.type === 'prefix' && m.value === '');
  const base = present ? { name, present_match: true } : { name, string_match: stringMatcher(m as StringMatch) };
  return invert ? { ...base, invert_match: true } : base;
}

function routeMatch(m: HttpMatch): RouteMatch {
  const out: Record<string, unknown> = {};
  const uri = m.uri;
  if (!uri) out.prefix = '/';
  else if (uri.type === 'exact') out.path = uri.value;
  else if (uri.type === 'prefix') out.prefix = uri.value;
  else if (uri.value === '') throw new Refusal('uri regex "" cannot be sent to Envoy; leave the uri match out');
  else out.safe_regex = { regex: m.ignoreUriCase ? `(?i)${uri.value}` : uri.value };
  if (m.ignoreUriCase && uri && uri.type !== 'regex') out.case_sensitive = { value: false };
  const headers: HeaderMatcher[] = [];
  for (const [name, hm] of Object.entries(m.headers)) headers.push(headerMatcher(name.toLowerCase(), hm, false));
  for (const [name, hm] of Object.entries(m.withoutHeaders)) headers.push(headerMatcher(name.toLowerCase(), hm, true));
  if (m.method) headers.push(headerMatcher(':method', m.method, false));
  if (m.authority) headers.push(headerMatcher(':authority', m.authority, false));
  if (headers.length) out.headers = headers;
  const qp = Object.entries(m.queryParams);
  if (qp.length) out.query_parameters = qp.map(([name, sm]) => ({ name, string_match: stringMatcher(sm) }));
  return out;
}

/** Envoy refuses to add or remove pseudo-headers and Host: refuse such a rule before sending it. */
function checkHeaderName(name: string, field: string): void {
  const n = name.toLowerCase();
  if (n.startsWith(':') || n === 'host') throw new Refusal(`${field}: header ${JSON.stringify(name)} cannot be modified by Envoy (pseudo-header or Host); use rewrite.authority`);
}

function headerOps(ops: HeaderOperations | undefined, dir: 'request' | 'response', field: string): Record<string, unknown> {
  if (!ops) return {};
  const add: Record<string, unknown>[] = [];
  for (const [key, value] of Object.entries(ops.set)) {
    checkHeaderName(key, `${field}.set`);
    add.push({ header: { key, value }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' });
  }
  for (const [key, value] of Object.entries(ops.add)) {
    checkHeaderName(key, `${field}.add`);
    add.push({ header: { key, value }, append_action: 'APPEND_IF_EXISTS_OR_ADD' });
  }
  for (const key of ops.remove) checkHeaderName(key, `${field}.remove`);
  const out: Record<string, unknown> = {};
  if (add.length) out[`${dir}_headers_to_add`] = add;
  if (ops.remove.length) out[`${dir}_headers_to_remove`] = [...ops.remove];
  return out;
}

function headersOf(h: Headers | undefined, field: string): Record<string, unknown> {
  return { ...headerOps(h?.request, 'request', `${field}.request`), ...headerOps(h?.response, 'response', `${field}.response`) };
}

/** A percentage 0..100 (fractional) as Envoy's FractionalPercent per million. */
function percent(p: number): Record<string, unknown> {
  return { numerator: Math.round(p * 10_000), denominator: 'MILLION' };
}

const ms = (n: number): Record<string, number> => ({ seconds: Math.floor(n / 1000), nanos: (n % 1000) * 1_000_000 });

const REDIRECT_CODES: Readonly<Record<number, string>> = {
  301: 'MOVED_PERMANENTLY',
  302: 'FOUND',
  303: 'SEE_OTHER',
  307: 'TEMPORARY_REDIRECT',
  308: 'PERMANENT_REDIRECT',
};

/** Everything of an Envoy route but its match: the action, and per-route filter config. */
function routeAction(ctx: RuleContext, vs: VirtualService, r: HttpRoute, i: number, port: number, regexMatch: boolean): Record<string, unknown> {
  const field = `spec.http[${i}]`;
  const out: Record<string, unknown> = {};
  if (r.redirect) {
    const rd = r.redirect;
    const code = REDIRECT_CODES[rd.redirectCode];
    if (!code) throw new Refusal(`${field}.redirect.redirectCode ${rd.redirectCode} is not one Envoy can send`);
    out.redirect = {
      ...(rd.uri !== undefined ? { path_redirect: rd.uri } : {}),
      ...(rd.authority !== undefined ? { host_redirect: rd.authority } : {}),
      ...(rd.scheme !== undefined ? { scheme_redirect: rd.scheme } : {}),
      ...(rd.port !== undefined ? { port_redirect: rd.port } : {}),
      response_code: code,
    };
  } else {
    const targets = r.route.map((rd) => ({ rd, t: resolveDestination(ctx, rd.destination, vs.namespace, port) }));
    const action: Record<string, unknown> = {};
    const live = targets.filter((x) => x.rd.weight > 0);
    if (live.length === 1 && !live[0]!.rd.headers) {
      action.cluster = live[0]!.t.cluster;
    } else {
      action.weighted_clusters = {
        clusters: live.map(({ rd, t }, j) => ({ name: t.cluster, weight: { value: rd.weight }, ...headersOf(rd.headers, `${field}.route[${j}].headers`) })),
      };
    }
    const hash = targets[0]?.t.hash;
    if (hash) action.hash_policy = hash;
    action.timeout = ms(r.timeoutMs ?? 0);
    if (r.rewrite?.uri !== undefined) {
      if (regexMatch) action.regex_rewrite = { pattern: { regex: '^/.*$' }, substitution: r.rewrite.uri };
      else action.prefix_rewrite = r.rewrite.uri;
    }
    if (r.rewrite?.authority !== undefined) action.host_rewrite_literal = r.rewrite.authority;
    if (r.retries) {
      const rt = r.retries;
      if (rt.attempts > 0) {
        const on = rt.retryOn ?? ['connect-failure', 'refused-stream', 'unavailable', 'cancelled', '5xx'];
        const codes = on.filter((x) => /^\d+$/.test(x)).map(Number);
        const policies = on.filter((x) => !/^\d+$/.test(x));
        if (codes.length && !policies.includes('retriable-status-codes')) policies.push('retriable-status-codes');
        action.retry_policy = {
          retry_on: policies.join(','),
          num_retries: { value: rt.attempts },
          ...(rt.perTryTimeoutMs !== undefined ? { per_try_timeout: ms(rt.perTryTimeoutMs) } : {}),
          ...(codes.length ? { retriable_status_codes: codes } : {}),
        };
      }
    }
    if (r.mirror && r.mirror.percentage > 0) {
      const m = resolveDestination(ctx, r.mirror.destination, vs.namespace, port);
      action.request_mirror_policies = [{ cluster: m.cluster, runtime_fraction: { default_value: percent(r.mirror.percentage) } }];
    }
    out.route = action;
  }
  Object.assign(out, headersOf(r.headers, `${field}.headers`));
  if (r.fault && (r.fault.delay || r.fault.abort)) {
    if (r.redirect) throw new Refusal(`${field}.fault: a redirect route cannot inject faults`);
    const f: Record<string, unknown> = {};
    if (r.fault.delay) f.delay = { fixed_delay: ms(r.fault.delay.fixedDelayMs), percentage: percent(r.fault.delay.percentage) };
    const a = r.fault.abort;
    if (a) f.abort = a.type === 'http' ? { http_status: a.httpStatus, percentage: percent(a.percentage) } : { grpc_status: a.grpcCode, percentage: percent(a.percentage) };
    if (a?.type === 'http' && (a.httpStatus < 200 || a.httpStatus >= 600)) throw new Refusal(`${field}.fault.abort.httpStatus ${a.httpStatus}: Envoy aborts with 200-599 only`);
    out.typed_per_filter_config = { [FAULT_FILTER]: toAny(FAULT_TYPE, f) };
  }
  return out;
}

/** Envoy routes of one VirtualService for a virtual host on `port` (routes at `skip` indexes left out); throws Refusal. */
export function virtualServiceRoutes(ctx: RuleContext, vs: VirtualService, port: number, notes: string[], skip?: ReadonlySet<number>): Route[] {
  const out: Record<string, unknown>[] = [];
  vs.spec.http.forEach((r, i) => {
    if (skip?.has(i)) return;
    const matches = r.match.length ? r.match : undefined;
    const usable = (matches ?? []).filter((m, j) => {
      if (m.port !== undefined && m.port !== port) return false;
      if (Object.keys(m.sourceLabels).length) {
        // Built per proxy labels (see sourceSelectors); the shared table leaves such matches out.
        if (!ctx.sources) notes.push(`spec.http[${i}].match[${j}].sourceLabels: applies only to proxies whose node metadata LABELS match`);
        return !!ctx.sources && ctx.sources.has(selectorKey(m.sourceLabels));
      }
      return !m.gateways.length || m.gateways.includes('mesh');
    });
    if (matches && !usable.length) return;
    for (const m of usable.length ? usable : [undefined]) {
      const match = m ? routeMatch(m) : { prefix: '/' };
      const name = [r.name, m?.name].filter(Boolean).join('.');
      out.push({ ...(name ? { name } : {}), match, ...routeAction(ctx, vs, r, i, port, m?.uri?.type === 'regex') });
    }
  });
  return out;
}

/** The VirtualService (for the mesh) that routes each canonical host, first one kept. */
export function virtualServicesByHost(model: ModelSnapshot, index: HostIndex): Map<string, VirtualService> {
  const out = new Map<string, VirtualService>();
  for (const vs of model.virtualServices) {
    if (!vs.appliesToMesh) continue;
    for (const h of vs.spec.hosts) {
      const host = canonicalHost(h, vs.namespace, index);
      const iface = model.interfaces.get(host);
      const key = iface ? host : (model.lookup(host)?.hostname ?? host);
      if (!out.has(key)) out.set(key, vs);
    }
  }
  return out;
}

/** Every distinct sourceLabels selector of the mesh's http rules, in a stable order. */
export function sourceSelectors(model: ModelSnapshot): Readonly<Record<string, string>>[] {
  const seen = new Map<string, Readonly<Record<string, string>>>();
  for (const vs of model.virtualServices) {
    if (!vs.appliesToMesh) continue;
    for (const r of vs.spec.http) for (const m of r.match) if (Object.keys(m.sourceLabels).length) seen.set(selectorKey(m.sourceLabels), m.sourceLabels);
  }
  return [...seen.keys()].sort().map((k) => seen.get(k)!);
}

/** A sourceLabels selector as text: equal selectors, equal keys. */
export function selectorKey(selector: Readonly<Record<string, string>>): string {
  return JSON.stringify(Object.entries(selector).sort());
}

/**
 * A proxy's labels: node metadata ISTHMUS_LABELS ("k=v,k=v", as `isthmus bootstrap` writes
 * them) and LABELS (a map, as Istio's sidecars send them). They shape config only where a
 * rule's sourceLabels selects them.
 */
export function proxyLabels(metadata: Readonly<Record<string, unknown>>): Record<string, string> {
  const out: Record<string, string> = {};
  const flat = metadata.ISTHMUS_LABELS;
  if (typeof flat === 'string') {
    for (const pair of flat.split(',')) {
      const i = pair.indexOf('=');
      if (i > 0) out[pair.slice(0, i).trim()] = pair.slice(i + 1).trim();
    }
  }
  const raw = metadata.LABELS;
  if (raw && typeof raw === 'object') for (const [k, v] of Object.entries(raw)) if (typeof v === 'string') out[k] = v;
  return out;
}
