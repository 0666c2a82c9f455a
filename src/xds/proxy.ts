// What Isthmus knows about a connected proxy, read from the xDS Node it announces.
import type { Locality, Protocol } from '../model/types.ts';
import { PROTOCOLS } from '../model/types.ts';

export type ProxyMode = 'explicit' | 'transparent';

export interface AppPort {
  readonly port: number;
  readonly protocol: Protocol;
}

/** What of a proxy shapes its listeners and its own clusters: the node metadata Isthmus reads, and its kind. */
export interface ProxyShape {
  readonly kind: 'envoy' | 'grpc';
  readonly mode: ProxyMode;
  readonly outboundPort: number;
  readonly inboundPort: number;
  readonly bindAddress: string;
  readonly appAddress: string;
  readonly appPorts: readonly AppPort[];
  /** Explicit mode: also listen on every VIP:port (ISTHMUS_VIP_LISTENERS). */
  readonly vipListeners: boolean;
  /** Envoy has the agent's certificates over SDS (ISTHMUS_SDS): it gets automatic mTLS. */
  readonly sds: boolean;
}

export interface ProxyInfo {
  readonly id: string;
  readonly cluster: string;
  /** Envoy sidecar, or a proxyless gRPC client (which never subscribes by wildcard). */
  readonly kind: 'envoy' | 'grpc';
  readonly mode: ProxyMode;
  readonly outboundPort: number;
  readonly inboundPort: number;
  /** Address the outbound listeners bind to. */
  readonly bindAddress: string;
  /** Address of the local app that inbound traffic is forwarded to. */
  readonly appAddress: string;
  readonly appPorts: readonly AppPort[];
  /** Explicit mode: also listen on every VIP:port, bound to the VIP itself (the host routes the VIP range to lo). */
  readonly vipListeners: boolean;
  /** Has the agent's certificates over SDS: automatic mTLS (generators/mtls.ts). */
  readonly sds: boolean;
  readonly metadata: Readonly<Record<string, unknown>>;
  /** Addresses of the instance it fronts (ISTHMUS_INSTANCE_IPS); empty when not given. */
  readonly instanceIps: readonly string[];
  /** node.locality: where the proxy runs, for locality-aware load balancing. */
  readonly locality: Locality;
  /** The fields above that shape its configuration (with rules' inputs, its class: proxy-class.ts). */
  readonly shape: ProxyShape;
}

export const DEFAULT_OUTBOUND_PORT = 15001;
export const DEFAULT_INBOUND_PORT = 15006;
export const DEFAULT_ADMIN_PORT = 15000;

/** Node metadata keys Isthmus reads; `isthmus bootstrap` writes them. */
export const META = {
  mode: 'ISTHMUS_MODE',
  outboundPort: 'ISTHMUS_OUTBOUND_PORT',
  inboundPort: 'ISTHMUS_INBOUND_PORT',
  bindAddress: 'ISTHMUS_BIND_ADDRESS',
  appAddress: 'ISTHMUS_APP_ADDRESS',
  appPorts: 'ISTHMUS_APP_PORTS',
  /** The workload: its namespace and labels ("k=v,k=v"); shown in /debug/syncz, never shaping config. */
  namespace: 'ISTHMUS_NAMESPACE',
  labels: 'ISTHMUS_LABELS',
  /** Addresses of the instance the sidecar fronts ("ip,ip"); default: its xDS peer address. */
  instanceIps: 'ISTHMUS_INSTANCE_IPS',
  /** "true": explicit mode listens on each VIP:port as well. */
  vipListeners: 'ISTHMUS_VIP_LISTENERS',
  /** "true": the bootstrap has the agent's SDS cluster (isthmus bootstrap --sds-socket). */
  sds: 'ISTHMUS_SDS',
} as const;

// protobufjs's built-in google.protobuf.Value uses camelCase names even under keepCase.
interface StructValue {
  nullValue?: unknown;
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: { fields?: Record<string, StructValue> };
  listValue?: { values?: StructValue[] };
}

/** google.protobuf.Struct as decoded by protobufjs (keepCase) → plain JSON. */
export function structToJson(s: { fields?: Record<string, StructValue> } | undefined | null): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s?.fields ?? {})) out[k] = valueToJson(v);
  return out;
}

