// A stock Apache Dubbo application in a child process, as a provider or as a consumer:
// test/clients/dubbo (DubboApp.java), built by scripts/provision.d/72-dubbo-app.sh into
// $ISTHMUS_CACHE/bin/isthmus-dubbo-app (Dubbo 3.3, ZooKeeper; ISTHMUS_DUBBO_APP names another
// command) and isthmus-dubbo-app-etcd3 (Dubbo 3.2, etcd; ISTHMUS_DUBBO_APP_ETCD3).
//
// Provider: exports com.example.isthmus.Greeter and com.example.isthmus.Orders on one port
// with the dubbo protocol (and with tri on a second port), registers in its registry and prints
// "READY". Greeter.greet answers "<application>/<instance>: hello isthmus", Orders.place
// "<application>/<instance>: placed isthmus", so a caller can tell which instance answered.
// SIGTERM runs Dubbo's shutdown hook: it unregisters (its ephemeral nodes go), then exits.
//
// Consumer: prints "PORT <n>" and serves, on 127.0.0.1:<n>,
//   GET /call?interface=I&n=N&timeoutMs=T[&url=dubbo://HOST:PORT][&version=V][&group=G]
// making N calls through one Dubbo reference per (interface, url, version, group): direct
// to `url` when given (Dubbo's point-to-point mode, how a consumer is pointed at a sidecar),
// else through the registry it started with; answers {"counts": {answer: n, "!error": n},
// "errors": [up to 3 messages]}. Calls are not retried: one failed call is one "!error". A
// message starts with the code name of Dubbo's RpcException (e.g. "TIMEOUT: Failed to ...").
//
// Addresses: Dubbo never registers a 127.x address. It replaces such a host (and an empty
// one, or 0.0.0.0) with the machine's first non-loopback address and binds 0.0.0.0. Both
// kinds start here with every network interface ignored (Dubbo's dubbo.network.interface.ignored),
// so that Dubbo finds none and falls back to 127.0.0.1: providers register 127.0.0.1:<port>,
// tests talk to loopback only, and instances of one test differ by port.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnTracked, type ExitStatus, type Proc } from './processes.ts';
import type { CallTally } from './proxyless.ts';
import { GiveUp, waitFor } from './wait.ts';

export type { CallTally };

export const GREETER = 'com.example.isthmus.Greeter';
export const ORDERS = 'com.example.isthmus.Orders';
export type DubboInterface = typeof GREETER | typeof ORDERS;

/** Dubbo 3's dubbo.application.register-mode: interface (2.x layout), instance (application level), all (both, Dubbo's default). */
export type RegisterMode = 'interface' | 'instance' | 'all';

const BIN = path.join(process.env.ISTHMUS_CACHE ?? path.join(os.homedir(), '.cache', 'isthmus'), 'bin');

/**
 * Which build of test/clients/dubbo: `zookeeper` (Dubbo 3.3, ZooKeeper registry) or `etcd3`
 * (Dubbo 3.2 with dubbo-registry-etcd3, the newest etcd-capable Dubbo on Maven Central).
 */
export type DubboBuild = 'zookeeper' | 'etcd3';

function command(build: DubboBuild = 'zookeeper'): string {
  const [variable, bin] = build === 'etcd3' ? ['ISTHMUS_DUBBO_APP_ETCD3', 'isthmus-dubbo-app-etcd3'] : ['ISTHMUS_DUBBO_APP', 'isthmus-dubbo-app'];
  const cmd = process.env[variable] ?? path.join(BIN, bin);
  if (!process.env[variable] && !fs.existsSync(cmd)) throw new Error(`${cmd} not found: run bash scripts/provision.sh`);
  return cmd;
}

/** The registry URL of a ZooKeeper server for Dubbo, from its `host:port`. */
export function zookeeperRegistry(connect: string): string {
  return `zookeeper://${connect}`;
}

/**
 * Dubbo 3.2's registry address for an etcd server (`host:port`) and register mode: its etcd
 * extension names the interface-level registry `etcd3` and the application-level service
 * discovery `etcd`, so `all` is both, each with its own register-mode. `sessionMs` is the
 * lease of its keys (Dubbo's default 60 s): how long a killed provider stays registered.
 */
export function etcdRegistry(endpoint: string, mode: RegisterMode, sessionMs = 4000): string {
  const q = `session=${sessionMs}`;
  if (mode === 'interface') return `etcd3://${endpoint}?${q}`;
  if (mode === 'instance') return `etcd://${endpoint}?${q}`;
  return `etcd3://${endpoint}?${q}&register-mode=interface etcd://${endpoint}?${q}&register-mode=instance`;
}

