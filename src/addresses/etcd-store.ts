// The VIP table in etcd: one key holding the table as JSON; its version is the key's mod
// revision (0 when absent), and compare-and-swap is a transaction on that revision, so
// replicas sharing one etcd agree on every allocation.
import { Etcd3 } from 'etcd3';
import { clientOptions } from '../shared/etcd.ts';
import { normalizeRoot } from '../shared/paths.ts';
import type { CasResult, VersionedVipTable, VipStore, VipTable } from './allocator.ts';

export const DEFAULT_VIP_KEY = '/isthmus/vips';

export interface EtcdVipStoreOptions {
  readonly endpoints: readonly string[];
  /** Key of the table (default /isthmus/vips). */
  readonly key?: string;
  readonly requestTimeoutMs?: number;
}

export class EtcdVipStore implements VipStore {
  readonly id: string;
  private readonly key: string;
  private readonly client: Etcd3;

  constructor(opts: EtcdVipStoreOptions) {
    this.key = normalizeRoot(opts.key ?? DEFAULT_VIP_KEY);
    this.id = `etcd://${opts.endpoints.join(',')}${this.key}`;
    this.client = new Etcd3(clientOptions(opts.endpoints, opts.requestTimeoutMs ?? 5000));
  }

  async load(): Promise<VersionedVipTable> {
    const res = await this.client.kv.range({ key: Buffer.from(this.key) });
    const kv = res.kvs[0];
    if (!kv) return { version: 0, table: undefined };
    return { version: Number(kv.mod_revision), table: parseTable(kv.value, this.id) };
  }

  async compareAndSwap(expected: number, table: VipTable): Promise<CasResult> {
    const key = Buffer.from(this.key);
    const res = await this.client.kv.txn({
      compare: [{ key, target: 'Mod', result: 'Equal', mod_revision: expected }],
      success: [{ request_put: { key, value: Buffer.from(JSON.stringify(table)) } }],
      failure: [{ request_range: { key } }],
    });
    if (res.succeeded) return { ok: true, version: Number(res.header.revision) };
    const kv = res.responses[0]?.response_range.kvs[0];
    return { ok: false, current: kv ? { version: Number(kv.mod_revision), table: parseTable(kv.value, this.id) } : { version: 0, table: undefined } };
  }

  async close(): Promise<void> {
    this.client.close();
  }
}

function parseTable(value: Buffer, id: string): VipTable {
  const t = JSON.parse(value.toString()) as VipTable;
  if (typeof t !== 'object' || t === null || typeof t.cidr !== 'string' || typeof t.allocations !== 'object') throw new Error(`${id}: not a VIP table`);
  return { cidr: t.cidr, allocations: t.allocations, tombstones: t.tombstones ?? {} };
}
