// Moves source files and rewrites every relative import in src/, test/ and bench/ to match.
// Usage: node scripts/dev/move.mjs FROM:TO [FROM:TO ...]   (paths relative to the repo root)
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const moves = new Map(process.argv.slice(2).map((a) => a.split(':').map((p) => path.resolve(root, p))));
const files = execFileSync('git', ['ls-files', 'src', 'test', 'bench', '*.ts'], { cwd: root, encoding: 'utf8' })
  .split('\n').filter((f) => f.endsWith('.ts')).map((f) => path.resolve(root, f));
const after = (abs) => moves.get(abs) ?? abs;
const spec = /((?:from|import)\s*\(?\s*)'(\.{1,2}\/[^']+)'/g;
for (const file of files) {
  const text = fs.readFileSync(file, 'utf8');
  const dest = after(file);
  const out = text.replace(spec, (all, head, s) => {
    const target = after(path.resolve(path.dirname(file), s));
    let rel = path.relative(path.dirname(dest), target);
    if (!rel.startsWith('.')) rel = `./${rel}`;
    return `${head}'${rel}'`;
  });
  if (dest !== file) {
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    execFileSync('git', ['mv', file, dest], { cwd: root });
  }
  if (out !== text) fs.writeFileSync(dest, out);
}
