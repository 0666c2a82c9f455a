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
    initialVersions: id('envoy.service.discovery.v3.DeltaDiscoveryRequest', 'initial_resource_versions'),
  },
  dres: {
    resources: id('envoy.service.discovery.v3.DeltaDiscoveryResponse', 'resources'),
    typeUrl: id('envoy.service.discovery.v3.DeltaDiscoveryResponse', 'type_url'),
    nonce: id('envoy.service.discovery.v3.DeltaDiscoveryResponse', 'nonce'),
    removed: id('envoy.service.discovery.v3.DeltaDiscoveryResponse', 'removed_resources'),
  },
  resource: {
    resource: id('envoy.service.discovery.v3.Resource', 'resource'),
    name: id('envoy.service.discovery.v3.Resource', 'name'),
    version: id('envoy.service.discovery.v3.Resource', 'version'),
  },
  res: {
    version: id('envoy.service.discovery.v3.DiscoveryResponse', 'version_info'),
    resources: id('envoy.service.discovery.v3.DiscoveryResponse', 'resources'),
    typeUrl: id('envoy.service.discovery.v3.DiscoveryResponse', 'type_url'),
    nonce: id('envoy.service.discovery.v3.DiscoveryResponse', 'nonce'),
  },
  anyType: id('google.protobuf.Any', 'type_url'),
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
function typeUrlField(num: number, typeUrl: string): Buffer {
  const k = `${num} ${typeUrl}`;
  let t = typeUrlCache.get(k);
  if (!t) typeUrlCache.set(k, (t = field(num, typeUrl)));
  return t;
}

/**
 * DiscoveryRequest as parts, empty strings left out as proto3 would. Shared parts (names,
 * type URL) stay shared: the parts are written as they are, never joined.
 */
export function requestParts(r: { version: string; node?: Uint8Array; names: Buffer; typeUrl: string; nonce: string }): Buffer[] {
  const parts: Buffer[] = [];
  if (r.version) parts.push(field(F.req.version, r.version));
  if (r.node) parts.push(field(F.req.node, r.node));
  parts.push(r.names, typeUrlField(F.req.typeUrl, r.typeUrl));
  if (r.nonce) parts.push(field(F.req.nonce, r.nonce));
  return parts;
}

/** One initial_resource_versions entry, encoded once per name and version (no key strings built per lookup). */
const versionEntries = new Map<string, Map<string, Buffer>>();
function versionEntry(name: string, version: string): Buffer {
  let byVersion = versionEntries.get(name);
  if (!byVersion) versionEntries.set(name, (byVersion = new Map()));
  let b = byVersion.get(version);
  if (!b) byVersion.set(version, (b = field(F.dreq.initialVersions, Buffer.concat([field(1, name), field(2, version)]))));
  return b;
}

/**
 * DeltaDiscoveryRequest as parts: an ACK is type_url + nonce; subscriptions add names; a
 * reconnecting client names what it holds in initial_resource_versions.
 */
export function deltaRequestParts(r: { node?: Uint8Array; typeUrl: string; subscribe?: Iterable<string>; nonce?: string; held?: Iterable<[string, string]> }): Buffer[] {
  const parts: Buffer[] = [];
  if (r.node) parts.push(field(F.dreq.node, r.node));
  parts.push(typeUrlField(F.dreq.typeUrl, r.typeUrl));
  for (const n of r.subscribe ?? []) parts.push(field(F.dreq.subscribe, n));
  for (const [n, v] of r.held ?? []) parts.push(versionEntry(n, v));
  if (r.nonce) parts.push(field(F.dreq.nonce, r.nonce));
  return parts;
}

/** The 5-byte gRPC message prefix (uncompressed) for a message made of these parts. */
export function framePrefix(parts: readonly Uint8Array[]): Buffer {
  let n = 0;
  for (const p of parts) n += p.length;
  const b = Buffer.alloc(5);
  b.writeUInt32BE(n, 1);
  return b;
}

