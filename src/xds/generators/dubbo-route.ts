// Dubbo ports through Envoy's Dubbo filter (dubbo_proxy, Hessian2): each call is decoded,
// so calls on one consumer connection are balanced per request and routed by interface,
// method and attachments. Rules are a VirtualService's `http` rules on the interface's name,
// read as for gRPC: `uri` `/<interface>/<method>` (exact, prefix or regex), headers are the
// call's attachments. What the filter cannot do is refused by name. Which ports are Dubbo's
// (framework providers, Hessian2) the registry decides: see portProtocol in soa/mapping.ts.
import type {
  envoy_config_listener_v3_Filter as NetworkFilter,
  envoy_extensions_filters_network_dubbo_proxy_v3_Route as DubboRoute,
  envoy_extensions_filters_network_dubbo_proxy_v3_RouteAction as DubboRouteAction,
  envoy_extensions_filters_network_dubbo_proxy_v3_RouteConfiguration as DubboRouteConfiguration,
  envoy_extensions_filters_network_dubbo_proxy_v3_RouteMatch as DubboRouteMatch,
  MultipleRouteConfiguration,
} from '../../generated/envoy.ts';
import { ADS_SOURCE } from './common.ts';
import type { ModelSnapshot } from '../../model/snapshot.ts';
import type { HeaderMatch, HttpMatch, HttpRoute, StringMatch, VirtualService } from '../../model/rules/types.ts';
import type { RpcInterface, Service } from '../../model/types.ts';
import { hostIndexOf } from '../../model/rules/hosts.ts';
import { toAny } from '../proto.ts';
import { destinationRulesByHost } from './destination-rule.ts';
import { Refusal, resolveDestination, type RuleContext, virtualServicesByHost } from './http-route.ts';
import { interfaceCluster, outboundCluster } from './names.ts';
import { tcpProxyFor, tcpRouterOf } from './tcp-route.ts';
import type { Refused } from './proxyless.ts';

type Problem = { name: string; reason: string };

/** The network filter of an opaque (non-HTTP) name:port: Dubbo's filter for Dubbo ports, else tcp_proxy. */
export type OpaqueFilterOf = (host: string, port: number, cluster: string, problems: Problem[]) => NetworkFilter;

/**
 * `routes` receives the Dubbo route tables by name (the listener names them, `drds`): served
 * as their own resources, a rule change updates them without re-creating the listener.
 */
export function opaqueFilters(model: ModelSnapshot, routes?: Map<string, MultipleRouteConfiguration>): OpaqueFilterOf {
  const index = hostIndexOf(model);
  const byHost = virtualServicesByHost(model, index);
  const ctx: RuleContext = { model, index, rules: destinationRulesByHost(model, index) };
  const tcp = tcpRouterOf(ctx, byHost);
  return (host, port, cluster, problems) => {
    const tcpRoute = tcp(host, port, problems);
    const iface = model.interfaces.get(host);
    const svc = iface ? model.services.get(iface.service) : model.services.get(host);
    const sp = svc?.ports.find((p) => p.number === port);
    // A tcp route written for the name is what its owner asked for: it keeps the port opaque.
    if (sp?.protocol === 'DUBBO' && tcpRoute) {
      const vs = byHost.get(host);
      if (vs?.spec.http.length) problems.push({ name: `VirtualService ${vs.namespace}/${vs.name}`, reason: `${host}:${port} (Dubbo): spec.http not applied: its tcp rule keeps the port opaque TCP` });
    }
    if (!svc || sp?.protocol !== 'DUBBO' || tcpRoute) return tcpProxyFor(cluster, tcpRoute ?? cluster);
    try {
      return dubboProxy(ctx, byHost, svc, iface?.iface, port, cluster, problems, routes);
    } catch (err) {
      // A filter config that cannot be encoded must not take the proxy's whole listener set down.
      problems.push({ name: `${host}:${port}`, reason: `Dubbo port served as opaque TCP: its Dubbo filter could not be built: ${err instanceof Error ? err.message : String(err)}` });
      return tcpProxyFor(cluster, cluster);
    }
  };
}

/** Names of every Dubbo route table the model can give a listener: its Dubbo ports' service and interface clusters. */
export function dubboRouteNames(model: ModelSnapshot): string[] {
  const out: string[] = [];
  for (const svc of model.services.values()) {
    for (const p of svc.ports) {
      if (p.protocol !== 'DUBBO') continue;
      out.push(outboundCluster(svc.hostname, p.number));
      for (const i of svc.interfaces) if (i.port === undefined || i.port === p.number) out.push(interfaceCluster(svc.hostname, p.number, i.hostname));
    }
  }
  return out;
}

