// The xDS server under pressure and under bad input, through real gRPC clients: a proxy that
// stops reading holds its share of the write budget only for a while, the others wait their
// turn and then get everything; a request that cannot be decoded ends only its own stream,
// with what is wrong.
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { messageType } from '../../src/xds/proto.ts';
import { AdsClient, TYPE } from '../helpers/ads-client.ts';
import { type Isthmus, ManifestDir, serviceEntry, startIsthmus } from '../helpers/isthmus.ts';
import { assertNoLeftovers, dumpLogsOnFailure, stopAll } from '../helpers/processes.ts';
import { TcpProxy } from '../helpers/tcp-proxy.ts';
import { waitFor } from '../helpers/wait.ts';

const SERVICES = 150;
const ADS = '/envoy.service.discovery.v3.AggregatedDiscoveryService/';
// Far below one CDS response of 150 clusters: a single write fills the budget.
const LIMIT = '4k';

const manifests = new ManifestDir();
const clients: AdsClient[] = [];
let isthmus: Isthmus;

function services(n: number, from = 0): object[] {
  return Array.from({ length: n }, (_, i) =>
    serviceEntry(`svc-${from + i}`, {
      hosts: [`svc-${from + i}.limits.local`],
      ports: [{ number: 8080, name: 'http', protocol: 'HTTP' }],
      endpoints: [{ address: `10.1.${Math.floor((from + i) / 250)}.${((from + i) % 250) + 1}` }],
    }),
  );
}

before(async () => {
  manifests.write('services.yaml', services(SERVICES));
  isthmus = await startIsthmus({ name: 'isthmus-limits', registries: [manifests.url], debounceQuietMs: 50, debounceMaxMs: 500, args: ['--xds-inflight-limit', LIMIT] });
});

afterEach(dumpLogsOnFailure);

after(async () => {
  for (const c of clients) c.close();
  await stopAll();
  assertNoLeftovers();
});

/** An ADS stream whose HTTP/2 window is zero: it asks for clusters and can never be sent them. */
function stalledProxy(address: string, id: string): { close(): void } {
  const session = http2.connect(`http://${address}`, { settings: { initialWindowSize: 0 } });
  session.on('error', () => undefined);
  const stream = session.request({ ':method': 'POST', ':path': `${ADS}StreamAggregatedResources`, 'content-type': 'application/grpc', te: 'trailers' });
  stream.on('error', () => undefined);
  const t = messageType('envoy.service.discovery.v3.DiscoveryRequest');
  const body = t.encode(t.fromObject({ node: { id, cluster: 'test', user_agent_name: 'envoy' }, type_url: TYPE.cluster })).finish();
  const frame = Buffer.alloc(5 + body.length);
  frame.writeUInt32BE(body.length, 1);
  frame.set(body, 5);
  stream.write(frame);
  return { close: () => session.destroy() };
}

test('a proxy that stops reading holds the write budget only for a while; the others wait their turn, then get everything', async () => {
  const stalled = stalledProxy(isthmus.xdsAddress, 'stalled');
  try {
    await waitFor(async () => (await isthmus.metric('isthmus_xds_inflight_bytes')) > 0, { what: 'the stalled proxy\'s response to hold the budget', timeoutMs: 10_000 });
    const t0 = Date.now();
    const ids = ['waiting-a', 'waiting-b', 'waiting-c'];
    const others = ids.map((nodeId) => new AdsClient({ address: isthmus.xdsAddress, nodeId }));
    clients.push(...others);
    for (const c of others) c.subscribe(TYPE.cluster);
    await waitFor(async () => (await isthmus.metric('isthmus_xds_waiting_connections')) === others.length, { what: 'the three proxies to wait for the budget', timeoutMs: 3000 });
    assert.deepEqual(
      others.map((c) => c.responsesFor(TYPE.cluster).length),
      [0, 0, 0],
      'nothing is written beyond the budget while the stalled response holds it',
    );
    // The stalled write is set aside after 5 s; then the waiting proxies go, one budget at a time.
    await waitFor(() => others.every((c) => c.responsesFor(TYPE.cluster).some((r) => r.names.length === SERVICES)), {
      what: 'every waiting proxy to receive all clusters',
      timeoutMs: 20_000,
    });
    const waited = Date.now() - t0;
    process.stderr.write(`# waiting proxies served ${waited} ms after the stalled one took the budget\n`);
    assert.ok(waited >= 4000, `served after ${waited} ms: the budget did not hold them back`);
    const syncz = await isthmus.syncz();
    for (const id of ids) {
      const s = syncz.find((x) => x.id === id);
      assert.equal(s?.types.find((t) => t.typeUrl === TYPE.cluster)?.status, 'SYNCED', JSON.stringify(s));
    }
    assert.equal(await isthmus.metric('isthmus_xds_waiting_connections'), 0);
  } finally {
    stalled.close();
  }
  // Gone with its stream: nothing of it stays counted.
  await waitFor(async () => (await isthmus.metric('isthmus_xds_inflight_bytes')) === 0, { what: 'the budget to be free again', timeoutMs: 10_000 });
  // The set-aside response may have left the budget already; the closed stream leaves syncz once Isthmus sees it close.
  await waitFor(async () => !(await isthmus.syncz()).some((s) => s.id === 'stalled'), { what: 'the closed stalled stream to leave /debug/syncz', timeoutMs: 5000 });
});

