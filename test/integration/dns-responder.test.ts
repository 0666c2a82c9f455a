// The built-in DNS responder against the real `kdig`: a MemoryRegistry of SOA providers →
// aggregate → DnsService (VIPs in a local file, records, responder on a free loopback port).
import { TestDns } from '../helpers/dns-pipeline.ts';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { DnsServer } from '../../src/dns/server.ts';
import { Zone } from '../../src/dns/zone.ts';
import { TYPE } from '../../src/dns/rr.ts';
import { MemoryRegistry } from '../../src/registries/memory.ts';
import { mapProviders } from '../../src/registries/soa/mapping.ts';
import { parseProviderUrl } from '../../src/registries/soa/provider.ts';
import { kdig, udpQuery } from '../helpers/dns.ts';
import { freePort } from '../helpers/ports.ts';
import { scratchDir } from '../helpers/processes.ts';
import { waitUntil } from '../helpers/wait.ts';

const Z = 'rpc.cluster.local';
const USERQUERY = `com.alipay.userservice.userquery.${Z}`;
const ORDERS = `com.alipay.orders.orderquery.v2.${Z}`;

const registry = new MemoryRegistry('memory://soa');
let dns: TestDns;
let upstream: DnsServer;
let port: number;

function providers(urls: string[]): void {
  const mapped = mapProviders(urls.map((u, i) => parseProviderUrl(u, `/dubbo/${i}`)), { registry: registry.id });
  registry.set({ services: mapped.services, endpoints: mapped.endpoints });
}

const BASE = [
  'dubbo://10.0.0.1:20880/com.alipay.userservice.UserQuery?application=userservice&methods=getUser,listUsers&weight=100',
  'dubbo://10.0.0.2:20880/com.alipay.userservice.UserQuery?application=userservice&methods=getUser,listUsers&weight=50',
  'dubbo://10.0.0.1:20880/com.alipay.userservice.UserAdmin?application=userservice&methods=ban',
  // A big application: 120 instances, so its SRV answer does not fit 512 octets.
  ...Array.from({ length: 120 }, (_, i) => `dubbo://10.1.${i >> 8}.${i & 255}:20880/com.alipay.big.Api?application=big&methods=call`),
];

before(async () => {
  upstream = new DnsServer({ listen: '127.0.0.1:0', zone: 'example.test' });
  const upPort = await upstream.listen();
  upstream.setZone(new Zone([{ name: 'www.example.test', ttl: 60, type: 'A', address: '192.0.2.80' }], { zone: 'example.test', ttl: 60, negativeTtl: 60, serial: 1 }));
  providers(BASE);
  dns = new TestDns({
    listen: `127.0.0.1:${await freePort()}`,
    zone: Z,
    cidr: '240.240.0.0/16',
    ttl: 30,
    vipStorePath: path.join(scratchDir('dns-int'), 'vips.json'),
    upstream: `127.0.0.1:${upPort}`,
  });
  await dns.follow([registry]);
  port = dns.port;
  await waitUntil(() => dns.records().length, (n) => n > 0, { what: 'the first zone' });
});

after(async () => {
  await dns.close();
  await upstream.close();
});

test('an interface name resolves to its VIP, over UDP and TCP', async () => {
  const vip = dns.vips().get(USERQUERY);
  assert.match(vip ?? '', /^240\.240\.\d+\.\d+$/);
  for (const transport of ['+notcp', '+tcp']) {
    const r = await kdig(port, USERQUERY, 'A', [transport]);
    assert.equal(r.rcode, 'NOERROR');
    assert.ok(r.aa);
    assert.deepEqual(r.answer, [{ name: USERQUERY, type: 'A', ttl: 30, data: vip }]);
  }
  // The application has a VIP of its own.
  assert.equal((await kdig(port, `userservice.${Z}`, 'A')).answer[0]?.data, dns.vips().get(`userservice.${Z}`));
});

test('SRV lists the instances serving the interface, with their addresses', async () => {
  const r = await kdig(port, `_dubbo._tcp.${USERQUERY}`, 'SRV');
  assert.equal(r.rcode, 'NOERROR');
  assert.deepEqual(r.answer.map((a) => a.data).sort(), [`0 100 20880 10-0-0-1.ep.${Z}.`, `0 50 20880 10-0-0-2.ep.${Z}.`]);
  assert.deepEqual(r.additional.map((a) => `${a.name} ${a.data}`).sort(), [`10-0-0-1.ep.${Z} 10.0.0.1`, `10-0-0-2.ep.${Z} 10.0.0.2`]);
  // UserAdmin is served by 10.0.0.1 only (one endpoint per instance: its weight is the largest of its providers).
  const admin = await kdig(port, `_dubbo._tcp.com.alipay.userservice.useradmin.${Z}`, 'SRV');
  assert.deepEqual(admin.answer.map((a) => a.data), [`0 100 20880 10-0-0-1.ep.${Z}.`]);
});

test('TXT carries the interface metadata', async () => {
  const r = await kdig(port, USERQUERY, 'TXT');
  assert.deepEqual(r.answer.map((a) => a.data), [`"interface=com.alipay.userservice.UserQuery" "application=userservice" "service=userservice.${Z}" "port=20880" "methods=getUser,listUsers"`]);
});

