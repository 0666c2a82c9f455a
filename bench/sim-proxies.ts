// P simulated Envoy sidecars as raw SotW (or Delta) ADS clients, one HTTP/2 connection each,
// driven over IPC by bench/run.ts.
// Usage (forked): sim-proxies.ts --port N --proxies P --services S --endpoints E [--delta]
// --delta: Delta ADS instead of SotW (subscribe to what CDS and LDS name, ACK by nonce).
//
// Lean by design, so that P proxies fit beside a server sending each of them its full state
// at once: gRPC over node:http2 directly (the same HTTP/2 settings grpc-js uses), responses
// walked field by field as the bytes arrive (never assembled: one resource at a time is
// held), names and versions interned and shared by every proxy, per-cluster state in typed
// arrays indexed by a shared cluster table.
//
// Like Envoy, a proxy whose stream fails keeps its config and re-opens the stream (on the
// same connection if it is still up, else on a new one) after a jittered exponential backoff
// (BACKOFF_BASE_MS doubling up to BACKOFF_MAX_MS), re-sending its requests: SotW with the
// version_info it holds and no nonce, Delta with every name it subscribed to and the
// versions it holds (initial_resource_versions). In a cold storm they come back holding
// nothing and send what a starting Envoy sends.
import http2 from 'node:http2';
import { parseArgs } from 'node:util';
import { messageType } from '../src/xds/proto.ts';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE } from '../src/xds/resources.ts';
import { type FromSim, memory, now, type SimStatus, type ToSim } from './messages.ts';
import { deltaRequestParts, encodeNames, F, FieldStream, first, framePrefix, repeated, requestParts, str, walk } from './wire.ts';

const ADS = '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources';
const DELTA_ADS = '/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources';
const BACKOFF_BASE_MS = 100;
const BACKOFF_MAX_MS = 1000;
const NO_NAMES = encodeNames([]);

const { values } = parseArgs({
  options: { port: { type: 'string' }, proxies: { type: 'string' }, services: { type: 'string' }, endpoints: { type: 'string' }, delta: { type: 'boolean', default: false } },
});
const PORT = Number(values.port);
const P = Number(values.proxies);
const S = Number(values.services);
const E = Number(values.endpoints);

function send(m: FromSim): void {
  // After the runner let go (stop), progress has nobody to go to.
  if (process.connected) process.send?.(m);
}

// Type URLs as bytes (an Any's type_url is compared, not decoded) and as bits of a mask.
const TYPES = [CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE] as const;
const TYPE_BYTES = TYPES.map((t) => Buffer.from(t));
const ALL_TYPES = 15;
function typeIndex(b: Uint8Array | undefined): number {
  if (!b) return -1;
  for (let i = 0; i < TYPE_BYTES.length; i++) if (TYPE_BYTES[i]!.equals(b)) return i;
  return -1;
}
const [CDS, EDS, LDS, RDS] = [0, 1, 2, 3];

/** One copy of each name or version, shared by every proxy. */
const strings = new Map<string, string>();
function intern(s: string): string {
  const x = strings.get(s);
  if (x !== undefined) return x;
  strings.set(s, s);
  return s;
}

/** Cluster name → index into the per-proxy typed arrays. */
const clusterIndex = new Map<string, number>();
function indexOf(name: string): number {
  let i = clusterIndex.get(name);
  if (i === undefined) clusterIndex.set(name, (i = clusterIndex.size));
  return i;
}

/** Sorted name lists, one array and one encoded resource_names per distinct list. */
const lists = new Map<string, { names: string[]; bytes: Buffer }>();
function sharedList(names: string[], current: readonly string[]): { names: string[]; bytes: Buffer } | undefined {
  names.sort();
  if (names.length === current.length && names.every((n, i) => n === current[i])) return undefined;
  const key = names.join('\n');
  let l = lists.get(key);
  if (!l) lists.set(key, (l = { names, bytes: encodeNames(names) }));
  return l;
}

