// `isthmus register` as an operator runs it: the app's interfaces appear in the registry in
// the exact Dubbo layout, a real Envoy routes calls by interface name to the app, and
// SIGTERM deregisters at once — for etcd and for ZooKeeper.
import { after, afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { Etcd3 } from 'etcd3';
import type { Backend } from '../helpers/backends.ts';
import { grpcRequest } from '../helpers/clients.ts';
import { startEtcd } from '../helpers/etcd.ts';
import { MAIN, REPO, startIsthmus } from '../helpers/isthmus.ts';
import { closeAll, startBackends, startSidecar } from '../helpers/mesh.ts';
import { assertNoLeftovers, dumpLogsOnFailure, spawnTracked, stopAll } from '../helpers/processes.ts';
import { startZooKeeper } from '../helpers/zookeeper.ts';
import { waitFor, waitUntil } from '../helpers/wait.ts';
import { parseProviderKey } from '../../src/registries/soa/provider.ts';
import { ZkClient } from '../../src/registries/soa/zk-client.ts';

const IFACE = 'isthmus.test.Echo';
const NAME = 'isthmus.test.echo.v1-2.rpc.cluster.local';
const backends: Backend[] = [];

afterEach(dumpLogsOnFailure);
after(async () => {
  await stopAll();
  await closeAll(backends);
  assertNoLeftovers();
});

async function scenario(registryUrl: string, listProviders: () => Promise<string[]>, close: () => Promise<void> | void, octet: number): Promise<void> {
  const [backend] = await startBackends('grpc', `echo-${octet}`, 1, octet);
  backends.push(backend!);
  const isthmus = await startIsthmus({ name: `isthmus-${octet}`, registries: [registryUrl], debounceQuietMs: 50 });
  const { ports } = await startSidecar(isthmus, `caller-${octet}`);
  const agent = spawnTracked(`register-${octet}`, process.execPath, [
    MAIN, 'register', '--registry', registryUrl, '--application', 'echoapp', '--protocol', 'tri',
    '--address', backend!.host, '--port', String(backend!.port), '--interface', `${IFACE}:1.2`, '--methods', 'Call', '--ttl', '5s',
  ], { cwd: REPO });
  try {
    const keys = await waitUntil(listProviders, (k) => k.length === 1, { timeoutMs: 15_000, what: 'the provider key written by isthmus register' });
    const p = parseProviderKey(keys[0]!, '/dubbo')!;
    assert.deepEqual([p.protocol, p.address, p.port, p.interface, p.application, p.version, p.methods], ['tri', backend!.host, backend!.port, IFACE, 'echoapp', '1.2', ['Call']]);

    // A caller that knows only the interface name reaches the app through its sidecar.
    const answer = await waitUntil(() => grpcRequest(ports.outbound, NAME), (a) => a.backend === backend!.name, { timeoutMs: 20_000, what: `gRPC :authority ${NAME} via Envoy` });
    assert.equal(answer.backend, backend!.name);

    await agent.stop();
    await waitUntil(listProviders, (k) => k.length === 0, { timeoutMs: 3000, what: 'deregistration on SIGTERM (well before the 5 s TTL)' });
    await waitFor(async () => (await grpcRequest(ports.outbound, NAME)).backend === undefined, { timeoutMs: 10_000, what: 'calls no longer reaching the deregistered app' });
  } finally {
    await close();
  }
}

test('etcd: isthmus register writes the Dubbo layout, Envoy routes by interface name, SIGTERM deregisters', async () => {
  const etcd = await startEtcd({ name: 'etcd-register' });
  const client = new Etcd3({ hosts: etcd.endpoint });
  await scenario(etcd.url('/dubbo'), () => client.getAll().prefix(`/dubbo/${IFACE}/providers/`).keys(), () => client.close(), 40);
});

test('ZooKeeper: isthmus register writes ephemeral nodes, Envoy routes by interface name, SIGTERM deregisters', async () => {
  const zk = await startZooKeeper({ name: 'zk-register' });
  const client = new ZkClient(zk.connect);
  client.connect();
  await waitFor(() => client.connected, { timeoutMs: 10_000, what: 'a ZooKeeper session for the test' });
  const dir = `/dubbo/${IFACE}/providers`;
  const list = async (): Promise<string[]> => ((await client.exists(dir)) ? (await client.getChildren(dir)).map((c) => `${dir}/${c}`) : []);
  await scenario(zk.url('/dubbo'), list, () => client.close(), 41);
});
