// DNS wire format: the bounded decoder (see wire.ts).
import { ipFromBytes } from '../shared/ip.ts';
import { TYPE } from './rr.ts';
import { CLASS_IN, type Edns, type EdnsOption, type Header, labelsToName, MAX_MESSAGE, MAX_NAME, MAX_POINTER_HOPS, type Message, type Question, WireError, type WireRecord } from './wire-base.ts';

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
