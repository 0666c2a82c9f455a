// Per-instance view for /debug/registryz: where each endpoint came from, whether a
// connected transparent sidecar fronts it, and so which path a call to it takes.
import type { ModelSnapshot } from '../model/snapshot.ts';
import { META, type ProxyInfo } from '../xds/proxy.ts';

/** A connected proxy and the address its xDS stream comes from. */
export interface ConnectedProxy {
  readonly proxy: ProxyInfo;
  readonly peer: string;
}

export type CallPath = 'direct' | 'client single-hop' | 'server single-hop' | 'double-hop';

export interface InstanceStatus {
  readonly service: string;
  readonly address: string;
  readonly ports: Readonly<Record<string, number>>;
  /** The registry the endpoint came from (its id, e.g. etcd://…/dubbo or file://…). */
  readonly source: string;
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
export function proxyAddresses(p: ConnectedProxy): string[] {
  const raw = p.proxy.metadata[META.instanceIps];
  const listed = typeof raw === 'string' ? raw.split(',').map((s) => s.trim()).filter(Boolean) : [];
  return listed.length ? listed : [peerAddress(p.peer)];
}

export function instanceStatus(model: ModelSnapshot, proxies: readonly ConnectedProxy[]): InstanceStatus[] {
  // Only transparent Envoy sidecars intercept inbound calls sent to the app's own address.
  const fronting = new Map<string, { id: string; appPorts: ReadonlySet<number> }[]>();
  for (const p of proxies) {
    if (p.proxy.kind !== 'envoy' || p.proxy.mode !== 'transparent') continue;
    for (const a of proxyAddresses(p)) {
      const list = fronting.get(a) ?? fronting.set(a, []).get(a)!;
      list.push({ id: p.proxy.id, appPorts: new Set(p.proxy.appPorts.map((x) => x.port)) });
    }
  }
  const out: InstanceStatus[] = [];
  for (const [host, svc] of model.services) {
    for (const e of model.endpoints.get(host) ?? []) {
      const ports = svc.ports.map((p) => e.ports[p.name] ?? p.targetPort ?? p.number);
      const sidecar = (fronting.get(e.address) ?? []).find((s) => s.appPorts.size === 0 || ports.some((p) => s.appPorts.has(p)));
      out.push({
        service: host,
        address: e.address,
        ports: e.ports,
        source: e.origin.registry,
        sidecar: sidecar?.id ?? null,
        paths: sidecar ? { fromMeshedCaller: 'double-hop', fromLegacyCaller: 'server single-hop' } : { fromMeshedCaller: 'client single-hop', fromLegacyCaller: 'direct' },
      });
    }
  }
  return out;
}
