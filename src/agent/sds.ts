// SDS for the Envoy beside the agent, over a Unix socket: envoy.service.secret.v3
// SecretDiscoveryService/StreamSecrets (state of the world), the secrets Istio names
// `default` (workload certificate and key) and `ROOTCA` (the trust bundle). A renewed
// certificate is pushed on every open stream; Envoy swaps it without dropping connections.
import { chmod, rm } from 'node:fs/promises';
import * as grpc from '@grpc/grpc-js';
import { logger } from '../shared/log.ts';
import { messageType, toAny } from '../xds/proto.ts';
import type { WorkloadCertificate } from './certificates.ts';

const log = logger('agent.sds');
export const SECRET_TYPE = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret';
export const WORKLOAD_SECRET = 'default';
export const ROOT_SECRET = 'ROOTCA';

interface DiscoveryRequest {
  version_info?: string;
  resource_names?: string[];
  type_url?: string;
  response_nonce?: string;
  error_detail?: { message?: string };
  node?: { id?: string };
}

interface Stream {
  readonly call: grpc.ServerDuplexStream<DiscoveryRequest, unknown>;
  names: string[];
  nonce: number;
  sentVersion?: string;
}

export class SdsServer {
  private readonly socket: string;
  private server: grpc.Server | undefined;
  private readonly streams = new Set<Stream>();
  private cert: WorkloadCertificate | undefined;

  constructor(socket: string) {
    this.socket = socket;
  }

  /** The certificate to serve from now on; pushed to every open stream. */
  update(cert: WorkloadCertificate): void {
    this.cert = cert;
    for (const s of this.streams) this.push(s);
  }

  async start(): Promise<void> {
    const req = messageType('envoy.service.discovery.v3.DiscoveryRequest');
    const res = messageType('envoy.service.discovery.v3.DiscoveryResponse');
    const service: grpc.ServiceDefinition = {
      StreamSecrets: {
        path: '/envoy.service.secret.v3.SecretDiscoveryService/StreamSecrets',
        requestStream: true,
        responseStream: true,
        requestSerialize: (v: object) => Buffer.from(req.encode(req.fromObject(v)).finish()),
        requestDeserialize: (b: Buffer) => req.toObject(req.decode(b), { longs: String, defaults: false }),
        responseSerialize: (v: object) => Buffer.from(res.encode(res.fromObject(v)).finish()),
        responseDeserialize: (b: Buffer) => res.toObject(res.decode(b)),
      },
    };
    const server = new grpc.Server();
    server.addService(service, {
      StreamSecrets: (call: grpc.ServerDuplexStream<DiscoveryRequest, unknown>) => this.stream(call),
      // Unary and delta SDS are not served: Envoy uses StreamSecrets with an api_config_source of type GRPC.
    });
    await rm(this.socket, { force: true });
    await new Promise<void>((resolve, reject) => server.bindAsync(`unix://${this.socket}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
    // Only this host's Envoy (the same user) may read the key.
    await chmod(this.socket, 0o600);
    this.server = server;
    log.info('SDS listening', { socket: this.socket });
  }

  async stop(): Promise<void> {
    for (const s of this.streams) s.call.end();
    this.streams.clear();
    const s = this.server;
    this.server = undefined;
    if (s) await new Promise<void>((resolve) => s.tryShutdown(() => resolve()));
    await rm(this.socket, { force: true });
  }

  private stream(call: grpc.ServerDuplexStream<DiscoveryRequest, unknown>): void {
    const s: Stream = { call, names: [], nonce: 0 };
    this.streams.add(s);
    const done = (): void => void this.streams.delete(s);
    call.on('end', () => {
      done();
      call.end();
    });
    call.on('error', done);
    call.on('cancelled', done);
    call.on('data', (r: DiscoveryRequest) => {
      if (r.type_url && r.type_url !== SECRET_TYPE) {
        call.destroy(Object.assign(new Error(`type ${r.type_url} is not served here: only ${SECRET_TYPE}`), { code: grpc.status.INVALID_ARGUMENT }));
        return;
      }
      if (r.error_detail?.message) log.error('Envoy rejected a secret', { node: r.node?.id, version: r.version_info, error: r.error_detail.message });
      const names = [...(r.resource_names ?? [])].sort();
      const unknown = names.filter((n) => n !== WORKLOAD_SECRET && n !== ROOT_SECRET);
      if (unknown.length) log.warn('secrets asked for that this agent does not have', { node: r.node?.id, names: unknown, known: [WORKLOAD_SECRET, ROOT_SECRET] });
      const changed = names.join(',') !== s.names.join(',');
      s.names = names;
      // A request for new names, or the first one, is answered; an ACK of what was sent is not.
      if (changed || s.sentVersion === undefined || (r.response_nonce === '' && r.version_info !== s.sentVersion)) this.push(s);
    });
  }

  private push(s: Stream): void {
    const c = this.cert;
    if (!c || s.names.length === 0) return;
    const resources = s.names.flatMap((name) => {
      if (name === WORKLOAD_SECRET) {
        return [toAny('envoy.extensions.transport_sockets.tls.v3.Secret', { name, tls_certificate: { certificate_chain: { inline_bytes: Buffer.from(c.chainPem) }, private_key: { inline_bytes: Buffer.from(c.keyPem) } } })];
      }
      if (name === ROOT_SECRET) return [toAny('envoy.extensions.transport_sockets.tls.v3.Secret', { name, validation_context: { trusted_ca: { inline_bytes: Buffer.from(c.rootPem) } } })];
      return [];
    });
    s.sentVersion = c.serial;
    s.call.write({ version_info: c.serial, resources, type_url: SECRET_TYPE, nonce: String(++s.nonce) });
  }
}
