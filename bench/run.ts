// Benchmark: Isthmus (own process) serving P simulated Envoys (own process) over loopback,
// then, in the same run, the go-control-plane peer (bench/gcp) serving the same config to
// the same simulated Envoys; reported side by side with Isthmus/peer ratios.
// Usage: node bench/run.ts [--size small|medium|large[,…]] [--proxies P] [--services S]
//        [--endpoints E] [--changes N] [--timeout SECONDS] [--profile]
//        [--peer gcp|gcp-snapshot|none] [--delta]
// --delta: the simulated proxies speak Delta ADS instead of SotW (to both servers).
// --peer gcp (default): go-control-plane with a LinearCache for EDS and a SnapshotCache for
// the rest; gcp-snapshot: one SnapshotCache for everything (SotW resends every assignment).
// --profile writes V8 CPU profiles of both Node children next to their logs.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { clusterOf, type FromChild, type FromSim, type Memory, now, type ToChild, type ToSim } from './messages.ts';
import { Peer, procUsage, type ProcUsage } from './procs.ts';
import { buildGcp, startGcp } from './gcp-peer.ts';

const SIZES: Record<string, { P: number; S: number; E: number }> = {
  small: { P: 100, S: 100, E: 10 },
  medium: { P: 1000, S: 1000, E: 10 },
  large: { P: 1000, S: 5000, E: 20 },
};
const DEBOUNCE_QUIET_MS = 100;
const ENCODES = 'isthmus_xds_resource_encodes_total';
const CLA = 'envoy.config.endpoint.v3.ClusterLoadAssignment';
const HERE = path.dirname(new URL(import.meta.url).pathname);

const { values } = parseArgs({
  options: {
    size: { type: 'string', default: 'small' },
    proxies: { type: 'string' },
    services: { type: 'string' },
    endpoints: { type: 'string' },
    changes: { type: 'string', default: '20' },
    timeout: { type: 'string', default: '300' },
    profile: { type: 'boolean', default: false },
    peer: { type: 'string', default: 'gcp' },
    delta: { type: 'boolean', default: false },
  },
});

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

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}
function stats(xs: number[]): { p50: number; p99: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  return { p50: pct(s, 50), p99: pct(s, 99), max: s[s.length - 1]! };
}
const ms = (x: number): string => `${x.toFixed(1)} ms`;
const mib = (b: number): string => `${(b / 1024 / 1024).toFixed(1)} MiB`;
const trio = (s: { p50: number; p99: number; max: number }, minus = 0): string =>
  `p50 ${ms(s.p50 - minus)}  p99 ${ms(s.p99 - minus)}  max ${ms(s.max - minus)}`;

/** GET from Isthmus's admin port, with the cause in the error. */
async function admin(port: number, p: string): Promise<Response> {
  try {
    return await fetch(`http://127.0.0.1:${port}${p}`);
  } catch (e) {
    throw new Error(`Isthmus admin ${p} did not answer: ${String((e as Error).cause ?? e)}`, { cause: e });
  }
}

async function scrape(adminPort: number): Promise<Map<string, number>> {
  const text = await (await admin(adminPort, '/metrics')).text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+(?:\{[^}]*\})?) ([0-9.e+-]+)$/.exec(line);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
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

interface Result {
  size: string;
  P: number;
  S: number;
  E: number;
  initialBuildMs: number;
  syncMs: number;
  syncz: string;
  lastProxy: { p50: number; p99: number; max: number };
  perProxy: { p50: number; p99: number; max: number };
  toSnapshot: { p50: number; p99: number; max: number };
  aggregate: { p50: number; p99: number; max: number };
  build: { p50: number; p99: number; max: number };
  flush: { p50: number; p99: number; max: number };
  encodes: string;
  claEncodes: number[];
  edsBytes: number;
  before: Memory;
  synced: Memory;
  end: Memory;
  sim: Memory;
  clocks: string;
  usage: Usage;
}

