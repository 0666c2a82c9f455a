// Small builders shared by the generators.
import type { Address, ConfigSource, envoy_config_listener_v3_Filter as NetworkFilter, HttpFilter, Struct, Value } from '../../generated/envoy.ts';
import { toAny } from '../proto.ts';

export const ADS_SOURCE: ConfigSource = { ads: {}, resource_api_version: 'V3' };

export function routerFilter(): HttpFilter {
  return {
    name: 'envoy.filters.http.router',
    typed_config: toAny('envoy.extensions.filters.http.router.v3.Router', {}),
  };
}

export const FAULT_FILTER = 'envoy.filters.http.fault';
export const FAULT_TYPE = 'envoy.extensions.filters.http.fault.v3.HTTPFault';

/** The fault filter with no fault of its own: routes enable it through typed_per_filter_config. */
export function faultFilter(): HttpFilter {
  return { name: FAULT_FILTER, typed_config: toAny(FAULT_TYPE, {}) };
}

export function socketAddress(address: string, port: number): Address {
  return { socket_address: { address, port_value: port } };
}

/**
 * google.protobuf.Struct from string pairs, keys sorted so encoding is deterministic.
 * protobufjs defines Value with camelCase field names even under keepCase.
 */
export function struct(values: Readonly<Record<string, string>>): Struct {
  const fields: Record<string, Value> = {};
  for (const k of Object.keys(values).sort()) fields[k] = { stringValue: values[k] };
  return { fields };
}

export function tcpProxy(statPrefix: string, cluster: string): NetworkFilter {
  return {
    name: 'envoy.filters.network.tcp_proxy',
    typed_config: toAny('envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', { stat_prefix: statPrefix, cluster }),
  };
}

/** Upstream protocol options: HTTP/2 for HTTP2 and gRPC ports. */
export function http2Options(): Record<string, unknown> {
  return {
    'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': toAny('envoy.extensions.upstreams.http.v3.HttpProtocolOptions', {
      explicit_http_config: { http2_protocol_options: {} },
    }),
  };
}
