// Incremental (delta) ADS: per-resource versions, explicit subscribe/unsubscribe, removals.
import { CLUSTER_TYPE, isTypeUrl, type TypeUrl } from '../resources.ts';
import { encodeDeltaBody, nonceField } from '../wire.ts';
import { Connection, type Response } from './connection.ts';
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
    return new DeltaSubscription(typeUrl, this.shared.sets);
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
      const claims = Object.entries(req.initial_resource_versions ?? {});
      if (claims.length) sub.claims = new Map(claims);
      if (subscribe.length === 0) sub.wildcard = true;
    }
    sub.update(subscribe, unsubscribe);
    if (first || subscribe.length || unsubscribe.length) this.markDirty(typeUrl, 'request');
  }

  protected compute(sub: DeltaSubscription, snap: ResourceSnapshot): Response | null {
    const typeUrl = sub.typeUrl;
    const claims = sub.claims;
    sub.claims = undefined;
    const toSend: Resource[] = [];
    const removed: string[] = [];
    const holds = (n: string, r: Resource): boolean => claims?.get(n) === r.version;

    if (sub.wildcard) {
      const viewVersion = snap.view(this.proxy).versions[typeUrl];
      if (viewVersion !== sub.viewVersion || sub.awaitingFirst || claims) {
        sub.viewVersion = viewVersion;
        const desired = snap.wildcard(typeUrl, this.proxy);
        const before = sub.sentSet;
        sub.sentSet = desired;
        if (claims) {
          for (const [n, r] of desired) if (!holds(n, r)) toSend.push(r);
          for (const n of claims.keys()) if (!desired.has(n) && !sub.names.has(n)) removed.push(n);
        } else {
          const d = diffSets(before, desired);
          toSend.push(...d.changed);
          removed.push(...d.removed.filter((n) => !sub.names.has(n)));
        }
      }
    }
    // Pending and explicitly subscribed names (beyond what the wildcard set covered).
    const covered = sub.wildcard ? sub.sentSet : undefined;
    const sentNow = new Set(toSend.map((r) => r.name));
    for (const n of sub.candidates(snap, this.shared.changes, claims !== undefined)) {
      if (sentNow.has(n)) continue;
      const r = covered?.get(n) ?? (sub.names.has(n) ? snap.resolve(typeUrl, n, this.proxy) : undefined);
      if (r) {
        if (covered?.has(n) && !sub.pending.has(n)) continue;
        if (!holds(n, r)) toSend.push(r);
      } else if (sub.names.has(n)) {
        // Subscribed by name but absent: say so, so clients need not wait for a timeout.
        removed.push(n);
      }
    }
    sub.pending.clear();
    sub.syncedSeq = snap.seq;
    if (!toSend.length && !removed.length && !sub.awaitingFirst) return null;
    if (typeUrl === CLUSTER_TYPE) this.resendEndpointsOf(toSend.map((r) => r.name));
    const nonce = this.nextNonce();
    sub.sentVersion = snap.model.version;
    sub.sentNonce = nonce;
    const body = sharedBody(snap.seq, snap.model.version, typeUrl, toSend, removed);
    const tail = nonceField(nonce);
    return { parts: [body, tail], bytes: body.length + tail.length, resources: toSend.length };
  }
}

/** Bodies built for the current generation, per type: proxies syncing alike are sent the same bytes. */
const bodies = new Map<TypeUrl, { seq: number; built: { resources: readonly Resource[]; removed: readonly string[]; body: Buffer }[] }>();
/** Bodies kept per type and generation; the oldest goes first. */
const BODIES_KEPT = 4;

function sameItems<T>(a: readonly T[], b: readonly T[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The response body (all but the nonce) for these resources and removals. A thousand
 * proxies subscribing alike get the same list of the same resource objects: one compare
 * by identity instead of encoding megabytes per proxy.
 */
function sharedBody(seq: number, version: string, typeUrl: TypeUrl, resources: readonly Resource[], removed: readonly string[]): Buffer {
  let memo = bodies.get(typeUrl);
  if (!memo || memo.seq !== seq) bodies.set(typeUrl, (memo = { seq, built: [] }));
  const hit = memo.built.find((b) => sameItems(b.resources, resources) && sameItems(b.removed, removed));
  if (hit) return hit.body;
  const body = encodeDeltaBody(version, resources.map((r) => r.deltaBytes()), typeUrl, removed);
  memo.built.push({ resources, removed, body });
  if (memo.built.length > BODIES_KEPT) memo.built.shift();
  return body;
}

/** What changed between two sets of one class, computed once and shared by every proxy moving between them. */
const diffs = new WeakMap<ReadonlyMap<string, Resource>, WeakMap<ReadonlyMap<string, Resource>, { changed: Resource[]; removed: string[] }>>();

function diffSets(before: ReadonlyMap<string, Resource> | undefined, after: ReadonlyMap<string, Resource>): { changed: Resource[]; removed: string[] } {
  if (!before) return { changed: [...after.values()], removed: [] };
  let byAfter = diffs.get(before);
  let d = byAfter?.get(after);
  if (d) return d;
  d = { changed: [], removed: [] };
  for (const [n, r] of after) if (before.get(n)?.version !== r.version) d.changed.push(r);
  for (const n of before.keys()) if (!after.has(n)) d.removed.push(n);
  if (!byAfter) diffs.set(before, (byAfter = new WeakMap()));
  byAfter.set(after, d);
  return d;
}
