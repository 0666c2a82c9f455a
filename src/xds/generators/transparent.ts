// Transparent mode: listeners that take redirected connections by their original
// destination, and the passthrough clusters that carry what Isthmus does not know.
//
// iptables (deploy/iptables/isthmus-iptables.sh) sends outbound TCP to the outbound port and
// inbound TCP to the inbound port; Envoy runs as the excluded uid, so its own upstream
// connections leave untouched. HTTP chains here are configured to forward request bytes as
// the app wrote them (no request id, no x-envoy-* headers, no x-forwarded-*), so a provider
// sees the same request whether zero, one or two sidecars are on the path.
import { inboundChains, type InboundSecurity, tlsInspector } from './mtls.ts';
import type { Cluster, envoy_config_listener_v3_Filter as NetworkFilter, FilterChain, Http1ProtocolOptions, HttpConnectionManager, Listener, ListenerFilter } from '../../generated/envoy.ts';
import { isHttpProtocol } from '../../model/types.ts';
import { toAny } from '../proto.ts';
import type { AppPort, ProxyShape } from '../proxy.ts';
import { buildInboundCluster } from './cluster.ts';
import { ADS_SOURCE, faultFilter, socketAddress, tcpProxy } from './common.ts';
import { inboundCluster, INBOUND_LISTENER, OUTBOUND_LISTENER, OUTBOUND_ROUTE, type VipTarget } from './names.ts';
import type { RouteProblem } from './route.ts';
import { tcpProxyFor } from './tcp-route.ts';
import type { OpaqueFilterOf } from './dubbo-route.ts';

/** Outbound connections to destinations Isthmus does not route: sent on to where they were going. */
export const PASSTHROUGH_CLUSTER = 'PassthroughCluster';
/** Inbound connections to ports that are not app ports: delivered to their original destination. */
export const INBOUND_PASSTHROUGH_CLUSTER = 'InboundPassthroughCluster';

let preserveCase: Http1ProtocolOptions | undefined;
/** HTTP/1 header names kept as the app wrote them (Envoy lower-cases them otherwise); encoded once, on first use. */
function PRESERVE_CASE(): Http1ProtocolOptions {
  return (preserveCase ??= {
    header_key_format: {
      stateful_formatter: {
        name: 'envoy.http.stateful_header_formatters.preserve_case',
        typed_config: toAny('envoy.extensions.http.header_formatters.preserve_case.v3.PreserveCaseFormatterConfig', {}),
      },
    },
  });
}

const HCM_TYPE = 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
let originalDst: ListenerFilter | undefined;
/** The original_dst listener filter, encoded once (on first use: the protos load lazily). */
function ORIGINAL_DST(): ListenerFilter {
  return (originalDst ??= { name: 'envoy.filters.listener.original_dst', typed_config: toAny('envoy.extensions.filters.listener.original_dst.v3.OriginalDst', {}) });
}

/** Both passthrough clusters (type ORIGINAL_DST: the upstream is the connection's original destination). */
export function buildPassthroughClusters(): Cluster[] {
  return [PASSTHROUGH_CLUSTER, INBOUND_PASSTHROUGH_CLUSTER].map((name) => ({
    name,
    type: 'ORIGINAL_DST',
    lb_policy: 'CLUSTER_PROVIDED',
    connect_timeout: { seconds: 10 },
    // Idle original-destination hosts are dropped after this long.
    cleanup_interval: { seconds: 60 },
  }));
}

/**
 * The inbound cluster of an app port for a transparent sidecar: HTTP/1 ports write header
 * names in the case they arrived in (with the inbound HCM's preserve_case, the app gets the
 * caller's exact header bytes).
 */
export function buildTransparentInboundCluster(appAddress: string, app: AppPort): Cluster {
  const cluster = buildInboundCluster(appAddress, app);
  if (isHttpProtocol(app.protocol) && app.protocol !== 'HTTP2' && app.protocol !== 'GRPC') {
    cluster.typed_extension_protocol_options = {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': toAny('envoy.extensions.upstreams.http.v3.HttpProtocolOptions', {
        explicit_http_config: { http_protocol_options: PRESERVE_CASE() },
      }),
    };
  }
  return cluster;
}

/**
 * An HTTP connection manager that forwards the request as received: Envoy adds no request
 * id, no x-envoy-* headers (router suppress_envoy_headers), no x-forwarded-for (no
 * use_remote_address), and x-forwarded-proto, which the codec always sets, is removed again.
 * HTTP/1 header names keep the case the app wrote them in (preserve_case; Envoy 1.36 keeps
 * the downstream formatter for the upstream request, and inbound clusters set it as well).
 */
export function transparentHcm(statPrefix: string, route: { rds: string } | { cluster: string }): NetworkFilter {
  const routing: Pick<HttpConnectionManager, 'rds' | 'route_config'> =
    'rds' in route
      ? { rds: { config_source: ADS_SOURCE, route_config_name: route.rds } }
      : {
          route_config: {
            name: statPrefix,
            virtual_hosts: [{ name: statPrefix, domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: route.cluster, timeout: { seconds: 0 } } }] }],
          },
        };
  return {
    name: 'envoy.filters.network.http_connection_manager',
    typed_config: toAny(HCM_TYPE, {
      stat_prefix: statPrefix,
      codec_type: 'AUTO',
      ...routing,
      generate_request_id: { value: false },
      http_protocol_options: PRESERVE_CASE(),
      server_header_transformation: 'PASS_THROUGH',
      http_filters: [
        {
          name: 'envoy.filters.http.header_mutation',
          typed_config: toAny('envoy.extensions.filters.http.header_mutation.v3.HeaderMutation', {
            mutations: { request_mutations: [{ remove: 'x-forwarded-proto' }] },
          }),
        },
        faultFilter(),
        { name: 'envoy.filters.http.router', typed_config: toAny('envoy.extensions.filters.http.router.v3.Router', { suppress_envoy_headers: true }) },
      ],
    }),
  };
}

