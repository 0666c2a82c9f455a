// LDS: the sidecar's outbound and inbound listeners, and api_listeners for proxyless gRPC.
// Explicit mode here; transparent mode (original-destination listeners) in transparent.ts.
import type { Listener, MultipleRouteConfiguration } from '../../generated/envoy.ts';
import type { ModelSnapshot } from '../../model/snapshot.ts';
import { isHttpProtocol, type Service } from '../../model/types.ts';
import { toAny } from '../proto.ts';
import type { ProxyShape } from '../proxy.ts';
import { ADS_SOURCE, faultFilter, routerFilter, socketAddress, tcpProxy } from './common.ts';
import { INBOUND_LISTENER, INBOUND_ROUTE, inboundCluster, interfaceCluster, OUTBOUND_LISTENER, OUTBOUND_ROUTE, outboundCluster, tcpListener, type VipTarget } from './names.ts';
import type { RouteProblem } from './route.ts';
import { opaqueFilters } from './dubbo-route.ts';
import { inboundChains, type InboundSecurity, tlsInspector } from './mtls.ts';
import { buildTransparentListeners, transparentHcm, uniqueTargets, vipListener } from './transparent.ts';

/** Where traffic addressed to one VIP and port goes. */

/**
 * Every VIP:port a sidecar intercepts: services' own addresses and allocated VIPs, and each
 * interface's VIP to its own cluster, so an interface is routable even as opaque TCP.
 */
export function vipTargets(model: ModelSnapshot, vips: ReadonlyMap<string, string>): VipTarget[] {
  const out: VipTarget[] = [];
  for (const svc of model.services.values()) {
    const own = svc.addresses.filter((a) => !a.includes('/'));
    const addrs = own.length ? own : vips.has(svc.hostname) ? [vips.get(svc.hostname)!] : [];
    for (const port of svc.ports) {
      for (const vip of addrs) out.push({ vip, port: port.number, http: isHttpProtocol(port.protocol), cluster: outboundCluster(svc.hostname, port.number), name: svc.hostname, ref: svc.origin.ref });
      for (const iface of svc.interfaces) {
        const vip = vips.get(iface.hostname);
        if (!vip || (iface.port !== undefined && iface.port !== port.number)) continue;
        out.push({ vip, port: port.number, http: isHttpProtocol(port.protocol), cluster: interfaceCluster(svc.hostname, port.number, iface.hostname), name: iface.hostname, ref: svc.origin.ref });
      }
    }
  }
  return out;
}

