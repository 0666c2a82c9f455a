// A throwaway standalone ZooKeeper server for tests: Debian's zookeeper jars, a generated
// zoo.cfg (free loopback port, temp data dir, no admin server, short ticks so session
// timeouts are short), run in the foreground as a tracked process.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { freePort } from './ports.ts';
import { scratchDir, spawnTracked, type Proc } from './processes.ts';
import { GiveUp, waitFor } from './wait.ts';

export const ZK_JAR = process.env.ISTHMUS_ZOOKEEPER_JAR ?? '/usr/share/java/zookeeper.jar';
/** slf4j binding so the server's log lands in the process log (absent: silent server). */
const SLF4J_SIMPLE = '/usr/share/java/slf4j-simple.jar';

export interface ZooKeeperOptions {
  name?: string;
  /** ZooKeeper's tick (ms). Sessions may last 2-20 ticks unless set below. Default 100. */
  tickTimeMs?: number;
  /** Bounds of the session timeouts the server grants. Defaults 2 and 60 ticks. */
  minSessionTimeoutMs?: number;
  maxSessionTimeoutMs?: number;
  timeoutMs?: number;
}

export class ZooKeeperServer {
  readonly name: string;
  readonly port: number;
  readonly dir: string;
  readonly dataDir: string;
  readonly configPath: string;
  proc: Proc | undefined;

  constructor(name: string, port: number, dir: string) {
    this.name = name;
    this.port = port;
    this.dir = dir;
    this.dataDir = path.join(dir, 'data');
    this.configPath = path.join(dir, 'zoo.cfg');
  }

  /** `127.0.0.1:PORT`, for clients. */
  get connect(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Registry URL for Isthmus: zk://127.0.0.1:PORT/ROOT. */
  url(root = '/dubbo'): string {
    return `zk://${this.connect}${root}`;
  }

  get running(): boolean {
    return this.proc?.alive() ?? false;
  }

  /** Starts the server (again, on the same port and data dir) and waits until it serves. */
  async start(timeoutMs = 30_000): Promise<void> {
    if (this.running) throw new Error(`${this.name} is already running`);
    const cp = [ZK_JAR, ...(fs.existsSync(SLF4J_SIMPLE) ? [SLF4J_SIMPLE] : [])].join(':');
    const proc = spawnTracked(this.name, 'java', [
      '-Xms32m', '-Xmx256m', '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', '-Xshare:auto',
      '-Dzookeeper.admin.enableServer=false',
      '-Dorg.slf4j.simpleLogger.defaultLogLevel=warn',
      '-Dorg.slf4j.simpleLogger.showDateTime=true',
      '-cp', cp,
      'org.apache.zookeeper.server.ZooKeeperServerMain', this.configPath,
    ]);
    this.proc = proc;
    try {
      await waitFor(
        async () => {
          if (proc.exit) throw new GiveUp(`exited with ${proc.exit.code ?? proc.exit.signal}`);
          return /Mode: standalone/.test(await this.fourLetter('srvr'));
        },
        { timeoutMs, intervalMs: 100, what: `${this.name} to answer srvr on ${this.connect}` },
      );
    } catch (err) {
      await proc.stop();
      throw new Error(`${this.name} did not start: ${(err as Error).message}\n--- ${proc.logFile} ---\n${proc.tail()}`, { cause: err });
    }
  }

  /** SIGTERM, then SIGKILL after graceMs; the data dir (and its sessions) stays. */
  async stop(graceMs = 5000): Promise<void> {
    await this.proc?.stop(graceMs);
  }

  /** SIGKILL: a crash. Sessions and ephemeral nodes survive in the data dir. */
  async kill(): Promise<void> {
    if (!this.proc?.alive()) return;
    this.proc.kill('SIGKILL');
    await this.proc.exited;
  }

  /** SIGSTOP / SIGCONT: a server that hangs without closing its connections. */
  pause(): void {
    this.proc?.kill('SIGSTOP');
  }
  resume(): void {
    this.proc?.kill('SIGCONT');
  }

  /** Sends a four-letter command (ruok, srvr, stat, mntr, cons) and returns the reply ('' if none). */
  fourLetter(cmd: string, timeoutMs = 2000): Promise<string> {
    return new Promise((resolve) => {
      let out = '';
      const sock = net.connect({ host: '127.0.0.1', port: this.port });
      const done = (): void => {
        clearTimeout(timer);
        sock.destroy();
        resolve(out);
      };
      const timer = setTimeout(done, timeoutMs);
      sock.setEncoding('utf8');
      sock.on('connect', () => sock.write(cmd));
      sock.on('data', (d: string) => (out += d));
      sock.on('end', done);
      sock.on('error', done);
    });
  }

  /** Live session count, from `mntr` (zk_global_sessions) or `cons`. */
  async sessions(): Promise<number> {
    const m = /zk_global_sessions\s+(\d+)/.exec(await this.fourLetter('mntr'));
    return m ? Number(m[1]) : -1;
  }
}

/** Writes a zoo.cfg on a free loopback port and starts the server. */
export async function startZooKeeper(opts: ZooKeeperOptions = {}): Promise<ZooKeeperServer> {
  const name = opts.name ?? 'zookeeper';
  if (!fs.existsSync(ZK_JAR)) throw new Error(`ZooKeeper not found at ${ZK_JAR}: run bash scripts/provision.sh`);
  const tick = opts.tickTimeMs ?? 100;
  const server = new ZooKeeperServer(name, await freePort(), scratchDir(name));
  fs.mkdirSync(server.dataDir, { recursive: true });
  fs.writeFileSync(
    server.configPath,
    [
      `tickTime=${tick}`,
      `minSessionTimeout=${opts.minSessionTimeoutMs ?? 2 * tick}`,
      `maxSessionTimeout=${opts.maxSessionTimeoutMs ?? 60 * tick}`,
      `dataDir=${server.dataDir}`,
      `clientPort=${server.port}`,
      'clientPortAddress=127.0.0.1',
      'maxClientCnxns=0',
      'admin.enableServer=false',
      '4lw.commands.whitelist=ruok,srvr,stat,mntr,cons',
      'autopurge.purgeInterval=0',
      '',
    ].join('\n'),
  );
  await server.start(opts.timeoutMs);
  return server;
}
