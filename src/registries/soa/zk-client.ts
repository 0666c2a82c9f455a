// A small typed, promise-based wrapper around node-zookeeper-client (pure JavaScript,
// CommonJS, no type declarations of its own). It adds what the library lacks:
//  - a read timeout: the library never notices a server that stops answering (it keeps
//    pinging a socket nobody reads); like the Java client, we drop the connection when
//    nothing has been heard for 2/3 of the session timeout, and the library reconnects;
//  - a close that always ends, even when the server never answers the close request;
//  - errors as a class with a numeric code, and watches as plain callbacks.
import { normalizeRoot } from '../../shared/paths.ts';
import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';

/** ZooKeeper error codes this project looks at (KeeperException.Code). */
export const ZK_CODES = {
  CONNECTION_LOSS: -4,
  OPERATION_TIMEOUT: -7,
  NO_NODE: -101,
  NO_AUTH: -102,
  NO_CHILDREN_FOR_EPHEMERALS: -108,
  NODE_EXISTS: -110,
  NOT_EMPTY: -111,
  SESSION_EXPIRED: -112,
  AUTH_FAILED: -115,
} as const;

/** Watch event types (Watcher.Event.EventType). */
export const ZK_EVENTS = { NODE_CREATED: 1, NODE_DELETED: 2, NODE_DATA_CHANGED: 3, NODE_CHILDREN_CHANGED: 4 } as const;

export class ZkError extends Error {
  readonly code: number;
  readonly path?: string;
  constructor(code: number, message: string, path?: string) {
    super(message);
    this.name = 'ZkError';
    this.code = code;
    if (path !== undefined) this.path = path;
  }
  /** The request may or may not have been applied; the session may still be alive. */
  get connectionLoss(): boolean {
    return this.code === ZK_CODES.CONNECTION_LOSS || this.code === ZK_CODES.OPERATION_TIMEOUT;
  }
}

export interface ZkWatchEvent {
  readonly type: number;
  readonly path: string;
}
export type ZkWatcher = (event: ZkWatchEvent) => void;

export interface ZkStat {
  /** Session id (16 hex digits) owning an ephemeral node; all zeros for a persistent one. */
  readonly ephemeralOwner: string;
  readonly numChildren: number;
}

// --- the library's shape, as far as we use it ---------------------------------------
interface RawException {
  getCode(): number;
  message: string;
}
interface RawEvent {
  getType(): number;
  getPath(): string;
}
interface RawStat {
  ephemeralOwner: Buffer;
  numChildren: number;
}
type Cb<T> = (err: RawException | null, value: T) => void;
interface RawConnectionManager extends EventEmitter {
  state: number;
  socket?: Socket;
  pendingBuffer: Buffer | null;
  connectTimeoutHandler: NodeJS.Timeout | null;
  setState(state: number): void;
  findNextServer(cb: (server: unknown) => void): void;
  onSocketData(buffer: Buffer): void;
  onSocketConnected(): void;
  queue(request: unknown): void;
  chrootPath?: string;
  zxid: Buffer;
  watcherManager: {
    isEmpty(): boolean;
    getDataWatcherPaths(): string[];
    getExistenceWatcherPaths(): string[];
    getChildWatcherPaths(): string[];
  };
}
interface RawJute {
  OP_CODES: { SET_WATCHES: number };
  Request: new (header: unknown, payload: unknown) => unknown;
  protocol: {
    RequestHeader: new () => { type: number; xid: number };
    SetWatches: new () => { relativeZxid: Buffer; dataWatches: string[]; existWatches: string[]; childWatches: string[]; setChrootPath(p: string | undefined): void };
  };
}
interface RawClient extends EventEmitter {
  connectionManager: RawConnectionManager;
  connect(): void;
  close(): void;
  getSessionId(): Buffer;
  getSessionTimeout(): number;
  getChildren(path: string, watcher: ((e: RawEvent) => void) | undefined, cb: Cb<string[]>): void;
  exists(path: string, watcher: ((e: RawEvent) => void) | undefined, cb: Cb<RawStat | null>): void;
  getData(path: string, watcher: ((e: RawEvent) => void) | undefined, cb: Cb<Buffer | null>): void;
  create(path: string, data: Buffer | undefined, mode: number, cb: Cb<string>): void;
  remove(path: string, version: number, cb: Cb<void>): void;
}
interface RawModule {
  createClient(connect: string, opts: { sessionTimeout: number; spinDelay: number; retries: number }): RawClient;
  CreateMode: { PERSISTENT: number; EPHEMERAL: number };
}
const requireCjs = createRequire(import.meta.url);
const zookeeper = requireCjs('node-zookeeper-client') as RawModule;
const jute = requireCjs('node-zookeeper-client/lib/jute/index.js') as RawJute;

