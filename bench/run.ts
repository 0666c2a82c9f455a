// Benchmark: Isthmus (own process) serving P simulated Envoys (own process) over loopback,
// then, in the same run, the go-control-plane peer (bench/gcp) serving the same config to
// the same simulated Envoys; reported side by side with Isthmus/peer ratios.
// Options: see USAGE below (`node bench/run.ts --help`).
import { spawnSync } from 'node:child_process';
import { MEMORY_RETURN_DEFAULTS } from '../src/memory.ts';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MemCgroup } from './cgroup.ts';
import { benchOptions } from './cli.ts';
import { clusterOf, type FromChild, type FromSim, type Memory, now, type SimStatus, type ToChild, type ToSim } from './messages.ts';
import { Peer, type Proc, procUsage, type ProcUsage } from './procs.ts';
import { buildGcp, type FromGcp, startGcp, type ToGcp } from './gcp-peer.ts';

const SIZES: Record<string, { P: number; S: number; E: number }> = {
  small: { P: 100, S: 100, E: 10 },
  medium: { P: 1000, S: 1000, E: 10 },
  large: { P: 1000, S: 5000, E: 20 },
};
const DEBOUNCE_QUIET_MS = 100;
const ENCODES = 'isthmus_xds_resource_encodes_total';
const CLA = 'envoy.config.endpoint.v3.ClusterLoadAssignment';
const HERE = path.dirname(new URL(import.meta.url).pathname);
const HEALTHZ = '/healthz/ready';
const HEALTHZ_EVERY_MS = 100;
const HEALTHZ_TIMEOUT_MS = 10_000;
/** Gauges sampled during the storm, when the server exposes them. */
const STORM_GAUGES = ['isthmus_xds_inflight_bytes', 'isthmus_xds_waiting_connections', 'isthmus_xds_request_bytes_held', 'isthmus_xds_streams_unread'];
/** With no other sign of the end of a resync: this long without a reconnect or a response. */
const QUIET_MS = 2000;

const USAGE = `Usage: node bench/run.ts (npm run bench --) [--size small|medium|large[,…]] [--proxies P] [--services S]
       [--endpoints E] [--changes N] [--timeout SECONDS] [--profile] [--keep-logs]
       [--isthmus-node-flags="FLAGS"] [--isthmus-malloc auto|jemalloc|system]
       [--peer gcp|gcp-snapshot|none] [--delta] [--storm [--storm-cold]]
       [--isthmus-mem GiB] [--peer-mem GiB] [--sim-mem GiB]
Phases per server: start, full sync of P proxies, N endpoint changes one at a time, and
with --storm a reconnect storm: the server is SIGKILLed and a fresh one started on the
same ports from the same registry state (the N changes included), so all P proxies reconnect at once (re-opening their streams with a short
backoff and claiming the versions they hold, as Envoy does); measured from the new
process being ready to every proxy holding and having ACKed the full config again, with
Isthmus's admin /healthz/ready polled every 100 ms meanwhile. --storm-cold: the proxies
come back holding nothing (every Envoy restarted too), so each server sends everything again.
--delta: the simulated proxies speak Delta ADS instead of SotW (to both servers).
--peer gcp (default): go-control-plane with a LinearCache for EDS and a SnapshotCache for
the rest; gcp-snapshot: one SnapshotCache for everything (SotW resends every assignment).
--*-mem: each process runs in a cgroup v1 memory group with this limit (defaults: Isthmus
11, peer 11, simulator 9 GiB; 0 = no limit). A process the kernel kills over its limit is
reported as "failed: OOM at N GiB" in its column and the run goes on; exit status 3.
--isthmus-malloc: the allocator Isthmus runs with, chosen as bin/isthmus does (bin/allocator.sh,
ISTHMUS_MALLOC): auto (default) is jemalloc where installed; the runner, the simulator and the
peer keep the system's.
--profile writes V8 CPU profiles of both Node children next to their logs (kept, as with
--keep-logs). --isthmus-node-flags="--trace-gc …": extra Node/V8 flags for Isthmus.
Exit status: 0, 2 if an endpoint change was encoded more than once, 3 if a phase failed.
`;

const values = benchOptions('bench', USAGE, {
  size: { type: 'string', default: 'small' },
  proxies: { type: 'string' },
  services: { type: 'string' },
  endpoints: { type: 'string' },
  changes: { type: 'string', default: '20' },
  timeout: { type: 'string', default: '300' },
  profile: { type: 'boolean', default: false },
  'isthmus-node-flags': { type: 'string', default: '' },
  'isthmus-malloc': { type: 'string', default: 'auto' },
  'keep-logs': { type: 'boolean', default: false },
  peer: { type: 'string', default: 'gcp' },
  delta: { type: 'boolean', default: false },
  storm: { type: 'boolean', default: false },
  'storm-cold': { type: 'boolean', default: false },
  'isthmus-mem': { type: 'string', default: '11' },
  'peer-mem': { type: 'string', default: '11' },
  'sim-mem': { type: 'string', default: '9' },
});

/** Isthmus's environment: the allocator bin/isthmus would preload (bin/allocator.sh). */
const ISTHMUS_ENV = isthmusEnv(values['isthmus-malloc']);
const ALLOCATOR = ISTHMUS_ENV.LD_PRELOAD ? `jemalloc (${ISTHMUS_ENV.LD_PRELOAD}, MALLOC_CONF=${ISTHMUS_ENV.MALLOC_CONF ?? ''})` : 'the system\'s (glibc)';

function isthmusEnv(malloc: string): NodeJS.ProcessEnv {
  const script = path.join(HERE, '..', 'bin', 'allocator.sh');
  const r = spawnSync('bash', ['-c', '. "$0" && isthmus_malloc && printf "%s\\n%s" "${LD_PRELOAD:-}" "${MALLOC_CONF:-}"', script], {
    env: { ...process.env, ISTHMUS_MALLOC: malloc },
    encoding: 'utf8',
  });
  if (r.status !== 0) {
    process.stderr.write(`bench: --isthmus-malloc ${malloc}: ${r.stderr.trim() || `bash exited ${r.status}`}\n`);
    process.exit(2);
  }
  const [preload = '', conf = ''] = r.stdout.split('\n');
  const env = { ...process.env };
  if (preload) Object.assign(env, { LD_PRELOAD: preload, MALLOC_CONF: conf });
  return env;
}

