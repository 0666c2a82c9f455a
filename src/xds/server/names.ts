// Interned SotW resource name lists. A thousand sidecars ask for the same few thousand
// cluster names on every EDS ACK: they share one decoded list, and an ACK repeating its
// list is recognised by comparing the raw bytes, without decoding a single name.
import { hash } from 'node:crypto';

/** The resource_names of a DiscoveryRequest, as encoded (field 3 entries, tag included). */
export class NameList {
  readonly key: string;
  readonly raw: Buffer;
  /** Names in request order, '*' left out. */
  readonly names: readonly string[];
  readonly set: ReadonlySet<string>;
  /** Empty, or containing '*': everything of the type. */
  readonly wildcard: boolean;
  /** Subscriptions holding this list; the table forgets it at zero. */
  refs = 0;
  /** Encoded response bodies for this list, valid for generation `memoSeq` only. */
  memoSeq = -1;
  readonly memo = new Map<string, { version: string; body: Buffer; resources: number }>();

  constructor(key: string, raw: Buffer, names: readonly string[]) {
    this.key = key;
    this.raw = raw;
    this.wildcard = names.length === 0 || names.includes('*');
    this.names = names.includes('*') ? names.filter((n) => n !== '*') : names;
    this.set = new Set(this.names);
  }
}

const TAG = 0x1a; // field 3, length-delimited

/** Decodes the names of field-3 entries laid out back to back. */
function decodeNames(raw: Buffer): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < raw.length) {
    i++; // tag, checked by the request decoder
    let len = 0;
    let shift = 0;
    for (;;) {
      const b = raw[i++]!;
      len += (b & 0x7f) * 2 ** shift;
      shift += 7;
      if (b < 0x80) break;
    }
    out.push(raw.toString('utf8', i, i + len));
    i += len;
  }
  return out;
}

/** Field-3 entries for names, the layout a request carries them in. */
export function encodeNames(names: readonly string[]): Buffer {
  const parts: Buffer[] = [];
  for (const n of names) {
    const s = Buffer.from(n, 'utf8');
    const head: number[] = [TAG];
    let len = s.length;
    while (len >= 0x80) {
      head.push((len & 0x7f) | 0x80);
      len = Math.floor(len / 128);
    }
    head.push(len);
    parts.push(Buffer.from(head), s);
  }
  return Buffer.concat(parts);
}

/** Lists tried per first name when recognising a request's names (most recent first). */
const CANDIDATES = 4;

/** Name of the field-3 entry at `at`, or undefined if it is not one. */
function firstName(buf: Buffer, at: number, end: number): string | undefined {
  if (buf[at] !== TAG) return undefined;
  let i = at + 1;
  let len = 0;
  let shift = 0;
  for (;;) {
    if (i >= end || shift > 28) return undefined;
    const b = buf[i++]!;
    len += (b & 0x7f) * 2 ** shift;
    shift += 7;
    if (b < 0x80) break;
  }
  return i + len <= end ? buf.toString('latin1', i, i + len) : undefined;
}

function byteAt(parts: readonly Buffer[], i: number): number | undefined {
  for (const p of parts) {
    if (i < p.length) return p[i];
    i -= p.length;
  }
  return undefined;
}

/** Whether `raw` lies in the chunks from offset `at`, compared chunk by chunk. */
function equalAt(parts: readonly Buffer[], at: number, raw: Buffer): boolean {
  const stop = at + raw.length;
  let off = 0;
  for (const p of parts) {
    const s = Math.max(at, off);
    const e = Math.min(stop, off + p.length);
    if (s < e && p.compare(raw, s - at, e - at, s - off, e - off) !== 0) return false;
    off += p.length;
    if (off >= stop) return true;
  }
  return off >= stop;
}

export class NameTable {
  private readonly lists = new Map<string, NameList>();
  /** Lists by the raw bytes of their first name, for recognising a repeated list without walking it. */
  private readonly byFirst = new Map<string, NameList[]>();