function routeTables(ctx: RuleContext, byHost: ReadonlyMap<string, VirtualService>, svc: Service, only: RpcInterface | undefined, port: number, cluster: string, problems: Problem[]): MultipleRouteConfiguration {
  const ifaces: RpcInterface[] = only ? [only] : svc.interfaces.filter((i) => i.port === undefined || i.port === port);
  const fallback = only ? cluster : outboundCluster(svc.hostname, port);
  // Rules written for the name itself (an application, or an interface several applications
  // share): a uri naming an interface applies to that interface's calls, one that names none
  // to every call. An interface the model does not list for the name gets a table of its own.
  const own = only ? undefined : byHost.get(svc.hostname);
  const named = new Set(ifaces.map((i) => i.name));
  const extra = [...new Set((own?.spec.http ?? []).flatMap((r) => r.match.map((m) => (m.uri ? uriInterface(m.uri) : undefined))))].filter((n): n is string => !!n && !named.has(n));
  const tables = [
    ...ifaces.map((i) => ({ iface: i, cluster: interfaceCluster(svc.hostname, port, i.hostname), rules: [byHost.get(i.hostname), own] })),
    ...extra.map((name) => ({ iface: { name, methods: [], hostname: `${svc.hostname}/${name}` } as RpcInterface, cluster: fallback, rules: [own] })),
  ];
  // A rule is read once per table; what it cannot do is said once.
  const found: Problem[] = [];
  const where = `${only?.hostname ?? svc.hostname}:${port}`;
  const routeConfig: DubboRouteConfiguration[] = tables.map(({ iface: i, cluster: c, rules }) => ({
    name: i.hostname,
    interface: i.name,
    ...(i.version ? { version: i.version } : {}),
    ...(i.group ? { group: i.group } : {}),
    routes: [...rules.flatMap((vs) => ruleRoutes(ctx, vs, i, port, where, found)), anyMethod(c)],
  }));
  // Interfaces the model does not know (yet) still reach the name's own cluster.
  routeConfig.push({ name: `${svc.hostname}:*`, interface: '*', routes: [...ruleRoutes(ctx, own, undefined, port, where, found), anyMethod(fallback)] });
  const seen = new Set<string>();
  for (const p of found) if (!seen.has(`${p.name}\n${p.reason}`) && seen.add(`${p.name}\n${p.reason}`)) problems.push(p);
  return { name: cluster, route_config: routeConfig };
}

/** The interface a `uri` names as `/<interface>/…`, if it names one. */
function uriInterface(uri: StringMatch): string | undefined {
  if (uri.type === 'regex') return /^\/((?:[\w$-]|\\\.)+)\//.exec(uri.value)?.[1]?.replace(/\\\./g, '.');
  return /^\/([^/]+)\//.exec(uri.value)?.[1];
}

function dubboProxy(ctx: RuleContext, byHost: ReadonlyMap<string, VirtualService>, svc: Service, only: RpcInterface | undefined, port: number, cluster: string, problems: Problem[], routes?: Map<string, MultipleRouteConfiguration>): NetworkFilter {
  const tables = routeTables(ctx, byHost, svc, only, port, cluster, problems);
  routes?.set(cluster, tables);
  return {
    name: 'envoy.filters.network.dubbo_proxy',
    typed_config: toAny('envoy.extensions.filters.network.dubbo_proxy.v3.DubboProxy', {
      stat_prefix: cluster,
      protocol_type: 'Dubbo',
      serialization_type: 'Hessian2',
      // With a sink the tables are their own resources (DRDS); without, inline.
      ...(routes ? { drds: { config_source: ADS_SOURCE, route_config_name: cluster } } : { multiple_route_config: tables }),
      dubbo_filters: [{ name: 'envoy.filters.dubbo.router' }],
    }),
  };
}

function anyMethod(cluster: string): DubboRoute {
  return { match: { method: { name: { safe_regex: { regex: '.*' } } } }, route: { cluster } };
}

/**
 * The http rules of a VirtualService as Dubbo routes of one interface's table (or, with no
 * interface, of the table for every other interface: only matches that name none). A rule
 * the filter cannot apply is refused by name.
 */
function ruleRoutes(ctx: RuleContext, vs: VirtualService | undefined, iface: RpcInterface | undefined, port: number, where: string, problems: Problem[]): DubboRoute[] {
  if (!vs) return [];
  const out: DubboRoute[] = [];
  vs.spec.http.forEach((rule, i) => {
    const field = `spec.http[${i}]`;
    try {
      const action = routeAction(ctx, rule, vs.namespace, port, field);
      const matches: DubboRouteMatch[] = rule.match.length
        ? rule.match.map((m) => routeMatch(m, iface)).filter((m): m is DubboRouteMatch => m !== undefined)
        : [{ method: { name: { safe_regex: { regex: '.*' } } } }];
      for (const match of matches) out.push({ match, route: action });
    } catch (err) {
      if (!(err instanceof Refusal)) throw err;
      problems.push({ name: `VirtualService ${vs.namespace}/${vs.name}`, reason: `${where} (Dubbo): ${field} refused: ${err.message}` });
    }
  });
  return out;
}

const UNSUPPORTED: readonly [keyof HttpRoute, string][] = [
  ['redirect', 'a Dubbo call cannot be redirected'],
  ['rewrite', 'Envoy\'s Dubbo filter does not rewrite calls'],
  ['timeoutMs', 'Envoy\'s Dubbo filter has no per-route timeout (the consumer\'s own timeout applies)'],
  ['retries', 'Envoy\'s Dubbo filter does not retry (Dubbo consumers retry themselves)'],
  ['fault', 'Envoy\'s Dubbo filter does not inject faults'],
  ['mirror', 'Envoy\'s Dubbo filter does not mirror'],
  ['headers', 'Envoy\'s Dubbo filter does not change attachments'],
];

