// A minimal raw ADS client (SotW or Delta) that records every response and can NACK on purpose.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoIncludeDirs } from '../../src/xds/proto.ts';

/** The include directories of protos/manifest.json, as the server uses them. */
export const XDS_INCLUDE_DIRS = protoIncludeDirs();

export const TYPE = {
  cluster: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  endpoint: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  listener: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  route: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
} as const;

interface Any {
  type_url: string;
  value: Buffer;
}
interface RawResponse {
  version_info?: string;
  system_version_info?: string;
  resources: Array<Any | { name: string; version: string; resource?: Any }>;
  removed_resources?: string[];
  type_url: string;
  nonce: string;
}

export interface RecordedResponse {
  /** Date.now() when it arrived. */
  at: number;
  typeUrl: string;
  /** version_info (SotW) or system_version_info (Delta). */
  version: string;
  nonce: string;
  /** Names of the resources it carries (field 1 of each resource). */
  names: string[];
  /** Delta: per-resource versions by name. */
  versions: Record<string, string>;
  /** Delta: removed resource names. */
  removed: string[];
  /** Raw resources as Any ({type_url, value}). */
  resources: Any[];
}

/** What to do with a response: ACK it, NACK it with a message, or leave it unanswered. */
export type Reply = 'ack' | 'none' | { nack: string };

export interface AdsClientOptions {
  /** host:port of the xDS server. */
  address: string;
  nodeId: string;
  cluster?: string;
  mode?: 'sotw' | 'delta';
  /** Decides the reply to each response; default ACK everything. */
  policy?: (r: RecordedResponse) => Reply;
  /** Node metadata, as a google.protobuf.Struct JSON object. */
  metadata?: Record<string, unknown>;
}

type Duplex = grpc.ClientDuplexStream<Record<string, unknown>, RawResponse>;
type AdsCtor = new (address: string, creds: grpc.ChannelCredentials) => grpc.Client & {
  StreamAggregatedResources(): Duplex;
  DeltaAggregatedResources(): Duplex;
};

let adsCtor: AdsCtor | undefined;
function loadAds(): AdsCtor {
  if (!adsCtor) {
    const def = protoLoader.loadSync('envoy/service/discovery/v3/ads.proto', {
      keepCase: true,
      longs: String,
      enums: String,
      defaults: true,
      includeDirs: XDS_INCLUDE_DIRS,
    });
    const pkg = grpc.loadPackageDefinition(def) as unknown as {
      envoy: { service: { discovery: { v3: { AggregatedDiscoveryService: AdsCtor } } } };
    };
    adsCtor = pkg.envoy.service.discovery.v3.AggregatedDiscoveryService;
  }
  return adsCtor;
}

/** Reads string field 1 (the name of Cluster, Listener, RouteConfiguration, ClusterLoadAssignment). */
export function resourceName(bytes: Uint8Array): string {
  let i = 0;
  const varint = (): number => {
    let v = 0;
    let shift = 0;
    while (i < bytes.length) {
      const b = bytes[i++] as number;
      v += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) break;
      shift += 7;
    }
    return v;
  };
  while (i < bytes.length) {
    const tag = varint();
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    if (wire === 0) varint();
    else if (wire === 1) i += 8;
    else if (wire === 5) i += 4;
    else if (wire === 2) {
      const len = varint();
      if (field === 1) return Buffer.from(bytes.subarray(i, i + len)).toString('utf8');
      i += len;
    } else break;
  }
  return '';
}

export class AdsClient {
  readonly mode: 'sotw' | 'delta';
  readonly responses: RecordedResponse[] = [];
  /** Requests sent, in order, for debugging. */
  readonly sent: Array<Record<string, unknown>> = [];
  error: Error | undefined;
  ended = false;
  private readonly opts: AdsClientOptions;
  private readonly client: grpc.Client;
  private readonly stream: Duplex;
  private nodeSent = false;
  private readonly subscriptions = new Map<string, string[]>();
  private readonly acked = new Map<string, string>();

