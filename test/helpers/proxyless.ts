// A proxyless gRPC xDS client in a child process, driven over loopback HTTP. Three real
// implementations share one control interface: @grpc/grpc-js-xds (node), grpc-go (go) and
// grpc-java (java); the last two are built by scripts/provision.d/ into $ISTHMUS_CACHE/bin.
//
// Contract of every child: GRPC_XDS_BOOTSTRAP_CONFIG holds the bootstrap JSON; it prints
// "PORT <n>" once it serves, on 127.0.0.1:<n>,
//   GET /call?target=xds:///HOST:PORT&n=N&timeoutMs=T[&header=name:value]...
// making N unary isthmus.test.Echo/Call calls on one channel per target (reused across
// requests) and answering {"counts": {backend: n, "!error": n}, "errors": [up to 3 messages]};
// an error message starts with the gRPC status code name (e.g. "UNAVAILABLE: ...").
// It exits on SIGTERM.
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnTracked, type Proc } from './processes.ts';
import { GiveUp, waitFor } from './wait.ts';

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'proxyless-child.ts');
const BIN = path.join(process.env.ISTHMUS_CACHE ?? path.join(os.homedir(), '.cache', 'isthmus'), 'bin');

export type ProxylessKind = 'node' | 'go' | 'java';

/** The command that runs a client of that kind. */
function command(kind: ProxylessKind): { cmd: string; args: string[] } {
  switch (kind) {
    case 'node':
      return { cmd: process.execPath, args: [CHILD] };
    case 'go':
      return { cmd: process.env.ISTHMUS_XDS_CLIENT_GO ?? path.join(BIN, 'isthmus-xds-client-go'), args: [] };
    case 'java':
      return { cmd: process.env.ISTHMUS_XDS_CLIENT_JAVA ?? path.join(BIN, 'isthmus-xds-client-java'), args: [] };
  }
}

export interface CallTally {
  /** Backend name → answered calls; failed calls count under "!error". */
  counts: Record<string, number>;
  /** Up to three error messages. */
  errors: string[];
}

export class ProxylessClient {
  readonly proc: Proc;
  readonly port: number;
  readonly kind: ProxylessKind;

  constructor(proc: Proc, port: number, kind: ProxylessKind) {
    this.proc = proc;
    this.port = port;
    this.kind = kind;
  }

  /** Makes `n` Echo calls to `target` (e.g. xds:///echo.test.local:9000) on one channel per target. */
  async call(target: string, n = 1, timeoutMs = 3000, headers: Record<string, string> = {}): Promise<CallTally> {
    const q = new URLSearchParams({ target, n: String(n), timeoutMs: String(timeoutMs) });
    for (const [k, v] of Object.entries(headers)) q.append('header', `${k}:${v}`);
    const res = await fetch(`http://127.0.0.1:${this.port}/call?${q}`, { signal: AbortSignal.timeout(n * timeoutMs + 5000) });
    if (!res.ok) throw new Error(`proxyless ${this.kind} client: HTTP ${res.status}`);
    return (await res.json()) as CallTally;
  }

  async stop(): Promise<void> {
    await this.proc.stop(3000);
  }
}

/** Starts a client with `bootstrap` (gRPC xDS bootstrap JSON) in GRPC_XDS_BOOTSTRAP_CONFIG. */
export async function startProxylessClient(
  bootstrap: object | string,
  opts: { name?: string; trace?: boolean; kind?: ProxylessKind } = {},
): Promise<ProxylessClient> {
  const kind = opts.kind ?? 'node';
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    GRPC_XDS_BOOTSTRAP_CONFIG: typeof bootstrap === 'string' ? bootstrap : JSON.stringify(bootstrap),
  };
  delete env.GRPC_XDS_BOOTSTRAP;
  if (opts.trace) {
    env.GRPC_TRACE = 'xds_client,xds_resolver,cds_balancer,xds_cluster_resolver';
    env.GRPC_VERBOSITY = 'DEBUG';
    env.GRPC_GO_LOG_VERBOSITY_LEVEL = '99';
    env.GRPC_GO_LOG_SEVERITY_LEVEL = 'info';
  }
  const { cmd, args } = command(kind);
  const proc = spawnTracked(opts.name ?? `proxyless-${kind}`, cmd, args, { env });
  const port = await waitFor(
    () => {
      if (proc.exit) throw new GiveUp(`exited ${proc.exit.code ?? proc.exit.signal}: ${proc.tail()}`);
      const m = /^PORT (\d+)$/m.exec(proc.output());
      return m ? Number(m[1]) : 0;
    },
    { timeoutMs: kind === 'java' ? 30_000 : 15_000, what: `proxyless ${kind} client to print its port` },
  );
  return new ProxylessClient(proc, port, kind);
}
