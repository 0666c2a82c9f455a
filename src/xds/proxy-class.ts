// The class of a proxy: everything about it that shapes the configuration it gets, and
// nothing else. Generators are given the class, never the proxy, so they cannot read what
// is not in it; its key is the class itself as canonical JSON, so nothing that shapes
// configuration can be left out of the key. Proxies of one class share one view.
import { canonicalJson } from '../model/hash.ts';
import type { Locality } from '../model/types.ts';
import { labelsMatch } from './generators/destination-rule.ts';
import { proxyLabels, selectorKey } from './generators/http-route.ts';
import type { ProxyInfo, ProxyShape } from './proxy.ts';

export interface ProxyClass extends ProxyShape {
  /** Where the proxy runs; present only while some DestinationRule balances by locality. */
  readonly locality?: Locality;
  /** The sourceLabels selectors of the mesh's rules that the proxy's labels match (selectorKey, rule order). */
  readonly sources: readonly string[];
  /** The class as canonical JSON. */
  readonly key: string;
}

/** What of the generation decides which proxy attributes matter. */
export interface ClassInputs {
  readonly localityLb: boolean;
  /** Every distinct sourceLabels selector of the mesh's rules (sourceSelectors). */
  readonly selectors: readonly Readonly<Record<string, string>>[];
}

// A proxy keeps its class while the inputs stay the same (every generation without a rule
// change): computed once per proxy and inputs, not once per generation.
const classes = new WeakMap<ProxyInfo, { readonly inputs: string; readonly cls: ProxyClass }>();

/** The inputs as text: equal text, equal classes for the same proxy. */
export function inputsKey(inputs: ClassInputs): string {
  return `${inputs.localityLb}\n${inputs.selectors.map(selectorKey).join('\n')}`;
}

export function proxyClass(proxy: ProxyInfo, inputs: ClassInputs, key: string = inputsKey(inputs)): ProxyClass {
  const hit = classes.get(proxy);
  if (hit?.inputs === key) return hit.cls;
  const cls = computeClass(proxy, inputs);
  classes.set(proxy, { inputs: key, cls });
  return cls;
}

function computeClass(proxy: ProxyInfo, inputs: ClassInputs): ProxyClass {
  const labels = inputs.selectors.length ? proxyLabels(proxy.metadata) : {};
  const fields = {
    ...proxy.shape,
    ...(inputs.localityLb ? { locality: proxy.locality } : {}),
    sources: inputs.selectors.filter((s) => labelsMatch(labels, s)).map(selectorKey),
  };
  return { ...fields, key: canonicalJson(fields) };
}
