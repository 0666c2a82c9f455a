// DNS wire format (RFC 1035, EDNS0 of RFC 6891): a bounded decoder and a compressing encoder.
//
// The decoder never trusts the packet: every read is bounds-checked, a name is at most 255
// octets, compression pointers must point backwards and are followed at most 64 times, and
// section counts cannot make it loop past the end of the buffer. Anything else is a
// WireError. Names are text with '.' between labels; a '.' or '\' inside a label is escaped
// with '\' and other bytes outside printable ASCII as \DDD, so text maps to one label list.
import { ipBytes, ipFromBytes } from '../shared/ip.ts';
import { type DnsRecord, TYPE } from './rr.ts';

export const CLASS_IN = 1;
export const CLASS_ANY = 255;
export const OPCODE_QUERY = 0;
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5, BADVERS: 16 } as const;
const RCODE_NAMES = new Map<number, string>(Object.entries(RCODE).map(([k, v]) => [v, k]));

export function rcodeName(code: number): string {
  return RCODE_NAMES.get(code) ?? `RCODE${code}`;
}

export const MAX_MESSAGE = 65535;
const MAX_NAME = 255;
const MAX_POINTER_HOPS = 64;

export class WireError extends Error {}

export interface Header {
  readonly id: number;
  readonly qr: boolean;
  readonly opcode: number;
  readonly aa: boolean;
  readonly tc: boolean;
  readonly rd: boolean;
  readonly ra: boolean;
  readonly ad: boolean;
  readonly cd: boolean;
  /** The full response code: the header's 4 bits, plus the OPT record's 8 upper bits. */
  readonly rcode: number;
}

export interface Question {
  /** Labels exactly as sent (case kept), as latin1 strings. */
  readonly labels: readonly string[];
  /** Presentation form, case kept, no trailing dot ('' for the root). */
  readonly name: string;
  readonly type: number;
  readonly class: number;
}

export interface EdnsOption {
  readonly code: number;
  readonly data: Buffer;
}

export interface Edns {
  /** UDP payload size the sender can receive. */
  readonly payloadSize: number;
  readonly version: number;
  readonly do: boolean;
  readonly options: readonly EdnsOption[];
}

/** A record of a type this codec does not model: kept as raw RDATA. */
export interface RawRecord {
  readonly name: string;
  readonly ttl: number;
  readonly type: 'RAW';
  readonly code: number;
  readonly class: number;
  readonly data: Buffer;
}

export type WireRecord = DnsRecord | RawRecord;

export interface Message {
  readonly header: Header;
  readonly questions: readonly Question[];
  readonly answers: readonly WireRecord[];
  readonly authority: readonly WireRecord[];
  /** Additional records other than OPT. */
  readonly additional: readonly WireRecord[];
  readonly edns?: Edns;
}

// ---------------------------------------------------------------- names

const PLAIN_LABEL = /^[\x21-\x2d\x2f-\x5b\x5d-\x7e]*$/;

function escapeLabel(l: string): string {
  if (PLAIN_LABEL.test(l)) return l;
  let out = '';
  for (let i = 0; i < l.length; i++) {
    const c = l.charCodeAt(i);
    if (c === 0x2e || c === 0x5c) out += `\\${l[i]}`;
    else if (c <= 0x20 || c >= 0x7f) out += `\\${String(c).padStart(3, '0')}`;
    else out += l[i];
  }
  return out;
}

/** Labels → presentation text (no trailing dot). */
export function labelsToName(labels: readonly string[]): string {
  return labels.map(escapeLabel).join('.');
}

// Record names repeat from query to query: their label lists are kept (bounded).
const labelCache = new Map<string, readonly string[]>();
const LABEL_CACHE_MAX = 50_000;

function cachedLabels(name: string): readonly string[] {
  let labels = labelCache.get(name);
  if (labels) return labels;
  labels = nameToLabels(name);
  if (labelCache.size >= LABEL_CACHE_MAX) labelCache.clear();
  labelCache.set(name, labels);
  return labels;
}

