// State-of-the-world ADS. Clusters and listeners are sent as whole sets; endpoints and
// routes only where they changed (the protocol lets omitted ones stand).
import { setVersion } from '../resource-sets.ts';
import { CLUSTER_TYPE, ENDPOINT_TYPE, isStateOfWorldType, isTypeUrl, type TypeUrl } from '../resources.ts';
import { encodeDiscoveryBody, nonceField } from '../wire.ts';
import { Connection, type Response } from './connection.ts';
import { encodeNames } from './names.ts';
import type { RawDiscoveryRequest } from './request.ts';
import { SotwSubscription } from './subscription.ts';
import type { Resource, ResourceSnapshot } from './types.ts';

/** A request as decoded: the names raw (from the wire) or as strings (tests, tools). */
export interface DiscoveryRequest {
  version_info?: string;
  resource_names?: string[];
  names_raw?: Buffer;
  type_url?: string;
  response_nonce?: string;
  error_detail?: RawDiscoveryRequest['error_detail'] | { code?: number; message?: string };
}

export class RequestError extends Error {}

/** Response bodies (everything but the nonce) of whole sets, shared by every proxy sent the same set. */
const setBodies = new WeakMap<ReadonlyMap<string, Resource>, { version: string; body: Buffer }>();

export class SotwConnection extends Connection<SotwSubscription> {
  readonly stream = 'sotw' as const;
  /** Version a reconnecting proxy says it holds, per type, until its first reconcile. */
  private readonly claimed = new Map<TypeUrl, string>();

  protected newSubscription(typeUrl: TypeUrl): SotwSubscription {
    return new SotwSubscription(typeUrl, this.shared.names);
  }

  handle(req: DiscoveryRequest): void {
    const typeUrl = req.type_url ?? '';
    if (!isTypeUrl(typeUrl)) throw new RequestError(`unsupported type_url "${typeUrl}"`);
    const sub = this.subscription(typeUrl);
    const nonce = req.response_nonce ?? '';
    if (nonce) {
      // A request answering an older response is stale: a newer response is on its way.
      if (nonce !== sub.sentNonce) return;
      if (req.error_detail) this.recordNack(sub, nonce, req.error_detail.message || `code ${req.error_detail.code ?? '?'}`);
      else this.recordAck(sub);
    } else if (req.version_info && sub.awaitingFirst) {
      this.claimed.set(typeUrl, req.version_info);
    }
    const namesChanged = sub.setNames(req.names_raw ?? encodeNames(req.resource_names ?? []));
    if (namesChanged || !nonce) this.markDirty(typeUrl, 'request');
  }

  protected compute(sub: SotwSubscription, snap: ResourceSnapshot): Response | null {
    const typeUrl = sub.typeUrl;
    const claimed = this.claimed.get(typeUrl);
    this.claimed.delete(typeUrl);

    if (isStateOfWorldType(typeUrl)) {
      // The wildcard version is memoized per class: compare it before looking at any set.
      const wildcardVersion = sub.wildcard ? snap.view(this.proxy).versions[typeUrl] : undefined;
      sub.syncedSeq = snap.seq;
      if (wildcardVersion !== undefined && wildcardVersion === sub.sentVersion && !sub.awaitingFirst) return null;
      const desired = sub.desired(snap, this.proxy);
      const version = wildcardVersion ?? setVersion(desired);
      if (version === sub.sentVersion && !sub.awaitingFirst) return null;
      const before = sub.sentSet;
      sub.sentSet = desired;
      if (claimed === version) {
        // A reconnecting proxy already holds exactly this: nothing to resend.
        sub.sentVersion = sub.ackedVersion = version;
        sub.awaitingFirst = false;
        return null;
      }
      if (typeUrl === CLUSTER_TYPE && before !== desired) {
        const resent: string[] = [];
        for (const [n, r] of desired) if (before?.get(n)?.version !== r.version) resent.push(n);
        this.resendEndpointsOf(resent);
      }
      let body = setBodies.get(desired);
      if (body?.version !== version) setBodies.set(desired, (body = { version, body: encodeDiscoveryBody(version, [...desired.values()].map((r) => r.any), typeUrl) }));
      return this.respond(sub, version, body.body, desired.size);
    }

    // Endpoints and routes: only what the proxy does not hold yet.
    const version = typeUrl === ENDPOINT_TYPE ? snap.endpointsVersion : setVersion(sub.desired(snap, this.proxy));
    if (claimed !== undefined && claimed === version) {
      sub.synced(snap.seq);
      sub.sentVersion = sub.ackedVersion = version;
      sub.awaitingFirst = false;
      return null;
    }
    const { names, key } = sub.candidates(snap, this.proxy, this.shared.changes);
    // Endpoints are the same for every proxy: a list's response is built once per generation.
    const list = typeUrl === ENDPOINT_TYPE && key !== undefined ? sub.list : undefined;
    if (list && list.memoSeq !== snap.seq) {
      list.memo.clear();
      list.memoSeq = snap.seq;
    }
    const memoKey = `${typeUrl} ${key}`;
    let built = list?.memo.get(memoKey);
    if (!built || built.version !== version) {
      const toSend: Uint8Array[] = [];
      for (const n of names) {
        const r = snap.resolve(typeUrl, n, this.proxy);
        if (r) toSend.push(r.any);
      }
      built = { version, resources: toSend.length, body: toSend.length ? encodeDiscoveryBody(version, toSend, typeUrl) : EMPTY };
      list?.memo.set(memoKey, built);
    }
    sub.synced(snap.seq);
    if (!built.resources) return null;
    return this.respond(sub, version, built.body, built.resources);
  }

  private respond(sub: SotwSubscription, version: string, body: Buffer, resources: number): Response {
    const nonce = this.nextNonce();
    sub.sentVersion = version;
    sub.sentNonce = nonce;
    // The body is shared by every proxy sent it: written as is, never copied per proxy.
    const tail = nonceField(nonce);
    return { parts: [body, tail], bytes: body.length + tail.length, resources };
  }
}

const EMPTY = Buffer.alloc(0);
