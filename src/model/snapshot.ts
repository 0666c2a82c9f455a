import type { DestinationRule, VirtualService } from './rules.ts';
import type { Endpoint, Rejection, RegistryState, RpcInterface, Service } from './types.ts';
import { canonicalJson, contentHash } from './hash.ts';

export interface RegistryStatus {
  readonly id: string;
  readonly synced: boolean;
  readonly error?: string;
  readonly services: number;
  readonly endpoints: number;
  readonly rejections: readonly Rejection[];
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
  /** Rules refused at serve time (the others apply), and warnings that do not stop a rule. */
  readonly ruleRejections: readonly Rejection[];
  readonly ruleWarnings: readonly Rejection[];
  /** Hash of the accepted rules: a rule change rebuilds routes and clusters. */
  readonly rulesHash: string;

  constructor(init: {
    services: Map<string, Service>;
    endpoints: Map<string, Endpoint[]>;
    registries: RegistryStatus[];
    conflicts: Conflict[];
    rules?: {
      virtualServices: readonly VirtualService[];
      destinationRules: readonly DestinationRule[];
      rejections: readonly Rejection[];
      warnings: readonly Rejection[];
    };
  }) {
    const hostnames = [...init.services.keys()].sort();
    const services = new Map<string, Service>();
    const endpoints = new Map<string, readonly Endpoint[]>();
    const aliases = new Map<string, string>();
    const interfaces = new Map<string, { service: string; iface: RpcInterface }>();
    const serviceHashes = new Map<string, string>();
    const endpointHashes = new Map<string, string>();
    for (const h of hostnames) {
      const svc = init.services.get(h)!;
      services.set(h, svc);
      for (const a of svc.aliases) aliases.set(a, h);
      for (const i of svc.interfaces) interfaces.set(i.hostname, { service: h, iface: i });
      const eps = [...(init.endpoints.get(h) ?? [])].sort(compareEndpoints);
      endpoints.set(h, Object.freeze(eps));
      serviceHashes.set(h, contentHash(canonicalJson({ ...svc, origin: undefined })));
      endpointHashes.set(h, contentHash(canonicalJson(eps.map((e) => ({ ...e, origin: { registry: e.origin.registry } })))));
    }
    this.services = services;
    this.endpoints = endpoints;
    this.aliases = aliases;
    this.interfaces = interfaces;
    this.serviceHashes = serviceHashes;
    this.endpointHashes = endpointHashes;
    this.registries = init.registries;
    this.conflicts = init.conflicts;
    this.virtualServices = init.rules?.virtualServices ?? [];
    this.destinationRules = init.rules?.destinationRules ?? [];
    this.ruleRejections = init.rules?.rejections ?? [];
    this.ruleWarnings = init.rules?.warnings ?? [];
    const specs = (rules: readonly { namespace: string; name: string; spec: unknown }[]): unknown[] => rules.map((r) => [r.namespace, r.name, r.spec]);
    this.rulesHash = contentHash(canonicalJson([specs(this.virtualServices), specs(this.destinationRules)]));
    this.version = contentHash(canonicalJson([...serviceHashes, ...endpointHashes, this.rulesHash]));
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
        rejections: this.ruleRejections,
        warnings: this.ruleWarnings,
      },
      services: [...this.services.values()].map((s) => ({ ...s, endpoints: this.endpoints.get(s.hostname) ?? [] })),
    };
  }
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
  };
}
