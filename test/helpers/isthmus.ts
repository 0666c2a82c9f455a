// Runs the Isthmus CLI for tests: `serve` as a tracked process, `bootstrap` as a command,
// and a manifest directory for its file registry.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { freePort, isListening } from './ports.ts';
import { runCommand, scratchDir, spawnTracked, type Proc } from './processes.ts';
import { GiveUp, waitFor } from './wait.ts';
import { metricValue } from './prometheus.ts';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const MAIN = path.join(REPO, 'src', 'cli', 'main.ts');

/** Runs `isthmus ARGS` to completion; throws with its stderr when it fails. */
export async function cli(args: readonly string[], timeoutMs = 30_000): Promise<string> {
  const r = await runCommand(process.execPath, [MAIN, ...args], { cwd: REPO, timeoutMs });
  if (r.code !== 0) throw new Error(`isthmus ${args.join(' ')} exited ${r.code ?? r.signal}:\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** `isthmus bootstrap ARGS` parsed as JSON. */
export async function bootstrap(args: readonly string[]): Promise<Record<string, unknown>> {
  return JSON.parse(await cli(['bootstrap', ...args])) as Record<string, unknown>;
}

export interface IsthmusOptions {
  name?: string;
  /** --registry URLs, e.g. file://DIR. */
  registries: string[];
  xdsPort?: number;
  adminPort?: number;
  debounceQuietMs?: number;
  debounceMaxMs?: number;
  args?: readonly string[];
  timeoutMs?: number;
  /** VIP table file; a scratch file kept across restart() when absent. */
  vipStore?: string;
}

/** Syncz entry of one connection, as served by /debug/syncz. */
export interface SyncStatus {
  id: string;
  stream: 'sotw' | 'delta';
  types: Array<{
    typeUrl: string;
    ackedVersion?: string;
    sentVersion?: string;
    sentNonce?: string;
    status: 'SYNCED' | 'STALE' | 'NACKED';
    nack?: { version: string; nonce: string; message: string };
  }>;
}

export class Isthmus {
  proc: Proc;
  readonly opts: IsthmusOptions & { xdsPort: number; adminPort: number };

  constructor(proc: Proc, opts: IsthmusOptions & { xdsPort: number; adminPort: number }) {
    this.proc = proc;
    this.opts = opts;
  }

  get xdsAddress(): string {
    return `127.0.0.1:${this.opts.xdsPort}`;
  }
  get adminUrl(): string {
    return `http://127.0.0.1:${this.opts.adminPort}`;
  }

  /** GET an admin path; throws on a non-2xx answer. */
  async get(pathAndQuery: string): Promise<string> {
    const res = await fetch(`${this.adminUrl}${pathAndQuery}`, { signal: AbortSignal.timeout(5000) });
    const body = await res.text();
    if (!res.ok) throw new Error(`isthmus admin ${pathAndQuery}: HTTP ${res.status}: ${body.slice(0, 500)}`);
    return body;
  }

  async json<T>(pathAndQuery: string): Promise<T> {
    return JSON.parse(await this.get(pathAndQuery)) as T;
  }

  /** One series from /metrics, summed over the samples matching `labels`. */
  async metric(name: string, labels: Record<string, string> = {}): Promise<number> {
    return metricValue(await this.get('/metrics'), name, labels);
  }

  syncz(): Promise<SyncStatus[]> {
    return this.json<SyncStatus[]>('/debug/syncz');
  }

  registryz(): Promise<unknown> {
    return this.json<unknown>('/debug/registryz');
  }

  /** Starts `serve` again with the same arguments and ports (after stop()). */
  async start(): Promise<void> {
    if (this.proc.alive()) throw new Error('isthmus is still running');
    this.proc = await launch(this.opts);
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  async stop(graceMs = 5000): Promise<void> {
    await this.proc.stop(graceMs);
  }
}

function serveArgs(o: IsthmusOptions & { xdsPort: number; adminPort: number }): string[] {
  const args = ['serve'];
  for (const r of o.registries) args.push('--registry', r);
  args.push('--xds-address', `127.0.0.1:${o.xdsPort}`, '--admin-address', `127.0.0.1:${o.adminPort}`);
  if (o.debounceQuietMs !== undefined) args.push('--debounce-quiet', String(o.debounceQuietMs));
  if (o.debounceMaxMs !== undefined) args.push('--debounce-max', String(o.debounceMaxMs));
  // Several instances run side by side in tests: DNS on a free port, VIPs in a scratch file.
  const extra = o.args ?? [];
  if (!extra.includes('--dns-listen')) args.push('--dns-listen', '127.0.0.1:0');
  if (!extra.includes('--vip-store')) args.push('--vip-store', (o.vipStore ??= path.join(scratchDir('vips'), 'vips.json')));
  return [...args, ...extra];
}

async function launch(o: IsthmusOptions & { xdsPort: number; adminPort: number }): Promise<Proc> {
  const name = o.name ?? 'isthmus';
  const proc = spawnTracked(name, process.execPath, [MAIN, ...serveArgs(o)], { cwd: REPO });
  try {
    await waitFor(
      async () => {
        if (proc.exit) throw new GiveUp(`exited with ${proc.exit.code ?? proc.exit.signal}`);
        const res = await fetch(`http://127.0.0.1:${o.adminPort}/healthz/ready`, { signal: AbortSignal.timeout(1000) });
        return res.status === 200 && (await isListening(o.xdsPort));
      },
      { timeoutMs: o.timeoutMs ?? 20_000, intervalMs: 100, what: `${name} /healthz/ready = 200 and xDS port ${o.xdsPort} open` },
    );
  } catch (err) {
    await proc.stop();
    throw new Error(`${name} did not become ready: ${(err as Error).message}\n--- ${proc.logFile} ---\n${proc.tail()}`, { cause: err });
  }
  return proc;
}

/** Starts `isthmus serve` on free loopback ports (unless given) and waits until it is ready. */
export async function startIsthmus(opts: IsthmusOptions): Promise<Isthmus> {
  const full = { ...opts, xdsPort: opts.xdsPort ?? (await freePort()), adminPort: opts.adminPort ?? (await freePort()) };
  return new Isthmus(await launch(full), full);
}

/** A directory of YAML manifests for a file:// registry; writes are atomic renames. */
export class ManifestDir {
  readonly dir: string;

  constructor(dir = scratchDir('manifests')) {
    this.dir = dir;
  }

  get url(): string {
    return `file://${this.dir}`;
  }

  /** Writes `docs` as a multi-document YAML file `name` (e.g. "web.yaml"). */
  write(name: string, docs: object | object[]): void {
    const list = Array.isArray(docs) ? docs : [docs];
    const text = list.map((d) => YAML.stringify(d)).join('---\n');
    const tmp = path.join(this.dir, `.${name}.tmp`);
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, path.join(this.dir, name));
  }

  remove(name: string): void {
    fs.rmSync(path.join(this.dir, name), { force: true });
  }
}

export interface PortSpec {
  number: number;
  name: string;
  protocol: 'HTTP' | 'HTTP2' | 'GRPC' | 'TCP' | 'TLS' | 'HTTPS';
  targetPort?: number;
}

export interface EndpointSpec {
  address: string;
  /** Port name → endpoint port. */
  ports?: Record<string, number>;
  labels?: Record<string, string>;
  weight?: number;
}

/** An Istio networking.istio.io/v1 ServiceEntry with STATIC resolution. */
export function serviceEntry(name: string, spec: { hosts: string[]; ports: PortSpec[]; endpoints: EndpointSpec[]; namespace?: string; addresses?: string[] }): object {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'ServiceEntry',
    metadata: { name, namespace: spec.namespace ?? 'default' },
    spec: {
      hosts: spec.hosts,
      ...(spec.addresses ? { addresses: spec.addresses } : {}),
      ports: spec.ports,
      location: 'MESH_INTERNAL',
      resolution: 'STATIC',
      endpoints: spec.endpoints,
    },
  };
}
