// A throwaway standalone ZooKeeper server for tests: Debian's zookeeper jars, a generated
// zoo.cfg (free loopback port, temp data dir, no admin server, short ticks so session
// timeouts are short), run in the foreground as a tracked process.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Subscription } from 'rxjs';
import type { Registry } from '../../src/model/registry.ts';
import type { RegistryState } from '../../src/model/types.ts';
import { providerKey } from '../../src/registries/soa/provider.ts';
import { ZkClient } from '../../src/registries/soa/zk-client.ts';
import { freePort } from './ports.ts';
import { scratchDir, spawnTracked, type Proc } from './processes.ts';
import { GiveUp, waitFor, waitUntil, type WaitOptions } from './wait.ts';

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
  /** Address to serve on (default 127.0.0.1), e.g. the root side of a NetLab for clients in namespaces. */
  host?: string;
}

export class ZooKeeperServer {
  readonly name: string;
  readonly port: number;
  readonly dir: string;
  readonly dataDir: string;
  readonly configPath: string;
  readonly host: string;
  proc: Proc | undefined;

  constructor(name: string, port: number, dir: string, host = '127.0.0.1') {
    this.name = name;
    this.port = port;
    this.host = host;
    this.dir = dir;
    this.dataDir = path.join(dir, 'data');
    this.configPath = path.join(dir, 'zoo.cfg');
  }

  /** `HOST:PORT`, for clients. */
  get connect(): string {
    return `${this.host}:${this.port}`;
  }

  /** Registry URL for Isthmus: zk://HOST:PORT/ROOT. */
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
      const sock = net.connect({ host: this.host, port: this.port });
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
  const server = await createZooKeeper(opts);
  await server.start(opts.timeoutMs);
  return server;
}

/** Writes a zoo.cfg on a free loopback port; the server is not started (see start()). */
export async function createZooKeeper(opts: ZooKeeperOptions = {}): Promise<ZooKeeperServer> {
  const name = opts.name ?? 'zookeeper';
  if (!fs.existsSync(ZK_JAR)) throw new Error(`ZooKeeper not found at ${ZK_JAR}: run bash scripts/provision.sh`);
  const tick = opts.tickTimeMs ?? 100;
  const server = new ZooKeeperServer(name, await freePort(), scratchDir(name), opts.host);
  fs.mkdirSync(server.dataDir, { recursive: true });
  fs.writeFileSync(
    server.configPath,
    [
      `tickTime=${tick}`,
      `minSessionTimeout=${opts.minSessionTimeoutMs ?? 2 * tick}`,
      `maxSessionTimeout=${opts.maxSessionTimeoutMs ?? 60 * tick}`,
      `dataDir=${server.dataDir}`,
      `clientPort=${server.port}`,
      `clientPortAddress=${server.host}`,
      'maxClientCnxns=0',
      'admin.enableServer=false',
      '4lw.commands.whitelist=ruok,srvr,stat,mntr,cons',
      'autopurge.purgeInterval=0',
      '',
    ].join('\n'),
  );
  return server;
}

/** Every state a registry emitted, for polling assertions; close() unsubscribes. */
export class StateLog {
  readonly states: RegistryState[] = [];
  private readonly sub: Subscription;

  constructor(registry: Registry) {
    this.sub = registry.states.subscribe((st) => this.states.push(st));
  }

  get latest(): RegistryState | undefined {
    return this.states.at(-1);
  }

  /** Polls until the latest state satisfies `check`; returns it. */
  until(check: (s: RegistryState) => boolean, what: string, opts: WaitOptions = {}): Promise<RegistryState> {
    return waitUntil(
      () => this.latest,
      (s) => s !== undefined && check(s),
      { timeoutMs: 15_000, intervalMs: 25, what, ...opts },
    ) as Promise<RegistryState>;
  }

  close(): void {
    this.sub.unsubscribe();
  }
}

/** `address:port` of every endpoint of a state, sorted. */
export function endpointAddresses(s: RegistryState | undefined, service?: string): string[] {
  return (s?.endpoints ?? [])
    .filter((e) => service === undefined || e.service === service)
    .map((e) => `${e.address}:${Object.values(e.ports)[0]}`)
    .sort();
}