/** What is measured the same way for both control planes, from /proc and the simulated proxies. */
interface Usage {
  syncMs: number;
  lastProxy: { p50: number; p99: number; max: number };
  /** CPU seconds of the server process: start → ready, → all synced, → after the N changes. */
  cpuStart: number;
  cpuSync: number;
  cpuChanges: number;
  /** RSS when every proxy is synced, and peak RSS (VmHWM) at the end. */
  rssSynced: number;
  peakRss: number;
}

interface PeerResult {
  size: string;
  eds: string;
  usage: Usage;
  perProxy: { p50: number; p99: number; max: number };
  /** How long the cache update took to return (it hands the new version to every open watch). */
  setSnapshot: { p50: number; p99: number; max: number };
  clocks: string;
}

function cpuSince(a: ProcUsage, b: ProcUsage): number {
  return b.cpuS - a.cpuS;
}

async function runSize(size: string, P: number, S: number, E: number, N: number, timeoutS: number): Promise<Result> {
  const deadline = Date.now() + timeoutS * 1000;
  const left = (capMs = Infinity): number => Math.min(capMs, deadline - Date.now());
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), `isthmus-bench-${size}-`));
  const label = `[${size} P=${P} S=${S} E=${E}${values.delta ? ' delta' : ''}]`;
  const prof = (name: string): string[] => (values.profile ? ['--cpu-prof', `--cpu-prof-dir=${logDir}`, `--cpu-prof-name=${name}.cpuprofile`] : []);
  if (values.profile) process.stderr.write(`${label} CPU profiles go to ${logDir}\n`);
  const child = new Peer<FromChild, ToChild>('isthmus', path.join(HERE, 'isthmus-child.ts'), ['--services', String(S), '--endpoints', String(E)], path.join(logDir, 'isthmus.log'), ['--expose-gc', ...prof('isthmus')]);
  let sim: Peer<FromSim, ToSim> | undefined;
  let ok = false;
  try {
    progress(`${label} starting Isthmus`, true);
    const ready = await child.wait('ready', 'the first snapshot', left(120_000));
    const atReady = procUsage(child.pid);
    let memId = 0;
    const childMem = async (): Promise<Memory> => {
      const id = ++memId;
      child.send({ type: 'memory', id });
      return (await child.wait('memory', 'memory', left(30_000), (m) => m.id === id)).memory;
    };
    const before = await childMem();

    sim = new Peer<FromSim, ToSim>('sim-proxies', path.join(HERE, 'sim-proxies.ts'), ['--port', String(ready.xdsPort), '--proxies', String(P), '--services', String(S), '--endpoints', String(E), ...(values.delta ? ['--delta'] : [])], path.join(logDir, 'sim.log'), prof('sim'));
    await sim.wait('started', 'start', left(60_000));
    const cc = await child.clockOffset((id) => ({ type: 'ping', id }), left(10_000));
    const cs = await sim.clockOffset((id) => ({ type: 'ping', id }), left(10_000));
    const clocks = `child ${cc.offset >= 0 ? '+' : ''}${cc.offset.toFixed(3)} ms, sim ${cs.offset >= 0 ? '+' : ''}${cs.offset.toFixed(3)} ms (IPC rtt ${Math.max(cc.rtt, cs.rtt).toFixed(2)} ms)`;

    let last = 'no progress report yet';
    let lost: (e: Error) => void = () => undefined;
    const failure = new Promise<never>((_, reject) => (lost = reject));
    sim.onMessage = (m) => {
      if (m.type !== 'progress') return;
      last = `${m.connected}/${P} answered, ${m.synced}/${P} hold the full config${m.failed ? `, ${m.failed} FAILED` : ''}`;
      progress(`${label} connecting: ${last}`);
      if (m.failed) lost(new Error(`${m.failed} simulated proxies lost their stream; log: ${sim!.logFile}`));
    };
    sim.send({ type: 'connect' });
    const synced = await Promise.race([
      sim.wait('synced', 'every proxy to hold the full config', left()).catch((e: Error) => {
        throw new Error(`${e.message} (last progress: ${last})`);
      }),
      failure,
    ]);
    const syncMs = Math.max(...synced.times) - synced.tStart;
    const atSync = procUsage(child.pid);
    endProgress();

    // Cross-check on the server side: every stream SYNCED (ACKed) on every type.
    let syncz = '';
    for (let i = 0; ; i++) {
      const conns = (await (await admin(ready.adminPort, '/debug/syncz')).json()) as { peer: string; types: { status: string }[] }[];
      const ok = conns.filter((c) => c.types.length === 4 && c.types.every((t) => t.status === 'SYNCED')).length;
      syncz = `${ok}/${conns.length} streams SYNCED on CDS, EDS, LDS, RDS, from ${new Set(conns.map((c) => c.peer)).size} distinct TCP peers`;
      if (ok === P || i === 50) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const syncedMem = await childMem();

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
    for (let i = 0; i < N; i++) {
      progress(`${label} endpoint change ${i + 1}/${N}`, i === 0);
      const service = (i * 7919 + 13) % S;
      const cluster = clusterOf(service);
      const address = `10.255.${(i >> 8) & 255}.${i & 255}`;
      sim.send({ type: 'marker', id: i, cluster, address });
      await sim.wait('armed', 'marker armed', left(10_000), (m) => m.id === i);
      child.send({ type: 'change', id: i, service, endpoint: i % E, address });
      const changed = await child.wait('changed', 'the change applied', left(10_000), (m) => m.id === i);
      const [snap, got] = await Promise.all([
        child.wait('snapshot', 'a snapshot after the change', left(60_000)),
        sim.wait('received', `change ${i + 1} at every proxy`, left(120_000), (m) => m.id === i),
      ]);
      const times = got.times.map((t) => t - changed.tApply);
      perProxy.push(...times);
      lastProxy.push(Math.max(...times));
      toSnapshot.push(snap.t - changed.tApply);
      aggregate.push(changed.tSet - changed.tApply);
      build.push(snap.buildMs);
      await new Promise((r) => setTimeout(r, 100)); // ACKs settle before the next change
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
    const end = await childMem();
    sim.send({ type: 'memory', id: 1 });
    const simMem = (await sim.wait('memory', 'sim memory', left(10_000), (m) => m.id === 1)).memory;
    ok = true;
    return {
      size, P, S, E,
      initialBuildMs: ready.buildMs,
      syncMs,
      syncz,
      lastProxy: stats(lastProxy),
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
      },
    };
  } catch (e) {
    // A child that died explains the failure better than what noticed it.
    await new Promise((r) => setTimeout(r, 200));
    const died = child.failure ?? sim?.failure;
    if (died && died !== (e as Error).message) throw new Error(`${died}\n(noticed as: ${(e as Error).message})`, { cause: e });
    throw e;
  } finally {
    endProgress();
    await Promise.all([sim?.stop(), child.stop()]);
    // Logs are kept for a failed run or a profiled one; they are named in the error.
    if (ok && !values.profile) fs.rmSync(logDir, { recursive: true, force: true });
  }
}

