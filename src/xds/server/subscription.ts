// Per connection and type: what the proxy asked for, what it holds, what it ACKed.
import type { NackInfo, Resource, ResourceSnapshot, SyncStatus, TypeStatus } from './types.ts';
import type { ProxyInfo } from '../proxy.ts';
import { isStateOfWorldType, type TypeUrl } from '../resources.ts';
import type { NameList, NameTable, SetTable } from './names.ts';
import type { ChangeLog } from './shared.ts';

export abstract class Subscription {
  readonly typeUrl: TypeUrl;
  wildcard = false;
  /** Generation the proxy's resources were last reconciled against. */
  syncedSeq = -1;
  sentVersion = '';
  sentNonce = '';
  ackedVersion = '';
  nack?: NackInfo;
  /** A response was never sent and the proxy is waiting for its first one. */
  awaitingFirst = true;

  constructor(typeUrl: TypeUrl) {
    this.typeUrl = typeUrl;
  }

  /** Clusters were re-sent: Envoy warms them and needs these endpoints again. Returns true if any is subscribed. */
  abstract resend(names: readonly string[]): boolean;
  /** Name → version of what the proxy was sent, for config dumps. */
  abstract held(snap: ResourceSnapshot | undefined, proxy: ProxyInfo): Map<string, string>;
  protected abstract subscribed(): number;
  protected abstract heldCount(): number;
  /** Returns what this subscription holds on to, when its connection ends. */
  dispose(): void {}

  status(): TypeStatus {
    let status: SyncStatus;
    if (this.nack && this.nack.nonce === this.sentNonce) status = 'NACKED';
    // A reconnecting proxy that already holds the current version is synced without a response.
    else if (!this.sentVersion) status = 'NOT_SENT';
    else status = this.ackedVersion === this.sentVersion ? 'SYNCED' : 'STALE';
    return {
      typeUrl: this.typeUrl,
      subscribed: this.wildcard ? 'wildcard' : this.subscribed(),
      sentVersion: this.sentVersion,
      sentNonce: this.sentNonce,
      ackedVersion: this.ackedVersion,
      status,
      ...(this.nack ? { nack: this.nack } : {}),
      resources: this.heldCount(),
    };
  }
}

/**
 * SotW: the subscribed names are an interned list shared with every proxy asking for the
 * same; what a proxy holds is implied by the generation it was synced to, plus the names
 * still to send. Memory per proxy does not grow with the number of resources.
 */
export class SotwSubscription extends Subscription {
  private readonly table: NameTable;
  list?: NameList;
  /** Clusters and listeners: the set last sent, shared with the snapshot it came from. */
  sentSet?: ReadonlyMap<string, Resource>;
  /** Endpoints and routes: names to send on the next flush whatever changed in the model. */
  readonly pending = new Set<string>();
  /** Every subscribed name is to be sent. */
  pendingAll = false;

  constructor(typeUrl: TypeUrl, table: NameTable) {
    super(typeUrl);
    this.table = table;
  }

  /** Replaces the subscribed set; returns true if it changed. */
  setNames(raw: Buffer): boolean {
    const old = this.list;
    // ACKs repeat the same list: the decoder hands back the interned bytes, or one memcmp.
    if (old && (old.raw === raw || old.raw.equals(raw))) return false;
    const list = this.table.acquire(raw);
    this.list = list;
    this.table.release(old);
    const wasWildcard = this.wildcard;
    this.wildcard = list.wildcard;
    if (!old || list.wildcard !== wasWildcard) {
      this.pendingAll = true;
      this.pending.clear();
      return true;
    }
    let changed = old.set.size !== list.set.size;
    for (const n of list.names) if (!old.set.has(n)) {
      this.pending.add(n);
      changed = true;
    }
    for (const n of this.pending) if (!list.set.has(n)) this.pending.delete(n);
    return changed;
  }

  resend(names: readonly string[]): boolean {
    if (!this.list || this.pendingAll) return this.pendingAll;
    let any = false;
    for (const n of names) {
      if (!this.wildcard && !this.list.set.has(n)) continue;
      this.pending.add(n);
      any = true;
    }
    return any;
  }

  /** Names of every subscribed resource that exists (wildcard) or was asked for. */
  private all(snap: ResourceSnapshot, proxy: ProxyInfo): Iterable<string> {
    return this.wildcard ? snap.wildcard(this.typeUrl, proxy).keys() : (this.list?.names ?? []);
  }

  /**
   * Names whose resource may differ from what the proxy holds. `key` is set when the answer
   * depends only on the list and the generations, so that the response can be shared.
   */
  candidates(snap: ResourceSnapshot, proxy: ProxyInfo, changes: ChangeLog): { names: Iterable<string>; key?: string } {
    if (this.pendingAll || this.syncedSeq < 0) return { names: this.all(snap, proxy), key: 'all' };
    const since = changes.since(this.typeUrl, this.syncedSeq, snap);
    if (!since) return { names: this.all(snap, proxy), key: 'all' };
    const member = (n: string): boolean => this.wildcard || this.list!.set.has(n);
    if (!this.pending.size) {
      const out: string[] = [];
      for (const n of since) if (member(n)) out.push(n);
      return { names: out, key: `from ${this.syncedSeq}` };
    }
    const out = new Set(this.pending);
    for (const n of since) if (member(n)) out.add(n);
    return { names: out };
  }

  /** What a state-of-the-world type (clusters, listeners) should hold now. */
  desired(snap: ResourceSnapshot, proxy: ProxyInfo): ReadonlyMap<string, Resource> {
    if (this.wildcard) return snap.wildcard(this.typeUrl, proxy);
    const out = new Map<string, Resource>();
    for (const n of this.list?.names ?? []) {
      const r = snap.resolve(this.typeUrl, n, proxy);
      if (r) out.set(n, r);
    }
    return out;
  }