/**
 * Writes the Dubbo layout directly, as a Dubbo provider's own ZooKeeper client does:
 * persistent `/<root>/<interface>/providers`, the URL-encoded provider URL as a node.
 */
export class DubboWriter {
  readonly client: ZkClient;
  readonly root: string;

  private constructor(client: ZkClient, root: string) {
    this.client = client;
    this.root = root;
  }

  static async connect(connect: string, root = '/dubbo', sessionTimeoutMs = 2000): Promise<DubboWriter> {
    const client = new ZkClient(connect, { sessionTimeoutMs });
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`cannot connect to ZooKeeper ${connect}`)), 10_000);
      client.once('connected', () => {
        clearTimeout(t);
        resolve();
      });
      client.connect();
    });
    return new DubboWriter(client, root);
  }

  /** Registers a provider URL (ephemeral by default, as Dubbo does); returns the node path. */
  async provider(url: string, opts: { ephemeral?: boolean; iface?: string } = {}): Promise<string> {
    const iface = opts.iface ?? /^[^:]+:\/\/[^/]+\/([^?]+)/.exec(url)?.[1] ?? 'unknown';
    const path = providerKey(this.root, iface, url);
    return this.node(path, opts.ephemeral ?? true);
  }

  /** Creates a node at an exact path (parents persistent). */
  async node(path: string, ephemeral = true, data?: string): Promise<string> {
    await this.client.mkdirp(path.slice(0, path.lastIndexOf('/')));
    await this.client.create(path, ephemeral ? 'ephemeral' : 'persistent', data === undefined ? undefined : Buffer.from(data));
    return path;
  }

  /** An application-level instance as Dubbo 3 registers it: Curator x-discovery JSON under `<services>/<app>/<ip:port>`. */
  instance(p: { application: string; address: string; port: number; endpoints?: { port: number; protocol: string }[]; revision?: string; storage?: 'local' | 'remote'; metadata?: Record<string, string>; services?: string }): Promise<string> {
    const id = `${p.address}:${p.port}`;
    const metadata: Record<string, string> = {
      ...(p.endpoints ? { 'dubbo.endpoints': JSON.stringify(p.endpoints) } : {}),
      'dubbo.metadata.revision': p.revision ?? 'e7733ed05cc319a3c4bc4fc1f21ef9c2',
      'dubbo.metadata.storage-type': p.storage ?? 'local',
      'meta-v': p.storage === 'remote' ? '2.0.0' : '1.0.0',
      timestamp: '1764800000000',
      ...p.metadata,
    };
    const doc = {
      name: p.application,
      id,
      address: p.address,
      port: p.port,
      sslPort: null,
      payload: { '@class': 'org.apache.dubbo.registry.zookeeper.ZookeeperInstance', id, name: p.application, metadata },
      registrationTimeUTC: 1764800000000,
      serviceType: 'DYNAMIC',
      uriSpec: null,
    };
    return this.node(`${p.services ?? '/services'}/${p.application}/${id}`, true, JSON.stringify(doc));
  }

  /** `<root>/mapping/<iface>`: the applications serving an interface. */
  mapping(iface: string, apps: string[]): Promise<string> {
    return this.node(`${this.root}/mapping/${iface}`, false, apps.join(','));
  }

  /** A service definition `<root>/metadata/<iface>[/<version>][/<group>]/provider/<app>`, as Dubbo's metadata report writes it. */
  definition(iface: string, application: string, p: { methods: string[]; version?: string; group?: string }): Promise<string> {
    const doc = {
      canonicalName: iface,
      codeSource: 'file:/app.jar',
      methods: p.methods.map((name) => ({ name, parameterTypes: ['java.lang.String'], returnType: 'java.lang.String', annotations: [] })),
      types: [],
      annotations: [],
      parameters: { application, interface: iface, methods: p.methods.join(','), 'register-mode': 'instance', side: 'provider', release: '3.3.6', ...(p.version ? { version: p.version } : {}), ...(p.group ? { group: p.group } : {}) },
    };
    const path = [this.root, 'metadata', iface, p.version, p.group, 'provider', application].filter(Boolean).join('/');
    return this.node(path, false, JSON.stringify(doc));
  }

  /** A revision document `<root>/metadata/<app>/<revision>` (metadata-type=remote). */
  revision(application: string, revision: string, services: { iface: string; protocol: string; port: number; methods: string[]; version?: string; group?: string }[]): Promise<string> {
    const doc = {
      app: application,
      revision,
      services: Object.fromEntries(
        services.map((x) => [
          `${x.group ? `${x.group}/` : ''}${x.iface}${x.version ? `:${x.version}` : ''}:${x.protocol}`,
          { name: x.iface, ...(x.group ? { group: x.group } : {}), ...(x.version ? { version: x.version } : {}), protocol: x.protocol, path: x.iface, port: x.port, params: { application, interface: x.iface, methods: x.methods.join(','), side: 'provider', ...(x.version ? { version: x.version } : {}) } },
        ]),
      ),
    };
    return this.node(`${this.root}/metadata/${application}/${revision}`, false, JSON.stringify(doc));
  }

  remove(path: string): Promise<void> {
    return this.client.remove(path);
  }

  /** Ends the session: the server deletes its ephemeral nodes. */
  close(): Promise<void> {
    return this.client.close();
  }
}

