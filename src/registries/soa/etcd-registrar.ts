// Registers providers in etcd exactly as a Dubbo provider does: one key per interface,
// `/<root>/<interface>/providers/<url-encoded provider URL>`, all bound to one lease that is
// kept alive. A lost lease (expired while etcd could not be reached, or revoked) is granted
// again and the keys written again, once etcd answers. stop() revokes the lease, which
// deregisters every key at once.
import { backoffDelay } from '../../shared/backoff.ts';
import { Etcd3, EtcdLeaseInvalidError, type IDuplexStream, type ILeaseKeepAliveRequest, type ILeaseKeepAliveResponse, type IRequestOp } from 'etcd3';
import { logger } from '../../shared/log.ts';
import { clientOptions } from '../../shared/etcd.ts';
import { normalizeRoot } from '../../shared/paths.ts';
import { describeError } from './etcd.ts';
import { buildProviderUrl, providerKey, type ProviderSpec } from './provider.ts';
import type { Registrar } from './registrar.ts';
import { soaRegistrarErrors as registrarErrors, soaRegistrations as registrations } from '../metrics.ts';

export interface EtcdRegistrarOptions {
  /** `host:port` (or `http://host:port`) of each etcd member. */
  readonly endpoints: readonly string[];
  /** Root of the Dubbo layout, e.g. /dubbo. */
  readonly root: string;
  readonly providers: readonly ProviderSpec[];
  /** Lease TTL in whole seconds (default 10): how long the keys outlive a dead registrar. */
  readonly ttlSeconds?: number;
  /** First retry delay after a failure (default 200 ms); doubles per failure up to backoffMaxMs. */
  readonly backoffInitialMs?: number;
  /** Longest retry delay (default 2 s, and never more than a third of the TTL). */
  readonly backoffMaxMs?: number;
  /** Deadline of one request (default 5 s). */
  readonly requestTimeoutMs?: number;
}

const log = logger('registrar.etcd');

/** Keys per transaction: etcd's default limit is 128 operations. */
const TXN_OPS = 100;

type Phase = 'new' | 'registering' | 'registered' | 'stopping' | 'stopped';

export class EtcdRegistrar implements Registrar {
  readonly id: string;
  /** The keys this registrar writes, each with its provider URL as the value. */
  readonly keys: ReadonlyMap<string, string>;
  private readonly endpoints: readonly string[];
  private readonly ttl: number;
  private readonly backoffInitialMs: number;
  private readonly backoffMaxMs: number;
  private readonly requestTimeoutMs: number;
  private readonly client: Etcd3;
  private phase: Phase = 'new';
  private lease: string | undefined;
  /** Whether every key is written bound to the current lease. */
  private written = false;
  private stream: IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private tick: NodeJS.Timeout | undefined;
  private failures = 0;
  private loggedError: string | undefined;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private started: { resolve: () => void; reject: (e: Error) => void } | undefined;

  constructor(opts: EtcdRegistrarOptions) {
    if (opts.endpoints.length === 0) throw new Error('etcd registrar: at least one endpoint is needed');
    if (opts.providers.length === 0) throw new Error('etcd registrar: no providers to register');
    const root = normalizeRoot(opts.root);
    this.id = `etcd://${opts.endpoints.map((e) => e.replace(/^https?:\/\//, '')).join(',')}${root}`;
    this.endpoints = opts.endpoints;
    this.ttl = Math.max(1, Math.ceil(opts.ttlSeconds ?? 10));
    this.backoffInitialMs = opts.backoffInitialMs ?? 200;
    this.backoffMaxMs = Math.min(opts.backoffMaxMs ?? 2000, (this.ttl * 1000) / 3);
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 5000;
    // One URL per provider for the registrar's life: a re-registration writes the same keys.
    const timestamp = Date.now();
    const keys = new Map<string, string>();
    for (const p of opts.providers) {
      const url = buildProviderUrl(p, timestamp);
      keys.set(providerKey(root, p.interface, url), url);
    }
    this.keys = keys;
    this.client = new Etcd3(clientOptions(opts.endpoints, this.requestTimeoutMs));
  }

  /** True while the keys are written and the lease is believed alive. */
  get registered(): boolean {
    return this.phase === 'registered';
  }

  /** The current lease id (a decimal string), if one is granted. */
  get leaseId(): string | undefined {
    return this.lease;
  }

  /** Resolves once every key is written; until then retries with backoff. */
  start(): Promise<void> {
    if (this.phase !== 'new') throw new Error('etcd registrar: start() called twice');
    this.phase = 'registering';
    const done = new Promise<void>((resolve, reject) => (this.started = { resolve, reject }));
    this.loop = this.run();
    return done;
  }

  /** Revokes the lease (every key goes at once) and closes the client. */
  async stop(): Promise<void> {
    if (this.phase === 'stopped' || this.phase === 'stopping') return this.loop;
    const wasNew = this.phase === 'new';
    this.phase = 'stopping';
    this.started?.reject(new Error('etcd registrar stopped before it registered'));
    this.started = undefined;
    this.endStream();
    clearTimeout(this.timer);
    this.wake?.();
    if (!wasNew) await this.loop;
    const lease = this.lease;
    this.lease = undefined;
    if (lease) {
      try {
        await this.client.leaseClient.leaseRevoke({ ID: lease });
        log.info('deregistered: lease revoked', { registry: this.id, lease, keys: this.keys.size });
      } catch (err) {
        if (!(err instanceof EtcdLeaseInvalidError)) {
          registrarErrors.inc({ registry: this.id, stage: 'revoke' });
          log.warn('could not revoke the lease; the keys expire with it', { registry: this.id, lease, ttlSeconds: this.ttl, error: describeError(err) });
        }
      }
    }
    this.client.close();
    this.phase = 'stopped';
  }