interface Marker {
  id: number;
  cluster: string;
  address: string;
  times: number[];
  count: number;
}
let marker: Marker | undefined;
let syncedCount = 0;
let connectedCount = 0;
/** Stream failures while no restart is expected. */
let failedCount = 0;
let tStart = 0;
const syncTimes: number[] = new Array<number>(P).fill(NaN);

/**
 * The server restart being measured (0: none): reconnects, resyncs, their times. cold: the
 * proxies come back holding nothing (as if every Envoy restarted too), so all is sent again.
 */
const storm = { id: 0, cold: false, resynced: 0, lastEvent: 0, times: [] as number[] };

function addressesOf(cla: Uint8Array): string[] {
  const out: string[] = [];
  for (const loc of repeated(cla, F.cla.localities)) {
    for (const lb of repeated(loc, F.locality.lbEndpoints)) {
      const ep = first(lb, F.lbEndpoint.endpoint);
      const addr = ep && first(ep, F.endpoint.address);
      const sock = addr && first(addr, F.address.socket);
      if (sock) out.push(str(first(sock, F.socket.address)));
    }
  }
  return out;
}

/** Counts lb_endpoints without descending into them. */
function endpointCount(cla: Uint8Array): number {
  let n = 0;
  for (const loc of repeated(cla, F.cla.localities)) {
    walk(loc, (f) => {
      if (f === F.locality.lbEndpoints) n++;
    });
  }
  return n;
}

/** Route names referenced by a listener's HTTP connection managers. */
function routeNamesOf(listener: Uint8Array): string[] {
  const out: string[] = [];
  for (const chain of repeated(listener, F.listener.chains)) {
    for (const filter of repeated(chain, F.chain.filters)) {
      const any = first(filter, F.filter.typedConfig);
      const hcm = any && first(any, F.anyValue);
      const rds = hcm && first(hcm, F.hcm.rds);
      if (rds) out.push(intern(str(first(rds, F.rds.routeName))));
    }
  }
  return out;
}

function encodeNode(index: number): Uint8Array {
  const nodeType = messageType('envoy.config.core.v3.Node');
  return nodeType
    .encode(
      nodeType.fromObject({
        id: `sim-${index}.bench`,
        cluster: 'bench',
        user_agent_name: 'envoy',
        metadata: { fields: { ISTHMUS_MODE: { stringValue: 'explicit' } } },
      }),
    )
    .finish();
}

/** Name and EDS-ness of a Cluster. */
function clusterInfo(c: Uint8Array): { name: string; eds: boolean } {
  let name = '';
  let type = -1;
  walk(c, (f, b, n) => {
    if (f === F.cluster.name) name = str(b);
    else if (f === F.cluster.type && !b) type = n;
  });
  return { name: intern(name), eds: type === F.edsType };
}

/** The type and body of an Any. */
function unpack(any: Uint8Array): { type: number; body: Uint8Array } {
  let type = -1;
  let body: Uint8Array = new Uint8Array();
  walk(any, (f, b) => {
    if (f === F.anyType) type = typeIndex(b);
    else if (f === F.anyValue && b) body = b;
  });
  return { type, body };
}

/** Per cluster index: endpoints held (NONE: no assignment) and the stream that sent it. */
class ClusterTable {
  static readonly NONE = 0xffff;
  counts = new Uint16Array(S).fill(ClusterTable.NONE);
  streams = new Int32Array(S);

  private grow(i: number): void {
    if (i < this.counts.length) return;
    const n = Math.max(i + 1, this.counts.length * 2);
    const counts = new Uint16Array(n).fill(ClusterTable.NONE);
    counts.set(this.counts);
    const streams = new Int32Array(n);
    streams.set(this.streams);
    this.counts = counts;
    this.streams = streams;
  }

  /** Records an assignment; true if it is the first of this cluster on this stream. */
  set(i: number, count: number | undefined, stream: number): boolean {
    this.grow(i);
    if (count !== undefined) this.counts[i] = Math.min(count, ClusterTable.NONE - 1);
    const fresh = this.streams[i] !== stream;
    this.streams[i] = stream;
    return fresh;
  }

