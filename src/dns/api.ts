// The records API: records operators manage by hand in the zone, over HTTPS with a bearer
// token (what CoreDNS's DynAPI never finished).
//
//   GET    /v1/records[?name=N]          → 200 {"records": [...]}
//   PUT    /v1/records        {record}   → 200 {"records": [...]}   adds it (same name, type, data: new TTL)
//   DELETE /v1/records        {record}   → 200 | 404                 removes it (the TTL is ignored)
//   DELETE /v1/records?name=N[&type=T]  → 200 | 404                 removes every match
//   POST   /v1/records/batch  {"put": [...], "delete": [...]} → 200; all validated first, applied as one plan
//
// A record is {name, type, ttl, ...data}: A/AAAA {address}, CNAME {target}, SRV {priority,
// weight, port, target}, TXT {text: [strings]}. Names are absolute, inside the zone, not the
// apex, not under the instance subtree, and not a name the model gives records to (those
// belong to Isthmus); labels are hostname labels or `_srv`-style ones. Errors are 400 with
// {"error": reason}, 401 for a missing or wrong token, 413 for a body too large.
//
// Only TLS: the listener sniffs the first byte of each connection, and a plain-HTTP request
// gets a 400 "HTTPS only" and is closed without being read. The records are kept in a
// RecordStore of their own (an EtcdRecordStore with owner "records-api" next to Isthmus's, or
// in memory) and pushed to the built-in responder through `publish`.
import { createHash, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import type http from 'node:http';
import net from 'node:net';
import { logger } from '../shared/log.ts';
import { metrics } from '../shared/metrics.ts';
import { splitHostPort } from './address.ts';
import { EtcdRecordStore, parseEtcdStoreUrl } from './etcd-store.ts';
import { FileRecordStore } from './file-record-store.ts';
import { parseIp, formatIp } from '../shared/ip.ts';
import { plan, emptyPlan, type RecordStore } from './plan.ts';
import { INSTANCE_LABEL } from './records.ts';
import { compareRecords, type DnsRecord, inZone, recordKey } from './rr.ts';

const log = logger('dns.api');
const requestsTotal = metrics.counter('isthmus_dns_api_requests_total', 'Records API requests, by method and status code.');

export const MAX_BODY = 256 * 1024;
export const MAX_BATCH = 1000;
export const MAX_RECORDS = 10_000;
export const MAX_TTL = 86_400;

export interface RecordsApiOptions {
  /** HOST:PORT (port 0 picks one). */
  readonly listen: string;
  readonly zone: string;
  /** The bearer token (read it with readTokenFile). */
  readonly token: string;
  /** PEM certificate chain and key. */
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
  /** Where the manual records are kept (owner "records-api"). */
  readonly store: RecordStore;
  /** Names the model gives records to now; the API refuses them. */
  readonly reservedNames: () => ReadonlySet<string>;
  /** Called with every manual record after each change (DnsService.setManualRecords). */
  readonly publish?: (records: readonly DnsRecord[]) => void;
}

/** Reads a token file: the first line, trimmed; refuses an empty or short token. */
export function readTokenFile(path: string): string {
  const token = fs.readFileSync(path, 'utf8').split('\n')[0]!.trim();
  if (token.length < 16) throw new Error(`${path}: the records API token must be at least 16 characters`);
  return token;
}

/**
 * Where the records API keeps its records: beside Isthmus's in etcd (owner "records-api",
 * leaves `_api-…`) when the zone store is etcd (`--dns-store etcd://…`), else a local file.
 */
export function recordsApiStore(opts: { dnsStore?: string; zone: string; file: string }): RecordStore {
  if (opts.dnsStore) {
    const { endpoints, prefix } = parseEtcdStoreUrl(opts.dnsStore);
    return new EtcdRecordStore({ endpoints, prefix, zone: opts.zone, owner: 'records-api', leafTag: 'api' });
  }
  return new FileRecordStore(opts.file);
}

export class ApiError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

const LABEL = /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?|_[a-z0-9](?:[a-z0-9-]{0,60}[a-z0-9])?)$/;

