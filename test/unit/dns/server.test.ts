import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { TYPE, type DnsRecord } from '../../../src/dns/rr.ts';
import { DnsServer } from '../../../src/dns/server.ts';
import { decodeMessage, encodeQuery, RCODE } from '../../../src/dns/wire.ts';
import { Zone } from '../../../src/dns/zone.ts';
import { metrics } from '../../../src/shared/metrics.ts';
import { TcpDnsClient, udpExchange, udpQuery } from '../../helpers/dns.ts';
import { waitFor } from '../../helpers/wait.ts';

const Z = 'rpc.cluster.local';
const A = (name: string, address: string): DnsRecord => ({ name, ttl: 30, type: 'A', address });

function zoneOf(records: DnsRecord[], origin = Z, serial = 1): Zone {
  return new Zone(records, { zone: origin, ttl: 30, negativeTtl: 30, serial });
}

test('UDP and TCP on one port; several queries per TCP connection, answered in turn', async (t) => {
  const server = new DnsServer({ listen: '127.0.0.1:0', zone: Z });
  t.after(() => server.close());
  const port = await server.listen();
  server.setZone(zoneOf([A(`a.${Z}`, '240.240.0.1'), A(`b.${Z}`, '240.240.0.2')]));
  const m = await udpQuery(port, `a.${Z}`, TYPE.A);
  assert.deepEqual(m.answers.map((r) => r.type === 'A' && r.address), ['240.240.0.1']);

  const tcp = new TcpDnsClient(port);
  t.after(() => tcp.close());
  // Pipelined, and written in one segment together with a split one.
  const q1 = encodeQuery({ id: 1, name: `a.${Z}`, type: TYPE.A });
  const q2 = encodeQuery({ id: 2, name: `b.${Z}`, type: TYPE.A });
  const q3 = encodeQuery({ id: 3, name: `nope.${Z}`, type: TYPE.A });
  const answers = [tcp.next(), tcp.next(), tcp.next()];
  await tcp.send(q1);
  await tcp.send(q2);
  await tcp.send(q3);
  const got = (await Promise.all(answers)).map(decodeMessage);
  assert.deepEqual(got.map((a) => [a.header.id, a.header.rcode]).sort(), [[1, 0], [2, 0], [3, RCODE.NXDOMAIN]]);
});

test('a zone swap is atomic and shows in the next answer', async (t) => {
  const server = new DnsServer({ listen: '127.0.0.1:0', zone: Z });
  t.after(() => server.close());
  const port = await server.listen();
  server.setZone(zoneOf([A(`a.${Z}`, '240.240.0.1')]));
  assert.equal((await udpQuery(port, `a.${Z}`, TYPE.A)).answers.length, 1);
  server.setZone(zoneOf([A(`b.${Z}`, '240.240.0.2')], Z, 2));
  assert.equal((await udpQuery(port, `a.${Z}`, TYPE.A)).header.rcode, RCODE.NXDOMAIN);
  assert.equal((await udpQuery(port, `b.${Z}`, TYPE.A)).answers.length, 1);
  assert.throws(() => server.setZone(zoneOf([], 'other.local')), /given to the server of/);
});

test('an idle TCP connection is closed; a zero-length message closes it too', async (t) => {
  const server = new DnsServer({ listen: '127.0.0.1:0', zone: Z, tcpIdleMs: 200 });
  t.after(() => server.close());
  const port = await server.listen();
  const idle = new TcpDnsClient(port);
  await idle.send(encodeQuery({ id: 1, name: Z, type: TYPE.SOA }));
  await idle.next();
  await idle.closed;
  const zero = new TcpDnsClient(port);
  await zero.send(Buffer.alloc(0));
  await zero.closed;
});