const tty = process.stderr.isTTY;
let lastProgress = 0;
/** One progress line: rewritten in place on a terminal, at most every 2 s otherwise. */
function progress(text: string, force = false): void {
  if (tty) process.stderr.write(`\r\x1b[K${text}`);
  else if (force || Date.now() - lastProgress > 2000) {
    lastProgress = Date.now();
    process.stderr.write(`${text}\n`);
  }
}
function endProgress(): void {
  if (tty) process.stderr.write('\r\x1b[K');
}

type Trio = { p50: number; p99: number; max: number };
function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}
function stats(xs: number[]): Trio {
  const s = [...xs].sort((a, b) => a - b);
  return { p50: pct(s, 50), p99: pct(s, 99), max: s[s.length - 1]! };
}
const ms = (x: number): string => `${x.toFixed(1)} ms`;
const mib = (b: number): string => `${(b / 1024 / 1024).toFixed(1)} MiB`;
const trio = (s: Trio, minus = 0): string => `p50 ${ms(s.p50 - minus)}  p99 ${ms(s.p99 - minus)}  max ${ms(s.max - minus)}`;
const sleep = (t: number): Promise<void> => new Promise((r) => setTimeout(r, t));

/** GET from Isthmus's admin port, with the cause in the error. */
async function admin(port: number, p: string): Promise<Response> {
  try {
    return await fetch(`http://127.0.0.1:${port}${p}`);
  } catch (e) {
    throw new Error(`Isthmus admin ${p} did not answer: ${String((e as Error).cause ?? e)}`, { cause: e });
  }
}

function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+(?:\{[^}]*\})?) ([0-9.e+-]+)$/.exec(line);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

async function scrape(adminPort: number): Promise<Map<string, number>> {
  return parseMetrics(await (await admin(adminPort, '/metrics')).text());
}

const RETURNED = 'isthmus_memory_returned_bytes_total';
const SETTLE_MS = 25_000;

interface Settled {
  memory: Memory;
  returnedBytes: number;
  waitedMs: number;
}

/** Waits (at most SETTLE_MS, proxies idle) for Isthmus to return freed memory by itself, then measures. */
async function settle(adminPort: number, measure: () => Promise<Memory>): Promise<Settled | undefined> {
  const t0 = performance.now();
  const start = (await scrape(adminPort)).get(RETURNED) ?? 0;
  while (performance.now() - t0 < SETTLE_MS) {
    await sleep(500);
    const now = (await scrape(adminPort)).get(RETURNED) ?? 0;
    if (now > start) return { memory: await measure(), returnedBytes: now - start, waitedMs: performance.now() - t0 };
  }
  return undefined;
}

/** Per metric-with-labels growth between two scrapes, for the metric `name`. */
function growth(before: Map<string, number>, after: Map<string, number>, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, v] of after) {
    if (!k.startsWith(name)) continue;
    const d = v - (before.get(k) ?? 0);
    if (d) out.set(/type="([^"]+)"/.exec(k)?.[1] ?? k, d);
  }
  return out;
}

/** Isthmus's own view: streams SYNCED on all four types, and from how many distinct peers. */
async function synczCount(adminPort: number): Promise<{ synced: number; streams: number; peers: number }> {
  const conns = (await (await admin(adminPort, '/debug/syncz')).json()) as { peer: string; types: { status: string }[] }[];
  const synced = conns.filter((c) => c.types.length === 4 && c.types.every((t) => t.status === 'SYNCED')).length;
  return { synced, streams: conns.length, peers: new Set(conns.map((c) => c.peer)).size };
}

/** What is measured the same way for both control planes, from /proc and the simulated proxies. */
interface Usage {
  syncMs: number;
  lastProxy: Trio;
  /** CPU seconds of the server process: start → ready, → all synced, → after the N changes. */
  cpuStart: number;
  cpuSync: number;
  cpuChanges: number;
  /** RSS when every proxy is synced, and peak RSS (VmHWM) at the end. */
  rssSynced: number;
  peakRss: number;
  /** The simulator's peak RSS (VmHWM) after the changes. */
  simPeakRss: number;
}

interface Result {
  size: string;
  P: number;
  S: number;
  E: number;
  initialBuildMs: number;
  syncz: string;
  perProxy: Trio;
  toSnapshot: Trio;
  aggregate: Trio;
  build: Trio;
  flush: Trio;
  encodes: string;
  claEncodes: number[];
  edsBytes: number;
  before: Memory;
  synced: Memory;
  /** After the sync, once Isthmus returned freed heap pages on its own (quiet for a while). */
  settled?: Settled;
  end: Memory;
  sim: Memory;
  clocks: string;
  usage: Usage;
}

interface PeerResult {
  size: string;
  eds: string;
  usage: Usage;
  perProxy: Trio;
  /** How long the cache update took to return (it hands the new version to every open watch). */
  setSnapshot: Trio;
  clocks: string;
}

/** The reconnect storm, for one server. */
interface StormResult {
  /** SIGKILL → the new process ready (serving its first snapshot). */
  restartMs: number;
  /** Ready → every proxy's stream re-opened on a connected session (negative: before ready). */
  liveMs?: number;
  /** Ready → every proxy holding and having ACKed the full config again. */
  resyncMs: number;
  /** How the end of the resync was recognised. */
  how: string;
  /** The new process: CPU seconds to ready and from ready to resynced, peak RSS (VmHWM). */
  cpuStart: number;
  cpuResync: number;
  peakRss: number;
  /** Admin endpoint latency during the storm (Isthmus), ms. */
  healthz?: { n: number; errors: number; p50: number; p99: number; max: number };
  /** Max of each storm gauge, undefined where the server does not expose it. */
  gauges?: Map<string, number | undefined>;
  /** Isthmus's /debug/syncz after the resync. */
  syncz?: string;
}

/** What one server's run produced: figures of the phases that completed, and why one failed. */
interface Outcome<R> {
  main?: R;
  storm?: StormResult;
  /** Short, for table cells ("failed: OOM at 11 GiB"); detail has the whole story and the logs. */
  failure?: string;
  detail?: string;
}

/** The failure of a run, short for the tables and in full for the report. */
function fail(out: Outcome<unknown>, why: string, logDir: string): void {
  out.detail = `${why} (logs: ${logDir})`;
  const first = why.split('\n')[0]!.replace(/;? log: \S+/g, '');
  out.failure = first.length > 72 ? `${first.slice(0, 71)}…` : first;
}

function cpuSince(a: ProcUsage, b: ProcUsage): number {
  return b.cpuS - a.cpuS;
}

const GiB = 2 ** 30;
function memGroup(role: string, flag: string): MemCgroup | undefined {
  const gib = Number(values[flag as 'sim-mem']);
  if (!(gib >= 0)) throw new Error(`--${flag} ${values[flag as 'sim-mem']}: GiB, 0 for no limit`);
  if (!gib) return undefined;
  return MemCgroup.create(role, Math.round(gib * GiB), (why) => progress(why, true));
}

