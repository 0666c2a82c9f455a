// The records API over real HTTPS (a self-signed certificate made with openssl for the test),
// feeding the built-in responder, checked with kdig.
import { TestDns } from '../helpers/dns-pipeline.ts';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { RecordsApiServer } from '../../src/dns/api.ts';
import { FileRecordStore } from '../../src/dns/file-record-store.ts';
import { MemoryRegistry } from '../../src/registries/memory.ts';
import { mapProviders } from '../../src/registries/soa/mapping.ts';
import { parseProviderUrl } from '../../src/registries/soa/provider.ts';
import { kdig } from '../helpers/dns.ts';
import { freePort } from '../helpers/ports.ts';
import { runCommand, scratchDir } from '../helpers/processes.ts';
import { waitUntil } from '../helpers/wait.ts';

const Z = 'rpc.cluster.local';
const USERQUERY = `com.alipay.userservice.userquery.${Z}`;
const TOKEN = 'test-token-0123456789abcdef';

const registry = new MemoryRegistry('memory://soa');
let dns: TestDns;
let api: RecordsApiServer;
let ca: Buffer;
let startApi: () => Promise<RecordsApiServer>;

interface Reply {
  status: number;
  body: { error?: string; records?: Array<Record<string, unknown>> };
}

function call(method: string, url: string, body?: unknown, token: string | null = TOKEN): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = https.request(
      { host: '127.0.0.1', port: api.port, method, path: url, ca, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(data ? { 'content-type': 'application/json', 'content-length': String(data.length) } : {}) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString() || '{}') as Reply['body'] }));
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

before(async () => {
  const dir = scratchDir('dns-api');
  const r = await runCommand('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
    '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'),
  ], { timeoutMs: 15_000 });
  assert.equal(r.code, 0, r.stderr);
  ca = fs.readFileSync(path.join(dir, 'cert.pem'));
  const mapped = mapProviders([parseProviderUrl('dubbo://10.0.0.1:20880/com.alipay.userservice.UserQuery?application=userservice&methods=get', '/dubbo/0')], { registry: registry.id });
  registry.set({ services: mapped.services, endpoints: mapped.endpoints });
  dns = new TestDns({ listen: `127.0.0.1:${await freePort()}`, zone: Z, cidr: '240.240.0.0/16', ttl: 30, vipStorePath: path.join(dir, 'vips.json') });
  await dns.follow([registry]);
  await waitUntil(() => dns.records().length, (n) => n > 0, { what: 'the first zone' });
  fs.writeFileSync(path.join(dir, 'token'), `${TOKEN}\n`);
  // As `isthmus serve --records-api 127.0.0.1:0 --records-token-file … --tls-cert … --tls-key …` would.
  startApi = async () => {
    const server = RecordsApiServer.fromFiles(
      { listen: '127.0.0.1:0', tokenFile: path.join(dir, 'token'), certFile: path.join(dir, 'cert.pem'), keyFile: path.join(dir, 'key.pem') },
      { zone: Z, store: new FileRecordStore(path.join(dir, 'records.json')), reservedNames: () => dns.modelNames(), publish: (records) => dns.setManualRecords(records) },
    );
    await server.start();
    return server;
  };
  api = await startApi();
});

after(async () => {
  await api?.close();
  await dns?.close();
});

test('a missing or wrong token is 401, whatever the route', async () => {
  for (const token of [null, 'wrong-token-0123456789abcdef', `${TOKEN}x`, TOKEN.slice(0, -1)]) {
    const r = await call('GET', '/v1/records', undefined, token);
    assert.equal(r.status, 401, `token ${token}`);
    assert.match(r.body.error ?? '', /token/);
  }
  assert.equal((await call('PUT', '/v1/records', { name: `a.${Z}`, type: 'A', ttl: 60, address: '192.0.2.1' }, 'nope-nope-nope-nope')).status, 401);
  assert.equal((await call('GET', '/v1/records')).status, 200);
});

test('plain HTTP is refused', async () => {
  const r = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: api.port, path: '/v1/records', headers: { authorization: `Bearer ${TOKEN}` } }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end();
  });
  assert.equal(r.status, 400);
  assert.match(r.text, /HTTPS only/);
});

