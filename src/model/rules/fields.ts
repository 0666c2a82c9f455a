// Field readers for the Istio rule kinds, on top of the file registry's Checker: each reports
// what is wrong with an exact field path and carries on, so one pass finds every problem.

import type { HeaderMatch, HeaderOperations, Headers, StringMatch } from './types.ts';
import { Checker, describe, isDns1123Label, isMapping, sub } from '../../shared/checks.ts';
import { re2Error } from './re2.ts';

/** Problems that do not stop a rule from being served (Istio's validation warnings). */
export class Warnings {
  readonly items: { field: string; reason: string }[] = [];

  add(field: string, reason: string): void {
    this.items.push({ field, reason });
  }
}

export const absent = (v: unknown): v is null | undefined => v === undefined || v === null;

/**
 * A mapping with known keys. `unsupported` lists Istio fields Isthmus does not implement,
 * each with why or what to use instead: refused with that reason, never ignored.
 */
export function obj(
  c: Checker,
  v: unknown,
  field: string,
  keys: readonly string[],
  unsupported: Readonly<Record<string, string>> = {},
): Record<string, unknown> | undefined {
  if (absent(v)) return undefined;
  if (!isMapping(v)) {
    c.fail(field, `${field} must be a mapping, not ${describe(v)}`);
    return undefined;
  }
  for (const [k, value] of Object.entries(v)) {
    if (keys.includes(k)) continue;
    const f = sub(field, k);
    if (k in unsupported) {
      if (!absent(value)) c.fail(f, `${f} is valid Istio but not supported by Isthmus: ${unsupported[k]}`);
    } else {
      c.fail(f, `unknown field ${JSON.stringify(k)}; expected one of: ${keys.join(', ')}`);
    }
  }
  return v;
}

/** Reports a missing required field; true when present. */
export function required(c: Checker, v: unknown, field: string, expected: string): boolean {
  if (!absent(v)) return true;
  c.fail(field, `${field} is missing; expected ${expected}`);
  return false;
}

export function bool(c: Checker, v: unknown, field: string): boolean | undefined {
  if (absent(v)) return undefined;
  if (typeof v !== 'boolean') {
    c.fail(field, `${field} must be true or false, not ${describe(v)}`);
    return undefined;
  }
  return v;
}

/** A number (not necessarily whole) in [min, max]. */
export function num(c: Checker, v: unknown, field: string, min: number, max: number): number | undefined {
  if (absent(v)) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    c.fail(field, `${field} must be a number from ${min} to ${max}, not ${describe(v)}`);
    return undefined;
  }
  if (v < min || v > max) {
    c.fail(field, `${field} is ${v}, out of range; expected a number from ${min} to ${max}`);
    return undefined;
  }
  return v;
}

export const INT32_MAX = 2147483647;
export const UINT32_MAX = 4294967295;

/** Protobuf int32 fields Istio requires to be non-negative. */
export const count = (c: Checker, v: unknown, field: string): number | undefined => c.integer(v, field, 0, INT32_MAX);

export const port = (c: Checker, v: unknown, field: string): number | undefined => c.integer(v, field, 1, 65535);

/** A non-empty string. */
export function text(c: Checker, v: unknown, field: string): string | undefined {
  const s = c.string(v, field);
  if (s === '') {
    c.fail(field, `${field} is empty`);
    return undefined;
  }
  return s;
}

/** A list of items read by `read`; null items are reported. */
export function items<T>(c: Checker, v: unknown, field: string, read: (item: unknown, field: string, i: number) => T | undefined): T[] {
  const out: T[] = [];
  (c.list(v, field) ?? []).forEach((item, i) => {
    const f = sub(field, i);
    if (absent(item)) {
      c.fail(f, `${f} is empty; expected a mapping`);
      return;
    }
    const r = read(item, f, i);
    if (r !== undefined) out.push(r);
  });
  return out;
}

// ---------------------------------------------------------------------------------------
// Durations

const UNITS_NS: Readonly<Record<string, bigint>> = {
  ns: 1n,
  us: 1000n,
  'µs': 1000n, // U+00B5
  'μs': 1000n, // U+03BC
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
};

/**
 * Go's time.ParseDuration, which is what Istio applies to a Duration in YAML (its legacy
 * jsonpb reader): "1h", "1m30s", "1.5s", "100ms", "250us", and the bare "0". The protobuf
 * JSON form ("1.5s") is a subset. Returns nanoseconds, or undefined if malformed.
 */