/**
 * Why a run failed, for the table: the kernel's OOM kill in a memory group first (the process
 * over its limit), then a process killed by another SIGKILL, then the error itself.
 */
async function failureOf(e: Error, server: () => Proc | undefined, sim: Proc | undefined): Promise<string> {
  await sleep(300); // the exit of a killed process may be a little behind what noticed it
  const srv = server();
  // The kernel's kill leaves nothing in the process's own log: say it there too.
  const oom = (p: Proc, limit: string): void => fs.appendFileSync(p.logFile, `\n[bench] killed by the kernel: over its memory limit of ${limit}\n`);
  if (sim?.cgroup?.oomKilled) {
    oom(sim, sim.cgroup.limit);
    return `failed: simulator OOM at ${sim.cgroup.limit}`;
  }
  if (srv?.cgroup?.oomKilled) {
    oom(srv, srv.cgroup.limit);
    return `failed: OOM at ${srv.cgroup.limit}`;
  }
  for (const p of [srv, sim]) if (p?.exitSignal === 'SIGKILL' && !p.killedByUs) return `failed: ${p.name} killed by SIGKILL (out of memory?)`;
  const died = srv?.failure ?? sim?.failure;
  const why = died && died !== e.message ? `${died} (noticed as: ${e.message})` : e.message;
  return `failed: ${why}`;
}

/** A wait that also ends, with the reason, if one of these processes goes. */
function guard<T>(p: Promise<T>, ...others: (Proc | undefined)[]): Promise<T> {
  return Promise.race([p, ...others.filter((o) => o !== undefined).map((o) => o.lost)]);
}

function startSim(port: number, P: number, S: number, E: number, logDir: string, cgroup: MemCgroup | undefined, execArgv: string[] = []): Peer<FromSim, ToSim> {
  const args = ['--port', String(port), '--proxies', String(P), '--services', String(S), '--endpoints', String(E), ...(values.delta ? ['--delta'] : [])];
  return new Peer<FromSim, ToSim>('sim-proxies', path.join(HERE, 'sim-proxies.ts'), args, path.join(logDir, 'sim.log'), execArgv, undefined, cgroup);
}

/** Connects every simulated proxy; resolves when all hold the full config (ms from the first connect). */
async function fullSync(sim: Peer<FromSim, ToSim>, server: { lost: Promise<never> }, label: string, P: number, left: () => number): Promise<number> {
  let last = 'no progress report yet';
  let lost: (e: Error) => void = () => undefined;
  const failure = new Promise<never>((_, reject) => (lost = reject));
  sim.onMessage = (m) => {
    if (m.type !== 'progress') return;
    last = `${m.connected}/${P} answered, ${m.synced}/${P} hold the full config${m.failed ? `, ${m.failed} FAILED` : ''}`;
    progress(`${label} connecting: ${last}`);
    if (m.failed) lost(new Error(`${m.failed} simulated proxies lost their stream; log: ${sim.logFile}`));
  };
  sim.send({ type: 'connect' });
  const synced = await Promise.race([
    sim.wait('synced', 'every proxy to hold the full config', left()).catch((e: Error) => {
      throw new Error(`${e.message} (last progress: ${last})`);
    }),
    failure,
    server.lost,
  ]);
  sim.onMessage = undefined;
  endProgress();
  return Math.max(...synced.times) - synced.tStart;
}

let statusId = 0;
async function simStatus(sim: Peer<FromSim, ToSim>, left: () => number): Promise<SimStatus> {
  const id = ++statusId;
  sim.send({ type: 'status', id });
  return sim.wait('status', 'status', left(), (m) => m.id === id);
}

/** Polls the admin endpoint every HEALTHZ_EVERY_MS, each request on its own: a stall shows as latency. */
function pollHealthz(port: number): { stop: () => Promise<StormResult['healthz']> } {
  const lat: number[] = [];
  let errors = 0;
  const pending = new Set<Promise<void>>();
  const timer = setInterval(() => {
    const t0 = performance.now();
    const p: Promise<void> = fetch(`http://127.0.0.1:${port}${HEALTHZ}`, { signal: AbortSignal.timeout(HEALTHZ_TIMEOUT_MS) })
      .then((r) => r.arrayBuffer())
      .then(
        () => void lat.push(performance.now() - t0),
        () => {
          errors++;
          lat.push(performance.now() - t0);
        },
      )
      .finally(() => pending.delete(p));
    pending.add(p);
  }, HEALTHZ_EVERY_MS);
  return {
    stop: async () => {
      clearInterval(timer);
      await Promise.all(pending);
      return lat.length ? { n: lat.length, errors, ...stats(lat) } : undefined;
    },
  };
}

/** Samples the storm gauges from /metrics, one scrape at a time, keeping the max of each. */
function pollGauges(port: number): { stop: () => Promise<Map<string, number | undefined>> } {
  const max = new Map<string, number | undefined>(STORM_GAUGES.map((g) => [g, undefined]));
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(HEALTHZ_TIMEOUT_MS) });
        const text = await res.text();
        const m = parseMetrics(text);
        for (const g of STORM_GAUGES) {
          // Declared but without a sample: never set in this process, so 0.
          let sum: number | undefined = text.includes(`# TYPE ${g} `) ? 0 : undefined;
          for (const [k, v] of m) if (k === g || k.startsWith(`${g}{`)) sum = (sum ?? 0) + v;
          if (sum !== undefined) max.set(g, Math.max(max.get(g) ?? -Infinity, sum));
        }
      } catch {
        // a missed sample; healthz reports responsiveness
      }
      await sleep(500);
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
      return max;
    },
  };
}

let stormId = 0;

/**
 * The reconnect storm: SIGKILL the server, start a fresh one on the same ports, measure the
 * resync of every proxy. The end of the resync is, first of: every proxy got all four types
 * again on its new stream (and holds and ACKed them); for Isthmus, its syncz shows P streams
 * SYNCED on all four types while every proxy has its stream open and holds the full config
 * (Isthmus sends nothing to a proxy that claims the versions it has); or QUIET_MS with every
 * stream open and every proxy holding the full config, and nothing received.
 */