let varintEnd = 0;
/** The varint at pos (its end in varintEnd), or -1 if the bytes stop first. */
function readVarint(h: Uint8Array, pos: number): number {
  let v = 0;
  let mul = 1;
  while (pos < h.length) {
    const b = h[pos++]!;
    v += (b & 0x7f) * mul;
    if (b < 0x80) {
      varintEnd = pos;
      return v;
    }
    mul *= 128;
  }
  return -1;
}

/**
 * Splits a gRPC response byte stream into the top-level fields of each message as the bytes
 * arrive, so a message is never assembled whole: only one top-level field at a time is held
 * (one resource, for xDS responses). A field inside one chunk is handed over as a view of it
 * (valid during the call only); one spanning chunks is copied into a buffer of its size.
 */
export class FieldStream {
  private head: Buffer = Buffer.alloc(0);
  /** Bytes left in the current message; -1 while reading a message prefix. */
  private left = -1;
  private body?: Buffer;
  private fill = 0;
  private bodyField = 0;
  private skip = 0;
  private readonly onField: (field: number, bytes: Uint8Array) => void;
  private readonly onEnd: () => void;

  /** onField for length-delimited fields (others are skipped), onEnd after each message. */
  constructor(onField: (field: number, bytes: Uint8Array) => void, onEnd: () => void) {
    this.onField = onField;
    this.onEnd = onEnd;
  }

  private ended(): void {
    if (this.left === 0) {
      this.left = -1;
      this.onEnd();
    }
  }

  push(chunk: Buffer): void {
    let i = 0;
    for (;;) {
      if (this.body) {
        const n = Math.min(this.body.length - this.fill, chunk.length - i);
        chunk.copy(this.body, this.fill, i, i + n);
        this.fill += n;
        i += n;
        if (this.fill < this.body.length) return;
        const b = this.body;
        this.body = undefined;
        this.onField(this.bodyField, b);
        this.ended();
        continue;
      }
      if (this.skip) {
        const n = Math.min(this.skip, chunk.length - i);
        this.skip -= n;
        i += n;
        if (this.skip) return;
        this.ended();
        continue;
      }
      if (i >= chunk.length) return;
      if (this.left < 0) {
        const need = 5 - this.head.length;
        const take = chunk.subarray(i, i + need);
        i += take.length;
        this.head = this.head.length ? Buffer.concat([this.head, take]) : Buffer.from(take);
        if (this.head.length < 5) return;
        if (this.head[0] !== 0) throw new Error('compressed gRPC message (none was offered)');
        this.left = this.head.readUInt32BE(1);
        this.head = Buffer.alloc(0);
        this.ended();
        continue;
      }
      // A field header: tag, then the length of a length-delimited field (at most 20 bytes).
      const max = Math.min(20, this.left);
      const more = chunk.subarray(i, i + max - this.head.length);
      const h = this.head.length ? Buffer.concat([this.head, more]) : more;
      const tag = readVarint(h, 0);
      const wire = tag < 0 ? -1 : tag & 7;
      const len = wire === 0 || wire === 2 ? readVarint(h, varintEnd) : 0;
      if (tag < 0 || len < 0) {
        if (h.length >= max) throw new Error('bad field header in a gRPC message');
        // The header goes on in the next chunk.
        this.head = Buffer.from(h);
        i += more.length;
        continue;
      }
      const p = varintEnd;
      i += p - this.head.length;
      this.head = Buffer.alloc(0);
      this.left -= p;
      const f = Math.floor(tag / 8);
      if (wire === 2) {
        this.left -= len;
        if (i + len <= chunk.length) {
          this.onField(f, chunk.subarray(i, i + len));
          i += len;
          this.ended();
        } else {
          this.body = Buffer.allocUnsafe(len);
          this.fill = 0;
          this.bodyField = f;
        }
      } else if (wire === 0) {
        this.ended();
      } else if (wire === 1 || wire === 5) {
        this.skip = wire === 1 ? 8 : 4;
        this.left -= this.skip;
      } else {
        throw new Error(`bad wire type in tag ${tag}`);
      }
    }
  }
}
