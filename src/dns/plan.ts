// desired → plan → store, as external-dns does it.
//
// A RecordStore is anything that holds records for the zone: the built-in responder's
// in-memory zone, or (part B) etcd in CoreDNS etcd-plugin layout. It lists only the records
// Isthmus owns there (how it knows is its business: an owner registry, a key prefix, a
// marker) and applies a plan as one batch. A record Isthmus did not write is never listed,
// so it is never updated or deleted.
import { compareRecords, type DnsRecord, recordKey, recordText } from './rr.ts';

export interface RecordUpdate {
  readonly from: DnsRecord;
  readonly to: DnsRecord;
}

/** What turns the owned records into the desired ones. Each list is sorted. */
export interface Plan {
  readonly create: readonly DnsRecord[];
  /** Same name, type and data; something else changed (the TTL). */
  readonly update: readonly RecordUpdate[];
  readonly delete: readonly DnsRecord[];
}

export interface RecordStore {
  /** For logs and metrics, e.g. "memory" or "etcd://10.0.0.1:2379/skydns". */
  readonly id: string;
  /** The records this store holds that Isthmus owns. */
  owned(): Promise<readonly DnsRecord[]>;
  /** Applies the whole plan, atomically where the store can. */
  apply(plan: Plan): Promise<void>;
}

export function emptyPlan(p: Plan): boolean {
  return p.create.length === 0 && p.update.length === 0 && p.delete.length === 0;
}

/** The plan from `owned` (what the store holds and we own) to `desired`. */
export function plan(desired: readonly DnsRecord[], owned: readonly DnsRecord[]): Plan {
  const want = new Map(desired.map((r) => [recordKey(r), r]));
  const have = new Map(owned.map((r) => [recordKey(r), r]));
  const create: DnsRecord[] = [];
  const update: RecordUpdate[] = [];
  const del: DnsRecord[] = [];
  for (const [k, r] of want) {
    const h = have.get(k);
    if (!h) create.push(r);
    else if (recordText(h) !== recordText(r)) update.push({ from: h, to: r });
  }
  for (const [k, r] of have) if (!want.has(k)) del.push(r);
  return {
    create: create.sort(compareRecords),
    update: update.sort((a, b) => compareRecords(a.to, b.to)),
    delete: del.sort(compareRecords),
  };
}

/** Brings one store to the desired records; returns the plan it applied. */
export async function sync(store: RecordStore, desired: readonly DnsRecord[]): Promise<Plan> {
  const p = plan(desired, await store.owned());
  if (!emptyPlan(p)) await store.apply(p);
  return p;
}

/** A store in memory: everything in it is ours. For tests and as a reference. */
export class MemoryRecordStore implements RecordStore {
  readonly id = 'memory';
  private records = new Map<string, DnsRecord>();
  applied = 0;

  async owned(): Promise<readonly DnsRecord[]> {
    return [...this.records.values()].sort(compareRecords);
  }

  async apply(p: Plan): Promise<void> {
    const next = new Map(this.records);
    for (const r of p.delete) next.delete(recordKey(r));
    for (const u of p.update) next.set(recordKey(u.to), u.to);
    for (const r of p.create) next.set(recordKey(r), r);
    this.records = next;
    this.applied++;
  }
}
