// What a set of parsed files serves: the last good version of anything broken, and the
// first definition of any kind/namespace/name defined twice.

import type { DestinationRule, VirtualService } from '../../model/rules/types.ts';
import type { PeerAuthentication } from '../../model/rules/peer-authentication.ts';
import type { Endpoint, Rejection, Service, Workload } from '../../model/types.ts';
import { docKey, type ParsedFile, type ValidDoc } from './manifest.ts';

/** One file's contribution: the documents it serves and what is wrong with it now. */
export interface ServedFile {
  readonly source: string;
  readonly docs: readonly ValidDoc[];
  readonly rejections: readonly Rejection[];
}

export interface Collected {
  readonly services: readonly Service[];
  readonly endpoints: readonly Endpoint[];
  readonly workloads: readonly Workload[];
  /** Rules that pass their own document's checks; cross-document checks come later (src/rules). */
  readonly virtualServices: readonly VirtualService[];
  readonly destinationRules: readonly DestinationRule[];
  readonly peerAuthentications: readonly PeerAuthentication[];
  readonly rejections: readonly Rejection[];
  /** Warnings of the documents served. */
  readonly warnings: readonly Rejection[];
}

const KEPT_DOC = 'the last good version of this document is still served';
const KEPT_FILE = 'the objects from the last good version of this file are still served';

/**
 * Serves a freshly parsed file. A broken document keeps serving its previous good version
 * (same kind/namespace/name); a file that does not parse at all keeps serving everything.
 */
export function serveFile(source: string, parsed: ParsedFile, previous?: ServedFile): ServedFile {
  if (parsed.yamlError) return serveFailure(source, parsed.yamlError, previous);
  const before = new Map<string, ValidDoc>();
  for (const d of previous?.docs ?? []) {
    const k = docKey(d);
    if (k && !before.has(k)) before.set(k, d);
  }
  const docs: ValidDoc[] = [];
  const rejections: Rejection[] = [];
  for (const doc of parsed.documents) {
    if (doc.ok) {
      docs.push(doc);
      continue;
    }
    const k = docKey(doc);
    const kept = k ? before.get(k) : undefined;
    if (kept) docs.push(kept);
    rejections.push(...(kept ? doc.rejections.map((r) => ({ ...r, reason: `${r.reason}; ${KEPT_DOC}` })) : doc.rejections));
  }
  return { source, docs, rejections };
}

/** A file that cannot be read or parsed: keep what it served before, report why. */
export function serveFailure(source: string, rejection: Rejection, previous?: ServedFile): ServedFile {
  const docs = previous?.docs ?? [];
  const reason = docs.length > 0 ? `${rejection.reason}; ${KEPT_FILE}` : rejection.reason;
  return { source, docs, rejections: [{ ...rejection, reason }] };
}

/**
 * Unites files, in the order given (callers sort by path). When kind/namespace/name is
 * defined more than once, the first definition wins and each later one is rejected.
 */
export function collect(files: readonly ServedFile[]): Collected {
  const services: Service[] = [];
  const endpoints: Endpoint[] = [];
  const workloads: Workload[] = [];
  const virtualServices: VirtualService[] = [];
  const destinationRules: DestinationRule[] = [];
  const peerAuthentications: PeerAuthentication[] = [];
  const rejections: Rejection[] = [];
  const warnings: Rejection[] = [];
  const first = new Map<string, string>();
  for (const file of files) {
    rejections.push(...file.rejections);
    for (const doc of file.docs) {
      const k = docKey(doc);
      const where = `${file.source}#${doc.index}`;
      const prior = k ? first.get(k) : undefined;
      if (k && prior !== undefined) {
        rejections.push({
          source: file.source,
          document: doc.index,
          ...(doc.kind !== undefined ? { kind: doc.kind } : {}),
          ...(doc.name !== undefined ? { name: doc.name } : {}),
          field: 'metadata.name',
          reason: `${doc.kind} ${doc.namespace}/${doc.name} is already defined in ${prior}; the first definition wins and this one is ignored`,
        });
        continue;
      }
      if (k) first.set(k, where);
      services.push(...doc.services);
      endpoints.push(...doc.endpoints);
      workloads.push(...doc.workloads);
      virtualServices.push(...doc.virtualServices);
      destinationRules.push(...doc.destinationRules);
      peerAuthentications.push(...doc.peerAuthentications);
      warnings.push(...doc.warnings);
    }
  }
  return { services, endpoints, workloads, virtualServices, destinationRules, peerAuthentications, rejections, warnings };
}