/** Presentation text → labels (latin1 strings). Throws on an empty label or a label over 63 octets. */
export function nameToLabels(name: string): string[] {
  const n = name.endsWith('.') && !name.endsWith('\\.') ? name.slice(0, -1) : name;
  if (n === '') return [];
  const labels: string[] = [];
  let cur = '';
  for (let i = 0; i < n.length; i++) {
    const ch = n[i]!;
    if (ch === '\\') {
      const d = /^\d{3}/.exec(n.slice(i + 1, i + 4));
      if (d) {
        cur += String.fromCharCode(Number(d[0]) & 0xff);
        i += 3;
      } else if (i + 1 < n.length) cur += n[++i];
      continue;
    }
    if (ch === '.') {
      labels.push(cur);
      cur = '';
    } else cur += ch;
  }
  labels.push(cur);
  for (const l of labels) {
    if (l.length === 0) throw new WireError(`name "${name}" has an empty label`);
    if (l.length > 63) throw new WireError(`name "${name}" has a label over 63 octets`);
  }
  return labels;
}

// ---------------------------------------------------------------- decoding

class Reader {
  readonly buf: Buffer;
  pos: number;
  constructor(buf: Buffer, pos = 0) {
    this.buf = buf;
    this.pos = pos;
  }
  need(n: number, what: string): void {
    if (this.pos + n > this.buf.length) throw new WireError(`message ends inside ${what} (offset ${this.pos}, ${n} octets needed, ${this.buf.length - this.pos} left)`);
  }
  u8(what: string): number {
    this.need(1, what);
    return this.buf[this.pos++]!;
  }
  u16(what: string): number {
    this.need(2, what);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  u32(what: string): number {
    this.need(4, what);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  bytes(n: number, what: string): Buffer {
    this.need(n, what);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  /** A possibly compressed name; leaves `pos` after it. */
  labels(): string[] {
    const buf = this.buf;
    const labels: string[] = [];
    let p = this.pos;
    let after = -1;
    let total = 1;
    let hops = 0;
    while (true) {
      if (p >= buf.length) throw new WireError(`message ends inside a name (offset ${p})`);
      const b = buf[p]!;
      if (b === 0) {
        p++;
        break;
      }
      const kind = b & 0xc0;
      if (kind === 0xc0) {
        if (p + 1 >= buf.length) throw new WireError(`message ends inside a compression pointer (offset ${p})`);
        const target = ((b & 0x3f) << 8) | buf[p + 1]!;
        if (target >= p) throw new WireError(`compression pointer at ${p} does not point backwards (to ${target})`);
        if (++hops > MAX_POINTER_HOPS) throw new WireError(`name at ${this.pos} follows more than ${MAX_POINTER_HOPS} compression pointers`);
        if (after < 0) after = p + 2;
        p = target;
        continue;
      }
      if (kind !== 0) throw new WireError(`unsupported label type 0x${kind.toString(16)} at offset ${p}`);
      if (p + 1 + b > buf.length) throw new WireError(`message ends inside a label (offset ${p})`);
      total += b + 1;
      if (total > MAX_NAME) throw new WireError(`name at offset ${this.pos} is over ${MAX_NAME} octets`);
      labels.push(buf.toString('latin1', p + 1, p + 1 + b));
      p += 1 + b;
    }
    this.pos = after < 0 ? p : after;
    return labels;
  }
  name(): string {
    return labelsToName(this.labels());
  }
}

function decodeHeader(r: Reader): Header & { counts: [number, number, number, number] } {
  r.need(12, 'the header');
  const id = r.u16('id');
  const f = r.u16('flags');
  const counts: [number, number, number, number] = [r.u16('qdcount'), r.u16('ancount'), r.u16('nscount'), r.u16('arcount')];
  return {
    id,
    qr: (f & 0x8000) !== 0,
    opcode: (f >> 11) & 0xf,
    aa: (f & 0x0400) !== 0,
    tc: (f & 0x0200) !== 0,
    rd: (f & 0x0100) !== 0,
    ra: (f & 0x0080) !== 0,
    ad: (f & 0x0020) !== 0,
    cd: (f & 0x0010) !== 0,
    rcode: f & 0xf,
    counts,
  };
}

/** Just the id and flags, when the rest cannot be parsed; undefined if under 12 octets. */
export function peekHeader(buf: Buffer): Header | undefined {
  if (buf.length < 12) return undefined;
  const { counts: _c, ...h } = decodeHeader(new Reader(buf));
  return h;
}

function decodeRecord(r: Reader): WireRecord | { opt: Edns; extRcode: number } {
  const labels = r.labels();
  const name = labelsToName(labels);
  const code = r.u16('a record type');
  const klass = r.u16('a record class');
  const ttlRaw = r.u32('a record TTL');
  const rdlen = r.u16('RDATA length');
  r.need(rdlen, 'RDATA');
  const end = r.pos + rdlen;
  const ttl = ttlRaw > 0x7fffffff ? 0 : ttlRaw;
  const data = (): Buffer => r.bytes(rdlen, 'RDATA');
  const done = <T>(v: T): T => {
    if (r.pos !== end) throw new WireError(`RDATA of ${name} type ${code} is ${rdlen} octets but its content takes ${r.pos - (end - rdlen)}`);
    return v;
  };
  if (code === TYPE.OPT) {
    if (labels.length !== 0) throw new WireError('OPT record with a name other than the root');
    const options: EdnsOption[] = [];
    while (r.pos < end) {
      const oc = r.u16('an EDNS option code');
      const ol = r.u16('an EDNS option length');
      if (r.pos + ol > end) throw new WireError('EDNS option runs past the OPT RDATA');
      options.push({ code: oc, data: r.bytes(ol, 'an EDNS option') });
    }
    return done({ opt: { payloadSize: klass, version: (ttlRaw >>> 16) & 0xff, do: (ttlRaw & 0x8000) !== 0, options }, extRcode: ttlRaw >>> 24 });
  }
  if (klass !== CLASS_IN) return { name, ttl, type: 'RAW', code, class: klass, data: data() };
  switch (code) {
    case TYPE.A:
      if (rdlen !== 4) throw new WireError(`A record of ${name} has ${rdlen} octets of RDATA`);
      return { name, ttl, type: 'A', address: ipFromBytes(data()) };
    case TYPE.AAAA:
      if (rdlen !== 16) throw new WireError(`AAAA record of ${name} has ${rdlen} octets of RDATA`);
      return { name, ttl, type: 'AAAA', address: ipFromBytes(data()) };
    case TYPE.NS:
      return done({ name, ttl, type: 'NS', host: r.name() });
    case TYPE.CNAME:
      return done({ name, ttl, type: 'CNAME', target: r.name() });
    case TYPE.SRV:
      return done({ name, ttl, type: 'SRV', priority: r.u16('SRV priority'), weight: r.u16('SRV weight'), port: r.u16('SRV port'), target: r.name() });
    case TYPE.SOA:
      return done({ name, ttl, type: 'SOA', mname: r.name(), rname: r.name(), serial: r.u32('SOA serial'), refresh: r.u32('SOA refresh'), retry: r.u32('SOA retry'), expire: r.u32('SOA expire'), minimum: r.u32('SOA minimum') });
    case TYPE.TXT: {
      const text: string[] = [];
      while (r.pos < end) {
        const len = r.u8('a TXT string length');
        if (r.pos + len > end) throw new WireError(`TXT string of ${name} runs past its RDATA`);
        text.push(r.bytes(len, 'a TXT string').toString('utf8'));
      }
      return done({ name, ttl, type: 'TXT', text });
    }
    default:
      return { name, ttl, type: 'RAW', code, class: klass, data: data() };
  }
}

/** Decodes a whole message; throws a WireError on anything malformed. */
export function decodeMessage(buf: Buffer): Message {
  if (buf.length > MAX_MESSAGE) throw new WireError(`message of ${buf.length} octets is over ${MAX_MESSAGE}`);
  const r = new Reader(buf);
  const { counts, ...header } = decodeHeader(r);
  const questions: Question[] = [];
  for (let i = 0; i < counts[0]; i++) {
    const labels = r.labels();
    questions.push({ labels, name: labelsToName(labels), type: r.u16('QTYPE'), class: r.u16('QCLASS') });
  }
  const sections: WireRecord[][] = [[], [], []];
  let edns: Edns | undefined;
  let rcode = header.rcode;
  for (let s = 0; s < 3; s++) {
    for (let i = 0; i < counts[s + 1]!; i++) {
      const rec = decodeRecord(r);
      if ('opt' in rec) {
        if (s !== 2) throw new WireError('OPT record outside the additional section');
        if (edns) throw new WireError('more than one OPT record');
        edns = rec.opt;
        rcode |= rec.extRcode << 4;
      } else sections[s]!.push(rec);
    }
  }
  if (r.pos !== buf.length) throw new WireError(`${buf.length - r.pos} octets after the last record`);
  return { header: { ...header, rcode }, questions, answers: sections[0]!, authority: sections[1]!, additional: sections[2]!, ...(edns ? { edns } : {}) };
}

// ---------------------------------------------------------------- encoding

export class MessageTooLarge extends WireError {}

const suffixCache = new WeakMap<readonly string[], readonly string[]>();

/** Compression keys of a name's suffixes, longest first: "a.b.c", "b.c", "c" (escaped, lowercased). */
function suffixKeys(labels: readonly string[]): readonly string[] {
  const hit = suffixCache.get(labels);
  if (hit) return hit;
  const keys: string[] = new Array<string>(labels.length);
  let suffix = '';
  for (let i = labels.length - 1; i >= 0; i--) {
    const l = escapeLabel(labels[i]!).toLowerCase();
    suffix = suffix ? `${l}.${suffix}` : l;
    keys[i] = suffix;
  }
  suffixCache.set(labels, keys);
  return keys;
}

/** A growable buffer with name compression (suffixes matched case-insensitively). */
class Writer {
  buf = Buffer.alloc(512);
  pos = 0;
  private readonly names = new Map<string, number>();
  private readonly max: number;

  constructor(max = MAX_MESSAGE) {
    this.max = Math.min(max, MAX_MESSAGE);
  }

  private ensure(n: number): void {
    if (this.pos + n > this.max) throw new MessageTooLarge(`message would exceed ${this.max} octets`);
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.alloc(Math.min(MAX_MESSAGE, Math.max(this.buf.length * 2, this.pos + n)));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }
  u8(v: number): void {
    this.ensure(1);
    this.buf[this.pos++] = v;
  }
  u16(v: number): void {
    this.ensure(2);
    this.buf.writeUInt16BE(v, this.pos);
    this.pos += 2;
  }
  u32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32BE(v >>> 0, this.pos);
    this.pos += 4;
  }
  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
  name(labels: readonly string[], compress = true): void {
    const keys = suffixKeys(labels);
    for (let i = 0; i < labels.length; i++) {
      const key = keys[i]!;
      const at = this.names.get(key);
      if (compress && at !== undefined) {
        this.u16(0xc000 | at);
        return;
      }
      if (this.pos < 0x3fff && at === undefined) this.names.set(key, this.pos);
      const l = labels[i]!;
      if (l.length === 0 || l.length > 63) throw new WireError(`cannot encode label "${l}" (${l.length} octets)`);
      this.u8(l.length);
      this.ensure(l.length);
      this.buf.write(l, this.pos, 'latin1');
      this.pos += l.length;
    }
    this.u8(0);
  }
  result(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.pos));
  }
}

