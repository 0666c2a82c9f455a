// Versions and maps of resource sets: a set's version, a map sharing its predecessor with
// the replaced entries on top, and a set version rehashed per bucket of names.
import { contentHash } from '../model/hash.ts';

/** Version of a set of resources: its names and their versions, in order. */
export function setVersion(map: ReadonlyMap<string, { readonly version: string }>): string {
  const h: string[] = [];
  for (const [name, r] of map) h.push(name, r.version);
  return contentHash(h.join('\n'));
}

/** Past this many replacements (or a sixteenth of the map), a patched map is copied into a plain one. */
const MAX_PATCH = 64;

/**
 * A resource map that is an earlier one with some resources replaced, same names in the same
 * order: it shares the earlier map rather than copying it on every endpoint change.
 */
class PatchedMap<V> implements ReadonlyMap<string, V> {
  readonly base: ReadonlyMap<string, V>;
  readonly patch: ReadonlyMap<string, V>;

  constructor(base: ReadonlyMap<string, V>, patch: ReadonlyMap<string, V>) {
    this.base = base;
    this.patch = patch;
  }

  get size(): number {
    return this.base.size;
  }

  get(name: string): V | undefined {
    return this.patch.get(name) ?? this.base.get(name);
  }

  has(name: string): boolean {
    return this.base.has(name);
  }

  keys(): MapIterator<string> {
    return this.base.keys();
  }

  values(): MapIterator<V> {
    return new PatchedIterator(this.base.entries(), this.patch, (_name: string, r: V) => r);
  }

  entries(): MapIterator<[string, V]> {
    return new PatchedIterator(this.base.entries(), this.patch, (name: string, r: V): [string, V] => [name, r]);
  }

  [Symbol.iterator](): MapIterator<[string, V]> {
    return this.entries();
  }

  forEach(fn: (value: V, key: string, map: ReadonlyMap<string, V>) => void, thisArg?: unknown): void {
    for (const [name, r] of this) fn.call(thisArg, r, name, this);
  }
}

/** Iterates the base map, substituting replaced resources (a plain iterator: generators are slower). */
class PatchedIterator<V, T> implements MapIterator<T> {
  private readonly base: MapIterator<[string, V]>;
  private readonly patch: ReadonlyMap<string, V>;
  private readonly item: (name: string, r: V) => T;

  constructor(base: MapIterator<[string, V]>, patch: ReadonlyMap<string, V>, item: (name: string, r: V) => T) {
    this.base = base;
    this.patch = patch;
    this.item = item;
  }

  next(): IteratorResult<T, undefined> {
    const n = this.base.next();
    if (n.done) return { done: true, value: undefined };
    const [name, r] = n.value;
    return { done: false, value: this.item(name, this.patch.get(name) ?? r) };
  }

  [Symbol.iterator](): MapIterator<T> {
    return this;
  }

  [Symbol.dispose](): void {
    this.base[Symbol.dispose]();
  }
}

/** `before` with `changes` replacing resources of the same names. */
export function patched<V>(before: ReadonlyMap<string, V>, changes: ReadonlyMap<string, V>): ReadonlyMap<string, V> {
  if (!changes.size) return before;
  const base = before instanceof PatchedMap ? before.base : before;
  const patch = new Map(before instanceof PatchedMap ? before.patch : undefined);
  for (const [name, r] of changes) patch.set(name, r);
  if (patch.size <= Math.max(MAX_PATCH, base.size >> 4)) return new PatchedMap(base, patch);
  const out = new Map<string, V>();
  for (const [name, r] of base) out.set(name, patch.get(name) ?? r);
  return out;
}

/**
 * The version of a resource set, hashed per bucket of names: a change rehashes its bucket and
 * the bucket hashes, not the whole set. Buckets depend on names only, so equal sets give equal
 * versions in every process, however they were reached.
 */
export interface SetDigest {
  readonly buckets: readonly Bucket[];
  readonly version: string;
}

interface Bucket {
  /** Name → resource version. */
  readonly versions: ReadonlyMap<string, string>;
  readonly hash: string;
}

const BUCKETS = 256;
const EMPTY_BUCKET: Bucket = { versions: new Map(), hash: '' };

function bucketOf(name: string): number {
  // FNV-1a: cheap, and the same in every process.
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return (h >>> 0) % BUCKETS;
}

/** `before` with names set to a version, or removed (undefined); only touched buckets are copied. */
export function digest(before: SetDigest | undefined, changes: Iterable<readonly [string, string | undefined]>): SetDigest {
  const touched = new Map<number, Map<string, string>>();
  const buckets = before ? [...before.buckets] : new Array<Bucket>(BUCKETS).fill(EMPTY_BUCKET);
  for (const [name, version] of changes) {
    const b = bucketOf(name);
    let versions = touched.get(b);
    if (!versions) touched.set(b, (versions = new Map(buckets[b]!.versions)));
    if (version === undefined) versions.delete(name);
    else versions.set(name, version);
  }
  if (before && !touched.size) return before;
  for (const [b, versions] of touched) {
    const lines: string[] = [];
    for (const name of [...versions.keys()].sort()) lines.push(name, versions.get(name)!);
    buckets[b] = versions.size ? { versions, hash: contentHash(lines.join('\n')) } : EMPTY_BUCKET;
  }
  return { buckets, version: contentHash(buckets.map((b) => b.hash).join('\n')) };
}
