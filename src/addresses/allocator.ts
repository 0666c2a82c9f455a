// Stable virtual IPs for names (interfaces, and services without an address of their own).
//
// - A name's preferred VIP is derived from a hash of the name; a taken slot is skipped by
//   linear probing. Two replicas that share one store therefore agree, and a name that
//   leaves and comes back usually gets its old VIP even after its tombstone expired.
// - A name keeps its VIP for as long as it is in the table (restarts included: the table
//   lives in a VipStore).
// - A freed VIP becomes a tombstone (the name that held it, when it was freed). Another
//   name may take it only after `holdMs` (twice the record TTL, so no client still holds
//   the old answer); the same name may take it back at any time.
// - Exhaustion is an error naming the range, per name, and a metric; nothing wraps around.
// - The table is written with compare-and-swap on a version number; a lost race re-reads
//   and recomputes.
import { createHash } from 'node:crypto';
import { logger } from '../shared/log.ts';
import { metrics } from '../shared/metrics.ts';
import { type Cidr, cidrContains, formatIp, parseCidr, parseIp } from '../shared/ip.ts';

const log = logger('dns.vip');
const allocatedGauge = metrics.gauge('isthmus_dns_vips_allocated', 'VIPs allocated to names.');
const heldGauge = metrics.gauge('isthmus_dns_vips_held', 'Freed VIPs held back from reuse (less than twice the record TTL ago).');
const usableGauge = metrics.gauge('isthmus_dns_vips_usable', 'Addresses of the VIP range that can be allocated.');
const exhaustedTotal = metrics.counter('isthmus_dns_vip_exhausted_total', 'Names refused a VIP because the range was exhausted.');
const conflictsTotal = metrics.counter('isthmus_dns_vip_store_conflicts_total', 'VIP table writes lost to a concurrent writer (compare-and-swap retried).');

export const DEFAULT_VIP_CIDR = '240.240.0.0/16';
/** Expired tombstones kept beyond this count are forgotten, oldest first. */
const MAX_EXPIRED_TOMBSTONES = 4096;
const MAX_CAS_ATTEMPTS = 8;

export interface Tombstone {
  /** The name that held the VIP. */
  readonly name: string;
  /** When it was freed, in ms since the epoch. */
  readonly freedAt: number;
}

/** The allocation table, as stored. Plain JSON. */
export interface VipTable {
  /** Range the table was allocated from. */
  readonly cidr: string;
  /** Name → VIP. */
  readonly allocations: Readonly<Record<string, string>>;
  /** Freed VIP → who held it and when it was freed. */
  readonly tombstones: Readonly<Record<string, Tombstone>>;
}

/** A table with the store's version of it: 0 (and no table) when nothing is stored yet. */
export interface VersionedVipTable {
  readonly version: number;
  readonly table: VipTable | undefined;
}

export type CasResult = { readonly ok: true; readonly version: number } | { readonly ok: false; readonly current: VersionedVipTable };

/**
 * Where the allocation table lives. `compareAndSwap` writes only when the stored version is
 * still `expected` (0: nothing stored) and then returns the new, greater version; otherwise
 * it writes nothing and returns what is stored now. The local file store implements it with
 * a lock file; an etcd store maps it onto a transaction on the key's mod revision.
 */
export interface VipStore {
  /** For logs, e.g. file:///var/lib/isthmus/vips.json. */
  readonly id: string;
  load(): Promise<VersionedVipTable>;
  compareAndSwap(expected: number, table: VipTable): Promise<CasResult>;
  close(): Promise<void>;
}

/** No VIP left for a name: the range, how many addresses it has, what holds them. */
export class VipExhaustedError extends Error {
  readonly cidr: string;
  readonly names: readonly string[];
  constructor(cidr: string, names: readonly string[], detail: string) {
    super(`VIP range ${cidr} is exhausted: no VIP for ${names.length} name(s) (${names.slice(0, 3).join(', ')}${names.length > 3 ? ', …' : ''}); ${detail}`);
    this.cidr = cidr;
    this.names = names;
  }
}

export interface AllocateOptions {
  readonly cidr: Cidr;
  /** How long a freed VIP is held back from other names (2 × record TTL). */
  readonly holdMs: number;
  readonly now: number;
  /**
   * Whether names missing from `names` are freed. False while the model is partial (some
   * registry has not synced yet), so a slow registry at startup costs no VIP.
   */
  readonly free: boolean;
}

