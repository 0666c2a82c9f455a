// DNS resource records as plain immutable values: what the desired-records function
// produces, what zone stores hold and what the responder encodes.
//
// Names are absolute, lowercase, without the trailing dot (`a.rpc.cluster.local`).

interface RecordBase {
  readonly name: string;
  readonly ttl: number;
}

export interface ARecord extends RecordBase {
  readonly type: 'A';
  readonly address: string;
}

export interface AaaaRecord extends RecordBase {
  readonly type: 'AAAA';
  readonly address: string;
}

export interface SrvRecord extends RecordBase {
  readonly type: 'SRV';
  readonly priority: number;
  readonly weight: number;
  readonly port: number;
  readonly target: string;
}

export interface TxtRecord extends RecordBase {
  readonly type: 'TXT';
  /** Character strings, each at most 255 octets in UTF-8. */
  readonly text: readonly string[];
}

export interface NsRecord extends RecordBase {
  readonly type: 'NS';
  readonly host: string;
}

export interface CnameRecord extends RecordBase {
  readonly type: 'CNAME';
  readonly target: string;
}

export interface SoaRecord extends RecordBase {
  readonly type: 'SOA';
  readonly mname: string;
  readonly rname: string;
  readonly serial: number;
  readonly refresh: number;
  readonly retry: number;
  readonly expire: number;
  /** Negative-caching TTL (RFC 2308). */
  readonly minimum: number;
}

export type DnsRecord = ARecord | AaaaRecord | SrvRecord | TxtRecord | NsRecord | CnameRecord | SoaRecord;
export type RecordType = DnsRecord['type'];

/** Wire type codes of the record types above, plus the meta types the responder handles. */
export const TYPE = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  TXT: 16,
  AAAA: 28,
  SRV: 33,
  OPT: 41,
  IXFR: 251,
  AXFR: 252,
  ANY: 255,
} as const;

const TYPE_NAMES = new Map<number, string>(Object.entries(TYPE).map(([k, v]) => [v, k]));

/** Mnemonic of a type code (`TYPE65` for codes without one, RFC 3597). */
export function typeName(code: number): string {
  return TYPE_NAMES.get(code) ?? `TYPE${code}`;
}

/** The RDATA of a record in presentation form, for keys, logs and tests. */
export function rdataText(r: DnsRecord): string {
  switch (r.type) {
    case 'A':
    case 'AAAA':
      return r.address;
    case 'SRV':
      return `${r.priority} ${r.weight} ${r.port} ${r.target}.`;
    case 'TXT':
      return r.text.map((t) => JSON.stringify(t)).join(' ');
    case 'NS':
      return `${r.host}.`;
    case 'CNAME':
      return `${r.target}.`;
    case 'SOA':
      return `${r.mname}. ${r.rname}. ${r.serial} ${r.refresh} ${r.retry} ${r.expire} ${r.minimum}`;
  }
}

/** Zone-file line of a record: `name. TTL IN TYPE RDATA`. */
export function recordText(r: DnsRecord): string {
  return `${r.name}. ${r.ttl} IN ${r.type} ${rdataText(r)}`;
}

/** Identity of a record in a record set: owner, type and data; the TTL is not part of it. */
export function recordKey(r: DnsRecord): string {
  return `${r.name} ${r.type} ${rdataText(r)}`;
}

const TYPE_ORDER: Readonly<Record<RecordType, number>> = { SOA: 0, NS: 1, A: 2, AAAA: 3, CNAME: 4, SRV: 5, TXT: 6 };

/** Deterministic order: by name (labels compared from the right, DNSSEC canonical style), type, data. */
export function compareRecords(a: DnsRecord, b: DnsRecord): number {
  return compareNames(a.name, b.name) || TYPE_ORDER[a.type] - TYPE_ORDER[b.type] || cmp(rdataText(a), rdataText(b));
}

/** `records` in compareRecords order, each sort key computed once. */
export function sortRecords(records: Iterable<DnsRecord>): DnsRecord[] {
  const keyed = [...records].map((r) => ({ r, name: r.name.split('.').reverse().join('\0'), type: TYPE_ORDER[r.type], data: rdataText(r) }));
  keyed.sort((a, b) => cmp(a.name, b.name) || a.type - b.type || cmp(a.data, b.data));
  return keyed.map((k) => k.r);
}

/** Canonical name order (RFC 4034 §6.1, on lowercase text labels). */
export function compareNames(a: string, b: string): number {
  if (a === b) return 0;
  const la = a.split('.');
  const lb = b.split('.');
  for (let i = 1; i <= Math.min(la.length, lb.length); i++) {
    const c = cmp(la[la.length - i]!, lb[lb.length - i]!);
    if (c) return c;
  }
  return la.length - lb.length;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** True when `name` is `zone` or a name below it. */
export function inZone(name: string, zone: string): boolean {
  return name === zone || name.endsWith(`.${zone}`);
}