export function parseGoDuration(s: string): bigint | undefined {
  let rest = s;
  let sign = 1n;
  if (rest.startsWith('-') || rest.startsWith('+')) {
    sign = rest[0] === '-' ? -1n : 1n;
    rest = rest.slice(1);
  }
  if (rest === '0') return 0n;
  if (rest === '') return undefined;
  let total = 0n;
  const part = /^(\d*)(?:\.(\d*))?([a-zµμ]+)/;
  while (rest !== '') {
    const m = part.exec(rest);
    if (!m || (m[1] === '' && (m[2] === undefined || m[2] === ''))) return undefined;
    const unit = UNITS_NS[m[3]!];
    if (unit === undefined) return undefined;
    total += BigInt(m[1] || '0') * unit;
    if (m[2]) total += (BigInt(m[2]) * unit) / 10n ** BigInt(m[2].length);
    rest = rest.slice(m[0].length);
  }
  return sign * total;
}

/**
 * A duration in whole milliseconds, at least 1ms (Istio's ValidateDuration), or at least 0
 * with `allowZero`. Returns milliseconds.
 */
export function duration(c: Checker, v: unknown, field: string, opts: { allowZero?: boolean } = {}): number | undefined {
  if (absent(v)) return undefined;
  if (typeof v !== 'string') {
    c.fail(field, `${field} must be a duration string such as "1s", "1.5s" or "100ms", not ${describe(v)}`);
    return undefined;
  }
  const ns = parseGoDuration(v.trim() === v ? v : '');
  if (ns === undefined) {
    c.fail(field, `${field} ${JSON.stringify(v)} is not a duration; expected a number with a unit (h, m, s, ms, us, ns), e.g. "1s", "1.5s", "100ms", "1m30s"`);
    return undefined;
  }
  if (ns < 0n || (ns < 1_000_000n && !(opts.allowZero && ns === 0n))) {
    c.fail(field, `${field} is ${v}; it must be at least 1ms${opts.allowZero ? ' (or 0)' : ''}`);
    return undefined;
  }
  if (ns % 1_000_000n !== 0n) {
    c.fail(field, `${field} is ${v}; only whole milliseconds are supported`);
    return undefined;
  }
  return Number(ns / 1_000_000n);
}

// ---------------------------------------------------------------------------------------
// Percentages

/** Istio's Percent message `{ value: 0.1 }`: 0, or from 0.0001 to 100 (validatePercentage). */
export function percent(c: Checker, v: unknown, field: string): number | undefined {
  const p = obj(c, v, field, ['value']);
  if (!p) return undefined;
  const value = num(c, p.value, `${field}.value`, 0, 100);
  if (value === undefined) return absent(p.value) ? 0 : undefined;
  if (value > 0 && value < 0.0001) {
    c.fail(`${field}.value`, `${field}.value is ${value}; expected 0 or a percentage from 0.0001 to 100`);
    return undefined;
  }
  return value;
}

// ---------------------------------------------------------------------------------------
// String matches

const MATCH_KINDS = ['exact', 'prefix', 'regex'] as const;

/**
 * Istio's StringMatch: exactly one of exact, prefix, regex. With `present`, an empty mapping
 * `{}` means "the header is there" (Istio's presence match). Regexes must compile under RE2.
 */
function readMatch(c: Checker, v: unknown, field: string, opts: { present: boolean; prefix: boolean }): HeaderMatch | undefined {
  if (absent(v) && !opts.present) return undefined;
  const m = absent(v) ? {} : obj(c, v, field, MATCH_KINDS);
  if (!m) return undefined;
  const set = MATCH_KINDS.filter((k) => !absent(m[k]));
  if (set.length === 0) {
    if (opts.present) return { type: 'present' };
    c.fail(field, `${field} is empty; expected one of: ${opts.prefix ? MATCH_KINDS.join(', ') : 'exact, regex'}`);
    return undefined;
  }
  if (set.length > 1) {
    c.fail(field, `${field} sets ${set.join(' and ')}; exactly one of exact, prefix, regex is allowed`);
    return undefined;
  }
  const type = set[0]!;
  const f = `${field}.${type}`;
  const value = c.string(m[type], f);
  if (value === undefined) return undefined;
  if (type === 'prefix' && !opts.prefix) {
    c.fail(f, `${f}: prefix matching is not supported here (Istio supports only exact and regex); use a regex such as ${JSON.stringify('^' + escapeRegex(value))}`);
    return undefined;
  }
  if (type !== 'exact' && value === '') {
    c.fail(f, `${f} is empty; an empty ${type} would match everything, leave the match out instead`);
    return undefined;
  }
  if (type === 'regex') {
    const err = re2Error(value);
    if (err) {
      c.fail(f, `${f} ${JSON.stringify(value)} does not compile as RE2 (the regex engine of Envoy and Istio): ${err}`);
      return undefined;
    }
  }
  return { type, value };
}

