import { isIP } from 'node:net';
import { envoyBootstrap, grpcBootstrap } from '../xds/bootstrap.ts';
import { parseAppPorts, ProxyMetadataError, DEFAULT_ADMIN_PORT, DEFAULT_INBOUND_PORT, DEFAULT_OUTBOUND_PORT } from '../xds/proxy.ts';
import { DEFAULTS } from '../server.ts';
import { splitAddress } from '../admin/server.ts';
import { address, parse, portNumber, UsageError } from './args.ts';

export const BOOTSTRAP_HELP = `Usage: isthmus bootstrap --node-id ID [options]

Prints a bootstrap (JSON) that points a proxy at this Isthmus:
an Envoy sidecar by default, or a proxyless gRPC client with --proxyless.

  envoy -c <(isthmus bootstrap --node-id web-1)

Options:
  --node-id ID            the proxy's node id, shown in /debug/syncz (required)
  --cluster NAME          the proxy's service cluster (default: the node id)
  --xds-address HOST:PORT where Isthmus serves xDS (default ${DEFAULTS.xdsAddress})
  --admin-port PORT       Envoy admin port (default ${DEFAULT_ADMIN_PORT})
  --outbound-port PORT    outbound listener port (default ${DEFAULT_OUTBOUND_PORT})
  --inbound-port PORT     inbound listener port (default ${DEFAULT_INBOUND_PORT})
  --app-port PORT[:PROTO] a port of the local app that inbound traffic goes to;
                          repeatable; PROTO is HTTP (default), HTTP2, GRPC or TCP
  --mode MODE             explicit (default: the app sends to the sidecar's ports) or
                          transparent (iptables redirects traffic; listeners match the
                          original destination, e.g. a VIP)
  --vip-listeners         explicit mode: also listen on every service's and interface's
                          VIP:port (bound to the VIP itself, freebind), so an app dials
                          the address its name resolves to; needs the VIP range routed
                          to lo on the host, e.g. ip route add local 240.240.0.0/16 dev lo
  --namespace NS          the workload's namespace (node metadata ISTHMUS_NAMESPACE)
  --label KEY=VALUE       a workload label (node metadata ISTHMUS_LABELS); repeatable
  --instance-ip IP        an address of the instance (e.g. the pod IP), so /debug/registryz
                          knows which endpoints this sidecar fronts; repeatable
                          (default: the address its xDS connection comes from)
  --sds-socket PATH       add the cluster "isthmus-sds" to the Unix socket where 'isthmus agent'
                          serves the workload certificate over SDS
  --delta                 use incremental (delta) ADS instead of state-of-the-world
  --proxyless             print a gRPC xDS bootstrap instead (for xds:/// clients)
  -h, --help              this text
`;

export function bootstrap(argv: string[]): number {
  const { values } = parse(argv, {
    'node-id': { type: 'string' },
    cluster: { type: 'string' },
    'xds-address': { type: 'string' },
    'admin-port': { type: 'string' },
    'outbound-port': { type: 'string' },
    'inbound-port': { type: 'string' },
    'app-port': { type: 'string', multiple: true },
    delta: { type: 'boolean' },
    proxyless: { type: 'boolean' },
    mode: { type: 'string' },
    namespace: { type: 'string' },
    label: { type: 'string', multiple: true },
    'instance-ip': { type: 'string', multiple: true },
    'vip-listeners': { type: 'boolean' },
    'sds-socket': { type: 'string' },
  });
  if (values.help) {
    process.stdout.write(BOOTSTRAP_HELP);
    return 0;
  }
  const nodeId = values['node-id'];
  if (!nodeId) throw new UsageError('--node-id is required (the proxy\'s identity in /debug/syncz)');
  const { host, port } = splitAddress(address('xds-address', values['xds-address'], DEFAULTS.xdsAddress));
  let appPorts;
  try {
    appPorts = parseAppPorts((values['app-port'] ?? []).join(','), '--app-port');
  } catch (e) {
    if (e instanceof ProxyMetadataError) throw new UsageError(e.message);
    throw e;
  }
  const mode = values.mode ?? 'explicit';
  if (mode !== 'explicit' && mode !== 'transparent') throw new UsageError(`--mode "${mode}": expected explicit or transparent`);
  if (values['vip-listeners'] && (mode !== 'explicit' || values.proxyless)) {
    throw new UsageError('--vip-listeners is for an explicit-mode sidecar (a transparent one takes VIPs by redirection; a proxyless client dials names)');
  }
  if (values['sds-socket'] && values.proxyless) throw new UsageError('--sds-socket is for an Envoy sidecar (a proxyless gRPC client reads certificates from its own bootstrap\'s certificate_providers)');
  const labels: Record<string, string> = {};
  for (const l of values.label ?? []) {
    const m = /^([A-Za-z0-9][-A-Za-z0-9_./]*)=([-A-Za-z0-9_.]*)$/.exec(l);
    if (!m) throw new UsageError(`--label "${l}": expected KEY=VALUE (no commas)`);
    labels[m[1]!] = m[2]!;
  }
  const opts = {
    nodeId,
    namespace: values.namespace,
    labels,
    instanceIps: (values['instance-ip'] ?? []).map((ip) => {
      if (!isIP(ip)) throw new UsageError(`--instance-ip "${ip}": not an IP address`);
      return ip;
    }),
    mode: mode as 'explicit' | 'transparent',
    cluster: values.cluster ?? nodeId,
    xdsHost: host === '0.0.0.0' ? '127.0.0.1' : host,
    xdsPort: port,
    adminPort: portNumber('admin-port', values['admin-port'], DEFAULT_ADMIN_PORT),
    outboundPort: portNumber('outbound-port', values['outbound-port'], DEFAULT_OUTBOUND_PORT),
    inboundPort: portNumber('inbound-port', values['inbound-port'], DEFAULT_INBOUND_PORT),
    appPorts,
    delta: values.delta ?? false,
    vipListeners: values['vip-listeners'] ?? false,
    ...(values['sds-socket'] ? { sdsSocket: values['sds-socket'] } : {}),
  };
  const out = values.proxyless ? grpcBootstrap(opts) : envoyBootstrap(opts);
  process.stdout.write(JSON.stringify(out, null, 2) + '\n');
  return 0;
}