const addressCache = new Map<string, Buffer | undefined>();

function addressBytes(address: string): Buffer | undefined {
  if (addressCache.has(address)) return addressCache.get(address);
  const b = ipBytes(address);
  if (addressCache.size >= LABEL_CACHE_MAX) addressCache.clear();
  addressCache.set(address, b);
  return b;
}

function writeRecord(w: Writer, r: WireRecord): void {
  w.name(cachedLabels(r.name));
  w.u16(r.type === 'RAW' ? r.code : TYPE[r.type]);
  w.u16(r.type === 'RAW' ? r.class : CLASS_IN);
  w.u32(r.ttl);
  const lenAt = w.pos;
  w.u16(0);
  const start = w.pos;
  switch (r.type) {
    case 'A':
    case 'AAAA': {
      const b = addressBytes(r.address);
      if (!b || b.length !== (r.type === 'A' ? 4 : 16)) throw new WireError(`${r.type} record of ${r.name} has address ${r.address}`);
      w.bytes(b);
      break;
    }
    case 'NS':
      w.name(cachedLabels(r.host));
      break;
    case 'CNAME':
      w.name(cachedLabels(r.target));
      break;
    case 'SRV':
      w.u16(r.priority);
      w.u16(r.weight);
      w.u16(r.port);
      // RFC 2782: the target is not compressed.
      w.name(cachedLabels(r.target), false);
      break;
    case 'SOA':
      w.name(cachedLabels(r.mname));
      w.name(cachedLabels(r.rname));
      for (const v of [r.serial, r.refresh, r.retry, r.expire, r.minimum]) w.u32(v);
      break;
    case 'TXT': {
      const strings = r.text.length ? r.text : [''];
      for (const t of strings) {
        const b = Buffer.from(t, 'utf8');
        if (b.length > 255) throw new WireError(`TXT string of ${r.name} is ${b.length} octets, over 255`);
        w.u8(b.length);
        w.bytes(b);
      }
      break;
    }
    case 'RAW':
      w.bytes(r.data);
      break;
  }
  w.buf.writeUInt16BE(w.pos - start, lenAt);
}