async function storm(o: {
  label: string;
  P: number;
  sim: Peer<FromSim, ToSim>;
  left: () => number;
  kill: () => Promise<void>;
  start: () => Promise<{ server: Proc; t: number; adminPort?: number }>;
}): Promise<StormResult> {
  const { label, P, sim, left } = o;
  const id = ++stormId;
  sim.send({ type: 'storm', id, cold: values['storm-cold'] });
  await sim.wait('storm-armed', 'the storm armed', left(), (m) => m.id === id);
  progress(`${label} storm: killing the server`, true);
  const tKill = now();
  await o.kill();
  progress(`${label} storm: starting a fresh server on the same port`, true);
  const { server, t: tReady, adminPort } = await o.start();
  const atReady = procUsage(server.pid);
  const healthz = adminPort ? pollHealthz(adminPort) : undefined;
  const gauges = adminPort ? pollGauges(adminPort) : undefined;
  let resynced: { t: number; how: string };
  let liveAt = 0;
  let health: StormResult['healthz'];
  let maxGauges: StormResult['gauges'];
  let done = false;
  let timer: NodeJS.Timeout | undefined;
  try {
    const strict = sim.wait('resynced', 'every proxy resynced', left(), (m) => m.id === id).then((m) => ({ t: Math.max(...m.times), how: 'every proxy got all four types again on its new stream' }));
    strict.catch(() => undefined);
    const polled = (async (): Promise<{ t: number; how: string }> => {
      for (;;) {
        await sleep(250);
        if (done) throw new Error('settled');
        const s = await simStatus(sim, left);
        if (!liveAt && s.live === P) liveAt = s.lastLive;
        progress(`${label} storm: ${((now() - tReady) / 1000).toFixed(1)} s since ready: ${s.live}/${P} streams open, ${s.resynced}/${P} resent everything, ${s.holding}/${P} hold the full config`);
        if (s.live !== P || s.holding !== P) continue;
        if (adminPort) {
          // Isthmus says when it is done: a quiet spell may only mean it has not read the requests yet.
          const z = await synczCount(adminPort).catch(() => undefined);
          if (z && z.synced === P && z.peers === P) return { t: now(), how: `Isthmus /debug/syncz: ${P} streams SYNCED on all four types, polled every 250 ms` };
          continue;
        }
        const quietFrom = Math.max(s.lastEvent, tReady);
        if (now() - quietFrom >= QUIET_MS) return { t: quietFrom, how: `every stream open and every proxy holding the full config, then ${QUIET_MS / 1000} s without a response` };
      }
    })();
    polled.catch(() => undefined);
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out waiting for the resync after the restart; log: ${sim.logFile}`)), left());
    });
    resynced = await Promise.race([strict, polled, server.lost, sim.lost, timeout]);
  } finally {
    done = true;
    clearTimeout(timer);
    endProgress();
    health = await healthz?.stop();
    maxGauges = await gauges?.stop();
  }
  if (!liveAt) {
    const s = await simStatus(sim, left);
    if (s.live === P) liveAt = s.lastLive;
  }
  const atEnd = procUsage(server.pid);
  const syncz = adminPort ? await synczCount(adminPort).then((z) => `${z.synced}/${z.streams} streams SYNCED on all four types, from ${z.peers} distinct TCP peers`, (e: Error) => e.message) : undefined;
  return {
    restartMs: tReady - tKill,
    liveMs: liveAt ? liveAt - tReady : undefined,
    resyncMs: resynced.t - tReady,
    how: resynced.how,
    cpuStart: atReady.cpuS,
    cpuResync: cpuSince(atReady, atEnd),
    peakRss: atEnd.peakRss,
    healthz: health,
    gauges: maxGauges,
    syncz,
  };
}

async function runSize(size: string, P: number, S: number, E: number, N: number, timeoutS: number): Promise<Outcome<Result>> {
  const deadline = Date.now() + timeoutS * 1000;
  const left = (capMs = Infinity): number => Math.min(capMs, deadline - Date.now());
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), `isthmus-bench-${size}-`));
  const label = `[${size} P=${P} S=${S} E=${E}${values.delta ? ' delta' : ''}]`;
  const prof = (name: string): string[] => (values.profile ? ['--cpu-prof', `--cpu-prof-dir=${logDir}`, `--cpu-prof-name=${name}.cpuprofile`] : []);
  const nodeFlags = values['isthmus-node-flags'].split(' ').filter(Boolean);
  if (values['keep-logs']) process.stderr.write(`${label} logs go to ${logDir}\n`);
  if (values.profile) process.stderr.write(`${label} CPU profiles go to ${logDir}\n`);
  const serverGroup = memGroup('isthmus', 'isthmus-mem');
  const simGroup = memGroup('sim', 'sim-mem');
  const childArgs = ['--services', String(S), '--endpoints', String(E)];
  let child = new Peer<FromChild, ToChild>('isthmus', path.join(HERE, 'isthmus-child.ts'), childArgs, path.join(logDir, 'isthmus.log'), ['--expose-gc', ...nodeFlags, ...prof('isthmus')], undefined, serverGroup, ISTHMUS_ENV);
  let sim: Peer<FromSim, ToSim> | undefined;
  const out: Outcome<Result> = {};
  try {
    progress(`${label} starting Isthmus`, true);
    const ready = await child.wait('ready', 'the first snapshot', left(120_000));
    const atReady = procUsage(child.pid);
    let memId = 0;
    const childMem = async (returnFreed = false): Promise<Memory> => {
      const id = ++memId;
      child.send({ type: 'memory', id, returnFreed });
      return (await child.wait('memory', 'memory', left(30_000), (m) => m.id === id)).memory;
    };
    // The baseline: the start-up's freed pages returned, as Isthmus does by itself when quiet.
    const before = await childMem(true);

    sim = startSim(ready.xdsPort, P, S, E, logDir, simGroup, prof('sim'));
    await guard(sim.wait('started', 'start', left(60_000)), child);
    const cc = await child.clockOffset((id) => ({ type: 'ping', id }), left(10_000));
    const cs = await sim.clockOffset((id) => ({ type: 'ping', id }), left(10_000));
    const clocks = `child ${cc.offset >= 0 ? '+' : ''}${cc.offset.toFixed(3)} ms, sim ${cs.offset >= 0 ? '+' : ''}${cs.offset.toFixed(3)} ms (IPC rtt ${Math.max(cc.rtt, cs.rtt).toFixed(2)} ms)`;

    const syncMs = await fullSync(sim, child, label, P, left);
    const atSync = procUsage(child.pid);

    // Cross-check on the server side: every stream SYNCED (ACKed) on every type.
    let syncz = '';
    for (let i = 0; ; i++) {
      const z = await synczCount(ready.adminPort);
      syncz = `${z.synced}/${z.streams} streams SYNCED on CDS, EDS, LDS, RDS, from ${z.peers} distinct TCP peers`;
      if (z.synced === P || i === 50) break;
      await sleep(200);
    }
    const syncedMem = await guard(childMem(), sim);
    // Isthmus returns freed pages only after 64 MiB of growth (src/memory.ts): below that there is nothing to wait for.
    const settled = syncedMem.rss - before.rss >= MEMORY_RETURN_DEFAULTS.growthBytes ? await guard(settle(ready.adminPort, () => childMem()), sim) : undefined;

    // Endpoint changes, one at a time, each awaited at every proxy.
    const lastProxy: number[] = [];
    const perProxy: number[] = [];
    const toSnapshot: number[] = [];
    const aggregate: number[] = [];
    const build: number[] = [];
    const flush: number[] = [];
    const claEncodes: number[] = [];
    const encodeKinds = new Map<string, number[]>();
    let edsBytes = 0;
    let metrics = await scrape(ready.adminPort);
    const applied: string[] = [];
    for (let i = 0; i < N; i++) {
      progress(`${label} endpoint change ${i + 1}/${N}`, i === 0);
      const service = (i * 7919 + 13) % S;
      const cluster = clusterOf(service);
      const address = `10.255.${(i >> 8) & 255}.${i & 255}`;
      sim.send({ type: 'marker', id: i, cluster, address });
      await guard(sim.wait('armed', 'marker armed', left(10_000), (m) => m.id === i), child);
      child.send({ type: 'change', id: i, service, endpoint: i % E, address });
      applied.push(`${service}:${i % E}:${address}`);
      const changed = await guard(child.wait('changed', 'the change applied', left(10_000), (m) => m.id === i), sim);
      const [snap, got] = await guard(
        Promise.all([child.wait('snapshot', 'a snapshot after the change', left(60_000)), sim.wait('received', `change ${i + 1} at every proxy`, left(120_000), (m) => m.id === i)]),
        child,
        sim,
      );
      const times = got.times.map((t) => t - changed.tApply);
      perProxy.push(...times);
      lastProxy.push(Math.max(...times));
      toSnapshot.push(snap.t - changed.tApply);
      aggregate.push(changed.tSet - changed.tApply);
      build.push(snap.buildMs);
      await sleep(100); // ACKs settle before the next change
      const next = await scrape(ready.adminPort);
      const enc = growth(metrics, next, ENCODES);
      claEncodes.push(enc.get(CLA) ?? 0);
      for (const [t, n] of enc) encodeKinds.set(t, [...(encodeKinds.get(t) ?? []), n]);
      const pushed = 'isthmus_xds_push_seconds_sum';
      flush.push(((next.get(pushed) ?? 0) - (metrics.get(pushed) ?? 0)) * 1000);
      edsBytes += growth(metrics, next, 'isthmus_xds_push_bytes_total').get('EDS') ?? 0;
      metrics = next;
    }
    endProgress();
    const encodes = [...encodeKinds]
      .map(([t, ns]) => `${t.split('.').pop()} ${Math.min(...ns)}${Math.max(...ns) !== Math.min(...ns) ? `-${Math.max(...ns)}` : ''}${ns.length < N ? ` (in ${ns.length}/${N})` : ''}`)
      .join(', ');
    const atEnd = procUsage(child.pid);
    const end = await guard(childMem(), sim);
    sim.send({ type: 'memory', id: 1 });
    const simMem = (await guard(sim.wait('memory', 'sim memory', left(10_000), (m) => m.id === 1), child)).memory;
    out.main = {
      size, P, S, E,
      initialBuildMs: ready.buildMs,
      syncz,
      perProxy: stats(perProxy),
      toSnapshot: stats(toSnapshot),
      aggregate: stats(aggregate),
      build: stats(build),
      flush: stats(flush),
      encodes,
      claEncodes,
      edsBytes: edsBytes / N,
      before,
      synced: syncedMem,
      settled,
      end,
      sim: simMem,
      clocks,
      usage: {
        syncMs,
        lastProxy: stats(lastProxy),
        cpuStart: atReady.cpuS,
        cpuSync: cpuSince(atReady, atSync),
        cpuChanges: cpuSince(atSync, atEnd),
        rssSynced: atSync.rss,
        peakRss: atEnd.peakRss,
        simPeakRss: simMem.peakRss,
      },
    };

    if (values.storm) {
      const s = sim;
      let restarts = 0;
      out.storm = await storm({
        label,
        P,
        sim: s,
        left,
        kill: () => child.kill(),
        start: async () => {
          // The registry kept the changes while the server was down: the new one starts from them.
          const args = [...childArgs, '--xds-port', String(ready.xdsPort), '--admin-port', String(ready.adminPort), '--apply', applied.join(',')];
          child = new Peer<FromChild, ToChild>('isthmus', path.join(HERE, 'isthmus-child.ts'), args, path.join(logDir, `isthmus-restart-${++restarts}.log`), ['--expose-gc', ...nodeFlags, ...prof(`isthmus-restart-${restarts}`)], undefined, serverGroup, ISTHMUS_ENV);
          const r = await guard(child.wait('ready', 'the restarted server', left(300_000)), s);
          return { server: child, t: r.t, adminPort: r.adminPort };
        },
      });
    }
  } catch (e) {
    // A child that died explains the failure better than what noticed it.
    fail(out, await failureOf(e as Error, () => child, sim), logDir);
  } finally {
    endProgress();
    await Promise.all([sim?.stop(), child.stop()]);
    serverGroup?.remove();
    simGroup?.remove();
    // Logs are kept for a failed run or a profiled one; they are named in the error.
    if (!out.failure && !values.profile && !values['keep-logs']) fs.rmSync(logDir, { recursive: true, force: true });
  }
  return out;
}

/** The same run against the go-control-plane peer: same simulated proxies, same changes. */
async function runPeer(bin: string, eds: 'linear' | 'snapshot', size: string, P: number, S: number, E: number, N: number, timeoutS: number): Promise<Outcome<PeerResult>> {
  const deadline = Date.now() + timeoutS * 1000;
  const left = (capMs = Infinity): number => Math.min(capMs, deadline - Date.now());
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), `isthmus-bench-${size}-gcp-`));
  const label = `[${size} P=${P} S=${S} E=${E}${values.delta ? ' delta' : ''} go-control-plane, ${eds} EDS]`;
  const peerGroup = memGroup('peer', 'peer-mem');
  const simGroup = memGroup('sim', 'sim-mem');
  let peer: Peer<FromGcp, ToGcp> = startGcp(bin, S, E, eds, path.join(logDir, 'gcp.log'), 0, peerGroup);
  let sim: Peer<FromSim, ToSim> | undefined;
  const out: Outcome<PeerResult> = {};
  try {
    progress(`${label} starting go-control-plane`, true);
    const ready = await peer.wait('ready', 'listening', left(120_000));
    const atReady = procUsage(peer.pid);
    sim = startSim(ready.xdsPort, P, S, E, logDir, simGroup);
    await guard(sim.wait('started', 'start', left(60_000)), peer);
    const cc = await peer.clockOffset((id) => ({ type: 'ping', id }), left(10_000));
    const cs = await sim.clockOffset((id) => ({ type: 'ping', id }), left(10_000));
    const clocks = `peer ${cc.offset >= 0 ? '+' : ''}${cc.offset.toFixed(3)} ms, sim ${cs.offset >= 0 ? '+' : ''}${cs.offset.toFixed(3)} ms (rtt ${Math.max(cc.rtt, cs.rtt).toFixed(2)} ms)`;

    const syncMs = await fullSync(sim, peer, label, P, left);
    const atSync = procUsage(peer.pid);

    const lastProxy: number[] = [];
    const perProxy: number[] = [];
    const setSnapshot: number[] = [];
    const applied: string[] = [];
    for (let i = 0; i < N; i++) {
      progress(`${label} endpoint change ${i + 1}/${N}`, i === 0);
      const service = (i * 7919 + 13) % S;
      const address = `10.255.${(i >> 8) & 255}.${i & 255}`;
      sim.send({ type: 'marker', id: i, cluster: clusterOf(service), address });
      await guard(sim.wait('armed', 'marker armed', left(10_000), (m) => m.id === i), peer);
      peer.send({ type: 'change', id: i, service, endpoint: i % E, address });
      applied.push(`${service}:${i % E}:${address}`);
      // SetSnapshot hands the response to every watch before it returns: it may take long.
      const changed = await guard(peer.wait('changed', 'the change applied', left(120_000), (m) => m.id === i), sim);
      setSnapshot.push(changed.tSet - changed.tApply);
      const got = await guard(sim.wait('received', `change ${i + 1} at every proxy`, left(120_000), (m) => m.id === i), peer);
      const times = got.times.map((t) => t - changed.tApply);
      perProxy.push(...times);
      lastProxy.push(Math.max(...times));
      await sleep(100); // ACKs settle before the next change
    }
    endProgress();
    const atEnd = procUsage(peer.pid);
    sim.send({ type: 'memory', id: 1 });
    const simMem = (await guard(sim.wait('memory', 'sim memory', left(10_000), (m) => m.id === 1), peer)).memory;
    out.main = {
      size,
      eds,
      usage: {
        syncMs,
        lastProxy: stats(lastProxy),
        cpuStart: atReady.cpuS,
        cpuSync: cpuSince(atReady, atSync),
        cpuChanges: cpuSince(atSync, atEnd),
        rssSynced: atSync.rss,
        peakRss: atEnd.peakRss,
        simPeakRss: simMem.peakRss,
      },
      perProxy: stats(perProxy),
      setSnapshot: stats(setSnapshot),
      clocks,
    };

    if (values.storm) {
      const s = sim;
      let restarts = 0;
      out.storm = await storm({
        label,
        P,
        sim: s,
        left,
        kill: () => peer.kill(),
        start: async () => {
          peer = startGcp(bin, S, E, eds, path.join(logDir, `gcp-restart-${++restarts}.log`), ready.xdsPort, peerGroup, applied.join(','));
          const r = await guard(peer.wait('ready', 'the restarted peer', left(120_000)), s);
          return { server: peer, t: r.t };
        },
      });
    }
  } catch (e) {
    fail(out, await failureOf(e as Error, () => peer, sim), logDir);
  } finally {
    endProgress();
    await Promise.all([sim?.stop(), peer.stop()]);
    peerGroup?.remove();
    simGroup?.remove();
    if (!out.failure) fs.rmSync(logDir, { recursive: true, force: true });
  }
  return out;
}

function reportPeer(r: PeerResult, N: number): void {
  const u = r.usage;
  process.stdout.write(
    [
      `== ${r.size}${values.delta ? ' (Delta ADS)' : ' (SotW ADS)'}: go-control-plane (${r.eds} cache for EDS) ==`,
      `all proxies hold the full config    ${ms(u.syncMs)} after the first connect`,
      `one endpoint change → all proxies   ${trio(u.lastProxy)}   (N=${N}, no debounce)`,
      `  per proxy delivery (N×P)          ${trio(r.perProxy)}`,
      `  ${r.eds === 'linear' ? 'LinearCache.UpdateResource' : 'SnapshotCache.SetSnapshot'} call  ${trio(r.setSnapshot)}`,
      `CPU: start / sync / ${N} changes     ${u.cpuStart.toFixed(2)} / ${u.cpuSync.toFixed(2)} / ${u.cpuChanges.toFixed(2)} s`,
      `RSS after sync / peak RSS           ${mib(u.rssSynced)} / ${mib(u.peakRss)}`,
      `simulated proxies' peak RSS         ${mib(u.simPeakRss)}`,
      `clock offsets vs runner             ${r.clocks}`,
      '',
    ].join('\n') + '\n',
  );
}

