// Resource names: stable contracts that tests, debug output and later transparent mode use.
import type { Service, ServicePort } from '../../model/types.ts';
import { isHttpProtocol } from '../../model/types.ts';

export const OUTBOUND_LISTENER = 'virtualOutbound';
export const INBOUND_LISTENER = 'virtualInbound';
export const OUTBOUND_ROUTE = 'outbound';
export const INBOUND_ROUTE = 'inbound';

export function outboundCluster(host: string, port: number): string {
  return `outbound|${port}||${host}`;
}

/** Cluster of one RPC interface of a service: its providers only (Istio's subset slot). */
export function interfaceCluster(host: string, port: number, ifaceHost: string): string {
  return `outbound|${port}|${ifaceHost}|${host}`;
}

export function inboundCluster(port: number): string {
  return `inbound|${port}||`;
}

/** Explicit-mode listener for an opaque TCP service port. */
export function tcpListener(bind: string, port: number): string {
  return `${bind}_${port}`;
}

/** Parses `outbound|PORT|SUBSET|HOST` (SUBSET may be empty). */
export function parseOutboundCluster(name: string): { host: string; port: number; subset: string } | undefined {
  const m = /^outbound\|(\d+)\|([^|]*)\|(.+)$/.exec(name);
  return m ? { port: Number(m[1]), subset: m[2]!, host: m[3]! } : undefined;
}

/** The port a request without an explicit port goes to: 80 if HTTP, else the lowest HTTP port. */
export function defaultHttpPort(svc: Service): ServicePort | undefined {
  const http = svc.ports.filter((p) => isHttpProtocol(p.protocol));
  return http.find((p) => p.number === 80) ?? [...http].sort((a, b) => a.number - b.number)[0];
}

/** A VIP:port a sidecar intercepts, and the cluster it leads to. */
export interface VipTarget {
  readonly vip: string;
  readonly port: number;
  readonly http: boolean;
  readonly cluster: string;
  /** The service or interface name the VIP stands for. */
  readonly name: string;
  /** The object that defined it (Origin.ref): the hosts of one ServiceEntry share its addresses. */
  readonly ref: string;
}
