// A SotW DiscoveryRequest decoded by hand: the resource names stay raw bytes (see names.ts),
// the node is decoded only when present (first request of a stream).
import { messageType } from '../proto.ts';
import type { DecodedNode } from '../proxy.ts';
import type { NameTable } from './names.ts';

export interface RawDiscoveryRequest {
  version_info: string;
  type_url: string;
  response_nonce: string;
  /** resource_names (field 3) entries back to back, tags included. */
  names_raw: Buffer;
  error_detail: { code: number; message: string } | null;
  node?: DecodedNode;
}


export class MalformedRequest extends Error {}

class Reader {
  readonly buf: Buffer;
  pos: number;
  readonly end: number;
  constructor(buf: Buffer, pos = 0, end = buf.length) {
    this.buf = buf;
    this.pos = pos;
    this.end = end;
  }
  varint(): number {
    let n = 0;
    let shift = 0;
    for (;;) {
      if (this.pos >= this.end) throw this.fail('truncated varint');
      const b = this.buf[this.pos++]!;
      n += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return n;
      shift += 7;
      if (shift > 63) throw this.fail('varint too long');
    }
  }
  /** Start and end of a length-delimited value. */
  span(): [number, number] {
    const len = this.varint();
    const start = this.pos;
    if (len > this.end - start) throw this.fail(`length ${len} past the end of the message`);
    this.pos = start + len;
    return [start, this.pos];
  }
  fail(what: string): MalformedRequest {
    return new MalformedRequest(`${what} at byte ${this.pos}`);
  }
  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) this.span();
    else if (wire === 5) this.pos += 4;
    else throw this.fail(`unsupported wire type ${wire}`);
    if (this.pos > this.end) throw this.fail('field past the end of the message');
  }
}

function expect(r: Reader, wire: number, want: number, field: string): void {
  if (wire !== want) throw r.fail(`field ${field} has wire type ${wire}`);
}

/** A string field's value. */
function stringField(r: Reader, wire: number, field: string): string {
  expect(r, wire, 2, field);
  const [s, e] = r.span();
  return r.buf.toString('utf8', s, e);
}

/** The node field, decoded. */
function nodeField(r: Reader, wire: number): DecodedNode {
  expect(r, wire, 2, 'node');
  const [s, e] = r.span();
  return decodeNode(r.buf, s, e);
}

/** The error_detail field (google.rpc.Status), decoded. */
function statusField(r: Reader, wire: number): { code: number; message: string } {
  expect(r, wire, 2, 'error_detail');
  const [s, e] = r.span();
  return decodeStatus(new Reader(r.buf, s, e));
}

/**
 * The entries of one repeated field (names, claims) as they lie in a request: one view while
 * they come back to back, joined only when other fields split them. An entry whose tag was
 * written in more bytes than needed (legal protobuf) is kept with the one-byte tag, the
 * layout the readers of these runs expect.
 */
class Runs {
  private readonly buf: Buffer;
  private readonly tag: number;
  private start = -1;
  private end = -1;
  private parts?: Buffer[];

  constructor(buf: Buffer, tag: number) {
    this.buf = buf;
    this.tag = tag;
  }

  /** Entries from `tagStart` (their first tag) to `end`; `afterTag` is where the first tag ends. */
  add(tagStart: number, afterTag: number, end: number): void {
    if (this.buf[tagStart] !== this.tag) this.push(Buffer.concat([Buffer.from([this.tag]), this.buf.subarray(afterTag, end)]));
    else if (this.start < 0 && !this.parts) [this.start, this.end] = [tagStart, end];
    else if (!this.parts && this.end === tagStart) this.end = end;
    else this.push(this.buf.subarray(tagStart, end));
  }

  private push(b: Buffer): void {
    this.parts ??= this.start >= 0 ? [this.buf.subarray(this.start, this.end)] : [];
    this.parts.push(b);
  }

  get empty(): boolean {
    return this.start < 0 && !this.parts;
  }

  /** One run, in place, of exactly `length` bytes. */
  isWhole(length: number): boolean {
    return !this.parts && this.end - this.start === length;
  }

  bytes(): Buffer {
    if (this.parts) return Buffer.concat(this.parts);
    return this.start >= 0 ? this.buf.subarray(this.start, this.end) : EMPTY;
  }
}

