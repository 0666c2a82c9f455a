// Checks the integration harness itself against a real Envoy with a static bootstrap.
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { freePorts } from '../helpers/ports.ts';
import { waitFor } from '../helpers/wait.ts';
import { assertNoLeftovers, dumpLogsOnFailure, spawnTracked, stopAll } from '../helpers/processes.ts';
import { startEnvoy, type Envoy } from '../helpers/envoy.ts';
import { closeAll, startGrpcBackend, startH2cBackend, startHttpBackend, startTcpBackend, type Backend } from '../helpers/backends.ts';
import { grpcRequest, h2cRequest, httpRequest, tally, tcpRequest } from '../helpers/clients.ts';

let envoy: Envoy;
const backends: Backend[] = [];
let listenPort = 0;
let tcpPort = 0;

const h2Options = {
  'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
    '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
    explicit_http_config: { http2_protocol_options: {} },
  },
};

function staticCluster(name: string, bs: Backend[], h2 = false): object {
  return {
    name,
    type: 'STATIC',
    connect_timeout: '1s',
    ...(h2 ? { typed_extension_protocol_options: h2Options } : {}),
    load_assignment: {
      cluster_name: name,
      endpoints: [
        { lb_endpoints: bs.map((b) => ({ endpoint: { address: { socket_address: { address: b.host, port_value: b.port } } } })) },
      ],
    },
  };
}

before(async () => {
  const [h1a, h1b, h2, g, t] = await Promise.all([
    startHttpBackend('web-a', { host: '127.0.0.2' }),
    startHttpBackend('web-b', { host: '127.0.0.3' }),
    startH2cBackend('h2-a', { host: '127.0.0.4' }),
    startGrpcBackend('grpc-a', { host: '127.0.0.5' }),
    startTcpBackend('tcp-a', { host: '127.0.0.6' }),
  ]);
  backends.push(h1a!, h1b!, h2!, g!, t!);
  [listenPort, tcpPort] = (await freePorts(2)) as [number, number];
  const route = (domain: string, cluster: string): object => ({
    name: domain,
    domains: [domain, `${domain}:*`],
    routes: [{ match: { prefix: '/' }, route: { cluster } }],
  });
  const bootstrap = {
    node: { id: 'harness', cluster: 'harness' },
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } },
    static_resources: {
      listeners: [
        {
          name: 'http',
          address: { socket_address: { address: '127.0.0.1', port_value: listenPort } },
          filter_chains: [
            {
              filters: [
                {
                  name: 'envoy.filters.network.http_connection_manager',
                  typed_config: {
                    '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
                    stat_prefix: 'http',
                    codec_type: 'AUTO',
                    route_config: {
                      virtual_hosts: [route('web.test', 'web'), route('h2.test', 'h2'), route('echo.test', 'grpc')],
                    },
                    http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }],
                  },
                },
              ],
            },
          ],
        },
        {
          name: 'tcp',
          address: { socket_address: { address: '127.0.0.1', port_value: tcpPort } },
          filter_chains: [
            {
              filters: [
                {
                  name: 'envoy.filters.network.tcp_proxy',
                  typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', stat_prefix: 'tcp', cluster: 'tcp' },
                },
              ],
            },
          ],
        },
      ],
      clusters: [
        staticCluster('web', [h1a!, h1b!]),
        staticCluster('h2', [h2!], true),
        staticCluster('grpc', [g!], true),
        staticCluster('tcp', [t!]),
      ],
    },
  };
  envoy = await startEnvoy(bootstrap, { name: 'envoy-static' });
});

afterEach(dumpLogsOnFailure);

after(async () => {
  await stopAll();
  await closeAll(backends);
  assertNoLeftovers();
});

test('HTTP/1.1 by Host spreads over both backends', async () => {
  const counts = await tally(20, () => httpRequest(listenPort, 'web.test'));
  assert.deepEqual(Object.keys(counts).sort(), ['web-a', 'web-b'], JSON.stringify(counts));
  assert.equal((await httpRequest(listenPort, 'nope.test')).status, 404);
  assert.equal(backends[0]!.requests + backends[1]!.requests, 20);
});

test('h2c and gRPC by :authority, TCP by port', async () => {
  assert.equal((await h2cRequest(listenPort, 'h2.test:80')).backend, 'h2-a');
  assert.equal((await grpcRequest(listenPort, 'echo.test:9000')).backend, 'grpc-a');
  assert.equal((await tcpRequest(tcpPort, 'hello')).backend, 'tcp-a');
  const bad = await grpcRequest(listenPort, 'unknown.test');
  assert.equal(bad.status, grpc.status.UNIMPLEMENTED, JSON.stringify(bad));
});

test('admin helpers parse clusters, listeners, stats and config_dump', async () => {
  const clusters = await envoy.clusters();
  assert.deepEqual(clusters.get('web')?.hosts.map((h) => `${h.address}:${h.port}`).sort(), [backends[0]!.address, backends[1]!.address].sort());
  assert.equal(clusters.get('web')?.hosts[0]?.health, 'HEALTHY');
  const listeners = await envoy.listeners();
  assert.deepEqual(listeners.map((l) => l.name).sort(), ['http', 'tcp']);
  assert.equal(listeners.find((l) => l.name === 'tcp')?.port, tcpPort);
  const stats = await envoy.stats('cluster.web.upstream_rq_total');
  assert.ok((stats['cluster.web.upstream_rq_total'] ?? 0) >= 20, JSON.stringify(stats));
  const dump = await envoy.configSection('ClustersConfigDump');
  assert.ok(Array.isArray(dump.static_clusters));
});

test('waitFor reports what it waited for and the last value', async () => {
  await assert.rejects(
    waitFor(() => Date.now() < 0 && 'never', { timeoutMs: 200, intervalMs: 50, what: 'the impossible' }),
    /waiting for the impossible; last observed: false/,
  );
});

test('processes are stopped with SIGTERM, then SIGKILL', async () => {
  const stubborn = spawnTracked('stubborn', process.execPath, ['-e', "process.on('SIGTERM', () => console.log('ignoring TERM')); setInterval(() => {}, 1000); console.log('up')"]);
  await waitFor(() => stubborn.output().includes('up'), { what: 'stubborn child up' });
  const t0 = Date.now();
  const exit = await stubborn.stop(300);
  assert.equal(exit.signal, 'SIGKILL');
  assert.ok(Date.now() - t0 >= 300);
  assert.match(stubborn.output(), /ignoring TERM/);
  assert.equal(stubborn.alive(), false);
});