/** What an instance answers to one call of the interface's method. */
export function dubboAnswer(iface: DubboInterface, application: string, instance: string): string {
  return `${application}/${instance}: ${iface === GREETER ? 'hello' : 'placed'} isthmus`;
}

/** How long a JVM may take to print READY or PORT (~2-3 s alone; a shared 2-core machine, several at once). */
const START_TIMEOUT_MS = 60_000;

export interface DubboProviderOptions {
  /** Process name in logs; default dubbo-<application>-<instance>. */
  name?: string;
  /** zookeeper://HOST:PORT (see zookeeperRegistry), etcd (see etcdRegistry), or N/A for none. */
  registry: string;
  /** Default zookeeper. */
  build?: DubboBuild;
  application: string;
  /** Named in every answer; default <application>-1. */
  instance?: string;
  /** Absent: Dubbo's default (all). */
  registerMode?: RegisterMode;
  /** Port of the dubbo protocol (dubbo.protocol.port). */
  port: number;
  /** dubbo.protocol.host; default 127.0.0.1 (registered as 127.0.0.1, see above). */
  host?: string;
  /** Also export over tri, on this port. */
  triPort?: number;
  version?: string;
  group?: string;
  weight?: number;
  /** Each call answers after this long. */
  delayMs?: number;
  /** Service parameters, registered in the provider URL (endpoint labels in Isthmus). */
  params?: Readonly<Record<string, string>>;
  /** dubbo.protocol.prefer-serialization, e.g. 'fastjson2,hessian2' (Dubbo 3.2's default). */
  preferSerialization?: string;
  /** dubbo.application.metadata-type: local (Dubbo's default; MetadataService on the port) or remote (in the metadata report, /dubbo/metadata/<app>/<revision>). */
  metadataType?: 'local' | 'remote';
  /** More flags of DubboApp.java, e.g. ['--bind-port', '20881']. */
  args?: readonly string[];
  /** How to start the process (default spawnTracked), e.g. inside a network namespace. */
  spawn?: Spawn;
}

export class DubboProvider {
  readonly proc: Proc;
  readonly opts: DubboProviderOptions & { instance: string };
  /** The URLs Dubbo says it exported (its own view, before registration drops some parameters). */
  readonly exported: string[];
  /** Milliseconds from spawn to READY. */
  readonly startMs: number;

  constructor(proc: Proc, opts: DubboProviderOptions & { instance: string }, exported: string[], startMs: number) {
    this.proc = proc;
    this.opts = opts;
    this.exported = exported;
    this.startMs = startMs;
  }

  get port(): number {
    return this.opts.port;
  }

  /** Point-to-point URL of its dubbo port, for a consumer call's `url`. */
  get url(): string {
    return `dubbo://127.0.0.1:${this.opts.port}`;
  }

  /** What it answers to one call of `iface`. */
  answer(iface: DubboInterface): string {
    return dubboAnswer(iface, this.opts.application, this.opts.instance);
  }

  /** SIGTERM (Dubbo unregisters, then exits; ~3 s), SIGKILL after graceMs. */
  stop(graceMs = 15_000): Promise<ExitStatus> {
    return this.proc.stop(graceMs);
  }
}

/** Starts a provider and waits for READY. */
export async function startDubboProvider(opts: DubboProviderOptions): Promise<DubboProvider> {
  const instance = opts.instance ?? `${opts.application}-1`;
  const args = [
    'provider', '--registry', opts.registry, '--application', opts.application, '--instance', instance,
    '--host', opts.host ?? '127.0.0.1', '--port', String(opts.port), '--network-interface-ignored', '.*',
  ];
  if (opts.registerMode) args.push('--register-mode', opts.registerMode);
  if (opts.triPort !== undefined) args.push('--tri', '--tri-port', String(opts.triPort));
  if (opts.version) args.push('--version', opts.version);
  if (opts.group) args.push('--group', opts.group);
  if (opts.weight !== undefined) args.push('--weight', String(opts.weight));
  if (opts.delayMs !== undefined) args.push('--delay-ms', String(opts.delayMs));
  if (opts.metadataType) args.push('--metadata-type', opts.metadataType);
  if (opts.params) args.push('--param', Object.entries(opts.params).map(([k, v]) => `${k}=${v}`).join(','));
  if (opts.preferSerialization) args.push('--prefer-serialization', opts.preferSerialization);
  args.push(...(opts.args ?? []));
  const name = opts.name ?? `dubbo-${opts.application}-${instance}`;
  const t0 = Date.now();
  const proc = (opts.spawn ?? spawnTracked)(name, command(opts.build), args);
  await waitFor(
    () => {
      if (proc.exit) throw new GiveUp(`exited ${proc.exit.code ?? proc.exit.signal}: ${proc.tail()}`);
      return /^READY$/m.test(proc.output());
    },
    { timeoutMs: START_TIMEOUT_MS, intervalMs: 50, what: `Dubbo provider ${name} to print READY` },
  );
  const startMs = Date.now() - t0;
  const exported = [...proc.output().matchAll(/^EXPORTED (\S+)$/gm)].map((m) => m[1]!);
  return new DubboProvider(proc, { ...opts, instance }, exported, startMs);
}