/** The same run against the go-control-plane peer: same simulated proxies, same changes. */
async function runPeer(bin: string, eds: 'linear' | 'snapshot', size: string, P: number, S: number, E: number, N: number, timeoutS: number): Promise<PeerResult> {
  const deadline = Date.now() + timeoutS * 1000;
  const left = (capMs = Infinity): number => Math.min(capMs, deadline - Date.now());
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), `isthmus-bench-${size}-gcp-`));
  const label = `[${size} P=${P} S=${S} E=${E}${values.delta ? ' delta' : ''} go-control-plane, ${eds} EDS]`;
  const peer = startGcp(bin, S, E, eds, path.join(logDir, 'gcp.log'));
  let sim: Peer<FromSim, ToSim> | undefined;
  let ok = false;
  try {
    progress(`${label} starting go-control-plane`, true);
    const ready = await peer.wait('ready', 'listening', left(120_000));
    const atReady = procUsage(peer.pid);
    sim = new Peer<FromSim, ToSim>('sim-proxies', path.join(HERE, 'sim-proxies.ts'), ['--port', String(ready.xdsPort), '--proxies', String(P), '--services', String(S), '--endpoints', String(E), ...(values.delta ? ['--delta'] : [])], path.join(logDir, 'sim.log'));
    await sim.wait('started', 'start', left(60_000));
    const cc = await peer.clockOffset((id) => ({ type: 'ping', id }), left(10_000));
    const cs = await sim.clockOffset((id) => ({ type: 'ping', id }), left(10_000));
    const clocks = `peer ${cc.offset >= 0 ? '+' : ''}${cc.offset.toFixed(3)} ms, sim ${cs.offset >= 0 ? '+' : ''}${cs.offset.toFixed(3)} ms (rtt ${Math.max(cc.rtt, cs.rtt).toFixed(2)} ms)`;

    let last = 'no progress report yet';
    let lost: (e: Error) => void = () => undefined;
    const failure = new Promise<never>((_, reject) => (lost = reject));
    sim.onMessage = (m) => {
      if (m.type !== 'progress') return;
      last = `${m.connected}/${P} answered, ${m.synced}/${P} hold the full config${m.failed ? `, ${m.failed} FAILED` : ''}`;
      progress(`${label} connecting: ${last}`);
      if (m.failed) lost(new Error(`${m.failed} simulated proxies lost their stream; log: ${sim!.logFile}`));
    };
    sim.send({ type: 'connect' });
    const synced = await Promise.race([
      sim.wait('synced', 'every proxy to hold the full config', left()).catch((e: Error) => {
        throw new Error(`${e.message} (last progress: ${last})`);
      }),
      failure,
    ]);
    const syncMs = Math.max(...synced.times) - synced.tStart;
    const atSync = procUsage(peer.pid);
    endProgress();

    const lastProxy: number[] = [];
    const perProxy: number[] = [];
    const setSnapshot: number[] = [];
    for (let i = 0; i < N; i++) {
      progress(`${label} endpoint change ${i + 1}/${N}`, i === 0);
      const service = (i * 7919 + 13) % S;
      const address = `10.255.${(i >> 8) & 255}.${i & 255}`;
      sim.send({ type: 'marker', id: i, cluster: clusterOf(service), address });
      await sim.wait('armed', 'marker armed', left(10_000), (m) => m.id === i);
      peer.send({ type: 'change', id: i, service, endpoint: i % E, address });
      // SetSnapshot hands the response to every watch before it returns: it may take long.
      const changed = await peer.wait('changed', 'the change applied', left(120_000), (m) => m.id === i);
      setSnapshot.push(changed.tSet - changed.tApply);
      const got = await sim.wait('received', `change ${i + 1} at every proxy`, left(120_000), (m) => m.id === i);
      const times = got.times.map((t) => t - changed.tApply);
      perProxy.push(...times);
      lastProxy.push(Math.max(...times));
      await new Promise((r) => setTimeout(r, 100)); // ACKs settle before the next change
    }
    endProgress();
    const atEnd = procUsage(peer.pid);
    ok = true;
    return {
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
      },
      perProxy: stats(perProxy),
      setSnapshot: stats(setSnapshot),
      clocks,
    };
  } catch (e) {
    await new Promise((r) => setTimeout(r, 200));
    const died = peer.failure ?? sim?.failure;
    if (died && died !== (e as Error).message) throw new Error(`${died}\n(noticed as: ${(e as Error).message})`, { cause: e });
    throw e;
  } finally {
    endProgress();
    await Promise.all([sim?.stop(), peer.stop()]);
    if (ok) fs.rmSync(logDir, { recursive: true, force: true });
  }
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
      `clock offsets vs runner             ${r.clocks}`,
      '',
    ].join('\n') + '\n',
  );
}