  private get stopping(): boolean {
    return this.phase === 'stopping' || this.phase === 'stopped';
  }

  /** Register, then keep alive; on any failure back off and go on from where it failed. */
  private async run(): Promise<void> {
    while (!this.stopping) {
      try {
        if (!this.lease) await this.grant();
        if (!this.written && !this.stopping) await this.write(this.lease!);
        if (this.stopping) return;
        await this.keepAlive(this.lease!);
      } catch (err) {
        if (this.stopping) return;
        if (err instanceof EtcdLeaseInvalidError) {
          this.lostLease(`lease ${this.lease} is no longer known to etcd`);
          continue; // grant a new one at once: etcd answered, so it is up
        }
        this.failed(err);
        await this.sleep(this.backoff());
      }
    }
  }

  private async grant(): Promise<void> {
    this.phase = 'registering';
    this.written = false;
    // Set even when stopped meanwhile, so stop() revokes it rather than leave it for its TTL.
    this.lease = (await this.client.leaseClient.leaseGrant({ TTL: this.ttl })).ID;
  }

  /** Writes every key bound to the lease, in transactions of up to TXN_OPS keys. */
  private async write(lease: string): Promise<void> {
    const ops: IRequestOp[] = [...this.keys].map(([key, url]) => ({ request_put: { key: Buffer.from(key), value: Buffer.from(url), lease } }));
    for (let i = 0; i < ops.length; i += TXN_OPS) await this.client.kv.txn({ success: ops.slice(i, i + TXN_OPS) });
    if (this.stopping) return;
    this.written = true;
    this.phase = 'registered';
    this.failures = 0;
    registrations.inc({ registry: this.id });
    log.info('registered', { registry: this.id, lease, ttlSeconds: this.ttl, keys: this.keys.size });
    this.recovered();
    this.started?.resolve();
    this.started = undefined;
  }

  /**
   * One keepalive stream: a request every TTL/3. Returns when stopped; throws
   * EtcdLeaseInvalidError when etcd says the lease is gone, or the stream's error.
   */
  private keepAlive(lease: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const finish = (err?: unknown): void => {
        if (settled) return;
        settled = true;
        clearInterval(this.tick);
        this.tick = undefined;
        this.wake = undefined;
        this.endStream();
        if (err === undefined) resolve();
        else reject(err);
      };
      this.wake = () => finish();
      this.client.leaseClient.leaseKeepAlive().then(
        (stream) => {
          if (settled || this.stopping) {
            stream.on('error', () => undefined);
            stream.cancel();
            finish();
            return;
          }
          this.stream = stream;
          let lastAnswer = Date.now();
          stream.on('data', (res: ILeaseKeepAliveResponse) => {
            // etcd answers TTL 0 for a lease it does not know: expired or revoked.
            if (res.TTL === '0' || Number(res.TTL) <= 0) return finish(new EtcdLeaseInvalidError(lease));
            lastAnswer = Date.now();
            this.failures = 0;
            this.recovered();
          });
          stream.on('error', (err: Error) => finish(err));
          stream.on('end', () => finish(new Error('keepalive stream ended')));
          const send = (): void => {
            // No answer for a whole TTL: the stream is stuck, the lease may be gone; start over.
            if (Date.now() - lastAnswer > this.ttl * 1000) return finish(new Error(`no keepalive answer for ${this.ttl}s`));
            try {
              stream.write({ ID: lease });
            } catch (err) {
              finish(err);
            }
          };
          send();
          this.tick = setInterval(send, (this.ttl * 1000) / 3);
        },
        (err: unknown) => finish(err),
      );
    });
  }

  private lostLease(why: string): void {
    registrarErrors.inc({ registry: this.id, stage: 'lease_lost' });
    log.warn('lease lost; registering again', { registry: this.id, reason: why, keys: this.keys.size });
    this.lease = undefined;
    this.written = false;
    this.phase = 'registering';
  }

  private failed(err: unknown): void {
    const stage = this.lease ? 'keepalive' : 'register';
    registrarErrors.inc({ registry: this.id, stage });
    const msg = `${stage}: ${describeError(err)}`;
    // Warn once per outage; the retries of the same outage go to debug.
    if (this.loggedError === undefined) {
      log.warn('etcd registration failing; retrying', { registry: this.id, endpoints: this.endpoints.join(','), error: msg, registered: this.written });
    } else if (msg !== this.loggedError) log.debug('etcd registration still failing', { registry: this.id, error: msg });
    this.loggedError = msg;
  }

  private recovered(): void {
    if (this.loggedError === undefined) return;
    log.info('etcd registration healthy again', { registry: this.id, lease: this.lease });
    this.loggedError = undefined;
  }

  private backoff(): number {
    return backoffDelay(this.failures++, { initialMs: this.backoffInitialMs, maxMs: this.backoffMaxMs });
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.timer = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(this.timer);
        this.wake = undefined;
        resolve();
      };
    });
  }

  private endStream(): void {
    const s = this.stream;
    this.stream = undefined;
    if (!s) return;
    // Its listeners stay, guarded by `settled`; the error cancel() causes is one of them.
    try {
      s.cancel();
    } catch {
      // already ended
    }
  }
}
