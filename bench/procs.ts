// Forked bench processes: typed IPC waits with deadlines, and a stop that leaves nothing behind.
import { type ChildProcess, fork } from 'node:child_process';
import fs from 'node:fs';
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

export class Peer<In extends { type: string }, Out> {
  readonly name: string;
  readonly logFile: string;
  private readonly child: ChildProcess;
  private readonly queue: In[] = [];
  private readonly waiters = new Set<Waiter<In>>();
  private dead?: string;
  private readonly exited: Promise<void>;
  /** Called for every message, before waiters see it (progress lines). */
  onMessage?: (m: In) => void;

  constructor(name: string, script: string, args: string[], logFile: string, execArgv: string[] = []) {
    this.name = name;
    this.logFile = logFile;
    const fd = fs.openSync(logFile, 'a');
    this.child = fork(script, args, { execPath: process.execPath, execArgv, stdio: ['ignore', fd, fd, 'ipc'] });
    fs.closeSync(fd);
    live.add(this.child);
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => {
        live.delete(this.child);
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
    if (!this.dead) this.child.send(m as object);
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

  /** Asks it to go (disconnect, SIGTERM), then kills it if it is still there after `graceMs`. */
  async stop(graceMs = 3000): Promise<void> {
    if (!live.has(this.child)) return;
    try {
      this.child.disconnect();
    } catch {
      // already disconnected
    }
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}
