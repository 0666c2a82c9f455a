// The CA of `isthmus serve` as its callers use it: istio.v1.auth.IstioCertificateService
// over TLS on --ca-address, CSRs made by openssl (the key never leaves the caller), a VM's
// join token, a Kubernetes ServiceAccount token checked by TokenReview against a real
// kube-apiserver, renewal with the issued certificate, the root kept across a restart, and
// bad requests (other identities, DNS names, garbage, impersonation) refused by name.
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { loadCaService } from '../../src/ca/index.ts';
import { cli, startIsthmus, type Isthmus } from '../helpers/isthmus.ts';
import { type KubeApiServer, startKubeApiServer } from '../helpers/kube.ts';
import { freePort } from '../helpers/ports.ts';
import { assertNoLeftovers, dumpLogsOnFailure, scratchDir, stopAll } from '../helpers/processes.ts';

const VM_TOKEN = randomBytes(24).toString('hex');
const DB_TOKEN = randomBytes(24).toString('hex');
const LOCAL_TOKEN = randomBytes(24).toString('hex');
const VM_ID = 'spiffe://cluster.local/ns/legacy/sa/orders';
let dir: string;
let caDir: string;
let caPort: number;
let isthmus: Isthmus;
let kube: KubeApiServer;

interface Answer {
  chain?: string[];
  code?: grpc.status;
  details?: string;
}

const Client = grpc.makeGenericClientConstructor(loadCaService(), 'IstioCertificateService');

/** One CreateCertificate call; `cert`/`key` for mTLS (renewal). */
function createCertificate(req: Record<string, unknown>, opts: { token?: string; cert?: string; key?: string; root?: string } = {}): Promise<Answer> {
  const root = Buffer.from(opts.root ?? fs.readFileSync(path.join(caDir, 'root-cert.pem'), 'utf8'));
  const creds = grpc.credentials.createSsl(root, opts.key ? Buffer.from(opts.key) : null, opts.cert ? Buffer.from(opts.cert) : null);
  const client = new Client(`127.0.0.1:${caPort}`, creds);
  const md = new grpc.Metadata();
  if (opts.token) md.set('authorization', `Bearer ${opts.token}`);
  return new Promise((resolve) => {
    (client as unknown as Record<string, (r: unknown, m: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, v?: { cert_chain: string[] }) => void) => void>).CreateCertificate!(req, md, { deadline: Date.now() + 10_000 }, (err, res) => {
      client.close();
      resolve(err ? { code: err.code, details: err.details } : { chain: res!.cert_chain });
    });
  });
}

/** A P-256 key and a CSR naming `san` (openssl, as an agent on the host would). */
function csr(san?: string, keyOpts = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']): { key: string; csr: string } {
  const d = fs.mkdtempSync(path.join(dir, 'csr-'));
  execFileSync('openssl', ['req', '-new', ...keyOpts, '-nodes', '-keyout', path.join(d, 'key.pem'), '-subj', '/O=workload', ...(san ? ['-addext', `subjectAltName=${san}`] : []), '-out', path.join(d, 'csr.pem')], { stdio: 'pipe' });
  return { key: fs.readFileSync(path.join(d, 'key.pem'), 'utf8'), csr: fs.readFileSync(path.join(d, 'csr.pem'), 'utf8') };
}

/** `openssl x509 -noout …` on the first certificate of a chain. */
function x509(chain: string[], ...args: string[]): string {
  return execFileSync('openssl', ['x509', '-noout', ...args], { input: chain[0], encoding: 'utf8' });
}

/** openssl verify of the leaf against root-cert.pem with the chain's other certificates as intermediates. */
function verify(chain: string[]): string {
  const d = fs.mkdtempSync(path.join(dir, 'verify-'));
  fs.writeFileSync(path.join(d, 'leaf.pem'), chain[0]!);
  fs.writeFileSync(path.join(d, 'untrusted.pem'), chain.slice(1).join('\n'));
  return execFileSync('openssl', ['verify', '-CAfile', path.join(caDir, 'root-cert.pem'), '-untrusted', path.join(d, 'untrusted.pem'), '-purpose', 'sslclient', path.join(d, 'leaf.pem')], { encoding: 'utf8' }).trim();
}

