// The certificate authority: signs X.509 workload certificates (URI SAN = the caller's SPIFFE
// ID) from PKCS#10 requests. Its signing certificate is either a root it generated and
// persisted, or an operator's intermediate in Istio's `cacerts` layout (see store.ts). All
// X.509 and PKCS#10 work goes through @peculiar/x509 on WebCrypto.
import 'reflect-metadata';
import { createPrivateKey, createPublicKey, randomBytes, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { spiffeId, type WorkloadIdentity } from '../model/identity.ts';

type CryptoKey = webcrypto.CryptoKey;

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const RSA_SHA256 = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as const;

/** A request the CA refuses, naming what is wrong; `code` is the gRPC status the server answers with. */
export class CsrRefused extends Error {
  readonly code: 'INVALID_ARGUMENT' | 'PERMISSION_DENIED';
  constructor(code: 'INVALID_ARGUMENT' | 'PERMISSION_DENIED', message: string) {
    super(message);
    this.code = code;
  }
}

export interface SigningMaterial {
  /** The certificate that signs (a root, or an operator's intermediate). */
  readonly cert: x509.X509Certificate;
  readonly key: CryptoKey;
  /** From `cert`'s issuer up to and including the root (empty when `cert` is the root). */
  readonly chain: readonly x509.X509Certificate[];
  readonly root: x509.X509Certificate;
}

export interface SignOptions {
  /** Requested lifetime in seconds (0: the default). */
  readonly ttlSeconds: number;
}

export interface AuthorityOptions {
  readonly defaultTtlSeconds: number;
  readonly maxTtlSeconds: number;
  /** Clock, for tests. */
  readonly now?: () => Date;
}

const MIN_TTL_SECONDS = 60;
// A certificate is valid a little before it was issued: clocks of caller and CA differ.
const BACKDATE_MS = 60_000;

export class CertificateAuthority {
  readonly material: SigningMaterial;
  private readonly opts: AuthorityOptions;
  private readonly signing: typeof EC_P256 | typeof RSA_SHA256;

  constructor(material: SigningMaterial, opts: AuthorityOptions) {
    this.material = material;
    this.opts = opts;
    this.signing = material.key.algorithm.name === 'ECDSA' ? EC_P256 : RSA_SHA256;
  }

  /** PEM of the trust bundle: the root certificate. */
  get rootPem(): string {
    return this.material.root.toString('pem');
  }

  /**
   * Signs `csrPem` for `identity`: the request must be a valid PKCS#10 request signed by its
   * own key (proof of possession), with an ECDSA P-256/P-384 or RSA ≥ 2048 key, and name no
   * identity but the caller's (no DNS names, IPs or e-mail addresses). Returns the chain,
   * leaf first, root last, as Istio's CA answers.
   */
  async sign(csrPem: string, identity: WorkloadIdentity, opts: SignOptions): Promise<{ chain: string[]; notAfter: Date; spiffe: string }> {
    const csr = parseCsr(csrPem);
    if (!(await csr.verify().catch(() => false))) throw new CsrRefused('INVALID_ARGUMENT', 'csr: its signature does not verify with its own public key');
    checkKey(csr.publicKey.rawData);
    const want = spiffeId(identity);
    const san = csr.extensions.find((e) => e instanceof x509.SubjectAlternativeNameExtension) as x509.SubjectAlternativeNameExtension | undefined;
    for (const n of san?.names.toJSON() ?? []) {
      if (n.type !== 'url') throw new CsrRefused('PERMISSION_DENIED', `csr: subject alternative name ${n.type}:${n.value} is not allowed: workload certificates name only the caller's identity ${want}`);
      if (n.value !== want) throw new CsrRefused('PERMISSION_DENIED', `csr: subject alternative name ${n.value} is not the caller's identity ${want}`);
    }
    const requested = opts.ttlSeconds;
    if (!Number.isFinite(requested) || requested < 0) throw new CsrRefused('INVALID_ARGUMENT', `validity_duration: ${requested} is not a number of seconds`);
    const ttl = requested === 0 ? this.opts.defaultTtlSeconds : Math.max(MIN_TTL_SECONDS, Math.min(requested, this.opts.maxTtlSeconds));
    const now = (this.opts.now ?? (() => new Date()))();
    const caEnd = this.material.cert.notAfter.getTime();
    const notAfter = new Date(Math.min(now.getTime() + ttl * 1000, caEnd));
    if (notAfter.getTime() <= now.getTime()) throw new CsrRefused('PERMISSION_DENIED', `the CA certificate expired at ${this.material.cert.notAfter.toISOString()}`);
    const leaf = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: '',
      issuer: this.material.cert.subject,
      notBefore: new Date(now.getTime() - BACKDATE_MS),
      notAfter,
      signingAlgorithm: this.signing,
      publicKey: csr.publicKey,
      signingKey: this.material.key,
      extensions: [
        // The subject is empty, so the SAN is critical (RFC 5280 4.2.1.6).
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: want }], true),
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
        await x509.AuthorityKeyIdentifierExtension.create(this.material.cert),
      ],
    });
    const chain = [leaf, ...(this.material.chain.length ? [this.material.cert, ...this.material.chain] : [this.material.cert])];
    return { chain: chain.map((c) => c.toString('pem')), notAfter, spiffe: want };
  }

  /** A serving certificate for the CA's own TLS listener (DNS and IP SANs), with a fresh key kept in memory. */
  async servingCertificate(names: readonly string[], ips: readonly string[], days: number): Promise<{ certChainPem: string; keyPem: string }> {
    const keys = await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']);
    const now = new Date();
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: `CN=${names[0] ?? 'isthmus'}`,
      issuer: this.material.cert.subject,
      notBefore: new Date(now.getTime() - BACKDATE_MS),
      notAfter: new Date(Math.min(now.getTime() + days * 86400_000, this.material.cert.notAfter.getTime())),
      signingAlgorithm: this.signing,
      publicKey: keys.publicKey,
      signingKey: this.material.key,
      extensions: [
        new x509.SubjectAlternativeNameExtension([...names.map((value) => ({ type: 'dns' as const, value })), ...ips.map((value) => ({ type: 'ip' as const, value }))]),
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        await x509.AuthorityKeyIdentifierExtension.create(this.material.cert),
      ],
    });
    const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
    const chain = [cert, ...(this.material.chain.length ? [this.material.cert, ...this.material.chain] : [this.material.cert])];
    return { certChainPem: chain.map((c) => c.toString('pem')).join('\n'), keyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY') };
  }

  /**
   * The identity a client certificate proves (renewal over mTLS): issued by this CA's
   * signing certificate, within its validity, naming one workload SPIFFE ID. Undefined when
   * it proves none.
   */
  async peerIdentity(der: Uint8Array): Promise<string | undefined> {
    let cert: x509.X509Certificate;
    try {
      cert = new x509.X509Certificate(der);
    } catch {
      return undefined;
    }
    const now = (this.opts.now ?? (() => new Date()))();
    if (cert.notBefore > now || cert.notAfter < now) return undefined;
    if (!(await cert.verify({ publicKey: this.material.cert.publicKey, signatureOnly: true }).catch(() => false))) return undefined;
    const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
    const uris = (san?.names.toJSON() ?? []).filter((n) => n.type === 'url').map((n) => n.value);
    return uris.length === 1 ? uris[0] : undefined;
  }
}

