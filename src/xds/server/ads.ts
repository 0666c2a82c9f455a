// The AggregatedDiscoveryService front: decodes requests, dispatches to SotW or delta
// connections, and exposes status. It depends only on the SnapshotSource interface.
import type { Subscription as RxSubscription } from 'rxjs';
import { logger } from '../../shared/log.ts';
import { metrics } from '../../shared/metrics.ts';
import { decodeToJsonDeep, messageType } from '../proto.ts';
import { type DecodedNode, type ProxyInfo, ProxyMetadataError, proxyFromNode } from '../proxy.ts';
import { MESSAGE_OF, SHORT_NAME, TYPE_ORDER, type TypeUrl } from '../resources.ts';
import type { Connection, ConnectionHooks } from './connection.ts';
import { DeltaConnection, type DeltaDiscoveryRequest } from './delta.ts';
import { decodeDeltaRequest, decodeDiscoveryRequest, decodeDiscoveryRequestParts } from './request.ts';
import { newShared, type Shared } from './shared.ts';
import { type DiscoveryRequest, RequestError, SotwConnection } from './sotw.ts';
import { type CallHandlers, GrpcTransport, joinParts, type ServerCall, Status } from './transport.ts';
import type { ConnectionStatus, SnapshotSource } from './types.ts';

const log = logger('xds');
const connected = metrics.gauge('isthmus_xds_connected_proxies', 'Proxies connected over ADS, by stream kind.');
const pushes = metrics.counter('isthmus_xds_pushes_total', 'xDS responses sent, by type and reason.');
const pushBytes = metrics.counter('isthmus_xds_push_bytes_total', 'Bytes of xDS responses sent, by type.');
const nacks = metrics.counter('isthmus_xds_nacks_total', 'xDS responses rejected by proxies, by type.');
const rejected = metrics.counter('isthmus_xds_rejected_requests_total', 'Malformed or unsupported xDS requests, by reason.');
const generateErrors = metrics.counter('isthmus_xds_generate_errors_total', 'Failures to generate a proxy\'s resources, by type.');
const pushTime = metrics.histogram('isthmus_xds_push_seconds', 'Time from a new snapshot to every connection having flushed it.');

const SERVICE = '/envoy.service.discovery.v3.AggregatedDiscoveryService/';

/** A request that could not be decoded: answered by closing its stream with the reason. */
interface Malformed {
  readonly malformed: string;
}

/** Decoding errors become a value, so the stream is closed with what is wrong. */
function lenient<A extends unknown[], T>(decode: (...args: A) => T): (...args: A) => T | Malformed {
  return (...args) => {
    try {
      return decode(...args);
    } catch (e) {
      return { malformed: (e as Error).message };
    }
  };
}


export interface AdsServerOptions {
  /** Called when a snapshot has been offered to every connection. */
  onPushed?(seq: number, seconds: number): void;
  /** Bytes of responses in flight across all proxies before further ones wait (default 64 MiB). */
  maxInflightBytes?: number;
  /** Ping a connection silent this long (default 30 s, 0 never); unanswered within as long again, at most 10 s, it is closed. */
  keepaliveMs?: number;
  /** Request bytes received and not yet handled before streams stop being read (default 32 MiB). */
  intakeLimitBytes?: number;
}

export class AdsServer {
  private readonly server: GrpcTransport;
  private readonly connections = new Set<Connection>();
  private readonly source: SnapshotSource;
  private readonly hooks: ConnectionHooks;
  private snapshotSub?: RxSubscription;
  private readonly opts: AdsServerOptions;
  private readonly shared: Shared;

