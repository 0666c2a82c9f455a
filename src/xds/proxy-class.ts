// The class of a proxy: everything about it that shapes the configuration it gets, and
// nothing else. Generators are given the class, never the proxy, so they cannot read what
// is not in it; its key is the class itself as canonical JSON, so nothing that shapes
// configuration can be left out of the key. Proxies of one class share one view.
import { canonicalJson } from '../model/hash.ts';
import type { Locality } from '../model/types.ts';
import { labelsMatch } from './generators/destination-rule.ts';
import { proxyLabels, selectorKey } from './generators/http-route.ts';
import type { ProxyInfo, ProxyShape } from './proxy.ts';
import { effectiveMtls, type MtlsMode, type PeerAuthentication } from '../model/rules/peer-authentication.ts';

export interface ProxyClass extends ProxyShape {
  /** Where the proxy runs; present only while some DestinationRule balances by locality. */
  readonly locality?: Locality;
  /** The sourceLabels selectors of the mesh's rules that the proxy's labels match (selectorKey, rule order). */
  readonly sources: readonly string[];
  /**
   * PeerAuthentication of the workload: its mode (present only when not PERMISSIVE) and each
   * app port's where it differs. Present only while some PeerAuthentication exists.
   */
  readonly peerAuth?: { readonly mode?: 'STRICT' | 'DISABLE'; readonly ports: Readonly<Record<string, MtlsMode>> };
  /** The class as canonical JSON. */
  readonly key: string;
}

/** What of the generation decides which proxy attributes matter. */
export interface ClassInputs {
  readonly localityLb: boolean;
  /** Every distinct sourceLabels selector of the mesh's rules (sourceSelectors). */
  readonly selectors: readonly Readonly<Record<string, string>>[];
  /** The mesh's PeerAuthentications (their hash is in the rules hash of the generation). */
  readonly peerAuthentications?: readonly PeerAuthentication[];
  /** Text that changes when they do. */
  readonly peerAuthKey?: string;
}

// A proxy keeps its class while the inputs stay the same (every generation without a rule
// change): computed once per proxy and inputs, not once per generation.
const classes = new WeakMap<ProxyInfo, { readonly inputs: string; readonly cls: ProxyClass }>();

/** The inputs as text: equal text, equal classes for the same proxy. */
export function inputsKey(inputs: ClassInputs): string {
  return `${inputs.localityLb}\n${inputs.selectors.map(selectorKey).join('\n')}\n${inputs.peerAuthKey ?? ''}`;
}

export function proxyClass(proxy: ProxyInfo, inputs: ClassInputs, key: string = inputsKey(inputs)): ProxyClass {
  const hit = classes.get(proxy);
  if (hit?.inputs === key) return hit.cls;
  const cls = computeClass(proxy, inputs);
  classes.set(proxy, { inputs: key, cls });
  return cls;
}

function peerAuthOf(pas: readonly PeerAuthentication[], namespace: string, labels: Readonly<Record<string, string>>, appPorts: readonly number[]): NonNullable<ProxyClass['peerAuth']> {
  // The workload's own mode: what a port no policy names gets (port 0 names none).
  const own = effectiveMtls(pas, namespace, labels, 0);
  const ports: Record<string, MtlsMode> = {};
  for (const p of appPorts) {
    const m = effectiveMtls(pas, namespace, labels, p);
    if (m !== own) ports[p] = m;
  }
  return { ...(own !== 'PERMISSIVE' ? { mode: own } : {}), ports };
}

function computeClass(proxy: ProxyInfo, inputs: ClassInputs): ProxyClass {
  const pas = inputs.peerAuthentications ?? [];
  const labels = inputs.selectors.length || pas.length ? proxyLabels(proxy.metadata) : {};
  const fields = {
    ...proxy.shape,
    ...(inputs.localityLb ? { locality: proxy.locality } : {}),
    sources: inputs.selectors.filter((s) => labelsMatch(labels, s)).map(selectorKey),
    ...(pas.length ? { peerAuth: peerAuthOf(pas, String(proxy.metadata.ISTHMUS_NAMESPACE ?? 'default'), labels, proxy.shape.appPorts.map((a) => a.port)) } : {}),
  };
  return { ...fields, key: canonicalJson(fields) };
}
