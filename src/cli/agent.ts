// isthmus agent: beside Envoy (a sidecar container, a VM's systemd unit), it makes the
// workload's key, gets and renews its certificate from Isthmus's CA, and serves both to
// Envoy over SDS on a Unix socket.
import { accessSync, constants } from 'node:fs';
import { CertificateKeeper } from '../agent/certificates.ts';
import { SdsServer, ROOT_SECRET, WORKLOAD_SECRET } from '../agent/sds.ts';
import { logger } from '../shared/log.ts';
import { address, durationSeconds, parse, UsageError } from './args.ts';

export const DEFAULT_SDS_SOCKET = '/var/run/isthmus/sds.sock';

export const AGENT_HELP = `Usage: isthmus agent --ca-address HOST:PORT --ca-root FILE --token-file FILE [options]

Keeps the workload's certificate for the Envoy beside it: generates an ECDSA P-256 key in
memory (it never leaves this process but to Envoy over the local socket), asks Isthmus's CA
for a certificate (CSR, proven by the token, later by the current certificate), renews it
at a random point between 50 and 80 % of its life (backoff on failure), and serves SDS on a
Unix socket: secret "${WORKLOAD_SECRET}" (certificate and key) and "${ROOT_SECRET}" (the trust bundle).
Envoy reaches it through the cluster 'isthmus bootstrap --sds-socket PATH' adds.

Options:
  --ca-address HOST:PORT  Isthmus's CA (isthmus serve --ca-address)
  --ca-root FILE          PEM root the CA's serving certificate chains to: the CA's
                          root-cert.pem (also the trust bundle served as ${ROOT_SECRET})
  --ca-server-name NAME   name to check in the CA's serving certificate (default: the
                          host of --ca-address)
  --token-file FILE       the bearer token proving the identity, read at each use: a
                          Kubernetes ServiceAccount token (audience istio-ca) or a VM's
                          join token
  --sds-socket PATH       Unix socket to serve SDS on, mode 0600 (default ${DEFAULT_SDS_SOCKET})
  --cert-ttl DUR          lifetime to ask for, e.g. 1h or 24h (default: the CA's)
  -h, --help              this text
`;

export async function agent(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    'ca-address': { type: 'string' },
    'ca-root': { type: 'string' },
    'ca-server-name': { type: 'string' },
    'token-file': { type: 'string' },
    'sds-socket': { type: 'string' },
    'cert-ttl': { type: 'string' },
  });
  if (values.help) {
    process.stdout.write(AGENT_HELP);
    return 0;
  }
  for (const f of ['ca-address', 'ca-root', 'token-file'] as const) if (!values[f]) throw new UsageError(`agent needs --${f}`);
  for (const f of ['ca-root', 'token-file'] as const) {
    try {
      accessSync(values[f]!, constants.R_OK);
    } catch (e) {
      throw new UsageError(`--${f} "${values[f]}": ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
  const log = logger('agent');
  const keeper = new CertificateKeeper({
    caAddress: address('ca-address', values['ca-address'], ''),
    caRootFile: values['ca-root']!,
    ...(values['ca-server-name'] ? { caServerName: values['ca-server-name'] } : {}),
    tokenFile: values['token-file']!,
    ttlSeconds: values['cert-ttl'] ? durationSeconds('cert-ttl', values['cert-ttl'], 0) : 0,
  });
  const sds = new SdsServer(values['sds-socket'] ?? DEFAULT_SDS_SOCKET);
  const stopping = new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  try {
    await sds.start();
  } catch (e) {
    throw new UsageError(`cannot serve SDS on ${values['sds-socket'] ?? DEFAULT_SDS_SOCKET}: ${(e as Error).message}`);
  }
  keeper.onCertificate((c) => sds.update(c));
  // Until the first certificate, Envoy's SDS streams wait (its listeners using them are not ready).
  void keeper.start().catch(() => undefined);
  const signal = await stopping;
  log.info('shutting down', { signal });
  keeper.stop();
  await sds.stop();
  return 0;
}
