import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { respond, type Outcome } from '../../../src/dns/responder.ts';
import { type DnsRecord, TYPE } from '../../../src/dns/rr.ts';
import { decodeMessage, encodeMessage, encodeQuery, type Message, RCODE } from '../../../src/dns/wire.ts';
import { Zone } from '../../../src/dns/zone.ts';

const Z = 'rpc.cluster.local';
const records: DnsRecord[] = [
  { name: `com.a.userquery.${Z}`, ttl: 30, type: 'A', address: '240.240.0.2' },
  { name: `com.a.userquery.${Z}`, ttl: 30, type: 'TXT', text: ['interface=com.a.UserQuery'] },
  { name: `_dubbo._tcp.com.a.userquery.${Z}`, ttl: 30, type: 'SRV', priority: 0, weight: 1, port: 20880, target: `10-0-0-1.ep.${Z}` },
  { name: `10-0-0-1.ep.${Z}`, ttl: 30, type: 'A', address: '10.0.0.1' },
  ...Array.from({ length: 120 }, (_, i): DnsRecord => ({ name: `big.${Z}`, ttl: 30, type: 'A', address: `10.9.${i >> 8}.${i & 255}` })),
];
const zone = new Zone(records, { zone: Z, ttl: 30, negativeTtl: 10, serial: 42, nsAddresses: ['127.0.0.1'] });

function ask(packet: Buffer, transport: 'udp' | 'tcp' = 'udp', z: Zone | undefined = zone, forwarding = false): Message {
  const out = respond(packet, transport, z, Z, { forwarding });
  assert.equal(out.kind, 'reply', JSON.stringify(out));
  return decodeMessage((out as Extract<Outcome, { kind: 'reply' }>).bytes);
}

function q(name: string, type: number, edns?: { payloadSize: number }): Buffer {
  return encodeQuery({ id: 4242, name, type, rd: true, ...(edns ? { edns } : {}) });
}

test('an interface name answers its VIP, authoritatively, with the question echoed', () => {
  const m = ask(q(`com.a.userquery.${Z}`, TYPE.A));
  assert.equal(m.header.id, 4242);
  assert.equal(m.header.rcode, RCODE.NOERROR);
  assert.ok(m.header.qr && m.header.aa && m.header.rd && !m.header.ra && !m.header.tc);
  assert.deepEqual(m.answers, [{ name: `com.a.userquery.${Z}`, ttl: 30, type: 'A', address: '240.240.0.2' }]);
});

test('names are case-insensitive and answered in the question’s case', () => {
  const m = ask(q(`Com.A.UserQuery.RPC.cluster.LOCAL`, TYPE.A));
  assert.equal(m.questions[0]!.name, 'Com.A.UserQuery.RPC.cluster.LOCAL');
  assert.deepEqual(m.answers.map((r) => r.name), ['Com.A.UserQuery.RPC.cluster.LOCAL']);
});

test('SRV brings the instance addresses in the additional section', () => {
  const m = ask(q(`_dubbo._tcp.com.a.userquery.${Z}`, TYPE.SRV));
  assert.deepEqual(m.answers.map((r) => r.type === 'SRV' && `${r.port} ${r.target}`), [`20880 10-0-0-1.ep.${Z}`]);
  assert.deepEqual(m.additional, [{ name: `10-0-0-1.ep.${Z}`, ttl: 30, type: 'A', address: '10.0.0.1' }]);
});

test('NXDOMAIN vs NODATA, with the SOA (negative TTL) in the authority section', () => {
  const nx = ask(q(`nope.${Z}`, TYPE.A));
  assert.equal(nx.header.rcode, RCODE.NXDOMAIN);
  assert.ok(nx.header.aa);
  assert.equal(nx.answers.length, 0);
  assert.deepEqual(nx.authority.map((r) => r.type === 'SOA' && [r.name, r.ttl, r.serial, r.minimum]), [[Z, 10, 42, 10]]);
  // A name with records, but not of this type.
  const nodata = ask(q(`com.a.userquery.${Z}`, TYPE.AAAA));
  assert.equal(nodata.header.rcode, RCODE.NOERROR);
  assert.equal(nodata.answers.length, 0);
  assert.equal(nodata.authority[0]!.type, 'SOA');
  // Empty non-terminals: names that exist only because of names below them (the leftmost
  // label is the most specific: com.a.userquery.Z lies below a.userquery.Z and userquery.Z).
  for (const ent of [`userquery.${Z}`, `a.userquery.${Z}`, `_tcp.com.a.userquery.${Z}`, `ep.${Z}`]) {
    const m = ask(q(ent, TYPE.A));
    assert.equal(m.header.rcode, RCODE.NOERROR, ent);
    assert.equal(m.authority[0]!.type, 'SOA', ent);
  }
  // Below an existing leaf, and beside an empty non-terminal, is NXDOMAIN.
  assert.equal(ask(q(`x.com.a.userquery.${Z}`, TYPE.A)).header.rcode, RCODE.NXDOMAIN);
  assert.equal(ask(q(`com.${Z}`, TYPE.A)).header.rcode, RCODE.NXDOMAIN);
});

test('the apex has SOA and NS (with glue); ANY returns everything at a name', () => {
  const soa = ask(q(Z, TYPE.SOA));
  assert.deepEqual(soa.answers.map((r) => r.type), ['SOA']);
  const ns = ask(q(Z, TYPE.NS));
  assert.deepEqual(ns.answers.map((r) => r.type === 'NS' && r.host), [`ns.dns.${Z}`]);
  assert.deepEqual(ns.additional.map((r) => r.type === 'A' && r.address), ['127.0.0.1']);
  const any = ask(q(`com.a.userquery.${Z}`, TYPE.ANY));
  assert.deepEqual(any.answers.map((r) => r.type).sort(), ['A', 'TXT']);
});

