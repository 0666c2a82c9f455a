// Istio objects read from the cluster (ServiceEntry, WorkloadEntry, VirtualService,
// DestinationRule), checked by the very parser and validator that reads them from files
// (src/registries/file), so an object is accepted or refused for the same reasons wherever
// it lives.
import type { Rejection } from '../../model/types.ts';
import { type Collected, parseManifests } from '../file/index.ts';
import type { KubeObject } from './client.ts';

/** What one Istio object contributes, as a file of manifests would; `ok` when it is served. */
export interface IstioResult extends Collected {
  readonly ok: boolean;
}

const NOTHING = { services: [], endpoints: [], workloads: [], virtualServices: [], destinationRules: [], peerAuthentications: [], warnings: [] };

/** `ServiceEntry ns/name`: how objects are named in origins and rejections. */
export function objectRef(kind: string, o: KubeObject): string {
  return `${kind} ${o.metadata?.namespace ?? 'default'}/${o.metadata?.name ?? '?'}`;
}

/** Parses one cluster object as the file registry parses one document. */
export function parseIstioObject(registry: string, kind: string, obj: KubeObject): IstioResult {
  const ref = objectRef(kind, obj);
  const source = `${registry} ${ref}`;
  // The file parser reads JSON text when the source name ends in .json; the name is replaced below.
  const parsed = parseManifests(JSON.stringify({ ...obj, kind: obj.kind ?? kind }), 'object.json', { registry });
  const doc = parsed.documents[0];
  const here = <T extends Rejection>({ document: _document, ...r }: T): Rejection => ({ ...r, source });
  if (parsed.yamlError || !doc) {
    return { ok: false, ...NOTHING, rejections: [{ source, kind, reason: parsed.yamlError?.reason ?? 'object yields nothing' }] };
  }
  if (!doc.ok) return { ok: false, ...NOTHING, rejections: doc.rejections.map(here) };
  const origin = { registry, ref };
  const location = { source };
  return {
    ok: true,
    services: doc.services.map((s) => ({ ...s, origin })),
    endpoints: doc.endpoints.map((e) => ({ ...e, origin })),
    workloads: doc.workloads.map((w) => ({ ...w, origin })),
    virtualServices: doc.virtualServices.map((v) => ({ ...v, origin, location })),
    destinationRules: doc.destinationRules.map((d) => ({ ...d, origin, location })),
    peerAuthentications: doc.peerAuthentications.map((d) => ({ ...d, origin, location })),
    rejections: [],
    warnings: doc.warnings.map(here),
  };
}