/** A StringMatch (uri, method, authority). */
export function stringMatch(c: Checker, v: unknown, field: string): StringMatch | undefined {
  return readMatch(c, v, field, { present: false, prefix: true }) as StringMatch | undefined;
}

function escapeRegex(s: string): string {
  return s.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');
}

/** Istio's header-name rule for matches: letters, digits, "-" and "_". */
const MATCH_HEADER_NAME = /^[-_A-Za-z0-9]+$/;

function matchMap(c: Checker, v: unknown, field: string, what: 'header' | 'query'): Record<string, HeaderMatch> {
  const out: Record<string, HeaderMatch> = {};
  if (absent(v)) return out;
  if (!isMapping(v)) {
    c.fail(field, `${field} must be a mapping of ${what === 'header' ? 'header names' : 'parameter names'} to matches, not ${describe(v)}`);
    return out;
  }
  for (const [name, raw] of Object.entries(v)) {
    const f = sub(field, name);
    if (what === 'header' && !MATCH_HEADER_NAME.test(name)) {
      c.fail(f, `header name ${JSON.stringify(name)} is not valid; Istio allows letters, digits, "-" and "_"`);
      continue;
    }
    if (what === 'query' && name === '') {
      c.fail(f, 'query parameter name is empty');
      continue;
    }
    const m = readMatch(c, raw, f, what === 'header' ? { present: true, prefix: true } : { present: false, prefix: false });
    if (m) out[name] = m;
    else if (absent(raw) && what === 'query') c.fail(f, `${f} is empty; expected exact or regex (write exact: "" to match a parameter without a value)`);
  }
  return out;
}

/** `headers` / `withoutHeaders` of a match: header name → match, `{}` meaning presence. */
export const headerMatches = (c: Checker, v: unknown, field: string): Record<string, HeaderMatch> => matchMap(c, v, field, 'header');

/** `queryParams` of a match: parameter → exact or regex match. */
export const queryMatches = (c: Checker, v: unknown, field: string): Record<string, StringMatch> =>
  matchMap(c, v, field, 'query') as Record<string, StringMatch>;

// ---------------------------------------------------------------------------------------
// Header manipulation

// RFC 9110 token characters: what a header name may contain.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

function isAuthority(name: string): boolean {
  const n = name.toLowerCase();
  return n === ':authority' || n === 'host';
}

/**
 * An Envoy header value: no control characters but tab, and every "%" either doubled ("%%")
 * or opening a %COMMAND% / %COMMAND(args)% that is closed (Envoy's header_parser).
 */
export function headerValueError(value: string): string | undefined {
  for (const ch of value) {
    const code = ch.charCodeAt(0);
    if ((code < 0x20 && code !== 0x09) || code === 0x7f) return 'contains a control character';
  }
  let i = 0;
  while (i < value.length) {
    if (value[i] !== '%') {
      i++;
      continue;
    }
    if (value[i + 1] === '%') {
      i += 2;
      continue;
    }
    // %NAME% or %NAME(args)%: args may hold quoted strings with escaped characters.
    let j = i + 1;
    while (j < value.length && value[j] !== '%' && value[j] !== '(') j++;
    if (value[j] === '(') {
      let quoted = false;
      for (j++; j < value.length; j++) {
        if (quoted && value[j] === '\\') j++;
        else if (value[j] === '"') quoted = !quoted;
        else if (!quoted && value[j] === ')') break;
      }
      if (value[j] !== ')') return 'has an unterminated %COMMAND(...)% expression; write "%%" for a literal "%"';
      j++;
      while (value[j] === ' ') j++;
    }
    if (value[j] !== '%') return 'has an unterminated %COMMAND% expression; write "%%" for a literal "%"';
    i = j + 1;
  }
  return undefined;
}

