// A RecordStore in etcd, in the layout of the CoreDNS etcd plugin (`etcd ZONE { path /skydns }`).
//
// Layout. A record of owner name N lives at `/skydns/<N's labels reversed>/<leaf>`, one JSON
// value per key ({host, port, priority, weight, ttl, text, group}), as the plugin reads it:
//
//   A / AAAA   {"host":"240.240.0.7","ttl":30,"group":N}
//   SRV        {"host":"10-1-2-3.ep.Z","port":20880,"priority":0,"weight":1,"ttl":30,"group":N}
//   TXT        {"text":"interface=…","ttl":30,"group":N}   one key per character string
//   CNAME      {"host":"target.example","ttl":30,"group":N}
//
// The plugin answers a name with every key under it (a prefix read of `/skydns/…/N/`), so a
// lookup of an interface would also see the SRV records of `_port._tcp.<interface>`, which sit
// below it. Every value therefore carries `group: N`: the plugin keeps, from what it read,
// only the values whose group is that of the shortest key (msg.Group in
// plugin/etcd/msg/service.go), i.e. N's own records. Leaves are `_ism-<type>-<hash of the
// data>` (`_api-…` for the records API), labels no hostname can have.
//
// What the plugin cannot say the same way as the built-in responder: a TXT record with several
// strings becomes one TXT record per string (the plugin serves one string per key, split at
// 255 octets), in order; SRV priorities of 0 read as 10 and weights are rescaled to percent of
// the name's total; an SRV query for a name that has address records gets SRV records for them.
//
// Ownership. For each record it wrote, the store keeps an owner entry outside the plugin's
// tree, `<ownersPrefix>/<owner><base key>` → {record, keys}. It lists only records whose owner
// entry exists and whose keys still hold exactly what it wrote; it never writes a key it has no
// owner entry for unless the key is absent (a transaction compares the create revision), and
// never deletes or overwrites one whose value changed under it. A record whose keys were
// deleted or altered (drift) is not listed, so the next sync writes it again (the keys are
// ours by the owner entry); one no longer wanted is disowned and its keys left alone when
// they were altered. Writes go in transactions of `batchSize` records (all or nothing per batch).
import { createHash } from 'node:crypto';
import { Etcd3, type IKeyValue, type IRequestOp, type ICompare } from 'etcd3';
import { logger } from '../shared/log.ts';
import { metrics } from '../shared/metrics.ts';
import { clientOptions } from '../shared/etcd.ts';
import { normalizeRoot } from '../shared/paths.ts';
import type { Plan, RecordStore } from './plan.ts';
import { compareRecords, type DnsRecord, rdataText } from './rr.ts';

const log = logger('dns.etcd');
const writesTotal = metrics.counter('isthmus_dns_etcd_writes_total', 'Records written to or deleted from the etcd zone store, by operation.');
const conflictsTotal = metrics.counter('isthmus_dns_etcd_conflicts_total', 'Records not written because a key in etcd was not ours (foreign or altered).');
const driftGauge = metrics.gauge('isthmus_dns_etcd_drift', 'Owned records found missing or altered in etcd at the last read (rewritten by the next sync).');

export const DEFAULT_SKYDNS_PREFIX = '/skydns';
export const DEFAULT_OWNERS_PREFIX = '/isthmus/dns-owners';

export interface EtcdRecordStoreOptions {
  /** etcd members, `HOST:PORT` or `http://HOST:PORT`. */
  readonly endpoints: readonly string[];
  /** The zone, e.g. rpc.cluster.local; records outside it are refused. */
  readonly zone: string;
  /** The plugin's `path` (default /skydns). */
  readonly prefix?: string;
  /** Who owns what this store writes (default "isthmus"; the records API uses "records-api"). */
  readonly owner?: string;
  /** Where owner entries live, outside `prefix` (default /isthmus/dns-owners). */
  readonly ownersPrefix?: string;
  /** Leaf label tag (default "ism"): leaves are `_<tag>-<type>-<hash>`. */
  readonly leafTag?: string;
  /** Records per transaction (default 40; etcd allows 128 operations per transaction by default). */
  readonly batchSize?: number;
  readonly requestTimeoutMs?: number;
}

/** Parses `etcd://HOST:PORT[,HOST:PORT]/PREFIX` (the --dns-store flag). */
export function parseEtcdStoreUrl(url: string): { endpoints: string[]; prefix: string } {
  const m = /^etcd:\/\/([^/]+)(\/.*)?$/.exec(url);
  if (!m) throw new Error(`not an etcd store URL (etcd://HOST:PORT[,HOST:PORT]/PREFIX): ${url}`);
  const endpoints = m[1]!.split(',').filter(Boolean);
  if (endpoints.some((e) => !/^[^:]+:\d+$/.test(e))) throw new Error(`etcd store URL needs HOST:PORT members: ${url}`);
  return { endpoints, prefix: normalizeRoot(m[2] ?? DEFAULT_SKYDNS_PREFIX) };
}

