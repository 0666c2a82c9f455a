// Dubbo 3 application-level discovery: instances under `/services/<application>/<ip:port>`
// (Curator x-discovery JSON), which interfaces an application serves from
// `<root>/mapping/<interface>`, their definitions from
// `<root>/metadata/<interface>[/<version>][/<group>]/provider/<application>`, and with
// `metadata-type=remote` the instance's revision document `<root>/metadata/<app>/<revision>`.
// The result is providers in the same form as interface-level ones, so both discovery
// models map to one service and one set of endpoints.
import { isIP } from 'node:net';
import type { Rejection } from '../../model/types.ts';
import { type Provider, ProviderError, providerLabels } from './provider.ts';

/** One registered instance of an application. */
export interface AppInstance {
  readonly key: string;
  readonly application: string;
  readonly address: string;
  /** Protocols and ports (`dubbo.endpoints`; the instance port for Dubbo's default protocol when absent). */
  readonly endpoints: readonly { readonly protocol: string; readonly port: number }[];
  readonly revision?: string;
  /** Where the instance's interfaces are written: `remote` in the metadata tree, `local` only in the application. */
  readonly storage: 'local' | 'remote';
  readonly labels: Readonly<Record<string, string>>;
  /** False when Dubbo marks the instance disabled or unhealthy. */
  readonly healthy: boolean;
}

/** One interface of one application, as its definition or revision document states it. */
export interface InterfaceInfo {
  readonly interface: string;
  readonly version?: string;
  readonly group?: string;
  readonly methods: readonly string[];
  readonly params: Readonly<Record<string, string>>;
  /** Set in a revision document: the interface is served over this protocol only. */
  readonly protocol?: string;
  readonly port?: number;
}

/** An instance's metadata revision (`metadata-type=remote`): its interfaces exactly. */
export interface RevisionDoc {
  readonly application: string;
  readonly revision: string;
  readonly services: readonly InterfaceInfo[];
}

const MAX_DOC_BYTES = 1 << 20;
// Instance metadata that describes Dubbo itself rather than labelling the instance.
const INSTANCE_NOT_LABELS = new Set(['meta-v', 'timestamp', 'weight']);

function json(data: string, what: string): Record<string, unknown> {
  if (data.length > MAX_DOC_BYTES) throw new ProviderError(what, `${what} is ${data.length} bytes, over the ${MAX_DOC_BYTES}-byte limit`);
  let v: unknown;
  try {
    v = JSON.parse(data);
  } catch (e) {
    throw new ProviderError(what, `${what} is not JSON: ${(e as Error).message}`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new ProviderError(what, `${what} is not a JSON object`);
  return v as Record<string, unknown>;
}

function port(v: unknown, field: string): number {
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 65535) throw new ProviderError(field, `${field} ${JSON.stringify(v)} is not a port 1-65535`);
  return n;
}

function stringMap(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!v || typeof v !== 'object') return out;
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) if (typeof x === 'string' || typeof x === 'number' || typeof x === 'boolean') out[k] = String(x);
  return out;
}

/**
 * Parses `/services/<application>/<id>`: Curator's x-discovery JSON (ZooKeeper: `name`,
 * `address`, `payload.metadata`) or Dubbo's own instance JSON (etcd: `serviceName`, `host`,
 * `metadata`). Throws ProviderError naming the field that is wrong.
 */