before(async () => {
  dir = scratchDir('ca');
  caDir = path.join(dir, 'ca');
  fs.writeFileSync(path.join(dir, 'tokens.yaml'), `tokens:\n- token: ${VM_TOKEN}\n  namespace: legacy\n  serviceAccount: orders\n- sha256: '${'0'.repeat(64)}'\n  namespace: legacy\n  serviceAccount: expired\n  expires: 2020-01-01T00:00:00Z\n- { token: ${DB_TOKEN}, namespace: legacy, serviceAccount: db, addresses: [10.9.0.1] }\n- { token: ${LOCAL_TOKEN}, namespace: legacy, serviceAccount: local, addresses: ['127.0.0.1'] }\n`);
  kube = await startKubeApiServer({ name: 'kube-apiserver-ca' });
  await kube.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } });
  await kube.create({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'cart', namespace: 'shop' } });
  caPort = await freePort();
  const config = scratchDir('ca-config');
  fs.writeFileSync(path.join(config, 'orders.yaml'), [
    'apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: { name: orders, namespace: legacy }\nspec:\n  hosts: [orders.legacy.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{ number: 20880, name: tcp, protocol: TCP }]\n  workloadSelector: { labels: { app: orders } }\n',
    'apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: { name: db, namespace: legacy }\nspec:\n  hosts: [db.legacy.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{ number: 5432, name: tcp, protocol: TCP }]\n  endpoints: [{ address: 10.9.0.1 }]\n',
    'apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: { name: orders-vm-1, namespace: legacy }\nspec: { address: 10.9.0.2, labels: { app: orders }, serviceAccount: orders }\n',
  ].join('---\n'));
  isthmus = await startIsthmus({
    name: 'isthmus-ca',
    registries: [`file://${config}`],
    args: ['--ca-address', `127.0.0.1:${caPort}`, '--ca-dir', caDir, '--ca-join-tokens', path.join(dir, 'tokens.yaml'), '--ca-token-review', `kube://admin?kubeconfig=${encodeURIComponent(kube.kubeconfigPath)}`],
  });
});

afterEach(dumpLogsOnFailure);
after(async () => {
  await stopAll(10_000);
  assertNoLeftovers();
});

