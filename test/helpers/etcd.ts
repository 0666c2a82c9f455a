// A throwaway single-member etcd on loopback for tests: free client and peer ports, data in
// a scratch directory, auto-compaction off. It can be stopped and started again on the same
// ports and data (a restart), or killed. Also: a TCP proxy to cut or slow the way to it, and
// a recorder of the states a registry emits.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Etcd3 } from 'etcd3';
import type { Subscription } from 'rxjs';
import type { Registry } from '../../src/model/registry.ts';
import type { RegistryState } from '../../src/model/types.ts';
import { freePort, isListening } from './ports.ts';
import { scratchDir, spawnTracked, type Proc } from './processes.ts';
import { GiveUp, waitFor } from './wait.ts';
import { metricValue } from './prometheus.ts';

export const ETCD_BIN =
  process.env.ISTHMUS_ETCD ?? path.join(process.env.ISTHMUS_CACHE ?? path.join(os.homedir(), '.cache', 'isthmus'), 'bin', 'etcd');

export interface EtcdOptions {
  /** Name for logs and the member (default "etcd"). */
  name?: string;
  timeoutMs?: number;
  /** Address the client port listens on (default 127.0.0.1), e.g. a network lab's root address; peers stay on loopback. */
  host?: string;
}

export class EtcdServer {
  readonly name: string;
  readonly clientPort: number;
  readonly peerPort: number;
  readonly dataDir: string;
  readonly host: string;
  private readonly timeoutMs: number;
  proc: Proc | undefined;

  constructor(name: string, clientPort: number, peerPort: number, dataDir: string, timeoutMs: number, host = '127.0.0.1') {
    this.name = name;
    this.host = host;
    this.clientPort = clientPort;
    this.peerPort = peerPort;
    this.dataDir = dataDir;
    this.timeoutMs = timeoutMs;
  }

  /** `HOST:PORT`, as a registry URL or an Etcd3 host wants it. */
  get endpoint(): string {
    return `${this.host}:${this.clientPort}`;
  }

  /** `etcd://127.0.0.1:PORT/ROOT` */
  url(root = '/dubbo'): string {
    return `etcd://${this.endpoint}${root.startsWith('/') ? root : `/${root}`}`;
  }

  running(): boolean {
    return this.proc !== undefined && this.proc.alive();
  }

  /** Starts the server (again, after stop() or kill(): same ports, same data) and waits until healthy. */
  async start(): Promise<void> {
    if (this.running()) throw new Error(`${this.name} is already running`);
    const peer = `http://127.0.0.1:${this.peerPort}`;
    const client = `http://${this.endpoint}`;
    const proc = spawnTracked(this.name, ETCD_BIN, [
      '--name', this.name,
      '--data-dir', this.dataDir,
      '--listen-client-urls', client,
      '--advertise-client-urls', client,
      '--listen-peer-urls', peer,
      '--initial-advertise-peer-urls', peer,
      '--initial-cluster', `${this.name}=${peer}`,
      '--initial-cluster-state', 'new',
      '--initial-cluster-token', `isthmus-test-${this.clientPort}`,
      '--auto-compaction-retention', '0',
      '--logger', 'zap',
      '--log-level', 'warn',
    ]);
    this.proc = proc;
    try {
      await waitFor(
        async () => {
          if (proc.exit) throw new GiveUp(`exited with ${proc.exit.code ?? proc.exit.signal}`);
          const res = await fetch(`${client}/health`, { signal: AbortSignal.timeout(1000) });
          const body = (await res.json()) as { health?: string };
          return res.status === 200 && body.health === 'true';
        },
        { timeoutMs: this.timeoutMs, intervalMs: 50, what: `${this.name} ${client}/health` },
      );
    } catch (err) {
      await proc.stop();
      throw new Error(`${this.name} did not become healthy: ${(err as Error).message}\n--- ${proc.logFile} ---\n${proc.tail()}`, { cause: err });
    }
  }

  /** SIGTERM (SIGKILL after graceMs); resolves once the process is gone and its client port closed. */
  async stop(graceMs = 5000): Promise<void> {
    if (!this.proc) return;
    await this.proc.stop(graceMs);
    await waitFor(async () => !(await isListening(this.clientPort, this.host)), { timeoutMs: 5000, intervalMs: 25, what: `${this.name} port ${this.clientPort} closed` });
  }

