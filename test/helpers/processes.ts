// Child processes a test starts: tracked, logged to a file, stopped, and checked for leftovers.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** A directory for this test process's logs and scratch files. */
export const SCRATCH = fs.mkdtempSync(path.join(os.tmpdir(), 'isthmus-test-'));

let dirSeq = 0;
/** A fresh empty directory under the scratch dir. */
export function scratchDir(prefix: string): string {
  const dir = path.join(SCRATCH, `${prefix}-${++dirSeq}`);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export class Proc {
  readonly name: string;
  readonly logFile: string;
  readonly child: ChildProcess;
  readonly pid: number;
  readonly exited: Promise<ExitStatus>;
  exit: ExitStatus | undefined;

  constructor(name: string, logFile: string, child: ChildProcess) {
    this.name = name;
    this.logFile = logFile;
    this.child = child;
    if (child.pid === undefined) throw new Error(`${name}: spawn failed`);
    this.pid = child.pid;
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
  }

  /** True while the process or any process of its group is alive. */
  alive(): boolean {
    if (this.exit === undefined) return true;
    return groupAlive(this.pid);
  }

  /** Everything it wrote to stdout and stderr so far. */
  output(): string {
    try {
      return fs.readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  /** The last `lines` lines of its output. */
  tail(lines = 40): string {
    const all = this.output().trimEnd().split('\n');
    return all.slice(-lines).join('\n');
  }

  /** SIGTERM to its process group, SIGKILL after `graceMs`; resolves once all are gone. */
  async stop(graceMs = 5000): Promise<ExitStatus> {
    if (!this.alive()) return this.exit as ExitStatus;
    signalGroup(this.pid, 'SIGTERM');
    const deadline = Date.now() + graceMs;
    while (this.alive() && Date.now() < deadline) await sleep(25);
    if (this.alive()) {
      signalGroup(this.pid, 'SIGKILL');
      while (this.alive()) await sleep(25);
    }
    return this.exited;
  }

  /** Sends a signal to the process itself (not its group). */
  kill(signal: NodeJS.Signals): void {
    if (this.exit === undefined) this.child.kill(signal);
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // group already gone
  }
}

function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const registry: Proc[] = [];
let seq = 0;

/**
 * Starts `cmd` in its own process group, stdout and stderr both appended to a log file,
 * and tracks it for `stopAll` and `assertNoLeftovers`.
 */
export function spawnTracked(name: string, cmd: string, args: readonly string[], opts: SpawnOptions = {}): Proc {
  const logFile = path.join(SCRATCH, `${name.replace(/[^\w.-]+/g, '_')}-${++seq}.log`);
  const fd = fs.openSync(logFile, 'a');
  try {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['ignore', fd, fd],
      detached: true,
    });
    const proc = new Proc(name, logFile, child);
    registry.push(proc);
    return proc;
  } finally {
    fs.closeSync(fd);
  }
}

/** Every process spawned by this test process. */
export function trackedProcesses(): readonly Proc[] {
  return registry;
}

/** Stops every tracked process still alive. */
export async function stopAll(graceMs = 5000): Promise<void> {
  await Promise.all(registry.filter((p) => p.alive()).map((p) => p.stop(graceMs)));
}

/** Throws (after killing them) if any tracked process or its children is still alive. */
export function assertNoLeftovers(): void {
  const alive = registry.filter((p) => p.alive());
  if (alive.length === 0) return;
  for (const p of alive) signalGroup(p.pid, 'SIGKILL');
  throw new Error(`processes left running: ${alive.map((p) => `${p.name} (pid ${p.pid})`).join(', ')}`);
}

/** Prints the output tail of every tracked process to stderr. */
export function dumpLogs(lines = 40): void {
  for (const p of registry) {
    const state = p.exit ? `exited ${p.exit.code ?? p.exit.signal}` : 'running';
    process.stderr.write(`\n----- ${p.name} (pid ${p.pid}, ${state}) ${p.logFile} -----\n${p.tail(lines)}\n`);
  }
}

/** An `afterEach` hook: prints the logs of tracked processes when the test failed. */
export function dumpLogsOnFailure(t: { name: string }): void {
  if ((t as { passed?: boolean }).passed !== false) return;
  process.stderr.write(`\n===== logs for failed test "${t.name}" =====`);
  dumpLogs();
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a short command to completion (killed after `timeoutMs`) and returns its output. */
export function runCommand(
  cmd: string,
  args: readonly string[],
  opts: SpawnOptions & { timeoutMs?: number; input?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.end(opts.input ?? '');
  });
}

// Last resort if the test process exits with children alive: kill them, keep logs on failure.
process.once('exit', (code) => {
  for (const p of registry) if (p.alive()) signalGroup(p.pid, 'SIGKILL');
  if (code === 0 && !process.env.ISTHMUS_KEEP_TEST_LOGS) fs.rmSync(SCRATCH, { recursive: true, force: true });
});
