// P simulated Envoy sidecars as raw SotW ADS clients, one gRPC channel (and so one TCP
// connection) each, driven over IPC by bench/run.ts.
// Usage (forked): sim-proxies.ts --port N --proxies P --services S --endpoints E [--delta]
// --delta: Delta ADS instead of SotW (subscribe to what CDS and LDS name, ACK by nonce).
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { messageType } from '../src/xds/proto.ts';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE } from '../src/xds/resources.ts';
import { type FromSim, memory, now, type ToSim } from './messages.ts';
import { encodeDeltaRequest, encodeNames, encodeRequest, F, first, repeated, str, walk } from './wire.ts';

const ADS = '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources';
const DELTA_ADS = '/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources';
const passthrough = (b: Buffer): Buffer => b;
const NO_NAMES = encodeNames([]);

const { values } = parseArgs({
  options: { port: { type: 'string' }, proxies: { type: 'string' }, services: { type: 'string' }, endpoints: { type: 'string' }, delta: { type: 'boolean', default: false } },
});
const PORT = Number(values.port);
const P = Number(values.proxies);
const S = Number(values.services);
const E = Number(values.endpoints);

function send(m: FromSim): void {
  process.send?.(m);
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
let failedCount = 0;
let tStart = 0;
const syncTimes: number[] = new Array<number>(P).fill(NaN);

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
      if (rds) out.push(str(first(rds, F.rds.routeName)));
    }
  }
  return out;
}

interface Acked {
  version: string;
  nonce: string;
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
  return { name, eds: type === F.edsType };
}

/** The marker's change, seen by proxy `index` in assignment `cla` at time t. */
function checkMarker(index: number, name: string, cla: Uint8Array, t: number): void {
  if (marker && name === marker.cluster && Number.isNaN(marker.times[index]) && addressesOf(cla).includes(marker.address)) {
    marker.times[index] = t;
    if (++marker.count === P) send({ type: 'received', id: marker.id, times: marker.times });
  }
}

function proxySynced(index: number, t: number): void {
  syncTimes[index] = t;
  if (++syncedCount === P) send({ type: 'synced', tStart, times: syncTimes });
}

/** One Envoy on Delta ADS: wildcard CDS and LDS, then subscriptions to what they name. */
class DeltaSimProxy {
  readonly index: number;
  private readonly client: grpc.Client;
  private readonly call: grpc.ClientDuplexStream<Buffer, Buffer>;
  private readonly clusters = new Map<string, boolean>(); // name → EDS
  private readonly listeners = new Map<string, string[]>(); // name → route names
  private readonly eds = new Map<string, number>();
  private readonly routes = new Set<string>();
  private readonly subscribed = new Set<string>(); // "type\nname"
  private responded = false;
  synced = false;
  failed = false;

  constructor(index: number) {
    this.index = index;
    this.client = new grpc.Client(`127.0.0.1:${PORT}`, grpc.credentials.createInsecure(), {
      'grpc.use_local_subchannel_pool': 1,
      'grpc.max_receive_message_length': -1,
      'grpc.max_send_message_length': -1,
    });
    this.call = this.client.makeBidiStreamRequest(DELTA_ADS, passthrough, passthrough);
    this.call.on('data', (b: Buffer) => this.onResponse(now(), b));
    this.call.on('error', (e: Error) => this.fail(e.message));
    this.call.on('end', () => this.fail('stream ended'));
    this.write(encodeDeltaRequest({ node: encodeNode(index), typeUrl: CLUSTER_TYPE }));
    this.write(encodeDeltaRequest({ typeUrl: LISTENER_TYPE }));
  }

  private write(b: Buffer): void {
    if (!this.failed) this.call.write(b);
  }

  /** Subscribes to the names not subscribed yet. */
  private subscribe(typeUrl: string, names: Iterable<string>): void {
    const fresh: string[] = [];
    for (const n of names) {
      const k = `${typeUrl}\n${n}`;
      if (!this.subscribed.has(k)) {
        this.subscribed.add(k);
        fresh.push(n);
      }
    }
    if (fresh.length) this.write(encodeDeltaRequest({ typeUrl, subscribe: fresh }));
  }