  clear(): void {
    this.counts.fill(ClusterTable.NONE);
  }

  remove(i: number): void {
    if (i < this.counts.length) this.counts[i] = ClusterTable.NONE;
  }

  /** Every named cluster holds an assignment with E endpoints. */
  full(names: Iterable<string>): boolean {
    for (const n of names) {
      const i = clusterIndex.get(n);
      if (i === undefined || i >= this.counts.length || this.counts[i] !== E) return false;
    }
    return true;
  }
}

const HEADERS = { ':method': 'POST', 'content-type': 'application/grpc', te: 'trailers' };

/** One simulated Envoy: its connection, stream and reconnects; the xDS logic is in subclasses. */
/** Requests waiting for the read batch to end, in the order the proxies wrote them. */
let queued: { s: http2.ClientHttp2Stream; parts: Buffer[] }[] = [];

function writeQueued(): void {
  const batch = queued;
  queued = [];
  for (const { s, parts } of batch) {
    if (s.destroyed) continue;
    s.cork();
    s.write(framePrefix(parts));
    // Thousands of small parts (a Delta reconnect's held versions) cost less joined than written one by one.
    if (parts.length > 64) s.write(Buffer.concat(parts));
    else for (const p of parts) s.write(p);
    s.uncork();
  }
}

abstract class SimProxy {
  readonly index: number;
  protected readonly node: Uint8Array;
  private session?: http2.ClientHttp2Session;
  private stream?: http2.ClientHttp2Stream;
  private closing = false;
  private attempt = 0;
  protected streamNo = 0;
  /** Types answered on the current stream (bit per type). */
  protected answered = 0;
  /** Time of the chunk being processed (a response's time is that of its last chunk). */
  protected t = 0;
  private responded = false;
  private markerHit = false;
  synced = false;
  /** Holds the full config (kept current while not settled). */
  holds = false;
  /** The restart whose resync this proxy's stream belongs to, and whether it resynced. */
  private stormId = 0;
  private resynced = false;
  private liveAt = 0;

  constructor(index: number) {
    this.index = index;
    this.node = encodeNode(index);
  }

  protected abstract readonly path: string;
  /** Every request a new stream starts with (the first carries the node). */
  protected abstract hello(): Buffer[][];
  protected abstract onField(field: number, bytes: Uint8Array): void;
  protected abstract onEnd(): void;
  /** Every resource a new stream must bring again for the resync to count (strict check). */
  protected abstract resentAll(): boolean;
  protected abstract complete(): boolean;
  /** Drops everything held, as a restarted Envoy would have nothing. */
  protected abstract forget(): void;

  /** Not settled: still counting what it holds (initial sync, or a resync under way). */
  protected get counting(): boolean {
    return !this.synced || (this.stormId !== 0 && !this.resynced);
  }

  /** When its stream of the current restart opened on a connected session (0: it has not). */
  get live(): number {
    return this.stream && this.stormId === storm.id ? this.liveAt : 0;
  }

