// DNS wire format: the compressing encoder (see wire.ts).
import { ipBytes } from '../shared/ip.ts';
import { TYPE } from './rr.ts';
import { cachedLabels, CLASS_IN, type Edns, escapeLabel, type Header, LABEL_CACHE_MAX, MAX_MESSAGE, nameToLabels, WireError, type WireRecord } from './wire-base.ts';

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
