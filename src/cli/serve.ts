import { Isthmus, DEFAULTS } from '../server.ts';
import { registryFromUrl, RegistryUrlError, REGISTRY_SCHEMES } from '../registries/index.ts';
import { address, durationMs, parse, UsageError } from './args.ts';
import { logger } from '../log.ts';

export const SERVE_HELP = `Usage: isthmus serve [options]

Serves the unified service model as xDS (ADS, SotW and delta) to Envoy sidecars and
proxyless gRPC clients. With no --registry, reads ./config as a file registry.

Options:
  --registry URL          a source; repeatable. ${REGISTRY_SCHEMES.join(' | ')}
  --xds-address HOST:PORT xDS gRPC listen address (default ${DEFAULTS.xdsAddress})
  --admin-address HOST:PORT
                          admin HTTP: /healthz/ready /metrics /debug/registryz
                          /debug/syncz /debug/config_dump?proxy=ID (default ${DEFAULTS.adminAddress})
  --debounce-quiet DUR    push after the model is quiet this long (default ${DEFAULTS.debounceQuietMs}ms)
  --debounce-max DUR      push at the latest this long after a change (default ${DEFAULTS.debounceMaxMs}ms)
  --sync-timeout DUR      serve without registries that have not synced by then (default ${DEFAULTS.syncTimeoutMs}ms)
  -h, --help              this text
`;

export async function serve(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    registry: { type: 'string', multiple: true },
    'xds-address': { type: 'string' },
    'admin-address': { type: 'string' },
    'debounce-quiet': { type: 'string' },
    'debounce-max': { type: 'string' },
    'sync-timeout': { type: 'string' },
  });
  if (values.help) {
    process.stdout.write(SERVE_HELP);
    return 0;
  }
  const urls = values.registry?.length ? values.registry : ['file://config'];
  let registries;
  try {
    registries = urls.map(registryFromUrl);
  } catch (e) {
    if (e instanceof RegistryUrlError) throw new UsageError(e.message);
    throw e;
  }
  const quiet = durationMs('debounce-quiet', values['debounce-quiet'], DEFAULTS.debounceQuietMs);
  const max = durationMs('debounce-max', values['debounce-max'], DEFAULTS.debounceMaxMs);
  if (max < quiet) throw new UsageError(`--debounce-max (${max}ms) must not be shorter than --debounce-quiet (${quiet}ms)`);
  const isthmus = new Isthmus({
    registries,
    xdsAddress: address('xds-address', values['xds-address'], DEFAULTS.xdsAddress),
    adminAddress: address('admin-address', values['admin-address'], DEFAULTS.adminAddress),
    debounceQuietMs: quiet,
    debounceMaxMs: max,
    syncTimeoutMs: durationMs('sync-timeout', values['sync-timeout'], DEFAULTS.syncTimeoutMs),
  });
  const log = logger('serve');
  try {
    await isthmus.start();
  } catch (e) {
    await isthmus.close().catch(() => undefined);
    throw new UsageError(`cannot start: ${(e as Error).message}`);
  }
  await new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      log.info('shutting down', { signal });
      resolve();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  await isthmus.close();
  return 0;
}
