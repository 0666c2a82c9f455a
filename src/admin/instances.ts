// Per-instance view for /debug/registryz: where each endpoint came from, whether a
// connected transparent sidecar fronts it, and so which path a call to it takes.
import { DEFAULT_TRUST_DOMAIN, spiffeId } from '../model/identity.ts';
import type { ModelSnapshot } from '../model/snapshot.ts';

/** What this view needs of a connected proxy (the composer maps the ADS server's proxies onto it). */
export interface ConnectedProxy {
  readonly id: string;
  readonly kind: 'envoy' | 'grpc';
  readonly mode: 'explicit' | 'transparent';
  readonly appPorts: readonly { readonly port: number }[];
  /** Addresses the proxy says it fronts (node metadata ISTHMUS_INSTANCE_IPS); empty: its peer address. */
  readonly instanceIps: readonly string[];
  /** The address its xDS stream comes from. */
  readonly peer: string;
}

export type CallPath = 'direct' | 'client single-hop' | 'server single-hop' | 'double-hop';

export interface InstanceStatus {
  readonly service: string;
  readonly address: string;
  readonly ports: Readonly<Record<string, number>>;
  /** The registry the endpoint came from (its id, e.g. etcd://…/dubbo or file://…). */
  readonly source: string;
  /** Its workload's SPIFFE ID (a pod's ServiceAccount, a WorkloadEntry's serviceAccount, the join token bound to its host's address); null when none names one. */
  readonly identity: string | null;
  /** Node id of the transparent sidecar intercepting this instance's inbound traffic, if any. */
  readonly sidecar: string | null;
  /** The path of a call to this instance, from a caller with a sidecar and from one without. */
  readonly paths: { readonly fromMeshedCaller: CallPath; readonly fromLegacyCaller: CallPath };
}

/** The peer's IP from a gRPC peer string ("ipv4:1.2.3.4:5", "1.2.3.4:5", "[::1]:5"). */
export function peerAddress(peer: string): string {
  const s = peer.replace(/^ipv[46]:/, '');
  const v6 = /^\[([^\]]+)\]:\d+$/.exec(s);
  if (v6) return v6[1]!;
  const i = s.lastIndexOf(':');
  return i > 0 && s.indexOf(':') === i ? s.slice(0, i) : s;
}

/**
 * Addresses a proxy answers for: node metadata ISTHMUS_INSTANCE_IPS (`isthmus bootstrap
 * --instance-ip`, e.g. the pod IP) or, without it, the address its xDS stream comes from.
 */
export function proxyAddresses(p: ConnectedProxy): readonly string[] {
  return p.instanceIps.length ? p.instanceIps : [peerAddress(p.peer)];
}

/**
 * `byAddress`: identities of hosts that joined with an address-bound join token, for
 * endpoints whose registry names none (a VM's SOA providers).
 */
export function instanceStatus(model: ModelSnapshot, proxies: readonly ConnectedProxy[], trustDomain = DEFAULT_TRUST_DOMAIN, byAddress: ReadonlyMap<string, { namespace: string; serviceAccount: string }> = new Map()): InstanceStatus[] {
  // Only transparent Envoy sidecars intercept inbound calls sent to the app's own address.
  const fronting = new Map<string, { id: string; appPorts: ReadonlySet<number> }[]>();
  for (const p of proxies) {
    if (p.kind !== 'envoy' || p.mode !== 'transparent') continue;
    for (const a of proxyAddresses(p)) {
      const list = fronting.get(a) ?? fronting.set(a, []).get(a)!;
      list.push({ id: p.id, appPorts: new Set(p.appPorts.map((x) => x.port)) });
    }
  }
  const out: InstanceStatus[] = [];
  for (const [host, svc] of model.services) {
    for (const e of model.endpoints.get(host) ?? []) {
      const ports = svc.ports.map((p) => e.ports[p.name] ?? p.targetPort ?? p.number);
      const id = e.identity ?? byAddress.get(e.address);
      const sidecar = (fronting.get(e.address) ?? []).find((s) => s.appPorts.size === 0 || ports.some((p) => s.appPorts.has(p)));
      out.push({
        service: host,
        address: e.address,
        ports: e.ports,
        source: e.origin.registry,
        identity: id ? spiffeId({ trustDomain, ...id }) : null,
        sidecar: sidecar?.id ?? null,
        paths: sidecar ? { fromMeshedCaller: 'double-hop', fromLegacyCaller: 'server single-hop' } : { fromMeshedCaller: 'client single-hop', fromLegacyCaller: 'direct' },
      });
    }
  }
  return out;
}