  /** The proxy now holds generation `seq` of everything it subscribes to. */
  synced(seq: number): void {
    this.syncedSeq = seq;
    this.pending.clear();
    this.pendingAll = false;
  }

  held(snap: ResourceSnapshot | undefined, proxy: ProxyInfo): Map<string, string> {
    const out = new Map<string, string>();
    if (isStateOfWorldType(this.typeUrl)) {
      for (const [n, r] of this.sentSet ?? []) out.set(n, r.version);
      return out;
    }
    if (!snap || this.syncedSeq < 0) return out;
    const stale = this.syncedSeq === snap.seq ? new Set<string>() : new Set(snap.changed.get(this.typeUrl) ?? []);
    for (const n of this.all(snap, proxy)) {
      if (this.pendingAll || this.pending.has(n)) continue;
      const r = snap.resolve(this.typeUrl, n, proxy);
      if (r) out.set(n, stale.has(n) ? 'stale' : r.version);
    }
    return out;
  }

  protected subscribed(): number {
    return this.list?.set.size ?? 0;
  }

  protected heldCount(): number {
    if (isStateOfWorldType(this.typeUrl)) return this.sentSet?.size ?? 0;
    if (this.syncedSeq < 0 || this.pendingAll) return 0;
    return Math.max(0, (this.wildcard ? 0 : this.subscribed()) - this.pending.size);
  }

  dispose(): void {
    this.table.release(this.list);
    this.list = undefined;
  }
}

/**
 * initial_resource_versions, checked against generation `seq` as they arrive: only what the
 * proxy does not hold is kept, so a thousand reconnecting proxies do not each keep a map of
 * every resource they hold.
 */
export interface Claims {
  readonly seq: number;
  /** Names of the proxy's set at `seq` that it does not hold at that generation's version. */
  readonly notHeld: ReadonlySet<string>;
  /** Names it claimed that were not in its set at `seq`. */
  readonly absent: readonly string[];
}

/**
 * Delta: explicit subscriptions (an interned set, shared by proxies subscribed to the same
 * names) and, as for SotW, what the proxy holds implied by the generation it was synced to.
 * Per-resource versions are kept only for what a reconnecting proxy says it holds, until
 * its first response.
 */
export class DeltaSubscription extends Subscription {
  private readonly table: SetTable;
  names: ReadonlySet<string>;
  /** Wildcard: the set last sent, shared with the snapshot it came from. */
  sentSet?: ReadonlyMap<string, Resource>;
  /** What a reconnecting proxy said it holds, until its first response. */
  claims?: Claims;
  /** Names to send on the next flush whatever changed in the model. */
  readonly pending = new Set<string>();
  /** Version of the wildcard set last reconciled. */
  viewVersion = '';

  constructor(typeUrl: TypeUrl, table: SetTable) {
    super(typeUrl);
    this.table = table;
    this.names = table.acquire(new Set());
  }

  /** Applies subscribe/unsubscribe; returns the names newly subscribed. */
  update(subscribe: readonly string[], unsubscribe: readonly string[]): string[] {
    const added: string[] = [];
    let next: Set<string> | undefined;
    for (const n of subscribe) {
      if (n === '*') this.wildcard = true;
      else if (!this.names.has(n) && !next?.has(n)) {
        (next ??= new Set(this.names)).add(n);
        added.push(n);
      }
    }
    for (const n of unsubscribe) {
      if (n === '*') this.wildcard = false;
      else if (next?.has(n) ?? this.names.has(n)) {
        (next ??= new Set(this.names)).delete(n);
        this.pending.delete(n);
      }
    }
    if (next) {
      const old = this.names;
      this.names = this.table.acquire(next);
      this.table.release(old);
    }
    for (const n of added) this.pending.add(n);
    return added;
  }

  /** Explicit names to reconcile: what is pending and what changed since the last sync, or all when that is not known. */
  candidates(snap: ResourceSnapshot, changes: ChangeLog, reconnecting: boolean): Iterable<string> {
    const since = this.syncedSeq < 0 || reconnecting ? undefined : changes.since(this.typeUrl, this.syncedSeq, snap);
    if (!since) {
      // Usually every pending name is subscribed: the shared set as it is, not a copy.
      for (const n of this.pending) if (!this.names.has(n)) return new Set([...this.names, ...this.pending]);
      return this.names;
    }
    if (!this.pending.size) {
      const out: string[] = [];
      for (const n of since) if (this.names.has(n)) out.push(n);
      return out;
    }
    const out = new Set(this.pending);
    for (const n of since) if (this.names.has(n)) out.add(n);
    return out;
  }

  resend(names: readonly string[]): boolean {
    let any = false;
    for (const n of names) {
      if (!this.names.has(n) && !this.wildcard) continue;
      this.pending.add(n);
      any = true;
    }
    return any;
  }

  held(snap: ResourceSnapshot | undefined, proxy: ProxyInfo): Map<string, string> {
    const out = new Map<string, string>();
    for (const [n, r] of this.sentSet ?? []) out.set(n, r.version);
    if (!snap || this.syncedSeq < 0) return out;
    for (const n of this.names) {
      if (this.pending.has(n) || out.has(n)) continue;
      const r = snap.resolve(this.typeUrl, n, proxy);
      if (r) out.set(n, this.syncedSeq === snap.seq ? r.version : 'stale');
    }
    return out;
  }

  protected subscribed(): number {
    return this.names.size;
  }

  protected heldCount(): number {
    if (this.syncedSeq < 0) return 0;
    return (this.sentSet?.size ?? 0) + Math.max(0, this.names.size - this.pending.size);
  }

  dispose(): void {
    this.table.release(this.names);
  }
}
