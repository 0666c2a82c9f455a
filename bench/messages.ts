// IPC messages between bench/run.ts and its two child processes, the shared clock and
// the names of the synthetic model.
import { outboundCluster } from '../src/xds/generators/names.ts';

export const PORT = 8080;

export function hostname(k: number): string {
  return `svc-${k}.bench.svc.cluster.local`;
}

export function clusterOf(k: number): string {
  return outboundCluster(hostname(k), PORT);
}

/** 10.a.b.c from a running index; only data, nothing is ever sent there. */
export function address(i: number): string {
  return `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
}

/** Wall-clock epoch milliseconds with sub-ms resolution, comparable across processes. */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

export interface Memory {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
  /** Peak RSS (VmHWM), bytes. */
  peakRss: number;
}

/** Peak RSS of this process from /proc/self/status (0 where there is no /proc). */
export async function memory(): Promise<Memory> {
  const { readFile } = await import('node:fs/promises');
  let peakRss = 0;
  try {
    const m = /VmHWM:\s+(\d+)\s+kB/.exec(await readFile('/proc/self/status', 'utf8'));
    if (m) peakRss = Number(m[1]) * 1024;
  } catch {
    // not Linux
  }
  const u = process.memoryUsage();
  return { rss: u.rss, heapUsed: u.heapUsed, heapTotal: u.heapTotal, external: u.external, arrayBuffers: u.arrayBuffers, peakRss };
}

// run.ts → isthmus-child.ts
export type ToChild =
  | { type: 'ping'; id: number }
  | { type: 'change'; id: number; service: number; endpoint: number; address: string }
  | { type: 'memory'; id: number; returnFreed?: boolean };

// isthmus-child.ts → run.ts
export type FromChild =
  | { type: 'ready'; xdsPort: number; adminPort: number; buildMs: number; t: number }
  | { type: 'pong'; id: number; t: number }
  | { type: 'changed'; id: number; cluster: string; tApply: number; tSet: number }
  | { type: 'snapshot'; seq: number; t: number; buildMs: number }
  | { type: 'memory'; id: number; memory: Memory }
  | { type: 'error'; message: string };

// run.ts → sim-proxies.ts
export type ToSim =
  | { type: 'ping'; id: number }
  | { type: 'connect' }
  | { type: 'marker'; id: number; cluster: string; address: string }
  /**
   * The server is about to be restarted: stream failures are expected, reconnects count for
   * `id`; cold: the proxies reconnect holding nothing.
   */
  | { type: 'storm'; id: number; cold: boolean }
  | { type: 'status'; id: number }
  | { type: 'memory'; id: number };

/**
 * How far the simulated proxies are. live: streams open on a connected session (since the
 * armed restart, if any), the last of them opened at lastLive; holding: proxies holding the full config; resynced: proxies that got
 * all four types again on their new stream; lastEvent: last reconnect or response since then.
 */
export interface SimStatus {
  connected: number;
  synced: number;
  failed: number;
  live: number;
  lastLive: number;
  holding: number;
  resynced: number;
  lastEvent: number;
}

// sim-proxies.ts → run.ts
export type FromSim =
  | { type: 'started' }
  | { type: 'pong'; id: number; t: number }
  | ({ type: 'progress' } & SimStatus)
  | ({ type: 'status'; id: number } & SimStatus)
  | { type: 'storm-armed'; id: number }
  | { type: 'resynced'; id: number; times: number[] }
  | { type: 'synced'; tStart: number; times: number[] }
  | { type: 'armed'; id: number }
  | { type: 'received'; id: number; times: number[] }
  | { type: 'memory'; id: number; memory: Memory }
  | { type: 'error'; message: string };