/** Header operations (set, add, remove) of a request or response. */
function headerOperations(c: Checker, v: unknown, field: string, request: boolean): HeaderOperations | undefined {
  const h = obj(c, v, field, ['set', 'add', 'remove']);
  if (!h) return undefined;
  const out = { set: {} as Record<string, string>, add: {} as Record<string, string>, remove: [] as string[] };
  const checkName = (name: string, f: string, op: 'set' | 'add' | 'remove'): boolean => {
    if (name === '') {
      c.fail(f, 'header name is empty');
      return false;
    }
    if (request && op !== 'remove' && isAuthority(name)) return true; // rewrites the authority; checked below
    if (name.toLowerCase() === 'host' || name.startsWith(':')) {
      const verb = op === 'remove' ? 'removed' : 'changed';
      c.fail(f, `header ${JSON.stringify(name)} cannot be ${verb}${request ? '' : ' in a response'}: Envoy does not allow it for Host and pseudo-headers${request ? '; use rewrite.authority to change the host' : ''}`);
      return false;
    }
    if (!TOKEN.test(name)) {
      c.fail(f, `header name ${JSON.stringify(name)} contains characters not allowed in an HTTP header name`);
      return false;
    }
    return true;
  };
  for (const op of ['set', 'add'] as const) {
    const m = c.stringMap(h[op], `${field}.${op}`) ?? {};
    for (const [name, value] of Object.entries(m)) {
      const f = sub(`${field}.${op}`, name);
      if (!checkName(name, f, op)) continue;
      const err = headerValueError(value);
      if (err) {
        c.fail(f, `header value ${JSON.stringify(value)} ${err}`);
        continue;
      }
      out[op][name] = value;
    }
  }
  for (const r of c.strings(h.remove, `${field}.remove`) ?? []) if (checkName(r.value, r.field, 'remove')) out.remove.push(r.value);
  return out;
}

/** `headers: { request: {...}, response: {...} }`; the authority may be set at most once. */
export function headers(c: Checker, v: unknown, field: string, rewriteAuthority?: string): Headers | undefined {
  const h = obj(c, v, field, ['request', 'response']);
  if (!h) return undefined;
  const request = headerOperations(c, h.request, `${field}.request`, true);
  const response = headerOperations(c, h.response, `${field}.response`, false);
  let authority = rewriteAuthority;
  for (const op of ['set', 'add'] as const) {
    for (const name of Object.keys(request?.[op] ?? {})) {
      if (!isAuthority(name)) continue;
      const f = sub(`${field}.request.${op}`, name);
      if (authority !== undefined) c.fail(f, `the authority is already set${rewriteAuthority !== undefined ? ' by rewrite.authority' : ''}; it can be set only once`);
      authority = request![op][name];
    }
  }
  return { ...(request ? { request } : {}), ...(response ? { response } : {}) };
}

// ---------------------------------------------------------------------------------------
// exportTo and gateways

/** Istio's validateExportTo for rules: ".", "*" or namespace names; no duplicates; "*" alone. */
export function exportTo(c: Checker, v: unknown, field: string, namespace: string): string[] {
  const list = c.strings(v, field) ?? [];
  const seen = new Map<string, string>();
  for (const e of list) {
    if (e.value === '~') {
      c.fail(e.field, 'exportTo "~" (visible to no one) is allowed only for ServiceEntry');
      continue;
    }
    if (e.value !== '.' && e.value !== '*' && !isDns1123Label(e.value)) {
      c.fail(e.field, `exportTo entry ${JSON.stringify(e.value)} is not ".", "*" or a namespace name`);
      continue;
    }
    const key = e.value === '.' ? namespace : e.value;
    const prior = seen.get(key);
    if (prior !== undefined) c.fail(e.field, `exportTo entry ${JSON.stringify(e.value)} repeats ${prior}`);
    else seen.set(key, e.field);
  }
  if (seen.has('*') && list.length > 1) c.fail(field, 'exportTo "*" (every namespace) cannot be combined with other entries');
  return list.map((e) => e.value);
}

/** Istio's validateGatewayNames: "mesh", "namespace/name", or a (legacy) name. */
export function gatewayNames(c: Checker, v: unknown, field: string): string[] {
  const list = c.strings(v, field) ?? [];
  for (const g of list) {
    const slash = g.value.indexOf('/');
    if (slash < 0) {
      if (!/^[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*$/.test(g.value)) {
        c.fail(g.field, `gateway ${JSON.stringify(g.value)} is not valid; expected "mesh" or "namespace/name"`);
      }
      continue;
    }
    const ns = g.value.slice(0, slash);
    const name = g.value.slice(slash + 1);
    if (!isDns1123Label(ns) || !isDns1123Label(name)) {
      c.fail(g.field, `gateway ${JSON.stringify(g.value)} is not valid; expected "namespace/name" with DNS-1123 labels`);
    }
  }
  return list.map((g) => g.value);
}

export { sub };
