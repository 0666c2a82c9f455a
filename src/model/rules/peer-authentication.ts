// PeerAuthentication (security.istio.io/v1): which connections a workload's sidecar accepts.
// PERMISSIVE (the default) takes mesh mTLS and plaintext, STRICT mesh mTLS only, DISABLE
// plaintext only. As Istio resolves it: a policy with a selector in the workload's namespace
// (the oldest when several match), else its namespace's policy without a selector, else the
// mesh-wide one (the root namespace, without a selector); UNSET inherits from the next one,
// and a port-level mode overrides the workload's mode for that port.
import { Checker, isMapping } from '../../shared/checks.ts';
import type { Origin } from '../origin.ts';
import { obj } from './fields.ts';
import type { RuleMeta } from './meta.ts';
import type { RuleLocation } from './types.ts';

export type MtlsMode = 'STRICT' | 'PERMISSIVE' | 'DISABLE';
const MODES = ['UNSET', 'DISABLE', 'PERMISSIVE', 'STRICT'] as const;
/** Istio's root namespace: a policy there without a selector is mesh-wide. */
export const MESH_NAMESPACE = 'istio-system';

export interface PeerAuthentication {
  readonly name: string;
  readonly namespace: string;
  readonly origin: Origin;
  readonly location: RuleLocation;
  /** matchLabels; undefined: the whole namespace (or the mesh, in the root namespace). */
  readonly selector?: Readonly<Record<string, string>>;
  /** undefined: UNSET (inherit). */
  readonly mode?: MtlsMode;
  /** Workload port → mode (UNSET entries left out). */
  readonly portLevel: Readonly<Record<number, MtlsMode>>;
}

function mode(c: Checker, v: unknown, field: string): MtlsMode | undefined {
  const m = obj(c, v, field, ['mode']);
  if (!m || m.mode === undefined || m.mode === null) return undefined;
  const s = c.string(m.mode, `${field}.mode`);
  if (s === undefined) return undefined;
  if (!(MODES as readonly string[]).includes(s)) {
    c.fail(`${field}.mode`, `mode ${JSON.stringify(s)} is not one of ${MODES.join(', ')}`);
    return undefined;
  }
  return s === 'UNSET' ? undefined : (s as MtlsMode);
}

export function peerAuthentication(spec: unknown, c: Checker, meta: RuleMeta): PeerAuthentication | undefined {
  const s = obj(c, spec, 'spec', ['selector', 'mtls', 'portLevelMtls']);
  if (!s) return undefined;
  let selector: Record<string, string> | undefined;
  if (s.selector !== undefined && s.selector !== null) {
    const sel = obj(c, s.selector, 'spec.selector', ['matchLabels']);
    selector = c.labels(sel?.matchLabels, 'spec.selector.matchLabels', { noWildcard: true }) ?? {};
    if (Object.keys(selector).length === 0) c.fail('spec.selector.matchLabels', 'a selector needs at least one label (leave spec.selector out for the whole namespace)');
  }
  const m = s.mtls === undefined || s.mtls === null ? undefined : mode(c, s.mtls, 'spec.mtls');
  const portLevel: Record<number, MtlsMode> = {};
  if (s.portLevelMtls !== undefined && s.portLevelMtls !== null) {
    if (!isMapping(s.portLevelMtls)) c.fail('spec.portLevelMtls', 'spec.portLevelMtls must be a mapping of port number to { mode }');
    else {
      // Istio: port-level settings need a selector (a port is a port of particular workloads).
      if (!selector) c.fail('spec.portLevelMtls', 'portLevelMtls needs spec.selector: a port is a port of the workloads it selects');
      for (const [k, v] of Object.entries(s.portLevelMtls)) {
        const f = `spec.portLevelMtls[${k}]`;
        const n = Number(k);
        if (!/^\d+$/.test(k) || n < 1 || n > 65535) {
          c.fail(f, `port ${JSON.stringify(k)} is not a port number 1-65535`);
          continue;
        }
        const pm = mode(c, v, f);
        if (pm) portLevel[n] = pm;
      }
    }
  }
  if (meta.namespace === MESH_NAMESPACE && selector === undefined && Object.keys(portLevel).length) c.fail('spec.portLevelMtls', 'a mesh-wide policy cannot set ports');
  return { name: meta.name, namespace: meta.namespace, origin: meta.origin, location: meta.location, ...(selector ? { selector } : {}), ...(m ? { mode: m } : {}), portLevel };
}

function selects(selector: Readonly<Record<string, string>>, labels: Readonly<Record<string, string>>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/**
 * The mode of a workload's port (namespace, labels) under the policies, PERMISSIVE when none
 * says otherwise. Policies are in registry, file and document order: where two match, the
 * first applies (Istio: the oldest).
 */
export function effectiveMtls(policies: readonly PeerAuthentication[], namespace: string, labels: Readonly<Record<string, string>>, port: number): MtlsMode {
  const byOrder = policies;
  const workload = byOrder.find((p) => p.namespace === namespace && p.selector && selects(p.selector, labels));
  const ns = byOrder.find((p) => p.namespace === namespace && !p.selector);
  const mesh = byOrder.find((p) => p.namespace === MESH_NAMESPACE && !p.selector);
  return workload?.portLevel[port] ?? workload?.mode ?? ns?.mode ?? mesh?.mode ?? 'PERMISSIVE';
}