/** What of one http rule Envoy's Dubbo filter cannot apply; the rule is refused if anything is. */
function ruleGaps(rule: HttpRoute, field: string): Refused[] {
  const out: Refused[] = [];
  for (const [k, why] of UNSUPPORTED) if (rule[k] !== undefined) out.push({ field: `${field}.${k === 'timeoutMs' ? 'timeout' : k}`, reason: why });
  if (rule.route.some((d) => d.weight > 0 && d.headers)) out.push({ field: `${field}.route[].headers`, reason: 'Envoy\'s Dubbo filter does not change attachments' });
  rule.match.forEach((m, j) => out.push(...matchGaps(m, `${field}.match[${j}]`)));
  return out;
}

function matchGaps(m: HttpMatch, field: string): Refused[] {
  const out: Refused[] = [];
  if (m.method !== undefined) out.push({ field: `${field}.method`, reason: 'a Dubbo call has no method in the HTTP sense (match the Dubbo method with uri /<interface>/<method>)' });
  if (m.authority !== undefined) out.push({ field: `${field}.authority`, reason: 'a Dubbo call has no authority' });
  if (Object.keys(m.queryParams).length) out.push({ field: `${field}.queryParams`, reason: 'a Dubbo call has no query string' });
  if (Object.keys(m.withoutHeaders).length) out.push({ field: `${field}.withoutHeaders`, reason: 'not implemented by Envoy\'s Dubbo filter' });
  if (Object.keys(m.sourceLabels).length) out.push({ field: `${field}.sourceLabels`, reason: 'not applied on Dubbo ports' });
  if (m.ignoreUriCase) out.push({ field: `${field}.ignoreUriCase`, reason: 'Dubbo method names are case-sensitive' });
  const uri = m.uri;
  if (uri && uri.type !== 'exact' && uriInterface(uri) === undefined && !(uri.type === 'prefix' && (uri.value === '' || uri.value === '/'))) {
    out.push({ field: `${field}.uri`, reason: `on a Dubbo port a uri ${uri.type} is read as a method match after the literal interface path /<interface>/ (or a prefix of /)` });
  }
  return out;
}

/**
 * The settings of a VirtualService's http rules that Envoy's Dubbo filter cannot apply (each
 * such rule is refused on Dubbo ports, and said so at serve time); for `isthmus validate`.
 */
export function refusedOnDubbo(vs: VirtualService): Refused[] {
  return vs.spec.http.flatMap((rule, i) => ruleGaps(rule, `spec.http[${i}]`));
}

function routeAction(ctx: RuleContext, rule: HttpRoute, namespace: string, port: number, field: string): DubboRouteAction {
  const gap = ruleGaps(rule, field)[0];
  if (gap) throw new Refusal(`${gap.field}: ${gap.reason}`);
  const live = rule.route.filter((d) => d.weight > 0);
  const clusters = live.map((d) => ({ name: resolveDestination(ctx, d.destination, namespace, port).cluster, weight: { value: d.weight } }));
  return clusters.length === 1 ? { cluster: clusters[0]!.name } : { weighted_clusters: { clusters } };
}

/** One Istio match (its gaps already refused) as a Dubbo route match; undefined when it cannot match a call of this table. */
function routeMatch(m: HttpMatch, iface: RpcInterface | undefined): DubboRouteMatch | undefined {
  const method = m.uri ? methodOf(m.uri, iface) : { safe_regex: { regex: '.*' } };
  if (method === undefined) return undefined;
  const headers = Object.entries(m.headers).map(([name, h]) => headerMatcher(name, h));
  return { method: { name: method }, ...(headers.length ? { headers } : {}) };
}

/**
 * `uri` as gRPC writes a path, `/<interface>/<method>`, to a matcher of the method name in the
 * table of `iface` (no iface: the table of every interface without one); undefined when the
 * uri names another interface or no call at all.
 */
function methodOf(uri: StringMatch, iface: RpcInterface | undefined): Record<string, unknown> | undefined {
  const named = uriInterface(uri);
  if (named !== undefined) {
    if (named !== iface?.name) return undefined;
    const rest = uri.value.slice(uri.value.indexOf('/', 1) + 1);
    return uri.type === 'exact' ? { exact: rest } : uri.type === 'prefix' ? (rest ? { prefix: rest } : { safe_regex: { regex: '.*' } }) : { safe_regex: { regex: rest } };
  }
  // (matchGaps refused every other prefix or regex)
  return uri.type === 'exact' ? undefined : { safe_regex: { regex: '.*' } };
}

function headerMatcher(name: string, h: HeaderMatch): Record<string, unknown> {
  if (h.type === 'present') return { name, present_match: true };
  const sm = h.type === 'regex' ? { safe_regex: { regex: h.value } } : { [h.type]: h.value };
  return { name, string_match: sm };
}
