// Forwarding of queries outside the zone to one upstream resolver, over UDP with a timeout.
// Each forwarded query gets a fresh id that is unique among those in flight; an answer is
// taken only from the upstream's address, with that id and the same question. An answer
// with TC set, for a client that asked over TCP, is fetched again over TCP. A timeout, or
// too many queries in flight, gives undefined (the caller answers SERVFAIL).
import dgram from 'node:dgram';
import net from 'node:net';
import { randomInt } from 'node:crypto';
import { splitHostPort } from './address.ts';
import { peekHeader } from './wire.ts';

export interface ForwarderOptions {
  /** Upstream HOST:PORT. */
  readonly upstream: string;
  readonly timeoutMs?: number;
  readonly maxInFlight?: number;
}

interface Pending {
  readonly question: Buffer;
  readonly resolve: (b: Buffer | undefined) => void;
  readonly timer: NodeJS.Timeout;
}

export class Forwarder {
  readonly upstream: { host: string; port: number };
  private readonly timeoutMs: number;
  private readonly maxInFlight: number;
  private socket: dgram.Socket | undefined;
  private readonly pending = new Map<number, Pending>();
  private readonly tcpSockets = new Set<net.Socket>();

  constructor(opts: ForwarderOptions) {
    this.upstream = splitHostPort(opts.upstream);
    this.timeoutMs = opts.timeoutMs ?? 2000;
    this.maxInFlight = opts.maxInFlight ?? 1024;
  }

  /** Sends `query` upstream; resolves to the answer with the client's id, or undefined. */
  async forward(query: Buffer, clientTransport: 'udp' | 'tcp'): Promise<Buffer | undefined> {
    const answer = await this.viaUdp(query);
    if (answer && clientTransport === 'tcp' && peekHeader(answer)?.tc) return this.viaTcp(query);
    return answer;
  }

  private udp(): dgram.Socket {
    if (this.socket) return this.socket;
    const sock = dgram.createSocket(net.isIPv6(this.upstream.host) ? 'udp6' : 'udp4');
    sock.on('message', (msg, rinfo) => this.onAnswer(msg, rinfo));
    sock.on('error', () => {
      // A send error (e.g. ICMP port unreachable) fails nothing else; the query times out.
    });
    sock.unref();
    this.socket = sock;
    return sock;
  }

  private viaUdp(query: Buffer): Promise<Buffer | undefined> {
    if (query.length < 12 || this.pending.size >= this.maxInFlight) return Promise.resolve(undefined);
    let id = randomInt(0, 65536);
    for (let i = 0; this.pending.has(id) && i < 65536; i++) id = (id + 1) & 0xffff;
    const clientId = query.readUInt16BE(0);
    const out = Buffer.from(query);
    out.writeUInt16BE(id, 0);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        resolve(undefined);
      }, this.timeoutMs);
      this.pending.set(id, {
        question: questionBytes(query),
        timer,
        resolve: (b) => {
          if (b) b.writeUInt16BE(clientId, 0);
          resolve(b);
        },
      });
      this.udp().send(out, this.upstream.port, this.upstream.host);
    });
  }

  private onAnswer(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (msg.length < 12 || rinfo.port !== this.upstream.port || !sameHost(rinfo.address, this.upstream.host)) return;
    const id = msg.readUInt16BE(0);
    const p = this.pending.get(id);
    if (!p || !questionBytes(msg).equals(p.question)) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    p.resolve(Buffer.from(msg));
  }

  private viaTcp(query: Buffer): Promise<Buffer | undefined> {
    return new Promise((resolve) => {
      const sock = net.connect({ host: this.upstream.host, port: this.upstream.port });
      this.tcpSockets.add(sock);
      let buf = Buffer.alloc(0);
      const done = (b: Buffer | undefined): void => {
        sock.destroy();
        this.tcpSockets.delete(sock);
        resolve(b);
      };
      sock.setTimeout(this.timeoutMs, () => done(undefined));
      sock.on('error', () => done(undefined));
      sock.on('close', () => done(undefined));
      sock.on('connect', () => {
        const len = Buffer.alloc(2);
        len.writeUInt16BE(query.length);
        sock.write(Buffer.concat([len, query]));
      });
      sock.on('data', (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) done(buf.subarray(2, 2 + buf.readUInt16BE(0)));
      });
    });
  }

  close(): void {
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.resolve(undefined);
    }
    this.pending.clear();
    for (const s of this.tcpSockets) s.destroy();
    this.tcpSockets.clear();
    this.socket?.close();
    this.socket = undefined;
  }
}

/** The first question's bytes, ASCII lowercased (a 0x20-randomizing upstream may echo any case). */
function questionBytes(msg: Buffer): Buffer {
  let p = 12;
  while (p < msg.length && msg[p] !== 0) {
    if ((msg[p]! & 0xc0) !== 0) return Buffer.alloc(0);
    p += msg[p]! + 1;
  }
  const q = Buffer.from(msg.subarray(12, Math.min(msg.length, p + 5)));
  for (let i = 0; i < q.length; i++) if (q[i]! >= 0x41 && q[i]! <= 0x5a) q[i] = q[i]! | 0x20;
  return q;
}

function sameHost(a: string, b: string): boolean {
  return a === b || (b === 'localhost' && (a === '127.0.0.1' || a === '::1'));
}
