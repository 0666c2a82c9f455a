// Public surface of DNS addressing.
export { DnsService, DNS_DEFAULTS, type DnsServiceOptions, type DnsGeneration, type DnsStatus, type RoutedResult } from './service.ts';
export { DnsServer, DEFAULT_DNS_LISTEN, type DnsServerOptions } from './server.ts';
export { Zone, type ZoneOptions, type Lookup } from './zone.ts';
export { desiredRecords, instanceName, portLabel, DEFAULT_TTL, INSTANCE_LABEL, type DesiredRecords, type RecordProblem, type RecordsOptions } from './records.ts';
export { plan, sync, emptyPlan, MemoryRecordStore, type Plan, type RecordStore, type RecordUpdate } from './plan.ts';
export { type DnsRecord, type RecordType, recordKey, recordText, compareRecords, inZone, TYPE, typeName } from './rr.ts';
export { EtcdRecordStore, parseEtcdStoreUrl, encodeRecord, namePath, DEFAULT_SKYDNS_PREFIX, DEFAULT_OWNERS_PREFIX, type EtcdRecordStoreOptions } from './etcd-store.ts';
export { RecordsApiServer, readTokenFile, parseRecord, recordsApiStore, ApiError, type RecordsApiOptions, type RecordsApiFlags } from './api.ts';
export { FileRecordStore } from './file-record-store.ts';