function parseCsr(pem: string): x509.Pkcs10CertificateRequest {
  if (typeof pem !== 'string' || !pem.includes('-----BEGIN CERTIFICATE REQUEST-----')) throw new CsrRefused('INVALID_ARGUMENT', 'csr: not a PEM certificate request (-----BEGIN CERTIFICATE REQUEST-----)');
  try {
    return new x509.Pkcs10CertificateRequest(pem);
  } catch (e) {
    throw new CsrRefused('INVALID_ARGUMENT', `csr: not a PKCS#10 certificate request: ${(e as Error).message}`);
  }
}

function checkKey(spki: ArrayBuffer): void {
  let key;
  try {
    key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  } catch (e) {
    throw new CsrRefused('INVALID_ARGUMENT', `csr: its public key cannot be read: ${(e as Error).message}`);
  }
  const d = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'ec' && (d.namedCurve === 'prime256v1' || d.namedCurve === 'secp384r1')) return;
  if (key.asymmetricKeyType === 'rsa') {
    if ((d.modulusLength ?? 0) >= 2048) return;
    throw new CsrRefused('INVALID_ARGUMENT', `csr: an RSA key of ${d.modulusLength} bits is too short (2048 or more)`);
  }
  throw new CsrRefused('INVALID_ARGUMENT', `csr: a ${key.asymmetricKeyType}${d.namedCurve ? ` ${d.namedCurve}` : ''} key is not accepted (ECDSA P-256 or P-384, or RSA of 2048 bits or more)`);
}

/** A positive 128-bit serial number, hex. */
function serial(): string {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f || 0x01;
  return b.toString('hex');
}

/** A private key in PEM (PKCS#8, PKCS#1 RSA or SEC1 EC) as a WebCrypto signing key. */
export async function importSigningKey(pem: string): Promise<CryptoKey> {
  const key = createPrivateKey(pem);
  const der = key.export({ type: 'pkcs8', format: 'der' });
  if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    const namedCurve = curve === 'prime256v1' ? 'P-256' : curve === 'secp384r1' ? 'P-384' : undefined;
    if (!namedCurve) throw new Error(`EC curve ${curve} is not supported (P-256 or P-384)`);
    return webcrypto.subtle.importKey('pkcs8', der, { name: 'ECDSA', namedCurve }, true, ['sign']) as Promise<CryptoKey>;
  }
  if (key.asymmetricKeyType === 'rsa') return webcrypto.subtle.importKey('pkcs8', der, RSA_SHA256, true, ['sign']) as Promise<CryptoKey>;
  throw new Error(`key type ${key.asymmetricKeyType} is not supported (EC or RSA)`);
}

/** A self-signed root for `trustDomain`: ECDSA P-256, `years` long. */
export async function generateRoot(trustDomain: string, years: number, now = new Date()): Promise<{ cert: x509.X509Certificate; key: CryptoKey; keyPem: string }> {
  const keys = await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `O=${trustDomain}`,
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(now.getTime() + years * 365 * 86400_000),
    keys,
    signingAlgorithm: EC_P256,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { cert, key: keys.privateKey, keyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY') };
}
