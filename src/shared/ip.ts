// IPv4/IPv6 addresses and CIDR ranges as bigints: parsing, formatting, bytes for the wire.
import net from 'node:net';

export type Family = 4 | 6;

export interface Cidr {
  readonly family: Family;
  /** First address of the range (the network address). */
  readonly base: bigint;
  readonly prefix: number;
  /** Number of addresses in the range. */
  readonly size: bigint;
  /** The range as written in canonical form, e.g. 240.240.0.0/16. */
  readonly text: string;
}

export class CidrError extends Error {}

/** Address → bigint; undefined when `text` is not an IPv4 or IPv6 address. */
export function parseIp(text: string): { family: Family; value: bigint } | undefined {
  if (net.isIPv4(text)) {
    const parts = text.split('.').map(Number);
    return { family: 4, value: BigInt(((parts[0]! << 24) >>> 0) + (parts[1]! << 16) + (parts[2]! << 8) + parts[3]!) };
  }
  if (!net.isIPv6(text)) return undefined;
  let s = text.toLowerCase();
  const pct = s.indexOf('%');
  if (pct >= 0) s = s.slice(0, pct);
  // An embedded IPv4 tail becomes two groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    const n = parseIp(v4[1]!)!.value;
    s = `${s.slice(0, v4.index)}${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head, tail] = s.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  let value = 0n;
  for (const g of groups) value = (value << 16n) | BigInt(parseInt(g, 16));
  return { family: 6, value };
}

export function formatIp(family: Family, value: bigint): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => String((value >> s) & 0xffn)).join('.');
  const groups: string[] = [];
  for (let s = 112n; s >= 0n; s -= 16n) groups.push(((value >> s) & 0xffffn).toString(16));
  // Longest run of two or more zero groups becomes "::" (RFC 5952).
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

/** Canonical text of an address (lowercase, compressed IPv6); undefined if not an address. */
export function canonicalIp(text: string): string | undefined {
  const ip = parseIp(text);
  return ip && formatIp(ip.family, ip.value);
}

/** "A.B.C.D/N" or "X::/N" → range; throws a CidrError naming the text otherwise. */
export function parseCidr(text: string): Cidr {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(text.trim());
  const ip = m ? parseIp(m[1]!) : undefined;
  if (!m || !ip) throw new CidrError(`"${text}" is not a CIDR range (ADDRESS/PREFIX)`);
  const bits = ip.family === 4 ? 32 : 128;
  const prefix = Number(m[2]);
  if (prefix > bits) throw new CidrError(`"${text}": prefix /${prefix} is longer than ${bits} bits`);
  const hostBits = BigInt(bits - prefix);
  const base = (ip.value >> hostBits) << hostBits;
  if (base !== ip.value) throw new CidrError(`"${text}" has host bits set; the range starts at ${formatIp(ip.family, base)}/${prefix}`);
  return { family: ip.family, base, prefix, size: 1n << hostBits, text: `${formatIp(ip.family, base)}/${prefix}` };
}

export function cidrContains(cidr: Cidr, family: Family, value: bigint): boolean {
  return family === cidr.family && value >= cidr.base && value < cidr.base + cidr.size;
}

/** Address bytes for A (4) and AAAA (16) RDATA. */
export function ipBytes(text: string): Buffer | undefined {
  const ip = parseIp(text);
  if (!ip) return undefined;
  const len = ip.family === 4 ? 4 : 16;
  const out = Buffer.alloc(len);
  let v = ip.value;
  for (let i = len - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

/** A/AAAA RDATA → text. */
export function ipFromBytes(bytes: Uint8Array): string {
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return formatIp(bytes.length === 4 ? 4 : 6, v);
}
