import type { PeerAuthentication } from './rules/peer-authentication.ts';
import type { DestinationRule, VirtualService } from './rules/types.ts';
import type { Endpoint, Rejection, RegistryState, RpcInterface, Service } from './types.ts';
import { createHash, type Hash } from 'node:crypto';
import { canonicalJson, contentHash } from './hash.ts';

// Hashes memoised by object identity. Model objects are never mutated (readonly types; a
// registry change makes new objects), so a hit is never stale. Endpoint lists are only
// memoised when frozen: a caller's mutable array could change after it was hashed.
const serviceHashMemo = new WeakMap<Service, string>();
const endpointListMemo = new WeakMap<readonly Endpoint[], { readonly sorted: readonly Endpoint[]; readonly hash: string }>();
const rulesHashMemo = new WeakMap<readonly VirtualService[], { readonly drs: readonly DestinationRule[]; readonly hash: string }>();

const NO_ENDPOINTS: readonly Endpoint[] = Object.freeze([]);

/** Hash of a service definition (its origin aside). */
function serviceHash(svc: Service): string {
  let h = serviceHashMemo.get(svc);
  if (h === undefined) {
    h = contentHash(canonicalJson({ ...svc, origin: undefined }));
    serviceHashMemo.set(svc, h);
  }
  return h;
}

/** A service's endpoints in a stable order, and their hash (origin reduced to the registry). */
function endpointList(list: readonly Endpoint[]): { readonly sorted: readonly Endpoint[]; readonly hash: string } {
  const hit = endpointListMemo.get(list);
  if (hit) return hit;
  const sorted = Object.freeze([...list].sort(compareEndpoints));
  const r = { sorted, hash: contentHash(canonicalJson(sorted.map((e) => ({ ...e, origin: { registry: e.origin.registry } })))) };
  if (Object.isFrozen(list)) endpointListMemo.set(list, r);
  return r;
}

function hashRules(vss: readonly VirtualService[], drs: readonly DestinationRule[]): string {
  const hit = rulesHashMemo.get(vss);
  if (hit && hit.drs === drs) return hit.hash;
  const specs = (rules: readonly { namespace: string; name: string; spec: unknown }[]): unknown[] => rules.map((r) => [r.namespace, r.name, r.spec]);
  const hash = contentHash(canonicalJson([specs(vss), specs(drs)]));
  if (Object.isFrozen(vss) && Object.isFrozen(drs)) rulesHashMemo.set(vss, { drs, hash });
  return hash;
}

export interface RegistryStatus {
  readonly id: string;
  readonly synced: boolean;
  readonly error?: string;
  readonly services: number;
  readonly endpoints: number;
  readonly rejections: readonly Rejection[];
  readonly warnings?: readonly Rejection[];
}

/** Conflicts found while merging registries: reported, never silently resolved. */
export interface Conflict {
  readonly name: string;
  readonly reason: string;
  readonly origins: readonly string[];
}

/**
 * An immutable view of the whole model at one moment. `version` is a hash of the content,
 * so two processes that see the same registries produce the same version.
 */
export class ModelSnapshot {
  readonly version: string;
  /** Hostname → service, sorted by hostname. */
  readonly services: ReadonlyMap<string, Service>;
  /** Service hostname → its endpoints, in a stable order. */
  readonly endpoints: ReadonlyMap<string, readonly Endpoint[]>;
  /** Alias hostname → primary hostname. */
  readonly aliases: ReadonlyMap<string, string>;
  /** Interface canonical hostname → owning service hostname and the interface. */
  readonly interfaces: ReadonlyMap<string, { readonly service: string; readonly iface: RpcInterface }>;
  /** Per service hostname: hash of the service definition and of its endpoints. */
  readonly serviceHashes: ReadonlyMap<string, string>;
  readonly endpointHashes: ReadonlyMap<string, string>;
  readonly registries: readonly RegistryStatus[];
  readonly conflicts: readonly Conflict[];
  /** Routing rules that passed every check, in registry order. */
  readonly virtualServices: readonly VirtualService[];
  readonly destinationRules: readonly DestinationRule[];
  /** PeerAuthentications, in registry order (the order decides which of two matching ones applies). */
  readonly peerAuthentications: readonly PeerAuthentication[];
  /** Rules refused at serve time (the others apply), and warnings that do not stop a rule. */
  readonly ruleRejections: readonly Rejection[];
  readonly ruleWarnings: readonly Rejection[];
  /** Hash of the accepted rules: a rule change rebuilds routes and clusters. */
  readonly rulesHash: string;

  /** The version's hash fed with the service hashes: the next snapshot with the same services goes on from a copy. */
  readonly #versionHead: Hash;