// ConnectionManager.STATES of the library.
const CM_DISCONNECTED = 0;
const CM_CONNECTING = 1;
const CM_CONNECTED = 2;
const CM_CONNECTED_READ_ONLY = 3;
const CM_CLOSING = -1;
const CM_CLOSED = -2;

/**
 * Guards against weaknesses of the library's connection manager (1.1.x):
 *  - a reply it cannot decode (a server that is not ZooKeeper, a frame cut by a dropped
 *    connection) throws out of a socket 'data' listener, which would crash the process:
 *    here it drops the connection instead, and the library reconnects;
 *  - a partial frame of a dropped connection is kept and glued to the next connection's
 *    first bytes: cleared on every new connection;
 *  - a reconnect timer that fires after close() opens a socket again: suppressed;
 *  - on reconnect it re-arms every watch in one SetWatches packet; past ZooKeeper's 1 MB
 *    packet limit (some 20,000 watched paths) the server drops the connection, again and
 *    again, and the watches are silently lost: sent in batches instead, as the Java
 *    client does since 3.6.
 */
/** Bytes of watched paths per SetWatches packet (the Java client's batch size). */
const SET_WATCHES_BATCH_BYTES = 128 * 1024;

type WatchLists = { data: string[]; exist: string[]; child: string[] };

function* watchBatches(all: WatchLists): Generator<WatchLists> {
  let batch: WatchLists = { data: [], exist: [], child: [] };
  let bytes = 0;
  for (const kind of ['data', 'exist', 'child'] as const) {
    for (const p of all[kind]) {
      const n = 4 + Buffer.byteLength(p);
      if (bytes + n > SET_WATCHES_BATCH_BYTES && bytes > 0) {
        yield batch;
        batch = { data: [], exist: [], child: [] };
        bytes = 0;
      }
      batch[kind].push(p);
      bytes += n;
    }
  }
  if (bytes > 0) yield batch;
}

function harden(cm: RawConnectionManager, closed: () => boolean): void {
  const onData = cm.onSocketData;
  cm.onSocketData = function (this: RawConnectionManager, buffer: Buffer): void {
    try {
      onData.call(this, buffer);
    } catch {
      this.pendingBuffer = null;
      this.socket?.destroy();
    }
  };
  const onConnected = cm.onSocketConnected;
  cm.onSocketConnected = function (this: RawConnectionManager): void {
    this.pendingBuffer = null;
    const wm = this.watcherManager;
    const lists = { data: wm.getDataWatcherPaths(), exist: wm.getExistenceWatcherPaths(), child: wm.getChildWatcherPaths() };
    const size = [...lists.data, ...lists.exist, ...lists.child].reduce((n, p) => n + 4 + Buffer.byteLength(p), 0);
    if (size <= SET_WATCHES_BATCH_BYTES) {
      onConnected.call(this);
      return;
    }
    const isEmpty = wm.isEmpty;
    wm.isEmpty = () => true; // the original then sends the handshake only
    try {
      onConnected.call(this);
    } finally {
      wm.isEmpty = isEmpty;
    }
    for (const batch of watchBatches(lists)) {
      const header = new jute.protocol.RequestHeader();
      header.type = jute.OP_CODES.SET_WATCHES;
      header.xid = -8;
      const payload = new jute.protocol.SetWatches();
      payload.setChrootPath(this.chrootPath);
      payload.relativeZxid = this.zxid;
      payload.dataWatches = batch.data;
      payload.existWatches = batch.exist;
      payload.childWatches = batch.child;
      this.queue(new jute.Request(header, payload));
    }
  };
  const findNext = cm.findNextServer;
  cm.findNextServer = function (this: RawConnectionManager, cb: (server: unknown) => void): void {
    findNext.call(this, (server) => {
      if (closed()) {
        this.setState(CM_CLOSED);
        return;
      }
      cb(server);
    });
  };
}

export interface ZkClientOptions {
  /** Requested session timeout; the server bounds it by its min/max. Default 30 s. */
  readonly sessionTimeoutMs?: number;
  /** Pause (random up to this) after trying every server once. Default 1 s. */
  readonly spinDelayMs?: number;
}

/**
 * One ZooKeeper session. Emits 'connected' (also after a reconnect in the same session),
 * 'disconnected', 'expired' (the session is gone: make a new client), 'authFailed',
 * 'attemptFailed' (a connection attempt failed; the client goes on trying) and
 * 'readTimeout' (nothing heard for 2/3 of the session timeout; the connection is dropped).
 */
