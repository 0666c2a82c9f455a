// Memory limits for bench processes: a cgroup v1 memory group per role, made inside the
// runner's own memory cgroup (so whatever limits that one has still apply), removed after.
// A process over its limit is killed by the kernel (SIGKILL) and the group counts it in
// memory.oom_control's oom_kill: that is how a run tells "out of memory" from a crash.
import fs from 'node:fs';
import path from 'node:path';

const ROOT = '/sys/fs/cgroup/memory';
const PREFIX = 'isthmus-bench-';

/** The runner's own memory cgroup directory, if cgroup v1 memory is mounted and writable. */
function ownGroup(): string | undefined {
  try {
    const line = fs
      .readFileSync('/proc/self/cgroup', 'utf8')
      .split('\n')
      .find((l) => l.split(':')[1]?.split(',').includes('memory'));
    if (!line) return undefined;
    const dir = path.join(ROOT, line.slice(line.indexOf(':', line.indexOf(':') + 1) + 1));
    fs.accessSync(dir, fs.constants.W_OK);
    return dir;
  } catch {
    return undefined;
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const groups = new Set<MemCgroup>();

// Whatever way the runner exits, no group outlives it (nor its processes: all the runner's).
process.on('exit', () => {
  for (const g of groups) {
    g.killAll();
    g.remove(true);
  }
});

export class MemCgroup {
  readonly dir: string;
  readonly limitBytes: number;
  private oomKillsAtStart = 0;

  private constructor(dir: string, limitBytes: number) {
    this.dir = dir;
    this.limitBytes = limitBytes;
  }

  /**
   * A group named after the role with this limit, or undefined (with the reason in `why`)
   * where there is no writable cgroup v1 memory controller.
   */
  static create(role: string, limitBytes: number, why: (reason: string) => void): MemCgroup | undefined {
    const parent = ownGroup();
    if (!parent) {
      why(`no writable cgroup v1 memory controller under ${ROOT}: ${role} runs without a memory limit`);
      return undefined;
    }
    MemCgroup.sweep(parent);
    const dir = path.join(parent, `${PREFIX}${process.pid}-${role}`);
    try {
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, 'memory.limit_in_bytes'), String(limitBytes));
      // No swap here, but where there is, the limit should not be dodged through it.
      try {
        fs.writeFileSync(path.join(dir, 'memory.swappiness'), '0');
      } catch {
        // not settable on every kernel
      }
    } catch (e) {
      why(`cannot set up ${dir}: ${(e as Error).message}; ${role} runs without a memory limit`);
      try {
        fs.rmdirSync(dir);
      } catch {
        // never made
      }
      return undefined;
    }
    const g = new MemCgroup(dir, limitBytes);
    g.oomKillsAtStart = g.oomKills();
    groups.add(g);
    return g;
  }

  /** Groups left by runners that are gone (killed before they could clean up). */
  private static sweep(parent: string): void {
    for (const name of fs.readdirSync(parent)) {
      const m = new RegExp(`^${PREFIX}(\\d+)-`).exec(name);
      if (!m || alive(Number(m[1]))) continue;
      try {
        fs.rmdirSync(path.join(parent, name));
      } catch {
        // still has tasks: left alone
      }
    }
  }

  /** Moves a process in (its later allocations count against the limit). */
  add(pid: number): void {
    fs.writeFileSync(path.join(this.dir, 'cgroup.procs'), String(pid));
  }

  /** SIGKILLs what is still in the group: only ever processes this runner started. */
  killAll(): void {
    for (const pid of this.read('cgroup.procs').split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // gone
      }
    }
  }

  private read(file: string): string {
    try {
      return fs.readFileSync(path.join(this.dir, file), 'utf8');
    } catch {
      return '';
    }
  }

  private oomKills(): number {
    return Number(/oom_kill (\d+)/.exec(this.read('memory.oom_control'))?.[1] ?? 0);
  }

  /** Processes the kernel killed in this group for going over the limit. */
  get oomKilled(): number {
    return this.oomKills() - this.oomKillsAtStart;
  }

  /** Peak usage of the group (page cache included), bytes. */
  get peakBytes(): number {
    return Number(this.read('memory.max_usage_in_bytes').trim() || 0);
  }

  /** "N GiB" as the limit was given. */
  get limit(): string {
    return `${+(this.limitBytes / 2 ** 30).toFixed(2)} GiB`;
  }

  /** Removes the group once its processes are gone (waits up to 2 s for them to be reaped). */
  remove(quiet = false): void {
    if (!groups.has(this)) return;
    for (let i = 0; i < 40; i++) {
      try {
        fs.rmdirSync(this.dir);
        groups.delete(this);
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
          groups.delete(this);
          return;
        }
        if ((e as NodeJS.ErrnoException).code !== 'EBUSY') break;
        sleepSync(50);
      }
    }
    if (!quiet) process.stderr.write(`could not remove ${this.dir}: ${this.read('cgroup.procs').trim() || 'no tasks'}\n`);
  }
}