  private onResponse(t: number, buf: Buffer): void {
    if (!this.responded) {
      this.responded = true;
      connectedCount++;
    }
    let typeUrl = '';
    let nonce = '';
    const resources: { name: string; body: Uint8Array }[] = [];
    const removed: string[] = [];
    walk(buf, (f, b) => {
      if (f === F.dres.typeUrl) typeUrl = str(b);
      else if (f === F.dres.nonce) nonce = str(b);
      else if (f === F.dres.removed) removed.push(str(b));
      else if (f === F.dres.resources && b) {
        const any = first(b, F.resource.resource);
        resources.push({ name: str(first(b, F.resource.name)), body: (any && first(any, F.anyValue)) ?? new Uint8Array() });
      }
    });
    // ACK first, as Envoy does, then subscribe to what the resources name.
    this.write(encodeDeltaRequest({ typeUrl, nonce }));
    switch (typeUrl) {
      case CLUSTER_TYPE:
        for (const n of removed) this.clusters.delete(n);
        for (const r of resources) {
          const c = clusterInfo(r.body);
          this.clusters.set(c.name, c.eds);
        }
        this.subscribe(ENDPOINT_TYPE, [...this.clusters].filter(([, eds]) => eds).map(([n]) => n));
        break;
      case ENDPOINT_TYPE:
        for (const n of removed) this.eds.delete(n);
        for (const r of resources) {
          const name = str(first(r.body, F.cla.name));
          if (!this.synced) this.eds.set(name, endpointCount(r.body));
          checkMarker(this.index, name, r.body, t);
        }
        break;
      case LISTENER_TYPE:
        for (const n of removed) this.listeners.delete(n);
        for (const r of resources) this.listeners.set(r.name, routeNamesOf(r.body));
        this.subscribe(ROUTE_TYPE, [...this.listeners.values()].flat());
        break;
      case ROUTE_TYPE:
        for (const r of resources) this.routes.add(str(first(r.body, F.route.name)));
        break;
    }
    if (!this.synced && this.complete()) {
      this.synced = true;
      proxySynced(this.index, t);
    }
  }

  private complete(): boolean {
    if (this.clusters.size !== S || this.eds.size !== S || !this.listeners.size) return false;
    const routeNames = [...this.listeners.values()].flat();
    if (!routeNames.length) return false;
    for (const n of routeNames) if (!this.routes.has(n)) return false;
    for (const count of this.eds.values()) if (count !== E) return false;
    return true;
  }

  private fail(why: string): void {
    if (this.failed) return;
    this.failed = true;
    failedCount++;
    if (failedCount <= 3) process.stderr.write(`sim-${this.index}: ${why}\n`);
  }

  close(): void {
    this.failed = true;
    this.call.cancel();
    this.client.close();
  }
}

class SimProxy {
  readonly index: number;
  private readonly client: grpc.Client;
  private readonly call: grpc.ClientDuplexStream<Buffer, Buffer>;
  private readonly last = new Map<string, Acked>();
  private edsNames: string[] = [];
  private edsNamesBytes = NO_NAMES;
  private readonly eds = new Map<string, number>();
  private routeNames: string[] = [];
  private routeNamesBytes = NO_NAMES;
  private readonly routes = new Set<string>();
  private listeners = 0;
  private clusters = 0;
  private responded = false;
  synced = false;
  failed = false;

  constructor(index: number) {
    this.index = index;
    this.client = new grpc.Client(`127.0.0.1:${PORT}`, grpc.credentials.createInsecure(), {
      'grpc.use_local_subchannel_pool': 1,
      'grpc.max_receive_message_length': -1,
      'grpc.max_send_message_length': -1,
    });
    this.call = this.client.makeBidiStreamRequest(ADS, passthrough, passthrough);
    this.call.on('data', (b: Buffer) => this.onResponse(now(), b));
    this.call.on('error', (e: Error) => this.fail(e.message));
    this.call.on('end', () => this.fail('stream ended'));
    const node = encodeNode(index);
    this.write(encodeRequest({ version: '', node, names: NO_NAMES, typeUrl: CLUSTER_TYPE, nonce: '' }));
    this.write(encodeRequest({ version: '', names: NO_NAMES, typeUrl: LISTENER_TYPE, nonce: '' }));
  }