interface OwnerEntry {
  readonly record: DnsRecord;
  /** Key → value written. */
  readonly keys: Readonly<Record<string, string>>;
}

/** `a.b.c` under `/skydns` → `/skydns/c/b/a`. */
export function namePath(prefix: string, name: string): string {
  const labels = name.toLowerCase().replace(/\.$/, '').split('.').reverse();
  return `${prefix === '/' ? '' : prefix}/${labels.join('/')}`;
}

/** Keys and values (CoreDNS etcd-plugin messages) for one record. */
export function encodeRecord(prefix: string, r: DnsRecord, tag = 'ism'): Record<string, string> {
  const hash = createHash('sha256').update(`${r.type} ${rdataText(r)}`).digest('hex').slice(0, 12);
  const base = `${namePath(prefix, r.name)}/_${tag}-${r.type.toLowerCase()}-${hash}`;
  const v = (o: Record<string, unknown>): string => JSON.stringify({ ...o, ttl: r.ttl, group: r.name });
  switch (r.type) {
    case 'A':
    case 'AAAA':
      return { [base]: v({ host: r.address }) };
    case 'SRV':
      return { [base]: v({ host: r.target, port: r.port, priority: r.priority, weight: r.weight }) };
    case 'CNAME':
      return { [base]: v({ host: r.target }) };
    case 'TXT': {
      const out: Record<string, string> = {};
      r.text.forEach((t, i) => (out[`${base}-${String(i).padStart(3, '0')}`] = v({ text: t })));
      return out;
    }
    case 'NS':
    case 'SOA':
      throw new Error(`${r.type} records are synthesized by the DNS server and not stored in etcd (${r.name})`);
  }
}

export class EtcdRecordStore implements RecordStore {
  readonly id: string;
  readonly client: Etcd3;
  private readonly prefix: string;
  private readonly zonePath: string;
  private readonly ownerDir: string;
  private readonly tag: string;
  private readonly batchSize: number;
  /** Base keys of owner entries whose records drifted (keys missing or altered) at the last read. */
  private drifted = new Map<string, OwnerEntry>();
  /** Owner entries at the last read, by base key. */
  private entries = new Map<string, OwnerEntry>();

  constructor(opts: EtcdRecordStoreOptions) {
    this.prefix = normalizeRoot(opts.prefix ?? DEFAULT_SKYDNS_PREFIX);
    const zone = opts.zone.toLowerCase().replace(/\.$/, '');
    this.zonePath = `${namePath(this.prefix, zone)}/`;
    const owner = opts.owner ?? 'isthmus';
    if (!/^[a-z0-9][a-z0-9-]*$/.test(owner)) throw new Error(`owner must be lowercase letters, digits and '-': ${owner}`);
    this.ownerDir = `${normalizeRoot(opts.ownersPrefix ?? DEFAULT_OWNERS_PREFIX)}/${owner}`;
    if (this.ownerDir.startsWith(`${this.prefix}/`)) throw new Error(`owner entries (${this.ownerDir}) must not be under the plugin's path ${this.prefix}`);
    this.tag = opts.leafTag ?? 'ism';
    this.batchSize = Math.max(1, Math.min(opts.batchSize ?? 40, 60));
    this.id = `etcd://${opts.endpoints.join(',')}${this.prefix}`;
    this.client = new Etcd3(clientOptions(opts.endpoints, opts.requestTimeoutMs ?? 5000));
  }

  async owned(): Promise<readonly DnsRecord[]> {
    const [owners, zone] = await Promise.all([this.range(`${this.ownerDir}/`), this.range(this.zonePath)]);
    const values = new Map(zone.map((kv) => [kv.key.toString(), kv.value.toString()]));
    const entries = new Map<string, OwnerEntry>();
    const drifted = new Map<string, OwnerEntry>();
    const out: DnsRecord[] = [];
    for (const kv of owners) {
      const base = kv.key.toString().slice(this.ownerDir.length);
      let entry: OwnerEntry;
      try {
        entry = JSON.parse(kv.value.toString()) as OwnerEntry;
      } catch {
        log.warn('unreadable owner entry ignored', { key: kv.key.toString() });
        continue;
      }
      entries.set(base, entry);
      if (Object.entries(entry.keys).every(([k, v]) => values.get(k) === v)) out.push(entry.record);
      else drifted.set(base, entry);
    }
    if (drifted.size) log.warn('owned records missing or altered in etcd; the next sync rewrites those still wanted', { store: this.id, records: drifted.size });
    driftGauge.set({}, drifted.size);
    this.entries = entries;
    this.drifted = drifted;
    return out.sort(compareRecords);
  }

