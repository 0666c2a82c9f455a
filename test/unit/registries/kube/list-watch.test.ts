// The list+watch state machine against a scripted fake API server: what it does on 410 Gone,
// on network errors, on an absent CRD, and that it never empties its store on the way.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type KubeApi, KubeApiError, type KubeList, type KubeObject, type WatchEvent } from '../../../../src/registries/kube/client.ts';
import { ListWatch } from '../../../../src/registries/kube/list-watch.ts';
import { RPC_SERVICES, SERVICES } from '../../../../src/registries/kube/resources.ts';
import { waitFor } from '../../../helpers/wait.ts';

interface ActiveWatch {
  readonly path: string;
  readonly query: Readonly<Record<string, string | number | boolean | undefined>>;
  emit(e: WatchEvent): void;
  open(): void;
  /** The server ends the stream cleanly. */
  close(): void;
  fail(err: Error): void;
}

/** Answers lists from `list()` and hands each watch request to the test. */
class FakeApi implements KubeApi {
  readonly server = 'https://fake';
  list: (path: string) => KubeList = () => ({ metadata: { resourceVersion: '1' }, items: [] });
  readonly lists: string[] = [];
  readonly watches: ActiveWatch[] = [];
  /** Thrown by the next watch requests instead of opening them (e.g. 410 or refused). */
  watchErrors: Error[] = [];

  async request<T>(method: string, path: string): Promise<T> {
    assert.equal(method, 'GET');
    this.lists.push(path);
    return this.list(path) as T;
  }

  watch(path: string, query: Readonly<Record<string, string | number | boolean | undefined>>, onEvent: (e: WatchEvent) => void, signal: AbortSignal, onOpen?: () => void): Promise<void> {
    const err = this.watchErrors.shift();
    if (err) return Promise.reject(err);
    return new Promise((resolve, reject) => {
      const w: ActiveWatch = { path, query, emit: onEvent, open: () => onOpen?.(), close: resolve, fail: reject };
      signal.addEventListener('abort', () => resolve(), { once: true });
      this.watches.push(w);
    });
  }

  async nextWatch(after: number): Promise<ActiveWatch> {
    return waitFor(() => this.watches[after], { timeoutMs: 5000, intervalMs: 5, what: `watch #${after + 1}` });
  }
}

function svc(name: string, rv: string): KubeObject {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'ns', resourceVersion: rv } };
}

const FAST = { minBackoffMs: 5, maxBackoffMs: 20, absentRecheckMs: 20 };

function names(lw: ListWatch): string[] {
  return [...lw.store.keys()].sort();
}

test('lists, then watches from the list\'s resource version; events and bookmarks move it on', async () => {
  const api = new FakeApi();
  api.list = () => ({ metadata: { resourceVersion: '10' }, items: [svc('a', '5'), svc('b', '9')] });
  const lw = new ListWatch(api, SERVICES, undefined, 'kube://t', FAST, () => {});
  lw.start();
  const w1 = await api.nextWatch(0);
  assert.equal(w1.path, '/api/v1/services');
  assert.equal(w1.query.resourceVersion, '10');
  assert.equal(w1.query.allowWatchBookmarks, true);
  w1.open();
  assert.equal(lw.status.phase, 'watching');
  assert.equal(lw.status.synced, true);
  w1.emit({ type: 'ADDED', object: svc('c', '11') });
  w1.emit({ type: 'MODIFIED', object: svc('a', '12') });
  w1.emit({ type: 'DELETED', object: svc('b', '13') });
  w1.emit({ type: 'BOOKMARK', object: { metadata: { resourceVersion: '20' } } });
  assert.deepEqual(names(lw), ['ns/a', 'ns/c']);
  w1.close(); // the server's timeoutSeconds ran out
  const w2 = await api.nextWatch(1);
  assert.equal(w2.query.resourceVersion, '20');
  assert.equal(api.lists.length, 1, 'a cleanly closed watch resumes, it does not list again');
  await lw.stop();
  assert.equal(lw.status.phase, 'stopped');
});