/** Sends raw bytes as one request message and resolves with how the stream ended. */
function rawRequest(address: string, method: string, bytes: Buffer): Promise<grpc.ServiceError> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const call = client.makeBidiStreamRequest(`${ADS}${method}`, (b: Buffer) => b, (b: Buffer) => b);
  return new Promise((resolve) => {
    call.on('data', () => undefined);
    call.on('error', (e: grpc.ServiceError) => {
      client.close();
      resolve(e);
    });
    call.write(bytes);
  });
}

test('an undecodable request ends only its own stream, saying what is wrong and where; proxies already served keep being served', async () => {
  const good = new AdsClient({ address: isthmus.xdsAddress, nodeId: 'good' });
  clients.push(good);
  good.subscribe(TYPE.cluster);
  await waitFor(() => good.responsesFor(TYPE.cluster).some((r) => r.names.length === SERVICES), { what: 'the good proxy to hold all clusters', timeoutMs: 20_000 });
  const rejectedBefore = await isthmus.metric('isthmus_xds_rejected_requests_total', { reason: 'invalid' });

  // type_url (field 4) claims 10 bytes and carries 1.
  const sotw = await rawRequest(isthmus.xdsAddress, 'StreamAggregatedResources', Buffer.from([0x22, 10, 0x61]));
  assert.equal(sotw.code, grpc.status.INVALID_ARGUMENT);
  assert.match(sotw.details, /^malformed DiscoveryRequest: length 10 past the end of the message at byte 2$/);
  // Field 1 (node) with wire type 3, a group.
  const delta = await rawRequest(isthmus.xdsAddress, 'DeltaAggregatedResources', Buffer.from([0x0b]));
  assert.equal(delta.code, grpc.status.INVALID_ARGUMENT);
  assert.match(delta.details, /^malformed DeltaDiscoveryRequest: field node has wire type 3 at byte 1$/);
  assert.equal(await isthmus.metric('isthmus_xds_rejected_requests_total', { reason: 'invalid' }), rejectedBefore + 2);

  // The good proxy's stream is untouched: a new service still reaches it.
  manifests.write('more.yaml', services(1, SERVICES));
  await waitFor(() => good.responsesFor(TYPE.cluster).some((r) => r.names.length === SERVICES + 1), { what: 'the new cluster to reach the good proxy', timeoutMs: 10_000 });
  assert.equal(good.error, undefined);
});

