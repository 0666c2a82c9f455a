// Model and connection fixtures for xDS unit tests: real cache, fake stream.
import { BehaviorSubject, filter, type Observable } from 'rxjs';
import { mergeStates } from '../../../src/model/aggregate.ts';
import type { ModelSnapshot } from '../../../src/model/snapshot.ts';
import type { Endpoint, Service } from '../../../src/model/types.ts';
import { type Generation, XdsCache } from '../../../src/xds/cache.ts';
import { messageType } from '../../../src/xds/proto.ts';
import { proxyFromNode, type ProxyInfo } from '../../../src/xds/proxy.ts';
import type { ResourceSnapshot, SnapshotSource } from '../../../src/xds/server/types.ts';

const origin = { registry: 'memory://test', ref: 'test' };

export function service(host: string, port = 8080, protocol: Service['ports'][number]['protocol'] = 'HTTP'): Service {
  return {
    hostname: host,
    aliases: [],
    namespace: 'default',
    ports: [{ name: 'http', number: port, protocol }],
    addresses: [],
    resolution: 'STATIC',
    location: 'MESH_INTERNAL',
    interfaces: [],
    origin,
  };
}

export function endpoint(host: string, address: string): Endpoint {
  return { service: host, address, ports: {}, labels: {}, locality: {}, weight: 1, health: 'HEALTHY', origin };
}

export function model(services: Service[], endpoints: Endpoint[]): ModelSnapshot {
  return mergeStates([{ id: 'memory://test', synced: true, services, endpoints, workloads: [], rejections: [] }]);
}

/** A snapshot source fed by hand, built on the real cache. */
export class Source implements SnapshotSource {
  readonly cache = new XdsCache();
  private readonly subject = new BehaviorSubject<Generation | undefined>(undefined);
  readonly snapshots: Observable<ResourceSnapshot> = this.subject.pipe(filter((g): g is Generation => !!g));
  current(): ResourceSnapshot | undefined {
    return this.subject.value;
  }
  publish(m: ModelSnapshot): Generation {
    const g = this.cache.update(m);
    this.subject.next(g);
    return g;
  }
}

export interface Decoded {
  typeUrl: string;
  version: string;
  nonce: string;
  names: string[];
  removed: string[];
  versions: Record<string, string>;
  raw: Buffer;
}

const sotwResponse = messageType('envoy.service.discovery.v3.DiscoveryResponse');
const deltaResponse = messageType('envoy.service.discovery.v3.DeltaDiscoveryResponse');

function nameOf(typeUrl: string, value: Uint8Array): string {
  const t = messageType(typeUrl.replace('type.googleapis.com/', ''));
  const m = t.decode(value) as unknown as { name?: string; cluster_name?: string };
  return m.name ?? m.cluster_name ?? '';
}

/** Captures what a connection writes; `drain()` takes and decodes it. */
export class Sink {
  readonly writes: Buffer[] = [];
  private readonly delta: boolean;
  constructor(delta = false) {
    this.delta = delta;
  }
  write(parts: readonly Uint8Array[], done: () => void): boolean {
    this.writes.push(Buffer.concat(parts));
    setImmediate(done);
    return true;
  }
  drain(): Decoded[] {
    return this.writes.splice(0).map((raw) => {
      if (this.delta) {
        const r = deltaResponse.decode(raw) as unknown as {
          system_version_info: string;
          type_url: string;
          nonce: string;
          removed_resources: string[];
          resources: { name: string; version: string }[];
        };
        return {
          typeUrl: r.type_url,
          version: r.system_version_info,
          nonce: r.nonce,
          names: r.resources.map((x) => x.name),
          versions: Object.fromEntries(r.resources.map((x) => [x.name, x.version])),
          removed: r.removed_resources,
          raw,
        };
      }
      const r = sotwResponse.decode(raw) as unknown as { version_info: string; type_url: string; nonce: string; resources: { value: Uint8Array }[] };
      return { typeUrl: r.type_url, version: r.version_info, nonce: r.nonce, names: r.resources.map((x) => nameOf(r.type_url, x.value)), removed: [], versions: {}, raw };
    });
  }
}

export function proxy(id: string, metadata: Record<string, string> = {}, userAgent = 'envoy'): ProxyInfo {
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(metadata)) fields[k] = { stringValue: v };
  return proxyFromNode({ id, user_agent_name: userAgent, metadata: { fields } as never });
}

/** Lets the connection's flushes run: one response per write completion, each on setImmediate. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 40; i++) await new Promise((r) => setImmediate(r));
}
