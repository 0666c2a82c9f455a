// Incremental (delta) ADS: per-resource versions, explicit subscribe/unsubscribe, removals.
import { CLUSTER_TYPE, isTypeUrl, type TypeUrl } from '../resources.ts';
import { sameItems } from '../../model/same.ts';
import { encodeDeltaBody, nonceField } from '../wire.ts';
import { Connection, type Response } from './connection.ts';
import { forEachClaim } from './request.ts';
import { RequestError } from './sotw.ts';
import { type Claims, DeltaSubscription } from './subscription.ts';
import type { Resource, ResourceSnapshot } from './types.ts';

export interface DeltaDiscoveryRequest {
  type_url?: string;
  resource_names_subscribe?: string[];
  resource_names_unsubscribe?: string[];
  initial_resource_versions?: Record<string, string>;
  /** initial_resource_versions as received (request.ts decodeDeltaRequest); valid during handle() only. */
  claims_raw?: Buffer;
  response_nonce?: string;
  error_detail?: { code?: number; message?: string } | null;
}

export class DeltaConnection extends Connection<DeltaSubscription> {
  readonly stream = 'delta' as const;
  private readonly seen = new Set<string>();
  /** Claims that came before any snapshot existed, checked at the first flush. */
  private readonly unchecked = new Map<TypeUrl, Map<string, string>>();

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
    if (first && subscribe.length === 0) sub.wildcard = true;
    const added = sub.update(subscribe, unsubscribe);
    if (first) {
      // What a reconnecting client already holds is not sent again.
      const each = claimsOf(req);
      const snap = this.source.current();
      if (each && snap) sub.claims = req.claims_raw?.length ? checkRawClaims(sub, snap, this.proxy, req.claims_raw) : checkClaims(sub, snap, this.proxy, each);
      else if (each) {
        const m = new Map<string, string>();
        each((n, v) => m.set(n, v));
        this.unchecked.set(typeUrl, m);
      }
    } else if (sub.claims && added.length) {
      // Subscribed after the claims were checked: not held. (Claims may be shared: copied.)
      sub.claims = { ...sub.claims, notHeld: new Set([...sub.claims.notHeld, ...added]) };
    }
    if (first || subscribe.length || unsubscribe.length) this.markDirty(typeUrl, 'request');
  }

  protected compute(sub: DeltaSubscription, snap: ResourceSnapshot): Response | null {
    const typeUrl = sub.typeUrl;
    const early = this.unchecked.get(typeUrl);
    if (early) {
      this.unchecked.delete(typeUrl);
      sub.claims = checkClaims(sub, snap, this.proxy, (fn) => early.forEach((v, n) => fn(n, v)));
    }
    const claims = sub.claims;
    sub.claims = undefined;
    const toSend: Resource[] = [];
    const removed: string[] = [];
    // Changed since the claims were checked; undefined: too long ago to tell, so nothing is held.
    const since = claims && claims.seq !== snap.seq ? this.shared.changes.since(typeUrl, claims.seq, snap) : undefined;
    const claimsCurrent = claims !== undefined && (claims.seq === snap.seq || since !== undefined);
    const holds = (n: string): boolean => claimsCurrent && !claims!.notHeld.has(n) && !since?.has(n);

    if (sub.wildcard) {
      const viewVersion = snap.view(this.proxy).versions[typeUrl];
      if (viewVersion !== sub.viewVersion || sub.awaitingFirst || claims) {
        sub.viewVersion = viewVersion;
        const desired = snap.wildcard(typeUrl, this.proxy);
        const before = sub.sentSet;
        sub.sentSet = desired;
        if (claims) {
          for (const [n, r] of desired) if (!holds(n)) toSend.push(r);
          for (const n of claims.absent) if (!desired.has(n) && !sub.names.has(n)) removed.push(n);
          // Held then, gone since.
          for (const n of since ?? []) if (!desired.has(n) && !sub.names.has(n) && !claims.notHeld.has(n)) removed.push(n);
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
        if (!holds(n)) toSend.push(r);
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

/** A request's claims as (name, version) pairs, raw or (from tools and tests) as an object. */
function claimsOf(req: DeltaDiscoveryRequest): ((fn: (name: string, version: string) => void) => void) | undefined {
  const raw = req.claims_raw;
  if (raw?.length) return (fn) => forEachClaim(raw, fn);
  const obj = req.initial_resource_versions;
  if (obj && Object.keys(obj).length) return (fn) => Object.entries(obj).forEach(([n, v]) => fn(n, v));
  return undefined;
}

/** Raw claims checked lately, per type: proxies reconnecting alike claim the same bytes. */
const checked = new Map<TypeUrl, { seq: number; set: object; names: object; pending: number; raw: Buffer; claims: Claims }[]>();
const CHECKED_KEPT = 4;

/**
 * checkClaims over raw claims, shared by proxies that claim byte for byte the same for the
 * same set in the same generation: one compare instead of thousands of lookups per proxy.
 */
function checkRawClaims(sub: DeltaSubscription, snap: ResourceSnapshot, proxy: DeltaConnection['proxy'], raw: Buffer): Claims {
  const set = sub.wildcard ? snap.wildcard(sub.typeUrl, proxy) : sub.names;
  let memo = checked.get(sub.typeUrl);
  if (memo?.[0] && memo[0].seq !== snap.seq) memo = undefined;
  const hit = memo?.find((m) => m.set === set && m.names === sub.names && m.pending === sub.pending.size && m.raw.equals(raw));
  if (hit) return hit.claims;
  const claims = checkClaims(sub, snap, proxy, (fn) => forEachClaim(raw, fn));
  memo ??= [];
  memo.unshift({ seq: snap.seq, set, names: sub.names, pending: sub.pending.size, raw: Buffer.from(raw), claims });
  if (memo.length > CHECKED_KEPT) memo.pop();
  checked.set(sub.typeUrl, memo);
  return claims;
}

/** Checks claims against a generation, keeping only what the proxy does not hold. */
function checkClaims(sub: DeltaSubscription, snap: ResourceSnapshot, proxy: DeltaConnection['proxy'], each: (fn: (name: string, version: string) => void) => void): Claims {
  const desired = sub.wildcard ? snap.wildcard(sub.typeUrl, proxy) : undefined;
  const matched = new Set<string>();
  const absent: string[] = [];
  each((n, v) => {
    const r = desired?.get(n) ?? (sub.names.has(n) ? snap.resolve(sub.typeUrl, n, proxy) : undefined);
    if (!r) absent.push(n);
    else if (r.version === v) matched.add(n);
  });
  const notHeld = new Set<string>();
  for (const n of desired?.keys() ?? []) if (!matched.has(n)) notHeld.add(n);
  for (const n of sub.names) if (!matched.has(n)) notHeld.add(n);
  for (const n of sub.pending) if (!matched.has(n)) notHeld.add(n);
  return { seq: snap.seq, notHeld, absent };
}

/** Bodies built for the current generation, per type: proxies syncing alike are sent the same bytes. */
const bodies = new Map<TypeUrl, { seq: number; built: { resources: readonly Resource[]; removed: readonly string[]; body: Buffer }[] }>();
/** Bodies kept per type and generation; the oldest goes first. */
const BODIES_KEPT = 4;

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
