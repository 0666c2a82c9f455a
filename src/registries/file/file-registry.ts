// The file registry: a directory of manifests, watched. The embedded default source.

import { type FSWatcher, watch } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { Observable } from 'rxjs';
import { canonicalJson, contentHash } from '../../model/hash.ts';
import type { Registry } from '../../model/registry.ts';
import type { Rejection, RegistryState } from '../../model/types.ts';
import { logger } from '../../shared/log.ts';
import { parseManifests } from './manifest.ts';
import { collect, type ServedFile, serveFailure, serveFile } from './serving.ts';
import { registryEvents as events, registryRejections as rejectionsGauge } from '../metrics.ts';

export interface FileRegistryOptions {
  /** Quiet period after the last filesystem event before re-reading. Default 50 ms. */
  readonly settleMs?: number;
  /** Longest a burst of events may delay a re-read. Default 1 s. */
  readonly maxWaitMs?: number;
  /** Retry period while the directory is missing or cannot be watched. Default 1 s. */
  readonly pollMs?: number;
  /** Larger files are rejected unread. Default 4 MiB. */
  readonly maxFileBytes?: number;
}

const log = logger('registry.file');

const MANIFEST = /\.(ya?ml|json)$/i;
const MAX_DEPTH = 32;

/** Manifest files only: dotfiles and editor leftovers (`x~`, `.x.swp`, vim's `4913`) are not. */
export function isManifestName(name: string): boolean {
  return !name.startsWith('.') && !name.endsWith('~') && MANIFEST.test(name);
}

/** Serves every ServiceEntry and WorkloadEntry found under a directory, following edits. */
export class FileRegistry implements Registry {
  readonly id: string;
  readonly dir: string;
  readonly states: Observable<RegistryState>;

  constructor(dir: string, opts: FileRegistryOptions = {}) {
    this.dir = dir;
    this.id = 'file://' + path.resolve(dir);
    const settings = {
      settleMs: opts.settleMs ?? 50,
      maxWaitMs: opts.maxWaitMs ?? 1000,
      pollMs: opts.pollMs ?? 1000,
      maxFileBytes: opts.maxFileBytes ?? 4 * 1024 * 1024,
    };
    this.states = new Observable<RegistryState>((subscriber) => {
      const w = new DirWatch(this.id, dir, settings, (s) => subscriber.next(s));
      w.start();
      return () => w.close();
    });
  }
}

interface FileRecord {
  /** Content hash, or a marker for files that were not read. */
  readonly hash: string;
  readonly served: ServedFile;
}

/** One subscription's watch: its own watcher, timers and last-good memory. */
class DirWatch {
  private readonly id: string;
  private readonly dir: string;
  private readonly abs: string;
  private readonly opts: Required<FileRegistryOptions>;
  private readonly emit: (s: RegistryState) => void;
  private files = new Map<string, FileRecord>();
  private readonly watchers = new Map<string, FSWatcher>();
  private watchedIno: number | undefined;
  private settleTimer: NodeJS.Timeout | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private burstStart: number | undefined;
  private scanning = false;
  private dirty = false;
  private closed = false;
  private synced = false;
  private error: string | undefined;
  private lastEmitted: string | undefined;
  private logged = new Set<string>();
  /** null until the first state is reported, so the first sync is logged too. */
  private lastLoggedError: string | undefined | null = null;

  constructor(id: string, dir: string, opts: Required<FileRegistryOptions>, emit: (s: RegistryState) => void) {
    this.id = id;
    this.dir = dir;
    this.abs = path.resolve(dir);
    this.opts = opts;
    this.emit = emit;
  }

  start(): void {
    void this.scan();
  }

  close(): void {
    this.closed = true;
    this.disarm();
    clearTimeout(this.settleTimer);
    clearTimeout(this.pollTimer);
    this.settleTimer = this.pollTimer = undefined;
  }

  private count(event: string): void {
    events.inc({ registry: this.id, event });
  }

  /** Debounce with a cap: a steady stream of events still re-reads every maxWaitMs. */
  private onEvent(): void {
    if (this.closed) return;
    this.count('fs_event');
    const now = Date.now();
    this.burstStart ??= now;
    clearTimeout(this.settleTimer);
    const delay = Math.max(0, Math.min(this.opts.settleMs, this.burstStart + this.opts.maxWaitMs - now));
    this.settleTimer = setTimeout(() => {
      this.settleTimer = this.burstStart = undefined;
      void this.scan();
    }, delay);
  }

