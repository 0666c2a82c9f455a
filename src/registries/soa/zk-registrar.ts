// Registers providers in ZooKeeper exactly as a Dubbo provider does: persistent parents
// `/<root>/<interface>/providers` and one ephemeral node per provider URL, owned by this
// registrar's session. The nodes vanish when the session ends (stop, crash, expiry); after
// an expired session the registrar opens a new one and creates them again.
import { backoffDelay } from '../../shared/backoff.ts';
import { logger } from '../../shared/log.ts';
import { buildProviderUrl, providerKey, type ProviderSpec } from './provider.ts';
import type { Registrar } from './registrar.ts';
import { normalizeRoot } from '../../shared/paths.ts';
import { ZK_CODES, ZkClient, ZkError } from './zk-client.ts';
import { soaRegistrarErrors as registrarErrors, soaRegistrations as registrations } from '../metrics.ts';

export interface ZkRegistrarOptions {
  /** host:port[,host:port] */
  readonly connect: string;
  readonly root: string;
  readonly providers: readonly ProviderSpec[];
  /** Requested session timeout: how long the nodes outlive a crashed registrar. Default 10 s. */
  readonly sessionTimeoutMs?: number;
}

const log = logger('register.zk');
// Shared with the etcd registrar (same names and meaning).

/** Pause before retrying a failed registration: 250 ms doubling to 10 s. */
function backoff(attempt: number): number {
  return backoffDelay(attempt, { initialMs: 250, maxMs: 10_000 });
}

export class ZkRegistrar implements Registrar {
  readonly id: string;
  /** The node paths this registrar owns: exactly what a Dubbo consumer reads. */
  readonly paths: readonly string[];
  private readonly opts: ZkRegistrarOptions;
  private readonly root: string;
  private client: ZkClient | undefined;
  private stopped = false;
  private registered = false;
  private firstDone: { resolve: () => void; reject: (e: Error) => void } | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private running = false;
  private again = false;
  private attempt = 0;

  constructor(opts: ZkRegistrarOptions) {
    this.opts = opts;
    this.root = normalizeRoot(opts.root);
    this.id = `zk://${opts.connect}${this.root}`;
    // One URL per provider for the registrar's life: re-registration writes the same nodes.
    const timestamp = Date.now();
    this.paths = opts.providers.map((p) => providerKey(this.root, p.interface, buildProviderUrl(p, timestamp)));
  }

  /** True while every node is known to exist in the current session. */
  get isRegistered(): boolean {
    return this.registered;
  }

  /** The current session id (16 hex digits), if connected once. */
  get sessionId(): string | undefined {
    return this.client?.sessionId;
  }

  /** Connects and registers; resolves once every node exists (retrying meanwhile). */
  start(): Promise<void> {
    if (this.client) throw new Error('ZkRegistrar already started');
    const first = new Promise<void>((resolve, reject) => (this.firstDone = { resolve, reject }));
    this.openSession();
    return first;
  }

  /** Deletes the nodes (deregistration) and ends the session. Never hangs on a dead server. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.firstDone?.reject(new Error(`registrar for ${this.id} stopped before it registered`));
    this.firstDone = undefined;
    const client = this.client;
    if (!client) return;
    if (client.connected) {
      const deletes = Promise.all(
        this.paths.map((p) =>
          client.remove(p).catch((err: unknown) => {
            registrarErrors.inc({ registry: this.id, stage: 'deregister' });
            log.warn('cannot delete provider node', { path: p, err });
          }),
        ),
      );
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([deletes, new Promise<void>((r) => (timer = setTimeout(r, 2000)))]);
      clearTimeout(timer);
    }
    // Ending the session deletes whatever ephemeral node is left.
    await client.close();
    this.registered = false;
    log.info('deregistered', { registry: this.id, providers: this.paths.length });
  }

  private openSession(): void {
    if (this.stopped) return;
    const client = new ZkClient(this.opts.connect, { sessionTimeoutMs: this.opts.sessionTimeoutMs ?? 10_000 });
    this.client = client;
    client.on('connected', () => {
      if (client !== this.client) return;
      log.info('connected to ZooKeeper', { registry: this.id, session: client.sessionId, timeoutMs: client.sessionTimeoutMs });
      this.register();
    });
    client.on('disconnected', () => {
      if (client !== this.client || this.stopped) return;
      log.warn('connection to ZooKeeper lost; the session may resume', { registry: this.id, session: client.sessionId });
    });
    client.on('expired', () => {
      if (client !== this.client || this.stopped) return;
      // The server deleted our nodes with the session: a new session writes them again.
      log.warn('ZooKeeper session expired; registering again in a new session', { registry: this.id, session: client.sessionId });
      this.registered = false;
      void client.close();
      this.openSession();
    });
    client.on('authFailed', () => {
      if (client !== this.client || this.stopped) return;
      log.error('ZooKeeper authentication failed; retrying', { registry: this.id });
      void client.close();
      this.retryTimer = setTimeout(() => this.openSession(), backoff(this.attempt++));
    });
    client.connect();
  }

  /** Writes every node in the current session; one run at a time, re-run on demand. */
  private register(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    void (async () => {
      try {
        do {
          this.again = false;
          const client = this.client;
          if (!client || this.stopped) return;
          try {
            for (const path of this.paths) await this.ensureNode(client, path);
            if (client !== this.client || this.stopped) continue;
            if (!this.registered) {
              registrations.inc({ registry: this.id });
              log.info('providers registered', { registry: this.id, session: client.sessionId, providers: this.paths.length });
            }
            this.registered = true;
            this.attempt = 0;
            this.firstDone?.resolve();
            this.firstDone = undefined;
          } catch (err) {
            if (client !== this.client || this.stopped) continue;
            if (err instanceof ZkError && (err.connectionLoss || err.code === ZK_CODES.SESSION_EXPIRED)) {
              // A reconnect ('connected') or a new session runs register() again.
              if (client.connected) this.again = true;
              continue;
            }
            registrarErrors.inc({ registry: this.id, stage: 'register' });
            log.warn('cannot register providers; retrying', { registry: this.id, err });
            clearTimeout(this.retryTimer);
            this.retryTimer = setTimeout(() => this.register(), backoff(this.attempt++));
          }
        } while (this.again && !this.stopped);
      } finally {
        this.running = false;
      }
    })();
  }

  /** Parents persistent, the node ephemeral and ours. */
  private async ensureNode(client: ZkClient, path: string): Promise<void> {
    await client.mkdirp(path.slice(0, path.lastIndexOf('/')));
    for (let i = 0; i < 5; i++) {
      try {
        await client.create(path, 'ephemeral');
        return;
      } catch (err) {
        if (!(err instanceof ZkError && err.code === ZK_CODES.NODE_EXISTS)) throw err;
      }
      const stat = await client.exists(path);
      if (!stat) continue; // deleted meanwhile: create again
      if (stat.ephemeralOwner === client.sessionId) return; // ours (e.g. a create retried after a lost reply)
      // Left by an earlier session (ours before a crash or expiry, not yet reaped): take it over, as Dubbo does.
      log.info('provider node held by another session; replacing it', { path, owner: stat.ephemeralOwner });
      await client.remove(path);
    }
    throw new Error(`cannot create ${path}: it keeps being re-created by another session`);
  }
}
