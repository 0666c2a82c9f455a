// V8 keeps the heap pages a burst (a first sync, a reconnect storm) freed in its page pool,
// resident, until a low-memory GC. At 1000 proxies that is ~250 MiB nobody uses. Once the
// process has been quiet for a while after such growth, one last-resort GC returns them.
import { performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { logger } from './shared/log.ts';
import { metrics } from './shared/metrics.ts';

const log = logger('memory');
const returned = metrics.counter('isthmus_memory_returned_bytes_total', 'Resident memory returned to the OS by GCs run while the process was quiet.');

type Gc = (opts: { type: 'major'; execution: 'async'; flavor: 'last-resort' }) => Promise<void>;

let gcFn: Gc | undefined;

/** V8's gc(), whether or not Node was started with --expose-gc. */
function gc(): Gc {
  if (gcFn) return gcFn;
  const own = (globalThis as { gc?: Gc }).gc;
  if (own) return (gcFn = own);
  // The flag only adds gc() to contexts created after it is set.
  setFlagsFromString('--expose-gc');
  gcFn = runInNewContext('gc') as Gc;
  return gcFn;
}

/** Runs a last-resort GC; resolves with the resident bytes it returned. */
export async function returnFreedMemory(): Promise<number> {
  const before = process.memoryUsage.rss();
  await gc()({ type: 'major', execution: 'async', flavor: 'last-resort' });
  return Math.max(0, before - process.memoryUsage.rss());
}

export interface MemoryReturnOptions {
  /** How often the process is looked at, and how long it must have been quiet. */
  checkMs: number;
  /** Growth of resident memory since the last return that is worth a GC. */
  growthBytes: number;
  /** Share of the last check interval the event loop may have been busy and still count as quiet. */
  maxBusy: number;
}

export const MEMORY_RETURN_DEFAULTS: MemoryReturnOptions = { checkMs: 10_000, growthBytes: 64 * 1024 * 1024, maxBusy: 0.05 };

/** Returns freed heap pages after growth, when the process is quiet; stop() ends it. */
export class MemoryReturner {
  private readonly opts: MemoryReturnOptions;
  private readonly timer: NodeJS.Timeout;
  private baseline = process.memoryUsage.rss();
  private elu = performance.eventLoopUtilization();
  private running = false;
  /** Returns so far, for tests and logs. */
  runs = 0;

  constructor(opts: Partial<MemoryReturnOptions> = {}) {
    this.opts = { ...MEMORY_RETURN_DEFAULTS, ...opts };
    this.timer = setInterval(() => void this.check(), this.opts.checkMs);
    this.timer.unref();
  }

  private async check(): Promise<void> {
    const busy = performance.eventLoopUtilization(this.elu).utilization;
    this.elu = performance.eventLoopUtilization();
    if (this.running) return;
    const rss = process.memoryUsage.rss();
    if (rss < this.baseline) this.baseline = rss;
    if (busy > this.opts.maxBusy || rss - this.baseline < this.opts.growthBytes) return;
    this.running = true;
    const start = performance.now();
    try {
      const bytes = await returnFreedMemory();
      this.runs++;
      returned.inc({}, bytes);
      log.info('returned freed memory to the OS', { mib: Math.round(bytes / 1048576), rssMib: Math.round(process.memoryUsage.rss() / 1048576), ms: Math.round(performance.now() - start) });
    } catch (e) {
      log.warn('could not return freed memory', { error: e });
    } finally {
      this.baseline = process.memoryUsage.rss();
      this.elu = performance.eventLoopUtilization();
      this.running = false;
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
