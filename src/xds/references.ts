// What a listener or a route configuration refers to, read from the bytes that are served:
// the route configurations (RDS) and the clusters it names. The consistency checks compare
// these with what is actually in the same set, so a dangling name is caught before a proxy
// waits on it (a listener warming for a route that never comes) or routes to nothing.
import { messageType, TYPE_PREFIX } from './proto.ts';

export interface References {
  readonly routes: ReadonlySet<string>;
  /** Route tables of Dubbo filters (DRDS), a resource type of their own. */
  readonly dubboRoutes: ReadonlySet<string>;
  readonly clusters: ReadonlySet<string>;
}

interface Encoded {
  readonly typeUrl: string;
  /** The resource as an encoded google.protobuf.Any. */
  readonly any: Uint8Array;
}

// Each resource object is read once: an unchanged resource costs nothing in later checks.
const memo = new WeakMap<Encoded, References>();

export function referencesOf(r: Encoded): References {
  let refs = memo.get(r);
  if (!refs) {
    const routes = new Set<string>();
    const dubboRoutes = new Set<string>();
    const clusters = new Set<string>();
    walk(decodeAny(r.any), { routes, dubboRoutes, clusters });
    refs = { routes, dubboRoutes, clusters };
    memo.set(r, refs);
  }
  return refs;
}

function decodeAny(any: Uint8Array): unknown {
  const a = messageType('google.protobuf.Any').decode(any) as unknown as { type_url: string; value: Uint8Array };
  return decodeTyped(a.type_url, a.value);
}

function decodeTyped(typeUrl: string, value: Uint8Array): unknown {
  const t = messageType(typeUrl.slice(TYPE_PREFIX.length));
  return t.toObject(t.decode(value), { defaults: false, longs: String, enums: String });
}

type Sink = { routes: Set<string>; dubboRoutes: Set<string>; clusters: Set<string> };

function walk(v: unknown, to: Sink): void {
  if (Array.isArray(v)) {
    for (const x of v) walk(x, to);
    return;
  }
  if (!v || typeof v !== 'object') return;
  const o = v as Record<string, unknown>;
  // A typed_config (google.protobuf.Any): read what it holds.
  if (typeof o.type_url === 'string' && o.value instanceof Uint8Array) {
    walk(decodeTyped(o.type_url, o.value), to);
    return;
  }
  for (const [k, x] of Object.entries(o)) {
    if (k === 'drds' && x && typeof x === 'object') {
      const n = (x as { route_config_name?: unknown }).route_config_name;
      if (typeof n === 'string') to.dubboRoutes.add(n);
    } else if (k === 'route_config_name' && typeof x === 'string') to.routes.add(x);
    else if (k === 'cluster' && typeof x === 'string') to.clusters.add(x);
    else if (k === 'weighted_clusters' && x && typeof x === 'object') {
      for (const c of ((x as { clusters?: { name?: string }[] }).clusters ?? [])) if (c.name) to.clusters.add(c.name);
    } else walk(x, to);
  }
}

/** What `refs` names that `have` lacks, as "route X" / "cluster Y". */
export function missing(refs: References, have: { readonly routes: ReadonlyMap<string, unknown>; readonly clusters: ReadonlyMap<string, unknown>; readonly dubboRoutes?: ReadonlyMap<string, unknown> }): string[] {
  const out: string[] = [];
  for (const r of refs.routes) if (!have.routes.has(r)) out.push(`route ${r}`);
  for (const r of refs.dubboRoutes) if (!have.dubboRoutes?.has(r)) out.push(`Dubbo route table ${r}`);
  for (const c of refs.clusters) if (!have.clusters.has(c)) out.push(`cluster ${c}`);
  return out;
}

/**
 * Listeners → routes and listeners, routes → clusters of one class view. A listener whose
 * route is missing would keep the proxy waiting on it, so it is left out; a missing cluster
 * is reported. Either is a generator bug, kept as a problem.
 */
export function checkView(v: { listeners: Map<string, Encoded>; routes: ReadonlyMap<string, Encoded>; dubboRoutes?: ReadonlyMap<string, Encoded>; clusters: ReadonlyMap<string, unknown> }, problems: { name: string; reason: string }[]): void {
  for (const [name, l] of v.listeners) {
    const refs = referencesOf(l);
    const gone = missing(refs, v);
    if (!gone.length) continue;
    problems.push({ name, reason: `inconsistent: listener ${name} names missing ${gone.join(', ')}` });
    if ([...refs.routes].some((r) => !v.routes.has(r)) || [...refs.dubboRoutes].some((r) => !v.dubboRoutes?.has(r))) v.listeners.delete(name);
  }
  for (const [name, r] of [...v.routes, ...(v.dubboRoutes ?? [])]) {
    const gone = missing(referencesOf(r), v);
    if (gone.length) problems.push({ name, reason: `inconsistent: route ${name} names missing ${gone.join(', ')}` });
  }
}