  constructor(source: SnapshotSource, opts: AdsServerOptions = {}) {
    this.source = source;
    this.opts = opts;
    this.shared = newShared(opts.maxInflightBytes);
    this.hooks = {
      onResponse: (_c, t, reason, _n, bytes) => {
        pushes.inc({ type: SHORT_NAME[t], reason });
        pushBytes.inc({ type: SHORT_NAME[t] }, bytes);
      },
      onError: (c, t, error) => {
        generateErrors.inc({ type: SHORT_NAME[t] });
        log.error('cannot generate config for proxy', { proxy: c.proxy.id, type: SHORT_NAME[t], error });
      },
      onNack: (c, t, nack) => {
        nacks.inc({ type: SHORT_NAME[t] });
        log.warn('proxy rejected config', { proxy: c.proxy.id, type: SHORT_NAME[t], version: nack.version, error: nack.message });
      },
    };
    const names = this.shared.names;
    const keepaliveMs = opts.keepaliveMs ?? 30_000;
    const decodeSotw = lenient((buf: Buffer) => decodeDiscoveryRequest(buf, names));
    const decodeSotwParts = lenient((parts: readonly Buffer[], length: number) => decodeDiscoveryRequestParts(parts, length, names, joinParts));
    const decodeDeltaLenient = lenient(decodeDeltaRequest);
    this.server = new GrpcTransport(
      new Map([
        [SERVICE + 'StreamAggregatedResources', (call: ServerCall) => this.serve(call, 'sotw', decodeSotw, decodeSotwParts)],
        [SERVICE + 'DeltaAggregatedResources', (call: ServerCall) => this.serve(call, 'delta', decodeDeltaLenient)],
      ]),
      // A 1 MiB window (once a connection has been served) takes a 250 KB SotW ACK in one go instead of four window round trips.
      { maxMessageBytes: 16 * 1024 * 1024, keepaliveMs, keepaliveTimeoutMs: Math.min(keepaliveMs, 10_000), receiveWindowBytes: 1 << 20, ...(opts.intakeLimitBytes ? { intakeLimitBytes: opts.intakeLimitBytes } : {}) },
    );
  }

  /** Binds and starts serving; returns the bound port. */
  async listen(address: string): Promise<number> {
    const port = await this.server.listen(address);
    this.snapshotSub = this.source.snapshots.subscribe((snap) => {
      const start = performance.now();
      this.shared.changes.record(snap);
      for (const c of this.connections) c.onSnapshot();
      // Flushes run on setImmediate; this one runs after all of them.
      setImmediate(() => {
        const seconds = (performance.now() - start) / 1000;
        pushTime.observe({}, seconds);
        this.opts.onPushed?.(snap.seq, seconds);
      });
    });
    return port;
  }

  /** Ends every stream with UNAVAILABLE, so proxies reconnect to the next instance at once; connections still open after 1 s are dropped. */
  async close(): Promise<void> {
    this.snapshotSub?.unsubscribe();
    for (const c of this.connections) c.close();
    await this.server.close();
  }

  /**
   * Resolves once every connected sidecar holds generation `seq` (ACKed), or after
   * `timeoutMs` with the ids of those that do not. Proxyless clients intercept nothing
   * and are not waited for.
   */
  async whenSynced(seq: number, timeoutMs: number): Promise<{ synced: boolean; lagging: string[] }> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const lagging = [...this.connections].filter((c) => c.proxy.kind === 'envoy' && !c.syncedAt(seq)).map((c) => c.proxy.id);
      if (!lagging.length) return { synced: true, lagging };
      if (performance.now() >= deadline) return { synced: false, lagging };
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  status(): ConnectionStatus[] {
    return [...this.connections].map((c) => c.status());
  }

  /** Every connected proxy and the address its stream comes from. */
  proxies(): { proxy: ProxyInfo; peer: string }[] {
    return [...this.connections].map((c) => ({ proxy: c.proxy, peer: c.peer }));
  }

