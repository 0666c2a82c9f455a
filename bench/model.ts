// The synthetic bench model: S services × E endpoints, one HTTP port each. The Go peer
// (bench/gcp/main.go) builds the same names and shapes; bench/gcp/dump-isthmus.ts shows them.
import type { Endpoint, Service } from '../src/model/types.ts';
import { address, hostname, PORT } from './messages.ts';

export const REGISTRY = 'memory://bench';

export function service(k: number): Service {
  return {
    hostname: hostname(k),
    aliases: [],
    namespace: 'bench',
    ports: [{ name: 'http', number: PORT, protocol: 'HTTP' }],
    addresses: [],
    resolution: 'STATIC',
    location: 'MESH_INTERNAL',
    interfaces: [],
    origin: { registry: REGISTRY, ref: `svc-${k}` },
  };
}

export function endpoint(k: number, addr: string): Endpoint {
  return {
    service: hostname(k),
    address: addr,
    ports: { http: PORT },
    labels: { app: `svc-${k}`, version: 'v1' },
    locality: { region: 'bench-region', zone: 'bench-zone-a' },
    weight: 1,
    health: 'HEALTHY',
    origin: { registry: REGISTRY, ref: `svc-${k}` },
  };
}

/** Endpoint j of service k is address(k·E + j + 1). */
export function benchModel(S: number, E: number): { services: Service[]; endpoints: Endpoint[] } {
  const services = Array.from({ length: S }, (_, k) => service(k));
  const endpoints: Endpoint[] = [];
  for (let k = 0; k < S; k++) for (let j = 0; j < E; j++) endpoints.push(endpoint(k, address(k * E + j + 1)));
  return { services, endpoints };
}