function valueToJson(v: StructValue): unknown {
  if (v.structValue) return structToJson(v.structValue);
  if (v.listValue) return (v.listValue.values ?? []).map(valueToJson);
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.numberValue !== undefined) return v.numberValue;
  if (v.boolValue !== undefined) return v.boolValue;
  return null;
}

export class ProxyMetadataError extends Error {}

function port(meta: Record<string, unknown>, key: string, dflt: number): number {
  const raw = meta[key];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new ProxyMetadataError(`node metadata ${key}: "${String(raw)}" is not a port (1-65535)`);
  return n;
}

function flag(meta: Record<string, unknown>, key: string): boolean {
  const raw = meta[key];
  if (raw === undefined || raw === '' || raw === false || raw === 'false') return false;
  if (raw === true || raw === 'true') return true;
  throw new ProxyMetadataError(`node metadata ${key}: "${String(raw)}" is not true or false`);
}

/** Parses "8080:HTTP,9090:GRPC" (protocol optional, HTTP by default). */
export function parseAppPorts(raw: unknown, key: string = META.appPorts): AppPort[] {
  if (raw === undefined || raw === null || raw === '') return [];
  const out: AppPort[] = [];
  for (const item of String(raw).split(',').map((s) => s.trim()).filter(Boolean)) {
    const [p, proto = 'HTTP'] = item.split(':');
    const n = Number(p);
    const protocol = proto.toUpperCase() as Protocol;
    if (!Number.isInteger(n) || n < 1 || n > 65535) throw new ProxyMetadataError(`${key}: "${item}" has no valid port (1-65535)`);
    if (!PROTOCOLS.includes(protocol)) throw new ProxyMetadataError(`${key}: "${item}" has unknown protocol ${proto} (one of ${PROTOCOLS.join(', ')})`);
    if (out.some((x) => x.port === n)) throw new ProxyMetadataError(`${key}: port ${n} is listed twice`);
    out.push({ port: n, protocol });
  }
  return out;
}

export interface DecodedNode {
  id?: string;
  cluster?: string;
  metadata?: { fields?: Record<string, StructValue> } | null;
  user_agent_name?: string;
  locality?: { region?: string; zone?: string; sub_zone?: string } | null;
}

/** Builds the proxy record; throws ProxyMetadataError naming the bad field. */
export function proxyFromNode(node: DecodedNode | undefined | null): ProxyInfo {
  if (!node || !node.id) throw new ProxyMetadataError('the first request on a stream must carry node.id');
  const metadata = structToJson(node.metadata ?? undefined);
  // grpc-js-xds says "gRPC Node", grpc-go "gRPC Go"; Envoy says "envoy".
  const kind: ProxyInfo['kind'] = /grpc/i.test(node.user_agent_name ?? '') ? 'grpc' : 'envoy';
  const modeRaw = metadata[META.mode] ?? 'explicit';
  if (modeRaw !== 'explicit' && modeRaw !== 'transparent') throw new ProxyMetadataError(`node metadata ${META.mode}: "${String(modeRaw)}" is not explicit or transparent`);
  const base = {
    mode: modeRaw as ProxyMode,
    outboundPort: port(metadata, META.outboundPort, DEFAULT_OUTBOUND_PORT),
    inboundPort: port(metadata, META.inboundPort, DEFAULT_INBOUND_PORT),
    bindAddress: String(metadata[META.bindAddress] ?? '127.0.0.1'),
    appAddress: String(metadata[META.appAddress] ?? '127.0.0.1'),
    appPorts: parseAppPorts(metadata[META.appPorts]),
    vipListeners: flag(metadata, META.vipListeners),
    // Proxyless gRPC clients read certificates from their own bootstrap: not this flag's business.
    sds: kind === 'envoy' && flag(metadata, META.sds),
  };
  if (base.vipListeners && base.mode !== 'explicit') throw new ProxyMetadataError(`node metadata ${META.vipListeners}: VIP listeners are for explicit mode; a transparent sidecar takes VIPs by redirection`);
  const l = node.locality ?? {};
  const locality = { ...(l.region ? { region: l.region } : {}), ...(l.zone ? { zone: l.zone } : {}), ...(l.sub_zone ? { subzone: l.sub_zone } : {}) };
  const ips = metadata[META.instanceIps];
  const instanceIps = typeof ips === 'string' ? ips.split(',').map((s) => s.trim()).filter(Boolean) : [];
  return { id: node.id, cluster: node.cluster ?? '', kind, metadata, locality, instanceIps, ...base, shape: { kind, ...base } };
}
