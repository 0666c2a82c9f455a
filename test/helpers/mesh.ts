// A small mesh for integration tests: backends, manifests, `isthmus serve`, and one Envoy sidecar.
import { startBackend, closeAll, type Backend, type BackendKind } from './backends.ts';
import { startEnvoy, type Envoy } from './envoy.ts';
import { bootstrap, ManifestDir, serviceEntry, startIsthmus, type EndpointSpec, type Isthmus, type PortSpec } from './isthmus.ts';
import { freePort } from './ports.ts';

export interface SidecarPorts {
  admin: number;
  outbound: number;
  inbound: number;
}

/** Starts an Envoy bootstrapped by `isthmus bootstrap` against `isthmus`. */
export async function startSidecar(
  isthmus: Isthmus,
  nodeId: string,
  opts: { delta?: boolean; waitFor?: 'live' | 'admin'; extraArgs?: string[] } = {},
): Promise<{ envoy: Envoy; ports: SidecarPorts; bootstrap: Record<string, unknown> }> {
  const ports = { admin: await freePort(), outbound: await freePort(), inbound: await freePort() };
  const args = [
    '--node-id', nodeId,
    '--xds-address', isthmus.xdsAddress,
    '--admin-port', String(ports.admin),
    '--outbound-port', String(ports.outbound),
    '--inbound-port', String(ports.inbound),
    ...(opts.delta ? ['--delta'] : []),
    ...(opts.extraArgs ?? []),
  ];
  const boot = await bootstrap(args);
  const envoy = await startEnvoy(boot, { name: `envoy-${nodeId}`, waitFor: opts.waitFor ?? 'live', timeoutMs: 30_000 });
  return { envoy, ports, bootstrap: boot };
}

/** Envoy's cluster name for a service port. */
export function clusterName(host: string, port: number): string {
  return `outbound|${port}||${host}`;
}

/** Starts backends of one kind on 127.0.0.(first..), named `${prefix}-1`, `${prefix}-2`, … */
export async function startBackends(kind: BackendKind, prefix: string, count: number, firstOctet = 2): Promise<Backend[]> {
  const out: Backend[] = [];
  for (let i = 0; i < count; i++) out.push(await startBackend(kind, `${prefix}-${i + 1}`, { host: `127.0.0.${firstOctet + i}` }));
  return out;
}

/** Endpoint specs for backends serving the port named `portName`. */
export function endpointsFor(backends: readonly Backend[], portName: string): EndpointSpec[] {
  return backends.map((b) => ({ address: b.host, ports: { [portName]: b.port } }));
}

/** One-service ServiceEntry: `hosts`, one port, the given backends as STATIC endpoints. */
export function entryFor(name: string, hosts: string[], port: PortSpec, backends: readonly Backend[]): object {
  return serviceEntry(name, { hosts, ports: [port], endpoints: endpointsFor(backends, port.name) });
}

export { closeAll, ManifestDir, startIsthmus };