test('bad records are 400 with the reason', async () => {
  const cases: Array<[unknown, RegExp]> = [
    [{ name: 'www.example.com', type: 'A', ttl: 60, address: '192.0.2.1' }, /not inside the zone/],
    [{ name: Z, type: 'A', ttl: 60, address: '192.0.2.1' }, /apex/],
    [{ name: `bad_label!.${Z}`, type: 'A', ttl: 60, address: '192.0.2.1' }, /label/],
    [{ name: `10-0-0-1.ep.${Z}`, type: 'A', ttl: 60, address: '192.0.2.1' }, /reserved for instance names/],
    [{ name: USERQUERY, type: 'A', ttl: 60, address: '192.0.2.1' }, /managed by Isthmus/],
    [{ name: `a.${Z}`, type: 'A', ttl: 0, address: '192.0.2.1' }, /ttl/],
    [{ name: `a.${Z}`, type: 'A', ttl: 60, address: '2001:db8::1' }, /IPv4/],
    [{ name: `a.${Z}`, type: 'MX', ttl: 60 }, /type/],
    [{ name: `a.${Z}`, type: 'TXT', ttl: 60, text: ['x'.repeat(256)] }, /255 octets/],
    [{ name: `a.${Z}`, type: 'SRV', ttl: 60, priority: 0, weight: 1, port: 70000, target: `b.${Z}` }, /port/],
  ];
  for (const [rec, why] of cases) {
    const r = await call('PUT', '/v1/records', rec);
    assert.equal(r.status, 400, JSON.stringify(rec));
    assert.match(r.body.error ?? '', why);
  }
  // A batch with one bad record changes nothing.
  const b = await call('POST', '/v1/records/batch', { put: [{ name: `ok.${Z}`, type: 'A', ttl: 60, address: '192.0.2.9' }, { name: 'x.example.com', type: 'A', ttl: 60, address: '192.0.2.9' }] });
  assert.equal(b.status, 400);
  assert.deepEqual((await call('GET', `/v1/records?name=ok.${Z}`)).body.records, []);
});

test('a record put through the API resolves on the built-in responder, and goes when deleted', async () => {
  const name = `legacy-gw.${Z}`;
  const put = await call('PUT', '/v1/records', { name, type: 'A', ttl: 120, address: '192.0.2.10' });
  assert.equal(put.status, 200);
  const r = await waitUntil(() => kdig(dns.port, name, 'A'), (x) => x.answer.length === 1, { timeoutMs: 5000, intervalMs: 50, what: `${name} in DNS` });
  assert.deepEqual(r.answer, [{ name, type: 'A', ttl: 120, data: '192.0.2.10' }]);
  // Batch: a TXT and an SRV beside it; the model's names still answer as before.
  const batch = await call('POST', '/v1/records/batch', {
    put: [
      { name, type: 'TXT', ttl: 60, text: ['owner=ops'] },
      { name: `_http._tcp.${name}`, type: 'SRV', ttl: 60, priority: 0, weight: 5, port: 8080, target: name },
    ],
  });
  assert.equal(batch.status, 200);
  assert.equal(batch.body.records?.length, 3);
  await waitUntil(() => kdig(dns.port, `_http._tcp.${name}`, 'SRV'), (x) => x.answer.length === 1, { timeoutMs: 5000, intervalMs: 50, what: 'the SRV record' });
  assert.deepEqual((await kdig(dns.port, USERQUERY, 'A')).answer.map((a) => a.data), [dns.vips().get(USERQUERY)]);
  const listed = await call('GET', `/v1/records?name=${name}`);
  assert.deepEqual(listed.body.records?.map((x) => x.type), ['A', 'TXT']);

  assert.equal((await call('DELETE', `/v1/records?name=${name}&type=A`)).status, 200);
  await waitUntil(() => kdig(dns.port, name, 'A'), (x) => x.rcode === 'NOERROR' && x.answer.length === 0, { timeoutMs: 5000, intervalMs: 50, what: `${name} A gone` });
  assert.equal((await call('DELETE', '/v1/records', { name, type: 'A', address: '192.0.2.10' })).status, 404);
  assert.equal((await call('POST', '/v1/records/batch', { delete: [{ name, type: 'TXT', text: ['owner=ops'] }, { name: `_http._tcp.${name}`, type: 'SRV', priority: 0, weight: 5, port: 8080, target: name }] })).status, 200);
  await waitUntil(() => kdig(dns.port, name, 'TXT'), (x) => x.rcode === 'NXDOMAIN', { timeoutMs: 5000, intervalMs: 50, what: `${name} gone` });
});

test('records are kept across a restart of the API (file store) and served again', async () => {
  const name = `kept.${Z}`;
  assert.equal((await call('PUT', '/v1/records', { name, type: 'A', ttl: 60, address: '192.0.2.30' })).status, 200);
  await api.close();
  dns.setManualRecords([]);
  await waitUntil(() => kdig(dns.port, name, 'A'), (x) => x.rcode === 'NXDOMAIN', { timeoutMs: 5000, intervalMs: 50, what: `${name} unpublished` });
  api = await startApi();
  const r = await waitUntil(() => kdig(dns.port, name, 'A'), (x) => x.answer.length === 1, { timeoutMs: 5000, intervalMs: 50, what: `${name} served after the restart` });
  assert.equal(r.answer[0]!.data, '192.0.2.30');
  assert.deepEqual((await call('GET', '/v1/records')).body.records, [{ name, ttl: 60, type: 'A', address: '192.0.2.30' }]);
});
