// The certificate authority output: a signing certificate (generated root or an operator's
// intermediate, see store.ts), the authenticators of callers, and the gRPC listener.
import { CertificateAuthority } from './authority.ts';
import { JoinTokenAuthenticator, KubeTokenAuthenticator, type Authenticator, type TokenReviewer } from './authn.ts';
import { CaServer } from './server.ts';
import { loadOrCreate } from './store.ts';
import { logger } from '../shared/log.ts';

export { CertificateAuthority, CsrRefused, EC_P256 } from './authority.ts';
export { AuthnError, JoinTokenAuthenticator, KubeTokenAuthenticator, parseJoinTokens, type TokenReviewer, type TokenReviewResult } from './authn.ts';
export { CaServer, CA_PROTO, CA_SERVICE, loadCaService } from './server.ts';
export { CA_FILES, CaStoreError, loadOrCreate } from './store.ts';

export interface CaOptions {
  readonly address: string;
  readonly dir: string;
  readonly trustDomain: string;
  readonly clusterId: string;
  readonly serverNames: readonly string[];
  readonly defaultTtlSeconds: number;
  readonly maxTtlSeconds: number;
  readonly joinTokensFile?: string;
  readonly tokenReview?: TokenReviewer;
  readonly audiences: readonly string[];
}

/**
 * Loads (or creates) the signing material and starts the listener. `identitiesByAddress`:
 * the identities join tokens bind to host addresses (a VM's SOA endpoints show them).
 */
export async function startCa(opts: CaOptions): Promise<{ server: CaServer; identitiesByAddress: () => ReadonlyMap<string, { namespace: string; serviceAccount: string }> }> {
  const { material, created } = await loadOrCreate(opts.dir, opts.trustDomain);
  const authority = new CertificateAuthority(material, { defaultTtlSeconds: opts.defaultTtlSeconds, maxTtlSeconds: opts.maxTtlSeconds });
  const authenticators: Authenticator[] = [];
  let joins: JoinTokenAuthenticator | undefined;
  if (opts.tokenReview) authenticators.push(new KubeTokenAuthenticator(opts.tokenReview, opts.audiences));
  if (opts.joinTokensFile) {
    const j = new JoinTokenAuthenticator(opts.joinTokensFile);
    await j.tokens(); // a broken file stops start-up with what is wrong
    authenticators.push(j);
    joins = j;
  }
  logger('ca').info(created ? 'CA root generated' : 'CA signing certificate loaded', { dir: opts.dir, subject: material.cert.subject, notAfter: material.cert.notAfter.toISOString(), intermediate: material.chain.length > 0 });
  const server = new CaServer({ authority, authenticators, trustDomain: opts.trustDomain, clusterId: opts.clusterId, address: opts.address, serverNames: opts.serverNames });
  await server.start();
  return { server, identitiesByAddress: () => joins?.identitiesByAddress() ?? new Map() };
}
