// One ADS stream. Requests update subscriptions; snapshots and requests mark types dirty;
// one flush at a time writes what each dirty type needs, in the order Envoy needs.
import type { ProxyInfo } from '../proxy.ts';
import { CLUSTER_TYPE, ENDPOINT_TYPE, TYPE_ORDER, type TypeUrl } from '../resources.ts';
import { Subscription } from './subscription.ts';
import type { ConnectionStatus, NackInfo, ResourceSnapshot, SnapshotSource } from './types.ts';

/** Where a connection reports what it did: metrics, logs, status. Every member optional. */
export interface ConnectionHooks {
  onResponse?(conn: Connection, typeUrl: TypeUrl, reason: PushReason, resources: number, bytes: number): void;
  onAck?(conn: Connection, typeUrl: TypeUrl, version: string): void;
  onNack?(conn: Connection, typeUrl: TypeUrl, nack: NackInfo): void;
  onError?(conn: Connection, typeUrl: TypeUrl, error: Error): void;
}

export type PushReason = 'request' | 'config';

/** The part of a gRPC duplex call a connection writes to. */
export interface ResponseSink {
  write(bytes: Buffer): boolean;
  once(event: 'drain', fn: () => void): unknown;
}

let connectionCounter = 0;

export abstract class Connection {
  readonly proxy: ProxyInfo;
  readonly number = ++connectionCounter;
  readonly peer: string;
  readonly connectedAt = new Date().toISOString();
  abstract readonly stream: 'sotw' | 'delta';
  protected readonly subs = new Map<TypeUrl, Subscription>();
  protected readonly source: SnapshotSource;
  protected readonly hooks: ConnectionHooks;
  private readonly sink: ResponseSink;
  private readonly dirty = new Map<TypeUrl, PushReason>();
  private scheduled = false;
  private blocked = false;
  private closed = false;
  private nonceCounter = 0;

  constructor(proxy: ProxyInfo, peer: string, sink: ResponseSink, source: SnapshotSource, hooks: ConnectionHooks) {
    this.proxy = proxy;
    this.peer = peer;
    this.sink = sink;
    this.source = source;
    this.hooks = hooks;
  }

  close(): void {
    this.closed = true;
  }

  /** A new snapshot: every subscribed type is reconciled; unchanged ones send nothing. */
  onSnapshot(): void {
    for (const t of this.subs.keys()) if (!this.dirty.has(t)) this.dirty.set(t, 'config');
    this.schedule();
  }

  protected markDirty(typeUrl: TypeUrl, reason: PushReason): void {
    this.dirty.set(typeUrl, reason);
    this.schedule();
  }

  protected subscription(typeUrl: TypeUrl): Subscription {
    let s = this.subs.get(typeUrl);
    if (!s) this.subs.set(typeUrl, (s = new Subscription(typeUrl)));
    return s;
  }

  protected nextNonce(): string {
    return (++this.nonceCounter).toString(36);
  }

  /** After clusters are (re)sent, Envoy warms them and needs their endpoints again. */
  protected resendEndpointsOf(clusterNames: Iterable<string>): void {
    const eds = this.subs.get(ENDPOINT_TYPE);
    if (!eds) return;
    let any = false;
    for (const n of clusterNames) {
      if (!eds.names.has(n) && !eds.wildcard) continue;
      eds.sent.delete(n);
      eds.pending.add(n);
      any = true;
    }
    if (any && !this.dirty.has(ENDPOINT_TYPE)) this.dirty.set(ENDPOINT_TYPE, 'config');
  }

  private schedule(): void {
    if (this.scheduled || this.blocked || this.closed) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  /** Writes what dirty types need. Stops when the stream pushes back and resumes on drain. */
  flush(): void {
    const snap = this.source.current();
    if (!snap || this.closed) return;
    for (const typeUrl of TYPE_ORDER) {
      if (this.blocked) return;
      const reason = this.dirty.get(typeUrl);
      if (!reason) continue;
      this.dirty.delete(typeUrl);
      const sub = this.subs.get(typeUrl);
      if (!sub) continue;
      let out;
      try {
        out = this.compute(sub, snap);
      } catch (e) {
        // A resource that cannot be generated for this proxy must not take the process down.
        this.hooks.onError?.(this, typeUrl, e as Error);
        continue;
      }
      if (!out) continue;
      sub.awaitingFirst = false;
      this.hooks.onResponse?.(this, typeUrl, reason, out.resources, out.bytes.length);
      if (!this.sink.write(out.bytes)) {
        this.blocked = true;
        this.sink.once('drain', () => {
          this.blocked = false;
          this.schedule();
        });
      }
    }
    // CDS may have marked EDS dirty after EDS was visited in this pass.
    if (this.dirty.size) this.schedule();
  }

  protected abstract compute(sub: Subscription, snap: ResourceSnapshot): { bytes: Buffer; resources: number } | null;

  protected recordNack(sub: Subscription, nonce: string, message: string): void {
    const nack: NackInfo = { version: sub.sentVersion, nonce, message, at: new Date().toISOString() };
    sub.nack = nack;
    this.hooks.onNack?.(this, sub.typeUrl, nack);
  }

  protected recordAck(sub: Subscription): void {
    sub.ackedVersion = sub.sentVersion;
    this.hooks.onAck?.(this, sub.typeUrl, sub.sentVersion);
  }

  /** Every subscribed type has been reconciled against generation `seq` and nothing sent is un-ACKed. */
  syncedAt(seq: number): boolean {
    for (const s of this.subs.values()) {
      if (s.syncedSeq < seq) return false;
      if (s.sentNonce && s.ackedVersion !== s.sentVersion) return false;
    }
    return this.subs.size > 0;
  }

  status(): ConnectionStatus {
    return {
      id: this.proxy.id,
      connection: this.number,
      stream: this.stream,
      kind: this.proxy.kind,
      peer: this.peer,
      connectedAt: this.connectedAt,
      types: TYPE_ORDER.filter((t) => this.subs.has(t)).map((t) => this.subs.get(t)!.status()),
    };
  }

  /** Names and versions this proxy was sent, per type, for config dumps. */
  sentResources(): Map<TypeUrl, Map<string, string>> {
    const out = new Map<TypeUrl, Map<string, string>>();
    for (const [t, s] of this.subs) out.set(t, new Map([...s.sent].filter(([, v]) => v)));
    return out;
  }

  protected isClusterType(t: TypeUrl): boolean {
    return t === CLUSTER_TYPE;
  }
}
