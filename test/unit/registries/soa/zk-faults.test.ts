// ZkRegistry when ZooKeeper fails: unreachable at start, lost later (stopped, crashed,
// partitioned, hung), its own session expired. Providers are kept until ZooKeeper itself
// deletes them, and recovery is one diff, never a flap through empty.
import { after, afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import type { RegistryState } from '../../../../src/model/types.ts';
import { ZkRegistry } from '../../../../src/registries/soa/zk.ts';
import { assertNoLeftovers, dumpLogsOnFailure, stopAll } from '../../../helpers/processes.ts';
import { waitFor } from '../../../helpers/wait.ts';
import { TcpProxy } from '../../../helpers/tcp-proxy.ts';
import { createZooKeeper, DubboWriter, dubboUrl, endpointAddresses, StateLog, startZooKeeper } from '../../../helpers/zookeeper.ts';

const cleanups: Array<() => Promise<void> | void> = [];

afterEach(async (t) => {
  dumpLogsOnFailure(t);
  for (const c of cleanups.splice(0).reverse()) await c();
});

after(async () => {
  await stopAll();
  assertNoLeftovers();
});

function watch(connect: string, root: string, opts: { sessionTimeoutMs?: number; connectTimeoutMs?: number; retryMaxMs?: number } = {}): StateLog {
  const log = new StateLog(new ZkRegistry({ connect, root, sessionTimeoutMs: opts.sessionTimeoutMs ?? 4000, connectTimeoutMs: opts.connectTimeoutMs ?? 500, retryInitialMs: 200, retryMaxMs: opts.retryMaxMs ?? 1000 }));
  cleanups.push(() => log.close());
  return log;
}

const url = (address: string, iface = 'com.acme.Orders', application = 'orders'): string => dubboUrl({ address, port: 20880, iface, application });

/** The endpoint sets of every state from `from` on, deduplicated in a row. */
function endpointHistory(states: readonly RegistryState[], from = 0): string[] {
  const out: string[] = [];
  for (const s of states.slice(from)) {
    const e = endpointAddresses(s).join(' ');
    if (out.at(-1) !== e) out.push(e);
  }
  return out;
}

test('unreachable at start: not synced, error set, retried with backoff; synced once ZooKeeper answers', async () => {
  const zk = await createZooKeeper({ name: 'zk-late' });
  const log = watch(zk.connect, '/dubbo');
  const st = await log.until((s) => s.error !== undefined, 'an error state while ZooKeeper is down');
  assert.equal(st.synced, false);
  assert.match(st.error!, new RegExp(`cannot connect to ZooKeeper ${zk.connect}`));
  assert.deepEqual(st.services, []);
  // It keeps trying: the attempt number in the error grows.
  await log.until((s) => /attempt [3-9]/.test(s.error ?? ''), 'further attempts');

  await zk.start();
  const w = await DubboWriter.connect(zk.connect);
  cleanups.push(() => w.close());
  await w.provider(url('10.9.0.1'));
  const ok = await log.until((s) => s.synced && s.error === undefined && s.endpoints.length === 1, 'synced once ZooKeeper is up', { timeoutMs: 10_000 });
  assert.deepEqual(endpointAddresses(ok), ['10.9.0.1:20880']);
});

test('ZooKeeper stopped: the last providers are kept with an error; back: repaired by one diff, providers that died meanwhile removed', async () => {
  const zk = await startZooKeeper({ name: 'zk-restart' });
  // Two apps' sessions: "crashing" dies while ZooKeeper is down, "surviving" reconnects.
  const crashing = await DubboWriter.connect(zk.connect, '/dubbo', 1500);
  const surviving = await DubboWriter.connect(zk.connect, '/dubbo', 6000);
  cleanups.push(() => surviving.close());
  await crashing.provider(url('10.8.0.1'));
  await crashing.provider(url('10.8.0.1', 'com.acme.Refunds'));
  await surviving.provider(url('10.8.0.2'));
  await surviving.provider(url('10.8.0.3', 'com.acme.Stock', 'stock'), { ephemeral: false });
  const log = watch(zk.connect, '/dubbo', { sessionTimeoutMs: 6000 });
  const before = await log.until((s) => s.synced && s.endpoints.length === 3, 'three providers');
  const mark = log.states.length - 1;

  await zk.kill(); // a crash: sessions survive in the data dir
  const down = await log.until((s) => s.error !== undefined, 'error while ZooKeeper is down');
  assert.equal(down.synced, true);
  assert.match(down.error!, /connection to ZooKeeper .* lost; keeping the last known providers/);
  assert.deepEqual(endpointAddresses(down), endpointAddresses(before), 'providers kept');
  // The crashing app goes away while nobody can tell ZooKeeper.
  await crashing.close();

  await zk.start();
  const t0 = Date.now();
  const after = await log.until((s) => s.error === undefined && s.endpoints.length === 2, 'the dead app removed after its session expired', { timeoutMs: 15_000 });
  process.stderr.write(`# ZooKeeper restarted: a provider of a session that died during the outage removed after ${Date.now() - t0} ms (its session timeout 1500 ms)\n`);
  assert.deepEqual(endpointAddresses(after), ['10.8.0.2:20880', '10.8.0.3:20880']);
  assert.equal(after.services.find((s) => s.hostname.startsWith('orders'))!.interfaces.length, 1, 'Refunds had only the dead provider');
  // Never a state without the providers that lived all along, never an empty one.
  const history = endpointHistory(log.states, mark);
  assert.deepEqual(history, ['10.8.0.1:20880 10.8.0.2:20880 10.8.0.3:20880', '10.8.0.2:20880 10.8.0.3:20880'], JSON.stringify(history));
  await zk.stop();
});

test('its own session expired (partitioned longer than the timeout): a new session, everything read again, one diff', async () => {
  const zk = await startZooKeeper({ name: 'zk-expire' });
  const proxy = await TcpProxy.start(zk.port);
  cleanups.push(() => proxy.close());
  const w = await DubboWriter.connect(zk.connect, '/dubbo', 6000);
  cleanups.push(() => w.close());
  const gone = await w.provider(url('10.7.0.1'));
  await w.provider(url('10.7.0.2'));
  const baseSessions = await zk.sessions();
  const log = watch(proxy.endpoint, '/dubbo', { sessionTimeoutMs: 1000 });
  await log.until((s) => s.synced && s.endpoints.length === 2, 'two providers');
  const mark = log.states.length - 1;

  proxy.partition('refuse');
  await log.until((s) => s.error !== undefined, 'connection lost');
  // Changes the registry cannot see while cut off.
  await w.remove(gone);
  await w.provider(url('10.7.0.3'));
  await w.provider(url('10.7.0.4', 'com.acme.Invoices', 'billing'));
  // The server expires the registry's session; the registry still serves what it knew.
  await waitFor(async () => (await zk.sessions()) === baseSessions, { timeoutMs: 10_000, what: 'the server to expire the partitioned session' });
  assert.deepEqual(endpointAddresses(log.latest), ['10.7.0.1:20880', '10.7.0.2:20880']);

  proxy.heal();
  const healed = await log.until((s) => s.error === undefined && s.endpoints.length === 3, 'the new session read everything', { timeoutMs: 15_000 });
  assert.deepEqual(endpointAddresses(healed), ['10.7.0.2:20880', '10.7.0.3:20880', '10.7.0.4:20880']);
  assert.equal(healed.synced, true);
  const history = endpointHistory(log.states, mark);
  assert.deepEqual(history, ['10.7.0.1:20880 10.7.0.2:20880', '10.7.0.2:20880 10.7.0.3:20880 10.7.0.4:20880'], 'one step from old to new, no flap');
  // The new session watches: later changes are followed.
  await w.provider(url('10.7.0.5'));
  await log.until((s) => s.endpoints.length === 4, 'watches re-armed in the new session');
  await zk.stop();
});

test('a hung connection is noticed (read timeout) and the session resumes: providers kept, no re-read', async () => {
  const zk = await startZooKeeper({ name: 'zk-hang' });
  const proxy = await TcpProxy.start(zk.port);
  cleanups.push(() => proxy.close());
  const w = await DubboWriter.connect(zk.connect, '/dubbo', 6000);
  cleanups.push(() => w.close());
  await w.provider(url('10.6.0.1'));
  const log = watch(proxy.endpoint, '/dubbo', { sessionTimeoutMs: 3000 });
  await log.until((s) => s.synced && s.endpoints.length === 1, 'one provider');
  const baseSessions = await zk.sessions();

  proxy.partition('blackhole'); // the TCP connection stays up; nothing comes back
  const t0 = Date.now();
  const hung = await log.until((s) => s.error !== undefined, 'the hang noticed', { timeoutMs: 10_000 });
  const ms = Date.now() - t0;
  process.stderr.write(`# hung connection noticed after ${ms} ms (session timeout 3000 ms, read timeout 2000 ms)\n`);
  assert.ok(ms < 3000, `noticed after ${ms} ms, before the session could expire`);
  assert.deepEqual(endpointAddresses(hung), ['10.6.0.1:20880']);
  await w.provider(url('10.6.0.2'));
  proxy.heal();
  const back = await log.until((s) => s.error === undefined && s.endpoints.length === 2, 'resumed and caught up');
  assert.equal(back.synced, true);
  assert.equal(await zk.sessions(), baseSessions, 'the same session resumed (no new one)');
  await zk.stop();
});

test('unsubscribing while ZooKeeper is unreachable stops every timer and socket', async () => {
  const zk = await createZooKeeper({ name: 'zk-never' });
  const count = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout' || r === 'TCPSocketWrap').length;
  const base = count();
  const log = new StateLog(new ZkRegistry({ connect: zk.connect, root: '/dubbo', connectTimeoutMs: 300, retryInitialMs: 100, retryMaxMs: 200 }));
  await log.until((s) => /attempt [2-9]/.test(s.error ?? ''), 'retrying');
  log.close();
  await waitFor(() => count() <= base, { timeoutMs: 3000, what: `active timers and sockets back to ${base}` });
});

test('a server that is not ZooKeeper (garbage replies) gives an error state, never a crash', async () => {
  // Answers the handshake like ZooKeeper, then every request with an error code no client knows.
  let handshakes = 0;
  const server = net.createServer((sock) => {
    sock.on('error', () => undefined);
    let first = true;
    sock.on('data', () => {
      if (first) {
        first = false;
        handshakes++;
        const body = Buffer.alloc(4 + 4 + 8 + 4 + 16);
        body.writeInt32BE(0, 0); // protocolVersion
        body.writeInt32BE(4000, 4); // timeOut
        body.writeBigInt64BE(0x1234n, 8); // sessionId
        body.writeInt32BE(16, 16); // passwd length
        sock.write(Buffer.concat([lengthPrefix(body.length), body]));
        return;
      }
      const reply = Buffer.alloc(16);
      reply.writeInt32BE(0, 0); // xid of the first request
      reply.writeBigInt64BE(1n, 4); // zxid
      reply.writeInt32BE(-1787691007, 12); // err: not a ZooKeeper code
      sock.write(Buffer.concat([lengthPrefix(16), reply]));
    });
  });
  await new Promise<void>((r) => server.listen({ host: '127.0.0.1', port: 0 }, () => r()));
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  const port = (server.address() as net.AddressInfo).port;
  const log = watch(`127.0.0.1:${port}`, '/dubbo');
  await waitFor(() => handshakes >= 2, { what: 'the client to reconnect after a garbage reply' });
  const st = await log.until((s) => s.error !== undefined, 'an error state');
  assert.equal(st.synced, false);
  assert.deepEqual(st.services, []);
});

function lengthPrefix(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n, 0);
  return b;
}