  constructor(opts: AdsClientOptions) {
    this.opts = opts;
    this.mode = opts.mode ?? 'sotw';
    const Ctor = loadAds();
    const c = new Ctor(opts.address, grpc.credentials.createInsecure());
    this.client = c;
    this.stream = this.mode === 'delta' ? c.DeltaAggregatedResources() : c.StreamAggregatedResources();
    this.stream.on('data', (raw: RawResponse) => this.onResponse(raw));
    this.stream.on('error', (err: Error) => (this.error = err));
    this.stream.on('end', () => (this.ended = true));
  }

  private node(): Record<string, unknown> | undefined {
    if (this.nodeSent && this.mode === 'delta') return undefined;
    this.nodeSent = true;
    const node: Record<string, unknown> = { id: this.opts.nodeId, cluster: this.opts.cluster ?? 'test', user_agent_name: 'isthmus-test-ads-client' };
    if (this.opts.metadata) node.metadata = toStruct(this.opts.metadata);
    return node;
  }

  private send(req: Record<string, unknown>): void {
    const node = this.node();
    const msg = node ? { ...req, node } : req;
    this.sent.push(msg);
    this.stream.write(msg);
  }

  /** Subscribes to `typeUrl`; no names means a wildcard subscription. */
  subscribe(typeUrl: string, names: string[] = []): void {
    this.subscriptions.set(typeUrl, names);
    if (this.mode === 'delta') this.send({ type_url: typeUrl, resource_names_subscribe: names });
    else this.send({ type_url: typeUrl, resource_names: names, version_info: this.acked.get(typeUrl) ?? '' });
  }

  /** ACKs a response. */
  ack(r: RecordedResponse): void {
    this.acked.set(r.typeUrl, r.version);
    if (this.mode === 'delta') this.send({ type_url: r.typeUrl, response_nonce: r.nonce });
    else this.send({ type_url: r.typeUrl, version_info: r.version, response_nonce: r.nonce, resource_names: this.subscriptions.get(r.typeUrl) ?? [] });
  }

  /** NACKs a response with error_detail {code: INVALID_ARGUMENT, message}. */
  nack(r: RecordedResponse, message: string): void {
    const error_detail = { code: grpc.status.INVALID_ARGUMENT, message };
    if (this.mode === 'delta') this.send({ type_url: r.typeUrl, response_nonce: r.nonce, error_detail });
    else
      this.send({
        type_url: r.typeUrl,
        version_info: this.acked.get(r.typeUrl) ?? '',
        response_nonce: r.nonce,
        resource_names: this.subscriptions.get(r.typeUrl) ?? [],
        error_detail,
      });
  }

  private onResponse(raw: RawResponse): void {
    const resources: Any[] = [];
    const names: string[] = [];
    const versions: Record<string, string> = {};
    for (const res of raw.resources) {
      if ('type_url' in res) {
        resources.push(res);
        names.push(resourceName(res.value));
      } else {
        names.push(res.name);
        versions[res.name] = res.version;
        if (res.resource) resources.push(res.resource);
      }
    }
    const r: RecordedResponse = {
      at: Date.now(),
      typeUrl: raw.type_url,
      version: (this.mode === 'delta' ? raw.system_version_info : raw.version_info) ?? '',
      nonce: raw.nonce,
      names,
      versions,
      removed: raw.removed_resources ?? [],
      resources,
    };
    this.responses.push(r);
    const reply = this.opts.policy ? this.opts.policy(r) : 'ack';
    if (reply === 'ack') this.ack(r);
    else if (reply !== 'none') this.nack(r, reply.nack);
  }

  /** Responses of one type, in arrival order. */
  responsesFor(typeUrl: string): RecordedResponse[] {
    return this.responses.filter((r) => r.typeUrl === typeUrl);
  }

  /** Ends the stream and closes the channel. */
  close(): void {
    try {
      this.stream.end();
      this.stream.cancel();
    } catch {
      // already closed
    }
    this.client.close();
  }
}

function toStruct(obj: Record<string, unknown>): { fields: Record<string, unknown> } {
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) fields[k] = toValue(v);
  return { fields };
}

// protobufjs defines google.protobuf.Value with camelCase fields even under keepCase.
function toValue(v: unknown): Record<string, unknown> {
  if (v === null || v === undefined) return { nullValue: 'NULL_VALUE' };
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(toValue) } };
  return { structValue: toStruct(v as Record<string, unknown>) };
}