describe('isthmus CA', () => {
  test('a VM with a join token gets a 24 h ECDSA P-256 certificate for its SPIFFE ID, verified by openssl against the root', async () => {
    const { csr: pem } = csr(`URI:${VM_ID}`);
    const a = await createCertificate({ csr: pem }, { token: VM_TOKEN });
    assert.equal(a.code, undefined, a.details);
    assert.equal(a.chain!.length, 2, 'leaf and root');
    assert.equal(a.chain![1]!.trim(), fs.readFileSync(path.join(caDir, 'root-cert.pem'), 'utf8').trim());
    assert.match(verify(a.chain!), /: OK$/);
    assert.match(x509(a.chain!, '-ext', 'subjectAltName'), new RegExp(`critical\\s+URI:${VM_ID.replace(/[/.]/g, '\\$&')}\\s*$`));
    assert.match(x509(a.chain!, '-text'), /ASN1 OID: prime256v1/);
    const end = new Date(x509(a.chain!, '-enddate').replace('notAfter=', '').trim()).getTime();
    assert.ok(Math.abs(end - (Date.now() + 24 * 3600e3)) < 120e3, `expires ${new Date(end).toISOString()}`);
    // The key never left the caller: the CA's directory holds only its own four files.
    assert.deepEqual(fs.readdirSync(caDir).sort(), ['ca-cert.pem', 'ca-key.pem', 'cert-chain.pem', 'root-cert.pem']);
    assert.equal(fs.statSync(path.join(caDir, 'ca-key.pem')).mode & 0o777, 0o600);
  });

  test('a pod\'s ServiceAccount token is checked by TokenReview on the real API server; a token for another audience is refused', async () => {
    const token = await kube.serviceAccountToken('shop', 'cart', ['istio-ca']);
    const a = await createCertificate({ csr: csr().csr, validity_duration: 3600 }, { token });
    assert.equal(a.code, undefined, a.details);
    assert.match(x509(a.chain!, '-ext', 'subjectAltName'), /URI:spiffe:\/\/cluster\.local\/ns\/shop\/sa\/cart/);
    const end = new Date(x509(a.chain!, '-enddate').replace('notAfter=', '').trim()).getTime();
    assert.ok(Math.abs(end - (Date.now() + 3600e3)) < 120e3, 'the requested hour');
    const other = await kube.serviceAccountToken('shop', 'cart');
    const b = await createCertificate({ csr: csr().csr }, { token: other });
    assert.equal(b.code, grpc.status.UNAUTHENTICATED);
    assert.match(b.details!, /the Kubernetes API server did not authenticate the token/);
  });

  test('renewal: the issued certificate (mTLS, no token) proves the same identity', async () => {
    const first = csr(`URI:${VM_ID}`);
    const a = await createCertificate({ csr: first.csr }, { token: VM_TOKEN });
    const again = await createCertificate({ csr: csr(`URI:${VM_ID}`).csr }, { cert: a.chain!.join('\n'), key: first.key });
    assert.equal(again.code, undefined, again.details);
    assert.match(x509(again.chain!, '-ext', 'subjectAltName'), /URI:spiffe:\/\/cluster\.local\/ns\/legacy\/sa\/orders/);
    const stolen = await createCertificate({ csr: csr('URI:spiffe://cluster.local/ns/legacy/sa/admin').csr }, { cert: a.chain!.join('\n'), key: first.key });
    assert.equal(stolen.code, grpc.status.PERMISSION_DENIED);
  });

  test('what is wrong is named: no credentials, unknown or expired token, other identity, DNS name, garbage, weak key, impersonation', async () => {
    const cases: [string, Record<string, unknown>, { token?: string }, grpc.status, RegExp][] = [
      ['no credentials', { csr: csr().csr }, {}, grpc.status.UNAUTHENTICATED, /no credentials: send "authorization: Bearer <token>"/],
      ['unknown token', { csr: csr().csr }, { token: 'x'.repeat(40) }, grpc.status.UNAUTHENTICATED, /the token is not valid \(tried: kubernetes, join-token\)/],
      ['another identity', { csr: csr('URI:spiffe://cluster.local/ns/shop/sa/cart').csr }, { token: VM_TOKEN }, grpc.status.PERMISSION_DENIED, /subject alternative name spiffe:\/\/cluster\.local\/ns\/shop\/sa\/cart is not the caller's identity spiffe:\/\/cluster\.local\/ns\/legacy\/sa\/orders/],
      ['a DNS name', { csr: csr('DNS:orders.legacy.svc').csr }, { token: VM_TOKEN }, grpc.status.PERMISSION_DENIED, /subject alternative name dns:orders\.legacy\.svc is not allowed/],
      ['garbage', { csr: 'hello' }, { token: VM_TOKEN }, grpc.status.INVALID_ARGUMENT, /csr: not a PEM certificate request/],
      ['a broken request', { csr: '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n' }, { token: VM_TOKEN }, grpc.status.INVALID_ARGUMENT, /csr: not a PKCS#10 certificate request/],
      ['a 1024-bit RSA key', { csr: csr(undefined, ['-newkey', 'rsa:1024']).csr }, { token: VM_TOKEN }, grpc.status.INVALID_ARGUMENT, /an RSA key of 1024 bits is too short/],
      ['impersonation', { csr: csr().csr, metadata: { fields: { ImpersonatedIdentity: { stringValue: 'spiffe://cluster.local/ns/shop/sa/cart' } } } }, { token: VM_TOKEN }, grpc.status.PERMISSION_DENIED, /metadata\.ImpersonatedIdentity: this CA does not sign for another identity/],
      ['another cluster', { csr: csr().csr, metadata: { fields: { ClusterID: { stringValue: 'east' } } } }, { token: VM_TOKEN }, grpc.status.PERMISSION_DENIED, /metadata\.ClusterID: "east" is not this CA's cluster "Kubernetes"/],
    ];
    for (const [what, req, opts, code, re] of cases) {
      const a = await createCertificate(req, opts);
      assert.equal(a.code, code, `${what}: ${a.details}`);
      assert.match(a.details!, re, what);
    }
    assert.ok((await isthmus.metric('isthmus_ca_requests_total', { result: 'denied' })) >= 3);
  });

  test('fuzzed CSRs are refused without disturbing the CA', async () => {
    const good = csr(`URI:${VM_ID}`).csr;
    const body = good.split('\n').filter((l) => l && !l.startsWith('-----')).join('');
    const der = Buffer.from(body, 'base64');
    for (let i = 0; i < 150; i++) {
      const m = Buffer.from(der);
      for (let k = 0; k < 1 + (i % 5); k++) m[Math.floor(Math.random() * m.length)] = Math.floor(Math.random() * 256);
      const cut = i % 3 === 0 ? m.subarray(0, Math.floor(Math.random() * m.length)) : m;
      const pem = `-----BEGIN CERTIFICATE REQUEST-----\n${cut.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END CERTIFICATE REQUEST-----\n`;
      const a = await createCertificate({ csr: pem }, { token: VM_TOKEN });
      if (a.code === undefined) continue; // a flip in a spot nothing checks (e.g. the subject) can still be a valid request
      assert.ok([grpc.status.INVALID_ARGUMENT, grpc.status.PERMISSION_DENIED].includes(a.code), `${a.code}: ${a.details}`);
    }
    const after = await createCertificate({ csr: good }, { token: VM_TOKEN });
    assert.equal(after.code, undefined, after.details);
  });

  test('registryz shows each instance\'s SPIFFE ID: the WorkloadEntry\'s service account, or the join token bound to the host\'s address', async () => {
    const z = (await isthmus.registryz()) as { instances: { address: string; identity: string | null }[] };
    const ids = Object.fromEntries(z.instances.map((i) => [i.address, i.identity]));
    assert.deepEqual(ids, { '10.9.0.1': 'spiffe://cluster.local/ns/legacy/sa/db', '10.9.0.2': VM_ID });
  });

  test('a join token bound to addresses is taken from those addresses only', async () => {
    const ok = await createCertificate({ csr: csr().csr }, { token: LOCAL_TOKEN });
    assert.equal(ok.code, undefined, ok.details);
    const elsewhere = await createCertificate({ csr: csr().csr }, { token: DB_TOKEN });
    assert.equal(elsewhere.code, grpc.status.UNAUTHENTICATED);
    assert.match(elsewhere.details!, /the join token of legacy\/db is for 10\.9\.0\.1; this request comes from 127\.0\.0\.1/);
  });

  test('isthmus ca init writes a root in the cacerts layout that serve then signs under, and never overwrites one', async () => {
    const d = path.join(scratchDir('ca-init'), 'cacerts');
    assert.match(await cli(['ca', 'init', '--dir', d, '--trust-domain', 'acme.internal']), /wrote a CA root \(O=acme\.internal, valid until/);
    assert.deepEqual(fs.readdirSync(d).sort(), ['ca-cert.pem', 'ca-key.pem', 'cert-chain.pem', 'root-cert.pem']);
    await assert.rejects(cli(['ca', 'init', '--dir', d]), /already holds a CA \(ca-cert\.pem or ca-key\.pem\); not overwritten/);
    assert.match(await cli(['ca', '--help']), /Usage: isthmus ca init --dir DIR/);
  });

  test('after a restart the CA signs with the same root: certificates issued before still verify', async () => {
    const before = await createCertificate({ csr: csr(`URI:${VM_ID}`).csr }, { token: VM_TOKEN });
    const root = fs.readFileSync(path.join(caDir, 'root-cert.pem'), 'utf8');
    await isthmus.restart();
    assert.equal(fs.readFileSync(path.join(caDir, 'root-cert.pem'), 'utf8'), root);
    const later = await createCertificate({ csr: csr(`URI:${VM_ID}`).csr }, { token: VM_TOKEN, root });
    assert.equal(later.code, undefined, later.details);
    assert.match(verify(before.chain!), /: OK$/);
    assert.match(verify(later.chain!), /: OK$/);
  });
});
