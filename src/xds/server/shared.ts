// State every connection of one ADS server shares: the write budget, the recent change
// log, the interned name lists.
import { metrics } from '../../shared/metrics.ts';
import type { TypeUrl } from '../resources.ts';
import { NameTable, SetTable } from './names.ts';
import type { ResourceSnapshot } from './types.ts';

const inflightGauge = metrics.gauge('isthmus_xds_inflight_bytes', 'Bytes of xDS responses handed to streams and not yet written out.');
const waitingGauge = metrics.gauge('isthmus_xds_waiting_connections', 'Connections with a response waiting for room in the write budget.');

/** Something the budget can ask to write now. */
export interface Writer {
  /** Writes what is due if it can; adds what it wrote to the budget. */
  flush(): void;
  readonly closed: boolean;
}

/**
 * Bounds the bytes of responses in flight across all connections. A reconnect storm of a
 * thousand full-state pushes waits here, in arrival order, instead of holding every
 * encoded response in memory at once.
 */
export class WriteBudget {
  readonly limit: number;
  private inflight = 0;
  private parked = 0;
  private readonly waiting = new Set<Writer>();
  private pumping = false;

  constructor(limit: number) {
    this.limit = limit;
  }

  /** True if a writer may write now; otherwise it is queued and flushed when there is room. */
  admit(w: Writer): boolean {
    if (this.inflight < this.limit && (!this.waiting.size || this.pumping)) return true;
    if (!this.waiting.has(w)) {
      this.waiting.add(w);
      waitingGauge.set({}, this.waiting.size);
    }
    // Room, but others were first: let them go in order.
    if (this.inflight < this.limit && !this.pumping) setImmediate(() => this.pump());
    return false;
  }

  /** A writer that went away stops waiting. */
  forget(w: Writer): void {
    if (this.waiting.delete(w)) waitingGauge.set({}, this.waiting.size);
  }

  started(bytes: number): void {
    this.inflight += bytes;
    inflightGauge.set({}, this.inflight);
  }

  finished(bytes: number): void {
    this.inflight -= bytes;
    inflightGauge.set({}, this.inflight);
    if (this.waiting.size && this.inflight < this.limit) this.pump();
  }

  /**
   * A write is slow to leave: stop counting it, so that one slow proxy cannot stall the
   * rest. Parked bytes are bounded too, by the same limit and, like admission, always with
   * room for one: false when there is no room.
   */
  park(bytes: number): boolean {
    if (this.parked > 0 && this.parked + bytes > this.limit) return false;
    this.parked += bytes;
    this.finished(bytes);
    return true;
  }

  unpark(bytes: number): void {
    this.parked -= bytes;
  }

  get inFlight(): number {
    return this.inflight;
  }

  get queued(): number {
    return this.waiting.size;
  }

  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      // Each flush writes synchronously, so the check sees what the previous one added.
      for (const w of this.waiting) {
        if (this.inflight >= this.limit) break;
        this.waiting.delete(w);
        if (!w.closed) w.flush();
      }
    } finally {
      this.pumping = false;
      waitingGauge.set({}, this.waiting.size);
    }
  }
}

/** Names changed per type over the last generations, so a connection that fell behind sends only those. */
export class ChangeLog {
  private readonly entries: { seq: number; changed: ReadonlyMap<TypeUrl, ReadonlySet<string>> }[] = [];
  private readonly keep: number;

  constructor(keep = 64) {
    this.keep = keep;
  }

  record(snap: ResourceSnapshot): void {
    const last = this.entries.at(-1);
    if (last && last.seq >= snap.seq) this.entries.length = 0;
    this.entries.push({ seq: snap.seq, changed: snap.changed });
    if (this.entries.length > this.keep) this.entries.shift();
  }

  /** Names of a type changed after generation `from` up to `snap`; undefined if not known that far back. */
  since(typeUrl: TypeUrl, from: number, snap: ResourceSnapshot): ReadonlySet<string> | undefined {
    if (from === snap.seq) return new Set();
    if (from === snap.seq - 1) return snap.changed.get(typeUrl) ?? new Set();
    const first = this.entries.findIndex((e) => e.seq === from + 1);
    if (first < 0 || this.entries.at(-1)!.seq !== snap.seq || this.entries.length - first !== snap.seq - from) return undefined;
    const out = new Set<string>();
    for (let i = first; i < this.entries.length; i++) for (const n of this.entries[i]!.changed.get(typeUrl) ?? []) out.add(n);
    return out;
  }
}

export interface Shared {
  readonly budget: WriteBudget;
  readonly changes: ChangeLog;
  readonly names: NameTable;
  readonly sets: SetTable;
}

/** 64 MiB: a few full-state responses of a large mesh at a time. */
export const DEFAULT_INFLIGHT_BYTES = 64 * 1024 * 1024;

export function newShared(limit = DEFAULT_INFLIGHT_BYTES): Shared {
  return { budget: new WriteBudget(limit), changes: new ChangeLog(), names: new NameTable(), sets: new SetTable() };
}
