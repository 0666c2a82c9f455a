// What every output reads: the merged model and its addresses, as one immutable value.
//
// The address stage gives names their VIPs; the retirement stage keeps a service that left
// the model routed (to no one) for the DNS TTL. Both results are part of the snapshot, so
// xDS and DNS read the same addresses and neither computes them.
import { canonicalJson, contentHash } from './hash.ts';
import { ModelSnapshot } from './snapshot.ts';
import type { Service } from './types.ts';

/** What the address stage found for a model. */
export interface Addresses {
  /** Name → VIP, for every name of the model that has one. */
  readonly vips: ReadonlyMap<string, string>;
  /** Names of the model that need a VIP and have none yet (the VIP store unreachable, the range exhausted). */
  readonly pending: readonly string[];
  /** Why names are pending: the store's error, or the exhausted range. */
  readonly error?: string;
  /** The VIP range and the store it is kept in, for status pages. */
  readonly cidr?: string;
  readonly store?: string;
}

export const NO_ADDRESSES: Addresses = Object.freeze({ vips: new Map<string, string>(), pending: [] });

/** A service gone from the model that stays routed (with no endpoints) until `until`. */
export interface Retiring {
  readonly service: Service;
  /** Its names' VIPs when it left. */
  readonly vips: ReadonlyMap<string, string>;
  /** ms since the epoch. */
  readonly until: number;
}

/**
 * Names that need a VIP: every interface, and every service (by primary hostname) without
 * an address of its own. Wildcard hosts get none. Sorted.
 */
export function vipNames(model: ModelSnapshot): string[] {
  const names = new Set<string>();
  for (const svc of model.services.values()) if (svc.addresses.length === 0 && !svc.hostname.startsWith('*')) names.add(svc.hostname.toLowerCase());
  for (const name of model.interfaces.keys()) names.add(name.toLowerCase());
  return [...names].sort();
}

export class MeshSnapshot {
  /** Hash of the model version, the VIPs and what is retiring: equal content, equal version, in every replica. */
  readonly version: string;
  /** The model as the registries give it now: what DNS publishes and admin shows. */
  readonly model: ModelSnapshot;
  readonly addresses: Addresses;
  readonly retiring: ReadonlyMap<string, Retiring>;
  /** What sidecars route: the model plus the retiring services, and all their VIPs. */
  readonly routing: { readonly model: ModelSnapshot; readonly vips: ReadonlyMap<string, string> };

  constructor(model: ModelSnapshot, addresses: Addresses = NO_ADDRESSES, retiring: ReadonlyMap<string, Retiring> = new Map()) {
    this.model = model;
    this.addresses = addresses;
    this.retiring = retiring;
    this.routing = retiring.size ? withRetiring(model, addresses.vips, retiring) : { model, vips: addresses.vips };
    this.version = contentHash(canonicalJson([model.version, vipsHash(addresses.vips), [...retiring].map(([h, r]) => [h, r.until, vipsHash(r.vips)]).sort()]));
    Object.freeze(this);
  }
}

// The allocator hands out the same map while the names stay the same (every endpoint-only
// change): its hash is computed once per map, not once per snapshot.
const vipsHashes = new WeakMap<ReadonlyMap<string, string>, string>();
function vipsHash(vips: ReadonlyMap<string, string>): string {
  let h = vipsHashes.get(vips);
  if (h === undefined) vipsHashes.set(vips, (h = contentHash(canonicalJson([...vips].sort()))));
  return h;
}

/** The model with each retiring service put back, without endpoints: its name routes to no one until it expires. */
function withRetiring(m: ModelSnapshot, vips: ReadonlyMap<string, string>, retiring: ReadonlyMap<string, Retiring>): MeshSnapshot['routing'] {
  const services = new Map(m.services);
  const endpoints = new Map(m.endpoints);
  const all = new Map(vips);
  for (const [host, r] of retiring) {
    // A deregistered instance gets no more calls, and a client with a cached answer fails
    // fast instead of hanging on an unowned VIP.
    services.set(host, r.service);
    endpoints.set(host, []);
    for (const [n, v] of r.vips) if (!all.has(n)) all.set(n, v);
  }
  const model = new ModelSnapshot({
    services,
    endpoints,
    registries: [...m.registries],
    conflicts: [...m.conflicts],
    rules: { virtualServices: m.virtualServices, destinationRules: m.destinationRules, peerAuthentications: m.peerAuthentications, rejections: m.ruleRejections, warnings: m.ruleWarnings },
  });
  return { model, vips: all };
}