export function parseInstance(key: string, application: string, data: string): AppInstance {
  const doc = json(data, 'instance');
  const curator = doc.payload !== undefined || doc.address !== undefined;
  const [nameField, addressField, metadataField] = curator ? ['name', 'address', 'payload.metadata'] : ['serviceName', 'host', 'metadata'];
  const name = doc[nameField];
  if (name !== undefined && name !== application) throw new ProviderError(nameField, `instance names application ${JSON.stringify(name)} but is registered under ${JSON.stringify(application)}`);
  const address = doc[addressField];
  if (typeof address !== 'string' || !isIP(address)) throw new ProviderError(addressField, `instance address ${JSON.stringify(address)} is not an IP address`);
  const instancePort = port(doc.port, 'port');
  const metadata = stringMap(curator ? ((doc.payload ?? {}) as Record<string, unknown>).metadata : doc.metadata);
  let endpoints: { protocol: string; port: number }[] = [{ protocol: 'dubbo', port: instancePort }];
  const raw = metadata['dubbo.endpoints'];
  if (raw !== undefined) {
    let list: unknown;
    try {
      list = JSON.parse(raw);
    } catch {
      throw new ProviderError(`${metadataField}.dubbo.endpoints`, 'dubbo.endpoints is not a JSON list');
    }
    if (!Array.isArray(list) || list.length === 0) throw new ProviderError(`${metadataField}.dubbo.endpoints`, 'dubbo.endpoints is not a list of {port, protocol}');
    endpoints = list.map((e: unknown, i) => {
      const o = (e ?? {}) as Record<string, unknown>;
      if (typeof o.protocol !== 'string' || !/^[a-z][a-z0-9+.-]*$/.test(o.protocol)) throw new ProviderError(`${metadataField}.dubbo.endpoints[${i}].protocol`, `protocol ${JSON.stringify(o.protocol)} is not a URL scheme`);
      return { protocol: o.protocol, port: port(o.port, `${metadataField}.dubbo.endpoints[${i}].port`) };
    });
  }
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(metadata)) if (!k.startsWith('dubbo.') && !INSTANCE_NOT_LABELS.has(k)) labels[k] = v;
  const revision = metadata['dubbo.metadata.revision'];
  return {
    key,
    application,
    address,
    endpoints,
    ...(revision ? { revision } : {}),
    storage: metadata['dubbo.metadata.storage-type'] === 'remote' ? 'remote' : 'local',
    labels,
    // Dubbo's own JSON says whether the instance takes calls.
    healthy: doc.enabled !== false && doc.healthy !== false,
  };
}

/** `<root>/mapping/<interface>`: the applications that serve it, comma-separated. */
export function parseMapping(data: string): string[] {
  return [...new Set(data.split(',').map((s) => s.trim()).filter(Boolean))];
}

function methodsOf(doc: Record<string, unknown>, params: Record<string, string>): string[] {
  if (Array.isArray(doc.methods)) {
    const names = doc.methods.map((m) => (m && typeof m === 'object' ? (m as { name?: unknown }).name : undefined)).filter((n): n is string => typeof n === 'string');
    if (names.length) return [...new Set(names)].sort();
  }
  return (params.methods ?? '').split(',').map((s) => s.trim()).filter(Boolean).sort();
}

/** A service definition `<root>/metadata/<interface>/…/provider/<application>`. */
export function parseDefinition(iface: string, data: string): InterfaceInfo {
  const doc = json(data, 'definition');
  const params = stringMap(doc.parameters);
  const name = typeof doc.canonicalName === 'string' ? doc.canonicalName : (params.interface ?? iface);
  if (name !== iface) throw new ProviderError('canonicalName', `definition names interface ${JSON.stringify(name)} but is stored under ${JSON.stringify(iface)}`);
  return {
    interface: iface,
    ...(params.version ? { version: params.version } : {}),
    ...(params.group ? { group: params.group } : {}),
    methods: methodsOf(doc, params),
    params: providerLabels(params),
  };
}

/** A revision document `<root>/metadata/<application>/<revision>` (metadata-type=remote). */
export function parseRevision(application: string, revision: string, data: string): RevisionDoc {
  const doc = json(data, 'revision');
  if (doc.app !== undefined && doc.app !== application) throw new ProviderError('app', `revision document names application ${JSON.stringify(doc.app)}, stored under ${JSON.stringify(application)}`);
  const services: InterfaceInfo[] = [];
  const raw = doc.services;
  if (!raw || typeof raw !== 'object') throw new ProviderError('services', 'revision document has no services map');
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    const s = (v ?? {}) as Record<string, unknown>;
    const params = stringMap(s.params);
    const name = typeof s.name === 'string' ? s.name : params.interface;
    if (!name) throw new ProviderError(`services.${k}.name`, 'a service without a name');
    const protocol = typeof s.protocol === 'string' ? s.protocol : undefined;
    const version = typeof s.version === 'string' && s.version ? s.version : params.version;
    const group = typeof s.group === 'string' && s.group ? s.group : params.group;
    services.push({
      interface: name,
      ...(version ? { version } : {}),
      ...(group ? { group } : {}),
      methods: methodsOf({}, params),
      params: providerLabels(params),
      ...(protocol ? { protocol } : {}),
      ...(s.port !== undefined && s.port !== 0 ? { port: port(s.port, `services.${k}.port`) } : {}),
    });
  }
  return { application, revision, services };
}

