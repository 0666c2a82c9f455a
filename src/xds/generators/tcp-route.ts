// VirtualService tcp routes: which cluster(s) an opaque TCP service port forwards to.
// The listener generator asks per (host, port); the answer plugs into tcp_proxy.
import type { envoy_config_listener_v3_Filter as NetworkFilter } from '../../generated/envoy.ts';
import type { ModelSnapshot } from '../../model/snapshot.ts';
import type { VirtualService } from '../../model/rules/types.ts';
import { hostIndexOf } from '../../model/rules/hosts.ts';
import { toAny } from '../proto.ts';
import { destinationRulesByHost } from './destination-rule.ts';
import { Refusal, resolveDestination, type RuleContext, virtualServicesByHost } from './http-route.ts';

export type TcpRoute = { readonly cluster: string } | { readonly weightedClusters: readonly { readonly name: string; readonly weight: number }[] };

/**
 * The tcp route of `host` (a service or interface canonical name) on `port`: the first
 * spec.tcp[] rule of its VirtualService whose match list is empty or names this port.
 * Undefined when no rule applies (use the default cluster). Matches on destinationSubnets or
 * sourceLabels are not applied (never match). A rule that cannot be resolved is skipped and
 * reported in `problems`, if given.
 */
export function tcpRouteFor(model: ModelSnapshot, host: string, port: number, problems?: { name: string; reason: string }[]): TcpRoute | undefined {
  return tcpRouter(model)(host, port, problems);
}

/** tcpRouteFor with the model's indexes built once: for a generator asking for many ports. */
export function tcpRouter(model: ModelSnapshot): (host: string, port: number, problems?: { name: string; reason: string }[]) => TcpRoute | undefined {
  const index = hostIndexOf(model);
  return tcpRouterOf({ model, index, rules: destinationRulesByHost(model, index) }, virtualServicesByHost(model, index));
}

/** tcpRouter over indexes a caller already has. */
export function tcpRouterOf(ctx: RuleContext, byHost: ReadonlyMap<string, VirtualService>): (host: string, port: number, problems?: { name: string; reason: string }[]) => TcpRoute | undefined {
  return (host, port, problems) => routeOf(ctx, byHost.get(host), host, port, problems);
}

function routeOf(ctx: RuleContext, vs: VirtualService | undefined, host: string, port: number, problems?: { name: string; reason: string }[]): TcpRoute | undefined {
  if (!vs || !vs.spec.tcp.length) return undefined;
  for (const r of vs.spec.tcp) {
    const applies = r.match.length === 0 || r.match.some((m) => (m.port === undefined || m.port === port) && !m.destinationSubnets.length && !Object.keys(m.sourceLabels).length && (!m.gateways.length || m.gateways.includes('mesh')));
    if (!applies) continue;
    try {
      const live = r.route.filter((d) => d.weight > 0).map((d) => ({ name: resolveDestination(ctx, d.destination, vs.namespace, port).cluster, weight: d.weight }));
      if (live.length === 1) return { cluster: live[0]!.name };
      return { weightedClusters: live };
    } catch (err) {
      if (!(err instanceof Refusal)) throw err;
      problems?.push({ name: `VirtualService ${vs.namespace}/${vs.name}`, reason: `tcp route for ${host}:${port} refused: ${err.message}` });
      return undefined;
    }
  }
  return undefined;
}

/** A tcp_proxy network filter for a route (or a plain cluster). */
export function tcpProxyFor(statPrefix: string, route: TcpRoute | string): NetworkFilter {
  const target =
    typeof route === 'string'
      ? { cluster: route }
      : 'cluster' in route
        ? { cluster: route.cluster }
        : { weighted_clusters: { clusters: route.weightedClusters.map((c) => ({ name: c.name, weight: c.weight })) } };
  return {
    name: 'envoy.filters.network.tcp_proxy',
    typed_config: toAny('envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', { stat_prefix: statPrefix, ...target }),
  };
}