  /** SIGKILL: no clean shutdown. */
  async kill(): Promise<void> {
    if (!this.proc) return;
    this.proc.kill('SIGKILL');
    await this.proc.stop(0);
  }

  /** A client of this server with fault handling that fails fast; close() it when done. */
  client(): Etcd3 {
    return new Etcd3({ hosts: `http://${this.endpoint}`, dialTimeout: 2000, defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + 5000 }) });
  }

  /** Compacts the key-value history up to the current revision (watches from before it are then refused). */
  async compact(): Promise<string> {
    const c = this.client();
    try {
      const rev = (await c.get('isthmus-compact-probe').exec()).header.revision;
      await c.kv.compact({ revision: rev, physical: true });
      return rev;
    } finally {
      c.close();
    }
  }
}

/** Starts a fresh etcd on free loopback ports and waits until it is healthy. */
export async function startEtcd(opts: EtcdOptions = {}): Promise<EtcdServer> {
  if (!fs.existsSync(ETCD_BIN)) throw new Error(`etcd not found at ${ETCD_BIN}: run bash scripts/provision.sh`);
  const name = opts.name ?? 'etcd';
  const server = new EtcdServer(name, await freePort(), await freePort(), path.join(scratchDir(name), 'data'), opts.timeoutMs ?? 20_000, opts.host);
  await server.start();
  return server;
}

/** The value of one Prometheus series from the server's /metrics (0 when absent). */
export async function etcdMetric(server: EtcdServer, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`http://${server.endpoint}/metrics`, { signal: AbortSignal.timeout(2000) })).text();
  return metricValue(text, name, labels);
}

/** Subscribes to a registry and keeps every state it emits, with the time it came. */
export class StateRecorder {
  readonly states: RegistryState[] = [];
  readonly times: number[] = [];
  private readonly sub: Subscription;

  constructor(registry: Registry) {
    this.sub = registry.states.subscribe((s) => {
      this.states.push(s);
      this.times.push(Date.now());
    });
  }

  get last(): RegistryState | undefined {
    return this.states.at(-1);
  }

  /** Waits (bounded) for a state emitted at index `from` or later that satisfies `pred`; returns it and its index. */
  async next(pred: (s: RegistryState) => boolean, what: string, from = 0, timeoutMs = 10_000): Promise<{ state: RegistryState; index: number }> {
    return waitFor(
      () => {
        for (let i = from; i < this.states.length; i++) if (pred(this.states[i]!)) return { state: this.states[i]!, index: i };
        return undefined;
      },
      { timeoutMs, intervalMs: 10, what },
    );
  }

  close(): void {
    this.sub.unsubscribe();
  }
}

const REGISTRAR_MODULE = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..', 'src', 'registries', 'soa', 'etcd-registrar.ts');

/**
 * An EtcdRegistrar in its own process, to be killed like a crashing app: prints
 * "registered <lease>" once its keys are written, and deregisters on SIGTERM.
 */
export async function spawnEtcdRegistrar(name: string, opts: { endpoints: string[]; root: string; providers: unknown[]; ttlSeconds: number }): Promise<Proc> {
  const script = `
    import { EtcdRegistrar } from ${JSON.stringify(REGISTRAR_MODULE)};
    const r = new EtcdRegistrar(${JSON.stringify(opts)});
    process.once('SIGTERM', async () => { await r.stop(); process.exit(0); });
    await r.start();
    console.log('registered ' + r.leaseId);
    setInterval(() => {}, 1 << 30);
  `;
  const proc = spawnTracked(name, process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, ISTHMUS_LOG_LEVEL: 'info' } });
  await waitFor(
    () => {
      if (proc.exit) throw new GiveUp(`exited with ${proc.exit.code ?? proc.exit.signal}: ${proc.tail()}`);
      return /registered \d+/.test(proc.output());
    },
    { timeoutMs: 20_000, intervalMs: 50, what: `${name} to register` },
  );
  return proc;
}