export interface AppLevelInput {
  readonly instances: readonly AppInstance[];
  /** Interface → the applications that serve it. */
  readonly mapping: ReadonlyMap<string, readonly string[]>;
  /** `<application>\0<interface>` → its definitions (one per version and group). */
  readonly definitions: ReadonlyMap<string, readonly InterfaceInfo[]>;
  /** `<application>/<revision>` → the revision document. */
  readonly revisions: ReadonlyMap<string, RevisionDoc>;
  /** Interface-level providers of the same registry: an instance registered both ways counts once. */
  readonly interfaceLevel: readonly Provider[];
  /** Where revision documents live, for the messages. */
  readonly metadataRoot: string;
}

export function definitionKey(application: string, iface: string): string {
  return `${application}\u0000${iface}`;
}

/** Application-level instances → providers, and what an operator should know about them. */
export function instanceProviders(input: AppLevelInput): { providers: Provider[]; warnings: Rejection[] } {
  const providers: Provider[] = [];
  const warnings: Rejection[] = [];
  const registered = new Set(input.interfaceLevel.map((p) => `${p.application}|${p.address}`));
  const byApp = new Map<string, string[]>();
  for (const [iface, apps] of input.mapping) for (const a of apps) (byApp.get(a) ?? byApp.set(a, []).get(a)!).push(iface);
  for (const list of byApp.values()) list.sort();
  let bySibling: Map<string, InterfaceInfo[]> | undefined;
  const siblings = (): Map<string, InterfaceInfo[]> => (bySibling ??= interfacesByApplication(input.interfaceLevel));
  for (const inst of input.instances) {
    // Registered both ways: the interface-level providers say exactly what it serves.
    if (registered.has(`${inst.application}|${inst.address}`)) continue;
    let services: readonly InterfaceInfo[] | undefined;
    let missing: string | undefined;
    if (inst.storage === 'remote' && inst.revision) {
      services = input.revisions.get(`${inst.application}/${inst.revision}`)?.services;
      if (!services) missing = `${input.metadataRoot}/${inst.application}/${inst.revision}`;
    }
    services ??= (byApp.get(inst.application) ?? []).flatMap((iface) => input.definitions.get(definitionKey(inst.application, iface)) ?? [{ interface: iface, methods: [], params: {} }]);
    // No mapping (Dubbo on etcd has no metadata report to write one): an instance moved from
    // interface to instance mode keeps serving the interfaces its application's other
    // instances register, on the protocols it has.
    let inferred = false;
    if (services.length === 0) {
      const protocols = new Set(inst.endpoints.map((e) => e.protocol));
      services = (siblings().get(inst.application) ?? []).filter((s) => protocols.has(s.protocol!));
      inferred = services.length > 0;
    }
    const out = providersOf(inst, services, missing, inferred);
    providers.push(...out.providers);
    warnings.push(...out.warnings);
  }
  return { providers, warnings };
}

// The same instance with the same interfaces gives the same provider objects, so that the
// mapping (which keeps an application's result while its provider objects are the same)
// re-maps only applications whose instances or metadata changed.
const built = new WeakMap<AppInstance, { sig: string; providers: Provider[]; warnings: Rejection[] }>();

/** What each application's interface-level providers serve: interface, version, group, methods, protocol (no instance's own parameters). */
function interfacesByApplication(providers: readonly Provider[]): Map<string, InterfaceInfo[]> {
  const out = new Map<string, Map<string, InterfaceInfo>>();
  for (const p of providers) {
    if (p.instanceOnly || !p.interface) continue;
    const byKey = out.get(p.application) ?? out.set(p.application, new Map()).get(p.application)!;
    const key = `${p.interface}:${p.version ?? ''}:${p.group ?? ''}@${p.protocol}`;
    if (!byKey.has(key)) byKey.set(key, { interface: p.interface, methods: p.methods, params: {}, protocol: p.protocol, ...(p.version ? { version: p.version } : {}), ...(p.group ? { group: p.group } : {}) });
  }
  return new Map([...out].map(([app, m]) => [app, [...m.values()].sort((a, b) => (a.interface < b.interface ? -1 : a.interface > b.interface ? 1 : 0))]));
}

