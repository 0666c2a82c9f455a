// Who is asking for a certificate. A caller proves an identity with a bearer token (a
// Kubernetes ServiceAccount token, checked by TokenReview against the API server, or a join
// token given to a VM's agent) or, to renew, with a certificate this CA issued (mTLS).
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { isIP } from 'node:net';
import { parse } from 'yaml';
import { identityNameProblem, type WorkloadIdentity } from '../model/identity.ts';

/** Why a caller is not authenticated: the message the CA answers with (UNAUTHENTICATED). */
export class AuthnError extends Error {}

/** The outcome of a Kubernetes TokenReview. */
export interface TokenReviewResult {
  readonly authenticated: boolean;
  /** `system:serviceaccount:<namespace>:<name>` for a ServiceAccount token. */
  readonly username?: string;
  readonly error?: string;
}

/** Asks the API server about a token (authentication.k8s.io/v1 TokenReview); the composer supplies it. */
export type TokenReviewer = (token: string, audiences: readonly string[]) => Promise<TokenReviewResult>;

/** A bearer token → the identity it proves, or undefined when this kind of token does not apply. */
export interface Authenticator {
  readonly kind: string;
  /** `peer`: the caller's IP address. */
  authenticate(token: string, trustDomain: string, peer?: string): Promise<WorkloadIdentity | undefined>;
}

/** ServiceAccount tokens (JWTs), reviewed by the API server. */
export class KubeTokenAuthenticator implements Authenticator {
  readonly kind = 'kubernetes';
  private readonly review: TokenReviewer;
  private readonly audiences: readonly string[];

  constructor(review: TokenReviewer, audiences: readonly string[]) {
    this.review = review;
    this.audiences = audiences;
  }

  async authenticate(token: string, trustDomain: string): Promise<WorkloadIdentity | undefined> {
    // A JWT has three dot-separated parts; a join token has none.
    if (token.split('.').length !== 3) return undefined;
    let r: TokenReviewResult;
    try {
      r = await this.review(token, this.audiences);
    } catch (e) {
      throw new AuthnError(`the Kubernetes token could not be reviewed: ${(e as Error).message}`);
    }
    if (!r.authenticated) throw new AuthnError(`the Kubernetes API server did not authenticate the token${r.error ? `: ${r.error}` : ''}`);
    const m = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(r.username ?? '');
    if (!m) throw new AuthnError(`the token authenticates "${r.username}", not a ServiceAccount`);
    return { trustDomain, namespace: m[1]!, serviceAccount: m[2]! };
  }
}

interface JoinToken {
  readonly sha256: Buffer;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly expires?: Date;
  /** The hosts the token is for: only they may use it, and their endpoints carry its identity. */
  readonly addresses?: readonly string[];
}

/**
 * Join tokens for VMs and legacy hosts, from a YAML file an operator keeps:
 *   tokens:
 *   - sha256: <hex of the token's SHA-256>   # or token: <the token itself>
 *     namespace: legacy
 *     serviceAccount: orders
 *     expires: 2027-01-01T00:00:00Z           # optional
 *     addresses: [10.0.0.5]                    # optional: the host(s) it is for
 * Read again when it changes. A token is compared by its hash, in constant time. A token
 * with addresses is accepted from those addresses only, and names the identity of the
 * endpoints at them (registryz).
 */
export class JoinTokenAuthenticator implements Authenticator {
  readonly kind = 'join-token';
  private readonly file: string;
  private cache: { mtimeMs: number; size: number; tokens: JoinToken[] } | undefined;

  constructor(file: string) {
    this.file = file;
  }

  /** Reads the file (again if it changed); throws naming what is wrong with it. */
  async tokens(): Promise<JoinToken[]> {
    let st;
    try {
      st = await stat(this.file);
    } catch (e) {
      throw new AuthnError(`join tokens file ${this.file}: ${(e as Error).message}`);
    }
    if (this.cache && this.cache.mtimeMs === st.mtimeMs && this.cache.size === st.size) return this.cache.tokens;
    const tokens = parseJoinTokens(await readFile(this.file, 'utf8'), this.file);
    this.cache = { mtimeMs: st.mtimeMs, size: st.size, tokens };
    return tokens;
  }

  async authenticate(token: string, trustDomain: string, peer?: string): Promise<WorkloadIdentity | undefined> {
    const hash = createHash('sha256').update(token).digest();
    const found = (await this.tokens()).find((t) => timingSafeEqual(t.sha256, hash));
    if (!found) return undefined;
    if (found.expires && found.expires.getTime() < Date.now()) throw new AuthnError(`the join token expired at ${found.expires.toISOString()}`);
    if (found.addresses && !(peer && found.addresses.includes(peer))) {
      throw new AuthnError(`the join token of ${found.namespace}/${found.serviceAccount} is for ${found.addresses.join(', ')}; this request comes from ${peer ?? 'an unknown address'}`);
    }
    return { trustDomain, namespace: found.namespace, serviceAccount: found.serviceAccount };
  }