/** Validates one record from a request body; throws ApiError(400) with the reason. */
export function parseRecord(raw: unknown, zone: string, reserved: ReadonlySet<string>, forDelete = false): DnsRecord {
  const bad = (why: string): never => {
    throw new ApiError(400, why);
  };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return bad('a record must be a JSON object');
  const o = raw as Record<string, unknown>;
  if (typeof o.name !== 'string') return bad('name: required string');
  const name = o.name.toLowerCase().replace(/\.$/, '');
  if (!inZone(name, zone)) return bad(`name: ${name} is not inside the zone ${zone}`);
  if (name === zone) return bad(`name: the zone apex holds only SOA and NS records`);
  if (name.length > 253) return bad('name: longer than 253 characters');
  const badLabel = name.split('.').find((l) => !LABEL.test(l));
  if (badLabel !== undefined) return bad(`name: label "${badLabel}" is not a hostname label (letters, digits, '-', at most 63; or _label)`);
  if (inZone(name, `${INSTANCE_LABEL}.${zone}`)) return bad(`name: names under ${INSTANCE_LABEL}.${zone} are reserved for instance names`);
  if (reserved.has(name)) return bad(`name: ${name} is managed by Isthmus (from the service model)`);
  const ttl = o.ttl === undefined && forDelete ? 0 : o.ttl;
  if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < (forDelete ? 0 : 1) || ttl > MAX_TTL) return bad(`ttl: an integer from 1 to ${MAX_TTL}`);
  const target = (k: string): string => {
    const t = o[k];
    if (typeof t !== 'string') return bad(`${k}: required string`);
    const n = t.toLowerCase().replace(/\.$/, '');
    if (n.length === 0 || n.length > 253 || n.split('.').some((l) => !LABEL.test(l))) return bad(`${k}: not a domain name`);
    return n;
  };
  const u16 = (k: string): number => {
    const v = o[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 65535) return bad(`${k}: an integer from 0 to 65535`);
    return v;
  };
  switch (o.type) {
    case 'A':
    case 'AAAA': {
      const ip = typeof o.address === 'string' ? parseIp(o.address) : undefined;
      if (!ip || (ip.family === 4) !== (o.type === 'A')) return bad(`address: not an IPv${o.type === 'A' ? 4 : 6} address`);
      return { name, ttl, type: o.type, address: formatIp(ip.family, ip.value) };
    }
    case 'CNAME':
      return { name, ttl, type: 'CNAME', target: target('target') };
    case 'SRV':
      return { name, ttl, type: 'SRV', priority: u16('priority'), weight: u16('weight'), port: u16('port'), target: target('target') };
    case 'TXT': {
      const text = o.text;
      if (!Array.isArray(text) || text.length === 0 || text.length > 16) return bad('text: an array of 1 to 16 strings');
      for (const t of text) if (typeof t !== 'string' || Buffer.byteLength(t) > 255) return bad('text: each string at most 255 octets');
      return { name, ttl, type: 'TXT', text: text as string[] };
    }
    default:
      return bad(`type: one of A, AAAA, CNAME, SRV, TXT (got ${JSON.stringify(o.type)})`);
  }
}

/** The set of records after `put` and `delete`, checked as a whole (CNAME exclusivity, size). */
function applyChanges(current: readonly DnsRecord[], put: readonly DnsRecord[], del: readonly DnsRecord[]): { next: DnsRecord[]; missing: DnsRecord[] } {
  const map = new Map(current.map((r) => [recordKey(r), r]));
  const missing: DnsRecord[] = [];
  for (const r of del) if (!map.delete(recordKey(r))) missing.push(r);
  for (const r of put) map.set(recordKey(r), r);
  const next = [...map.values()].sort(compareRecords);
  if (next.length > MAX_RECORDS) throw new ApiError(400, `too many records: at most ${MAX_RECORDS}`);
  const types = new Map<string, Set<string>>();
  for (const r of next) {
    const t = types.get(r.name) ?? new Set<string>();
    t.add(r.type);
    types.set(r.name, t);
  }
  for (const [name, t] of types) if (t.has('CNAME') && t.size > 1) throw new ApiError(400, `name: ${name} cannot have a CNAME and other records`);
  for (const [name, t] of types) if (t.has('CNAME') && next.filter((r) => r.name === name).length > 1) throw new ApiError(400, `name: ${name} can have one CNAME only`);
  return { next, missing };
}

