// Kubernetes-style manifests (Istio networking.istio.io ServiceEntry, WorkloadEntry,
// VirtualService, DestinationRule) to the model. Validation is as strict as `istioctl
// validate`: every problem of a document is reported, and a document with any problem yields
// nothing. Checks across documents (rule conflicts, subsets) are src/rules/cross-checks.ts.

import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { DestinationRule, VirtualService } from '../../model/rules/types.ts';
import type { Endpoint, Origin, Rejection, Service, Workload } from '../../model/types.ts';
import { destinationRule } from '../../model/rules/destination-rule.ts';
import { Warnings } from '../../model/rules/fields.ts';
import type { RuleMeta } from '../../model/rules/meta.ts';
import { virtualService } from '../../model/rules/virtual-service.ts';
import { Checker, describe, isDns1123Label, isDns1123Subdomain, isMapping } from '../../shared/checks.ts';
import { serviceEntry, workloadEntry } from './kinds.ts';
import { peerAuthentication, type PeerAuthentication } from '../../model/rules/peer-authentication.ts';

export const API_VERSIONS: readonly string[] = ['networking.istio.io/v1', 'networking.istio.io/v1beta1', 'networking.istio.io/v1alpha3'];
/** security.istio.io kinds: PeerAuthentication. */
export const SECURITY_API_VERSIONS: readonly string[] = ['security.istio.io/v1', 'security.istio.io/v1beta1'];
const SECURITY_KINDS = new Set(['PeerAuthentication']);
export const KINDS: readonly string[] = ['ServiceEntry', 'WorkloadEntry', 'VirtualService', 'DestinationRule', 'PeerAuthentication'];

const TOP_KEYS = ['apiVersion', 'kind', 'metadata', 'spec', 'status'];
// ObjectMeta fields found in `kubectl get -o yaml` output: accepted, only the first four are used.
const META_KEYS = [
  'name', 'namespace', 'labels', 'annotations', 'uid', 'resourceVersion', 'generation', 'creationTimestamp',
  'deletionTimestamp', 'deletionGracePeriodSeconds', 'generateName', 'managedFields', 'ownerReferences', 'finalizers', 'selfLink',
];

interface DocHead {
  /** 0-based position of the document in its file (empty documents count). */
  readonly index: number;
  readonly kind?: string;
  /** metadata.namespace, "default" when absent. */
  readonly namespace?: string;
  readonly name?: string;
}

export interface ValidDoc extends DocHead {
  readonly ok: true;
  readonly services: readonly Service[];
  readonly endpoints: readonly Endpoint[];
  readonly workloads: readonly Workload[];
  readonly virtualServices: readonly VirtualService[];
  readonly destinationRules: readonly DestinationRule[];
  readonly peerAuthentications: readonly PeerAuthentication[];
  /** Problems that do not stop the document from being used (Istio's validation warnings). */
  readonly warnings: readonly Rejection[];
}

export interface InvalidDoc extends DocHead {
  readonly ok: false;
  readonly rejections: readonly Rejection[];
}

export type ParsedDoc = ValidDoc | InvalidDoc;

export interface ParsedFile {
  readonly documents: readonly ParsedDoc[];
  /** Set when the file as a whole cannot be read as YAML/JSON; documents is then empty. */
  readonly yamlError?: Rejection;
}

export interface ParseOptions {
  /** Registry id for Origin.registry; defaults to file:// and the file's directory. */
  readonly registry?: string;
}

/** Identity of a document across edits and files: kind/namespace/name. */
export function docKey(doc: DocHead): string | undefined {
  return doc.kind !== undefined && doc.name !== undefined ? `${doc.kind}/${doc.namespace ?? 'default'}/${doc.name}` : undefined;
}

/** Parses one file: multi-document YAML, or a single JSON object when `source` ends in .json. */
export function parseManifests(text: string, source: string, opts: ParseOptions = {}): ParsedFile {
  const registry = opts.registry ?? `file://${path.resolve(path.dirname(source))}`;
  let values: { index: number; value: unknown }[];
  try {
    values = source.toLowerCase().endsWith('.json') ? readJson(text) : readYaml(text);
  } catch (err) {
    const e = err instanceof SyntaxProblem ? err : new SyntaxProblem(`cannot parse file: ${errorMessage(err)}`);
    return { documents: [], yamlError: { source, ...(e.document !== undefined ? { document: e.document } : {}), reason: e.message } };
  }
  return { documents: values.map(({ index, value }) => parseDocument(value, index, source, registry)) };
}

