// A DnsService fed the way `serve` feeds it: models (or registries) through the pipeline's
// address and retirement stages, with its own VIP allocator and store.
import { type Observable, type Subscription } from 'rxjs';
import { VipAllocator, type VipStore } from '../../src/addresses/allocator.ts';
import { FileVipStore } from '../../src/addresses/file-store.ts';
import { DnsService, type DnsServiceOptions } from '../../src/dns/service.ts';
import type { Registry } from '../../src/model/registry.ts';
import type { ModelSnapshot } from '../../src/model/snapshot.ts';
import { meshSnapshots, pipeline } from '../../src/pipeline/pipeline.ts';

export type TestDnsOptions = DnsServiceOptions & {
  readonly cidr: string;
  /** The VIP table file; ignored when `vipStore` is given. */
  readonly vipStorePath?: string;
  readonly vipStore?: VipStore;
  readonly vipWaitMs?: number;
};

export class TestDns extends DnsService {
  readonly allocator: VipAllocator;
  private readonly vipStore: VipStore;
  private sub?: Subscription;
  private readonly topts: TestDnsOptions;

  constructor(opts: TestDnsOptions) {
    super(opts);
    this.topts = opts;
    if (!opts.vipStore && !opts.vipStorePath) throw new Error('TestDns needs vipStore or vipStorePath');
    this.vipStore = opts.vipStore ?? new FileVipStore(opts.vipStorePath!);
    this.allocator = new VipAllocator(this.vipStore, { cidr: opts.cidr, ttl: opts.ttl, ...(opts.clock ? { clock: opts.clock } : {}) });
  }

  /** Starts the responder and applies every model of `source` (models, or registries through the whole pipeline). */
  async follow(source: Observable<ModelSnapshot> | readonly Registry[]): Promise<void> {
    await this.start();
    const addresses = { allocator: this.allocator, ttlSeconds: this.topts.ttl, ...(this.topts.vipWaitMs !== undefined ? { waitMs: this.topts.vipWaitMs } : {}) };
    const snapshots = Array.isArray(source)
      ? pipeline({ registries: source, syncTimeoutMs: 10_000, debounceQuietMs: 0, debounceMaxMs: 50, addresses }).snapshots
      : meshSnapshots(source as Observable<ModelSnapshot>, { addresses });
    this.sub = snapshots.subscribe((s) => this.offer(s));
  }

  override async close(): Promise<void> {
    this.sub?.unsubscribe();
    await super.close();
    await this.vipStore.close();
  }
}