function providersOf(inst: AppInstance, services: readonly InterfaceInfo[], missing: string | undefined, inferred = false): { providers: Provider[]; warnings: Rejection[] } {
  const sig = JSON.stringify([missing, inferred, services]);
  const hit = built.get(inst);
  if (hit?.sig === sig) return hit;
  const providers: Provider[] = [];
  const warnings: Rejection[] = [];
  if (missing) {
    warnings.push({ source: inst.key, kind: 'instance', name: inst.application, field: 'payload.metadata.dubbo.metadata.revision', reason: `revision ${inst.revision} not found at ${missing}; its interfaces are taken from the mapping` });
  }
  if (inferred) {
    warnings.push({ source: inst.key, kind: 'instance', name: inst.application, reason: `no interface of application ${inst.application} is in the mapping: its interfaces (${[...new Set(services.map((s) => s.interface))].join(', ')}) are taken from the application's interface-level providers` });
  }
  const base = { application: inst.application, address: inst.address, weight: 100, enabled: inst.healthy } as const;
  if (services.length === 0) {
    warnings.push({ source: inst.key, kind: 'instance', name: inst.application, reason: `no interface of application ${inst.application} is known (none in the mapping, metadata kept in the application): served under the application name only` });
    for (const e of inst.endpoints) providers.push({ ...base, key: inst.key, protocol: e.protocol, port: e.port, interface: '', methods: [], params: { ...inst.labels }, instanceOnly: true, ...(e.protocol === 'dubbo' ? { speaksDubbo: true as const } : {}) });
  }
  for (const s of services) {
    const own = s.protocol ? [{ protocol: s.protocol, port: s.port ?? inst.endpoints.find((e) => e.protocol === s.protocol)?.port ?? inst.endpoints[0]!.port }] : inst.endpoints;
    for (const e of own) {
      providers.push({
        ...base,
        key: `${inst.key}#${s.interface}${s.version ? `:${s.version}` : ''}${s.group ? `:${s.group}` : ''}@${e.protocol}`,
        protocol: e.protocol,
        port: e.port,
        interface: s.interface,
        methods: s.methods,
        ...(s.version ? { version: s.version } : {}),
        ...(s.group ? { group: s.group } : {}),
        params: { ...inst.labels, ...s.params },
        // Dubbo 3's own service discovery wrote it.
        ...(e.protocol === 'dubbo' ? { speaksDubbo: true as const } : {}),
      });
    }
  }
  const out = { sig, providers, warnings };
  built.set(inst, out);
  return out;
}

export type Parsed<T> = { readonly value: T } | { readonly rejection: Rejection };

/** What one session has read of the application-level trees. */
export class AppLevelTree {
  /** Application → instance node name → instance. */
  readonly instances = new Map<string, Map<string, Parsed<AppInstance>>>();
  /** Interface → the applications its mapping names. */
  readonly mapping = new Map<string, readonly string[]>();
  /** Interface → definition node path → definition of one application. */
  readonly definitions = new Map<string, Map<string, Parsed<{ application: string; info: InterfaceInfo }>>>();
  /** `<app>/<revision>` → its document (or why it cannot be used); absent while not found. */
  readonly revisions = new Map<string, Parsed<RevisionDoc>>();
}

export interface AppLevelPaths {
  /** Dubbo root, e.g. /dubbo: its `mapping` and `metadata` children. */
  readonly root: string;
  /** Where instances are, e.g. /services. */
  readonly services: string;
}