/** Isthmus beside the peer, one row per figure, with the Isthmus/peer ratio. */
function sideBySide(pairs: { r: Result; g?: PeerResult }[]): void {
  const peerName = pairs.find((p) => p.g)?.g?.eds === 'snapshot' ? 'go-control-plane (snapshot EDS)' : 'go-control-plane (linear EDS)';
  const rows: string[] = [`| size | figure | Isthmus | ${peerName} | Isthmus / peer |`, '| --- | --- | ---: | ---: | ---: |'];
  for (const { r, g } of pairs) {
    const a = r.usage;
    const b = g?.usage;
    const ratio = (x: number, y: number | undefined): string => (y === undefined ? '—' : y > 0 ? `${(x / y).toFixed(2)}×` : '∞');
    const row = (fig: string, x: number, y: number | undefined, fmt: (v: number) => string): void => {
      rows.push(`| ${r.size} | ${fig} | ${fmt(x)} | ${y === undefined ? '—' : fmt(y)} | ${ratio(x, y)} |`);
    };
    const sec = (v: number): string => `${v.toFixed(2)} s`;
    const msf = (v: number): string => `${v.toFixed(0)} ms`;
    row('full sync (all P ACKed)', a.syncMs / 1000, b && b.syncMs / 1000, sec);
    row('change → all, p50', a.lastProxy.p50, b?.lastProxy.p50, msf);
    row('change → all, p99', a.lastProxy.p99, b?.lastProxy.p99, msf);
    row('change → all, max', a.lastProxy.max, b?.lastProxy.max, msf);
    row(`change → all, p50 minus Isthmus's ${DEBOUNCE_QUIET_MS} ms debounce`, a.lastProxy.p50 - DEBOUNCE_QUIET_MS, b?.lastProxy.p50, msf);
    row(`change → all, p99 minus debounce`, a.lastProxy.p99 - DEBOUNCE_QUIET_MS, b?.lastProxy.p99, msf);
    row('CPU to start (build config)', a.cpuStart, b?.cpuStart, sec);
    row('CPU during full sync', a.cpuSync, b?.cpuSync, sec);
    row('CPU for the N changes', a.cpuChanges, b?.cpuChanges, sec);
    row('CPU total', a.cpuStart + a.cpuSync + a.cpuChanges, b && b.cpuStart + b.cpuSync + b.cpuChanges, sec);
    row('RSS after sync', a.rssSynced / 1048576, b && b.rssSynced / 1048576, (v) => `${v.toFixed(0)} MiB`);
    row('peak RSS (VmHWM)', a.peakRss / 1048576, b && b.peakRss / 1048576, (v) => `${v.toFixed(0)} MiB`);
  }
  process.stdout.write(rows.join('\n') + '\n\n');
}