  open(): void {
    if (this.closing) return;
    let s: http2.ClientHttp2Stream;
    try {
      if (!this.session || this.session.closed || this.session.destroyed) this.session = this.connect();
      s = this.session.request({ ...HEADERS, ':path': this.path });
    } catch {
      // The connection is going away (the server went): open a new one.
      this.session?.destroy();
      this.session = this.connect();
      s = this.session.request({ ...HEADERS, ':path': this.path });
    }
    this.stream = s;
    this.streamNo++;
    this.answered = 0;
    this.liveAt = 0;
    if (this.stormId !== storm.id) {
      this.stormId = storm.id;
      this.resynced = false;
      if (storm.cold) {
        this.forget();
        this.holds = false;
      }
    }
    const session = this.session;
    const markLive = (): void => {
      if (this.stream !== s) return;
      this.liveAt = now();
      if (this.stormId) storm.lastEvent = Math.max(storm.lastEvent, this.liveAt);
    };
    if (session.connecting) session.once('connect', markLive);
    else markLive();
    const fields = new FieldStream(
      (f, b) => this.onField(f, b),
      () => this.ended(),
    );
    let why = '';
    s.on('data', (chunk: Buffer) => {
      this.t = now();
      try {
        fields.push(chunk);
      } catch (e) {
        why = (e as Error).message;
        s.close(http2.constants.NGHTTP2_PROTOCOL_ERROR);
      }
    });
    s.on('trailers', (h) => {
      if (h['grpc-status'] !== '0') why ||= `grpc-status ${String(h['grpc-status'])} ${String(h['grpc-message'] ?? '')}`;
    });
    s.on('error', (e: Error) => (why ||= e.message));
    s.on('close', () => this.streamEnded(s, why || 'stream ended'));
    for (const parts of this.hello()) this.write(parts);
  }

  private connect(): http2.ClientHttp2Session {
    // Settings as grpc-js's transport: default windows, no session memory cap.
    const session = http2.connect(`http://127.0.0.1:${PORT}`, { maxSessionMemory: Number.MAX_SAFE_INTEGER });
    session.on('error', () => undefined); // its streams report it
    return session;
  }

  private streamEnded(s: http2.ClientHttp2Stream, why: string): void {
    if (this.stream !== s) return;
    this.stream = undefined;
    if (this.closing) return;
    if (!storm.id) {
      failedCount++;
      if (failedCount <= 3) process.stderr.write(`sim-${this.index}: ${why}\n`);
    }
    this.retry();
  }

  private retry(): void {
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** this.attempt) * (0.5 + Math.random() / 2);
    this.attempt = Math.min(this.attempt + 1, 10);
    setTimeout(() => this.open(), delay);
  }

  /**
   * A gRPC message from parts, written without joining them. Writes are queued and go out
   * once the responses at hand have all been read and stamped: a thousand Envoys each ACK in
   * their own process, so here one proxy's 250 KB ACK must not delay when the next proxy
   * is seen to receive its response.
   */
  protected write(parts: Buffer[]): void {
    const s = this.stream;
    if (!s || s.destroyed) return;
    queued.push({ s, parts });
    if (queued.length === 1) setImmediate(writeQueued);
  }

  /** After each response: ACKs are written by onEnd; here the bookkeeping. */
  private ended(): void {
    if (!this.responded) {
      this.responded = true;
      connectedCount++;
    }
    this.attempt = 0;
    this.onEnd();
    const t = this.t;
    if (this.markerHit && marker) {
      this.markerHit = false;
      marker.times[this.index] = t;
      if (++marker.count === P) send({ type: 'received', id: marker.id, times: marker.times });
    }
    if (this.counting) this.holds = this.complete();
    if (!this.synced && this.holds) {
      this.synced = true;
      syncTimes[this.index] = t;
      if (++syncedCount === P) send({ type: 'synced', tStart, times: syncTimes });
    }
    if (this.stormId && this.stormId === storm.id) {
      storm.lastEvent = Math.max(storm.lastEvent, t);
      if (!this.resynced && this.holds && this.answered === ALL_TYPES && this.resentAll()) {
        this.resynced = true;
        storm.times[this.index] = t;
        if (++storm.resynced === P) send({ type: 'resynced', id: storm.id, times: storm.times });
      }
    }
  }

  /** The marker's change, seen in assignment `cla` of cluster `name`: stamped when the response is in. */
  protected checkMarker(name: string, cla: Uint8Array): void {
    if (marker && name === marker.cluster && Number.isNaN(marker.times[this.index]) && addressesOf(cla).includes(marker.address)) this.markerHit = true;
  }

  close(): void {
    this.closing = true;
    this.stream?.close();
    this.session?.destroy();
  }
}