export interface Allocation {
  readonly table: VipTable;
  /** Name → VIP for every requested name that has one. */
  readonly vips: ReadonlyMap<string, string>;
  /** Set when some requested names got no VIP. */
  readonly exhausted?: VipExhaustedError;
  readonly changed: boolean;
}

/** Usable offsets of a range: network and broadcast (first and last) are skipped when there are more than two addresses. */
function usableRange(cidr: Cidr): { first: bigint; count: bigint } {
  return cidr.size > 2n ? { first: 1n, count: cidr.size - 2n } : { first: 0n, count: cidr.size };
}

/** Offset, inside the usable range, where a name starts probing. */
export function preferredSlot(name: string, count: bigint): bigint {
  const digest = createHash('sha256').update(name).digest();
  return BigInt(`0x${digest.subarray(0, 16).toString('hex')}`) % count;
}

/** The pure allocation step: the table after giving each of `names` a VIP. */
export function allocate(prev: VipTable | undefined, names: readonly string[], opts: AllocateOptions): Allocation {
  const { cidr, now, holdMs } = opts;
  const { first, count } = usableRange(cidr);
  const inRange = (vip: string): bigint | undefined => {
    const ip = parseIp(vip);
    if (!ip || !cidrContains(cidr, ip.family, ip.value)) return undefined;
    const off = ip.value - cidr.base;
    return off >= first && off < first + count ? off : undefined;
  };
  const wanted = new Set(names);
  const allocations = new Map<string, string>();
  const owner = new Map<string, string>(); // VIP → name
  // Existing allocations inside the range stay; names no longer wanted are freed.
  const tombstones = new Map<string, Tombstone>();
  let changed = prev === undefined || prev.cidr !== cidr.text;
  for (const [vip, t] of Object.entries(prev?.tombstones ?? {})) {
    if (inRange(vip) !== undefined) tombstones.set(vip, t);
    else changed = true;
  }
  for (const [name, vip] of Object.entries(prev?.allocations ?? {}).sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (inRange(vip) === undefined || owner.has(vip)) {
      changed = true;
      continue;
    }
    if (wanted.has(name) || !opts.free) {
      allocations.set(name, vip);
      owner.set(vip, name);
      if (tombstones.delete(vip)) changed = true;
    } else {
      tombstones.set(vip, { name, freedAt: now });
      changed = true;
    }
  }
  const tombstoneOf = new Map<string, string>(); // name → its freed VIP
  for (const [vip, t] of tombstones) tombstoneOf.set(t.name, vip);
  const held = (vip: string, name: string): boolean => {
    const t = tombstones.get(vip);
    return t !== undefined && t.name !== name && now - t.freedAt < holdMs;
  };

  const refused: string[] = [];
  for (const name of [...wanted].filter((n) => !allocations.has(n)).sort()) {
    let vip = tombstoneOf.get(name);
    if (vip === undefined || owner.has(vip) || tombstones.get(vip)?.name !== name) {
      vip = undefined;
      // Linear probing from the preferred slot. Each blocked slot is an allocation or a held
      // tombstone, so a free slot turns up within (blocked + 1) probes if there is one.
      const blocked = BigInt(owner.size + tombstones.size);
      const limit = blocked + 1n < count ? blocked + 1n : count;
      const start = preferredSlot(name, count);
      for (let i = 0n; i < limit; i++) {
        const candidate = formatIp(cidr.family, cidr.base + first + ((start + i) % count));
        if (!owner.has(candidate) && !held(candidate, name)) {
          vip = candidate;
          break;
        }
      }
    }
    if (vip === undefined) {
      refused.push(name);
      continue;
    }
    allocations.set(name, vip);
    owner.set(vip, name);
    tombstones.delete(vip);
    changed = true;
  }

  // Forget the oldest expired tombstones beyond the cap.
  const expired = [...tombstones].filter(([, t]) => now - t.freedAt >= holdMs).sort(([, a], [, b]) => a.freedAt - b.freedAt);
  for (const [vip] of expired.slice(0, Math.max(0, expired.length - MAX_EXPIRED_TOMBSTONES))) {
    tombstones.delete(vip);
    changed = true;
  }

  const table: VipTable =
    !changed && prev
      ? prev
      : {
          cidr: cidr.text,
          allocations: Object.fromEntries([...allocations].sort(([a], [b]) => (a < b ? -1 : 1))),
          tombstones: Object.fromEntries([...tombstones].sort(([a], [b]) => (a < b ? -1 : 1))),
        };
  const vips = new Map<string, string>();
  for (const n of names) {
    const v = allocations.get(n);
    if (v !== undefined) vips.set(n, v);
  }
  let exhausted: VipExhaustedError | undefined;
  if (refused.length > 0) {
    const heldNow = [...tombstones.values()].filter((t) => now - t.freedAt < holdMs);
    const soonest = heldNow.length ? new Date(Math.min(...heldNow.map((t) => t.freedAt)) + holdMs).toISOString() : undefined;
    exhausted = new VipExhaustedError(
      cidr.text,
      refused,
      `${count} usable addresses, ${allocations.size} allocated, ${heldNow.length} freed less than ${holdMs / 1000} s ago and held back${soonest ? ` (the first is free again at ${soonest})` : ''}`,
    );
  }
  return { table, vips, changed, ...(exhausted ? { exhausted } : {}) };
}