function report(r: Result, N: number): void {
  const perProxyRss = (r.synced.rss - r.before.rss) / r.P;
  const lines = [
    `== ${r.size}${values.delta ? ' (Delta ADS)' : ' (SotW ADS)'}: P=${r.P} proxies, S=${r.S} services, E=${r.E} endpoints each (${r.S * r.E} endpoints) ==`,
    `initial snapshot build              ${ms(r.initialBuildMs)}`,
    `all proxies hold the full config    ${ms(r.syncMs)} after the first connect`,
    `server view after sync              ${r.syncz}`,
    `one endpoint change → all proxies   ${trio(r.lastProxy)}   (N=${N}, includes ${DEBOUNCE_QUIET_MS} ms debounce)`,
    `  same, minus the debounce          ${trio(r.lastProxy, DEBOUNCE_QUIET_MS)}`,
    `  per proxy delivery (N×P)          ${trio(r.perProxy)}`,
    `  registry.set → model (sync)       ${trio(r.aggregate)}`,
    `  change → snapshot published       ${trio(r.toSnapshot)}`,
    `  xDS cache build per change        ${trio(r.build)}`,
    `  snapshot → all streams written     ${trio(r.flush)}   (server's isthmus_xds_push_seconds)`,
    `resources encoded per change        ${r.encodes}`,
    `  ClusterLoadAssignment per change  ${[...new Set(r.claEncodes)].join(', ')} ${r.claEncodes.every((n) => n === 1) ? '(OK: exactly 1)' : '(EXPECTED exactly 1)'}`,
    `EDS bytes pushed per change         ${(r.edsBytes / 1024).toFixed(1)} KiB (${(r.edsBytes / r.P).toFixed(0)} B per proxy)`,
    `Isthmus RSS before proxies          ${mib(r.before.rss)} (heap ${mib(r.before.heapUsed)})`,
    `Isthmus RSS / heap after sync       ${mib(r.synced.rss)} / ${mib(r.synced.heapUsed)} (external ${mib(r.synced.external)}, array buffers ${mib(r.synced.arrayBuffers)})`,
    `Isthmus RSS / heap at end           ${mib(r.end.rss)} / ${mib(r.end.heapUsed)}, peak RSS ${mib(r.end.peakRss)}`,
    `memory per connected proxy          ${(perProxyRss / 1024).toFixed(1)} KiB RSS, ${((r.synced.heapUsed - r.before.heapUsed) / r.P / 1024).toFixed(1)} KiB heap (after GC)`,
    `simulated proxies' process          RSS ${mib(r.sim.rss)}, peak ${mib(r.sim.peakRss)}`,
    `clock offsets vs runner             ${r.clocks}`,
    '',
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

function table(rs: Result[]): void {
  const row = (r: Result): string =>
    `| ${r.size} | ${r.P} | ${r.S} | ${r.E} | ${(r.syncMs / 1000).toFixed(2)} s | ${r.lastProxy.p50.toFixed(0)} / ${r.lastProxy.p99.toFixed(0)} / ${r.lastProxy.max.toFixed(0)} ms | ${(r.lastProxy.p50 - DEBOUNCE_QUIET_MS).toFixed(0)} / ${(r.lastProxy.p99 - DEBOUNCE_QUIET_MS).toFixed(0)} / ${(r.lastProxy.max - DEBOUNCE_QUIET_MS).toFixed(0)} ms | ${[...new Set(r.claEncodes)].join(',')} | ${mib(r.synced.rss)} / ${mib(r.synced.heapUsed)} | ${mib(r.end.peakRss)} | ${((r.synced.rss - r.before.rss) / r.P / 1024).toFixed(0)} / ${((r.synced.heapUsed - r.before.heapUsed) / r.P / 1024).toFixed(0)} KiB |`;
  process.stdout.write(
    [
      '| size | P | S | E | full sync | change→all p50/p99/max | minus debounce | CLA encodes/change | RSS / heap after sync | peak RSS | RSS / heap per proxy |',
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
      ...rs.map(row),
      '',
    ].join('\n'),
  );
}

async function main(): Promise<number> {
  const N = Number(values.changes);
  const timeoutS = Number(values.timeout);
  const sizes = values.size.split(',');
  if (!['gcp', 'gcp-snapshot', 'none'].includes(values.peer)) throw new Error(`--peer ${values.peer}: gcp, gcp-snapshot or none`);
  const eds = values.peer === 'gcp-snapshot' ? 'snapshot' : 'linear';
  const bin = values.peer !== 'none' ? buildGcp((line) => progress(line, true)) : undefined;
  const results: Result[] = [];
  const pairs: { r: Result; g?: PeerResult }[] = [];
  for (const size of sizes) {
    const base = SIZES[size];
    if (!base) throw new Error(`unknown --size ${size} (one of ${Object.keys(SIZES).join(', ')})`);
    const P = Number(values.proxies ?? base.P);
    const S = Number(values.services ?? base.S);
    const E = Number(values.endpoints ?? base.E);
    if (!(P > 0 && S > 0 && E > 0 && N > 0 && timeoutS > 0)) throw new Error('sizes, --changes and --timeout must be positive numbers');
    const started = now();
    const r = await runSize(size, P, S, E, N, timeoutS);
    report(r, N);
    results.push(r);
    const g = bin ? await runPeer(bin, eds, size, P, S, E, N, timeoutS) : undefined;
    if (g) reportPeer(g, N);
    pairs.push({ r, g });
    process.stderr.write(`(${size} took ${((now() - started) / 1000).toFixed(1)} s)\n`);
  }
  table(results);
  if (pairs.some((p) => p.g)) sideBySide(pairs);
  return results.every((r) => r.claEncodes.every((n) => n === 1)) ? 0 : 2;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    process.stderr.write(`\n${signal}: stopping\n`);
    process.exit(130); // the exit hook kills the children
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