/** SotW: wildcard CDS and LDS, EDS for every EDS cluster, RDS for the listeners' routes. */
class SotwProxy extends SimProxy {
  protected readonly path = ADS;
  private readonly last: { version: string; nonce: string }[] = TYPES.map(() => ({ version: '', nonce: '' }));
  private clusters = 0;
  private edsNames: string[] = [];
  private edsNamesBytes = NO_NAMES;
  private readonly eds = new ClusterTable();
  /** EDS clusters whose assignment came on the current stream. */
  private edsFresh = 0;
  private listeners = 0;
  private routeNames: string[] = [];
  private routeNamesBytes = NO_NAMES;
  /** Route name → stream that last sent it. */
  private readonly routes = new Map<string, number>();
  // The response being read.
  private version = '';
  private nonce = '';
  private type = -1;
  private count = 0;
  private names: string[] = [];
  private readonly routeSet = new Set<string>();

  protected hello(): Buffer[][] {
    for (const l of this.last) l.nonce = '';
    this.edsFresh = 0;
    const v = (t: number): string => this.last[t]!.version;
    const out = [requestParts({ version: v(CDS), node: this.node, names: NO_NAMES, typeUrl: CLUSTER_TYPE, nonce: '' })];
    if (this.edsNames.length) out.push(requestParts({ version: v(EDS), names: this.edsNamesBytes, typeUrl: ENDPOINT_TYPE, nonce: '' }));
    out.push(requestParts({ version: v(LDS), names: NO_NAMES, typeUrl: LISTENER_TYPE, nonce: '' }));
    if (this.routeNames.length) out.push(requestParts({ version: v(RDS), names: this.routeNamesBytes, typeUrl: ROUTE_TYPE, nonce: '' }));
    return out;
  }

  private request(type: number, names: Buffer): void {
    const a = this.last[type]!;
    this.write(requestParts({ version: a.version, names, typeUrl: TYPES[type]!, nonce: a.nonce }));
  }

  protected onField(f: number, b: Uint8Array): void {
    if (f === F.res.version) this.version = str(b);
    else if (f === F.res.typeUrl) this.type = typeIndex(b);
    else if (f === F.res.nonce) this.nonce = str(b);
    else if (f === F.res.resources) this.resource(unpack(b));
  }

  private resource({ type, body }: { type: number; body: Uint8Array }): void {
    this.count++;
    switch (type) {
      case CDS: {
        const c = clusterInfo(body);
        if (c.eds) this.names.push(c.name);
        break;
      }
      case EDS: {
        const name = str(first(body, F.cla.name));
        // Counting is only needed until settled: a peer that resends every assignment on
        // each change (go-control-plane's SotW snapshot) then costs the simulator little.
        if (this.counting && this.eds.set(indexOf(name), endpointCount(body), this.streamNo)) this.edsFresh++;
        this.checkMarker(name, body);
        break;
      }
      case LDS:
        for (const n of routeNamesOf(body)) this.routeSet.add(n);
        break;
      case RDS:
        this.routes.set(intern(str(first(body, F.route.name))), this.streamNo);
        break;
    }
  }

  protected onEnd(): void {
    const type = this.type;
    if (type >= 0) {
      this.last[type] = { version: intern(this.version), nonce: this.nonce };
      this.answered |= 1 << type;
    }
    switch (type) {
      case CDS: {
        this.clusters = this.count;
        this.request(CDS, NO_NAMES);
        const l = sharedList(this.names, this.edsNames);
        if (l) {
          this.edsNames = l.names;
          this.edsNamesBytes = l.bytes;
          this.request(EDS, l.bytes);
        }
        break;
      }
      case EDS:
        this.request(EDS, this.edsNamesBytes);
        break;
      case LDS: {
        this.listeners = this.count;
        this.request(LDS, NO_NAMES);
        const l = sharedList([...this.routeSet], this.routeNames);
        if (l) {
          this.routeNames = l.names;
          this.routeNamesBytes = l.bytes;
          this.request(RDS, l.bytes);
        }
        break;
      }
      case RDS:
        this.request(RDS, this.routeNamesBytes);
        break;
    }
    this.version = this.nonce = '';
    this.type = -1;
    this.count = 0;
    this.names = [];
    this.routeSet.clear();
  }

