// State-of-the-world ADS. Clusters and listeners are sent as whole sets; endpoints and
// routes only where they changed (the protocol lets omitted ones stand).
import { contentHash } from '../../model/hash.ts';
import { CLUSTER_TYPE, ENDPOINT_TYPE, isStateOfWorldType, isTypeUrl, type TypeUrl } from '../resources.ts';
import { encodeDiscoveryResponse } from '../wire.ts';
import { Connection } from './connection.ts';
import type { Subscription } from './subscription.ts';
import type { Resource, ResourceSnapshot } from './types.ts';

export interface DiscoveryRequest {
  version_info?: string;
  resource_names?: string[];
  type_url?: string;
  response_nonce?: string;
  error_detail?: { code?: number; message?: string } | null;
}

export class RequestError extends Error {}

function versionOf(resources: ReadonlyMap<string, Resource>): string {
  const parts: string[] = [];
  for (const [n, r] of resources) parts.push(n, r.version);
  return contentHash(parts.join('\n'));
}

export class SotwConnection extends Connection {
  readonly stream = 'sotw' as const;
  /** Version a reconnecting proxy says it holds, per type, until its first reconcile. */
  private readonly claimed = new Map<TypeUrl, string>();

  handle(req: DiscoveryRequest): void {
    const typeUrl = req.type_url ?? '';
    if (!isTypeUrl(typeUrl)) throw new RequestError(`unsupported type_url "${typeUrl}"`);
    const sub = this.subscription(typeUrl);
    const nonce = req.response_nonce ?? '';
    if (nonce) {
      // A request answering an older response is stale: a newer response is on its way.
      if (nonce !== sub.sentNonce) return;
      if (req.error_detail) this.recordNack(sub, nonce, req.error_detail.message ?? `code ${req.error_detail.code ?? '?'}`);
      else this.recordAck(sub);
    } else if (req.version_info && sub.awaitingFirst) {
      this.claimed.set(typeUrl, req.version_info);
    }
    const namesChanged = sub.setNames(req.resource_names ?? []);
    if (namesChanged || !nonce) this.markDirty(typeUrl, 'request');
  }

  protected compute(sub: Subscription, snap: ResourceSnapshot): { bytes: Buffer; resources: number } | null {
    const typeUrl = sub.typeUrl;
    const claimed = this.claimed.get(typeUrl);
    this.claimed.delete(typeUrl);

    if (isStateOfWorldType(typeUrl)) {
      // The wildcard version is memoized per class: compare it before copying any set.
      const wildcardVersion = sub.wildcard ? snap.view(this.proxy).versions[typeUrl] : undefined;
      sub.syncedSeq = snap.seq;
      if (wildcardVersion !== undefined && wildcardVersion === sub.sentVersion && !sub.awaitingFirst) return null;
      const desired = sub.desired(snap, this.proxy);
      const version = wildcardVersion ?? versionOf(desired);
      if (version === sub.sentVersion && !sub.awaitingFirst) return null;
      const before = new Map(sub.sent);
      sub.sent.clear();
      for (const [n, r] of desired) sub.sent.set(n, r.version);
      if (claimed === version) {
        // A reconnecting proxy already holds exactly this: nothing to resend.
        sub.sentVersion = sub.ackedVersion = version;
        sub.awaitingFirst = false;
        return null;
      }
      if (typeUrl === CLUSTER_TYPE) {
        const resent: string[] = [];
        for (const [n, r] of desired) if (before.get(n) !== r.version) resent.push(n);
        this.resendEndpointsOf(resent);
      }
      return this.respond(sub, version, [...desired.values()]);
    }

    // Endpoints and routes: only what the proxy does not hold yet.
    const version = typeUrl === ENDPOINT_TYPE ? snap.endpointsVersion : versionOf(sub.desired(snap, this.proxy));
    if (claimed !== undefined && claimed === version) {
      for (const [n, r] of sub.desired(snap, this.proxy)) sub.sent.set(n, r.version);
      sub.pending.clear();
      sub.syncedSeq = snap.seq;
      sub.sentVersion = sub.ackedVersion = version;
      sub.awaitingFirst = false;
      return null;
    }
    const toSend: Resource[] = [];
    for (const n of sub.candidates(snap, this.proxy)) {
      if (!sub.wildcard && !sub.names.has(n)) continue;
      const r = snap.resolve(typeUrl, n, this.proxy);
      if (r && sub.sent.get(n) !== r.version) toSend.push(r);
    }
    sub.pending.clear();
    sub.syncedSeq = snap.seq;
    if (!toSend.length) return null;
    for (const r of toSend) sub.sent.set(r.name, r.version);
    return this.respond(sub, version, toSend);
  }

  private respond(sub: Subscription, version: string, resources: Resource[]): { bytes: Buffer; resources: number } {
    const nonce = this.nextNonce();
    sub.sentVersion = version;
    sub.sentNonce = nonce;
    const bytes = encodeDiscoveryResponse(version, resources.map((r) => r.any), sub.typeUrl, nonce);
    return { bytes, resources: resources.length };
  }
}
