// Forked bench processes: typed IPC waits with deadlines, and a stop that leaves nothing behind.
import { type ChildProcess, execFileSync, fork, spawn } from 'node:child_process';
import fs from 'node:fs';
import readline from 'node:readline';
import type { MemCgroup } from './cgroup.ts';
import { now } from './messages.ts';

interface Waiter<In> {
  match: (m: In) => boolean;
  resolve: (m: In) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

const live = new Set<ChildProcess>();

// Last resort: whatever way the parent exits, no child outlives it.
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

/** What is read of a process whatever it speaks: how it went, and the group it ran in. */
export interface Proc {
  readonly name: string;
  readonly logFile: string;
  readonly pid: number;
  readonly lost: Promise<never>;
  readonly failure: string | undefined;
  readonly exitSignal?: NodeJS.Signals | null;
  readonly killedByUs: boolean;
  readonly cgroup?: MemCgroup;
}

export class Peer<In extends { type: string }, Out> implements Proc {
  readonly name: string;
  readonly logFile: string;
  private readonly child: ChildProcess;
  private readonly queue: In[] = [];
  private readonly waiters = new Set<Waiter<In>>();
  private dead?: string;
  private readonly exited: Promise<void>;
  /** How it exited, once it has. */
  exitSignal?: NodeJS.Signals | null;
  /** It was killed on purpose (kill()), not by the kernel or a crash. */
  killedByUs = false;
  /** Rejects (with why) when it exits or reports an error: race it against waits on others. */
  readonly lost: Promise<never>;
  private markLost: (e: Error) => void = () => undefined;
  /** The memory group it runs in, if any. */
  readonly cgroup?: MemCgroup;
  /** Called for every message, before waiters see it (progress lines). */
  onMessage?: (m: In) => void;

  /** Line protocol children (the Go peer): how a message is written to their stdin. */
  private readonly encode?: (m: Out) => string;

  /**
   * A forked Node script speaking IPC or, with `lines`, a program speaking one message a
   * line on stdin/stdout (stderr goes to the log).
   */
  constructor(
    name: string,
    script: string,
    args: string[],
    logFile: string,
    execArgv: string[] = [],
    lines?: { parse: (line: string) => In | undefined; encode: (m: Out) => string },
    cgroup?: MemCgroup,
    env?: NodeJS.ProcessEnv,
  ) {
    this.name = name;
    this.logFile = logFile;
    this.cgroup = cgroup;
    this.lost = new Promise<never>((_, reject) => (this.markLost = reject));
    this.lost.catch(() => undefined);
    const fd = fs.openSync(logFile, 'a');
    if (lines) {
      this.child = spawn(script, args, { stdio: ['pipe', 'pipe', fd] });
      this.encode = lines.encode;
      readline.createInterface({ input: this.child.stdout! }).on('line', (line) => {
        const m = lines.parse(line);
        if (m) this.child.emit('message', m);
        else fs.appendFileSync(logFile, `unparsed: ${line}\n`);
      });
      this.child.stdin!.on('error', () => undefined); // gone: the exit handler reports it
    } else {
      this.child = fork(script, args, { execPath: process.execPath, execArgv, stdio: ['ignore', fd, fd, 'ipc'], ...(env ? { env } : {}) });
    }
    fs.closeSync(fd);
    live.add(this.child);
    // At once, before the child has allocated much: what it allocated before stays outside.
    if (cgroup && this.child.pid) cgroup.add(this.child.pid);
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => {
        live.delete(this.child);
        this.exitSignal = signal;
        this.die(`${name} exited (code ${code}, signal ${signal}); log: ${logFile}`);
        resolve();
      }),
    );
    this.child.on('message', (m: In) => {
      if (m.type === 'error') {
        this.die(`${name} failed: ${(m as unknown as { message: string }).message}\nlog: ${logFile}`);
        return;
      }
      this.onMessage?.(m);
      for (const w of this.waiters) {
        if (!w.match(m)) continue;
        this.waiters.delete(w);
        clearTimeout(w.timer);
        w.resolve(m);
        return;
      }
      this.queue.push(m);
    });
  }

  private die(why: string): void {
    this.dead ??= why;
    this.markLost(new Error(this.dead));
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.reject(new Error(this.dead));
    }
    this.waiters.clear();
  }

  /** Why it is gone (exit or reported error), if it is. */
  get failure(): string | undefined {
    return this.dead;
  }

  send(m: Out): void {
    if (this.dead) return;
    if (this.encode) this.child.stdin!.write(`${this.encode(m)}\n`);
    else this.child.send(m as object);
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  /** The next message of this type (and matching `pred`), or an error naming what was awaited. */
  wait<T extends In['type']>(type: T, what: string, timeoutMs: number, pred: (m: Extract<In, { type: T }>) => boolean = () => true): Promise<Extract<In, { type: T }>> {
    const match = (m: In): boolean => m.type === type && pred(m as Extract<In, { type: T }>);
    const i = this.queue.findIndex(match);
    if (i >= 0) return Promise.resolve(this.queue.splice(i, 1)[0] as Extract<In, { type: T }>);
    if (this.dead) return Promise.reject(new Error(this.dead));
    return new Promise((resolve, reject) => {
      const w: Waiter<In> = {
        match,
        resolve: resolve as (m: In) => void,
        reject,
        timer: setTimeout(() => {
          this.waiters.delete(w);
          reject(new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what} from ${this.name}; log: ${this.logFile}`));
        }, Math.max(0, timeoutMs)),
      };
      this.waiters.add(w);
    });
  }

  /** Clock offset of the child against ours (ms, + = child ahead), from the fastest of n pings. */
  async clockOffset(ping: (id: number) => Out, timeoutMs: number, n = 10): Promise<{ offset: number; rtt: number }> {
    let best = { offset: 0, rtt: Infinity };
    for (let id = 1; id <= n; id++) {
      const t0 = now();
      this.send(ping(id));
      const pong = (await this.wait('pong' as In['type'], 'pong', timeoutMs, (m) => (m as unknown as { id: number }).id === id)) as unknown as { t: number };
      const t1 = now();
      if (t1 - t0 < best.rtt) best = { offset: pong.t - (t0 + t1) / 2, rtt: t1 - t0 };
    }
    return best;
  }

  /** Kills it at once (SIGKILL), as a crash would, and waits for it to be gone. */
  async kill(): Promise<void> {
    if (!live.has(this.child)) return;
    this.killedByUs = true;
    this.child.kill('SIGKILL');
    await this.exited;
  }

  /** Asks it to go (disconnect, SIGTERM), then kills it if it is still there after `graceMs`. */
  async stop(graceMs = 3000): Promise<void> {
    if (!live.has(this.child)) return;
    try {
      if (this.encode) this.child.stdin!.end();
      else this.child.disconnect();
    } catch {
      // already disconnected
    }
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

const CLK_TCK = ((): number => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** CPU seconds (user + system, from /proc/PID/stat), RSS and peak RSS (VmHWM) of a live process. */
export interface ProcUsage {
  cpuS: number;
  rss: number;
  peakRss: number;
}

export function procUsage(pid: number): ProcUsage {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After "pid (comm) ", field 3 (state) is f[0]: utime is field 14, stime field 15.
  const cpuS = (Number(f[11]) + Number(f[12])) / CLK_TCK;
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string): number => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) * 1024;
  return { cpuS, rss: kb('VmRSS'), peakRss: kb('VmHWM') };
}
