import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DnsRecord } from '../../../src/dns/rr.ts';
import { decodeMessage, encodeMessage, encodeQuery, labelsToName, nameToLabels, WireError } from '../../../src/dns/wire.ts';

const Z = 'rpc.cluster.local';

test('a message round-trips: header flags, question, every record type, EDNS', () => {
  const answers: DnsRecord[] = [
    { name: `a.${Z}`, ttl: 30, type: 'A', address: '240.240.0.1' },
    { name: `a.${Z}`, ttl: 30, type: 'AAAA', address: 'fd00::1' },
    { name: `_grpc._tcp.a.${Z}`, ttl: 30, type: 'SRV', priority: 0, weight: 7, port: 9090, target: `10-0-0-1.ep.${Z}` },
    { name: `a.${Z}`, ttl: 30, type: 'TXT', text: ['interface=x.Y', 'methods=a,b', 'ünïcode'] },
    { name: Z, ttl: 60, type: 'NS', host: `ns.dns.${Z}` },
    { name: `c.${Z}`, ttl: 5, type: 'CNAME', target: `a.${Z}` },
    { name: Z, ttl: 30, type: 'SOA', mname: `ns.dns.${Z}`, rname: `hostmaster.${Z}`, serial: 4000000000, refresh: 7200, retry: 1800, expire: 86400, minimum: 30 },
  ];
  const bytes = encodeMessage({
    header: { id: 0xbeef, qr: true, aa: true, rd: true, cd: true, rcode: 3 },
    questions: [{ name: `A.Rpc.Cluster.Local`, type: 1 }],
    answers,
    edns: { payloadSize: 1232, do: true },
  });
  const m = decodeMessage(bytes);
  assert.equal(m.header.id, 0xbeef);
  assert.deepEqual([m.header.qr, m.header.aa, m.header.tc, m.header.rd, m.header.ra, m.header.cd], [true, true, false, true, false, true]);
  assert.equal(m.header.rcode, 3);
  assert.deepEqual(m.questions, [{ labels: ['A', 'Rpc', 'Cluster', 'Local'], name: 'A.Rpc.Cluster.Local', type: 1, class: 1 }]);
  // Owner names compressed against the question come back in the question's case.
  assert.equal(m.answers[0]!.name, 'A.Rpc.Cluster.Local');
  // Names are case-insensitive; targets may be compressed into the question's case too.
  const lower = (x: unknown): unknown => JSON.parse(JSON.stringify(x).toLowerCase());
  assert.deepEqual(lower(m.answers), lower(answers));
  assert.deepEqual(m.answers.find((r) => r.type === 'TXT'), { ...answers[3]!, name: 'A.Rpc.Cluster.Local' });
  assert.deepEqual(m.edns, { payloadSize: 1232, version: 0, do: true, options: [] });
});

test('names are compressed: repeated suffixes cost two octets', () => {
  const many: DnsRecord[] = Array.from({ length: 20 }, (_, i) => ({ name: `x.${Z}`, ttl: 30, type: 'A' as const, address: `10.0.0.${i}` }));
  const bytes = encodeMessage({ header: { id: 1, qr: true }, questions: [{ name: `x.${Z}`, type: 1 }], answers: many });
  // header 12 + question (21-octet name + 4) + 20 × (pointer 2 + 10 + 4)
  assert.equal(bytes.length, 12 + 21 + 4 + 20 * 16);
});

test('an extended rcode goes into the OPT record', () => {
  const m = decodeMessage(encodeMessage({ header: { id: 2, qr: true, rcode: 16 }, edns: { payloadSize: 512 } }));
  assert.equal(m.header.rcode, 16);
  assert.throws(() => encodeMessage({ header: { id: 2, rcode: 16 } }), /needs an OPT/);
});

test('names: escapes map labels with dots and odd bytes to text and back', () => {
  assert.deepEqual(nameToLabels('a\\.b.c.'), ['a.b', 'c']);
  assert.equal(labelsToName(['a.b', 'c\\d', '\x00x']), 'a\\.b.c\\\\d.\\000x');
  assert.deepEqual(nameToLabels(labelsToName(['a.b', 'c\\d', '\x00x'])), ['a.b', 'c\\d', '\x00x']);
  assert.deepEqual(nameToLabels(''), []);
  assert.throws(() => nameToLabels('a..b'), /empty label/);
  assert.throws(() => nameToLabels(`${'x'.repeat(64)}.b`), /over 63/);
});

function header(qd: number, an = 0, ns = 0, ar = 0): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt16BE(7, 0);
  b.writeUInt16BE(qd, 4);
  b.writeUInt16BE(an, 6);
  b.writeUInt16BE(ns, 8);
  b.writeUInt16BE(ar, 10);
  return b;
}

test('malformed packets are WireErrors, never anything else', () => {
  const bad: Array<[string, Buffer, RegExp]> = [
    ['short header', Buffer.alloc(5), /header/],
    ['count beyond the end', header(3), /ends inside a name/],
    ['pointer loop', Buffer.concat([header(1), Buffer.from([0xc0, 12, 0, 1, 0, 1])]), /does not point backwards/],
    ['forward pointer', Buffer.concat([header(1), Buffer.from([0xc0, 20, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0])]), /does not point backwards/],
    ['label past the end', Buffer.concat([header(1), Buffer.from([40, 0x61])]), /inside a label/],
    ['extended label type', Buffer.concat([header(1), Buffer.from([0x41, 0, 0, 1, 0, 1])]), /label type/],
    ['trailing garbage', Buffer.concat([encodeQuery({ id: 1, name: 'a.b', type: 1 }), Buffer.from([1])]), /after the last record/],
    ['two OPT records', Buffer.concat([header(0, 0, 0, 2), Buffer.from([0, 0, 41, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 41, 2, 0, 0, 0, 0, 0, 0, 0])]), /more than one OPT/],
    ['A with 3 octets', Buffer.concat([header(0, 1), Buffer.from([0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 3, 1, 2, 3])]), /A record of .* 3 octets/],
  ];
  for (const [what, buf, re] of bad) assert.throws(() => decodeMessage(buf), (e: unknown) => e instanceof WireError && re.test(e.message), what);
  // A name over 255 octets, built from labels and backward pointers.
  const labels = Buffer.concat(Array.from({ length: 5 }, () => Buffer.from([63, ...Buffer.alloc(63, 0x61)])));
  assert.throws(() => decodeMessage(Buffer.concat([header(1), labels, Buffer.from([0, 0, 1, 0, 1])])), /over 255 octets/);
});