export interface VipAllocatorOptions {
  readonly cidr: string;
  /** Record TTL in seconds; freed VIPs are held for twice that. */
  readonly ttl: number;
  readonly clock?: () => number;
}

export interface VipResult {
  readonly vips: ReadonlyMap<string, string>;
  readonly exhausted?: VipExhaustedError;
}

/**
 * Keeps the allocation table in a store: `reconcile(names)` gives every name a VIP and
 * frees the others, with compare-and-swap retries. Calls are serialized.
 */
export class VipAllocator {
  readonly cidr: Cidr;
  private readonly store: VipStore;
  private readonly holdMs: number;
  private readonly clock: () => number;
  private cached: VersionedVipTable | undefined;
  private last: { key: string; version: number; result: VipResult } | undefined;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(store: VipStore, opts: VipAllocatorOptions) {
    this.store = store;
    this.cidr = parseCidr(opts.cidr);
    if (this.cidr.family === 4 && this.cidr.prefix > 30) log.warn('VIP range has no room for network and broadcast addresses; all of it is used', { cidr: this.cidr.text });
    this.holdMs = opts.ttl * 2 * 1000;
    this.clock = opts.clock ?? Date.now;
    const { count } = usableRange(this.cidr);
    usableGauge.set({}, Number(count));
  }

  /** The store's id, for logs and status. */
  get storeId(): string {
    return this.store.id;
  }

  /** The table as last read or written. */
  table(): VipTable | undefined {
    return this.cached?.table;
  }

  reconcile(names: readonly string[], opts: { free: boolean }): Promise<VipResult> {
    const run = this.queue.then(() => this.reconcileNow(names, opts.free));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async reconcileNow(names: readonly string[], free: boolean): Promise<VipResult> {
    // The same names as last time (an endpoint-only change): nothing to allocate or free.
    const key = `${free}\n${names.join('\n')}`;
    if (this.last && this.last.key === key && this.last.version === this.cached?.version) return this.last.result;
    let current = this.cached ?? (await this.store.load());
    for (let attempt = 1; ; attempt++) {
      const now = this.clock();
      if (current.table && current.table.cidr !== this.cidr.text) {
        log.warn('VIP range changed: allocations outside the new range are given new VIPs', { stored: current.table.cidr, configured: this.cidr.text });
      }
      const result = allocate(current.table, names, { cidr: this.cidr, holdMs: this.holdMs, now, free });
      if (result.changed) {
        const cas = await this.store.compareAndSwap(current.version, result.table);
        if (!cas.ok) {
          conflictsTotal.inc();
          if (attempt >= MAX_CAS_ATTEMPTS) throw new Error(`VIP table in ${this.store.id} kept changing under ${MAX_CAS_ATTEMPTS} write attempts`);
          current = cas.current;
          continue;
        }
        current = { version: cas.version, table: result.table };
      }
      this.cached = current;
      this.observe(result, now);
      const out = { vips: result.vips, ...(result.exhausted ? { exhausted: result.exhausted } : {}) };
      // An exhausted result is recomputed next time: held VIPs may have become free.
      this.last = result.exhausted ? undefined : { key, version: current.version, result: out };
      return out;
    }
  }

  private observe(result: Allocation, now: number): void {
    allocatedGauge.set({}, Object.keys(result.table.allocations).length);
    heldGauge.set({}, Object.values(result.table.tombstones).filter((t) => now - t.freedAt < this.holdMs).length);
    if (result.exhausted) {
      exhaustedTotal.inc({}, result.exhausted.names.length);
      log.error('VIP range exhausted', { cidr: this.cidr.text, names: result.exhausted.names.slice(0, 20), error: result.exhausted.message });
    }
  }
}
