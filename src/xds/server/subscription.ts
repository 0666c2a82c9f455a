// Per connection and type: what the proxy asked for, what it was sent, what it ACKed.
import type { NackInfo, Resource, ResourceSnapshot, SyncStatus, TypeStatus } from './types.ts';
import type { ProxyInfo } from '../proxy.ts';
import type { TypeUrl } from '../resources.ts';

export class Subscription {
  readonly typeUrl: TypeUrl;
  wildcard = false;
  readonly names = new Set<string>();
  /** Name → version the proxy holds as far as we know; '' means told it does not exist. */
  readonly sent = new Map<string, string>();
  /** Names to look at on the next flush regardless of what changed in the model. */
  readonly pending = new Set<string>();
  /** Generation the sent map was last reconciled against, for incremental diffs. */
  syncedSeq = -1;
  /** Version of the wildcard set last reconciled, for wildcard types. */
  viewVersion = '';
  sentVersion = '';
  sentNonce = '';
  ackedVersion = '';
  nack?: NackInfo;
  /** The names of the last SotW request, as sent. */
  private lastNames?: readonly string[];
  /** A response was never sent and the proxy is waiting for its first one. */
  awaitingFirst = true;

  constructor(typeUrl: TypeUrl) {
    this.typeUrl = typeUrl;
  }

  /** Names to reconcile against `snap`: only what changed, when the last reconcile was the generation before. */
  candidates(snap: ResourceSnapshot, proxy: ProxyInfo): Iterable<string> {
    if (this.wildcard) {
      const all = new Set(snap.wildcard(this.typeUrl, proxy).keys());
      for (const n of this.sent.keys()) all.add(n);
      return all;
    }
    if (this.syncedSeq === snap.seq) return [...this.pending];
    if (this.syncedSeq === snap.seq - 1) {
      const out = new Set(this.pending);
      for (const n of snap.changed.get(this.typeUrl) ?? []) if (this.names.has(n)) out.add(n);
      return out;
    }
    return new Set([...this.names, ...this.pending]);
  }

  desired(snap: ResourceSnapshot, proxy: ProxyInfo): ReadonlyMap<string, Resource> {
    if (this.wildcard) return snap.wildcard(this.typeUrl, proxy);
    const out = new Map<string, Resource>();
    for (const n of this.names) {
      const r = snap.resolve(this.typeUrl, n, proxy);
      if (r) out.set(n, r);
    }
    return out;
  }

  /** Replaces the subscribed set (SotW semantics); returns true if it changed. */
  setNames(names: readonly string[]): boolean {
    // ACKs repeat the same list in the same order: recognise that without hashing or copying.
    if (this.lastNames && sameList(names, this.lastNames)) return false;
    this.lastNames = names;
    const wildcard = names.length === 0 || names.includes('*');
    const list = names.filter((n) => n !== '*');
    const changed = wildcard !== this.wildcard || list.length !== this.names.size || list.some((n) => !this.names.has(n));
    this.wildcard = wildcard;
    if (!changed) return false;
    const next = new Set(list);
    for (const n of this.names) if (!next.has(n)) {
      this.names.delete(n);
      this.sent.delete(n);
    }
    for (const n of next) if (!this.names.has(n)) {
      this.names.add(n);
      this.pending.add(n);
    }
    return true;
  }

  status(): TypeStatus {
    let status: SyncStatus;
    if (this.nack && this.nack.nonce === this.sentNonce) status = 'NACKED';
    // A reconnecting proxy that already holds the current version is synced without a response.
    else if (!this.sentVersion) status = 'NOT_SENT';
    else status = this.ackedVersion === this.sentVersion ? 'SYNCED' : 'STALE';
    return {
      typeUrl: this.typeUrl,
      subscribed: this.wildcard ? 'wildcard' : this.names.size,
      sentVersion: this.sentVersion,
      sentNonce: this.sentNonce,
      ackedVersion: this.ackedVersion,
      status,
      ...(this.nack ? { nack: this.nack } : {}),
      resources: [...this.sent.values()].filter(Boolean).length,
    };
  }
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