  async apply(p: Plan): Promise<void> {
    // Each change: keys to write (compare: absent, or holding what we wrote), keys to delete.
    type Change = { record: DnsRecord; base: string; ops: IRequestOp[]; compares: ICompare[]; kind: 'create' | 'update' | 'delete' };
    const changes: Change[] = [];
    const wanted = new Set<string>();
    const write = (r: DnsRecord, kind: 'create' | 'update'): void => {
      const keys = encodeRecord(this.prefix, r, this.tag);
      const base = this.baseOf(keys);
      wanted.add(base);
      const prev = this.entries.get(base);
      const ops: IRequestOp[] = [];
      const compares: ICompare[] = [];
      for (const [k, v] of Object.entries(keys)) {
        const mine = prev?.keys[k];
        // A key of ours (by owner entry) may be overwritten when it still holds our value, or
        // when it drifted and this is a repair of a record we own; otherwise it must be absent.
        if (mine === undefined) compares.push({ key: Buffer.from(k), target: 'Create', result: 'Equal', create_revision: 0 });
        else if (!this.drifted.has(base)) compares.push({ key: Buffer.from(k), target: 'Value', result: 'Equal', value: Buffer.from(mine) });
        ops.push({ request_put: { key: Buffer.from(k), value: Buffer.from(v) } });
      }
      for (const k of Object.keys(prev?.keys ?? {})) if (!(k in keys)) ops.push({ request_delete_range: { key: Buffer.from(k) } });
      ops.push({ request_put: { key: Buffer.from(this.ownerDir + base), value: Buffer.from(JSON.stringify({ record: r, keys } satisfies OwnerEntry)) } });
      changes.push({ record: r, base, ops, compares, kind });
    };
    for (const r of p.create) write(r, 'create');
    for (const u of p.update) write(u.to, 'update');
    for (const r of p.delete) {
      const keys = encodeRecord(this.prefix, r, this.tag);
      const base = this.baseOf(keys);
      const prev = this.entries.get(base) ?? { record: r, keys };
      const ops: IRequestOp[] = [];
      const compares: ICompare[] = [];
      for (const [k, v] of Object.entries(prev.keys)) {
        compares.push({ key: Buffer.from(k), target: 'Value', result: 'Equal', value: Buffer.from(v) });
        ops.push({ request_delete_range: { key: Buffer.from(k) } });
      }
      ops.push({ request_delete_range: { key: Buffer.from(this.ownerDir + base) } });
      changes.push({ record: r, base, ops, compares, kind: 'delete' });
    }
    // Drifted records no longer wanted: disown them; delete only keys still holding our value.
    for (const [base, entry] of this.drifted) {
      if (wanted.has(base)) continue;
      const ops: IRequestOp[] = [{ request_delete_range: { key: Buffer.from(this.ownerDir + base) } }];
      changes.push({ record: entry.record, base, ops, compares: [], kind: 'delete' });
      for (const [k, v] of Object.entries(entry.keys)) {
        changes.push({
          record: entry.record,
          base,
          ops: [{ request_delete_range: { key: Buffer.from(k) } }],
          compares: [{ key: Buffer.from(k), target: 'Value', result: 'Equal', value: Buffer.from(v) }],
          kind: 'delete',
        });
      }
    }

    let conflicts = 0;
    for (let i = 0; i < changes.length; i += this.batchSize) {
      const batch = changes.slice(i, i + this.batchSize);
      const res = await this.client.kv.txn({ compare: batch.flatMap((c) => c.compares), success: batch.flatMap((c) => c.ops) });
      if (res.succeeded) continue;
      // Some key is not as expected: apply the changes one by one, skipping the conflicting ones.
      for (const c of batch) {
        const one = await this.client.kv.txn({ compare: c.compares, success: c.ops });
        if (!one.succeeded) {
          conflicts++;
          conflictsTotal.inc({});
          if (c.compares.some((x) => x.target === 'Create')) log.warn('record not written: its key in etcd is not ours', { store: this.id, record: c.record.name, type: c.record.type });
        }
      }
    }
    for (const c of changes) if (c.compares.length || c.kind !== 'delete') writesTotal.inc({ op: c.kind });
    this.drifted = new Map();
    if (conflicts) log.warn('some records were left alone: keys in etcd not written by this store', { store: this.id, conflicts });
  }

  async close(): Promise<void> {
    this.client.close();
  }

  private baseOf(keys: Record<string, string>): string {
    const first = Object.keys(keys)[0]!;
    return first.replace(/-\d{3}$/, '');
  }

  /** Every key under `prefix`, read in pages at one revision. */
  private async range(prefix: string): Promise<IKeyValue[]> {
    const out: IKeyValue[] = [];
    const end = prefixEnd(Buffer.from(prefix));
    let start = Buffer.from(prefix);
    let revision: string | undefined;
    for (;;) {
      const res = await this.client.kv.range({ key: start, range_end: end, limit: 2000, ...(revision ? { revision } : {}) });
      revision ??= res.header.revision;
      out.push(...res.kvs);
      if (!res.more || res.kvs.length === 0) return out;
      start = Buffer.concat([res.kvs[res.kvs.length - 1]!.key, Buffer.from([0])]);
    }
  }
}

function prefixEnd(b: Buffer): Buffer {
  const end = Buffer.from(b);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]!++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}