test('a reconnect re-arms more than 1 MB of watches (ZooKeeper packet limit): changes after it are still seen', async () => {
  const zk = await startZooKeeper({ name: 'zk-many-watches' });
  const proxy = await TcpProxy.start(zk.port);
  cleanups.push(() => proxy.close());
  const w = await DubboWriter.connect(zk.connect, '/dubbo', 6000);
  cleanups.push(() => w.close());
  // Interface names near the DNS limit: 3,500 interfaces, two watched paths each of ~200 bytes.
  const seg = (c: string): string => c.repeat(60);
  const iface = (i: number): string => `com.${seg('a')}.${seg('b')}.${seg('c')}.I${i}`;
  const N = 3500;
  const watchBytes = Array.from({ length: N }, (_, i) => 2 * (4 + `/dubbo/${iface(i)}`.length) + 10).reduce((a, b) => a + b, 0);
  assert.ok(watchBytes > 1.3 * 1024 * 1024, `${watchBytes} bytes of watched paths`);
  for (let k = 0; k < N; k += 250) {
    await Promise.all(Array.from({ length: Math.min(250, N - k) }, (_, j) => w.provider(url(`10.5.${(k + j) >> 8}.${(k + j) & 255}`, iface(k + j), `app${k + j}`))));
  }
  const log = watch(proxy.endpoint, '/dubbo', { sessionTimeoutMs: 6000 });
  await log.until((s) => s.synced && s.endpoints.length === N, `${N} providers`, { timeoutMs: 60_000 });
  const baseSessions = await zk.sessions();
  // Drop the connection (same session): the client re-arms every watch on reconnect.
  proxy.partition('refuse');
  await log.until((s) => s.error !== undefined, 'connection lost');
  proxy.heal();
  await log.until((s) => s.error === undefined, 'reconnected', { timeoutMs: 10_000 });
  // A change under an interface read before the reconnect is seen: its watch was re-armed.
  await w.provider(url('10.4.0.1', iface(7), 'app7'));
  await log.until((s) => s.endpoints.length === N + 1, 'a change after the reconnect', { timeoutMs: 10_000 });
  assert.equal(await zk.sessions(), baseSessions, 'the same session resumed');
  assert.ok(proxy.connections <= 1, 'one connection, not a reconnect loop');
  await zk.stop();
});

test('several servers in the connect string: a dead one is skipped', async () => {
  const zk = await startZooKeeper({ name: 'zk-multi' });
  const dead = await createZooKeeper({ name: 'zk-multi-dead' }); // never started
  const w = await DubboWriter.connect(zk.connect, '/dubbo', 6000);
  cleanups.push(() => w.close());
  await w.provider(url('10.3.3.3'));
  const connect = `${dead.connect},${zk.connect}`;
  const log = watch(connect, '/dubbo');
  const st = await log.until((s) => s.synced && s.endpoints.length === 1, 'synced through the live server');
  assert.equal(st.id, `zk://${connect}/dubbo`);
  assert.equal(st.error, undefined);
  await zk.stop();
});