test('410 Gone in the stream: list again, and the store goes from old to new in one step', async () => {
  const api = new FakeApi();
  let items = [svc('a', '1'), svc('b', '2'), svc('c', '3')];
  api.list = () => ({ metadata: { resourceVersion: String(100 + api.lists.length) }, items });
  const seen: string[][] = [];
  const lw = new ListWatch(api, SERVICES, 'ns', 'kube://t', FAST, () => seen.push(names(lw)));
  lw.start();
  const w1 = await api.nextWatch(0);
  assert.equal(w1.path, '/api/v1/namespaces/ns/services');
  w1.open();
  // While the watch was down, b was deleted and d created; the API server has compacted.
  items = [svc('a', '1'), svc('c', '3'), svc('d', '4')];
  w1.emit({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version' } as KubeObject });
  const w2 = await api.nextWatch(1);
  assert.equal(w2.query.resourceVersion, '102', 'watching from the new list');
  assert.deepEqual(seen, [['ns/a', 'ns/b', 'ns/c'], ['ns/a', 'ns/c', 'ns/d']], 'no state in between: nothing dropped and put back');
  assert.equal(lw.status.relists, 1);
  await lw.stop();
});

test('410 answered to the watch request itself: list again', async () => {
  const api = new FakeApi();
  api.list = () => ({ metadata: { resourceVersion: String(api.lists.length) }, items: [svc('a', '1')] });
  api.watchErrors = [new KubeApiError('WATCH /api/v1/services: HTTP 410 Gone', 410)];
  const lw = new ListWatch(api, SERVICES, undefined, 'kube://t', FAST, () => {});
  lw.start();
  const w = await api.nextWatch(0);
  assert.equal(api.lists.length, 2);
  assert.equal(w.query.resourceVersion, '2');
  await lw.stop();
});

test('network errors: back off, keep every object, say since when, resume from the last resource version', async () => {
  const api = new FakeApi();
  api.list = () => ({ metadata: { resourceVersion: '7' }, items: [svc('a', '1'), svc('b', '2')] });
  let changes = 0;
  const lw = new ListWatch(api, SERVICES, undefined, 'kube://t', { ...FAST, minBackoffMs: 50, maxBackoffMs: 50 }, () => changes++);
  lw.start();
  const w1 = await api.nextWatch(0);
  w1.open();
  w1.emit({ type: 'ADDED', object: svc('c', '8') });
  const before = changes;
  const refused = (): KubeApiError => new KubeApiError('WATCH /api/v1/services: ECONNREFUSED connect ECONNREFUSED 127.0.0.1:6443', 0);
  api.watchErrors = [refused(), refused()];
  w1.fail(new KubeApiError('WATCH /api/v1/services: ECONNRESET socket hang up', 0));
  await waitFor(() => lw.status.phase === 'backoff', { timeoutMs: 2000, intervalMs: 2, what: 'backoff' });
  const failing = lw.status;
  assert.equal(failing.lastError, 'ECONNRESET socket hang up', 'the request line is left out, so kinds failing alike group');
  assert.ok(failing.failingSince !== undefined && failing.lastSync !== undefined && failing.lastSync <= failing.failingSince);
  assert.deepEqual(names(lw), ['ns/a', 'ns/b', 'ns/c']);
  const w2 = await api.nextWatch(1);
  assert.equal(w2.query.resourceVersion, '8', 'resumed from the last event, not listed again');
  assert.equal(api.lists.length, 1);
  assert.match(lw.status.lastError ?? '', /ECONNREFUSED/);
  assert.equal(lw.status.failingSince, failing.failingSince, 'failing since the first failure');
  w2.open();
  assert.equal(lw.status.failingSince, undefined);
  assert.equal(lw.status.phase, 'watching');
  assert.equal(changes, before, 'errors changed no object');
  assert.deepEqual(names(lw), ['ns/a', 'ns/b', 'ns/c']);
  await lw.stop();
});

test('an error in the stream (not 410) ends the watch; it resumes after a backoff', async () => {
  const api = new FakeApi();
  const lw = new ListWatch(api, SERVICES, undefined, 'kube://t', FAST, () => {});
  lw.start();
  const w1 = await api.nextWatch(0);
  w1.open();
  w1.emit({ type: 'ERROR', object: { kind: 'Status', code: 500, reason: 'InternalError', message: 'etcdserver: leader changed' } as KubeObject });
  const w2 = await api.nextWatch(1);
  assert.equal(api.lists.length, 1);
  assert.equal(w2.query.resourceVersion, '1');
  await lw.stop();
});

test('a failed list is retried until it succeeds; unsynced until then', async () => {
  const api = new FakeApi();
  let fail = 2;
  api.list = () => {
    if (fail-- > 0) throw new KubeApiError('GET /api/v1/services: HTTP 503 ServiceUnavailable', 503);
    return { metadata: { resourceVersion: '3' }, items: [svc('a', '1')] };
  };
  const lw = new ListWatch(api, SERVICES, undefined, 'kube://t', FAST, () => {});
  lw.start();
  assert.equal(lw.status.synced, false);
  await api.nextWatch(0);
  assert.equal(api.lists.length, 3);
  assert.equal(lw.status.synced, true);
  await lw.stop();
});

test('an optional kind that is not installed is absent (synced, empty) and looked for again', async () => {
  const api = new FakeApi();
  let installed = false;
  api.list = (path) => {
    if (!installed) throw new KubeApiError(`GET ${path}: HTTP 404 NotFound`, 404);
    return { metadata: { resourceVersion: '5' }, items: [{ metadata: { name: 'r', namespace: 'ns' } }] };
  };
  const lw = new ListWatch(api, RPC_SERVICES, undefined, 'kube://t', FAST, () => {});
  lw.start();
  await waitFor(() => lw.status.phase === 'absent', { timeoutMs: 2000, intervalMs: 2, what: 'absent' });
  assert.equal(lw.status.synced, true);
  assert.equal(lw.status.failingSince, undefined);
  installed = true;
  const w = await api.nextWatch(0);
  assert.equal(w.path, '/apis/rpc.isthmus.io/v1alpha1/rpcservices');
  assert.deepEqual(names(lw), ['ns/r']);
  await lw.stop();
});

test('a kind that disappears (404 after it was listed) keeps its objects and reports it', async () => {
  const api = new FakeApi();
  api.list = () => ({ metadata: { resourceVersion: '5' }, items: [{ metadata: { name: 'r', namespace: 'ns' } }] });
  const lw = new ListWatch(api, RPC_SERVICES, undefined, 'kube://t', FAST, () => {});
  lw.start();
  const w1 = await api.nextWatch(0);
  w1.open();
  api.watchErrors = Array.from({ length: 1000 }, () => new KubeApiError('WATCH: HTTP 404 NotFound', 404));
  w1.fail(new KubeApiError('WATCH: HTTP 404 NotFound', 404));
  await waitFor(() => lw.status.phase === 'backoff', { timeoutMs: 2000, intervalMs: 2, what: 'backoff' });
  assert.match(lw.status.lastError ?? '', /RPCService is no longer served by the API server/);
  assert.deepEqual(names(lw), ['ns/r']);
  await lw.stop();
});

test('stop() ends a watch in backoff at once', async () => {
  const api = new FakeApi();
  api.list = () => {
    throw new KubeApiError('GET: ECONNREFUSED', 0);
  };
  const lw = new ListWatch(api, SERVICES, undefined, 'kube://t', { minBackoffMs: 60_000, maxBackoffMs: 60_000 }, () => {});
  lw.start();
  await waitFor(() => lw.status.phase === 'backoff', { timeoutMs: 2000, intervalMs: 2, what: 'backoff' });
  const t0 = Date.now();
  await lw.stop();
  assert.ok(Date.now() - t0 < 1000);
});
