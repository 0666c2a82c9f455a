// One ADS stream. Requests update subscriptions; snapshots and requests mark types dirty;
// one flush at a time writes what each dirty type needs, in the order Envoy needs.
import type { ProxyInfo } from '../proxy.ts';
import { CLUSTER_TYPE, ENDPOINT_TYPE, TYPE_ORDER, type TypeUrl } from '../resources.ts';
import { newShared, type Shared } from './shared.ts';
import type { Subscription } from './subscription.ts';
import type { ConnectionStatus, NackInfo, ResourceSnapshot, SnapshotSource } from './types.ts';

/** Where a connection reports what it did: metrics, logs, status. Every member optional. */
export interface ConnectionHooks {
  onResponse?(conn: Connection, typeUrl: TypeUrl, reason: PushReason, resources: number, bytes: number): void;
  onAck?(conn: Connection, typeUrl: TypeUrl, version: string): void;
  onNack?(conn: Connection, typeUrl: TypeUrl, nack: NackInfo): void;
  onError?(conn: Connection, typeUrl: TypeUrl, error: Error): void;
}

export type PushReason = 'request' | 'config';

/** The part of a gRPC call a connection writes to. */
export interface ResponseSink {
  /** One message from its parts, in order; `done` runs once the bytes have left for the proxy. */
  write(parts: readonly Uint8Array[], done: () => void): boolean;
}

/** A response as its parts (a shared body, then what is this proxy's own) and their total size. */
export interface Response {
  parts: readonly Uint8Array[];
  bytes: number;
  resources: number;
}

/** A write taking longer than this stops counting against the shared budget: one slow proxy must not stall the rest. */
const PARK_AFTER_MS = 5000;

let connectionCounter = 0;

export abstract class Connection<S extends Subscription = Subscription> {
  readonly proxy: ProxyInfo;
  readonly number = ++connectionCounter;
  readonly peer: string;
  readonly connectedAt = new Date().toISOString();
  abstract readonly stream: 'sotw' | 'delta';
  protected readonly subs = new Map<TypeUrl, S>();
  protected readonly source: SnapshotSource;
  protected readonly hooks: ConnectionHooks;
  protected readonly shared: Shared;
  private readonly sink: ResponseSink;
  private readonly dirty = new Map<TypeUrl, PushReason>();
  private scheduled = false;
  /** One response is being written; `budgeted` of its bytes count against the shared budget. */
  private writing = false;
  private budgeted = 0;
  private parked = false;
  private parkTimer?: NodeJS.Timeout;
  closed = false;
  private nonceCounter = 0;

  constructor(proxy: ProxyInfo, peer: string, sink: ResponseSink, source: SnapshotSource, hooks: ConnectionHooks, shared: Shared = newShared()) {
    this.proxy = proxy;
    this.peer = peer;
    this.sink = sink;
    this.source = source;
    this.hooks = hooks;
    this.shared = shared;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.written();
    this.shared.budget.forget(this);
    for (const s of this.subs.values()) s.dispose();
  }

  protected abstract newSubscription(typeUrl: TypeUrl): S;

  /** A new snapshot: every subscribed type is reconciled; unchanged ones send nothing. */
  onSnapshot(): void {
    for (const t of this.subs.keys()) if (!this.dirty.has(t)) this.dirty.set(t, 'config');
    this.schedule();
  }

  protected markDirty(typeUrl: TypeUrl, reason: PushReason): void {
    this.dirty.set(typeUrl, reason);
    this.schedule();
  }

  protected subscription(typeUrl: TypeUrl): S {
    let s = this.subs.get(typeUrl);
    if (!s) this.subs.set(typeUrl, (s = this.newSubscription(typeUrl)));
    return s;
  }

  protected nextNonce(): string {
    return (++this.nonceCounter).toString(36);
  }

  /** After clusters are (re)sent, Envoy warms them and needs their endpoints again. */
  protected resendEndpointsOf(clusterNames: readonly string[]): void {
    const eds = this.subs.get(ENDPOINT_TYPE);
    if (eds?.resend(clusterNames) && !this.dirty.has(ENDPOINT_TYPE)) this.dirty.set(ENDPOINT_TYPE, 'config');
  }

  private schedule(): void {
    if (this.scheduled || this.writing || this.closed) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  /**
   * Writes the first dirty type's response, in the order Envoy needs, then waits until it
   * has left before the next: a proxy has at most one response in flight, and all proxies
   * together no more than the shared budget.
   */
  flush(): void {
    const snap = this.source.current();
    if (!snap || this.closed || this.writing) return;
    for (const typeUrl of TYPE_ORDER) {
      const reason = this.dirty.get(typeUrl);
      if (!reason) continue;
      const sub = this.subs.get(typeUrl);
      if (!sub) {
        this.dirty.delete(typeUrl);
        continue;
      }
      if (!this.shared.budget.admit(this)) return;
      this.dirty.delete(typeUrl);
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
      this.hooks.onResponse?.(this, typeUrl, reason, out.resources, out.bytes);
      this.send(out);
      return;
    }
  }

  private send(out: Response): void {
    this.writing = true;
    this.budgeted = out.bytes;
    this.shared.budget.started(out.bytes);
    this.parkTimer = setTimeout(() => this.park(), PARK_AFTER_MS);
    this.parkTimer.unref();
    this.sink.write(out.parts, () => {
      // A connection closed meanwhile has released its budget already.
      if (!this.writing) return;
      this.written();
      this.schedule();
    });
  }

  /** The proxy is slow to take its response: keep waiting for it, outside the budget if there is room. */
  private park(): void {
    if (!this.budgeted || this.parked || this.closed) return;
    if (this.shared.budget.park(this.budgeted)) this.parked = true;
    else {
      this.parkTimer = setTimeout(() => this.park(), PARK_AFTER_MS);
      this.parkTimer.unref();
    }
  }

  /** The response in flight has been written (or never will be): release its budget. */
  private written(): void {
    clearTimeout(this.parkTimer);
    if (this.parked) this.shared.budget.unpark(this.budgeted);
    else if (this.budgeted) this.shared.budget.finished(this.budgeted);
    this.budgeted = 0;
    this.parked = false;
    this.writing = false;
  }

  protected abstract compute(sub: S, snap: ResourceSnapshot): Response | null;

  protected recordNack(sub: S, nonce: string, message: string): void {
    const nack: NackInfo = { version: sub.sentVersion, nonce, message, at: new Date().toISOString() };
    sub.nack = nack;
    this.hooks.onNack?.(this, sub.typeUrl, nack);
  }

  protected recordAck(sub: S): void {
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
    const snap = this.source.current();
    for (const [t, s] of this.subs) out.set(t, s.held(snap, this.proxy));
    return out;
  }

  protected isClusterType(t: TypeUrl): boolean {
    return t === CLUSTER_TYPE;
  }
}