  protected forget(): void {
    for (const l of this.last) l.version = '';
    this.clusters = this.listeners = 0;
    this.edsNames = this.routeNames = [];
    this.edsNamesBytes = this.routeNamesBytes = NO_NAMES;
    this.eds.clear();
    this.routes.clear();
  }

  protected resentAll(): boolean {
    if (this.edsFresh < this.edsNames.length) return false;
    for (const n of this.routeNames) if (this.routes.get(n) !== this.streamNo) return false;
    return true;
  }

  /** Every cluster, every endpoint of every cluster, listeners and their routes. */
  protected complete(): boolean {
    if (this.clusters !== S || this.edsNames.length !== S || !this.listeners || !this.routeNames.length) return false;
    for (const n of this.routeNames) if (!this.routes.has(n)) return false;
    return this.eds.full(this.edsNames);
  }
}

/** Delta: wildcard CDS and LDS, then subscriptions to what they name; versions kept per resource. */
class DeltaProxy extends SimProxy {
  protected readonly path = DELTA_ADS;
  /** Name → version held, per type. */
  private readonly held: Map<string, string>[] = TYPES.map(() => new Map());
  private readonly edsClusters = new Set<string>();
  private readonly eds = new ClusterTable();
  private readonly routesOf = new Map<string, string[]>(); // listener → route names
  private readonly subscribed: Set<string>[] = TYPES.map(() => new Set());
  // The response being read.
  private type = -1;
  private nonce = '';
  private removed: string[] = [];

  protected hello(): Buffer[][] {
    return [
      deltaRequestParts({ node: this.node, typeUrl: CLUSTER_TYPE, held: this.held[CDS] }),
      ...(this.subscribed[EDS]!.size ? [deltaRequestParts({ typeUrl: ENDPOINT_TYPE, subscribe: this.subscribed[EDS], held: this.held[EDS] })] : []),
      deltaRequestParts({ typeUrl: LISTENER_TYPE, held: this.held[LDS] }),
      ...(this.subscribed[RDS]!.size ? [deltaRequestParts({ typeUrl: ROUTE_TYPE, subscribe: this.subscribed[RDS], held: this.held[RDS] })] : []),
    ];
  }

  /** Subscribes to the names not subscribed yet. */
  private subscribe(type: number, names: Iterable<string>): void {
    const set = this.subscribed[type]!;
    const fresh: string[] = [];
    for (const n of names) {
      if (!set.has(n)) {
        set.add(n);
        fresh.push(n);
      }
    }
    if (fresh.length) this.write(deltaRequestParts({ typeUrl: TYPES[type]!, subscribe: fresh }));
  }

  protected onField(f: number, b: Uint8Array): void {
    if (f === F.dres.typeUrl) this.type = typeIndex(b);
    else if (f === F.dres.nonce) this.nonce = str(b);
    else if (f === F.dres.removed) this.removed.push(str(b));
    else if (f === F.dres.resources) this.resource(b);
  }

  private resource(r: Uint8Array): void {
    let name = '';
    let version = '';
    let any: Uint8Array | undefined;
    walk(r, (f, b) => {
      if (f === F.resource.name) name = str(b);
      else if (f === F.resource.version) version = str(b);
      else if (f === F.resource.resource) any = b;
    });
    if (!any) return;
    const { type, body } = unpack(any);
    if (type < 0) return;
    name = intern(name);
    this.held[type]!.set(name, intern(version));
    switch (type) {
      case CDS:
        if (clusterInfo(body).eds) this.edsClusters.add(name);
        else this.edsClusters.delete(name);
        break;
      case EDS:
        this.eds.set(indexOf(name), this.counting ? endpointCount(body) : undefined, this.streamNo);
        this.checkMarker(name, body);
        break;
      case LDS:
        this.routesOf.set(name, routeNamesOf(body));
        break;
    }
  }