/**
 * envoy.service.discovery.v3.DiscoveryRequest → RawDiscoveryRequest. With `known`, a name
 * list it already holds is recognised by one compare and handed back as its interned bytes.
 */
export function decodeDiscoveryRequest(buf: Buffer, known?: NameTable): RawDiscoveryRequest {
  const r = new Reader(buf);
  const out: RawDiscoveryRequest = { version_info: '', type_url: '', response_nonce: '', names_raw: EMPTY, error_detail: null };
  const names = new Runs(buf, 0x1a);
  let interned: Buffer | undefined;
  while (r.pos < r.end) {
    const tagStart = r.pos;
    const tag = r.varint();
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    switch (field) {
      case 1:
        out.version_info = stringField(r, wire, 'version_info');
        break;
      case 2:
        out.node = nodeField(r, wire);
        break;
      case 3: {
        expect(r, wire, 2, 'resource_names');
        const afterTag = r.pos;
        const list = names.empty ? known?.match(buf, tagStart, r.end) : undefined;
        if (list) {
          r.pos = tagStart + list.raw.length;
          names.add(tagStart, afterTag, r.pos);
          interned = list.raw;
          break;
        }
        r.span();
        // Names come back to back, thousands per EDS ACK: skip over the run in one tight loop.
        while (r.pos < r.end && buf[r.pos] === 0x1a) {
          r.pos++;
          r.span();
        }
        interned = undefined;
        names.add(tagStart, afterTag, r.pos);
        break;
      }
      case 4:
        out.type_url = stringField(r, wire, 'type_url');
        break;
      case 5:
        out.response_nonce = stringField(r, wire, 'response_nonce');
        break;
      case 6:
        out.error_detail = statusField(r, wire);
        break;
      default:
        r.skip(wire);
    }
  }
  out.names_raw = interned && names.isWhole(interned.length) ? interned : names.bytes();
  return out;
}

/** Offset of the first resource_names entry if it starts within `head` after whole fields, else -1. */
function namesOffset(head: Buffer): number {
  const r = new Reader(head);
  try {
    while (r.pos < r.end) {
      const at = r.pos;
      const tag = r.varint();
      if (tag === 0x1a) return at;
      r.skip(tag & 7);
    }
  } catch {
    // A field running past the first chunk: no fast path.
  }
  return -1;
}

function copyRange(parts: readonly Buffer[], start: number, end: number, into: Buffer, at: number): number {
  let off = 0;
  for (const p of parts) {
    const s = Math.max(start, off);
    const e = Math.min(end, off + p.length);
    if (s < e) at += p.copy(into, at, s - off, e - off);
    off += p.length;
    if (off >= end) break;
  }
  return at;
}

/**
 * A request that arrived in several chunks. A name list `known` holds is compared where it
 * lies and only the fields around it are joined, so a 250 KB ACK is never copied; anything
 * else is joined by `join` and decoded whole.
 */
export function decodeDiscoveryRequestParts(parts: readonly Buffer[], length: number, known: NameTable, join: (parts: readonly Buffer[], length: number) => Buffer): RawDiscoveryRequest {
  const at = parts[0] ? namesOffset(parts[0]) : -1;
  const list = at >= 0 ? known.matchParts(parts, at, length) : undefined;
  if (list) {
    const stop = at + list.raw.length;
    const rest = Buffer.allocUnsafe(at + length - stop);
    copyRange(parts, stop, length, rest, copyRange(parts, 0, at, rest, 0));
    try {
      const out = decodeDiscoveryRequest(rest);
      if (!out.names_raw.length) {
        out.names_raw = list.raw;
        return out;
      }
    } catch {
      // Decoded whole below, for an error that points at the right byte.
    }
  }
  return decodeDiscoveryRequest(join(parts, length), known);
}

/** A DeltaDiscoveryRequest decoded by hand: initial_resource_versions stays raw (see forEachClaim). */
export interface RawDeltaRequest {
  type_url: string;
  resource_names_subscribe: string[];
  resource_names_unsubscribe: string[];
  /** initial_resource_versions (field 5) entries back to back, tags included; checked well-formed. */
  claims_raw: Buffer;
  response_nonce: string;
  error_detail: { code: number; message: string } | null;
  node?: DecodedNode;
}

