// Public surface of DNS addressing.
export { DnsService, DNS_DEFAULTS, defaultVipStorePath, type DnsServiceOptions, type DnsGeneration, type DnsStatus } from './service.ts';
export { DnsServer, DEFAULT_DNS_LISTEN, type DnsServerOptions } from './server.ts';
export { Zone, type ZoneOptions, type Lookup } from './zone.ts';
export { desiredRecords, vipNames, instanceName, portLabel, DEFAULT_TTL, INSTANCE_LABEL, type DesiredRecords, type RecordProblem, type RecordsOptions } from './records.ts';
export { plan, sync, emptyPlan, MemoryRecordStore, type Plan, type RecordStore, type RecordUpdate } from './plan.ts';
export { allocate, preferredSlot, VipAllocator, VipExhaustedError, DEFAULT_VIP_CIDR, type VipStore, type VipTable, type VersionedVipTable, type CasResult, type Tombstone } from '../addresses/allocator.ts';
export { FileVipStore, VipStoreError } from '../addresses/file-store.ts';
export { type DnsRecord, type RecordType, recordKey, recordText, compareRecords, inZone, TYPE, typeName } from './rr.ts';
export { EtcdRecordStore, parseEtcdStoreUrl, encodeRecord, namePath, DEFAULT_SKYDNS_PREFIX, DEFAULT_OWNERS_PREFIX, type EtcdRecordStoreOptions } from './etcd-store.ts';
export { EtcdVipStore, DEFAULT_VIP_KEY, type EtcdVipStoreOptions } from '../addresses/etcd-store.ts';
export { RecordsApiServer, readTokenFile, parseRecord, recordsApiStore, ApiError, type RecordsApiOptions, type RecordsApiFlags } from './api.ts';
export { FileRecordStore } from './file-record-store.ts';