export function buildSidecarListeners(
  model: ModelSnapshot,
  proxy: ProxyShape,
  problems: RouteProblem[],
  vips: ReadonlyMap<string, string> = new Map(),
  ports: { readonly held?: ReadonlyMap<number, string>; readonly bound?: Map<number, string> } = {},
  /** Receives the Dubbo route tables the listeners name (DRDS). */
  dubboRoutes?: Map<string, MultipleRouteConfiguration>,
  /** Certificates and PeerAuthentication of the sidecar: what its inbound side accepts. */
  security?: InboundSecurity,
): Listener[] {
  // Transparent: redirected connections are taken by their original destination (VIP
  // chains, passthrough for the rest), so no per-port listeners are needed.
  if (proxy.mode === 'transparent') return buildTransparentListeners(proxy, problems, vipTargets(model, vips), opaqueFilters(model, dubboRoutes), security);
  const outbound: Listener = {
    name: OUTBOUND_LISTENER,
    address: socketAddress(proxy.bindAddress, proxy.outboundPort),
    traffic_direction: 'OUTBOUND',
    // The same byte-preserving HTTP handling as in transparent mode: no request id, no
    // x-envoy-* or x-forwarded-proto, header case kept, so the provider sees what the app sent.
    filter_chains: [{ name: 'http', filters: [transparentHcm('outbound', { rds: OUTBOUND_ROUTE })] }],
  };
  const listeners: Listener[] = [outbound];

  // Opaque TCP services: in explicit mode the app connects to the sidecar on the service port,
  // so one port is one service. A port keeps the service that held it (`held`, from the
  // previous generation): an application added later on the same port (Dubbo's 20880) must
  // not take the calls of the one already there. It is refused by name instead.
  const reserved = new Set([proxy.outboundPort, proxy.inboundPort, ...proxy.appPorts.map((p) => p.port)]);
  const bound = ports.bound ?? new Map<number, string>();
  const route = opaqueFilters(model, dubboRoutes);
  const tcpPorts = (svc: Service): number[] => svc.ports.filter((p) => !isHttpProtocol(p.protocol)).map((p) => p.number);
  // Owners first (holders before the others), listeners then in model order, so that equal
  // content gives equal versions whatever the history.
  const services = [...model.services.values()];
  const holds = (svc: Service): boolean => tcpPorts(svc).some((n) => ports.held?.get(n) === svc.hostname);
  for (const svc of [...services.filter(holds), ...services.filter((s) => !holds(s))]) {
    for (const n of tcpPorts(svc)) if (!bound.has(n) && !reserved.has(n)) bound.set(n, svc.hostname);
  }
  for (const svc of services) {
    for (const port of svc.ports) {
      if (isHttpProtocol(port.protocol)) continue;
      const owner = bound.get(port.number);
      if (owner !== svc.hostname) {
        problems.push({
          name: `${svc.hostname}:${port.number}`,
          reason: owner ? `TCP port ${port.number} is already taken by ${owner} on the sidecar (explicit mode has one listener per port; use a transparent sidecar or another port)` : `TCP port ${port.number} is a sidecar or app port`,
        });
        continue;
      }
      const cluster = outboundCluster(svc.hostname, port.number);
      listeners.push({
        name: tcpListener(proxy.bindAddress, port.number),
        address: socketAddress(proxy.bindAddress, port.number),
        traffic_direction: 'OUTBOUND',
        // A VirtualService tcp route may send this port elsewhere, or split it by weight.
        filter_chains: [{ name: cluster, filters: [route(svc.hostname, port.number, cluster, problems)] }],
      });
    }
  }

  if (proxy.vipListeners) {
    for (const t of uniqueTargets(vipTargets(model, vips), problems)) listeners.push(vipListener(t, route, problems));
  }

  if (proxy.appPorts.length) {
    const plain = proxy.appPorts.map((app) => ({
      port: app.port,
      chain: {
        name: inboundCluster(app.port),
        filter_chain_match: { destination_port: { value: app.port } },
        filters: [isHttpProtocol(app.protocol) ? transparentHcm('inbound', { rds: INBOUND_ROUTE }) : tcpProxy('inbound', inboundCluster(app.port))],
      },
    }));
    // Mesh mTLS (seen by the TLS inspector) and plaintext, port by port, as PeerAuthentication says.
    const sec = inboundChains(plain, security, problems);
    const first = plain[0]!;
    const firstPlain = sec.chains.includes(first.chain);
    listeners.push({
      name: INBOUND_LISTENER,
      address: socketAddress('0.0.0.0', proxy.inboundPort),
      traffic_direction: 'INBOUND',
      ...(sec.inspector ? { listener_filters: [tlsInspector()] } : {}),
      filter_chains: sec.chains,
      // Explicit mode: traffic arrives on the inbound port itself, so the first app port takes it
      // (in plaintext only where its mode allows plaintext).
      ...(firstPlain && sec.plaintextRest ? { default_filter_chain: { ...first.chain, name: 'default', filter_chain_match: undefined } } : {}),
    });
  }
  return listeners;
}

/** A proxyless gRPC client's listener for the target it dialed; its routes may inject faults (A33). */
export function buildApiListener(name: string): Listener {
  return {
    name,
    api_listener: {
      api_listener: toAny('envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager', {
        rds: { config_source: ADS_SOURCE, route_config_name: name },
        http_filters: [faultFilter(), routerFilter()],
      }),
    },
  };
}
