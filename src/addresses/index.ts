// Public surface of address allocation: VIPs for names, and the stores that keep them.
export { allocate, preferredSlot, VipAllocator, VipExhaustedError, DEFAULT_VIP_CIDR, type VipStore, type VipTable, type VersionedVipTable, type CasResult, type Tombstone } from './allocator.ts';
export { defaultVipStorePath, FileVipStore, VipStoreError } from './file-store.ts';
export { EtcdVipStore, DEFAULT_VIP_KEY, type EtcdVipStoreOptions } from './etcd-store.ts';
import type { VipStore } from './allocator.ts';
import { EtcdVipStore } from './etcd-store.ts';
import { FileVipStore } from './file-store.ts';

/** etcd://HOST:PORT[,HOST:PORT][/KEY] → the etcd VIP store's options. */
export function etcdVipStoreOptions(url: string): { endpoints: string[]; key?: string } {
  const m = /^etcd:\/\/([^/]+)(\/.*)?$/.exec(url);
  if (!m) throw new Error(`not an etcd URL (etcd://HOST:PORT[,HOST:PORT][/KEY]): ${url}`);
  return { endpoints: m[1]!.split(','), ...(m[2] && m[2] !== '/' ? { key: m[2] } : {}) };
}

/** A VIP store for `--vip-store`: a file path, or etcd://… */
export function vipStoreFromUrl(pathOrUrl: string): VipStore {
  return pathOrUrl.startsWith('etcd:') ? new EtcdVipStore(etcdVipStoreOptions(pathOrUrl)) : new FileVipStore(pathOrUrl);
}
