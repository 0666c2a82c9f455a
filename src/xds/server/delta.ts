// Incremental (delta) ADS: per-resource versions, explicit subscribe/unsubscribe, removals.
import { CLUSTER_TYPE, isTypeUrl, type TypeUrl } from '../resources.ts';
import { encodeDeltaDiscoveryResponse } from '../wire.ts';
import { Connection } from './connection.ts';
import { RequestError } from './sotw.ts';
import { DeltaSubscription } from './subscription.ts';
import type { Resource, ResourceSnapshot } from './types.ts';

export interface DeltaDiscoveryRequest {
  type_url?: string;
  resource_names_subscribe?: string[];
  resource_names_unsubscribe?: string[];
  initial_resource_versions?: Record<string, string>;
  response_nonce?: string;
  error_detail?: { code?: number; message?: string } | null;
}

export class DeltaConnection extends Connection<DeltaSubscription> {
  readonly stream = 'delta' as const;
  private readonly seen = new Set<string>();

  protected newSubscription(typeUrl: TypeUrl): DeltaSubscription {
    return new DeltaSubscription(typeUrl);
  }

  handle(req: DeltaDiscoveryRequest): void {
    const typeUrl = req.type_url ?? '';
    if (!isTypeUrl(typeUrl)) throw new RequestError(`unsupported type_url "${typeUrl}"`);
    const sub = this.subscription(typeUrl);
    const first = !this.seen.has(typeUrl);
    this.seen.add(typeUrl);
    const nonce = req.response_nonce ?? '';
    if (nonce && nonce === sub.sentNonce) {
      if (req.error_detail) this.recordNack(sub, nonce, req.error_detail.message ?? `code ${req.error_detail.code ?? '?'}`);
      else this.recordAck(sub);
    }
    const subscribe = req.resource_names_subscribe ?? [];
    const unsubscribe = req.resource_names_unsubscribe ?? [];
    if (first) {
      // What a reconnecting client already holds is not sent again.
      for (const [n, v] of Object.entries(req.initial_resource_versions ?? {})) sub.sent.set(n, v);
      if (subscribe.length === 0) sub.wildcard = true;
    }
    let changed = first;
    for (const n of subscribe) {
      if (n === '*') sub.wildcard = true;
      else if (!sub.names.has(n)) {
        sub.names.add(n);
        sub.pending.add(n);
      }
      changed = true;
    }
    for (const n of unsubscribe) {
      if (n === '*') sub.wildcard = false;
      else {
        sub.names.delete(n);
        if (!sub.wildcard) sub.sent.delete(n);
      }
      changed = true;
    }
    if (changed) this.markDirty(typeUrl, 'request');
  }

  protected compute(sub: DeltaSubscription, snap: ResourceSnapshot): { bytes: Buffer; resources: number } | null {
    const typeUrl = sub.typeUrl;
    let desired: ReadonlyMap<string, Resource> | undefined;
    if (sub.wildcard) {
      const viewVersion = snap.view(this.proxy).versions[typeUrl];
      if (viewVersion === sub.viewVersion && sub.pending.size === 0 && !sub.awaitingFirst) {
        sub.syncedSeq = snap.seq;
        return null;
      }
      sub.viewVersion = viewVersion;
      desired = snap.wildcard(typeUrl, this.proxy);
    }
    const toSend: Resource[] = [];
    const removed: string[] = [];
    for (const n of sub.candidates(snap, this.proxy, this.shared.changes)) {
      const r = desired ? desired.get(n) ?? (sub.names.has(n) ? snap.resolve(typeUrl, n, this.proxy) : undefined) : sub.names.has(n) ? snap.resolve(typeUrl, n, this.proxy) : undefined;
      if (r) {
        if (sub.sent.get(n) !== r.version) {
          toSend.push(r);
          sub.sent.set(n, r.version);
        }
      } else if (sub.names.has(n)) {
        // Subscribed by name but absent: say so once, so clients need not wait for a timeout.
        if (sub.sent.get(n) !== '') {
          removed.push(n);
          sub.sent.set(n, '');
        }
      } else if (sub.sent.has(n)) {
        removed.push(n);
        sub.sent.delete(n);
      }
    }
    sub.pending.clear();
    sub.syncedSeq = snap.seq;
    if (!toSend.length && !removed.length && !sub.awaitingFirst) return null;
    if (typeUrl === CLUSTER_TYPE) this.resendEndpointsOf(toSend.map((r) => r.name));
    const nonce = this.nextNonce();
    sub.sentVersion = snap.model.version;
    sub.sentNonce = nonce;
    const bytes = encodeDeltaDiscoveryResponse(snap.model.version, toSend.map((r) => r.deltaBytes()), typeUrl, nonce, removed);
    return { bytes, resources: toSend.length };
  }
}