test('random datagrams and TCP garbage do not stop the server', async (t) => {
  const server = new DnsServer({ listen: '127.0.0.1:0', zone: Z });
  t.after(() => server.close());
  const port = await server.listen();
  server.setZone(zoneOf([A(`a.${Z}`, '240.240.0.1')]));
  const sock = dgram.createSocket('udp4');
  const before = metrics.counter('isthmus_dns_queries_total', '').get({ type: 'none', rcode: 'FORMERR', transport: 'udp' });
  for (let i = 0; i < 2000; i++) {
    const junk = randomBytes(12 + Math.floor(Math.random() * 300));
    junk[2] = junk[2]! & 0x07; // a query (QR clear), opcode QUERY
    junk[4] = 0;
    junk[5] = 1 + (i % 3); // questions that run off the end or into garbage
    await new Promise((resolve) => sock.send(junk, port, '127.0.0.1', resolve));
  }
  await new Promise<void>((resolve) => sock.close(() => resolve()));
  const tcp = new TcpDnsClient(port);
  const frame = randomBytes(3000);
  frame.writeUInt16BE(2998, 0);
  await tcp.send(frame.subarray(2));
  tcp.close();
  // The burst overflows the socket's receive buffer, so a query sent right after it may be
  // dropped by the kernel: ask again, as any resolver would.
  const m = await waitFor(() => udpQuery(port, `a.${Z}`, TYPE.A, undefined, 300), { what: 'an answer after the junk' });
  assert.equal(m.answers.length, 1);
  assert.ok(metrics.counter('isthmus_dns_queries_total', '').get({ type: 'none', rcode: 'FORMERR', transport: 'udp' }) > before);
});

test('queries outside the zone go to the upstream when one is configured; a silent upstream gives SERVFAIL', async (t) => {
  const upstream = new DnsServer({ listen: '127.0.0.1:0', zone: 'example.test' });
  t.after(() => upstream.close());
  const upPort = await upstream.listen();
  upstream.setZone(zoneOf([A('www.example.test', '192.0.2.80'), ...Array.from({ length: 60 }, (_, i) => A('big.example.test', `192.0.2.${i}`))], 'example.test'));

  const server = new DnsServer({ listen: '127.0.0.1:0', zone: Z, upstream: `127.0.0.1:${upPort}`, forwardTimeoutMs: 300 });
  t.after(() => server.close());
  const port = await server.listen();
  server.setZone(zoneOf([A(`a.${Z}`, '240.240.0.1')]));
  const fwd = await udpQuery(port, 'WWW.example.test', TYPE.A);
  assert.deepEqual(fwd.answers.map((r) => r.type === 'A' && r.address), ['192.0.2.80']);
  assert.equal(fwd.questions[0]!.name, 'WWW.example.test');
  assert.equal((await udpQuery(port, 'nope.example.test', TYPE.A)).header.rcode, RCODE.NXDOMAIN);
  assert.equal((await udpQuery(port, `a.${Z}`, TYPE.A)).answers.length, 1);
  // Truncated upstream answer for a TCP client: fetched again over TCP.
  const tcp = new TcpDnsClient(port);
  t.after(() => tcp.close());
  const next = tcp.next();
  await tcp.send(encodeQuery({ id: 77, name: 'big.example.test', type: TYPE.A }));
  const big = decodeMessage(await next);
  assert.equal(big.header.id, 77);
  assert.ok(!big.header.tc);
  assert.equal(big.answers.length, 60);

  // An upstream that never answers.
  const silent = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', () => resolve()));
  t.after(() => silent.close());
  const lost = new DnsServer({ listen: '127.0.0.1:0', zone: Z, upstream: `127.0.0.1:${silent.address().port}`, forwardTimeoutMs: 200 });
  t.after(() => lost.close());
  const lostPort = await lost.listen();
  const sf = decodeMessage(await udpExchange(lostPort, encodeQuery({ id: 5, name: 'example.com', type: TYPE.A })));
  assert.equal(sf.header.id, 5);
  assert.equal(sf.header.rcode, RCODE.SERVFAIL);
});

test('the port is refused when it is taken', async (t) => {
  const a = new DnsServer({ listen: '127.0.0.1:0', zone: Z });
  t.after(() => a.close());
  const port = await a.listen();
  const b = new DnsServer({ listen: `127.0.0.1:${port}`, zone: Z });
  await assert.rejects(b.listen(), /EADDRINUSE/);
  await b.close();
});