/** The filter of a name's opaque port: its tcp route or its cluster, or Envoy's Dubbo filter (see dubbo-route.ts). */
const plainTcp: OpaqueFilterOf = (_host, _port, cluster) => tcpProxyFor(cluster, cluster);

/** One target per VIP:port, the first; a second name on it is refused by name. */
export function uniqueTargets(targets: readonly VipTarget[], problems: RouteProblem[]): VipTarget[] {
  const seen = new Map<string, VipTarget>();
  return targets.filter((t) => {
    const key = `${t.vip}:${t.port}`;
    const first = seen.get(key);
    if (first) {
      // HTTP hosts of one ServiceEntry share its addresses: the one chain routes them by Host.
      if (!(t.http && first.http && t.ref === first.ref)) problems.push({ name: key, reason: `VIP ${key} of ${t.name} is already claimed by ${first.name}; first one kept` });
      return false;
    }
    seen.set(key, t);
    return true;
  });
}

/**
 * Explicit mode on VIPs: a listener bound to the VIP:port itself (freebind; the host routes
 * the VIP range to lo), so an app dials the name's own address, which no client stack
 * rewrites (Dubbo turns 127.x into the host address) and which tells apart two names on one
 * port and each RPC interface. Traffic then goes where a transparent sidecar's VIP chain sends it.
 */
export function vipListener(t: VipTarget, route: OpaqueFilterOf, problems: RouteProblem[]): Listener {
  const { filter_chain_match: _match, ...chain } = vipChain(t, route, problems);
  return { name: `${t.vip}_${t.port}`, address: socketAddress(t.vip, t.port), freebind: { value: true }, traffic_direction: 'OUTBOUND', filter_chains: [chain] };
}

function vipChain(t: VipTarget, route: OpaqueFilterOf, problems: RouteProblem[]): FilterChain {
  return {
    name: `${t.vip}_${t.port}`,
    filter_chain_match: {
      prefix_ranges: [{ address_prefix: t.vip, prefix_len: { value: t.vip.includes(':') ? 128 : 32 } }],
      destination_port: { value: t.port },
    },
    // Opaque: the VirtualService tcp route of the name, if any, else its cluster; Dubbo's filter on Dubbo ports.
    filters: [t.http ? transparentHcm('outbound', { rds: OUTBOUND_ROUTE }) : route(t.name, t.port, t.cluster, problems)],
  };
}

/**
 * The outbound listener on 0.0.0.0: one chain per VIP:port (a service or an interface, L7
 * for HTTP ports), and everything else (pod and VM addresses, unknown hosts, any protocol)
 * passes through to its original destination. Endpoint addresses get no chains of their
 * own: the passthrough reaches that exact instance, and listeners stay independent of
 * endpoints, so an endpoint change remains an EDS-only push.
 */
export function transparentOutbound(proxy: ProxyShape, targets: readonly VipTarget[], problems: RouteProblem[], route: OpaqueFilterOf = plainTcp): Listener {
  const chains = uniqueTargets(targets, problems);
  return {
    name: OUTBOUND_LISTENER,
    address: socketAddress('0.0.0.0', proxy.outboundPort),
    traffic_direction: 'OUTBOUND',
    listener_filters: [ORIGINAL_DST()],
    filter_chains: chains.map((t) => vipChain(t, route, problems)),
    default_filter_chain: { name: PASSTHROUGH_CLUSTER, filters: [tcpProxy(PASSTHROUGH_CLUSTER, PASSTHROUGH_CLUSTER)] },
  };
}

/** The inbound listener on 0.0.0.0: a chain per app port to the local app; other ports pass through. */
export function transparentInbound(proxy: ProxyShape, security?: InboundSecurity, problems: RouteProblem[] = []): Listener {
  const chain = (app: AppPort): Record<string, unknown> => ({
    name: inboundCluster(app.port),
    filter_chain_match: { destination_port: { value: app.port } },
    // Each HTTP app port routes to its own inbound cluster (inline: one route per port).
    filters: [isHttpProtocol(app.protocol) ? transparentHcm(`inbound_${app.port}`, { cluster: inboundCluster(app.port) }) : tcpProxy(`inbound_${app.port}`, inboundCluster(app.port))],
  });
  // Mesh mTLS (the TLS inspector reads its ALPN) and plaintext per app port, as PeerAuthentication says.
  const sec = inboundChains(proxy.appPorts.map((a) => ({ port: a.port, chain: chain(a) as FilterChain })), security, problems);
  return {
    name: INBOUND_LISTENER,
    address: socketAddress('0.0.0.0', proxy.inboundPort),
    traffic_direction: 'INBOUND',
    listener_filters: sec.inspector ? [ORIGINAL_DST(), tlsInspector()] : [ORIGINAL_DST()],
    filter_chains: sec.chains,
    // Other ports pass through in plaintext, except under a workload-wide STRICT.
    ...(sec.plaintextRest ? { default_filter_chain: { name: INBOUND_PASSTHROUGH_CLUSTER, filters: [tcpProxy(INBOUND_PASSTHROUGH_CLUSTER, INBOUND_PASSTHROUGH_CLUSTER)] } } : {}),
  };
}

/** Every listener of a transparent sidecar: outbound and inbound (inbound even with no app port). */
export function buildTransparentListeners(proxy: ProxyShape, problems: RouteProblem[], targets: readonly VipTarget[], route?: OpaqueFilterOf, security?: InboundSecurity): Listener[] {
  return [transparentOutbound(proxy, targets, problems, route), transparentInbound(proxy, security, problems)];
}
