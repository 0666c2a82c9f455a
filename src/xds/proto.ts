import { createRequire } from 'node:module';
import { accessSync, existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import protobuf from 'protobufjs';
import type { Any, MessageByName } from '../generated/envoy.ts';

// The Envoy API protos ship inside @grpc/grpc-js-xds; they are loaded from there, never
// copied. protos/manifest.json lists every file, its include directories and the exact
// package version; a mismatch stops start-up with what is wrong, not a parse error later.
const require = createRequire(import.meta.url);
export const MANIFEST_PATH = fileURLToPath(new URL('../../protos/manifest.json', import.meta.url));

interface Manifest {
  readonly source: { readonly package: string; readonly version: string };
  readonly includeDirs: readonly { readonly package: string; readonly dir: string }[];
  readonly files: readonly string[];
}

export class ProtoManifestError extends Error {}

/** The include directories and files of the manifest, checked against what is installed. */
export function checkedManifest(manifestPath: string = MANIFEST_PATH): { includeDirs: string[]; files: readonly string[] } {
  let m: Manifest;
  try {
    m = JSON.parse(readFileSync(manifestPath, 'utf8')) as Manifest;
  } catch (e) {
    throw new ProtoManifestError(`cannot read the proto manifest ${manifestPath}: ${(e as Error).message}`);
  }
  const root = (pkg: string): string => {
    try {
      return path.dirname(require.resolve(`${pkg}/package.json`));
    } catch {
      throw new ProtoManifestError(`${manifestPath}: package ${pkg} is not installed (run npm ci)`);
    }
  };
  const installed = (JSON.parse(readFileSync(path.join(root(m.source.package), 'package.json'), 'utf8')) as { version: string }).version;
  if (installed !== m.source.version) {
    throw new ProtoManifestError(`${manifestPath}: the Envoy protos are pinned to ${m.source.package} ${m.source.version}, but ${installed} is installed (run npm ci, or update the manifest and check every file it lists)`);
  }
  const includeDirs = m.includeDirs.map((d) => path.join(root(d.package), d.dir));
  const missing = m.files.filter((f) => !includeDirs.some((d) => existsSync(path.join(d, f))));
  if (missing.length) throw new ProtoManifestError(`${manifestPath}: ${m.source.package} ${installed} lacks ${missing.length} listed proto file(s): ${missing.slice(0, 5).join(', ')}`);
  return { includeDirs, files: m.files };
}

// Read on first use, so that `--help` works and a broken install is reported by the command, not at import.
let manifest: { includeDirs: string[]; files: readonly string[] } | undefined;
function installed(): { includeDirs: string[]; files: readonly string[] } {
  return (manifest ??= checkedManifest());
}

/** The include directories of protos/manifest.json, resolved in the installed packages. */
export function protoIncludeDirs(): string[] {
  return installed().includeDirs;
}

function load(): protobuf.Root {
  const { includeDirs, files } = installed();
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => {
    if (path.isAbsolute(target)) return target;
    for (const dir of includeDirs) {
      const candidate = path.join(dir, target);
      try {
        accessSync(candidate);
        return candidate;
      } catch {
        // try the next include dir
      }
    }
    return target;
  };
  root.loadSync([...files], { keepCase: true });
  root.resolveAll();
  return root;
}

let root: protobuf.Root | undefined;

/** Loads every proto of the manifest now; throws ProtoManifestError naming what is missing. */
export function loadProtos(): void {
  root ??= load();
}

const typeCache = new Map<string, protobuf.Type>();
export function messageType(fullName: string): protobuf.Type {
  let t = typeCache.get(fullName);
  if (!t) {
    t = (root ??= load()).lookupType(fullName);
    typeCache.set(fullName, t);
  }
  return t;
}

export const TYPE_PREFIX = 'type.googleapis.com/';

/** Encodes a message (enum names accepted) and wraps it as google.protobuf.Any. */
export function toAny<N extends keyof MessageByName>(fullName: N, value: MessageByName[N]): Any {
  const t = messageType(fullName);
  return { type_url: TYPE_PREFIX + fullName, value: t.encode(t.fromObject(value as Record<string, unknown>)).finish() };
}

/** Decodes bytes to a plain object with enum names, longs as strings: for debug output. */
export function decodeToJson(fullName: string, bytes: Uint8Array): Record<string, unknown> {
  const t = messageType(fullName);
  return t.toObject(t.decode(bytes), { enums: String, longs: String, bytes: String, defaults: false }) as Record<string, unknown>;
}

/**
 * As decodeToJson, with every nested google.protobuf.Any (typed_config, api_listener…)
 * decoded in place as Envoy's config dump shows it: {"@type": URL, ...fields}. An Any of a
 * type not loaded stays as it is (base64 value).
 */
export function decodeToJsonDeep(fullName: string, bytes: Uint8Array): Record<string, unknown> {
  return expandAnys(decodeToJson(fullName, bytes), 0) as Record<string, unknown>;
}

function expandAnys(v: unknown, depth: number): unknown {
  if (depth > 32 || v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map((x) => expandAnys(x, depth + 1));
  const o = v as Record<string, unknown>;
  if (typeof o.type_url === 'string' && typeof o.value === 'string' && o.type_url.startsWith(TYPE_PREFIX)) {
    const name = o.type_url.slice(TYPE_PREFIX.length);
    try {
      return { '@type': o.type_url, ...(expandAnys(decodeToJson(name, Buffer.from(o.value, 'base64')), depth + 1) as object) };
    } catch {
      return o;
    }
  }
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(o)) out[k] = expandAnys(x, depth + 1);
  return out;
}
