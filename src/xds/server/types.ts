// What the ADS server needs from the resource cache; it knows nothing else about it.
import type { Observable } from 'rxjs';
import type { ProxyInfo } from '../proxy.ts';
import type { TypeUrl } from '../resources.ts';

export interface Resource {
  readonly name: string;
  readonly version: string;
  /** Encoded google.protobuf.Any, shared across connections. */
  readonly any: Uint8Array;
  /** Encoded delta Resource wrapper, shared across connections. */
  deltaBytes(): Uint8Array;
}

export interface ResourceSnapshot {
  /** Increases by one per generation; lets connections diff only what changed. */
  readonly seq: number;
  readonly changed: ReadonlyMap<TypeUrl, ReadonlySet<string>>;
  /** Version label of a model-wide set (EDS). */
  readonly endpointsVersion: string;
  /** Model content version, used as the delta system_version_info. */
  readonly model: { readonly version: string };
  wildcard(typeUrl: TypeUrl, proxy: ProxyInfo): ReadonlyMap<string, Resource>;
  resolve(typeUrl: TypeUrl, name: string, proxy: ProxyInfo): Resource | undefined;
  /** Version of the wildcard set of a type for this proxy's class. */
  view(proxy: ProxyInfo): { readonly versions: Readonly<Record<TypeUrl, string>> };
}

/** The server's view of the cache: the latest snapshot and a stream of new ones. */
export interface SnapshotSource {
  current(): ResourceSnapshot | undefined;
  readonly snapshots: Observable<ResourceSnapshot>;
}

export interface NackInfo {
  readonly version: string;
  readonly nonce: string;
  readonly message: string;
  readonly at: string;
}

export type SyncStatus = 'SYNCED' | 'STALE' | 'NACKED' | 'NOT_SENT';

export interface TypeStatus {
  readonly typeUrl: TypeUrl;
  readonly subscribed: 'wildcard' | number;
  readonly sentVersion: string;
  readonly sentNonce: string;
  readonly ackedVersion: string;
  readonly status: SyncStatus;
  readonly nack?: NackInfo;
  readonly resources: number;
}

export interface ConnectionStatus {
  readonly id: string;
  readonly connection: number;
  readonly stream: 'sotw' | 'delta';
  readonly kind: ProxyInfo['kind'];
  readonly peer: string;
  readonly connectedAt: string;
  readonly types: readonly TypeStatus[];
}
