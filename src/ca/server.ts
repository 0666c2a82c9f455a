// The CA's gRPC listener: istio.v1.auth.IstioCertificateService/CreateCertificate over TLS
// (a serving certificate this CA signs for itself). Callers authenticate with a bearer token
// or a client certificate this CA issued; what is wrong with a request is the status message.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { logger } from '../shared/log.ts';
import { metrics } from '../shared/metrics.ts';
import { parseSpiffeId, type WorkloadIdentity } from '../model/identity.ts';
import { AuthnError, bearerToken, type Authenticator } from './authn.ts';
import { CsrRefused, type CertificateAuthority } from './authority.ts';

const log = logger('ca');
const requests = metrics.counter('isthmus_ca_requests_total', 'Certificate requests by result (signed, unauthenticated, invalid, denied, error) and how the caller authenticated.');
const signSeconds = metrics.histogram('isthmus_ca_sign_seconds', 'Time to authenticate a caller and sign its certificate.', [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1]);

export const CA_PROTO = fileURLToPath(new URL('../../protos/istio/v1/auth/ca.proto', import.meta.url));
export const CA_SERVICE = 'istio.v1.auth.IstioCertificateService';

const SERVING_DAYS = 30;

/**
 * TLS material held in memory, handed to grpc-js's listeners whenever it changes. A new
 * listener gets the current material on the next tick: grpc-js adds its listeners before the
 * server that waits for them.
 */
class MemoryCertificateProvider implements grpc.experimental.CertificateProvider {
  private ca: grpc.experimental.CaCertificateUpdate | null = null;
  private identity: grpc.experimental.IdentityCertificateUpdate | null = null;
  private readonly caListeners = new Set<grpc.experimental.CaCertificateUpdateListener>();
  private readonly identityListeners = new Set<grpc.experimental.IdentityCertificateUpdateListener>();

  set(ca: grpc.experimental.CaCertificateUpdate, identity: grpc.experimental.IdentityCertificateUpdate): void {
    this.ca = ca;
    this.identity = identity;
    for (const l of this.caListeners) l(ca);
    for (const l of this.identityListeners) l(identity);
  }
  addCaCertificateListener(l: grpc.experimental.CaCertificateUpdateListener): void {
    this.caListeners.add(l);
    setImmediate(() => this.caListeners.has(l) && this.ca && l(this.ca));
  }
  removeCaCertificateListener(l: grpc.experimental.CaCertificateUpdateListener): void {
    this.caListeners.delete(l);
  }
  addIdentityCertificateListener(l: grpc.experimental.IdentityCertificateUpdateListener): void {
    this.identityListeners.add(l);
    setImmediate(() => this.identityListeners.has(l) && this.identity && l(this.identity));
  }
  removeIdentityCertificateListener(l: grpc.experimental.IdentityCertificateUpdateListener): void {
    this.identityListeners.delete(l);
  }
}

export interface CaServerOptions {
  readonly authority: CertificateAuthority;
  readonly authenticators: readonly Authenticator[];
  readonly trustDomain: string;
  /** Istio's ClusterID request metadata must name this cluster, when sent. */
  readonly clusterId: string;
  /** host:port to listen on. */
  readonly address: string;
  /** DNS names of the serving certificate (callers check one of them). */
  readonly serverNames: readonly string[];
}

interface CreateRequest {
  csr?: string;
  validity_duration?: string | number;
  metadata?: { fields?: Record<string, { stringValue?: string; kind?: string }> };
}

export function loadCaService(): grpc.ServiceDefinition {
  const def = protoLoader.loadSync(CA_PROTO, { keepCase: true, longs: String, defaults: false, includeDirs: [path.dirname(CA_PROTO)] });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { istio: { v1: { auth: { IstioCertificateService: grpc.ServiceClientConstructor } } } };
  return pkg.istio.v1.auth.IstioCertificateService.service;
}

/** The IP of a gRPC peer string ("ipv4:1.2.3.4:5", "1.2.3.4:5", "[::1]:5"). */
function peerIp(peer: string): string | undefined {
  const s = peer.replace(/^ipv[46]:/, '');
  const v6 = /^\[([^\]]+)\]:\d+$/.exec(s);
  if (v6) return v6[1]!.replace(/^::ffff:/, '');
  const i = s.lastIndexOf(':');
  return i > 0 ? s.slice(0, i).replace(/^::ffff:/, '') : undefined;
}

export class CaServer {
  private readonly opts: CaServerOptions;
  private server: grpc.Server | undefined;
  private readonly provider = new MemoryCertificateProvider();
  private renewTimer: NodeJS.Timeout | undefined;
  /** The port bound (useful with port 0). */
  port = 0;

  constructor(opts: CaServerOptions) {
    this.opts = opts;
  }