  constructor(init: {
    services: ReadonlyMap<string, Service>;
    /** Frozen lists are sorted and hashed once per list object (see endpointList). */
    endpoints: ReadonlyMap<string, readonly Endpoint[]>;
    registries: RegistryStatus[];
    conflicts: readonly Conflict[];
    rules?: {
      virtualServices: readonly VirtualService[];
      destinationRules: readonly DestinationRule[];
      peerAuthentications?: readonly PeerAuthentication[];
      rejections: readonly Rejection[];
      warnings: readonly Rejection[];
    };
    /** When `services` is this snapshot's own map, what was derived from it is reused. */
    previous?: ModelSnapshot;
  }) {
    const prev = init.previous;
    if (prev && init.services === prev.services) {
      this.services = prev.services;
      this.aliases = prev.aliases;
      this.interfaces = prev.interfaces;
      this.serviceHashes = prev.serviceHashes;
      this.#versionHead = prev.#versionHead;
    } else {
      const services = new Map<string, Service>();
      const aliases = new Map<string, string>();
      const interfaces = new Map<string, { service: string; iface: RpcInterface }>();
      const serviceHashes = new Map<string, string>();
      for (const h of [...init.services.keys()].sort()) {
        const svc = init.services.get(h)!;
        services.set(h, svc);
        for (const a of svc.aliases) aliases.set(a, h);
        for (const i of svc.interfaces) interfaces.set(i.hostname, { service: h, iface: i });
        serviceHashes.set(h, serviceHash(svc));
      }
      this.services = services;
      this.aliases = aliases;
      this.interfaces = interfaces;
      this.serviceHashes = serviceHashes;
      const text = pairsJson(serviceHashes);
      this.#versionHead = createHash('sha256').update(text ? `[${text},` : '[');
    }
    const endpoints = new Map<string, readonly Endpoint[]>();
    const endpointHashes = new Map<string, string>();
    for (const h of this.services.keys()) {
      const eps = endpointList(init.endpoints.get(h) ?? NO_ENDPOINTS);
      endpoints.set(h, eps.sorted);
      endpointHashes.set(h, eps.hash);
    }
    this.endpoints = endpoints;
    this.endpointHashes = endpointHashes;
    this.registries = init.registries;
    this.conflicts = init.conflicts;
    this.virtualServices = init.rules?.virtualServices ?? [];
    this.destinationRules = init.rules?.destinationRules ?? [];
    this.peerAuthentications = init.rules?.peerAuthentications ?? [];
    this.ruleRejections = init.rules?.rejections ?? [];
    this.ruleWarnings = init.rules?.warnings ?? [];
    this.rulesHash = this.peerAuthentications.length
      ? contentHash(`${hashRules(this.virtualServices, this.destinationRules)}\n${canonicalJson(this.peerAuthentications.map((p) => [p.namespace, p.name, p.selector, p.mode, p.portLevel]))}`)
      : hashRules(this.virtualServices, this.destinationRules);
    // contentHash(canonicalJson([...serviceHashes, ...endpointHashes, rulesHash])), hashed in two parts.
    const tail = pairsJson(endpointHashes);
    this.version = this.#versionHead
      .copy()
      .update(`${tail ? `${tail},` : ''}${JSON.stringify(this.rulesHash)}]`)
      .digest('base64url')
      .slice(0, 16);
    Object.freeze(this);
  }

  static empty(): ModelSnapshot {
    return new ModelSnapshot({ services: new Map(), endpoints: new Map(), registries: [], conflicts: [] });
  }

  /** Resolves a hostname or alias to its service. */
  lookup(host: string): Service | undefined {
    return this.services.get(host) ?? this.services.get(this.aliases.get(host) ?? '');
  }

  /** The model as plain JSON, for /debug/registryz. */
  toJSON(): unknown {
    return {
      version: this.version,
      registries: this.registries,
      conflicts: this.conflicts,
      rules: {
        virtualServices: this.virtualServices.map((r) => `${r.namespace}/${r.name}`),
        destinationRules: this.destinationRules.map((r) => `${r.namespace}/${r.name}`),
        peerAuthentications: this.peerAuthentications.map((r) => `${r.namespace}/${r.name}`),
        rejections: this.ruleRejections,
        warnings: this.ruleWarnings,
      },
      services: [...this.services.values()].map((s) => ({ ...s, endpoints: this.endpoints.get(s.hostname) ?? [] })),
    };
  }
}

/** Map entries as JSON array items, without the brackets: `["k","v"],...`. */
function pairsJson(m: ReadonlyMap<string, string>): string {
  return JSON.stringify([...m]).slice(1, -1);
}

function compareEndpoints(a: Endpoint, b: Endpoint): number {
  return a.address < b.address ? -1 : a.address > b.address ? 1 : canonicalJson(a.ports) < canonicalJson(b.ports) ? -1 : 1;
}

export function registryStatus(s: RegistryState): RegistryStatus {
  return {
    id: s.id,
    synced: s.synced,
    ...(s.error ? { error: s.error } : {}),
    services: s.services.length,
    endpoints: s.endpoints.length,
    rejections: s.rejections,
    ...(s.warnings?.length ? { warnings: s.warnings } : {}),
  };
}