  /** Address → identity of the tokens bound to addresses, as last read (empty before the first read). */
  identitiesByAddress(): ReadonlyMap<string, { namespace: string; serviceAccount: string }> {
    const out = new Map<string, { namespace: string; serviceAccount: string }>();
    for (const t of this.cache?.tokens ?? []) for (const a of t.addresses ?? []) if (!out.has(a)) out.set(a, { namespace: t.namespace, serviceAccount: t.serviceAccount });
    return out;
  }
}

export function parseJoinTokens(text: string, file: string): JoinToken[] {
  let doc: unknown;
  try {
    doc = parse(text, { maxAliasCount: 0 });
  } catch (e) {
    throw new AuthnError(`join tokens file ${file}: not YAML: ${(e as Error).message}`);
  }
  const list = (doc as { tokens?: unknown } | null)?.tokens;
  if (!Array.isArray(list)) throw new AuthnError(`join tokens file ${file}: expected a list under "tokens"`);
  return list.map((raw, i) => {
    const at = `join tokens file ${file}: tokens[${i}]`;
    if (!raw || typeof raw !== 'object') throw new AuthnError(`${at}: expected a mapping`);
    const t = raw as Record<string, unknown>;
    for (const k of Object.keys(t)) if (!['sha256', 'token', 'namespace', 'serviceAccount', 'expires', 'addresses'].includes(k)) throw new AuthnError(`${at}.${k}: unknown field`);
    let sha: Buffer;
    if (typeof t.sha256 === 'number' || typeof t.token === 'number') throw new AuthnError(`${at}: ${typeof t.sha256 === 'number' ? 'sha256' : 'token'} was read as a number: quote it`);
    if (typeof t.sha256 === 'string' && t.token === undefined) {
      if (!/^[0-9a-f]{64}$/i.test(t.sha256)) throw new AuthnError(`${at}.sha256: expected 64 hex digits`);
      sha = Buffer.from(t.sha256, 'hex');
    } else if (typeof t.token === 'string' && t.sha256 === undefined) {
      if (t.token.length < 16) throw new AuthnError(`${at}.token: too short (16 characters or more)`);
      sha = createHash('sha256').update(t.token).digest();
    } else {
      throw new AuthnError(`${at}: exactly one of sha256 and token is needed`);
    }
    for (const [k, what] of [['namespace', 'namespace'], ['serviceAccount', 'service account']] as const) {
      if (typeof t[k] !== 'string') throw new AuthnError(`${at}.${k}: expected a string`);
      const p = identityNameProblem(what, t[k]);
      if (p) throw new AuthnError(`${at}.${k}: ${p}`);
    }
    let expires: Date | undefined;
    if (t.expires !== undefined) {
      expires = t.expires instanceof Date ? t.expires : new Date(String(t.expires));
      if (Number.isNaN(expires.getTime())) throw new AuthnError(`${at}.expires: not a time (RFC 3339, e.g. 2027-01-01T00:00:00Z)`);
    }
    let addresses: string[] | undefined;
    if (t.addresses !== undefined) {
      if (!Array.isArray(t.addresses) || t.addresses.length === 0) throw new AuthnError(`${at}.addresses: expected a non-empty list of IP addresses`);
      addresses = t.addresses.map((a, j) => {
        if (typeof a !== 'string' || !isIP(a)) throw new AuthnError(`${at}.addresses[${j}]: ${JSON.stringify(a)} is not an IP address`);
        return a;
      });
    }
    return { sha256: sha, namespace: t.namespace as string, serviceAccount: t.serviceAccount as string, ...(expires ? { expires } : {}), ...(addresses ? { addresses } : {}) };
  });
}

/** The bearer token of an `authorization` header value, or why there is none. */
export function bearerToken(values: readonly (string | Buffer)[]): string {
  if (values.length === 0) throw new AuthnError('no credentials: send "authorization: Bearer <token>" (a Kubernetes ServiceAccount token or a join token), or a client certificate this CA issued');
  if (values.length > 1) throw new AuthnError('more than one authorization header');
  const m = /^Bearer\s+(\S+)\s*$/i.exec(String(values[0]));
  if (!m) throw new AuthnError('authorization: expected "Bearer <token>"');
  return m[1]!;
}
