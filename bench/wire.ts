// Just enough protobuf for simulated Envoys: walk fields of a message without decoding it,
// and write DiscoveryRequests from pre-encoded parts. Field numbers come from the real protos.
import { messageType } from '../src/xds/proto.ts';

function id(message: string, field: string): number {
  const f = messageType(message).fields[field];
  if (!f) throw new Error(`${message} has no field ${field}`);
  return f.id;
}

export const F = {
  req: {
    version: id('envoy.service.discovery.v3.DiscoveryRequest', 'version_info'),
    node: id('envoy.service.discovery.v3.DiscoveryRequest', 'node'),
    names: id('envoy.service.discovery.v3.DiscoveryRequest', 'resource_names'),
    typeUrl: id('envoy.service.discovery.v3.DiscoveryRequest', 'type_url'),
    nonce: id('envoy.service.discovery.v3.DiscoveryRequest', 'response_nonce'),
  },
  dreq: {
    node: id('envoy.service.discovery.v3.DeltaDiscoveryRequest', 'node'),
    typeUrl: id('envoy.service.discovery.v3.DeltaDiscoveryRequest', 'type_url'),
    subscribe: id('envoy.service.discovery.v3.DeltaDiscoveryRequest', 'resource_names_subscribe'),
    nonce: id('envoy.service.discovery.v3.DeltaDiscoveryRequest', 'response_nonce'),
  },
  dres: {
    resources: id('envoy.service.discovery.v3.DeltaDiscoveryResponse', 'resources'),
    typeUrl: id('envoy.service.discovery.v3.DeltaDiscoveryResponse', 'type_url'),
    nonce: id('envoy.service.discovery.v3.DeltaDiscoveryResponse', 'nonce'),
    removed: id('envoy.service.discovery.v3.DeltaDiscoveryResponse', 'removed_resources'),
  },
  resource: { resource: id('envoy.service.discovery.v3.Resource', 'resource'), name: id('envoy.service.discovery.v3.Resource', 'name') },
  res: {
    version: id('envoy.service.discovery.v3.DiscoveryResponse', 'version_info'),
    resources: id('envoy.service.discovery.v3.DiscoveryResponse', 'resources'),
    typeUrl: id('envoy.service.discovery.v3.DiscoveryResponse', 'type_url'),
    nonce: id('envoy.service.discovery.v3.DiscoveryResponse', 'nonce'),
  },
  anyValue: id('google.protobuf.Any', 'value'),
  cluster: { name: id('envoy.config.cluster.v3.Cluster', 'name'), type: id('envoy.config.cluster.v3.Cluster', 'type') },
  edsType: messageType('envoy.config.cluster.v3.Cluster').lookupEnum('DiscoveryType').values['EDS']!,
  cla: { name: id('envoy.config.endpoint.v3.ClusterLoadAssignment', 'cluster_name'), localities: id('envoy.config.endpoint.v3.ClusterLoadAssignment', 'endpoints') },
  locality: { lbEndpoints: id('envoy.config.endpoint.v3.LocalityLbEndpoints', 'lb_endpoints') },
  lbEndpoint: { endpoint: id('envoy.config.endpoint.v3.LbEndpoint', 'endpoint') },
  endpoint: { address: id('envoy.config.endpoint.v3.Endpoint', 'address') },
  address: { socket: id('envoy.config.core.v3.Address', 'socket_address') },
  socket: { address: id('envoy.config.core.v3.SocketAddress', 'address') },
  listener: { name: id('envoy.config.listener.v3.Listener', 'name'), chains: id('envoy.config.listener.v3.Listener', 'filter_chains') },
  chain: { filters: id('envoy.config.listener.v3.FilterChain', 'filters') },
  filter: { typedConfig: id('envoy.config.listener.v3.Filter', 'typed_config') },
  hcm: { rds: id('envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager', 'rds') },
  rds: { routeName: id('envoy.extensions.filters.network.http_connection_manager.v3.Rds', 'route_config_name') },
  route: { name: id('envoy.config.route.v3.RouteConfiguration', 'name') },
};