/** What `isthmus serve --records-api ADDR --records-token-file PATH --tls-cert PATH --tls-key PATH` gives. */
export interface RecordsApiFlags {
  readonly listen: string;
  readonly tokenFile: string;
  readonly certFile: string;
  readonly keyFile: string;
}

export class RecordsApiServer {
  /** Reads the token, certificate and key files named by the flags. */
  static fromFiles(flags: RecordsApiFlags, rest: Omit<RecordsApiOptions, 'listen' | 'token' | 'cert' | 'key'>): RecordsApiServer {
    return new RecordsApiServer({
      ...rest,
      listen: flags.listen,
      token: readTokenFile(flags.tokenFile),
      cert: fs.readFileSync(flags.certFile),
      key: fs.readFileSync(flags.keyFile),
    });
  }

  private readonly opts: RecordsApiOptions;
  private readonly zone: string;
  private readonly tokenDigest: Buffer;
  private readonly tls: https.Server;
  private readonly front: net.Server;
  private records: DnsRecord[] = [];
  /** Changes run one at a time. */
  private queue: Promise<unknown> = Promise.resolve();
  private boundPort = 0;
  private readonly sockets = new Set<net.Socket>();

  constructor(opts: RecordsApiOptions) {
    this.opts = opts;
    this.zone = opts.zone.toLowerCase().replace(/\.$/, '');
    if (opts.token.length < 16) throw new Error('the records API token must be at least 16 characters');
    this.tokenDigest = createHash('sha256').update(opts.token).digest();
    this.tls = https.createServer({ cert: opts.cert, key: opts.key, minVersion: 'TLSv1.2' }, (req, res) => void this.handle(req, res));
    this.tls.on('tlsClientError', () => undefined);
    // One port: TLS connections go to the HTTPS server; anything else is told "HTTPS only".
    this.front = net.createServer({ pauseOnConnect: true }, (sock) => {
      this.sockets.add(sock);
      sock.once('close', () => this.sockets.delete(sock));
      sock.on('error', () => undefined);
      sock.once('readable', () => {
        const first: Buffer | null = sock.read(1);
        if (!first) return void sock.destroy();
        sock.unshift(first);
        if (first[0] === 0x16) {
          this.tls.emit('connection', sock);
          return;
        }
        requestsTotal.inc({ method: 'plain-http', code: '400' });
        const body = 'HTTPS only: this is the records API, which takes TLS connections only\n';
        sock.end(`HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
      });
      sock.resume();
    });
  }

  get port(): number {
    return this.boundPort;
  }

  /** Loads the stored records, publishes them, then listens. */
  async start(): Promise<void> {
    this.records = [...(await this.opts.store.owned())];
    this.opts.publish?.(this.records);
    const { host, port } = splitHostPort(this.opts.listen);
    await new Promise<void>((resolve, reject) => {
      this.front.once('error', reject);
      this.front.listen({ host, port }, () => resolve());
    });
    this.boundPort = (this.front.address() as net.AddressInfo).port;
    log.info('records API listening (HTTPS)', { address: `${host}:${this.boundPort}`, zone: this.zone, records: this.records.length, store: this.opts.store.id });
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.front.close(() => resolve()));
    this.tls.closeAllConnections();
    for (const s of this.sockets) s.destroy();
    await closed;
    await this.queue.catch(() => undefined);
  }

  /** The manual records now. */
  list(): readonly DnsRecord[] {
    return this.records;
  }

  /** Validated change of the manual records, stored then published. */
  change(put: readonly unknown[], del: readonly unknown[]): Promise<{ records: readonly DnsRecord[]; missing: readonly DnsRecord[] }> {
    const run = async (): Promise<{ records: readonly DnsRecord[]; missing: readonly DnsRecord[] }> => {
      const reserved = this.opts.reservedNames();
      const p = put.map((r) => parseRecord(r, this.zone, reserved));
      const d = del.map((r) => parseRecord(r, this.zone, new Set(), true));
      const { next, missing } = applyChanges(this.records, p, d);
      const stored = await this.opts.store.owned();
      const pl = plan(next, stored);
      if (!emptyPlan(pl)) await this.opts.store.apply(pl);
      this.records = next;
      this.opts.publish?.(next);
      return { records: next, missing };
    };
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    return result;
  }

  private authorized(req: http.IncomingMessage): boolean {
    const m = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
    const given = createHash('sha256').update(m?.[1] ?? '').digest();
    // Equal-length digests: the comparison time does not depend on the token given.
    return timingSafeEqual(given, this.tokenDigest) && m !== null;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const send = (code: number, body: unknown, headers: Record<string, string> = {}): void => {
      requestsTotal.inc({ method: req.method ?? '', code: String(code) });
      const text = JSON.stringify(body);
      res.writeHead(code, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
      res.end(`${text}\n`);
    };
    try {
      if (!this.authorized(req)) return send(401, { error: 'missing or wrong bearer token' }, { 'www-authenticate': 'Bearer realm="isthmus-records"' });
      const url = new URL(req.url ?? '/', 'https://api');
      const route = `${req.method} ${url.pathname.replace(/\/+$/, '')}`;
      const name = url.searchParams.get('name')?.toLowerCase().replace(/\.$/, '');
      const type = url.searchParams.get('type')?.toUpperCase();
      switch (route) {
        case 'GET /v1/records':
          return send(200, { records: this.records.filter((r) => !name || r.name === name) });
        case 'PUT /v1/records':
          return send(200, { records: (await this.change([await readJson(req)], [])).records });
        case 'DELETE /v1/records': {
          let del: unknown[];
          if (name !== undefined) {
            del = this.records.filter((r) => r.name === name && (!type || r.type === type));
            if (del.length === 0) return send(404, { error: `no record ${name}${type ? ` ${type}` : ''}` });
          } else del = [await readJson(req)];
          const out = await this.change([], del);
          if (out.missing.length) return send(404, { error: `no such record: ${out.missing.map((r) => r.name).join(', ')}` });
          return send(200, { records: out.records });
        }
        case 'POST /v1/records/batch': {
          const body = await readJson(req);
          if (typeof body !== 'object' || body === null) throw new ApiError(400, 'body: {"put": [...], "delete": [...]}');
          const b = body as { put?: unknown; delete?: unknown };
          const put = b.put ?? [];
          const del = b.delete ?? [];
          if (!Array.isArray(put) || !Array.isArray(del)) throw new ApiError(400, 'put and delete: arrays of records');
          if (put.length + del.length > MAX_BATCH) throw new ApiError(400, `batch: at most ${MAX_BATCH} records`);
          const out = await this.change(put, del);
          if (out.missing.length) return send(404, { error: `no such record: ${out.missing.map((r) => r.name).join(', ')}` });
          return send(200, { records: out.records });
        }
        default:
          return send(404, { error: `no route ${route}` });
      }
    } catch (e) {
      if (e instanceof ApiError) return send(e.status, { error: e.message });
      log.error('records API request failed', { method: req.method, url: req.url, error: e });
      return send(503, { error: `store unavailable: ${(e as Error).message}` });
    }
  }
}

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY) throw new ApiError(413, `body larger than ${MAX_BODY} octets`);
    chunks.push(c);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new ApiError(400, 'body: not JSON');
  }
}