  /** What a proxy was sent, decoded, per type. */
  configDump(proxyId: string): Record<string, unknown>[] | undefined {
    const conns = [...this.connections].filter((c) => c.proxy.id === proxyId);
    if (!conns.length) return undefined;
    const snap = this.source.current();
    return conns.map((c) => {
      const sent = c.sentResources();
      const types: Record<string, unknown> = {};
      for (const t of TYPE_ORDER) {
        const names = sent.get(t);
        if (!names) continue;
        types[SHORT_NAME[t]] = [...names].map(([name, version]) => {
          const r = snap?.resolve(t, name, c.proxy) ?? snap?.wildcard(t, c.proxy).get(name);
          const current = r && r.version === version;
          return { name, version, ...(current ? { resource: decodeAny(t, r.any) } : { note: 'sent version is no longer current' }) };
        });
      }
      return { proxy: c.proxy.id, connection: c.number, stream: c.stream, metadata: c.proxy.metadata, resources: types };
    });
  }

  private serve(
    call: ServerCall,
    kind: 'sotw' | 'delta',
    decode: (buf: Buffer) => (DiscoveryRequest | DeltaDiscoveryRequest) | Malformed,
    decodeParts?: (parts: readonly Buffer[], length: number) => DiscoveryRequest | Malformed,
  ): CallHandlers {
    let conn: SotwConnection | DeltaConnection | undefined;
    const done = (): void => {
      if (!conn) return;
      conn.close();
      if (this.connections.delete(conn)) {
        connected.dec({ stream: kind });
        log.info('proxy disconnected', { proxy: conn.proxy.id, connection: conn.number });
      }
    };
    const fail = (code: number, details: string): void => {
      rejected.inc({ reason: code === Status.INVALID_ARGUMENT ? 'invalid' : 'other' });
      log.warn('closing xDS stream', { peer: call.peer, proxy: conn?.proxy.id, error: details });
      call.finish(code, details);
      done();
    };
    const handle = (decoded: (DiscoveryRequest | DeltaDiscoveryRequest) | Malformed): void => {
      const req = decoded as ((DiscoveryRequest | DeltaDiscoveryRequest) & { node?: DecodedNode }) | Malformed;
      if ('malformed' in req) {
        // What the proxy was sent stays as it is; only this stream ends.
        fail(Status.INVALID_ARGUMENT, `malformed ${kind === 'sotw' ? 'DiscoveryRequest' : 'DeltaDiscoveryRequest'}: ${req.malformed}`);
        return;
      }
      try {
        if (!conn) {
          const proxy = proxyFromNode(req.node);
          const sink = { write: (parts: readonly Uint8Array[], written: () => void): boolean => call.write(parts, written) };
          conn =
            kind === 'sotw'
              ? new SotwConnection(proxy, call.peer, sink, this.source, this.hooks, this.shared)
              : new DeltaConnection(proxy, call.peer, sink, this.source, this.hooks, this.shared);
          this.connections.add(conn);
          connected.inc({ stream: kind });
          log.info('proxy connected', { proxy: proxy.id, connection: conn.number, stream: kind, kind: proxy.kind, peer: call.peer });
        }
        if (conn instanceof SotwConnection) conn.handle(req as DiscoveryRequest);
        else conn.handle(req as DeltaDiscoveryRequest);
      } catch (e) {
        if (e instanceof RequestError) {
          // An unsupported type is answered by silence, as Envoy tolerates; the stream stays up.
          rejected.inc({ reason: 'unsupported_type' });
          log.debug('ignoring request', { proxy: conn?.proxy.id, error: e.message });
        } else if (e instanceof ProxyMetadataError) {
          fail(Status.INVALID_ARGUMENT, e.message);
        } else {
          fail(Status.INTERNAL, `internal error: ${(e as Error).message}`);
          log.error('request handling failed', { error: e });
        }
      }
    };
    return {
      message: (buf) => handle(decode(buf)),
      ...(decodeParts ? { messageParts: (parts: readonly Buffer[], length: number) => handle(decodeParts(parts, length)) } : {}),
      end: () => {
        done();
        call.finish(Status.OK);
      },
      close: done,
    };
  }
}

function decodeAny(t: TypeUrl, any: Uint8Array): Record<string, unknown> {
  const value = (messageType('google.protobuf.Any').decode(any) as unknown as { value: Uint8Array }).value;
  return decodeToJsonDeep(MESSAGE_OF[t], value);
}
