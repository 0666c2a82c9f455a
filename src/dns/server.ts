// The built-in authoritative DNS server: UDP and TCP on one address (default
// 127.0.0.1:15053), answering from an immutable Zone that `setZone` swaps whole.
//
// TCP (RFC 7766): two-octet length prefix, any number of queries per connection (answered
// as they complete, so a forwarded query does not hold up the next one), an idle timeout,
// a cap on connections, on queries in flight per connection and on unsent output.
// Nothing a client sends can throw out of a handler: an unexpected error becomes SERVFAIL
// (when there is a query to answer) and a log line.
import dgram from 'node:dgram';
import net from 'node:net';
import { logger } from '../shared/log.ts';
import { metrics } from '../shared/metrics.ts';
import { splitHostPort } from './address.ts';
import { Forwarder } from './forward.ts';
import { respond, type ResponderOptions, servfail, type Transport } from './responder.ts';
import { typeName } from './rr.ts';
import { type Message, peekHeader, RCODE, rcodeName } from './wire.ts';
import type { Zone } from './zone.ts';

const log = logger('dns.server');
const queriesTotal = metrics.counter('isthmus_dns_queries_total', 'DNS queries answered by the built-in responder, by query type, response code and transport.');
const droppedTotal = metrics.counter('isthmus_dns_dropped_total', 'DNS packets dropped without an answer, by reason.');
const truncatedTotal = metrics.counter('isthmus_dns_truncated_total', 'UDP answers sent with TC set because they did not fit.');
const forwardedTotal = metrics.counter('isthmus_dns_forwarded_total', 'Queries outside the zone forwarded upstream, by result.');
const latency = metrics.histogram('isthmus_dns_query_seconds', 'Time from a query read to its answer written, by transport.', [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1, 5]);
const tcpConnections = metrics.gauge('isthmus_dns_tcp_connections', 'Open DNS-over-TCP connections.');

export const DEFAULT_DNS_LISTEN = '127.0.0.1:15053';
const KNOWN_TYPES = new Set(['none', 'A', 'AAAA', 'SRV', 'TXT', 'SOA', 'NS', 'CNAME', 'ANY', 'AXFR', 'IXFR']);

export interface DnsServerOptions extends ResponderOptions {
  /** HOST:PORT for both UDP and TCP; port 0 picks one free for both. */
  readonly listen: string;
  /** Zone apex. */
  readonly zone: string;
  /** Upstream HOST:PORT for queries outside the zone; none means REFUSED. */
  readonly upstream?: string;
  readonly forwardTimeoutMs?: number;
  /** A TCP connection with no query for this long is closed (default 10 s). */
  readonly tcpIdleMs?: number;
  readonly maxTcpConnections?: number;
  readonly maxTcpInFlight?: number;
}

export class DnsServer {
  readonly origin: string;
  private readonly opts: DnsServerOptions;
  private readonly responder: ResponderOptions;
  private zone: Zone | undefined;
  private udp: dgram.Socket | undefined;
  private tcp: net.Server | undefined;
  private readonly conns = new Set<net.Socket>();
  private readonly forwarder: Forwarder | undefined;
  private closed = false;
  port = 0;
  host = '';

  constructor(opts: DnsServerOptions) {
    this.opts = opts;
    this.origin = opts.zone.toLowerCase().replace(/\.$/, '');
    this.forwarder = opts.upstream ? new Forwarder({ upstream: opts.upstream, ...(opts.forwardTimeoutMs ? { timeoutMs: opts.forwardTimeoutMs } : {}) }) : undefined;
    this.responder = { ...(opts.udpPayloadSize ? { udpPayloadSize: opts.udpPayloadSize } : {}), forwarding: this.forwarder !== undefined };
  }

  /** Swaps in a new zone; queries already being answered finish on the old one. */
  setZone(zone: Zone): void {
    if (zone.origin !== this.origin) throw new Error(`zone ${zone.origin} given to the server of ${this.origin}`);
    this.zone = zone;
  }

  currentZone(): Zone | undefined {
    return this.zone;
  }

