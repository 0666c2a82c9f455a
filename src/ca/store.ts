// Where the CA's signing certificate and key live: a directory in Istio's `cacerts` layout,
//   ca-cert.pem     the signing certificate (a root, or an operator's intermediate)
//   ca-key.pem      its private key (mode 0600)
//   cert-chain.pem  ca-cert.pem and the certificates above it, up to the root
//   root-cert.pem   the root: the trust bundle given to workloads
// An operator plugs in an intermediate by putting these four files there; an empty or
// missing directory gets a generated root (written atomically, key 0600), which later
// starts read back, so certificates already issued stay valid across restarts.
import 'reflect-metadata';
import { constants, existsSync } from 'node:fs';
import { chmod, mkdir, open, readFile, rename } from 'node:fs/promises';
import path from 'node:path';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { generateRoot, importSigningKey, type SigningMaterial } from './authority.ts';

export const CA_FILES = { cert: 'ca-cert.pem', key: 'ca-key.pem', chain: 'cert-chain.pem', root: 'root-cert.pem' } as const;

export class CaStoreError extends Error {}

/** The signing material in `dir`, generating a root for `trustDomain` when the directory holds none. */
export async function loadOrCreate(dir: string, trustDomain: string, now = new Date()): Promise<{ material: SigningMaterial; created: boolean }> {
  const has = (f: string): boolean => existsSync(path.join(dir, f));
  if (!has(CA_FILES.cert) && !has(CA_FILES.key)) {
    const root = await generateRoot(trustDomain, 10, now);
    const pem = root.cert.toString('pem');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    // The key first and the certificate last: a directory with a ca-cert.pem is complete.
    await writeAtomic(path.join(dir, CA_FILES.key), root.keyPem, 0o600);
    await writeAtomic(path.join(dir, CA_FILES.root), pem, 0o644);
    await writeAtomic(path.join(dir, CA_FILES.chain), pem, 0o644);
    await writeAtomic(path.join(dir, CA_FILES.cert), pem, 0o644);
    return { material: { cert: root.cert, key: root.key, chain: [], root: root.cert }, created: true };
  }
  return { material: await load(dir, now), created: false };
}

async function load(dir: string, now: Date): Promise<SigningMaterial> {
  const file = (f: string): string => path.join(dir, f);
  const read = async (f: string): Promise<string> => {
    try {
      return await readFile(file(f), 'utf8');
    } catch (e) {
      throw new CaStoreError(`${file(f)}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing (the cacerts layout needs ca-cert.pem, ca-key.pem, cert-chain.pem and root-cert.pem)' : (e as Error).message}`);
    }
  };
  const certs = (f: string, text: string): x509.X509Certificate[] => {
    try {
      const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
      if (blocks.length === 0) throw new Error('no -----BEGIN CERTIFICATE----- block in it');
      return blocks.map((b) => new x509.X509Certificate(b));
    } catch (e) {
      throw new CaStoreError(`${file(f)}: not PEM certificates: ${(e as Error).message}`);
    }
  };
  const [cert] = certs(CA_FILES.cert, await read(CA_FILES.cert));
  const chainFile = certs(CA_FILES.chain, await read(CA_FILES.chain));
  const [root] = certs(CA_FILES.root, await read(CA_FILES.root));
  let key: webcrypto.CryptoKey;
  try {
    key = await importSigningKey(await read(CA_FILES.key));
  } catch (e) {
    if (e instanceof CaStoreError) throw e;
    throw new CaStoreError(`${file(CA_FILES.key)}: not a usable private key: ${(e as Error).message}`);
  }
  const where = file(CA_FILES.cert);
  const bc = cert!.getExtension(x509.BasicConstraintsExtension);
  if (!bc?.ca) throw new CaStoreError(`${where}: not a CA certificate (basicConstraints CA:TRUE is missing)`);
  const ku = cert!.getExtension(x509.KeyUsagesExtension);
  if (ku && !(ku.usages & x509.KeyUsageFlags.keyCertSign)) throw new CaStoreError(`${where}: its key usage does not allow signing certificates (keyCertSign)`);
  if (cert!.notAfter <= now) throw new CaStoreError(`${where}: expired at ${cert!.notAfter.toISOString()}`);
  if (cert!.notBefore > now) throw new CaStoreError(`${where}: not valid before ${cert!.notBefore.toISOString()}`);
  if (!(await keyMatches(key, cert!))) throw new CaStoreError(`${file(CA_FILES.key)}: does not belong to ${where} (a test signature does not verify with its public key)`);
  // cert-chain.pem: ca-cert.pem and the certificates above it; root-cert.pem ends the path.
  const rootIsCert = cert!.equal(root!);
  let above = chainFile[0]?.equal(cert!) ? chainFile.slice(1) : chainFile;
  if (rootIsCert) above = [];
  else if (!above.at(-1)?.equal(root!)) above = [...above, root!];
  const links = [cert!, ...above];
  for (let i = 0; i + 1 < links.length; i++) {
    if (!(await links[i]!.verify({ publicKey: links[i + 1]!.publicKey, signatureOnly: true }).catch(() => false))) {
      throw new CaStoreError(`${file(CA_FILES.chain)}: "${links[i]!.subject}" is not signed by "${links[i + 1]!.subject}" (the next certificate, or ${CA_FILES.root})`);
    }
  }
  return { cert: cert!, key, chain: above, root: root! };
}

async function keyMatches(key: webcrypto.CryptoKey, cert: x509.X509Certificate): Promise<boolean> {
  const alg = key.algorithm.name === 'ECDSA' ? { name: 'ECDSA', hash: 'SHA-256' } : { name: key.algorithm.name };
  const data = new TextEncoder().encode('isthmus ca key check');
  const sig = await webcrypto.subtle.sign(alg, key, data);
  // A key of another type than the certificate's cannot be its key.
  const pub = await cert.publicKey.export(key.algorithm.name === 'ECDSA' ? { name: 'ECDSA', namedCurve: (key.algorithm as webcrypto.EcKeyAlgorithm).namedCurve } : { name: key.algorithm.name, hash: 'SHA-256' }, ['verify'], webcrypto as unknown as Parameters<typeof cert.publicKey.export>[2]).catch(() => undefined);
  return pub ? webcrypto.subtle.verify(alg, pub, sig, data) : false;
}

async function writeAtomic(file: string, text: string, mode: number): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, mode);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await chmod(tmp, mode);
  await rename(tmp, file);
}
