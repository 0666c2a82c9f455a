// The CA's signing material: a generated root kept across loads, an operator's intermediate
// in Istio's cacerts layout made by openssl, and broken directories named by file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CertificateAuthority, CaStoreError, loadOrCreate } from '../../../src/ca/index.ts';
import { generateRoot } from '../../../src/ca/authority.ts';

const tmp = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'isthmus-ca-'));
const openssl = (cwd: string, ...args: string[]): string => execFileSync('openssl', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const ID = { trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'cart' };

/** An operator's root and intermediate, as Istio's tools/certs make them (RSA here, to cover it). */
function cacerts(dir: string): void {
  fs.writeFileSync(path.join(dir, 'ext.cnf'), '[ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\n');
  openssl(dir, 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'root-key.pem', '-out', 'root-cert.pem', '-days', '30', '-subj', '/O=Acme/CN=Acme Root', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  openssl(dir, 'req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca-key.pem', '-out', 'ca.csr', '-subj', '/O=Acme/CN=Acme Intermediate east');
  openssl(dir, 'x509', '-req', '-in', 'ca.csr', '-CA', 'root-cert.pem', '-CAkey', 'root-key.pem', '-CAcreateserial', '-out', 'ca-cert.pem', '-days', '10', '-extfile', 'ext.cnf', '-extensions', 'ca');
  fs.writeFileSync(path.join(dir, 'cert-chain.pem'), fs.readFileSync(path.join(dir, 'ca-cert.pem'), 'utf8') + fs.readFileSync(path.join(dir, 'root-cert.pem'), 'utf8'));
  for (const f of ['root-key.pem', 'ca.csr', 'ext.cnf', 'root-cert.srl']) fs.rmSync(path.join(dir, f), { force: true });
}

function csrPem(dir: string): string {
  openssl(dir, 'req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'w.key', '-subj', '/O=w', '-out', 'w.csr');
  return fs.readFileSync(path.join(dir, 'w.csr'), 'utf8');
}

test('an empty directory gets a root (key 0600), and the next load reads the same one back', async () => {
  const dir = path.join(tmp(), 'ca');
  const first = await loadOrCreate(dir, 'cluster.local');
  assert.equal(first.created, true);
  assert.equal(first.material.cert.subject, 'O=cluster.local');
  assert.equal(fs.statSync(path.join(dir, 'ca-key.pem')).mode & 0o777, 0o600);
  const again = await loadOrCreate(dir, 'cluster.local');
  assert.equal(again.created, false);
  assert.ok(again.material.cert.equal(first.material.cert));
  assert.deepEqual(again.material.chain, []);
});

test('an operator\'s intermediate (cacerts layout) signs; the chain goes leaf, intermediate, root and openssl verifies it', async () => {
  const dir = tmp();
  cacerts(dir);
  const { material, created } = await loadOrCreate(dir, 'cluster.local');
  assert.equal(created, false);
  assert.equal(material.cert.subject, 'O=Acme, CN=Acme Intermediate east');
  const ca = new CertificateAuthority(material, { defaultTtlSeconds: 86400, maxTtlSeconds: 7 * 86400 });
  // Asked for a year: capped by --ca-max-cert-ttl, then by the intermediate's own end.
  const out = await ca.sign(csrPem(dir), ID, { ttlSeconds: 365 * 86400 });
  assert.equal(out.chain.length, 3);
  assert.ok(out.notAfter.getTime() <= Date.now() + 7 * 86400e3 + 1000);
  fs.writeFileSync(path.join(dir, 'leaf.pem'), out.chain[0]!);
  fs.writeFileSync(path.join(dir, 'mid.pem'), out.chain[1]!);
  assert.match(openssl(dir, 'verify', '-CAfile', 'root-cert.pem', '-untrusted', 'mid.pem', 'leaf.pem'), /leaf\.pem: OK/);
  assert.equal(out.chain[2]!.trim(), fs.readFileSync(path.join(dir, 'root-cert.pem'), 'utf8').trim());
});

test('broken directories are named by file and reason', async () => {
  const cases: [string, (dir: string) => void | Promise<void>, RegExp][] = [
    ['a key without its certificate files', (d) => fs.writeFileSync(path.join(d, 'ca-key.pem'), 'x'), /ca-cert\.pem: missing \(the cacerts layout needs/],
    ['a key that belongs to another certificate', async (d) => {
      cacerts(d);
      const other = await generateRoot('x.local', 1);
      fs.writeFileSync(path.join(d, 'ca-key.pem'), other.keyPem);
    }, /ca-key\.pem: does not belong to .*ca-cert\.pem/],
    ['a leaf certificate as ca-cert.pem', (d) => {
      cacerts(d);
      openssl(d, 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca-key.pem', '-out', 'ca-cert.pem', '-days', '1', '-subj', '/CN=leaf', '-addext', 'basicConstraints=critical,CA:FALSE');
    }, /ca-cert\.pem: not a CA certificate/],
    ['a chain that does not lead to the root', async (d) => {
      cacerts(d);
      fs.writeFileSync(path.join(d, 'root-cert.pem'), (await generateRoot('other.local', 1)).cert.toString('pem'));
    }, /cert-chain\.pem: ".*Acme Root" is not signed by "O=other\.local"|"O=Acme, CN=Acme Root" is not signed/],
    ['a certificate file that is not PEM', (d) => {
      cacerts(d);
      fs.writeFileSync(path.join(d, 'cert-chain.pem'), 'hello');
    }, /cert-chain\.pem: not PEM certificates: no -----BEGIN CERTIFICATE----- block/],
    ['a key that is not a key', (d) => {
      cacerts(d);
      fs.writeFileSync(path.join(d, 'ca-key.pem'), '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n');
    }, /ca-key\.pem: not a usable private key/],
  ];
  for (const [what, make, re] of cases) {
    const dir = tmp();
    await make(dir);
    await assert.rejects(loadOrCreate(dir, 'cluster.local'), (e: Error) => e instanceof CaStoreError && re.test(e.message), what);
  }
});