  /** Binds UDP and TCP on the same port; resolves to it. */
  async listen(): Promise<number> {
    const { host, port } = splitHostPort(this.opts.listen);
    this.host = host;
    for (let attempt = 0; ; attempt++) {
      const udpPort = await this.bindUdp(host, port);
      try {
        await this.bindTcp(host, udpPort);
        this.port = udpPort;
        log.info('DNS responder listening', { address: `${host}:${udpPort}`, zone: this.origin, upstream: this.opts.upstream });
        return udpPort;
      } catch (e) {
        await this.closeUdp();
        // With port 0, the UDP port picked may be taken for TCP: try another.
        if (port !== 0 || attempt >= 20 || (e as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw e;
      }
    }
  }

  private bindUdp(host: string, port: number): Promise<number> {
    const sock = dgram.createSocket({ type: net.isIPv6(host) ? 'udp6' : 'udp4' });
    sock.on('message', (msg, rinfo) => this.onUdp(sock, msg, rinfo));
    return new Promise((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(port, host, () => {
        sock.off('error', reject);
        sock.on('error', (e) => log.warn('DNS UDP socket error', { error: e }));
        this.udp = sock;
        resolve(sock.address().port);
      });
    });
  }

  private bindTcp(host: string, port: number): Promise<void> {
    const srv = net.createServer((sock) => this.onTcp(sock));
    srv.maxConnections = this.opts.maxTcpConnections ?? 256;
    return new Promise((resolve, reject) => {
      srv.once('error', reject);
      srv.listen({ host, port, exclusive: true }, () => {
        srv.off('error', reject);
        srv.on('error', (e) => log.warn('DNS TCP server error', { error: e }));
        this.tcp = srv;
        resolve();
      });
    });
  }

  private onUdp(sock: dgram.Socket, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const send = (out: Buffer | undefined): void => {
      if (out && !this.closed) sock.send(out, rinfo.port, rinfo.address);
    };
    const out = this.answer(msg, 'udp');
    if (out instanceof Promise) void out.then(send);
    else send(out);
  }

  private onTcp(sock: net.Socket): void {
    this.conns.add(sock);
    tcpConnections.inc();
    const maxInFlight = this.opts.maxTcpInFlight ?? 64;
    let buf: Buffer = Buffer.alloc(0);
    let inFlight = 0;
    sock.setNoDelay(true);
    sock.setTimeout(this.opts.tcpIdleMs ?? 10_000, () => sock.destroy());
    sock.on('error', () => sock.destroy());
    sock.on('close', () => {
      this.conns.delete(sock);
      tcpConnections.dec();
    });
    const drain = (): void => {
      while (buf.length >= 2 && inFlight < maxInFlight) {
        const len = buf.readUInt16BE(0);
        if (buf.length < 2 + len) break;
        const msg = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        if (len === 0) {
          sock.destroy();
          return;
        }
        const out = this.answer(Buffer.from(msg), 'tcp');
        if (!(out instanceof Promise)) {
          if (!reply(out)) return;
          continue;
        }
        inFlight++;
        void out.then((b) => {
          inFlight--;
          if (!reply(b)) return;
          if (sock.isPaused()) sock.resume();
          drain();
        });
      }
      if (inFlight >= maxInFlight) sock.pause();
    };
    /** Writes one answer; false when the connection is gone (or cut off for not reading). */
    const reply = (out: Buffer | undefined): boolean => {
      if (sock.destroyed) return false;
      if (!out) return true;
      const frame = Buffer.allocUnsafe(2 + out.length);
      frame.writeUInt16BE(out.length, 0);
      out.copy(frame, 2);
      sock.write(frame);
      // A client that sends but does not read is cut off.
      if (sock.writableLength > 1 << 20) {
        sock.destroy();
        return false;
      }
      return true;
    };
    sock.on('data', (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      drain();
    });
  }

  /**
   * The bytes to send back for one packet, or undefined to send nothing; a promise only when
   * the query is forwarded. Never throws.
   */
  private answer(packet: Buffer, transport: Transport): Buffer | undefined | Promise<Buffer | undefined> {
    const start = performance.now();
    try {
      const out = respond(packet, transport, this.zone, this.origin, this.responder);
      if (out.kind === 'drop') {
        droppedTotal.inc({ reason: out.reason });
        return undefined;
      }
      if (out.kind === 'reply') {
        if (out.truncated) truncatedTotal.inc();
        this.count(out.qtype, out.rcode, transport, start);
        return out.bytes;
      }
      return this.forward(packet, out.query, out.qtype, transport, start);
    } catch (e) {
      return this.failed(packet, transport, start, e);
    }
  }

  private async forward(packet: Buffer, query: Message, qtype: number, transport: Transport, start: number): Promise<Buffer | undefined> {
    try {
      const forwarded = this.forwarder ? await this.forwarder.forward(packet, transport) : undefined;
      forwardedTotal.inc({ result: forwarded ? 'answered' : 'failed' });
      const bytes = forwarded ?? servfail(query, transport, this.responder);
      this.count(qtype, peekHeader(bytes)?.rcode ?? RCODE.SERVFAIL, transport, start);
      return bytes;
    } catch (e) {
      return this.failed(packet, transport, start, e);
    }
  }

  /** A bare SERVFAIL header for a query whose handling threw (a bug): logged, never fatal. */
  private failed(packet: Buffer, transport: Transport, start: number, e: unknown): Buffer | undefined {
    log.error('DNS query failed', { transport, bytes: packet.length, error: e });
    const h = peekHeader(packet);
    if (!h || h.qr) return undefined;
    const b = Buffer.alloc(12);
    b.writeUInt16BE(h.id, 0);
    b.writeUInt16BE(0x8000 | (h.opcode << 11) | (h.rd ? 0x0100 : 0) | RCODE.SERVFAIL, 2);
    this.count(undefined, RCODE.SERVFAIL, transport, start);
    return b;
  }

  private count(qtype: number | undefined, rcode: number, transport: Transport, start: number): void {
    const t = qtype === undefined ? 'none' : typeName(qtype);
    queriesTotal.inc({ type: KNOWN_TYPES.has(t) ? t : 'other', rcode: rcodeName(rcode), transport });
    latency.observe({ transport }, (performance.now() - start) / 1000);
  }

  private closeUdp(): Promise<void> {
    const sock = this.udp;
    this.udp = undefined;
    return sock ? new Promise((resolve) => sock.close(() => resolve())) : Promise.resolve();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.forwarder?.close();
    for (const c of this.conns) c.destroy();
    const tcp = this.tcp;
    this.tcp = undefined;
    await Promise.all([this.closeUdp(), tcp ? new Promise<void>((resolve) => tcp.close(() => resolve())) : undefined]);
  }
}