  private write(b: Buffer): void {
    if (!this.failed) this.call.write(b);
  }

  private request(typeUrl: string, names: Buffer): void {
    const a = this.last.get(typeUrl) ?? { version: '', nonce: '' };
    this.write(encodeRequest({ version: a.version, names, typeUrl, nonce: a.nonce }));
  }

  private onResponse(t: number, buf: Buffer): void {
    if (!this.responded) {
      this.responded = true;
      connectedCount++;
    }
    let version = '';
    let typeUrl = '';
    let nonce = '';
    const resources: Uint8Array[] = [];
    walk(buf, (f, b) => {
      if (f === F.res.version) version = str(b);
      else if (f === F.res.typeUrl) typeUrl = str(b);
      else if (f === F.res.nonce) nonce = str(b);
      else if (f === F.res.resources && b) resources.push(first(b, F.anyValue) ?? new Uint8Array());
    });
    this.last.set(typeUrl, { version, nonce });
    switch (typeUrl) {
      case CLUSTER_TYPE: {
        const names: string[] = [];
        for (const c of resources) {
          const info = clusterInfo(c);
          if (info.eds) names.push(info.name);
        }
        this.clusters = resources.length;
        this.request(CLUSTER_TYPE, NO_NAMES);
        names.sort();
        if (names.join('\n') !== this.edsNames.join('\n')) {
          this.edsNames = names;
          this.edsNamesBytes = encodeNames(names);
          const keep = new Set(names);
          for (const n of this.eds.keys()) if (!keep.has(n)) this.eds.delete(n);
          this.request(ENDPOINT_TYPE, this.edsNamesBytes);
        }
        break;
      }
      case ENDPOINT_TYPE:
        for (const cla of resources) {
          const name = str(first(cla, F.cla.name));
          // Counting is only needed until synced; after that a peer that resends every
          // assignment on each change (go-control-plane's SotW) costs the simulator little.
          if (!this.synced) this.eds.set(name, endpointCount(cla));
          checkMarker(this.index, name, cla, t);
        }
        this.request(ENDPOINT_TYPE, this.edsNamesBytes);
        break;
      case LISTENER_TYPE: {
        this.listeners = resources.length;
        const names = [...new Set(resources.flatMap(routeNamesOf))].sort();
        this.request(LISTENER_TYPE, NO_NAMES);
        if (names.join('\n') !== this.routeNames.join('\n')) {
          this.routeNames = names;
          this.routeNamesBytes = encodeNames(names);
          this.request(ROUTE_TYPE, this.routeNamesBytes);
        }
        break;
      }
      case ROUTE_TYPE:
        for (const r of resources) this.routes.add(str(first(r, F.route.name)));
        this.request(ROUTE_TYPE, this.routeNamesBytes);
        break;
    }
    if (!this.synced && this.complete()) {
      this.synced = true;
      proxySynced(this.index, t);
    }
  }

  /** Every cluster, every endpoint of every cluster, listeners and their routes, all ACKed. */
  private complete(): boolean {
    if (this.clusters !== S || this.eds.size !== S || !this.listeners || !this.routeNames.length) return false;
    for (const n of this.routeNames) if (!this.routes.has(n)) return false;
    for (const count of this.eds.values()) if (count !== E) return false;
    return true;
  }

  private fail(why: string): void {
    if (this.failed) return;
    this.failed = true;
    failedCount++;
    if (failedCount <= 3) process.stderr.write(`sim-${this.index}: ${why}\n`);
  }

  close(): void {
    this.failed = true;
    this.call.cancel();
    this.client.close();
  }
}

const proxies: (SimProxy | DeltaSimProxy)[] = [];

async function connect(): Promise<void> {
  tStart = now();
  for (let i = 0; i < P; i++) {
    proxies.push(values.delta ? new DeltaSimProxy(i) : new SimProxy(i));
    // Let sockets progress while the rest are created.
    if (i % 50 === 49) await new Promise((r) => setImmediate(r));
  }
  const progress = setInterval(() => {
    send({ type: 'progress', connected: connectedCount, synced: syncedCount, failed: failedCount });
    if (syncedCount === P) clearInterval(progress);
  }, 500);
  progress.unref();
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
