import { isIP } from 'node:net';
import { EtcdRegistrar } from '../registries/soa/etcd-registrar.ts';
import type { ProviderSpec } from '../registries/soa/provider.ts';
import type { Registrar } from '../registries/soa/registrar.ts';
import { parseSoaUrl, SoaUrlError } from '../registries/soa/url.ts';
import { ZkRegistrar } from '../registries/soa/zk-registrar.ts';
import { logger } from '../shared/log.ts';
import { durationMs, parse, portNumber, UsageError } from './args.ts';

export const REGISTER_HELP = `Usage: isthmus register --registry URL --application NAME --address IP --port PORT
                        --interface NAME[:VERSION[:GROUP]]... [options]

Registers an app that cannot register itself in the SOA registry, in the Dubbo layout
(/ROOT/<interface>/providers/<url-encoded provider URL>), exactly as a Dubbo provider
would: bound to a kept-alive lease (etcd) or as ephemeral nodes (ZooKeeper). Stays in the
foreground; deregisters on SIGTERM or SIGINT and re-registers after a lost session.

Options:
  --registry URL          etcd://HOST:PORT[,HOST:PORT]/ROOT or zk://HOST:PORT[,HOST:PORT]/ROOT
  --application NAME      the application (one service in Isthmus)
  --address IP            the address callers reach the app on
  --port PORT             the port the app serves on
  --interface SPEC        NAME[:VERSION[:GROUP]]; repeatable
  --methods LIST          comma-separated method names (for every interface)
  --protocol NAME         URL protocol (default dubbo; tri or grpc for gRPC, http for HTTP)
  --weight N              provider weight (default 100)
  --ttl DUR               etcd lease TTL / ZooKeeper session timeout (default 10s)
  -h, --help              this text
`;

export function parseInterface(spec: string): { interface: string; version?: string; group?: string } {
  const [name, version, group, ...rest] = spec.split(':');
  if (!name || rest.length || !/^[A-Za-z_$][\w$-]*(\.[A-Za-z_$][\w$-]*)*$/.test(name)) {
    throw new UsageError(`--interface "${spec}": expected NAME[:VERSION[:GROUP]] with a dotted interface name`);
  }
  return { interface: name, ...(version ? { version } : {}), ...(group ? { group } : {}) };
}

export async function register(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    registry: { type: 'string' },
    application: { type: 'string' },
    address: { type: 'string' },
    port: { type: 'string' },
    interface: { type: 'string', multiple: true },
    methods: { type: 'string' },
    protocol: { type: 'string' },
    weight: { type: 'string' },
    ttl: { type: 'string' },
  });
  if (values.help) {
    process.stdout.write(REGISTER_HELP);
    return 0;
  }
  for (const flag of ['registry', 'application', 'address', 'port'] as const) {
    if (!values[flag]) throw new UsageError(`--${flag} is required`);
  }
  if (!values.interface?.length) throw new UsageError('at least one --interface is required');
  let url;
  try {
    url = parseSoaUrl(values.registry!);
  } catch (e) {
    if (e instanceof SoaUrlError) throw new UsageError(`--registry ${e.message}`);
    throw e;
  }
  if (/[?&]services=/.test(values.registry!)) throw new UsageError(`--registry "${values.registry}": services= says where application-level instances are read; isthmus register writes interface-level providers under ROOT only`);
  if (!isIP(values.address!)) throw new UsageError(`--address "${values.address}": expected an IP address`);
  if (!/^[\w.-]+$/.test(values.application!)) throw new UsageError(`--application "${values.application}": letters, digits, '.', '_' and '-' only`);
  const protocol = (values.protocol ?? 'dubbo').toLowerCase();
  if (!/^[a-z][a-z0-9+.-]*$/.test(protocol)) throw new UsageError(`--protocol "${values.protocol}": not a URL scheme`);
  const weight = values.weight === undefined ? undefined : Number(values.weight);
  if (weight !== undefined && (!Number.isInteger(weight) || weight < 0)) throw new UsageError(`--weight "${values.weight}": expected a whole number`);
  const methods = (values.methods ?? '').split(',').map((m) => m.trim()).filter(Boolean);
  const port = portNumber('port', values.port, 0);
  const ttlMs = durationMs('ttl', values.ttl, 10_000);
  if (ttlMs < 1000) throw new UsageError(`--ttl ${values.ttl}: at least 1s`);

  const providers: ProviderSpec[] = values.interface.map((spec) => ({
    ...parseInterface(spec),
    protocol,
    address: values.address!,
    port,
    application: values.application!,
    methods,
    ...(weight !== undefined ? { weight } : {}),
  }));
  const registrar: Registrar =
    url.scheme === 'etcd'
      ? new EtcdRegistrar({ endpoints: [...url.hosts], root: url.root, providers, ttlSeconds: Math.ceil(ttlMs / 1000) })
      : new ZkRegistrar({ connect: url.hosts.join(','), root: url.root, providers, sessionTimeoutMs: ttlMs });
  const log = logger('register');
  // Listen for signals first: start() waits while the registry is unreachable, and a stop
  // then must still deregister whatever was written.
  const signalled = new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  log.info('registering', { registry: url.id, application: values.application, interfaces: values.interface, address: `${values.address}:${port}` });
  const started = registrar.start().then(
    () => log.info('registered', { registry: url.id, application: values.application, interfaces: values.interface, address: `${values.address}:${port}` }),
    (e: unknown) => log.warn('registration ended before it completed', { error: e }),
  );
  const signal = await signalled;
  log.info('deregistering', { signal });
  await registrar.stop();
  await started;
  return 0;
}