export interface EncodeInput {
  readonly header: Partial<Header> & { readonly id: number };
  readonly questions?: readonly { readonly labels?: readonly string[]; readonly name: string; readonly type: number; readonly class?: number }[];
  readonly answers?: readonly WireRecord[];
  readonly authority?: readonly WireRecord[];
  readonly additional?: readonly WireRecord[];
  /** Adds an OPT record. */
  readonly edns?: Partial<Edns> & { readonly payloadSize: number };
}

/**
 * Encodes a message. The rcode's upper 8 bits go into the OPT record (there must be one).
 * Throws MessageTooLarge as soon as the message would exceed `maxSize` octets.
 */
export function encodeMessage(m: EncodeInput, maxSize = MAX_MESSAGE): Buffer {
  const w = new Writer(maxSize);
  const h = m.header;
  const rcode = h.rcode ?? 0;
  if (rcode > 0xf && !m.edns) throw new WireError(`rcode ${rcode} needs an OPT record`);
  w.u16(h.id & 0xffff);
  w.u16(
    (h.qr ? 0x8000 : 0) |
      (((h.opcode ?? 0) & 0xf) << 11) |
      (h.aa ? 0x0400 : 0) |
      (h.tc ? 0x0200 : 0) |
      (h.rd ? 0x0100 : 0) |
      (h.ra ? 0x0080 : 0) |
      (h.ad ? 0x0020 : 0) |
      (h.cd ? 0x0010 : 0) |
      (rcode & 0xf),
  );
  const questions = m.questions ?? [];
  const answers = m.answers ?? [];
  const authority = m.authority ?? [];
  const additional = m.additional ?? [];
  w.u16(questions.length);
  w.u16(answers.length);
  w.u16(authority.length);
  w.u16(additional.length + (m.edns ? 1 : 0));
  for (const q of questions) {
    w.name(q.labels ?? nameToLabels(q.name));
    w.u16(q.type);
    w.u16(q.class ?? CLASS_IN);
  }
  for (const r of answers) writeRecord(w, r);
  for (const r of authority) writeRecord(w, r);
  for (const r of additional) writeRecord(w, r);
  if (m.edns) {
    const e = m.edns;
    w.u8(0);
    w.u16(TYPE.OPT);
    w.u16(e.payloadSize);
    w.u32(((rcode >> 4) << 24) | ((e.version ?? 0) << 16) | (e.do ? 0x8000 : 0));
    const options = e.options ?? [];
    w.u16(options.reduce((n, o) => n + 4 + o.data.length, 0));
    for (const o of options) {
      w.u16(o.code);
      w.u16(o.data.length);
      w.bytes(o.data);
    }
  }
  return w.result();
}

/** A query for `name`/`type`, for clients and tests. */
export function encodeQuery(q: { id: number; name: string; type: number; rd?: boolean; edns?: { payloadSize: number; do?: boolean } }): Buffer {
  return encodeMessage({ header: { id: q.id, rd: q.rd ?? false }, questions: [{ name: q.name, type: q.type }], ...(q.edns ? { edns: q.edns } : {}) });
}