function reportStorm(who: string, size: string, o: Outcome<unknown>): void {
  const s = o.storm;
  if (!values.storm || (!s && !o.main)) return;
  const lines = [`== ${size}: reconnect storm${values['storm-cold'] ? ' (cold: proxies hold nothing)' : ''}, ${who} ==`];
  if (!s) lines.push(o.detail ?? 'not run');
  else {
    lines.push(
      `SIGKILL → fresh process ready       ${ms(s.restartMs)}`,
      `ready → every stream re-opened      ${s.liveMs === undefined ? '(resynced before the first look)' : ms(s.liveMs)}`,
      `ready → all P hold + ACKed again    ${ms(s.resyncMs)}   (${s.how})`,
      `CPU of the new process              ${s.cpuStart.toFixed(2)} s to ready, ${s.cpuResync.toFixed(2)} s ready → resynced`,
      `peak RSS of the new process         ${mib(s.peakRss)}`,
    );
    if (s.healthz) lines.push(`admin ${HEALTHZ} during the storm   ${trio(s.healthz)}   (${s.healthz.n} requests every ${HEALTHZ_EVERY_MS} ms, ${s.healthz.errors} errors)`);
    for (const [g, v] of s.gauges ?? []) lines.push(`max ${g}`.padEnd(36) + (v === undefined ? 'not in /metrics' : String(v)));
    if (s.syncz) lines.push(`server view after the storm         ${s.syncz}`);
  }
  process.stdout.write(lines.join('\n') + '\n\n');
}

