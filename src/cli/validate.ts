// isthmus validate FILE|DIR…: checks manifests the way `serve` would read them, plus the
// checks across documents, and prints one line per problem.
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Rejection } from '../model/types.ts';
import { collect, isManifestName, KINDS, parseManifests, serveFailure, serveFile, type ServedFile } from '../registries/file/index.ts';
import { checkRules, hostIndex } from '../model/rules/index.ts';
import type { DestinationRule, VirtualService } from '../model/rules/types.ts';
import { PROXYLESS, type Refused, refusedInDestinationRule, refusedInVirtualService } from '../xds/generators/proxyless.ts';
import { refusedOnDubbo } from '../xds/generators/dubbo-route.ts';
import { UsageError } from './args.ts';

export const VALIDATE_HELP = `Usage: isthmus validate [options] FILE|DIR...

Checks Kubernetes-style manifests (${KINDS.join(', ')}) as 'isthmus serve' reads
them, like 'istioctl validate': unknown fields, wrong types, values out of range,
regexes RE2 cannot compile, weights not summing to 100, and across all the files
given: kind/namespace/name defined twice, two VirtualServices or DestinationRules
for one host, subsets no DestinationRule defines. Directories are read recursively
(*.yaml, *.yml, *.json; dotfiles skipped). When the files define services, hosts
that none of them names are reported as warnings.

Prints one line per problem:
  FILE:DOC: FIELD: REASON (KIND NAME)
where DOC is the 0-based index of the document in the file. Warnings read
  FILE:DOC: FIELD: warning: REASON (KIND NAME)
and do not fail the check.

Rule settings a client kind does not implement (docs/CLIENTS.md) are reported
for that kind, e.g.
  FILE:DOC: spec.trafficPolicy.loadBalancer.simple: not applied for proxyless
  gRPC clients: RANDOM is not implemented by proxyless gRPC clients; ... (KIND NAME)
as problems with --client grpc, as warnings without --client (Isthmus refuses
them for those clients and serves the rest), not at all with --client envoy.

With --client dubbo the http rules are checked as Envoy's Dubbo filter reads
them on Dubbo ports (uri /<interface>/<method>, headers as attachments): what
it cannot do (timeout, retries, fault, mirror, rewrite, redirect, header
changes, method, authority, queryParams, withoutHeaders, sourceLabels,
ignoreUriCase, a prefix or regex not after /<interface>/) is a problem, e.g.
  FILE:DOC: spec.http[0].timeout: not applied on Dubbo ports: Envoy's Dubbo
  filter has no per-route timeout ... (VirtualService NAME)
Which ports are Dubbo's the registry decides when 'serve' runs (see the README),
so without --client dubbo these are not checked; 'serve' refuses such a rule by
name (in /debug/registryz, xdsProblems).

Exit status: 0 no problem (a summary line is printed), 1 problems found,
2 usage error (no path given, a path that cannot be read, an unknown --client).

Options:
  --client KIND   the clients the rules are for: envoy (sidecars), grpc
                  (proxyless gRPC clients) or dubbo (Dubbo calls through
                  sidecars); default: envoy and grpc, gRPC gaps as warnings
  -h, --help      this text
`;

const CLIENTS = ['envoy', 'grpc', 'dubbo'] as const;

export async function validate(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { help: { type: 'boolean', short: 'h' }, client: { type: 'string' } }, strict: true, allowPositionals: true });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (parsed.values.help) {
    process.stdout.write(VALIDATE_HELP);
    return 0;
  }
  if (parsed.positionals.length === 0) throw new UsageError('validate needs at least one FILE or DIR');
  const client = parsed.values.client;
  if (client !== undefined && !(CLIENTS as readonly string[]).includes(client)) throw new UsageError(`--client "${client}": expected one of ${CLIENTS.join(', ')}`);

  const files: string[] = [];
  for (const p of parsed.positionals) files.push(...(await manifestFiles(p)));

  const served: ServedFile[] = [];
  let documents = 0;
  for (const file of files) {
    const text = await readText(file);
    if (typeof text !== 'string') {
      served.push(serveFailure(file, { source: file, reason: text.reason }));
      continue;
    }
    const result = parseManifests(text, file);
    documents += result.documents.length;
    served.push(serveFile(file, result));
  }
  const all = collect(served);
  const index = all.services.length > 0 ? hostIndex(all.services) : undefined;
  const rules = checkRules(all.virtualServices, all.destinationRules, index);
  const problems = [...all.rejections, ...rules.rejections];
  const warnings = [...all.warnings, ...rules.warnings];
  if (client === undefined || client === 'grpc') (client === 'grpc' ? problems : warnings).push(...proxylessGaps(all.virtualServices, all.destinationRules));
  if (client === 'dubbo') problems.push(...dubboGaps(all.virtualServices));
  const lines = sortLines([...problems.map((r) => line(r, false)), ...warnings.map((r) => line(r, true))], files);
  for (const l of lines) process.stdout.write(l.text + '\n');
  if (problems.length > 0) return 1;
  const w = warnings.length ? `, ${warnings.length} warning${warnings.length === 1 ? '' : 's'}` : '';
  process.stdout.write(`${documents} document${documents === 1 ? '' : 's'} in ${files.length} file${files.length === 1 ? '' : 's'}: valid${w}\n`);
  return 0;
}

