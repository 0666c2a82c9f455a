// DNS clients for tests: the real `kdig` (Debian knot-dnsutils, provisioned by
// scripts/provision.d/40-dnsutils.sh), parsed from its JSON output (RFC 8427), and a small
// UDP/TCP client on our own codec for what kdig does not show (the case of names as sent,
// raw packets).
import dgram from 'node:dgram';
import net from 'node:net';
import { mergeStates } from '../../src/model/aggregate.ts';
import type { ModelSnapshot } from '../../src/model/snapshot.ts';
import type { Endpoint, RegistryState, RpcInterface, Service } from '../../src/model/types.ts';
import { decodeMessage, encodeQuery, type Message, rcodeName } from '../../src/dns/wire.ts';
import { spawn } from 'node:child_process';

export const KDIG = process.env.ISTHMUS_KDIG ?? 'kdig';

export interface DigRecord {
  name: string;
  type: string;
  ttl: number;
  /** Presentation RDATA as kdig prints it, e.g. "0 10 20880 a.b." or "\"k=v\" \"x=y\"". */
  data: string;
}

export interface DigResult {
  rcode: string;
  aa: boolean;
  tc: boolean;
  msgLength: number;
  answer: DigRecord[];
  authority: DigRecord[];
  additional: DigRecord[];
  /** UDP payload size the server advertised in its OPT record, if any. */
  ednsPayload?: number;
}

interface KdigRR {
  NAME: string;
  TYPEname?: string;
  TYPE: number;
  TTL: number;
  CLASS: number;
  [k: string]: unknown;
}

function rr(r: KdigRR): DigRecord {
  const type = r.TYPEname ?? `TYPE${r.TYPE}`;
  return { name: r.NAME.replace(/\.$/, ''), type, ttl: r.TTL, data: String(r[`rdata${type}`] ?? r.RDATAHEX ?? '') };
}

/** `kdig @127.0.0.1 -p PORT NAME TYPE ARGS… +json`, parsed. */
export async function kdig(port: number, name: string, type: string, args: readonly string[] = []): Promise<DigResult> {
  const r = await runKdig(['@127.0.0.1', '-p', String(port), name, type, '+json', '+timeout=2', '+retry=0', ...args], 15_000);
  if (r.code !== 0) throw new Error(`kdig ${name} ${type} ${args.join(' ')} exited ${r.code}: ${r.stderr}${r.stdout}`);
  const j = JSON.parse(r.stdout) as {
    RCODE: number;
    AA: number;
    TC: number;
    msgLength: number;
    answerRRs?: KdigRR[];
    authorityRRs?: KdigRR[];
    additionalRRs?: KdigRR[];
  };
  const additional = j.additionalRRs ?? [];
  const opt = additional.find((a) => a.TYPE === 41);
  const extRcode = opt ? (opt.TTL >>> 24) << 4 : 0;
  return {
    rcode: rcodeName(j.RCODE | extRcode),
    aa: j.AA === 1,
    tc: j.TC === 1,
    msgLength: j.msgLength,
    answer: (j.answerRRs ?? []).map(rr),
    authority: (j.authorityRRs ?? []).map(rr),
    additional: additional.filter((a) => a.TYPE !== 41).map(rr),
    ...(opt ? { ednsPayload: opt.CLASS } : {}),
  };
}

/**
 * Runs kdig with stdin closed from the start: writing to the stdin of a process that exits
 * at once (runCommand does) can fail with EPIPE.
 */
function runKdig(args: readonly string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(KDIG, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

let nextId = 1;

/** Sends raw bytes over UDP and resolves to the raw answer (rejects after `timeoutMs`). */
export function udpExchange(port: number, packet: Buffer, timeoutMs = 2000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket('udp4');
    const timer = setTimeout(() => {
      sock.close();
      reject(new Error(`no UDP answer from 127.0.0.1:${port} in ${timeoutMs} ms`));
    }, timeoutMs);
    sock.once('message', (m) => {
      clearTimeout(timer);
      sock.close();
      resolve(m);
    });
    sock.send(packet, port, '127.0.0.1');
  });
}

/** One query over UDP with our codec. */
export async function udpQuery(port: number, name: string, type: number, edns?: { payloadSize: number }, timeoutMs = 2000): Promise<Message> {
  const id = nextId++ & 0xffff;
  const m = decodeMessage(await udpExchange(port, encodeQuery({ id, name, type, ...(edns ? { edns } : {}) }), timeoutMs));
  if (m.header.id !== id) throw new Error(`answer id ${m.header.id} for query id ${id}`);
  return m;
}

/** A TCP connection that sends length-prefixed messages and reads answers in order of arrival. */
export class TcpDnsClient {
  private readonly sock: net.Socket;
  private buf: Buffer = Buffer.alloc(0);
  private readonly waiting: Array<(b: Buffer) => void> = [];
  private readonly ready: Promise<void>;
  readonly closed: Promise<void>;

  constructor(port: number) {
    this.sock = net.connect({ host: '127.0.0.1', port });
    this.ready = new Promise((resolve, reject) => {
      this.sock.once('connect', resolve);
      this.sock.once('error', reject);
    });
    this.closed = new Promise((resolve) => this.sock.once('close', () => resolve()));
    this.sock.on('error', () => undefined);
    this.sock.on('data', (chunk: Buffer) => {
      this.buf = Buffer.concat([this.buf, chunk]);
      while (this.buf.length >= 2 && this.buf.length >= 2 + this.buf.readUInt16BE(0)) {
        const len = this.buf.readUInt16BE(0);
        const msg = this.buf.subarray(2, 2 + len);
        this.buf = this.buf.subarray(2 + len);
        this.waiting.shift()?.(Buffer.from(msg));
      }
    });
  }

  async send(packet: Buffer): Promise<void> {
    await this.ready;
    const len = Buffer.alloc(2);
    len.writeUInt16BE(packet.length);
    this.sock.write(Buffer.concat([len, packet]));
  }

  /** The next answer on the connection. */
  next(timeoutMs = 2000): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no TCP answer in ${timeoutMs} ms`)), timeoutMs);
      this.waiting.push((b) => {
        clearTimeout(timer);
        resolve(b);
      });
    });
  }

  close(): void {
    this.sock.destroy();
  }
}

// ---------------------------------------------------------------- model fixtures

const origin = { registry: 'memory://dns-test', ref: 'test' };

export function svc(hostname: string, over: Partial<Service> = {}): Service {
  return {
    hostname,
    aliases: [],
    namespace: 'default',
    ports: [{ name: 'dubbo', number: 20880, protocol: 'TCP' }],
    addresses: [],
    resolution: 'STATIC',
    location: 'MESH_INTERNAL',
    interfaces: [],
    origin,
    ...over,
  };
}

export function iface(name: string, hostname: string, over: Partial<RpcInterface> = {}): RpcInterface {
  return { name, methods: ['get', 'list'], hostname, ...over };
}

export function ep(service: string, address: string, over: Partial<Endpoint> = {}): Endpoint {
  return { service, address, ports: {}, labels: {}, locality: {}, weight: 1, health: 'HEALTHY', origin, ...over };
}

export function modelOf(services: Service[], endpoints: Endpoint[] = [], over: Partial<RegistryState> = {}): ModelSnapshot {
  return mergeStates([{ id: 'memory://dns-test', synced: true, services, endpoints, workloads: [], rejections: [], ...over }]);
}