  protected onEnd(): void {
    const type = this.type;
    const nonce = this.nonce;
    const removed = this.removed;
    this.type = -1;
    this.nonce = '';
    this.removed = [];
    if (type < 0) return;
    this.answered |= 1 << type;
    for (const n of removed) {
      this.held[type]!.delete(n);
      if (type === CDS) this.edsClusters.delete(n);
      else if (type === EDS) this.eds.remove(indexOf(n));
      else if (type === LDS) this.routesOf.delete(n);
    }
    // ACK first, as Envoy does, then subscribe to what the resources name.
    this.write(deltaRequestParts({ typeUrl: TYPES[type]!, nonce }));
    if (type === CDS) this.subscribe(EDS, this.edsClusters);
    else if (type === LDS) this.subscribe(RDS, [...this.routesOf.values()].flat());
  }

  protected forget(): void {
    for (const m of this.held) m.clear();
    for (const set of this.subscribed) set.clear();
    this.edsClusters.clear();
    this.eds.clear();
    this.routesOf.clear();
  }

  protected resentAll(): boolean {
    return true; // Delta resends only what changed: the versions the proxy named are enough.
  }

  protected complete(): boolean {
    const [clusters, eds, listeners, routes] = this.held as [Map<string, string>, Map<string, string>, Map<string, string>, Map<string, string>];
    if (clusters.size !== S || eds.size !== S || !listeners.size) return false;
    const routeNames = [...this.routesOf.values()].flat();
    if (!routeNames.length) return false;
    for (const n of routeNames) if (!routes.has(n)) return false;
    return this.eds.full(this.edsClusters);
  }
}

const proxies: SimProxy[] = [];

async function connect(): Promise<void> {
  tStart = now();
  for (let i = 0; i < P; i++) {
    const p = values.delta ? new DeltaProxy(i) : new SotwProxy(i);
    proxies.push(p);
    p.open();
    // Let sockets progress while the rest are created.
    if (i % 50 === 49) await new Promise((r) => setImmediate(r));
  }
  const progress = setInterval(() => send({ type: 'progress', ...status() }), 500);
  progress.unref();
}

function status(): SimStatus {
  let live = 0;
  let lastLive = 0;
  let holding = 0;
  for (const p of proxies) {
    if (p.live) live++;
    lastLive = Math.max(lastLive, p.live);
    if (p.holds) holding++;
  }
  return { connected: connectedCount, synced: syncedCount, failed: failedCount, live, lastLive, holding, resynced: storm.resynced, lastEvent: storm.lastEvent };
}

function stop(): void {
  for (const p of proxies) p.close();
  setTimeout(() => process.exit(0), 500).unref();
}

process.on('disconnect', stop);
process.on('SIGTERM', stop);
process.on('message', (m: ToSim) => {
  switch (m.type) {
    case 'ping':
      send({ type: 'pong', id: m.id, t: now() });
      return;
    case 'connect':
      connect().catch((e: unknown) => send({ type: 'error', message: String(e) }));
      return;
    case 'marker':
      marker = { id: m.id, cluster: m.cluster, address: m.address, times: new Array<number>(P).fill(NaN), count: 0 };
      send({ type: 'armed', id: m.id });
      return;
    case 'storm':
      // Streams that fail from now on are expected to: their reconnects count for this restart.
      storm.id = m.id;
      storm.cold = m.cold;
      storm.resynced = 0;
      storm.lastEvent = 0;
      storm.times = new Array<number>(P).fill(NaN);
      send({ type: 'storm-armed', id: m.id });
      return;
    case 'status':
      send({ type: 'status', id: m.id, ...status() });
      return;
    case 'memory':
      void memory().then((mem) => send({ type: 'memory', id: m.id, memory: mem }));
      return;
  }
});
if (!(PORT > 0 && P > 0 && S > 0 && E > 0)) {
  send({ type: 'error', message: '--port, --proxies, --services and --endpoints must be positive' });
  process.exit(1);
}
send({ type: 'started' });
