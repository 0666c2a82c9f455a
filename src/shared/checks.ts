// Field-level validation shared by the manifest kinds: types, ranges, names, addresses.
// Every check records a problem and carries on, so one pass reports everything wrong.

import { isIP } from 'node:net';

export interface Problem {
  /** Dotted path, e.g. spec.ports[1].number; empty for the document itself. */
  readonly field: string;
  readonly reason: string;
}

/** Joins a path and a key: `a.b`, `a[3]`, or `a["app.kubernetes.io/name"]` for odd keys. */
export function sub(field: string, key: string | number): string {
  if (typeof key === 'number') return `${field}[${key}]`;
  if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(key)) return field ? `${field}.${key}` : key;
  return `${field}[${JSON.stringify(key)}]`;
}

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}`;
  return `${typeof v === 'number' ? 'the number' : 'the ' + typeof v} ${String(v)}`;
}

export function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Collects problems while reading an untrusted document. YAML null counts as absent. */
export class Checker {
  readonly problems: Problem[] = [];

  fail(field: string, reason: string): void {
    this.problems.push({ field, reason });
  }

  /** A mapping whose keys must all be in `keys`; each unknown key is reported. */
  object(v: unknown, field: string, keys: readonly string[]): Record<string, unknown> | undefined {
    if (v === undefined || v === null) return undefined;
    if (!isMapping(v)) {
      this.fail(field, `${field} must be a mapping, not ${describe(v)}`);
      return undefined;
    }
    for (const k of Object.keys(v)) {
      if (!keys.includes(k)) this.fail(sub(field, k), `unknown field ${JSON.stringify(k)}; expected one of: ${keys.join(', ')}`);
    }
    return v;
  }

  string(v: unknown, field: string): string | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string') {
      this.fail(field, `${field} must be a string, not ${describe(v)}${typeof v === 'number' || typeof v === 'boolean' ? ' (quote it)' : ''}`);
      return undefined;
    }
    return v;
  }

  integer(v: unknown, field: string, min: number, max: number): number | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v)) {
      this.fail(field, `${field} must be an integer from ${min} to ${max}, not ${describe(v)}`);
      return undefined;
    }
    if (v < min || v > max) {
      this.fail(field, `${field} is ${v}, out of range; expected an integer from ${min} to ${max}`);
      return undefined;
    }
    return v;
  }

  list(v: unknown, field: string): unknown[] | undefined {
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v)) {
      this.fail(field, `${field} must be a list, not ${describe(v)}`);
      return undefined;
    }
    return v;
  }

  /** A list of strings; wrong items are reported and left out. */
  strings(v: unknown, field: string): { value: string; field: string }[] | undefined {
    const items = this.list(v, field);
    if (!items) return undefined;
    const out: { value: string; field: string }[] = [];
    items.forEach((item, i) => {
      const s = this.string(item, sub(field, i));
      if (s !== undefined) out.push({ value: s, field: sub(field, i) });
      else if (item === null || item === undefined) this.fail(sub(field, i), `${sub(field, i)} must be a string, not null`);
    });
    return out;
  }

  /** A string → string mapping, e.g. annotations. */
  stringMap(v: unknown, field: string): Record<string, string> | undefined {
    if (v === undefined || v === null) return undefined;
    if (!isMapping(v)) {
      this.fail(field, `${field} must be a mapping of strings, not ${describe(v)}`);
      return undefined;
    }
    const out: Record<string, string> = {};
    for (const [k, item] of Object.entries(v)) {
      if (item === null || item === undefined) this.fail(sub(field, k), `${sub(field, k)} must be a string, not null (write "" for empty)`);
      const s = this.string(item, sub(field, k));
      if (s !== undefined) out[k] = s;
    }
    return out;
  }

  /** Kubernetes label syntax for keys and values. */
  labels(v: unknown, field: string, opts: { noWildcard?: boolean } = {}): Record<string, string> | undefined {
    const m = this.stringMap(v, field);
    if (!m) return undefined;
    for (const [k, value] of Object.entries(m)) {
      if (!isLabelKey(k)) {
        this.fail(sub(field, k), `label key ${JSON.stringify(k)} is invalid; expected an optional DNS prefix and "/", then up to 63 letters, digits, "-", "_" or "." starting and ending with a letter or digit`);
      }
      if (opts.noWildcard && value.includes('*')) this.fail(sub(field, k), `label value ${JSON.stringify(value)} contains "*"; wildcards are not supported in selectors`);
      else if (!isLabelValue(value)) {
        this.fail(sub(field, k), `label value ${JSON.stringify(value)} is invalid; expected up to 63 letters, digits, "-", "_" or "." starting and ending with a letter or digit`);
      }
    }
    return m;
  }

  /** One of a fixed set of values, spelled exactly. */
  oneOf<T extends string>(v: unknown, field: string, values: readonly T[]): T | undefined {
    const s = this.string(v, field);
    if (s === undefined) return undefined;
    if (!(values as readonly string[]).includes(s)) {
      this.fail(field, `${field} ${JSON.stringify(s)} is not valid; expected one of: ${values.join(', ')}`);
      return undefined;
    }
    return s as T;
  }
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
// Istio's host labels also accept upper case.
const HOST_LABEL = /^[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?$/;
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

export function isDns1123Label(s: string): boolean {
  return s.length <= 63 && DNS1123_LABEL.test(s);
}

export function isDns1123Subdomain(s: string): boolean {
  return s.length <= 253 && s.split('.').every((l) => DNS1123_LABEL.test(l) && l.length <= 63);
}

/** A DNS name without wildcard (Istio's FQDN check: short names pass too). */
export function isHostname(s: string): boolean {
  return s.length > 0 && s.length <= 255 && s.split('.').every((l) => l.length <= 63 && HOST_LABEL.test(l));
}

/** A DNS name, optionally with a leading `*.` wildcard. */
export function isWildcardHostname(s: string): boolean {
  return s.startsWith('*.') ? isHostname(s.slice(2)) : isHostname(s);
}

export function isLabelKey(k: string): boolean {
  const slash = k.indexOf('/');
  const prefix = slash >= 0 ? k.slice(0, slash) : undefined;
  const name = slash >= 0 ? k.slice(slash + 1) : k;
  if (prefix !== undefined && (prefix === '' || !isDns1123Subdomain(prefix))) return false;
  return name.length <= 63 && LABEL_NAME.test(name);
}

export function isLabelValue(v: string): boolean {
  return v === '' || (v.length <= 63 && LABEL_NAME.test(v));
}

export function isIpAddress(s: string): boolean {
  return isIP(s) !== 0;
}

/** An IP address or a CIDR block such as 10.0.0.0/8 or 2001:db8::/32. */
export function isIpOrCidr(s: string): boolean {
  const slash = s.indexOf('/');
  if (slash < 0) return isIpAddress(s);
  const family = isIP(s.slice(0, slash));
  const bits = s.slice(slash + 1);
  if (family === 0 || !/^\d{1,3}$/.test(bits)) return false;
  return Number(bits) <= (family === 4 ? 32 : 128);
}