  /** The shared list for these raw bytes; the caller owns one reference. */
  acquire(raw: Buffer): NameList {
    const key = raw.length ? hash('sha1', raw, 'base64') : '';
    let list = this.lists.get(key);
    if (!list || !list.raw.equals(raw)) {
      // A copy, so that the request buffer it came from can be freed.
      const own = Buffer.from(raw);
      list = new NameList(key, own, decodeNames(own));
      this.lists.set(key, list);
      const first = firstName(own, 0, own.length);
      if (first !== undefined) {
        const c = this.byFirst.get(first) ?? [];
        c.unshift(list);
        if (c.length > CANDIDATES) c.pop();
        this.byFirst.set(first, c);
      }
    }
    list.refs++;
    return list;
  }

  release(list: NameList | undefined): void {
    if (!list || --list.refs > 0) return;
    if (this.lists.get(list.key) === list) this.lists.delete(list.key);
    const first = firstName(list.raw, 0, list.raw.length);
    const c = first === undefined ? undefined : this.byFirst.get(first);
    if (!c) return;
    const rest = c.filter((l) => l !== list);
    if (rest.length) this.byFirst.set(first!, rest);
    else this.byFirst.delete(first!);
  }

  /** As match, over a message still in the chunks it arrived in; the first name must lie in the first chunk. */
  matchParts(parts: readonly Buffer[], at: number, length: number): NameList | undefined {
    const head = parts[0];
    const first = head ? firstName(head, at, head.length) : undefined;
    const c = first === undefined ? undefined : this.byFirst.get(first);
    if (!c) return undefined;
    for (const list of c) {
      const stop = at + list.raw.length;
      if (stop > length || (stop < length && byteAt(parts, stop) === TAG)) continue;
      if (equalAt(parts, at, list.raw)) return list;
    }
    return undefined;
  }

  /**
   * A known list laid out in `buf` from `at`, ending where field-3 entries end: its bytes are
   * compared once instead of walking thousands of entries. Undefined if none is.
   */
  match(buf: Buffer, at: number, end: number): NameList | undefined {
    const first = firstName(buf, at, end);
    const c = first === undefined ? undefined : this.byFirst.get(first);
    if (!c) return undefined;
    for (const list of c) {
      const stop = at + list.raw.length;
      if (stop > end || (stop < end && buf[stop] === TAG)) continue;
      if (buf.compare(list.raw, 0, list.raw.length, at, stop) === 0) return list;
    }
    return undefined;
  }

  get size(): number {
    return this.lists.size;
  }
}

/**
 * Interned name sets for Delta subscriptions: proxies subscribed to the same names share
 * one set. Sets are compared by content within a bucket of equal size and total length.
 */
export class SetTable {
  private readonly buckets = new Map<string, Set<string>[]>();
  private readonly refs = new Map<ReadonlySet<string>, number>();

  private static key(set: ReadonlySet<string>): string {
    let len = 0;
    for (const n of set) len += n.length;
    return `${set.size}:${len}`;
  }

  /** The shared set equal to `set` (which the caller gives up); the caller owns one reference. */
  acquire(set: Set<string>): ReadonlySet<string> {
    const key = SetTable.key(set);
    const bucket = this.buckets.get(key) ?? [];
    let shared = bucket.find((s) => sameSet(s, set));
    if (!shared) {
      shared = set;
      bucket.push(set);
      this.buckets.set(key, bucket);
    }
    this.refs.set(shared, (this.refs.get(shared) ?? 0) + 1);
    return shared;
  }

  release(set: ReadonlySet<string>): void {
    const n = this.refs.get(set);
    if (n === undefined) return;
    if (n > 1) {
      this.refs.set(set, n - 1);
      return;
    }
    this.refs.delete(set);
    const key = SetTable.key(set);
    const bucket = (this.buckets.get(key) ?? []).filter((s) => s !== set);
    if (bucket.length) this.buckets.set(key, bucket);
    else this.buckets.delete(key);
  }

  get size(): number {
    return this.refs.size;
  }
}

function sameSet(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  if (a.size !== b.size) return false;
  for (const n of a) if (!b.has(n)) return false;
  return true;
}