test('outside the zone: REFUSED, or handed back for forwarding', () => {
  const m = ask(q('example.com', TYPE.A));
  assert.equal(m.header.rcode, RCODE.REFUSED);
  assert.ok(!m.header.aa);
  const out = respond(q('example.com', TYPE.A), 'udp', zone, Z, { forwarding: true });
  assert.equal(out.kind, 'forward');
  // A name that only ends like the zone is outside it.
  assert.equal(ask(q(`x${Z}`, TYPE.A)).header.rcode, RCODE.REFUSED);
});

test('FORMERR, NOTIMP, BADVERS, REFUSED for transfers and other classes, SERVFAIL before the first zone', () => {
  const two = encodeMessage({ header: { id: 9 }, questions: [{ name: Z, type: 1 }, { name: Z, type: 1 }] });
  assert.equal(ask(two).header.rcode, RCODE.FORMERR);
  assert.equal(ask(encodeMessage({ header: { id: 9 } })).header.rcode, RCODE.FORMERR);
  const garbage = Buffer.concat([q(Z, TYPE.A).subarray(0, 14), Buffer.from([0xff])]);
  const fe = ask(garbage);
  assert.equal(fe.header.rcode, RCODE.FORMERR);
  assert.equal(fe.header.id, 4242);
  const notify = encodeMessage({ header: { id: 9, opcode: 4 }, questions: [{ name: Z, type: TYPE.SOA }] });
  assert.equal(ask(notify).header.rcode, RCODE.NOTIMP);
  assert.equal(ask(notify).header.opcode, 4);
  const v1 = encodeMessage({ header: { id: 9 }, questions: [{ name: Z, type: 1 }], edns: { payloadSize: 1232, version: 1 } });
  assert.equal(ask(v1).header.rcode, RCODE.BADVERS);
  assert.equal(ask(q(Z, TYPE.AXFR), 'tcp').header.rcode, RCODE.REFUSED);
  assert.equal(ask(encodeMessage({ header: { id: 9 }, questions: [{ name: Z, type: 1, class: 3 }] })).header.rcode, RCODE.REFUSED);
  const early = respond(q(Z, TYPE.SOA), 'udp', undefined, Z);
  assert.equal(decodeMessage((early as Extract<Outcome, { kind: 'reply' }>).bytes).header.rcode, RCODE.SERVFAIL);
});

test('responses and runts are dropped', () => {
  const resp = encodeMessage({ header: { id: 1, qr: true }, questions: [{ name: Z, type: 1 }] });
  assert.equal(respond(resp, 'udp', zone, Z).kind, 'drop');
  assert.equal(respond(Buffer.alloc(11), 'udp', zone, Z).kind, 'drop');
});

test('EDNS: the OPT record advertises our size; UDP answers fit the client’s size or set TC; TCP gets all', () => {
  // 120 A records: 12 + 20 + 120 × 16 ≈ 1950 octets.
  const plain = ask(q(`big.${Z}`, TYPE.A));
  assert.ok(plain.header.tc, 'over 512 without EDNS');
  assert.equal(plain.answers.length, 0);
  assert.equal(plain.edns, undefined);
  const small = ask(q(`big.${Z}`, TYPE.A, { payloadSize: 1232 }));
  assert.ok(small.header.tc);
  assert.equal(small.edns?.payloadSize, 1232);
  const large = respond(q(`big.${Z}`, TYPE.A, { payloadSize: 4096 }), 'udp', zone, Z, { udpPayloadSize: 4096 });
  const lm = decodeMessage((large as Extract<Outcome, { kind: 'reply' }>).bytes);
  assert.ok(!lm.header.tc);
  assert.equal(lm.answers.length, 120);
  const tcp = ask(q(`big.${Z}`, TYPE.A), 'tcp');
  assert.ok(!tcp.header.tc);
  assert.equal(tcp.answers.length, 120);
  // A client size under 512 counts as 512.
  const tiny = ask(q(`com.a.userquery.${Z}`, TYPE.A, { payloadSize: 100 }));
  assert.ok(!tiny.header.tc);
});

test('fuzz: random bytes and mutated queries never throw and stay bounded', () => {
  const seeds = [q(`com.a.userquery.${Z}`, TYPE.A, { payloadSize: 1232 }), q(`_dubbo._tcp.com.a.userquery.${Z}`, TYPE.SRV), q(`big.${Z}`, TYPE.ANY), q('example.com', TYPE.A)];
  let replies = 0;
  const check = (packet: Buffer): void => {
    for (const transport of ['udp', 'tcp'] as const) {
      const out = respond(packet, transport, zone, Z, { forwarding: packet.length % 2 === 0 });
      if (out.kind !== 'reply') continue;
      replies++;
      assert.ok(out.bytes.length <= (transport === 'udp' ? 1232 : 65535));
      const m = decodeMessage(out.bytes); // every answer we send is itself well-formed
      assert.ok(m.header.qr);
    }
  };
  for (let i = 0; i < 20000; i++) check(randomBytes(Math.floor(Math.random() * 600)));
  for (let i = 0; i < 20000; i++) {
    const p = Buffer.from(seeds[i % seeds.length]!);
    const flips = 1 + Math.floor(Math.random() * 4);
    for (let f = 0; f < flips; f++) p[Math.floor(Math.random() * p.length)] = Math.floor(Math.random() * 256);
    check(Math.random() < 0.2 ? p.subarray(0, Math.floor(Math.random() * p.length)) : p);
  }
  assert.ok(replies > 1000);
});
