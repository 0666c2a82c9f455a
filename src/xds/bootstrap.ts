// Bootstraps that point a proxy at Isthmus: Envoy's, and a proxyless gRPC client's.
import { type AppPort, DEFAULT_ADMIN_PORT, DEFAULT_INBOUND_PORT, DEFAULT_OUTBOUND_PORT, META, type ProxyMode } from './proxy.ts';

export interface BootstrapOptions {
  readonly nodeId: string;
  readonly cluster: string;
  readonly xdsHost: string;
  readonly xdsPort: number;
  readonly adminPort?: number;
  readonly outboundPort?: number;
  readonly inboundPort?: number;
  readonly mode?: ProxyMode;
  readonly appPorts?: readonly AppPort[];
  readonly delta?: boolean;
  /** The workload's namespace and labels, as node metadata. */
  readonly namespace?: string;
  readonly labels?: Readonly<Record<string, string>>;
  /** Addresses of the instance (e.g. the pod IP), for /debug/registryz. */
  readonly instanceIps?: readonly string[];
  /** Explicit mode: listen on every VIP:port as well. */
  readonly vipListeners?: boolean;
  /** Unix socket of `isthmus agent`'s SDS: the cluster SDS_CLUSTER reaches it. */
  readonly sdsSocket?: string;
}

/** The static cluster through which Envoy reads its certificates from the agent (SDS). */
export const SDS_CLUSTER = 'isthmus-sds';

const XDS_CLUSTER = 'isthmus-xds';

function nodeMetadata(o: BootstrapOptions): Record<string, string> {
  return {
    [META.mode]: o.mode ?? 'explicit',
    [META.outboundPort]: String(o.outboundPort ?? DEFAULT_OUTBOUND_PORT),
    [META.inboundPort]: String(o.inboundPort ?? DEFAULT_INBOUND_PORT),
    ...(o.appPorts?.length ? { [META.appPorts]: o.appPorts.map((p) => `${p.port}:${p.protocol}`).join(',') } : {}),
    ...(o.namespace ? { [META.namespace]: o.namespace } : {}),
    ...(o.instanceIps?.length ? { [META.instanceIps]: o.instanceIps.join(',') } : {}),
    ...(o.vipListeners ? { [META.vipListeners]: 'true' } : {}),
    ...(o.sdsSocket ? { [META.sds]: 'true' } : {}),
    ...(o.labels && Object.keys(o.labels).length
      ? { [META.labels]: Object.keys(o.labels).sort().map((k) => `${k}=${o.labels![k]}`).join(',') }
      : {}),
  };
}

export function envoyBootstrap(o: BootstrapOptions): Record<string, unknown> {
  const ads = { ads: {}, resource_api_version: 'V3' };
  const isIp = /^[\d.]+$|:/.test(o.xdsHost);
  return {
    node: { id: o.nodeId, cluster: o.cluster, metadata: nodeMetadata(o) },
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: o.adminPort ?? DEFAULT_ADMIN_PORT } } },
    dynamic_resources: {
      ads_config: {
        api_type: o.delta ? 'DELTA_GRPC' : 'GRPC',
        transport_api_version: 'V3',
        set_node_on_first_message_only: true,
        grpc_services: [
          {
            envoy_grpc: {
              cluster_name: XDS_CLUSTER,
              // Reconnect quickly when Isthmus restarts; Envoy keeps serving its last config meanwhile.
              retry_policy: { retry_back_off: { base_interval: '0.25s', max_interval: '5s' } },
            },
          },
        ],
      },
      cds_config: ads,
      lds_config: ads,
    },
    static_resources: {
      clusters: [
        {
          name: XDS_CLUSTER,
          type: isIp ? 'STATIC' : 'STRICT_DNS',
          connect_timeout: '1s',
          typed_extension_protocol_options: {
            'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
              '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
              explicit_http_config: { http2_protocol_options: { connection_keepalive: { interval: '30s', timeout: '10s' } } },
            },
          },
          load_assignment: {
            cluster_name: XDS_CLUSTER,
            endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: o.xdsHost, port_value: o.xdsPort } } } }] }],
          },
        },
        ...(o.sdsSocket ? [sdsCluster(o.sdsSocket)] : []),
      ],
    },
  };
}

function sdsCluster(socket: string): Record<string, unknown> {
  return {
    name: SDS_CLUSTER,
    type: 'STATIC',
    connect_timeout: '1s',
    typed_extension_protocol_options: {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
        '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
        explicit_http_config: { http2_protocol_options: {} },
      },
    },
    load_assignment: { cluster_name: SDS_CLUSTER, endpoints: [{ lb_endpoints: [{ endpoint: { address: { pipe: { path: socket } } } }] }] },
  };
}

/** The gRPC xDS bootstrap (GRPC_XDS_BOOTSTRAP / GRPC_XDS_BOOTSTRAP_CONFIG). */
export function grpcBootstrap(o: BootstrapOptions): Record<string, unknown> {
  return {
    xds_servers: [{ server_uri: `${o.xdsHost}:${o.xdsPort}`, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
    node: { id: o.nodeId, cluster: o.cluster, metadata: nodeMetadata(o), locality: {} },
  };
}
