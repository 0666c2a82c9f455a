// DNS wire format: constants, message types and names as label lists (see wire.ts).
import type { DnsRecord } from './rr.ts';

export const CLASS_IN = 1;
export const CLASS_ANY = 255;
export const OPCODE_QUERY = 0;
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5, BADVERS: 16 } as const;
const RCODE_NAMES = new Map<number, string>(Object.entries(RCODE).map(([k, v]) => [v, k]));

export function rcodeName(code: number): string {
  return RCODE_NAMES.get(code) ?? `RCODE${code}`;
}

export const MAX_MESSAGE = 65535;
export const MAX_NAME = 255;
export const MAX_POINTER_HOPS = 64;

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

export function escapeLabel(l: string): string {
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
export const LABEL_CACHE_MAX = 50_000;

export function cachedLabels(name: string): readonly string[] {
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