test('what the xDS port cannot take (unknown method, compressed or oversized request, not gRPC) is refused with the reason; served proxies go on', async () => {
  const good = new AdsClient({ address: isthmus.xdsAddress, nodeId: 'good-2' });
  clients.push(good);
  good.subscribe(TYPE.cluster);
  await waitFor(() => good.responsesFor(TYPE.cluster).length > 0, { what: 'the good proxy to be served', timeoutMs: 20_000 });

  const unknown = await rawRequest(isthmus.xdsAddress, 'FetchSomething', Buffer.alloc(0));
  assert.equal(unknown.code, grpc.status.UNIMPLEMENTED);
  assert.equal(unknown.details, `unknown method ${ADS}FetchSomething`);

  // A client set to compress its requests.
  const gzip = new grpc.Client(isthmus.xdsAddress, grpc.credentials.createInsecure(), { 'grpc.default_compression_algorithm': 2 });
  const compressed = await new Promise<grpc.ServiceError>((resolve) => {
    const call = gzip.makeBidiStreamRequest(`${ADS}StreamAggregatedResources`, (b: Buffer) => b, (b: Buffer) => b);
    call.on('data', () => undefined);
    call.on('error', resolve);
    call.write(Buffer.from([0x22, 1, 0x61]));
  });
  gzip.close();
  assert.equal(compressed.code, grpc.status.UNIMPLEMENTED);
  assert.equal(compressed.details, 'grpc-encoding gzip is not supported');

  const big = await rawRequest(isthmus.xdsAddress, 'StreamAggregatedResources', Buffer.alloc(16 * 1024 * 1024 + 1));
  assert.equal(big.code, grpc.status.RESOURCE_EXHAUSTED);
  assert.equal(big.details, `request message of ${16 * 1024 * 1024 + 1} bytes is over the limit of ${16 * 1024 * 1024}`);

  // Plain HTTP/2 that is not gRPC.
  const [host, port] = [isthmus.xdsAddress.slice(0, isthmus.xdsAddress.lastIndexOf(':')), isthmus.xdsAddress.slice(isthmus.xdsAddress.lastIndexOf(':') + 1)];
  const session = http2.connect(`http://${host}:${port}`);
  const status = await new Promise<number>((resolve, reject) => {
    const req = session.request({ ':method': 'GET', ':path': '/' });
    req.on('response', (h) => resolve(Number(h[':status'])));
    req.on('error', reject);
    req.end();
  });
  session.close();
  assert.equal(status, 415);

  manifests.write('more-2.yaml', services(1, SERVICES + 1));
  // The earlier test added one service already.
  await waitFor(() => good.responsesFor(TYPE.cluster).some((r) => r.names.length === SERVICES + 2), { what: 'the new cluster to reach the good proxy', timeoutMs: 10_000 });
  assert.equal(good.error, undefined);
});

test('a proxy whose EDS requests span several HTTP/2 frames gets every endpoint change, and a change to its names is honoured', async () => {
  const cluster = (i: number): string => `outbound|8080||svc-${i}.limits.local`;
  // Hundreds of names beyond the served ones: each ACK is over 30 KB, more than one DATA frame.
  const absent = Array.from({ length: 800 }, (_, i) => `outbound|8080||absent-${i}.limits.local`);
  const all = [...Array.from({ length: SERVICES }, (_, i) => cluster(i)), ...absent];
  const big = new AdsClient({ address: isthmus.xdsAddress, nodeId: 'big-list' });
  clients.push(big);
  big.subscribe(TYPE.endpoint, all);
  await waitFor(() => big.responsesFor(TYPE.endpoint).some((r) => r.names.length === SERVICES), { what: 'every served assignment', timeoutMs: 20_000 });

  const moved = (i: number, address: string) => serviceEntry(`svc-${i}`, { hosts: [`svc-${i}.limits.local`], ports: [{ number: 8080, name: 'http', protocol: 'HTTP' }], endpoints: [{ address }] });
  const write = (changes: Record<number, string>): void => {
    const docs = services(SERVICES) as object[];
    for (const [i, address] of Object.entries(changes)) docs[Number(i)] = moved(Number(i), address);
    manifests.write('services.yaml', docs);
  };
  const since = (t: number) => big.responsesFor(TYPE.endpoint).filter((r) => r.at >= t);

  let t = Date.now();
  write({ 0: '10.9.9.1' });
  await waitFor(() => since(t).some((r) => r.names.includes(cluster(0))), { what: 'the changed assignment of svc-0', timeoutMs: 10_000 });

  // The same long list without svc-1: svc-1 changes are no longer sent, svc-2 changes are.
  big.subscribe(TYPE.endpoint, all.filter((n) => n !== cluster(1)));
  t = Date.now();
  write({ 0: '10.9.9.1', 1: '10.9.9.2', 2: '10.9.9.3' });
  await waitFor(() => since(t).some((r) => r.names.includes(cluster(2))), { what: 'the changed assignment of svc-2', timeoutMs: 10_000 });
  assert.ok(!since(t).some((r) => r.names.includes(cluster(1))), 'svc-1 is no longer asked for');
  assert.equal(big.error, undefined);
});

