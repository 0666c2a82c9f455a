// An immutable, indexed zone: what the responder answers from. Built once per change of the
// desired records and swapped in whole, so a query sees either the old zone or the new one.
//
// The apex carries a synthesized SOA and NS (`ns.dns.<zone>`, with A/AAAA glue when the
// server listens on a specific address). Every name between a record's owner and the apex
// exists, records or not (an empty non-terminal answers NODATA, not NXDOMAIN).
import { parseIp } from '../shared/ip.ts';
import { type DnsRecord, inZone, type RecordType, type SoaRecord, TYPE } from './rr.ts';

export interface ZoneOptions {
  /** Zone apex, e.g. rpc.cluster.local. */
  readonly zone: string;
  /** TTL of the SOA and NS records. */
  readonly ttl: number;
  /** Negative-caching TTL: the SOA minimum (RFC 2308). */
  readonly negativeTtl: number;
  /** SOA serial; the caller keeps it increasing. */
  readonly serial: number;
  /** Addresses of this server, glue for the NS name (unspecified addresses are skipped). */
  readonly nsAddresses?: readonly string[];
}

export type Lookup =
  | { readonly kind: 'answer'; readonly records: readonly DnsRecord[] }
  | { readonly kind: 'nodata' }
  | { readonly kind: 'nxdomain' };

const NODATA: Lookup = { kind: 'nodata' };
const NXDOMAIN: Lookup = { kind: 'nxdomain' };
const CODE_OF = TYPE as Readonly<Record<RecordType, number>>;

export class Zone {
  readonly origin: string;
  readonly soa: SoaRecord;
  readonly ns: DnsRecord;
  /** Records as given (without the synthesized apex records). */
  readonly records: readonly DnsRecord[];
  readonly serial: number;
  /** Owner name → type code → records. */
  private readonly byName: ReadonlyMap<string, ReadonlyMap<number, readonly DnsRecord[]>>;
  /** Names that exist only because something below them does. */
  private readonly nonTerminals: ReadonlySet<string>;
  /** Precomputed ANY answers. */
  private readonly all: ReadonlyMap<string, readonly DnsRecord[]>;

  constructor(records: readonly DnsRecord[], opts: ZoneOptions) {
    const origin = opts.zone.toLowerCase().replace(/\.$/, '');
    this.origin = origin;
    this.serial = opts.serial >>> 0;
    const nsName = `ns.dns.${origin}`;
    this.soa = {
      name: origin,
      ttl: opts.ttl,
      type: 'SOA',
      mname: nsName,
      rname: `hostmaster.${origin}`,
      serial: this.serial,
      refresh: 7200,
      retry: 1800,
      expire: 86400,
      minimum: opts.negativeTtl,
    };
    this.ns = { name: origin, ttl: opts.ttl, type: 'NS', host: nsName };
    const byName = new Map<string, Map<number, DnsRecord[]>>();
    const add = (r: DnsRecord): void => {
      let types = byName.get(r.name);
      if (!types) byName.set(r.name, (types = new Map()));
      const code = CODE_OF[r.type];
      const list = types.get(code);
      if (list) list.push(r);
      else types.set(code, [r]);
    };
    const given = records.filter((r) => inZone(r.name, origin) && r.name !== origin && r.type !== 'SOA' && r.type !== 'NS');
    this.records = given;
    add(this.soa);
    add(this.ns);
    for (const r of given) add(r);
    if (!byName.has(nsName)) {
      for (const a of opts.nsAddresses ?? []) {
        const ip = parseIp(a);
        if (ip && ip.value !== 0n) add({ name: nsName, ttl: opts.ttl, type: ip.family === 4 ? 'A' : 'AAAA', address: a });
      }
    }
    const nonTerminals = new Set<string>();
    for (const name of byName.keys()) {
      for (let n = parent(name); n !== undefined && inZone(n, origin) && !byName.has(n) && !nonTerminals.has(n); n = parent(n)) nonTerminals.add(n);
    }
    const all = new Map<string, DnsRecord[]>();
    for (const [name, types] of byName) all.set(name, [...types.values()].flat());
    this.byName = byName;
    this.nonTerminals = nonTerminals;
    this.all = all;
  }

  /** True when `name` (lowercase) is the apex or below it. */
  contains(name: string): boolean {
    return inZone(name, this.origin);
  }

  /** The answer for a lowercase name inside the zone and a type code (ANY: every record at the name). */
  lookup(name: string, type: number): Lookup {
    const types = this.byName.get(name);
    if (!types) return this.nonTerminals.has(name) ? NODATA : NXDOMAIN;
    const records = type === TYPE.ANY ? this.all.get(name) : types.get(type);
    return records && records.length ? { kind: 'answer', records } : NODATA;
  }

  /** Address records in the zone for names the answer points at (SRV targets, NS hosts). */
  additional(answer: readonly DnsRecord[]): DnsRecord[] {
    const out: DnsRecord[] = [];
    const seen = new Set<string>();
    for (const r of answer) {
      const target = r.type === 'SRV' ? r.target : r.type === 'NS' ? r.host : undefined;
      if (target === undefined || seen.has(target)) continue;
      seen.add(target);
      const types = this.byName.get(target);
      if (!types) continue;
      out.push(...(types.get(TYPE.A) ?? []), ...(types.get(TYPE.AAAA) ?? []));
    }
    return out;
  }

  /** Number of owner names with records. */
  get names(): number {
    return this.byName.size;
  }
}

function parent(name: string): string | undefined {
  const i = name.indexOf('.');
  return i < 0 ? undefined : name.slice(i + 1);
}
