// Workload identity: SPIFFE IDs spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>,
// as Istio names them.

export const DEFAULT_TRUST_DOMAIN = 'cluster.local';

export interface WorkloadIdentity {
  readonly trustDomain: string;
  readonly namespace: string;
  readonly serviceAccount: string;
}

// DNS-1123 labels (Kubernetes namespace and service account names); a trust domain is a DNS name.
const LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/** Why a trust domain is not usable, or undefined. */
export function trustDomainProblem(td: string): string | undefined {
  if (!SUBDOMAIN.test(td) || td.split('.').some((l) => !LABEL.test(l))) return `trust domain "${td}" is not a DNS name (lower-case letters, digits, '-' and '.')`;
  return undefined;
}

/** Why a namespace or service account name is not usable, or undefined. */
export function identityNameProblem(what: 'namespace' | 'service account', name: string): string | undefined {
  if (what === 'service account' ? !SUBDOMAIN.test(name) : !LABEL.test(name)) return `${what} "${name}" is not a Kubernetes name (lower-case letters, digits and '-'${what === 'service account' ? ", '.'" : ''})`;
  return undefined;
}

export function spiffeId(id: WorkloadIdentity): string {
  return `spiffe://${id.trustDomain}/ns/${id.namespace}/sa/${id.serviceAccount}`;
}

/** The identity a SPIFFE ID names, or why it names none. */
export function parseSpiffeId(uri: string): WorkloadIdentity | { error: string } {
  const m = /^spiffe:\/\/([^/]+)\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(uri);
  if (!m) return { error: `"${uri}" is not a workload SPIFFE ID (spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>)` };
  const [, trustDomain, namespace, serviceAccount] = m as unknown as [string, string, string, string];
  const problem = trustDomainProblem(trustDomain) ?? identityNameProblem('namespace', namespace) ?? identityNameProblem('service account', serviceAccount);
  return problem ? { error: `"${uri}": ${problem}` } : { trustDomain, namespace, serviceAccount };
}