/** Isthmus beside the peer, one row per figure, with the Isthmus/peer ratio. */
function sideBySide(pairs: { size: string; r: Outcome<Result>; g?: Outcome<PeerResult> }[]): void {
  const peerName = pairs.find((p) => p.g?.main)?.g?.main?.eds === 'snapshot' ? 'go-control-plane (snapshot EDS)' : 'go-control-plane (linear EDS)';
  const rows: string[] = [`| size | figure | Isthmus | ${peerName} | Isthmus / peer |`, '| --- | --- | ---: | ---: | ---: |'];
  for (const { size, r, g } of pairs) {
    /** One figure: pick reads it from a result (pickB, if given, from the peer's). */
    const row = <T>(fig: string, a: T | undefined, b: T | undefined, pick: (x: T) => number | undefined, fmt: (v: number) => string, failA?: string, failB?: string, pickB = pick): void => {
      const x = a === undefined ? undefined : pick(a);
      const y = b === undefined ? undefined : pickB(b);
      const cell = (v: number | undefined, fail?: string): string => (v !== undefined ? fmt(v) : (fail ?? '—'));
      const ratio = x === undefined || y === undefined ? '—' : y > 0 ? `${(x / y).toFixed(2)}×` : '∞';
      rows.push(`| ${size} | ${fig} | ${cell(x, failA)} | ${cell(y, failB)} | ${ratio} |`);
    };
    const sec = (v: number): string => `${v.toFixed(2)} s`;
    const msf = (v: number): string => `${v.toFixed(0)} ms`;
    const mb = (v: number): string => `${(v / 1048576).toFixed(0)} MiB`;
    const a = r.main?.usage;
    const b = g?.main?.usage;
    const fa = r.main ? undefined : r.failure;
    const fb = g && !g.main ? g.failure : undefined;
    const u = (fig: string, pick: (x: Usage) => number, fmt: (v: number) => string, pickB?: (x: Usage) => number): void => row(fig, a, b, pick, fmt, fa, fb, pickB);
    u('full sync (all P ACKed)', (x) => x.syncMs / 1000, sec);
    u('change → all, p50', (x) => x.lastProxy.p50, msf);
    u('change → all, p99', (x) => x.lastProxy.p99, msf);
    u('change → all, max', (x) => x.lastProxy.max, msf);
    u(`change → all, p50 minus Isthmus's ${DEBOUNCE_QUIET_MS} ms debounce`, (x) => x.lastProxy.p50 - DEBOUNCE_QUIET_MS, msf, (x) => x.lastProxy.p50);
    u('change → all, p99 minus debounce', (x) => x.lastProxy.p99 - DEBOUNCE_QUIET_MS, msf, (x) => x.lastProxy.p99);
    u('CPU to start (build config)', (x) => x.cpuStart, sec);
    u('CPU during full sync', (x) => x.cpuSync, sec);
    u('CPU for the N changes', (x) => x.cpuChanges, sec);
    u('CPU total', (x) => x.cpuStart + x.cpuSync + x.cpuChanges, sec);
    u('RSS after sync', (x) => x.rssSynced, mb);
    u('peak RSS (VmHWM)', (x) => x.peakRss, mb);
    u("simulator's peak RSS", (x) => x.simPeakRss, mb);
    if (values.storm) {
      const sa = r.storm;
      const sb = g?.storm;
      const ffa = sa ? undefined : (r.failure ?? 'not run');
      const ffb = g && !sb ? (g.failure ?? 'not run') : undefined;
      const st = (fig: string, pick: (x: StormResult) => number | undefined, fmt: (v: number) => string): void => row(fig, sa, sb, pick, fmt, ffa, ffb);
      st('storm: SIGKILL → fresh server ready', (x) => x.restartMs / 1000, sec);
      st('storm: ready → all P streams re-opened', (x) => (x.liveMs === undefined ? undefined : x.liveMs / 1000), sec);
      st('storm: ready → all P hold + ACKed the full config', (x) => x.resyncMs / 1000, sec);
      st('storm: CPU ready → resynced', (x) => x.cpuResync, sec);
      st('storm: peak RSS of the new process', (x) => x.peakRss, mb);
      st(`storm: admin ${HEALTHZ} p99 (every ${HEALTHZ_EVERY_MS} ms)`, (x) => x.healthz?.p99, msf);
      st(`storm: admin ${HEALTHZ} max`, (x) => x.healthz?.max, msf);
      for (const gname of STORM_GAUGES) row(`storm: max ${gname}`, sa, sb, (x) => x.gauges?.get(gname), (v) => String(v), sa ? 'not in /metrics' : ffa, ffb);
    }
  }
  process.stdout.write(rows.join('\n') + '\n\n');
}