/** The application-level input for the mapping, and the nodes that could not be used. */
export function appLevelInput(tree: AppLevelTree, interfaceLevel: readonly Provider[], paths: AppLevelPaths): { input: AppLevelInput; rejections: Rejection[] } {
  const rejections: Rejection[] = [];
  const instances: AppInstance[] = [];
  const apps = [...tree.instances.keys()].sort();
  for (const app of apps) {
    for (const e of tree.instances.get(app)!.values()) {
      if ('value' in e) instances.push(e.value);
      else rejections.push(e.rejection);
    }
  }
  const definitions = new Map<string, InterfaceInfo[]>();
  for (const [iface, defs] of tree.definitions) {
    for (const e of defs.values()) {
      if ('rejection' in e) {
        rejections.push(e.rejection);
        continue;
      }
      const k = definitionKey(e.value.application, iface);
      (definitions.get(k) ?? definitions.set(k, []).get(k)!).push(e.value.info);
    }
  }
  const revisions = new Map<string, RevisionDoc>();
  const used = new Set(instances.filter((i) => i.storage === 'remote' && i.revision).map((i) => `${i.application}/${i.revision}`));
  for (const [k, e] of tree.revisions) {
    if (!used.has(k)) continue;
    if ('value' in e) revisions.set(k, e.value);
    else rejections.push(e.rejection);
  }
  return { input: { instances, mapping: tree.mapping, definitions, revisions, interfaceLevel, metadataRoot: `${paths.root}/metadata` }, rejections };
}

/** A parse that names what is wrong instead of throwing. */
export function parseOr<T>(source: string, kind: string, name: string, fn: () => T): Parsed<T> {
  try {
    return { value: fn() };
  } catch (err) {
    if (!(err instanceof ProviderError)) throw err;
    return { rejection: { source, kind, name, field: err.field, reason: err.message } };
  }
}

/** Which application-level tree a key belongs to, for registries that read flat keys (etcd). */
export function isAppLevelKey(key: string, paths: AppLevelPaths): boolean {
  return key.startsWith(`${paths.services}/`) || key.startsWith(`${paths.root}/mapping/`) || key.startsWith(`${paths.root}/metadata/`);
}

/**
 * Applies one key of a flat store (undefined value: deleted) to the tree; false when the key
 * is none of the application-level layout's. `show` renders a key for messages.
 */
export function applyAppLevelKey(tree: AppLevelTree, paths: AppLevelPaths, key: string, value: string | undefined, show: (k: string) => string = (k) => k): boolean {
  const under = (prefix: string): string[] | undefined => (key.startsWith(`${prefix}/`) ? key.slice(prefix.length + 1).split('/') : undefined);
  const inst = under(paths.services);
  if (inst) {
    if (inst.length !== 2 || !inst[0] || !inst[1]) return false;
    const [app, id] = inst as [string, string];
    const known = tree.instances.get(app) ?? tree.instances.set(app, new Map()).get(app)!;
    if (value === undefined) {
      known.delete(id);
      if (!known.size) tree.instances.delete(app);
    } else known.set(id, parseOr(show(key), 'instance', app, () => parseInstance(key, app, value)));
    return true;
  }
  const mapped = under(`${paths.root}/mapping`);
  if (mapped) {
    if (mapped.length !== 1 || !mapped[0]) return false;
    if (value === undefined) tree.mapping.delete(mapped[0]);
    else tree.mapping.set(mapped[0], parseMapping(value));
    return true;
  }
  const meta = under(`${paths.root}/metadata`);
  if (!meta || meta.some((p) => !p)) return false;
  if (meta.length === 2) {
    // <app>/<revision>
    const rev = `${meta[0]}/${meta[1]}`;
    if (value === undefined) tree.revisions.delete(rev);
    else tree.revisions.set(rev, parseOr(show(key), 'revision', meta[0]!, () => parseRevision(meta[0]!, meta[1]!, value)));
    return true;
  }
  if (meta.length >= 3 && meta[meta.length - 2] === 'provider') {
    const iface = meta[0]!;
    const app = meta[meta.length - 1]!;
    const defs = tree.definitions.get(iface) ?? tree.definitions.set(iface, new Map()).get(iface)!;
    if (value === undefined) {
      defs.delete(key);
      if (!defs.size) tree.definitions.delete(iface);
    } else defs.set(key, parseOr(show(key), 'definition', iface, () => ({ application: app, info: parseDefinition(iface, value) })));
    return true;
  }
  return false;
}
