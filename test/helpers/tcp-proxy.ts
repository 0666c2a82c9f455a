// A loopback TCP proxy in front of a server, to make the network faults a test controls:
// - partition('refuse'): every connection dropped, new ones refused (a partition);
// - partition('blackhole'): connections stay up, nothing is forwarded, new ones accepted
//   and never answered (a hung network);
// - heal(): forwarding again; connections a blackhole held are dropped, as a router restart would;
// - hold()/release() (HTTP/2 servers, started with { http2: true }): the server's answers
//   (HEADERS, DATA, CONTINUATION, RST_STREAM) are kept back while connection-level frames
//   (SETTINGS, PING, ...) pass, so connections stay up and new ones open.
import net from 'node:net';

interface Pair {
  readonly client: net.Socket;
  readonly upstream?: net.Socket;
  /** Bytes of an incomplete HTTP/2 frame from the server. */
  partial: Buffer;
  held: Buffer[];
}

// HTTP/2 frame types that answer a stream: DATA, HEADERS, RST_STREAM, CONTINUATION.
const ANSWERS = new Set([0, 1, 3, 9]);

export class TcpProxy {
  readonly port: number;
  private readonly server: net.Server;
  private readonly target: { port: number; host: string };
  private readonly http2: boolean;
  private readonly pairs = new Set<Pair>();
  private mode: 'open' | 'refuse' | 'blackhole' = 'open';
  private holding = false;
  /** Connections accepted so far (refused ones included): a client's attempts. */
  accepted = 0;

  private constructor(server: net.Server, port: number, target: { port: number; host: string }, http2: boolean) {
    this.server = server;
    this.port = port;
    this.target = target;
    this.http2 = http2;
  }

  static async start(targetPort: number, opts: { host?: string; http2?: boolean } = {}): Promise<TcpProxy> {
    const server = net.createServer();
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: '127.0.0.1', port: 0 }, () => resolve((server.address() as net.AddressInfo).port));
    });
    const proxy = new TcpProxy(server, port, { port: targetPort, host: opts.host ?? '127.0.0.1' }, opts.http2 ?? false);
    server.on('connection', (c) => proxy.accept(c));
    return proxy;
  }

  /** 127.0.0.1:PORT, for clients. */
  get endpoint(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Connections currently open through the proxy. */
  get connections(): number {
    return this.pairs.size;
  }

  /** Frames of the server held back by hold(). */
  get heldFrames(): number {
    let n = 0;
    for (const p of this.pairs) n += p.held.length;
    return n;
  }

  private drop(p: Pair): void {
    p.client.destroy();
    p.upstream?.destroy();
    this.pairs.delete(p);
  }

  private accept(client: net.Socket): void {
    this.accepted++;
    client.on('error', () => undefined);
    if (this.mode === 'refuse') {
      client.destroy();
      return;
    }
    if (this.mode === 'blackhole') {
      // Accepted, never answered; dropped at heal() or close().
      const pair: Pair = { client, partial: Buffer.alloc(0), held: [] };
      this.pairs.add(pair);
      client.once('close', () => this.pairs.delete(pair));
      return;
    }
    const upstream = net.connect(this.target);
    upstream.on('error', () => undefined);
    const pair: Pair = { client, upstream, partial: Buffer.alloc(0), held: [] };
    this.pairs.add(pair);
    client.once('close', () => this.drop(pair));
    upstream.once('close', () => this.drop(pair));
    client.on('data', (d: Buffer) => upstream.write(d));
    upstream.on('data', (d: Buffer) => (this.http2 ? this.frames(pair, d) : client.write(d)));
  }

  /** The server side of HTTP/2 is frames from its first byte: 3 bytes length, type, flags, stream. */
  private frames(pair: Pair, d: Buffer): void {
    let buf = pair.partial.length ? Buffer.concat([pair.partial, d]) : d;
    while (buf.length >= 9) {
      const size = 9 + buf.readUIntBE(0, 3);
      if (buf.length < size) break;
      const frame = buf.subarray(0, size);
      buf = buf.subarray(size);
      const answer = ANSWERS.has(frame[3]!);
      if (answer && (this.holding || pair.held.length)) pair.held.push(Buffer.from(frame));
      else pair.client.write(frame);
    }
    pair.partial = Buffer.from(buf);
  }

  partition(mode: 'refuse' | 'blackhole'): void {
    this.mode = mode;
    for (const p of this.pairs) {
      if (mode === 'refuse') this.drop(p);
      else {
        p.client.pause();
        p.upstream?.pause();
      }
    }
  }

  /** Forwards new connections again; connections held by a blackhole are dropped. */
  heal(): void {
    const wasBlackhole = this.mode === 'blackhole';
    this.mode = 'open';
    if (wasBlackhole) for (const p of this.pairs) this.drop(p);
  }

  /** Keeps back the server's answers until release(). */
  hold(): void {
    if (!this.http2) throw new Error('hold() needs a proxy started with { http2: true }');
    this.holding = true;
  }

  release(): void {
    this.holding = false;
    for (const p of this.pairs) {
      for (const f of p.held) p.client.write(f);
      p.held = [];
    }
  }

  async close(): Promise<void> {
    for (const p of this.pairs) this.drop(p);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
