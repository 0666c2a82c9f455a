// Writes what Isthmus resolved for each RPCService to its status subresource: only when it
// differs from what the object already says, one write at a time. A conflict (409) or a
// vanished object needs no retry: the watch event that caused it triggers a new round.
// Two replicas compute the same status, so the second finds nothing to write.
import { backoffDelay } from '../../shared/backoff.ts';
import { canonicalJson } from '../../model/hash.ts';
import { logger } from '../../shared/log.ts';
import { metrics } from '../../shared/metrics.ts';
import { type KubeApi, KubeApiError } from './client.ts';
import { objectPath, RPC_SERVICES } from './resources.ts';
import { type RpcServiceLike, type RpcServiceStatus, withConditions } from './rpcservice.ts';

const log = logger('registry.kube.status');
const writes = metrics.counter('isthmus_kube_status_writes_total', 'RPCService status writes, by result (ok, conflict, gone, error)');

interface Pending {
  readonly obj: RpcServiceLike;
  readonly status: RpcServiceStatus;
  readonly text: string;
}

export class StatusWriter {
  private readonly api: KubeApi;
  private readonly registry: string;
  private readonly retry: () => void;
  private readonly pending = new Map<string, Pending>();
  /** Key → status text last written and the resource version it was written over. */
  private readonly written = new Map<string, { text: string; over: string | undefined }>();
  private busy = false;
  private closed = false;
  private failures = 0;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(api: KubeApi, registry: string, retry: () => void) {
    this.api = api;
    this.registry = registry;
    this.retry = retry;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.pending.clear();
  }

  /** Queues a write for every object whose status is not what it should be. */
  update(objects: readonly RpcServiceLike[], desired: ReadonlyMap<string, RpcServiceStatus>): void {
    if (this.closed) return;
    const now = new Date();
    const seen = new Set<string>();
    for (const obj of objects) {
      const key = `${obj.metadata?.namespace ?? 'default'}/${obj.metadata?.name ?? ''}`;
      const want = desired.get(key);
      if (!want) continue;
      seen.add(key);
      const status = withConditions(want, obj.status, now);
      const text = canonicalJson(status);
      const prev = this.written.get(key);
      if (text === canonicalJson(obj.status ?? null) || (prev?.text === text && prev.over === obj.metadata?.resourceVersion)) {
        this.pending.delete(key);
        continue;
      }
      this.pending.set(key, { obj, status, text });
    }
    for (const key of this.pending.keys()) if (!seen.has(key)) this.pending.delete(key);
    for (const key of this.written.keys()) if (!seen.has(key)) this.written.delete(key);
    void this.drain();
  }

  private async drain(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      while (!this.closed && this.pending.size > 0) {
        const [key, p] = this.pending.entries().next().value as [string, Pending];
        this.pending.delete(key);
        await this.write(key, p);
      }
    } finally {
      this.busy = false;
    }
  }

  private async write(key: string, p: Pending): Promise<void> {
    const [namespace, name] = key.split('/') as [string, string];
    try {
      await this.api.request('PUT', objectPath(RPC_SERVICES, namespace, name, 'status'), { body: { ...p.obj, status: p.status } });
      this.written.set(key, { text: p.text, over: p.obj.metadata?.resourceVersion });
      this.failures = 0;
      writes.inc({ registry: this.registry, result: 'ok' });
      log.debug('RPCService status written', { registry: this.registry, rpcservice: key, endpoints: p.status.endpoints, conflicts: p.status.conflicts.length });
    } catch (err) {
      if (this.closed) return;
      const e = err instanceof KubeApiError ? err : undefined;
      if (e?.conflict || e?.notFound) {
        writes.inc({ registry: this.registry, result: e.conflict ? 'conflict' : 'gone' });
        return;
      }
      writes.inc({ registry: this.registry, result: 'error' });
      this.failures++;
      log.warn('cannot write RPCService status; will retry', { registry: this.registry, rpcservice: key, err });
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => this.retry(), backoffDelay(this.failures - 1, { initialMs: 500, maxMs: 30_000 }));
    }
  }
}