export interface DubboConsumerOptions {
  name?: string;
  /** zookeeper://HOST:PORT for calls through the registry; absent: point-to-point calls only. */
  registry?: string;
  /** Default zookeeper. */
  build?: DubboBuild;
  /** Default isthmus-consumer. */
  application?: string;
  /** Which registrations it follows: interface, application, or both (Dubbo's default, application level first). */
  discovery?: 'interface' | 'application' | 'both';
  /** Address its control server listens on (default 127.0.0.1), e.g. its host's address in a network namespace. */
  controlHost?: string;
  /** dubbo.application.metadata-service-port: Dubbo 3.2 consumers export their MetadataService on 20880 unless told otherwise. */
  metadataServicePort?: number;
  /** How to start the process (default spawnTracked), e.g. inside a network namespace. */
  spawn?: Spawn;
}

/** Starts a tracked process: spawnTracked, or the same inside a network namespace. */
export type Spawn = (name: string, cmd: string, args: readonly string[]) => Proc;

export interface DubboCallOptions {
  /** dubbo://HOST:PORT (or tri://): point-to-point, bypassing the registry. */
  url?: string;
  /** Per call; default 3000. */
  timeoutMs?: number;
  version?: string;
  group?: string;
}

export class DubboConsumer {
  readonly proc: Proc;
  readonly port: number;
  readonly startMs: number;
  readonly controlHost: string;

  constructor(proc: Proc, port: number, startMs: number, controlHost = '127.0.0.1') {
    this.proc = proc;
    this.port = port;
    this.startMs = startMs;
    this.controlHost = controlHost;
  }

  /** Makes `n` calls of the interface's method, one at a time, and tallies the answers. */
  async call(iface: DubboInterface, n = 1, opts: DubboCallOptions = {}): Promise<CallTally> {
    const timeoutMs = opts.timeoutMs ?? 3000;
    const q = new URLSearchParams({ interface: iface, n: String(n), timeoutMs: String(timeoutMs) });
    if (opts.url) q.set('url', opts.url);
    if (opts.version) q.set('version', opts.version);
    if (opts.group) q.set('group', opts.group);
    // The first call of a reference also creates it (subscription, connection): allow for that.
    const res = await fetch(`http://${this.controlHost}:${this.port}/call?${q}`, { signal: AbortSignal.timeout(n * timeoutMs + 15_000) });
    if (!res.ok) throw new Error(`Dubbo consumer: HTTP ${res.status}: ${await res.text()}`);
    return (await res.json()) as CallTally;
  }

  stop(graceMs = 15_000): Promise<ExitStatus> {
    return this.proc.stop(graceMs);
  }
}

/** Starts a consumer and waits for its control port. */
export async function startDubboConsumer(opts: DubboConsumerOptions = {}): Promise<DubboConsumer> {
  const args = ['consumer', '--application', opts.application ?? 'isthmus-consumer', '--network-interface-ignored', '.*'];
  if (opts.registry) args.push('--registry', opts.registry);
  if (opts.discovery) args.push('--discovery', opts.discovery);
  if (opts.controlHost) args.push('--control-host', opts.controlHost);
  if (opts.metadataServicePort !== undefined) args.push('--metadata-service-port', String(opts.metadataServicePort));
  const name = opts.name ?? 'dubbo-consumer';
  const t0 = Date.now();
  const proc = (opts.spawn ?? spawnTracked)(name, command(opts.build), args);
  const port = await waitFor(
    () => {
      if (proc.exit) throw new GiveUp(`exited ${proc.exit.code ?? proc.exit.signal}: ${proc.tail()}`);
      const m = /^PORT (\d+)$/m.exec(proc.output());
      return m ? Number(m[1]) : 0;
    },
    { timeoutMs: START_TIMEOUT_MS, intervalMs: 50, what: `Dubbo consumer ${name} to print its port` },
  );
  return new DubboConsumer(proc, port, Date.now() - t0, opts.controlHost);
}
