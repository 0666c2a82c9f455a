// Shared by the rule tests: documents as objects, parsed by the real manifest parser.
import { stringify } from 'yaml';
import type { DestinationRule, VirtualService } from '../../../../src/model/rules/types.ts';
import type { Rejection } from '../../../../src/model/types.ts';
import { type ParsedDoc, parseManifests } from '../../../../src/registries/file/index.ts';

export const REG = 'file:///etc/isthmus';
export const SOURCE = 'conf/rules.yaml';

export function doc(kind: 'VirtualService' | 'DestinationRule', name: string, spec: unknown, namespace = 'shop'): Record<string, unknown> {
  return { apiVersion: 'networking.istio.io/v1', kind, metadata: { name, namespace }, spec };
}

export const yamlOf = (...docs: unknown[]): string => docs.map((d) => stringify(d)).join('---\n');

/** Parses documents as one file; returns every parsed document. */
export function parseDocs(...docs: unknown[]): ParsedDoc[] {
  const f = parseManifests(yamlOf(...docs), SOURCE, { registry: REG });
  if (f.yamlError) throw new Error(f.yamlError.reason);
  return [...f.documents];
}

export function parseOne(d: unknown): ParsedDoc {
  return parseDocs(d)[0]!;
}

export function rejectionsOf(d: ParsedDoc): Rejection[] {
  return d.ok ? [] : [...d.rejections];
}

export function warningsOf(d: ParsedDoc): Rejection[] {
  return d.ok ? [...d.warnings] : [];
}

export function vsOf(d: ParsedDoc): VirtualService {
  if (!d.ok) throw new Error(`document rejected: ${JSON.stringify(d.rejections, null, 1)}`);
  const v = d.virtualServices[0];
  if (!v) throw new Error('no VirtualService');
  return v;
}

export function drOf(d: ParsedDoc): DestinationRule {
  if (!d.ok) throw new Error(`document rejected: ${JSON.stringify(d.rejections, null, 1)}`);
  const r = d.destinationRules[0];
  if (!r) throw new Error('no DestinationRule');
  return r;
}