/**
 * envoy.service.discovery.v3.DeltaDiscoveryRequest → RawDeltaRequest. A reconnecting proxy
 * lists every resource it holds with its version: thousands of map entries, read straight
 * from the bytes later instead of being built into objects.
 */
export function decodeDeltaRequest(buf: Buffer): RawDeltaRequest {
  const r = new Reader(buf);
  const out: RawDeltaRequest = { type_url: '', resource_names_subscribe: [], resource_names_unsubscribe: [], claims_raw: EMPTY, response_nonce: '', error_detail: null };
  const claims = new Runs(buf, 0x2a);
  while (r.pos < r.end) {
    const tagStart = r.pos;
    const tag = r.varint();
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    switch (field) {
      case 1:
        out.node = nodeField(r, wire);
        break;
      case 2:
        out.type_url = stringField(r, wire, 'type_url');
        break;
      case 3:
        out.resource_names_subscribe.push(stringField(r, wire, 'resource_names_subscribe'));
        break;
      case 4:
        out.resource_names_unsubscribe.push(stringField(r, wire, 'resource_names_unsubscribe'));
        break;
      case 6:
        out.response_nonce = stringField(r, wire, 'response_nonce');
        break;
      case 5: {
        expect(r, wire, 2, 'initial_resource_versions');
        const afterTag = r.pos;
        // Entries come back to back: check each one's shape and keep the run as it is.
        for (let first = true; first || (r.pos < r.end && buf[r.pos] === 0x2a); first = false) {
          if (!first) r.pos++;
          const [s, e] = r.span();
          checkClaim(new Reader(buf, s, e));
        }
        claims.add(tagStart, afterTag, r.pos);
        break;
      }
      case 7:
        out.error_detail = statusField(r, wire);
        break;
      default:
        r.skip(wire);
    }
  }
  out.claims_raw = claims.bytes();
  return out;
}

/** A map<string, string> entry: key = 1, value = 2. */
function checkClaim(r: Reader): void {
  while (r.pos < r.end) {
    const tag = r.varint();
    const field = Math.floor(tag / 8);
    if (field === 1 || field === 2) {
      expect(r, tag & 7, 2, field === 1 ? 'initial_resource_versions key' : 'initial_resource_versions value');
      r.span();
    } else r.skip(tag & 7);
  }
}

/** Each name and version of raw initial_resource_versions (as decodeDeltaRequest checked them). */
export function forEachClaim(raw: Buffer, fn: (name: string, version: string) => void): void {
  const r = new Reader(raw);
  while (r.pos < r.end) {
    r.pos++; // tag
    const [s, e] = r.span();
    const entry = new Reader(raw, s, e);
    let name = '';
    let version = '';
    while (entry.pos < entry.end) {
      const tag = entry.varint();
      if (tag === 0x0a || tag === 0x12) {
        const [ks, ke] = entry.span();
        if (tag === 0x0a) name = raw.toString('utf8', ks, ke);
        else version = raw.toString('utf8', ks, ke);
      } else entry.skip(tag & 7);
    }
    fn(name, version);
  }
}

function decodeNode(buf: Buffer, s: number, e: number): DecodedNode {
  try {
    const nodeType = messageType('envoy.config.core.v3.Node');
    return nodeType.toObject(nodeType.decode(buf.subarray(s, e)), { longs: String, enums: String, defaults: false, arrays: true, objects: true }) as DecodedNode;
  } catch (err) {
    throw new MalformedRequest(`node at byte ${s}: ${(err as Error).message}`);
  }
}

/** google.rpc.Status { code = 1; message = 2 } */
function decodeStatus(r: Reader): { code: number; message: string } {
  const out = { code: 0, message: '' };
  while (r.pos < r.end) {
    const tag = r.varint();
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    if (field === 1 && wire === 0) out.code = r.varint() | 0;
    else if (field === 2 && wire === 2) {
      const [s, e] = r.span();
      out.message = r.buf.toString('utf8', s, e);
    } else r.skip(wire);
  }
  return out;
}

const EMPTY = Buffer.alloc(0);
