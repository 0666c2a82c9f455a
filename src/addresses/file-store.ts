// The VIP table in a local JSON file: the embedded default when there is no etcd.
//
// The file holds `{ "format": 1, "version": N, "table": {...} }`. A write goes to a temporary
// file in the same directory, is fsynced and renamed over the old one, so a crash leaves
// either the old or the new table, never a torn one. Compare-and-swap holds a lock file
// (created exclusively) around read-compare-write, so two processes sharing the file cannot
// both win; a lock older than `staleLockMs` is taken to be left by a dead process.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import type { CasResult, VersionedVipTable, VipStore, VipTable } from './allocator.ts';

/** Where the VIP table lives when no path is given: $ISTHMUS_STATE_DIR, else ~/.local/state/isthmus. */
export function defaultVipStorePath(): string {
  const dir = process.env.ISTHMUS_STATE_DIR ?? path.join(os.homedir(), '.local', 'state', 'isthmus');
  return path.join(dir, 'vips.json');
}

const FORMAT = 1;

export class VipStoreError extends Error {}

export interface FileVipStoreOptions {
  /** A lock older than this is broken (default 30 s). */
  readonly staleLockMs?: number;
  /** Give up waiting for the lock after this long (default 10 s). */
  readonly lockTimeoutMs?: number;
}

export class FileVipStore implements VipStore {
  readonly id: string;
  readonly path: string;
  private readonly lockPath: string;
  private readonly staleLockMs: number;
  private readonly lockTimeoutMs: number;
  private tmpSeq = 0;

  constructor(file: string, opts: FileVipStoreOptions = {}) {
    this.path = path.resolve(file);
    this.lockPath = `${this.path}.lock`;
    this.id = pathToFileURL(this.path).href;
    this.staleLockMs = opts.staleLockMs ?? 30_000;
    this.lockTimeoutMs = opts.lockTimeoutMs ?? 10_000;
  }

  async load(): Promise<VersionedVipTable> {
    let text: string;
    try {
      text = await fs.readFile(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { version: 0, table: undefined };
      throw new VipStoreError(`cannot read VIP table ${this.path}: ${(e as Error).message}`, { cause: e });
    }
    return parse(text, this.path);
  }

  async compareAndSwap(expected: number, table: VipTable): Promise<CasResult> {
    await fs.mkdir(path.dirname(this.path), { recursive: true });
    await this.lock();
    try {
      const current = await this.load();
      if (current.version !== expected) return { ok: false, current };
      const version = expected + 1;
      await this.writeAtomically(JSON.stringify({ format: FORMAT, version, table }, null, 1) + '\n');
      return { ok: true, version };
    } finally {
      await fs.rm(this.lockPath, { force: true });
    }
  }

  async close(): Promise<void> {}

  private async writeAtomically(text: string): Promise<void> {
    const tmp = `${this.path}.${process.pid}.${++this.tmpSeq}.tmp`;
    const fh = await fs.open(tmp, 'w', 0o644);
    try {
      await fh.writeFile(text);
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await fs.rename(tmp, this.path);
    } catch (e) {
      await fs.rm(tmp, { force: true });
      throw new VipStoreError(`cannot replace VIP table ${this.path}: ${(e as Error).message}`, { cause: e });
    }
    // Make the rename itself durable.
    const dir = await fs.open(path.dirname(this.path), 'r').catch(() => undefined);
    if (dir) await dir.sync().catch(() => undefined).finally(() => dir.close());
  }

  private async lock(): Promise<void> {
    const deadline = Date.now() + this.lockTimeoutMs;
    while (true) {
      try {
        const fh = await fs.open(this.lockPath, 'wx');
        await fh.writeFile(`${process.pid}\n`);
        await fh.close();
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new VipStoreError(`cannot lock VIP table ${this.path}: ${(e as Error).message}`, { cause: e });
      }
      const st = await fs.stat(this.lockPath).catch(() => undefined);
      if (st && Date.now() - st.mtimeMs > this.staleLockMs) {
        await fs.rm(this.lockPath, { force: true });
        continue;
      }
      if (Date.now() > deadline) throw new VipStoreError(`VIP table ${this.path} stayed locked by ${this.lockPath} for ${this.lockTimeoutMs} ms`);
      await sleep(10 + Math.random() * 20);
    }
  }
}

function parse(text: string, file: string): VersionedVipTable {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new VipStoreError(`VIP table ${file} is not JSON (${(e as Error).message}); fix or remove it — names would get new VIPs`);
  }
  const d = doc as { format?: unknown; version?: unknown; table?: Partial<VipTable> };
  const t = d.table;
  if (
    d.format !== FORMAT ||
    typeof d.version !== 'number' ||
    !Number.isSafeInteger(d.version) ||
    d.version < 1 ||
    !t ||
    typeof t.cidr !== 'string' ||
    typeof t.allocations !== 'object' ||
    t.allocations === null ||
    typeof t.tombstones !== 'object' ||
    t.tombstones === null
  ) {
    throw new VipStoreError(`VIP table ${file} is not a format-${FORMAT} table ({format, version, table: {cidr, allocations, tombstones}})`);
  }
  return { version: d.version, table: { cidr: t.cidr, allocations: t.allocations, tombstones: t.tombstones } };
}
