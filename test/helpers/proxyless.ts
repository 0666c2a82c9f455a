// A proxyless gRPC xDS client (@grpc/grpc-js-xds) in a child process, driven over loopback HTTP.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnTracked, type Proc } from './processes.ts';
import { GiveUp, waitFor } from './wait.ts';

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'proxyless-child.ts');

export interface CallTally {
  /** Backend name → answered calls; failed calls count under "!error". */
  counts: Record<string, number>;
  /** Up to three error messages. */
  errors: string[];
}

export class ProxylessClient {
  readonly proc: Proc;
  readonly port: number;

  constructor(proc: Proc, port: number) {
    this.proc = proc;
    this.port = port;
  }

  /** Makes `n` Echo calls to `target` (e.g. xds:///echo.test.local:9000) on one channel per target. */
  async call(target: string, n = 1, timeoutMs = 3000): Promise<CallTally> {
    const q = new URLSearchParams({ target, n: String(n), timeoutMs: String(timeoutMs) });
    const res = await fetch(`http://127.0.0.1:${this.port}/call?${q}`, { signal: AbortSignal.timeout(n * timeoutMs + 5000) });
    if (!res.ok) throw new Error(`proxyless client: HTTP ${res.status}`);
    return (await res.json()) as CallTally;
  }

  async stop(): Promise<void> {
    await this.proc.stop(3000);
  }
}

/** Starts the client with `bootstrap` (gRPC xDS bootstrap JSON) in GRPC_XDS_BOOTSTRAP_CONFIG. */
export async function startProxylessClient(bootstrap: object | string, opts: { name?: string; trace?: boolean } = {}): Promise<ProxylessClient> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    GRPC_XDS_BOOTSTRAP_CONFIG: typeof bootstrap === 'string' ? bootstrap : JSON.stringify(bootstrap),
  };
  delete env.GRPC_XDS_BOOTSTRAP;
  if (opts.trace) {
    env.GRPC_TRACE = 'xds_client,xds_resolver,cds_balancer,xds_cluster_resolver';
    env.GRPC_VERBOSITY = 'DEBUG';
  }
  const proc = spawnTracked(opts.name ?? 'proxyless', process.execPath, [CHILD], { env });
  const port = await waitFor(
    () => {
      if (proc.exit) throw new GiveUp(`exited ${proc.exit.code ?? proc.exit.signal}: ${proc.tail()}`);
      const m = /^PORT (\d+)$/m.exec(proc.output());
      return m ? Number(m[1]) : 0;
    },
    { timeoutMs: 15_000, what: 'proxyless client to print its port' },
  );
  return new ProxylessClient(proc, port);
}