  /**
   * One non-recursive watch per directory: Node's recursive watch on Linux stops reporting
   * a file once it has been replaced by rename, which is how editors and tools save.
   */
  private arm(ino: number): void {
    if (this.watchedIno !== ino) this.disarm(); // the directory was replaced: old watchers see nothing
    this.watchedIno = ino;
    this.watchDir('');
  }

  /** Watches exactly these directories (relative to the root), closing the others. */
  private syncWatches(dirs: readonly string[]): void {
    const want = new Set(['', ...dirs]);
    for (const [rel, w] of this.watchers) {
      if (want.has(rel)) continue;
      this.watchers.delete(rel);
      closeQuietly(w);
    }
    for (const rel of want) this.watchDir(rel);
  }

  private watchDir(rel: string): void {
    if (this.watchers.has(rel) || this.closed) return;
    try {
      const w = watch(path.join(this.abs, rel), { persistent: true });
      w.on('change', () => this.onEvent());
      w.on('error', (err) => {
        this.count('watch_error');
        log.warn('directory watch failed; re-arming', { registry: this.id, dir: rel || '.', err });
        this.watchers.delete(rel);
        closeQuietly(w);
        this.schedulePoll();
      });
      this.watchers.set(rel, w);
    } catch (err) {
      // E.g. inotify limits: fall back to polling, and try to watch again each time.
      this.count('watch_error');
      log.warn('cannot watch directory; polling instead', { registry: this.id, dir: rel || '.', err });
      this.schedulePoll();
    }
  }

  private disarm(): void {
    for (const w of this.watchers.values()) closeQuietly(w);
    this.watchers.clear();
    this.watchedIno = undefined;
  }

  private schedulePoll(): void {
    if (this.closed || this.pollTimer) return;
    this.pollTimer = setTimeout(() => {
      this.pollTimer = undefined;
      this.count('poll');
      void this.scan();
    }, this.opts.pollMs);
  }

  /** One scan at a time; events during a scan cause one more. Never throws. */
  private async scan(): Promise<void> {
    if (this.scanning) {
      this.dirty = true;
      return;
    }
    this.scanning = true;
    try {
      do {
        this.dirty = false;
        await this.scanOnce();
      } while (this.dirty && !this.closed);
    } catch (err) {
      log.error('scan failed', { registry: this.id, err });
      this.schedulePoll();
    } finally {
      this.scanning = false;
    }
  }

  private async scanOnce(): Promise<void> {
    let listing: { files: string[]; dirs: string[]; problems: Rejection[] };
    try {
      const st = await stat(this.abs);
      if (!st.isDirectory()) throw new Error('not a directory');
      if (this.closed) return;
      this.arm(st.ino); // before listing, so no change between the two is missed
      listing = await listManifests(this.abs, this.dir);
    } catch (err) {
      if (this.closed) return;
      // Keep the last known state; say what is wrong; look again later.
      this.disarm();
      this.count('dir_error');
      this.error = `cannot read directory ${this.dir}: ${describeError(err)}`;
      this.schedulePoll();
      this.publish();
      return;
    }
    this.syncWatches(listing.dirs);
    if (!this.watchers.has('')) this.schedulePoll();
    const next = new Map<string, FileRecord>();
    for (const rel of listing.files) {
      const rec = await this.readOne(rel, this.files.get(rel));
      if (rec) next.set(rel, rec);
    }
    if (this.closed) return;
    this.files = next;
    this.error = undefined;
    this.synced = true;
    this.publish(listing.problems);
  }

