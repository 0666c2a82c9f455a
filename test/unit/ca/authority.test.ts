// Signing: lifetimes (default, cap, floor, the CA's own end), the certificate's fields,
// identities, join tokens and SPIFFE IDs, without a listener.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { CertificateAuthority, CsrRefused, EC_P256, parseJoinTokens } from '../../../src/ca/index.ts';
import { generateRoot } from '../../../src/ca/authority.ts';
import { parseSpiffeId, spiffeId } from '../../../src/model/identity.ts';

const ID = { trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'cart' };

async function request(san?: { type: 'url' | 'dns'; value: string }[]): Promise<string> {
  const keys = await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ keys, signingAlgorithm: EC_P256, ...(san ? { extensions: [new x509.SubjectAlternativeNameExtension(san)] } : {}) });
  return csr.toString('pem');
}

async function authority(rootYears = 10, now = new Date()): Promise<CertificateAuthority> {
  const root = await generateRoot('cluster.local', rootYears, now);
  return new CertificateAuthority({ cert: root.cert, key: root.key, chain: [], root: root.cert }, { defaultTtlSeconds: 86400, maxTtlSeconds: 7 * 86400 });
}

test('a workload certificate: empty subject, critical URI SAN, not a CA, client and server auth, signed by the root', async () => {
  const ca = await authority();
  const out = await ca.sign(await request([{ type: 'url', value: spiffeId(ID) }]), ID, { ttlSeconds: 0 });
  const leaf = new x509.X509Certificate(out.chain[0]!);
  assert.equal(leaf.subject, '');
  const san = leaf.getExtension(x509.SubjectAlternativeNameExtension)!;
  assert.equal(san.critical, true);
  assert.deepEqual(san.names.toJSON(), [{ type: 'url', value: 'spiffe://cluster.local/ns/shop/sa/cart' }]);
  assert.equal(leaf.getExtension(x509.BasicConstraintsExtension)!.ca, false);
  assert.deepEqual([...leaf.getExtension(x509.ExtendedKeyUsageExtension)!.usages], [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]);
  assert.ok(await leaf.verify({ publicKey: ca.material.cert.publicKey, signatureOnly: true }));
  assert.ok(Math.abs(leaf.notAfter.getTime() - Date.now() - 86400e3) < 5000, 'the 24 h default');
  assert.equal(await ca.peerIdentity(new Uint8Array(leaf.rawData)), 'spiffe://cluster.local/ns/shop/sa/cart');
});

test('lifetimes: capped at the maximum, at least a minute, never past the CA certificate', async () => {
  const ca = await authority();
  const life = async (ttlSeconds: number, c = ca): Promise<number> => ((await c.sign(await request(), ID, { ttlSeconds })).notAfter.getTime() - Date.now()) / 1000;
  assert.ok(Math.abs((await life(365 * 86400)) - 7 * 86400) < 5);
  assert.ok(Math.abs((await life(1)) - 60) < 5);
  const short = await authority(1 / 365); // a root that ends in a day
  assert.ok((await life(5 * 86400, short)) <= 86400 + 5);
  await assert.rejects(ca.sign(await request(), ID, { ttlSeconds: -1 }), (e: Error) => e instanceof CsrRefused && /validity_duration: -1 is not a number of seconds/.test(e.message));
});

test('a certificate from another CA proves no identity', async () => {
  const [a, b] = [await authority(), await authority()];
  const out = await a.sign(await request(), ID, { ttlSeconds: 0 });
  assert.equal(await b.peerIdentity(new x509.X509Certificate(out.chain[0]!).rawData as unknown as Uint8Array), undefined);
  assert.equal(await b.peerIdentity(new Uint8Array([1, 2, 3])), undefined);
});

test('SPIFFE IDs and join token files: what is wrong is named', () => {
  assert.deepEqual(parseSpiffeId('spiffe://cluster.local/ns/shop/sa/cart'), ID);
  for (const [uri, re] of [
    ['spiffe://cluster.local/ns/shop', /is not a workload SPIFFE ID/],
    ['spiffe://Cluster.local/ns/shop/sa/cart', /trust domain "Cluster\.local" is not a DNS name/],
    ['spiffe://cluster.local/ns/Shop/sa/cart', /namespace "Shop" is not a Kubernetes name/],
  ] as const) {
    const r = parseSpiffeId(uri);
    assert.ok('error' in r && re.test(r.error), uri);
  }
  assert.equal(parseJoinTokens('tokens:\n- token: aaaaaaaaaaaaaaaaaaaa\n  namespace: legacy\n  serviceAccount: orders\n', 'f').length, 1);
  for (const [text, re] of [
    ['tokens: {}', /expected a list under "tokens"/],
    ['tokens:\n- token: short\n  namespace: a\n  serviceAccount: b', /tokens\[0\]\.token: too short/],
    ['tokens:\n- sha256: abc\n  namespace: a\n  serviceAccount: b', /tokens\[0\]\.sha256: expected 64 hex digits/],
    ['tokens:\n- token: aaaaaaaaaaaaaaaaaaaa\n  namespace: A\n  serviceAccount: b', /tokens\[0\]\.namespace: namespace "A" is not a Kubernetes name/],
    ['tokens:\n- token: aaaaaaaaaaaaaaaaaaaa\n  namespace: a\n  serviceAccount: b\n  role: admin', /tokens\[0\]\.role: unknown field/],
    ['tokens:\n- token: aaaaaaaaaaaaaaaaaaaa\n  namespace: a\n  serviceAccount: b\n  expires: soon', /tokens\[0\]\.expires: not a time/],
    ['tokens:\n- sha256: 1234\n  namespace: a\n  serviceAccount: b', /sha256 was read as a number: quote it/],
    ['tokens:\n- token: aaaaaaaaaaaaaaaaaaaa\n  namespace: a\n  serviceAccount: b\n  addresses: []', /tokens\[0\]\.addresses: expected a non-empty list of IP addresses/],
    ['tokens:\n- token: aaaaaaaaaaaaaaaaaaaa\n  namespace: a\n  serviceAccount: b\n  addresses: [vm-1.local]', /tokens\[0\]\.addresses\[0\]: "vm-1.local" is not an IP address/],
  ] as const) {
    assert.throws(() => parseJoinTokens(text, 'f'), (e: Error) => re.test(e.message), text);
  }
});