export class ZkClient extends EventEmitter {
  readonly connectString: string;
  private readonly raw: RawClient;
  private lastHeard = 0;
  private liveness: NodeJS.Timeout | undefined;
  private watchedSocket: Socket | undefined;
  private closing: Promise<void> | undefined;
  /** Rejecters of requests not answered yet: the library forgets queued requests of a dead session. */
  private readonly inflight = new Set<(err: ZkError) => void>();

  constructor(connect: string, opts: ZkClientOptions = {}) {
    super();
    this.connectString = connect;
    this.raw = zookeeper.createClient(connect, { sessionTimeout: opts.sessionTimeoutMs ?? 30_000, spinDelay: opts.spinDelayMs ?? 1000, retries: 0 });
    harden(this.raw.connectionManager, () => this.closing !== undefined);
    this.raw.on('connected', () => {
      this.watchSocket();
      this.emit('connected');
    });
    this.raw.on('disconnected', () => this.emit('disconnected'));
    this.raw.on('expired', () => {
      this.failInflight(ZK_CODES.SESSION_EXPIRED, 'session expired');
      this.emit('expired');
    });
    this.raw.on('authenticationFailed', () => this.emit('authFailed'));
    // A connection attempt that failed before a session was (re)established.
    let prev = this.raw.connectionManager.state;
    this.raw.connectionManager.on('state', (s: number) => {
      if (s === CM_DISCONNECTED && prev === CM_CONNECTING) this.emit('attemptFailed');
      prev = s;
    });
  }

  connect(): void {
    this.raw.connect();
  }

  get connected(): boolean {
    const s = this.raw.connectionManager.state;
    return s === CM_CONNECTED || s === CM_CONNECTED_READ_ONLY;
  }

  get closed(): boolean {
    return this.raw.connectionManager.state === CM_CLOSED;
  }

  /** Session id as 16 hex digits (zeros before the first connect). */
  get sessionId(): string {
    return this.raw.getSessionId().toString('hex');
  }

  /** The session timeout the server granted (the requested one before connecting). */
  get sessionTimeoutMs(): number {
    return this.raw.getSessionTimeout();
  }

  getChildren(path: string, watcher?: ZkWatcher): Promise<string[]> {
    return this.call<string[]>((cb) => this.raw.getChildren(path, wrapWatcher(watcher), cb), path);
  }

  /** A node's data ('' for none); a data watch fires on change or deletion. */
  async getData(path: string, watcher?: ZkWatcher): Promise<string> {
    const data = await this.call<Buffer | null>((cb) => this.raw.getData(path, wrapWatcher(watcher), cb), path);
    return data ? data.toString('utf8') : '';
  }

  /** The node's stat, or undefined when it does not exist (a watch then fires on creation). */
  async exists(path: string, watcher?: ZkWatcher): Promise<ZkStat | undefined> {
    const stat = await this.call<RawStat | null>((cb) => this.raw.exists(path, wrapWatcher(watcher), cb), path);
    return stat ? { ephemeralOwner: Buffer.from(stat.ephemeralOwner).toString('hex'), numChildren: stat.numChildren } : undefined;
  }

  create(path: string, mode: 'persistent' | 'ephemeral', data?: Buffer): Promise<string> {
    const m = mode === 'ephemeral' ? zookeeper.CreateMode.EPHEMERAL : zookeeper.CreateMode.PERSISTENT;
    return this.call<string>((cb) => this.raw.create(path, data, m, cb), path);
  }

  /** Creates every missing persistent node on the way to `path`, and `path` itself. */
  async mkdirp(path: string): Promise<void> {
    let at = '';
    for (const part of path.split('/').filter(Boolean)) {
      at += `/${part}`;
      try {
        await this.create(at, 'persistent');
      } catch (err) {
        if (!(err instanceof ZkError && err.code === ZK_CODES.NODE_EXISTS)) throw err;
      }
    }
  }

  /** Deletes a node (any version); a node already gone is fine. */
  async remove(path: string): Promise<void> {
    try {
      await this.call<void>((cb) => this.raw.remove(path, -1, cb), path);
    } catch (err) {
      if (!(err instanceof ZkError && err.code === ZK_CODES.NO_NODE)) throw err;
    }
  }

