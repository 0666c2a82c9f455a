// Top costs of a V8 CPU profile (node --cpu-prof, or `bench/run.ts --profile`): self and
// inclusive time per function, as shares of the sampled non-idle time.
// Usage: node bench/profile-top.ts FILE.cpuprofile [--top 25] [--last SECONDS] [--stretches N]
// --last keeps only the samples of the profile's last SECONDS (e.g. the endpoint changes).
// --stretches N: the N longest runs of samples without idle between them, with their main
// stacks: where the event loop was held, e.g. what kept an admin request waiting.
import fs from 'node:fs';
import { parseArgs } from 'node:util';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '25' }, last: { type: 'string' }, stretches: { type: 'string' } } });
const file = positionals[0];
if (!file) throw new Error('usage: node bench/profile-top.ts FILE.cpuprofile [--top N]');
const prof = JSON.parse(fs.readFileSync(file, 'utf8')) as { nodes: Node[]; samples: number[]; timeDeltas: number[] };
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const self = new Map<number, number>(); // node id → µs
const at: number[] = [];
prof.timeDeltas.reduce((t, d, i) => (at[i] = t + d), 0);
const from = values.last ? at[at.length - 1]! - Number(values.last) * 1e6 : -Infinity;
prof.samples.forEach((id, i) => {
  if (at[i]! >= from) self.set(id, (self.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0));
});

const key = (n: Node): string => {
  const url = n.callFrame.url.replace(/^file:\/\//, '').replace(/^.*\/(src|bench|node_modules)\//, '$1/');
  return `${n.callFrame.functionName || '(anonymous)'} ${url ? `${url}:${n.callFrame.lineNumber + 1}` : ''}`.trim();
};
const IDLE = new Set(['(idle)', '(program)', '(root)']);
let total = 0;
const selfBy = new Map<string, number>();
const inclBy = new Map<string, number>();
for (const [id, us] of self) {
  const n = byId.get(id)!;
  if (IDLE.has(n.callFrame.functionName)) continue;
  total += us;
  selfBy.set(key(n), (selfBy.get(key(n)) ?? 0) + us);
  // Inclusive: once per distinct function on the stack.
  const seen = new Set<string>();
  for (let x: number | undefined = id; x !== undefined; x = parent.get(x)) {
    const k = key(byId.get(x)!);
    if (seen.has(k)) continue;
    seen.add(k);
    inclBy.set(k, (inclBy.get(k) ?? 0) + us);
  }
}
process.stdout.on('error', () => process.exit(0)); // piped into head
const top = Number(values.top);
const show = (title: string, m: Map<string, number>): void => {
  process.stdout.write(`${title} (of ${(total / 1e6).toFixed(2)} s sampled, idle excluded)\n`);
  for (const [k, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    process.stdout.write(`${((100 * us) / total).toFixed(1).padStart(5)} %  ${(us / 1e6).toFixed(2).padStart(6)} s  ${k}\n`);
  }
  process.stdout.write('\n');
};
show('self time', selfBy);
inclBy.delete('(root)');
show('inclusive time', inclBy);

if (values.stretches) {
  // Consecutive non-idle samples: the loop never got back to I/O in between.
  const runs: { start: number; end: number; ids: number[] }[] = [];
  let cur: { start: number; end: number; ids: number[] } | undefined;
  prof.samples.forEach((id, i) => {
    if (at[i]! < from) return;
    if (IDLE.has(byId.get(id)!.callFrame.functionName)) {
      if (cur) runs.push(cur);
      cur = undefined;
    } else {
      cur ??= { start: at[i]!, end: at[i]!, ids: [] };
      cur.end = at[i]!;
      cur.ids.push(id);
    }
  });
  if (cur) runs.push(cur);
  const stack = (id: number): string => {
    const names: string[] = [];
    for (let x: number | undefined = id; x !== undefined; x = parent.get(x)) names.push(byId.get(x)!.callFrame.functionName || '(anonymous)');
    return names.reverse().slice(1, 10).join(' > ');
  };
  for (const r of runs.sort((a, b) => b.end - b.start - (a.end - a.start)).slice(0, Number(values.stretches))) {
    process.stdout.write(`busy ${((r.end - r.start) / 1000).toFixed(0)} ms from ${((r.start - at[0]!) / 1e6).toFixed(2)} s:\n`);
    const counts = new Map<string, number>();
    for (const id of r.ids) counts.set(stack(id), (counts.get(stack(id)) ?? 0) + 1);
    for (const [st, c] of [...counts].sort((a, b) => b[1] - a[1]).slice(0, 3)) process.stdout.write(`  ${String(c).padStart(5)}  ${st}\n`);
  }
}