  async start(): Promise<void> {
    const { authority } = this.opts;
    const host = this.opts.address.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
    const ips = /^[\d.]+$|:/.test(host) && host !== '0.0.0.0' && host !== '::' ? [host] : [];
    // A client certificate is asked for but not required (tokens are the other way in); the
    // CA checks one itself (peerIdentity). The serving certificate is renewed at half its life.
    const renew = async (): Promise<void> => {
      const serving = await authority.servingCertificate(this.opts.serverNames, ips, SERVING_DAYS);
      this.provider.set({ caCertificate: Buffer.from(authority.rootPem) }, { certificate: Buffer.from(serving.certChainPem), privateKey: Buffer.from(serving.keyPem) });
    };
    await renew();
    this.renewTimer = setInterval(() => void renew().catch((e: unknown) => log.error('the CA could not renew its serving certificate', { err: e })), (SERVING_DAYS / 2) * 86400_000);
    this.renewTimer.unref();
    const creds = grpc.experimental.createCertificateProviderServerCredentials(this.provider, this.provider, false);
    const server = new grpc.Server({ 'grpc.max_receive_message_length': 64 * 1024 });
    server.addService(loadCaService(), { CreateCertificate: this.createCertificate.bind(this) });
    this.port = await new Promise<number>((resolve, reject) => server.bindAsync(this.opts.address, creds, (err, port) => (err ? reject(err) : resolve(port))));
    this.server = server;
    log.info('CA listening', { address: this.opts.address, port: this.port, serverNames: this.opts.serverNames });
  }

  async stop(): Promise<void> {
    clearInterval(this.renewTimer);
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    await new Promise<void>((resolve) => s.tryShutdown(() => resolve()));
  }

  private createCertificate(call: grpc.ServerUnaryCall<CreateRequest, unknown>, callback: grpc.sendUnaryData<{ cert_chain: string[] }>): void {
    const t0 = process.hrtime.bigint();
    const fail = (code: grpc.status, result: string, message: string, via: string): void => {
      requests.inc({ result, via });
      log.warn('certificate request refused', { peer: call.getPeer(), result, reason: message });
      callback({ code, details: message });
    };
    void this.handle(call)
      .then(({ chain, identity, via, notAfter }) => {
        requests.inc({ result: 'signed', via });
        signSeconds.observe({}, Number(process.hrtime.bigint() - t0) / 1e9);
        log.info('certificate signed', { peer: call.getPeer(), identity, via, notAfter: notAfter.toISOString() });
        callback(null, { cert_chain: chain });
      })
      .catch((e: unknown) => {
        const via = (e as { via?: string }).via ?? 'none';
        if (e instanceof AuthnError) fail(grpc.status.UNAUTHENTICATED, 'unauthenticated', e.message, via);
        else if (e instanceof CsrRefused) fail(e.code === 'INVALID_ARGUMENT' ? grpc.status.INVALID_ARGUMENT : grpc.status.PERMISSION_DENIED, e.code === 'INVALID_ARGUMENT' ? 'invalid' : 'denied', e.message, via);
        else {
          requests.inc({ result: 'error', via });
          log.error('certificate request failed', { peer: call.getPeer(), err: e });
          callback({ code: grpc.status.INTERNAL, details: `the CA failed: ${(e as Error).message}` });
        }
      });
  }

  private async handle(call: grpc.ServerUnaryCall<CreateRequest, unknown>): Promise<{ chain: string[]; identity: string; via: string; notAfter: Date }> {
    const req = call.request;
    const fields = req.metadata?.fields ?? {};
    for (const k of Object.keys(fields)) {
      if (k === 'ImpersonatedIdentity') throw new CsrRefused('PERMISSION_DENIED', 'metadata.ImpersonatedIdentity: this CA does not sign for another identity than the caller\'s');
      if (k === 'ClusterID') {
        const id = fields[k]?.stringValue;
        if (id !== this.opts.clusterId) throw new CsrRefused('PERMISSION_DENIED', `metadata.ClusterID: "${id}" is not this CA's cluster "${this.opts.clusterId}"`);
        continue;
      }
      throw new CsrRefused('INVALID_ARGUMENT', `metadata.${k}: not understood by this CA (ClusterID is)`);
    }
    const { identity, via } = await this.authenticate(call);
    const ttl = Number(req.validity_duration ?? 0);
    const out = await this.opts.authority.sign(req.csr ?? '', identity, { ttlSeconds: ttl }).catch((e: unknown) => {
      throw Object.assign(e as Error, { via });
    });
    return { chain: out.chain, identity: out.spiffe, via, notAfter: out.notAfter };
  }

  private async authenticate(call: grpc.ServerUnaryCall<CreateRequest, unknown>): Promise<{ identity: WorkloadIdentity; via: string }> {
    const auth = call.metadata.get('authorization');
    if (auth.length === 0) {
      const der = call.getAuthContext().sslPeerCertificate?.raw;
      if (der) {
        const uri = await this.opts.authority.peerIdentity(der);
        if (!uri) throw Object.assign(new AuthnError('the client certificate was not issued by this CA, has expired, or names no single workload identity'), { via: 'certificate' });
        const id = parseSpiffeId(uri);
        if ('error' in id) throw Object.assign(new AuthnError(`client certificate: ${id.error}`), { via: 'certificate' });
        if (id.trustDomain !== this.opts.trustDomain) throw Object.assign(new AuthnError(`client certificate: trust domain ${id.trustDomain} is not ${this.opts.trustDomain}`), { via: 'certificate' });
        return { identity: id, via: 'certificate' };
      }
    }
    const token = bearerToken(auth);
    const peer = peerIp(call.getPeer());
    for (const a of this.opts.authenticators) {
      const id = await a.authenticate(token, this.opts.trustDomain, peer).catch((e: unknown) => {
        throw Object.assign(e as Error, { via: a.kind });
      });
      if (id) return { identity: id, via: a.kind };
    }
    const kinds = this.opts.authenticators.map((a) => a.kind);
    throw new AuthnError(kinds.length ? `the token is not valid (tried: ${kinds.join(', ')})` : 'this CA accepts no tokens (no --ca-join-tokens file, no Kubernetes TokenReview configured)');
  }
}