class SyntaxProblem extends Error {
  readonly document?: number;
  constructor(message: string, document?: number) {
    super(message);
    if (document !== undefined) this.document = document;
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function readYaml(text: string): { index: number; value: unknown }[] {
  const docs = parseAllDocuments(text, { prettyErrors: true, uniqueKeys: true });
  const out: { index: number; value: unknown }[] = [];
  for (const [index, doc] of docs.entries()) {
    const err = doc.errors[0];
    if (err) {
      const pos = err.linePos?.[0];
      // The pretty message repeats the position and quotes the source; keep the first sentence.
      const msg = err.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
      const at = pos ? `line ${pos.line}, column ${pos.col}` : 'an unknown line';
      throw new SyntaxProblem(`YAML syntax error at ${at} (document ${index}): ${msg}; the whole file is ignored until it is fixed`, index);
    }
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (e) {
      throw new SyntaxProblem(`YAML document ${index} cannot be read: ${errorMessage(e)}`, index);
    }
    if (value !== null && value !== undefined) out.push({ index, value });
  }
  return out;
}

function readJson(text: string): { index: number; value: unknown }[] {
  try {
    return [{ index: 0, value: JSON.parse(text) as unknown }];
  } catch (err) {
    const msg = errorMessage(err);
    const line = text.slice(0, jsonErrorOffset(text, msg)).split('\n').length;
    const short = msg.replace(/, (?:\.\.\.)?"[^]*$/, '').split('\n')[0]!.replace(/ (?:in JSON )?at position.*$/, '');
    throw new SyntaxProblem(`JSON syntax error at line ${line}: ${short}; the whole file is ignored until it is fixed`, 0);
  }
}

/** Where V8's JSON error points: a position, or a quoted excerpt ending at the bad token. */
function jsonErrorOffset(text: string, msg: string): number {
  const pos = /at position (\d+)/.exec(msg);
  if (pos) return Number(pos[1]);
  const m = /^Unexpected token '([^]*?)', (?:\.\.\.)?"([^]*)"(?:\.\.\.)? is not valid JSON$/.exec(msg);
  if (m) {
    const at = text.indexOf(m[2]!);
    if (at >= 0) return at + Math.max(0, m[2]!.lastIndexOf(m[1]!));
  }
  return text.length; // "Unexpected end of JSON input" and the like
}

function parseDocument(value: unknown, index: number, source: string, registry: string): ParsedDoc {
  const toRejections = (head: DocHead, problems: readonly { field: string; reason: string }[]): Rejection[] =>
    problems.map((p) => ({
      source,
      document: index,
      ...(head.kind !== undefined ? { kind: head.kind } : {}),
      ...(head.name !== undefined ? { name: head.name } : {}),
      ...(p.field ? { field: p.field } : {}),
      reason: p.reason,
    }));
  const reject = (head: DocHead, problems: readonly { field: string; reason: string }[]): InvalidDoc => ({
    ...head,
    ok: false,
    rejections: toRejections(head, problems),
  });
  if (!isMapping(value)) {
    return reject({ index }, [{ field: '', reason: `document is ${describe(value)}, not a mapping; expected a Kubernetes object with apiVersion, kind, metadata and spec` }]);
  }
  const rawMeta = isMapping(value.metadata) ? value.metadata : {};
  const head: DocHead = {
    index,
    ...(typeof value.kind === 'string' ? { kind: value.kind } : {}),
    ...(typeof rawMeta.name === 'string' ? { name: rawMeta.name } : {}),
    namespace: typeof rawMeta.namespace === 'string' ? rawMeta.namespace : 'default',
  };
  try {
    const c = new Checker();
    const top = c.object(value, '', TOP_KEYS)!;
    const kind = checkHeader(top, c);
    const meta = c.object(top.metadata, 'metadata', META_KEYS);
    if (top.metadata === undefined || top.metadata === null) c.fail('metadata', 'metadata is missing; expected a mapping with at least a name');
    checkMetadata(meta, c);
    const origin: Origin = { registry, ref: `${source}#${index} ${head.kind ?? '?'} ${head.namespace}/${head.name ?? '?'}` };
    const none = { services: [], endpoints: [], workloads: [], virtualServices: [], destinationRules: [], peerAuthentications: [] };
    let result: Omit<ValidDoc, keyof DocHead | 'ok' | 'warnings'> | undefined;
    const warnings = new Warnings();
    const rule: RuleMeta = { name: head.name ?? '', namespace: head.namespace ?? 'default', origin, location: { source, document: index } };
    if (kind !== undefined && (top.spec === undefined || top.spec === null)) c.fail('spec', `spec is missing; a ${kind} needs a spec`);
    else if (kind === 'ServiceEntry') {
      const se = serviceEntry(top.spec, c, { namespace: head.namespace ?? 'default', origin });
      if (se) result = { ...none, services: se.services, endpoints: se.endpoints };
    } else if (kind === 'WorkloadEntry') {
      const w = workloadEntry(top.spec, c, { name: head.name ?? '', namespace: head.namespace ?? 'default', origin });
      if (w) result = { ...none, workloads: [w] };
    } else if (kind === 'VirtualService') {
      const vs = virtualService(top.spec, c, warnings, rule);
      if (vs) result = { ...none, virtualServices: [vs] };
    } else if (kind === 'DestinationRule') {
      const dr = destinationRule(top.spec, c, warnings, rule);
      if (dr) result = { ...none, destinationRules: [dr] };
    } else if (kind === 'PeerAuthentication') {
      const pa = peerAuthentication(top.spec, c, rule);
      if (pa) result = { ...none, peerAuthentications: [pa] };
    }
    if (c.problems.length > 0 || !result) return reject(head, c.problems.length ? c.problems : [{ field: '', reason: 'document yields nothing' }]);
    return { ...head, ok: true, ...result, warnings: toRejections(head, warnings.items) };
  } catch (err) {
    // A bug here must cost one document, never the registry.
    return reject(head, [{ field: '', reason: `internal error while validating: ${errorMessage(err)}` }]);
  }
}

/** Checks apiVersion and kind; returns the kind when it is one we can read. */
function checkHeader(top: Record<string, unknown>, c: Checker): string | undefined {
  const supported = `supported kinds are ${KINDS.slice(0, -1).join(', ')} and ${KINDS.at(-1)}`;
  const kindRaw = typeof top.kind === 'string' ? top.kind : undefined;
  const versions = kindRaw && SECURITY_KINDS.has(kindRaw) ? SECURITY_API_VERSIONS : API_VERSIONS;
  if (top.apiVersion === undefined || top.apiVersion === null) c.fail('apiVersion', `apiVersion is missing; expected ${versions[0]}`);
  else {
    const v = c.string(top.apiVersion, 'apiVersion');
    if (v !== undefined && !versions.includes(v)) {
      c.fail('apiVersion', `apiVersion ${JSON.stringify(v)} is not supported${kindRaw && KINDS.includes(kindRaw) ? ` for ${kindRaw}` : ''}; expected ${versions[0]} (${versions.slice(1).map((x) => x.split('/')[1]).join(' and ')} ${versions.length > 2 ? 'are' : 'is'} accepted too)`);
    }
  }
  if (top.kind === undefined || top.kind === null) {
    c.fail('kind', `kind is missing; ${supported}`);
    return undefined;
  }
  const kind = c.string(top.kind, 'kind');
  if (kind !== undefined && !KINDS.includes(kind)) {
    c.fail('kind', `kind ${JSON.stringify(kind)} is not supported; ${supported}`);
    return undefined;
  }
  return kind;
}

function checkMetadata(meta: Record<string, unknown> | undefined, c: Checker): void {
  if (!meta) return;
  if (meta.name === undefined || meta.name === null) c.fail('metadata.name', 'metadata.name is missing; every object needs a name');
  const name = c.string(meta.name, 'metadata.name');
  if (name !== undefined && !isDns1123Subdomain(name)) {
    c.fail('metadata.name', `metadata.name ${JSON.stringify(name)} is not a valid DNS-1123 subdomain; expected lower-case letters, digits, "-" and ".", starting and ending with a letter or digit, at most 253 characters`);
  }
  const ns = c.string(meta.namespace, 'metadata.namespace');
  if (ns !== undefined && !isDns1123Label(ns)) {
    c.fail('metadata.namespace', `metadata.namespace ${JSON.stringify(ns)} is not a valid DNS-1123 label; expected lower-case letters, digits and "-", starting and ending with a letter or digit, at most 63 characters`);
  }
  c.labels(meta.labels, 'metadata.labels');
  c.stringMap(meta.annotations, 'metadata.annotations');
}