test('an Isthmus that is stopped ends every proxy stream with UNAVAILABLE, so proxies reconnect elsewhere at once', async () => {
  const dir = new ManifestDir();
  dir.write('services.yaml', services(3));
  const own = await startIsthmus({ name: 'isthmus-limits-stop', registries: [dir.url] });
  const proxy = new AdsClient({ address: own.xdsAddress, nodeId: 'leaving' });
  clients.push(proxy);
  proxy.subscribe(TYPE.cluster);
  await waitFor(() => proxy.responsesFor(TYPE.cluster).length > 0, { what: 'the proxy to be served', timeoutMs: 20_000 });
  await own.stop();
  await waitFor(() => proxy.error, { what: 'the stream to end', timeoutMs: 10_000 });
  const e = proxy.error as grpc.ServiceError;
  assert.equal(e.code, grpc.status.UNAVAILABLE);
  assert.equal(e.details, 'server shutting down');
});

test('a proxy that vanished without closing its connection is found by an unanswered ping and dropped; a live one stays', async () => {
  const dir = new ManifestDir();
  dir.write('services.yaml', services(2));
  const own = await startIsthmus({ name: 'isthmus-limits-keepalive', registries: [dir.url], args: ['--xds-keepalive', '1s'] });
  const port = Number(own.xdsAddress.slice(own.xdsAddress.lastIndexOf(':') + 1));
  const path = await TcpProxy.start(port);
  const vanishing = new AdsClient({ address: path.endpoint, nodeId: 'vanishing' });
  const live = new AdsClient({ address: own.xdsAddress, nodeId: 'live' });
  clients.push(vanishing, live);
  for (const c of [vanishing, live]) c.subscribe(TYPE.cluster);
  const ids = async (): Promise<string[]> => (await own.syncz()).map((s) => s.id);
  await waitFor(async () => (await ids()).length === 2, { what: 'both proxies connected', timeoutMs: 20_000 });
  // Packets to and from the proxy stop, and no FIN or RST ever comes.
  path.partition('blackhole');
  await waitFor(async () => !(await ids()).includes('vanishing'), { what: 'the vanished proxy to be dropped', timeoutMs: 10_000 });
  await new Promise((r) => setTimeout(r, 2500));
  assert.deepEqual(await ids(), ['live'], 'the live proxy answers its pings and stays');
  await path.close();
  await own.stop();
});

test('with the intake full, a proxy that stops sending in the middle of a request does not keep real proxies from being served', async () => {
  const dir = new ManifestDir();
  dir.write('services.yaml', services(SERVICES));
  const own = await startIsthmus({ name: 'isthmus-limits-intake', registries: [dir.url], args: ['--xds-intake-limit', '64KiB'] });
  // 60 KB of a request announced as 1 MB, and then nothing: more than half the limit held for good.
  const session = http2.connect(`http://${own.xdsAddress}`);
  session.on('error', () => undefined);
  const stalled = session.request({ ':method': 'POST', ':path': `${ADS}StreamAggregatedResources`, 'content-type': 'application/grpc', te: 'trailers' });
  stalled.on('error', () => undefined);
  const head = Buffer.alloc(5);
  head.writeUInt32BE(1_000_000, 1);
  stalled.write(Buffer.concat([head, Buffer.alloc(60_000)]));
  try {
    await new Promise((r) => setTimeout(r, 300));
    // EDS requests of ~35 KB each: every one takes the intake over its limit, so their streams stop being read.
    const cluster = (i: number): string => `outbound|8080||svc-${i}.limits.local`;
    const names = [...Array.from({ length: SERVICES }, (_, i) => cluster(i)), ...Array.from({ length: 800 }, (_, i) => `outbound|8080||absent-${i}.limits.local`)];
    const proxies = Array.from({ length: 3 }, (_, i) => new AdsClient({ address: own.xdsAddress, nodeId: `behind-${i}` }));
    clients.push(...proxies);
    for (const p of proxies) p.subscribe(TYPE.endpoint, names);
    await waitFor(() => proxies.every((p) => p.responsesFor(TYPE.endpoint).some((r) => r.names.length === SERVICES)), {
      what: 'every proxy to receive all assignments despite the stalled request',
      timeoutMs: 20_000,
    });
    for (const p of proxies) assert.equal(p.error, undefined);
    assert.equal((await own.syncz()).filter((s) => s.id.startsWith('behind-')).length, proxies.length);
  } finally {
    session.destroy();
    await own.stop();
  }
});