/**
 * Calls fn(field, value) for every field: value is the varint for wire type 0, the
 * sub-slice for length-delimited fields, and 0 for fixed-width ones (skipped).
 */
export function walk(buf: Uint8Array, fn: (field: number, bytes: Uint8Array | undefined, n: number) => void): void {
  let i = 0;
  const varint = (): number => {
    let v = 0;
    let mul = 1;
    for (;;) {
      const b = buf[i++]!;
      v += (b & 0x7f) * mul;
      if (b < 0x80) return v;
      mul *= 128;
    }
  };
  while (i < buf.length) {
    const tag = varint();
    const field = tag >>> 3;
    switch (tag & 7) {
      case 0:
        fn(field, undefined, varint());
        break;
      case 1:
        i += 8;
        break;
      case 2: {
        const len = varint();
        fn(field, buf.subarray(i, i + len), len);
        i += len;
        break;
      }
      case 5:
        i += 4;
        break;
      default:
        throw new Error(`bad wire type in tag ${tag}`);
    }
  }
}

/** The sub-messages (or strings) of one repeated field. */
export function repeated(buf: Uint8Array, field: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  walk(buf, (f, b) => {
    if (f === field && b) out.push(b);
  });
  return out;
}

/** The first length-delimited field with this number. */
export function first(buf: Uint8Array, field: number): Uint8Array | undefined {
  let out: Uint8Array | undefined;
  walk(buf, (f, b) => {
    if (f === field && b && !out) out = b;
  });
  return out;
}

const dec = new TextDecoder();
export function str(b: Uint8Array | undefined): string {
  return b ? dec.decode(b) : '';
}

const enc = new TextEncoder();

function varint(n: number): number[] {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}

/** One length-delimited field, encoded. */
export function field(num: number, data: Uint8Array | string): Buffer {
  const bytes = typeof data === 'string' ? enc.encode(data) : data;
  return Buffer.concat([Buffer.from([...varint((num << 3) | 2), ...varint(bytes.length)]), bytes]);
}

/** resource_names, encoded once per distinct list and shared by every proxy. */
const namesCache = new Map<string, Buffer>();
export function encodeNames(names: readonly string[]): Buffer {
  const key = names.join('\n');
  let b = namesCache.get(key);
  if (!b) {
    b = Buffer.concat(names.map((n) => field(F.req.names, n)));
    namesCache.set(key, b);
  }
  return b;
}

const typeUrlCache = new Map<string, Buffer>();

/** DiscoveryRequest from parts; empty strings are left out as proto3 would. */
export function encodeRequest(r: { version: string; node?: Uint8Array; names: Buffer; typeUrl: string; nonce: string }): Buffer {
  let t = typeUrlCache.get(r.typeUrl);
  if (!t) typeUrlCache.set(r.typeUrl, (t = field(F.req.typeUrl, r.typeUrl)));
  const parts: Buffer[] = [];
  if (r.version) parts.push(field(F.req.version, r.version));
  if (r.node) parts.push(field(F.req.node, r.node));
  parts.push(r.names, t);
  if (r.nonce) parts.push(field(F.req.nonce, r.nonce));
  return Buffer.concat(parts);
}

/** DeltaDiscoveryRequest from parts: an ACK is type_url + nonce; subscriptions add names. */
export function encodeDeltaRequest(r: { node?: Uint8Array; typeUrl: string; subscribe?: readonly string[]; nonce?: string }): Buffer {
  const parts: Buffer[] = [];
  if (r.node) parts.push(field(F.dreq.node, r.node));
  parts.push(field(F.dreq.typeUrl, r.typeUrl));
  for (const n of r.subscribe ?? []) parts.push(field(F.dreq.subscribe, n));
  if (r.nonce) parts.push(field(F.dreq.nonce, r.nonce));
  return Buffer.concat(parts);
}