test('NXDOMAIN and NODATA carry the SOA; the apex has SOA and NS', async () => {
  const nx = await kdig(port, `com.alipay.userservice.nosuch.${Z}`, 'A');
  assert.equal(nx.rcode, 'NXDOMAIN');
  assert.ok(nx.aa);
  assert.deepEqual(nx.authority.map((a) => `${a.name} ${a.type} ${a.ttl}`), [`${Z} SOA 30`]);
  assert.match(nx.authority[0]!.data, new RegExp(`^ns\\.dns\\.${Z.replace(/\./g, '\\.')}\\. hostmaster\\.`));
  const nodata = await kdig(port, USERQUERY, 'AAAA');
  assert.equal(nodata.rcode, 'NOERROR');
  assert.equal(nodata.answer.length, 0);
  assert.deepEqual(nodata.authority.map((a) => a.type), ['SOA']);
  // An empty non-terminal: userquery.Z exists only because names below it do.
  const ent = await kdig(port, `userquery.${Z}`, 'A');
  assert.equal(ent.rcode, 'NOERROR');
  assert.deepEqual(ent.authority.map((a) => a.type), ['SOA']);
  assert.deepEqual((await kdig(port, Z, 'SOA')).answer.map((a) => a.type), ['SOA']);
  const ns = await kdig(port, Z, 'NS');
  assert.deepEqual(ns.answer.map((a) => a.data), [`ns.dns.${Z}.`]);
  assert.deepEqual(ns.additional.map((a) => a.data), ['127.0.0.1']);
});

test('a mixed-case question is answered, in its own case', async () => {
  const mixed = 'Com.Alipay.UserService.UserQuery.RPC.Cluster.Local';
  const r = await kdig(port, mixed, 'A');
  assert.equal(r.rcode, 'NOERROR');
  assert.deepEqual(r.answer.map((a) => a.data), [dns.vips().get(USERQUERY)]);
  // kdig prints names lowercased; our own client shows the bytes as sent back.
  const m = await udpQuery(port, mixed, TYPE.A);
  assert.equal(m.questions[0]!.name, mixed);
  assert.equal(m.answers[0]!.name, mixed);
});

test('EDNS0: our payload size is advertised; a large answer sets TC over small UDP and comes whole over TCP', async () => {
  const name = `_dubbo._tcp.com.alipay.big.api.${Z}`;
  const small = await kdig(port, name, 'SRV', ['+notcp', '+ignore', '+bufsize=512']);
  assert.ok(small.tc, 'TC set');
  assert.equal(small.answer.length, 0);
  assert.equal(small.ednsPayload, 1232);
  assert.ok(small.msgLength <= 512);
  const noEdns = await kdig(port, name, 'SRV', ['+notcp', '+ignore', '+noedns']);
  assert.ok(noEdns.tc);
  assert.equal(noEdns.ednsPayload, undefined);
  const tcp = await kdig(port, name, 'SRV', ['+tcp']);
  assert.ok(!tcp.tc);
  assert.equal(tcp.answer.length, 120);
  assert.ok(tcp.msgLength > 1232);
  // A mid-sized answer fits the 1232 octets we allow.
  const mid = await kdig(port, USERQUERY, 'TXT', ['+notcp', '+ignore', '+bufsize=4096']);
  assert.ok(!mid.tc);
  assert.equal(mid.answer.length, 1);
});

test('outside the zone: forwarded to the upstream; REFUSED without one', async () => {
  const fwd = await kdig(port, 'www.example.test', 'A');
  assert.equal(fwd.rcode, 'NOERROR');
  assert.deepEqual(fwd.answer.map((a) => a.data), ['192.0.2.80']);
  const direct = await kdig(upstream.port, `x.${Z}`, 'A');
  assert.equal(direct.rcode, 'REFUSED');
  assert.equal(direct.answer.length, 0);
});

test('a registry change shows in DNS answers within a bounded time', async () => {
  const started = Date.now();
  providers([...BASE, 'dubbo://10.0.0.9:20881/com.alipay.orders.OrderQuery?application=orders&methods=get&version=2']);
  const r = await waitUntil(() => kdig(port, ORDERS, 'A'), (x) => x.rcode === 'NOERROR' && x.answer.length === 1, { timeoutMs: 5000, intervalMs: 50, what: `${ORDERS} in DNS` });
  assert.equal(r.answer[0]!.data, dns.vips().get(ORDERS));
  const srv = await kdig(port, `_dubbo._tcp.${ORDERS}`, 'SRV');
  assert.deepEqual(srv.answer.map((a) => a.data), [`0 100 20881 10-0-0-9.ep.${Z}.`]);
  const elapsed = Date.now() - started;
  process.stderr.write(`registry change → DNS answer: ${elapsed} ms (polling every 50 ms, kdig process each)\n`);
  // And gone again once the provider leaves; the other names keep their VIPs.
  const vip = dns.vips().get(USERQUERY);
  providers(BASE);
  await waitUntil(() => kdig(port, ORDERS, 'A'), (x) => x.rcode === 'NXDOMAIN', { timeoutMs: 5000, intervalMs: 50, what: `${ORDERS} gone from DNS` });
  assert.equal(dns.vips().get(USERQUERY), vip);
});
