// Istio ServiceEntry and WorkloadEntry objects read from the cluster, checked by the very
// parser and validator that reads them from files (src/registries/file), so an object is
// accepted or refused for the same reasons wherever it lives.
import type { Endpoint, Rejection, Service, Workload } from '../../model/types.ts';
import { parseManifests } from '../file/index.ts';
import type { KubeObject } from './client.ts';

export interface IstioResult {
  readonly ok: boolean;
  readonly services: readonly Service[];
  readonly endpoints: readonly Endpoint[];
  readonly workloads: readonly Workload[];
  readonly rejections: readonly Rejection[];
}

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
  if (parsed.yamlError || !doc) {
    return { ok: false, services: [], endpoints: [], workloads: [], rejections: [{ source, kind, reason: parsed.yamlError?.reason ?? 'object yields nothing' }] };
  }
  if (!doc.ok) {
    return {
      ok: false,
      services: [],
      endpoints: [],
      workloads: [],
      rejections: doc.rejections.map(({ document: _document, ...r }) => ({ ...r, source })),
    };
  }
  const origin = { registry, ref };
  return {
    ok: true,
    services: doc.services.map((s) => ({ ...s, origin })),
    endpoints: doc.endpoints.map((e) => ({ ...e, origin })),
    workloads: doc.workloads.map((w) => ({ ...w, origin })),
    rejections: [],
  };
}