  /**
   * Ends the session (the server deletes its ephemeral nodes at once) when connected;
   * otherwise just stops. Resolves once the socket is gone, within `graceMs` at most.
   */
  close(graceMs = 1000): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      clearInterval(this.liveness);
      this.liveness = undefined;
      const cm = this.raw.connectionManager;
      if (cm.state === CM_CLOSED) {
        this.failInflight(ZK_CODES.CONNECTION_LOSS, 'client closed');
        return resolve();
      }
      const done = (): void => {
        clearTimeout(timer);
        clearInterval(poll);
        cm.off('state', onState);
        this.failInflight(ZK_CODES.CONNECTION_LOSS, 'client closed');
        resolve();
      };
      const onState = (s: number): void => {
        if (s === CM_CLOSED) done();
      };
      cm.on('state', onState);
      // A reconnect timer of the library may still open a socket after close(); poll for it.
      const poll = setInterval(() => {
        if (cm.state === CM_CLOSED) done();
        else if (cm.state !== CM_CONNECTED) cm.socket?.destroy();
      }, 50);
      const timer = setTimeout(() => {
        // The server did not answer the close request (or is hung): drop the socket.
        cm.socket?.destroy();
        if (cm.state === CM_CLOSED) done();
      }, graceMs);
      if (cm.state === CM_CONNECTED || cm.state === CM_CONNECTED_READ_ONLY) {
        try {
          this.raw.close(); // closeSession: the server deletes our ephemeral nodes now
        } catch {
          cm.socket?.destroy();
        }
      } else {
        // No session to end. The library's close() would queue a close request that a
        // connection being set up then mistakes for the handshake answer (and throws).
        cm.setState(CM_CLOSING);
        if (cm.connectTimeoutHandler) clearTimeout(cm.connectTimeoutHandler);
        if (cm.socket && !cm.socket.destroyed) cm.socket.destroy();
        else cm.setState(CM_CLOSED);
      }
    });
    return this.closing;
  }

  /** Drops the TCP connection without ending the session (for tests of reconnection). */
  dropConnection(): void {
    this.raw.connectionManager.socket?.destroy();
  }

  private call<T>(fn: (cb: Cb<T>) => void, path: string): Promise<T> {
    if (this.closing) return Promise.reject(new ZkError(ZK_CODES.CONNECTION_LOSS, `client closed (${clip(path)})`, path));
    return new Promise<T>((resolve, reject) => {
      const fail = (err: ZkError): void => {
        this.inflight.delete(fail);
        reject(err);
      };
      this.inflight.add(fail);
      try {
        fn((err, value) => {
          if (!this.inflight.delete(fail)) return; // already failed by close or expiry
          if (err) reject(new ZkError(err.getCode(), `${err.message} (${clip(path)})`, path));
          else resolve(value);
        });
      } catch (err) {
        // The library validates paths synchronously with assert.
        fail(new ZkError(-8, `bad request for path ${clip(path)}: ${(err as Error).message}`, path));
      }
    });
  }

  private failInflight(code: number, why: string): void {
    const all = [...this.inflight];
    this.inflight.clear();
    for (const fail of all) fail(new ZkError(code, why));
  }

  /** The read timeout the library lacks: 2/3 of the session timeout without a byte heard. */
  private watchSocket(): void {
    const socket = this.raw.connectionManager.socket;
    this.lastHeard = Date.now();
    if (socket && socket !== this.watchedSocket) {
      this.watchedSocket = socket;
      socket.on('data', () => (this.lastHeard = Date.now()));
    }
    if (this.liveness) return;
    this.liveness = setInterval(() => {
      if (!this.connected) return;
      const readTimeout = (this.raw.getSessionTimeout() * 2) / 3;
      if (Date.now() - this.lastHeard > readTimeout) {
        this.emit('readTimeout');
        this.raw.connectionManager.socket?.destroy(); // the library reconnects, same session
      }
    }, 250);
    this.liveness.unref();
  }
}

function wrapWatcher(w: ZkWatcher | undefined): ((e: RawEvent) => void) | undefined {
  if (!w) return undefined;
  // The same function object per watcher, so the library does not register it twice.
  let wrapped = wrappers.get(w);
  if (!wrapped) {
    wrapped = (e: RawEvent) => w({ type: e.getType(), path: e.getPath() });
    wrappers.set(w, wrapped);
  }
  return wrapped;
}
const wrappers = new WeakMap<ZkWatcher, (e: RawEvent) => void>();

function clip(s: string): string {
  return s.length > 120 ? `${s.slice(0, 117)}...` : s;
}

/** Splits `host:port[,host:port][/root]` hosts from a root; the root defaults to /dubbo. */
export function parseZkTarget(target: string): { connect: string; root: string } {
  const slash = target.indexOf('/');
  const connect = slash < 0 ? target : target.slice(0, slash);
  const root = slash < 0 ? '/dubbo' : normalizeRoot(target.slice(slash));
  return { connect, root };
}