/**
 * A provider URL as Dubbo 3 writes it (parameters in Dubbo's order, timestamp and pid
 * included). `opaque`: a raw TCP backend registered in Dubbo's layout, without Dubbo's
 * protocol version (`dubbo=2.0.2`), so Isthmus keeps its port opaque TCP.
 */
export function dubboUrl(p: { protocol?: string; address: string; port: number; iface: string; application: string; methods?: string[]; version?: string; group?: string; extra?: Record<string, string>; opaque?: boolean }): string {
  const params: [string, string][] = [
    ['anyhost', 'true'],
    ['application', p.application],
    ['deprecated', 'false'],
    ...(p.opaque ? [] : ([['dubbo', '2.0.2']] as [string, string][])),
    ['dynamic', 'true'],
    ['generic', 'false'],
    ...(p.group ? ([['group', p.group]] as [string, string][]) : []),
    ['interface', p.iface],
    ['methods', (p.methods ?? ['get']).join(',')],
    ['pid', '4242'],
    ['release', '3.2.10'],
    ['side', 'provider'],
    ...Object.entries(p.extra ?? {}),
    ['timestamp', '1700000000000'],
    ...(p.version ? ([['version', p.version]] as [string, string][]) : []),
  ];
  return `${p.protocol ?? 'dubbo'}://${p.address}:${p.port}/${p.iface}?${params.map(([k, v]) => `${k}=${v}`).join('&')}`;
}

const REGISTRAR_MODULE = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..', 'src', 'registries', 'soa', 'zk-registrar.ts');

/**
 * A ZkRegistrar in its own process (to be killed like a crashing app): prints
 * "registered <session>" once its nodes exist and deregisters on SIGTERM.
 */
export async function spawnRegistrar(name: string, opts: { connect: string; root: string; providers: unknown[]; sessionTimeoutMs: number }): Promise<Proc> {
  const script = `
    import { ZkRegistrar } from ${JSON.stringify(REGISTRAR_MODULE)};
    const r = new ZkRegistrar(${JSON.stringify(opts)});
    process.once('SIGTERM', async () => { await r.stop(); process.exit(0); });
    await r.start();
    console.log('registered ' + r.sessionId);
    setInterval(() => {}, 1 << 30);
  `;
  const proc = spawnTracked(name, process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, ISTHMUS_LOG_LEVEL: 'info' } });
  await waitFor(
    () => {
      if (proc.exit) throw new GiveUp(`exited with ${proc.exit.code ?? proc.exit.signal}: ${proc.tail()}`);
      return /registered [0-9a-f]{16}/.test(proc.output());
    },
    { timeoutMs: 20_000, intervalMs: 50, what: `${name} to register` },
  );
  return proc;
}
