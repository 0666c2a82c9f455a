// Host names in rules: syntax (Istio's rules), short names, wildcards, and which service or
// RPC interface a host names.
//
// A host without a dot is a short name and means what it means in Istio, so a rule carries
// over unchanged: `reviews` in namespace `shop` is `reviews.shop.svc.cluster.local`. A
// service whose hostname is literally the short name, in the rule's namespace, is matched
// too (a ServiceEntry with `hosts: [reviews]`). Names compare case-insensitively, as DNS.

import { isIP } from 'node:net';
import type { ModelSnapshot } from '../snapshot.ts';
import type { Service } from '../types.ts';

const LABEL = /^[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?$/;

/**
 * Istio's ValidateWildcardDomain: at most 255 characters, DNS labels (upper case allowed) of
 * at most 63, an optional `*` as the whole first label, a top-level label that is not all
 * digits, an optional trailing dot. Undefined when valid, otherwise why not.
 */
export function hostSyntaxError(host: string, opts: { wildcard: boolean }): string | undefined {
  if (host === '') return 'is empty';
  if (host.length > 255) return 'is longer than 255 characters';
  const labels = (host.endsWith('.') ? host.slice(0, -1) : host).split('.');
  for (const [i, l] of labels.entries()) {
    if (i === 0 && l === '*') {
      if (!opts.wildcard) return 'is a wildcard; a single service must be named here';
      continue;
    }
    if (l.includes('*')) return `has a wildcard inside label ${JSON.stringify(l)}; only "*" as the whole first label is allowed, as in "*.example.com"`;
    if (l.length > 63 || !LABEL.test(l)) {
      const iface = /[$_]/.test(l) ? '; an RPC interface whose name is not a DNS name is addressed by its canonical name in rpc.cluster.local' : '';
      return `has an invalid label ${JSON.stringify(l)}; expected letters, digits and "-", starting and ending with a letter or digit, at most 63 characters${iface}`;
    }
  }
  const tld = labels.at(-1)!;
  if (labels.length > 1 && /^\d+$/.test(tld)) return `has an all-numeric top-level label ${JSON.stringify(tld)}`;
  return undefined;
}

export const isIpAddress = (s: string): boolean => isIP(s) !== 0;

/** The name Istio gives a host written in `namespace`: short names become `<name>.<namespace>.svc.cluster.local`. */
export function qualifyHost(host: string, namespace: string): string {
  const h = host.toLowerCase().replace(/\.$/, '');
  if (h.includes('.') || h === '*' || isIpAddress(h)) return h;
  return `${h}.${namespace}.svc.cluster.local`;
}

/** Whether a (possibly `*.`-wildcard) host pattern covers a name. */
export function hostCovers(pattern: string, name: string): boolean {
  if (pattern === '*') return true;
  if (pattern.startsWith('*.')) return name.endsWith(pattern.slice(1)) || (name.startsWith('*.') && name.slice(1).endsWith(pattern.slice(1)));
  return pattern === name;
}

/** Istio's host.Name.Matches: the two host patterns share at least one name. */
export function hostsOverlap(a: string, b: string): boolean {
  return hostCovers(a, b) || hostCovers(b, a);
}

/**
 * Names the model knows, lower case → the canonical hostname they stand for: service
 * hostnames and aliases, and RPC interfaces both by canonical DNS name and by interface name
 * (`com.alipay.userservice.UserQuery`). Short-name services also answer to their qualified name.
 */
export type HostIndex = ReadonlyMap<string, string>;

export function hostIndex(services: Iterable<Service>): Map<string, string> {
  const index = new Map<string, string>();
  const put = (name: string, canonical: string): void => {
    const k = name.toLowerCase();
    if (!index.has(k)) index.set(k, canonical);
  };
  for (const s of services) {
    // A short-name service is known by its qualified name only, so it is found from its own namespace.
    for (const h of [s.hostname, ...s.aliases]) put(qualifyHost(h, s.namespace), s.hostname);
    for (const i of s.interfaces) {
      put(i.hostname, i.hostname);
      put(i.name, i.hostname);
    }
  }
  return index;
}

/** The index of everything a model snapshot serves. */
export function hostIndexOf(model: ModelSnapshot): Map<string, string> {
  return hostIndex(model.services.values());
}

/**
 * The canonical name of a host written in `namespace`: what the index maps it to, or its
 * qualified form when the index does not know it.
 */
export function canonicalHost(host: string, namespace: string, index?: HostIndex): string {
  const q = qualifyHost(host, namespace);
  if (!index) return q;
  return index.get(q) ?? q;
}

/** Whether the index knows the host (for a wildcard: whether it covers a known name). */
export function isKnownHost(host: string, namespace: string, index: HostIndex): boolean {
  const q = qualifyHost(host, namespace);
  if (q.startsWith('*')) {
    for (const name of index.keys()) if (hostCovers(q, name)) return true;
    return false;
  }
  return index.has(q);
}