/** Growth of RSS minus the committed V8 heap, per proxy: connection state in native memory. */
function nativePerProxy(r: Result): number {
  return (r.synced.rss - r.synced.heapTotal - (r.before.rss - r.before.heapTotal)) / r.P;
}

function report(r: Result, N: number): void {
  const u = r.usage;
  const perProxyRss = (r.synced.rss - r.before.rss) / r.P;
  const lines = [
    `== ${r.size}${values.delta ? ' (Delta ADS)' : ' (SotW ADS)'}: P=${r.P} proxies, S=${r.S} services, E=${r.E} endpoints each (${r.S * r.E} endpoints) ==`,
    `Isthmus allocator                   ${ALLOCATOR}`,
    `initial snapshot build              ${ms(r.initialBuildMs)}`,
    `all proxies hold the full config    ${ms(u.syncMs)} after the first connect`,
    `server view after sync              ${r.syncz}`,
    `one endpoint change → all proxies   ${trio(u.lastProxy)}   (N=${N}, includes ${DEBOUNCE_QUIET_MS} ms debounce)`,
    `  same, minus the debounce          ${trio(u.lastProxy, DEBOUNCE_QUIET_MS)}`,
    `  per proxy delivery (N×P)          ${trio(r.perProxy)}`,
    `  registry.set → model (sync)       ${trio(r.aggregate)}`,
    `  change → snapshot published       ${trio(r.toSnapshot)}`,
    `  xDS cache build per change        ${trio(r.build)}`,
    `  snapshot → all streams written     ${trio(r.flush)}   (server's isthmus_xds_push_seconds)`,
    `resources encoded per change        ${r.encodes}`,
    `  ClusterLoadAssignment per change  ${[...new Set(r.claEncodes)].join(', ')} ${r.claEncodes.every((n) => n === 1) ? '(OK: exactly 1)' : '(EXPECTED exactly 1)'}`,
    `EDS bytes pushed per change         ${(r.edsBytes / 1024).toFixed(1)} KiB (${(r.edsBytes / r.P).toFixed(0)} B per proxy)`,
    `Isthmus RSS before proxies          ${mib(r.before.rss)} (heap ${mib(r.before.heapUsed)}; the start-up's freed heap pages returned)`,
    `Isthmus RSS / heap after sync       ${mib(r.synced.rss)} / ${mib(r.synced.heapUsed)} (external ${mib(r.synced.external)}, array buffers ${mib(r.synced.arrayBuffers)})`,
    `Isthmus RSS / heap at end           ${mib(r.end.rss)} / ${mib(r.end.heapUsed)}, peak RSS ${mib(r.end.peakRss)}`,
    `memory per connected proxy          ${(perProxyRss / 1024).toFixed(1)} KiB RSS, ${((r.synced.heapUsed - r.before.heapUsed) / r.P / 1024).toFixed(1)} KiB heap (after GC)`,
    r.settled
      ? `  once Isthmus returned freed pages ${((r.settled.memory.rss - r.before.rss) / r.P / 1024).toFixed(1)} KiB RSS per proxy (RSS ${mib(r.before.rss)} → ${mib(r.settled.memory.rss)}; it returned ${mib(r.settled.returnedBytes)} by itself ${(r.settled.waitedMs / 1000).toFixed(1)} s after the sync)`
      : r.synced.rss - r.before.rss < MEMORY_RETURN_DEFAULTS.growthBytes
        ? `  once Isthmus returned freed pages (not measured: RSS grew less than the ${mib(MEMORY_RETURN_DEFAULTS.growthBytes)} after which it does)`
        : `  once Isthmus returned freed pages (it returned nothing within ${SETTLE_MS / 1000} s of the sync)`,
    `  RSS outside the V8 heap           ${(nativePerProxy(r) / 1024).toFixed(1)} KiB per proxy (the rest of the RSS growth is heap the GC keeps committed: ${mib(r.before.heapTotal)} → ${mib(r.synced.heapTotal)})`,
    `simulated proxies' process          RSS ${mib(r.sim.rss)} (${(r.sim.rss / r.P / 1024).toFixed(0)} KiB per proxy), peak ${mib(r.sim.peakRss)}`,
    `clock offsets vs runner             ${r.clocks}`,
    '',
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

function table(rs: { size: string; o: Outcome<Result> }[]): void {
  const row = ({ size, o }: { size: string; o: Outcome<Result> }): string => {
    const r = o.main;
    if (!r) return `| ${size} | ${o.failure ?? '—'} |`;
    const l = r.usage.lastProxy;
    return `| ${r.size} | ${r.P} | ${r.S} | ${r.E} | ${(r.usage.syncMs / 1000).toFixed(2)} s | ${l.p50.toFixed(0)} / ${l.p99.toFixed(0)} / ${l.max.toFixed(0)} ms | ${(l.p50 - DEBOUNCE_QUIET_MS).toFixed(0)} / ${(l.p99 - DEBOUNCE_QUIET_MS).toFixed(0)} / ${(l.max - DEBOUNCE_QUIET_MS).toFixed(0)} ms | ${[...new Set(r.claEncodes)].join(',')} | ${mib(r.synced.rss)} / ${mib(r.synced.heapUsed)} | ${mib(r.end.peakRss)} | ${((r.synced.rss - r.before.rss) / r.P / 1024).toFixed(0)} / ${(nativePerProxy(r) / 1024).toFixed(0)} / ${((r.synced.heapUsed - r.before.heapUsed) / r.P / 1024).toFixed(0)} KiB | ${r.settled ? `${((r.settled.memory.rss - r.before.rss) / r.P / 1024).toFixed(0)} KiB` : '—'} |`;
  };
  process.stdout.write(
    [
      '| size | P | S | E | full sync | change→all p50/p99/max | minus debounce | CLA encodes/change | RSS / heap after sync | peak RSS | RSS / native / heap per proxy | RSS per proxy settled |',
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
      ...rs.map(row),
      '',
    ].join('\n'),
  );
}

async function main(): Promise<number> {
  if (values['storm-cold']) values.storm = true;
  const N = Number(values.changes);
  const timeoutS = Number(values.timeout);
  const sizes = values.size.split(',');
  if (!['gcp', 'gcp-snapshot', 'none'].includes(values.peer)) throw new Error(`--peer ${values.peer}: gcp, gcp-snapshot or none`);
  const eds = values.peer === 'gcp-snapshot' ? 'snapshot' : 'linear';
  const bin = values.peer !== 'none' ? buildGcp((line) => progress(line, true)) : undefined;
  const results: { size: string; o: Outcome<Result> }[] = [];
  const pairs: { size: string; r: Outcome<Result>; g?: Outcome<PeerResult> }[] = [];
  for (const size of sizes) {
    const base = SIZES[size];
    if (!base) throw new Error(`unknown --size ${size} (one of ${Object.keys(SIZES).join(', ')})`);
    const P = Number(values.proxies ?? base.P);
    const S = Number(values.services ?? base.S);
    const E = Number(values.endpoints ?? base.E);
    if (!(P > 0 && S > 0 && E > 0 && N > 0 && timeoutS > 0)) throw new Error('sizes, --changes and --timeout must be positive numbers');
    const started = now();
    const r = await runSize(size, P, S, E, N, timeoutS);
    if (r.main) report(r.main, N);
    if (r.detail && !r.main) process.stdout.write(`== ${size}: Isthmus ${r.detail}\n\n`);
    reportStorm('Isthmus', size, r);
    results.push({ size, o: r });
    const g = bin ? await runPeer(bin, eds, size, P, S, E, N, timeoutS) : undefined;
    if (g?.main) reportPeer(g.main, N);
    if (g?.detail && !g.main) process.stdout.write(`== ${size}: go-control-plane ${g.detail}\n\n`);
    if (g) reportStorm('go-control-plane', size, g);
    pairs.push({ size, r, g });
    process.stderr.write(`(${size} took ${((now() - started) / 1000).toFixed(1)} s)\n`);
  }
  table(results);
  if (pairs.some((p) => p.g)) sideBySide(pairs);
  if (!results.every(({ o }) => o.main?.claEncodes.every((n) => n === 1) ?? true)) return 2;
  return pairs.some((p) => p.r.failure || p.g?.failure) ? 3 : 0;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    process.stderr.write(`\n${signal}: stopping\n`);
    process.exit(130); // the exit hooks kill the children and remove the memory groups
  });
}
main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    endProgress();
    process.stderr.write(`bench failed: ${(e as Error).message}\n`);
    process.exit(1);
  },
);
