// Checks the raw ADS test client against a scripted in-test ADS server (a stand-in, not Isthmus).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { AdsClient, TYPE, XDS_INCLUDE_DIRS } from '../helpers/ads-client.ts';
import { waitFor } from '../helpers/wait.ts';

type Msg = Record<string, unknown>;
const def = protoLoader.loadSync('envoy/service/discovery/v3/ads.proto', { keepCase: true, defaults: true, includeDirs: XDS_INCLUDE_DIRS });
const ads = (grpc.loadPackageDefinition(def) as unknown as { envoy: { service: { discovery: { v3: { AggregatedDiscoveryService: { service: grpc.ServiceDefinition } } } } } })
  .envoy.service.discovery.v3.AggregatedDiscoveryService;

// A resource whose field 1 (name) is `name`.
function named(typeUrl: string, name: string): { type_url: string; value: Buffer } {
  const b = Buffer.from(name);
  return { type_url: typeUrl, value: Buffer.concat([Buffer.from([0x0a, b.length]), b]) };
}

const received: Msg[] = [];
const server = new grpc.Server();
server.addService(ads.service, {
  StreamAggregatedResources: (call: grpc.ServerDuplexStream<Msg, Msg>) => {
    call.on('data', (req: Msg) => {
      received.push(req);
      if (!req.response_nonce) {
        call.write({ version_info: 'v1', type_url: req.type_url, nonce: 'n1', resources: [named(String(req.type_url), 'c1'), named(String(req.type_url), 'c2')] });
      }
    });
    call.on('end', () => call.end());
  },
  DeltaAggregatedResources: (call: grpc.ServerDuplexStream<Msg, Msg>) => {
    call.on('data', (req: Msg) => {
      received.push(req);
      if (!req.response_nonce) {
        call.write({ system_version_info: 'd1', type_url: req.type_url, nonce: 'dn1', resources: [{ name: 'x', version: 'x1', resource: named(String(req.type_url), 'x') }], removed_resources: ['old'] });
      }
    });
    call.on('end', () => call.end());
  },
});
const port = await new Promise<number>((resolve, reject) =>
  server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
);

after(() => server.forceShutdown());

test('SotW: records responses, ACKs clusters and NACKs listeners with a message', async () => {
  received.length = 0;
  const client = new AdsClient({
    address: `127.0.0.1:${port}`,
    nodeId: 'n1',
    metadata: { mode: 'test', n: 2, nested: { ok: true } },
    policy: (r) => (r.typeUrl === TYPE.listener ? { nack: 'listener rejected on purpose' } : 'ack'),
  });
  try {
    client.subscribe(TYPE.cluster);
    client.subscribe(TYPE.listener);
    await waitFor(() => received.length >= 4, { what: 'two subscriptions and two replies', timeoutMs: 5000 });
    const [c] = client.responsesFor(TYPE.cluster);
    assert.deepEqual(c?.names, ['c1', 'c2']);
    assert.equal(c?.version, 'v1');
    assert.ok(c!.at > 0);
    const ack = received.find((r) => r.type_url === TYPE.cluster && r.response_nonce === 'n1');
    assert.equal(ack?.version_info, 'v1');
    assert.equal(ack?.error_detail, null);
    const nack = received.find((r) => r.type_url === TYPE.listener && r.response_nonce === 'n1') as { version_info: string; error_detail: { message: string; code: number } };
    assert.equal(nack.version_info, '');
    assert.equal(nack.error_detail.message, 'listener rejected on purpose');
    assert.equal(nack.error_detail.code, grpc.status.INVALID_ARGUMENT);
    const node = received[0]?.node as { id: string; metadata: unknown };
    assert.equal(node.id, 'n1');
    assert.match(JSON.stringify(node.metadata), /"mode":\{"stringValue":"test"\}.*"n":\{"numberValue":2\}.*"ok":\{"boolValue":true\}/);
  } finally {
    client.close();
  }
});

test('Delta: records names, versions and removals, and ACKs by nonce', async () => {
  received.length = 0;
  const client = new AdsClient({ address: `127.0.0.1:${port}`, nodeId: 'n2', mode: 'delta' });
  try {
    client.subscribe(TYPE.cluster, ['x']);
    await waitFor(() => received.length >= 2, { what: 'delta subscribe and ACK', timeoutMs: 5000 });
    const [r] = client.responses;
    assert.deepEqual(r?.names, ['x']);
    assert.deepEqual(r?.versions, { x: 'x1' });
    assert.deepEqual(r?.removed, ['old']);
    assert.equal(r?.version, 'd1');
    assert.deepEqual(received[0]?.resource_names_subscribe, ['x']);
    assert.equal(received[1]?.response_nonce, 'dn1');
    assert.equal(received[1]?.node, null);
  } finally {
    client.close();
  }
});