  /** Re-parses a file only when its content changed; undefined if it vanished meanwhile. */
  private async readOne(rel: string, prev: FileRecord | undefined): Promise<FileRecord | undefined> {
    const file = path.join(this.abs, rel);
    const source = path.join(this.dir, rel);
    const fail = (hash: string, reason: string): FileRecord =>
      prev?.hash === hash ? prev : { hash, served: serveFailure(source, { source, reason }, prev?.served) };
    try {
      const st = await stat(file);
      if (st.size > this.opts.maxFileBytes) {
        return fail(`size:${st.size}:${st.mtimeMs}`, `file is ${st.size} bytes, larger than the ${this.opts.maxFileBytes}-byte limit; split it into smaller files`);
      }
      const buf = await readFile(file);
      const hash = contentHash(buf);
      if (prev?.hash === hash) return prev;
      if (buf.length > this.opts.maxFileBytes) return fail(`size:${buf.length}`, `file is larger than the ${this.opts.maxFileBytes}-byte limit; split it into smaller files`);
      let text: string;
      try {
        text = new TextDecoder('utf-8', { fatal: true }).decode(buf);
      } catch {
        return fail(hash, 'file is not UTF-8 text; expected YAML or JSON manifests');
      }
      return { hash, served: serveFile(source, parseManifests(text, source, { registry: this.id }), prev?.served) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      return fail(`error:${describeError(err)}`, `cannot read file: ${describeError(err)}`);
    }
  }

  /** Emits the state if it differs from the last one emitted. */
  private publish(extra: readonly Rejection[] = []): void {
    if (this.closed) return;
    const rels = [...this.files.keys()].sort();
    const all = collect(rels.map((r) => this.files.get(r)!.served));
    const state: RegistryState = {
      id: this.id,
      synced: this.synced,
      ...(this.error ? { error: this.error } : {}),
      services: all.services,
      endpoints: all.endpoints,
      workloads: all.workloads,
      rejections: [...extra, ...all.rejections],
      ...(all.virtualServices.length ? { virtualServices: all.virtualServices } : {}),
      ...(all.destinationRules.length ? { destinationRules: all.destinationRules } : {}),
      ...(all.peerAuthentications.length ? { peerAuthentications: all.peerAuthentications } : {}),
    };
    const text = canonicalJson(state);
    if (text === this.lastEmitted) {
      this.count('unchanged');
      return;
    }
    this.lastEmitted = text;
    this.report(state);
    this.count('reload');
    this.emit(state);
  }

  /** Logs each distinct problem once, while it lasts; a problem fixed and re-made logs again. */
  private report(state: RegistryState): void {
    rejectionsGauge.set({ registry: this.id }, state.rejections.length);
    const current = new Set<string>();
    for (const r of state.rejections) {
      const k = canonicalJson(r);
      current.add(k);
      if (!this.logged.has(k)) log.warn('manifest rejected', { registry: this.id, ...r });
    }
    this.logged = current;
    if (state.error !== this.lastLoggedError) {
      if (state.error) log.warn('registry source unavailable; serving the last known state', { registry: this.id, error: state.error });
      else log.info('registry synced', { registry: this.id, services: state.services.length, workloads: state.workloads.length, rejections: state.rejections.length });
      this.lastLoggedError = state.error;
    }
  }
}

function closeQuietly(w: FSWatcher): void {
  try {
    w.close();
  } catch {
    // already closed
  }
}

function describeError(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e?.code ? `${e.code} (${e.message})` : err instanceof Error ? err.message : String(err);
}

/** Relative paths of manifest files under root, sorted; unreadable subdirectories are reported. */
async function listManifests(root: string, display: string): Promise<{ files: string[]; dirs: string[]; problems: Rejection[] }> {
  const files: string[] = [];
  const dirs: string[] = [];
  const problems: Rejection[] = [];
  const walk = async (rel: string, depth: number): Promise<void> => {
    const entries = await readdir(path.join(root, rel), { withFileTypes: true });
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const child = rel ? path.join(rel, e.name) : e.name;
      // Symlinked files are followed (Kubernetes ConfigMap mounts); symlinked directories are not, to avoid loops.
      const isFile = e.isFile() || (e.isSymbolicLink() && (await stat(path.join(root, child)).then((s) => s.isFile(), () => false)));
      if (e.isDirectory()) {
        if (depth >= MAX_DEPTH) continue;
        dirs.push(child);
        await walk(child, depth + 1).catch((err: unknown) => {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // removed while we looked; an event follows
          problems.push({ source: path.join(display, child), reason: `cannot read directory: ${describeError(err)}` });
        });
      } else if (isFile && isManifestName(e.name)) files.push(child);
    }
  };
  await walk('', 0);
  return { files: files.sort(), dirs, problems };
}
