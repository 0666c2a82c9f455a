// `isthmus serve` with its DNS outputs wired as an operator would: the zone written to etcd
// for CoreDNS (--dns-store), VIPs shared through etcd (--vip-store etcd://), and the HTTPS
// records API. CoreDNS and the built-in responder give the same answers.
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { startCoreDns, type CoreDns } from '../helpers/coredns.ts';
import { kdig } from '../helpers/dns.ts';
import { startEtcd, type EtcdServer } from '../helpers/etcd.ts';
import { ManifestDir, startIsthmus } from '../helpers/isthmus.ts';
import { freePort } from '../helpers/ports.ts';
import { assertNoLeftovers, dumpLogsOnFailure, runCommand, scratchDir, stopAll } from '../helpers/processes.ts';
import { waitUntil } from '../helpers/wait.ts';

const TOKEN = 'serve-test-token-0123456789';
const manifests = new ManifestDir();
let etcd: EtcdServer;
let coredns: CoreDns;

let dnsPort: number;
let apiPort: number;
let ca: Buffer;

before(async () => {
  const dir = scratchDir('serve-coredns');
  const r = await runCommand('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
    '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'),
  ], { timeoutMs: 15_000 });
  assert.equal(r.code, 0, r.stderr);
  ca = fs.readFileSync(path.join(dir, 'cert.pem'));
  fs.writeFileSync(path.join(dir, 'token'), `${TOKEN}\n`);
  etcd = await startEtcd({ name: 'etcd-serve-dns' });
  coredns = await startCoreDns({ etcd: etcd.endpoint });
  manifests.write('pay.yaml', {
    apiVersion: 'networking.istio.io/v1',
    kind: 'ServiceEntry',
    metadata: { name: 'pay' },
    spec: { hosts: ['pay.rpc.cluster.local'], location: 'MESH_INTERNAL', resolution: 'STATIC', ports: [{ number: 8080, name: 'http', protocol: 'HTTP' }], endpoints: [{ address: '10.1.2.3' }] },
  });
  dnsPort = await freePort();
  apiPort = await freePort();
  await startIsthmus({
    registries: [manifests.url],
    debounceQuietMs: 50,
    args: [
      '--dns-listen', `127.0.0.1:${dnsPort}`,
      '--dns-store', `etcd://${etcd.endpoint}/skydns`,
      '--vip-store', `etcd://${etcd.endpoint}/isthmus/vips`,
      '--records-api', `127.0.0.1:${apiPort}`,
      '--records-token-file', path.join(dir, 'token'),
      '--tls-cert', path.join(dir, 'cert.pem'),
      '--tls-key', path.join(dir, 'key.pem'),
    ],
  });
});

afterEach(dumpLogsOnFailure);
after(async () => {
  await stopAll();
  assertNoLeftovers();
});

function put(body: unknown, token = TOKEN): Promise<number> {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const req = https.request(
      { host: '127.0.0.1', port: apiPort, path: '/v1/records', method: 'PUT', ca, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

test('CoreDNS reading etcd answers the same VIP as the built-in responder', async () => {
  const builtIn = await waitUntil(() => kdig(dnsPort, 'pay.rpc.cluster.local', 'A'), (r) => r.answer.length === 1, { timeoutMs: 15_000, what: 'A from the built-in responder' });
  const fromCoreDns = await waitUntil(() => kdig(coredns.port, 'pay.rpc.cluster.local', 'A'), (r) => r.answer.length === 1, { timeoutMs: 15_000, what: 'A from CoreDNS via etcd' });
  assert.equal(fromCoreDns.answer[0]!.data, builtIn.answer[0]!.data);
  assert.match(builtIn.answer[0]!.data, /^240\.240\./);
  // The VIP table lives in etcd, where a second replica would find it.
  const table = await etcd.client().get('/isthmus/vips').string();
  assert.ok(table?.includes('pay.rpc.cluster.local'), table ?? '(no table)');
});

test('the records API takes a manual record over HTTPS with the token, and refuses a wrong token', async () => {
  assert.equal(await put({ name: 'legacy-gw.rpc.cluster.local', type: 'A', ttl: 60, address: '10.9.9.9' }, 'wrong-token-wrong-token'), 401);
  const status = await put({ name: 'legacy-gw.rpc.cluster.local', type: 'A', ttl: 60, address: '10.9.9.9' });
  assert.ok(status >= 200 && status < 300, `PUT answered ${status}`);
  const a = await waitUntil(() => kdig(dnsPort, 'legacy-gw.rpc.cluster.local', 'A'), (r) => r.answer.length === 1, { timeoutMs: 10_000, what: 'the manual record on the built-in responder' });
  assert.equal(a.answer[0]!.data, '10.9.9.9');
  const viaCoreDns = await waitUntil(() => kdig(coredns.port, 'legacy-gw.rpc.cluster.local', 'A'), (r) => r.answer.length === 1, { timeoutMs: 10_000, what: 'the manual record in CoreDNS' });
  assert.equal(viaCoreDns.answer[0]!.data, '10.9.9.9');
});