/** Rule settings proxyless gRPC clients cannot apply, as rejections of the rules' documents. */
function proxylessGaps(vss: readonly VirtualService[], drs: readonly DestinationRule[]): Rejection[] {
  const out: Rejection[] = [];
  const add = (kind: string, rule: VirtualService | DestinationRule, refused: readonly Refused[]): void => {
    for (const r of refused) {
      out.push({ ...rule.location, kind, name: `${rule.namespace}/${rule.name}`, field: r.field, reason: `not applied for ${PROXYLESS}: ${r.reason}` });
    }
  };
  for (const vs of vss) add('VirtualService', vs, refusedInVirtualService(vs));
  for (const dr of drs) add('DestinationRule', dr, refusedInDestinationRule(dr));
  return out;
}

/** Rule settings Envoy's Dubbo filter cannot apply, as rejections of the rules' documents. */
function dubboGaps(vss: readonly VirtualService[]): Rejection[] {
  return vss.flatMap((vs) => refusedOnDubbo(vs).map((r) => ({ ...vs.location, kind: 'VirtualService', name: `${vs.namespace}/${vs.name}`, field: r.field, reason: `not applied on Dubbo ports: ${r.reason}` })));
}

/** The manifest files a path names: itself, or the manifests under a directory. */
async function manifestFiles(p: string): Promise<string[]> {
  let st;
  try {
    st = await stat(p);
  } catch (e) {
    throw new UsageError(`cannot read "${p}": ${describeError(e)}`);
  }
  if (!st.isDirectory()) return [p];
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (e) {
      throw new UsageError(`cannot read directory "${dir}": ${describeError(e)}`);
    }
    for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      if (e.name.startsWith('.')) continue;
      const child = path.join(dir, e.name);
      if (e.isDirectory()) await walk(child);
      else if (isManifestName(e.name) && (e.isFile() || (e.isSymbolicLink() && (await stat(child).then((s) => s.isFile(), () => false))))) out.push(child);
    }
  };
  await walk(p);
  if (out.length === 0) throw new UsageError(`no manifest files (*.yaml, *.yml, *.json) under "${p}"`);
  return out;
}

/** The file as text, or why it is not usable as a manifest (a problem, not a usage error). */
async function readText(file: string): Promise<string | { reason: string }> {
  let buf: Buffer;
  try {
    buf = await readFile(file);
  } catch (e) {
    throw new UsageError(`cannot read "${file}": ${describeError(e)}`);
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(buf);
  } catch {
    return { reason: 'file is not UTF-8 text; expected YAML or JSON manifests' };
  }
}

function describeError(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  return err?.code ? `${err.code} (${err.message})` : String(e);
}

interface Line {
  readonly source: string;
  readonly document: number;
  readonly text: string;
}

function line(r: Rejection, warning: boolean): Line {
  const place = r.document !== undefined ? `${r.source}:${r.document}` : r.source;
  const what = r.kind !== undefined || r.name !== undefined ? ` (${[r.kind, r.name].filter((x) => x !== undefined).join(' ')})` : '';
  const field = r.field ? `${r.field}: ` : '';
  return { source: r.source, document: r.document ?? -1, text: `${place}: ${field}${warning ? 'warning: ' : ''}${r.reason}${what}` };
}

/** File order as given, then document order; problems before warnings within a document. */
function sortLines(lines: Line[], files: readonly string[]): Line[] {
  const order = new Map(files.map((f, i) => [f, i]));
  const rank = (l: Line): number => order.get(l.source) ?? files.length;
  return lines
    .map((l, i) => ({ l, i }))
    .sort((a, b) => rank(a.l) - rank(b.l) || a.l.document - b.l.document || a.i - b.i)
    .map((x) => x.l);
}
