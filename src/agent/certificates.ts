// The agent's workload certificate: a key made here (it never leaves this process: Envoy
// gets it over the local SDS socket), a CSR sent to Isthmus's CA, and renewal at a random
// point between 50 and 80 % of the certificate's life, with backoff on failure. Renewal
// proves the identity with the current certificate (mTLS); the token is the fallback.
import 'reflect-metadata';
import { readFile } from 'node:fs/promises';
import { webcrypto } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import * as x509 from '@peculiar/x509';
import { EC_P256 } from '../ca/authority.ts';
import { loadCaService } from '../ca/server.ts';
import { backoffDelay } from '../shared/backoff.ts';
import { logger } from '../shared/log.ts';

const log = logger('agent');

export interface WorkloadCertificate {
  /** PEM chain, workload certificate first. */
  readonly chainPem: string;
  /** PKCS#8 PEM of the key; kept in memory only. */
  readonly keyPem: string;
  /** PEM of the CA's root (the trust bundle). */
  readonly rootPem: string;
  readonly identity: string;
  readonly serial: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

export interface CertificateKeeperOptions {
  /** HOST:PORT of the CA. */
  readonly caAddress: string;
  /** PEM file of the root the CA's serving certificate chains to (also the trust bundle). */
  readonly caRootFile: string;
  /** Name to check the CA's serving certificate for (default: the host of caAddress). */
  readonly caServerName?: string;
  /** File holding the bearer token (a ServiceAccount token or a join token); read at each use. */
  readonly tokenFile: string;
  /** Requested lifetime in seconds (0: the CA's default). */
  readonly ttlSeconds: number;
  /** Where in its life a certificate is renewed: a random point in [min, max]. */
  readonly renewAt?: { readonly min: number; readonly max: number };
}

type CreateFn = (req: { csr: string; validity_duration: number }, md: grpc.Metadata, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, v?: { cert_chain: string[] }) => void) => void;

export class CertificateKeeper {
  private readonly opts: CertificateKeeperOptions;
  private current: WorkloadCertificate | undefined;
  private readonly listeners = new Set<(c: WorkloadCertificate) => void>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private failures = 0;

  constructor(opts: CertificateKeeperOptions) {
    this.opts = opts;
  }

  get certificate(): WorkloadCertificate | undefined {
    return this.current;
  }

  /** Called with each new certificate (and at once with the current one). */
  onCertificate(fn: (c: WorkloadCertificate) => void): () => void {
    this.listeners.add(fn);
    if (this.current) fn(this.current);
    return () => this.listeners.delete(fn);
  }

  /** Obtains the first certificate (retrying with backoff until it has one), then keeps it renewed. */
  async start(): Promise<WorkloadCertificate> {
    for (;;) {
      try {
        const c = await this.issue();
        this.schedule(c);
        return c;
      } catch (e) {
        if (this.stopped) throw e;
        const wait = backoffDelay(this.failures++, { initialMs: 500, maxMs: 30_000 });
        log.warn('no workload certificate yet; retrying', { error: (e as Error).message, retryInMs: wait });
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private schedule(c: WorkloadCertificate): void {
    const life = c.notAfter.getTime() - c.notBefore.getTime();
    const { min, max } = this.opts.renewAt ?? { min: 0.5, max: 0.8 };
    const at = c.notBefore.getTime() + life * (min + Math.random() * (max - min));
    this.arm(Math.max(0, at - Date.now()));
  }

  private arm(ms: number): void {
    clearTimeout(this.timer);
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.renew(), Math.min(ms, 2 ** 31 - 1));
  }

  private async renew(): Promise<void> {
    try {
      const c = await this.issue();
      this.schedule(c);
    } catch (e) {
      // Retry with backoff, but never later than just before the certificate ends.
      const left = (this.current?.notAfter.getTime() ?? 0) - Date.now();
      const wait = Math.max(250, Math.min(backoffDelay(this.failures++, { initialMs: 1000, maxMs: 60_000 }), left / 4));
      log.error('could not renew the workload certificate; retrying', { error: (e as Error).message, retryInMs: Math.round(wait), expiresInMs: left });
      this.arm(wait);
    }
  }

  /** A new key and certificate: with the current certificate as proof when there is one, else (or if refused) the token. */
  private async issue(): Promise<WorkloadCertificate> {
    const rootPem = await readFile(this.opts.caRootFile, 'utf8');
    const keys = await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']);
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({ keys, signingAlgorithm: EC_P256 });
    const keyPem = x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY');
    const req = { csr: csr.toString('pem'), validity_duration: this.opts.ttlSeconds };
    let chain: string[];
    let via: string;
    const cur = this.current;
    try {
      if (!cur) throw new Error('no certificate yet');
      chain = await this.call(rootPem, req, { cert: cur.chainPem, key: cur.keyPem });
      via = 'certificate';
    } catch (e) {
      if (cur) log.warn('renewal with the current certificate refused; using the token', { error: (e as Error).message });
      const token = (await readFile(this.opts.tokenFile, 'utf8')).trim();
      if (!token) throw new Error(`token file ${this.opts.tokenFile} is empty`, { cause: e });
      chain = await this.call(rootPem, req, { token });
      via = 'token';
    }
    const leaf = new x509.X509Certificate(chain[0]!);
    const uri = leaf.getExtension(x509.SubjectAlternativeNameExtension)?.names.toJSON().find((n) => n.type === 'url')?.value ?? '';
    const c: WorkloadCertificate = { chainPem: chain.join('\n'), keyPem, rootPem, identity: uri, serial: leaf.serialNumber, notBefore: leaf.notBefore, notAfter: leaf.notAfter };
    this.current = c;
    this.failures = 0;
    log.info('workload certificate issued', { identity: uri, serial: c.serial, notAfter: c.notAfter.toISOString(), via });
    for (const fn of this.listeners) fn(c);
    return c;
  }

  private call(rootPem: string, req: { csr: string; validity_duration: number }, auth: { token?: string; cert?: string; key?: string }): Promise<string[]> {
    const creds = grpc.credentials.createSsl(Buffer.from(rootPem), auth.key ? Buffer.from(auth.key) : null, auth.cert ? Buffer.from(auth.cert) : null);
    const Client = grpc.makeGenericClientConstructor(loadCaService(), 'IstioCertificateService');
    const client = new Client(this.opts.caAddress, creds, this.opts.caServerName ? { 'grpc.ssl_target_name_override': this.opts.caServerName, 'grpc.default_authority': this.opts.caServerName } : {});
    const md = new grpc.Metadata();
    if (auth.token) md.set('authorization', `Bearer ${auth.token}`);
    return new Promise((resolve, reject) => {
      (client as unknown as { CreateCertificate: CreateFn }).CreateCertificate(req, md, { deadline: Date.now() + 15_000 }, (err, res) => {
        client.close();
        if (err) reject(new Error(`the CA at ${this.opts.caAddress} refused: ${grpc.status[err.code]}: ${err.details}`));
        else if (!res?.cert_chain?.length) reject(new Error(`the CA at ${this.opts.caAddress} answered no certificate`));
        else resolve(res.cert_chain);
      });
    });
  }
}
