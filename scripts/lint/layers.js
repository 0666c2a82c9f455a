// ESLint rules for the layers of src/ (docs/ARCHITECTURE.md):
//   isthmus/layers    an import that runs the wrong way between layers
//   isthmus/no-cycle  an import that closes a cycle among src/ files (type-only imports count)
import fs from 'node:fs';
import path from 'node:path';

const SRC = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../src');

/**
 * Which layers each layer may import. A file's layer is its first directory under src/;
 * files directly in src/ and in cli/ compose everything (the composition root).
 */
export const LAYERS = {
  shared: ['shared'],
  generated: [],
  model: ['shared', 'model'],
  registries: ['shared', 'model', 'registries'],
  addresses: ['shared', 'model', 'addresses'],
  xds: ['shared', 'model', 'generated', 'xds'],
  dns: ['shared', 'model', 'dns'],
  admin: ['shared', 'model', 'admin'],
  ca: ['shared', 'model', 'ca'],
  // isthmus agent: a program of its own beside Envoy (CA client, SDS encoded with the Envoy protos).
  agent: ['shared', 'model', 'generated', 'xds', 'ca', 'agent'],
  pipeline: ['shared', 'model', 'addresses', 'pipeline'],
};
const ROOT_LAYERS = new Set(['', 'cli']);

export function layerOf(file) {
  const rel = path.relative(SRC, file);
  if (rel.startsWith('..')) return undefined;
  const parts = rel.split(path.sep);
  return parts.length === 1 ? '' : parts[0];
}

function specifiers(node) {
  const out = [];
  const add = (src) => src && typeof src.value === 'string' && out.push(src);
  for (const s of node.body) {
    if (s.type === 'ImportDeclaration' || s.type === 'ExportAllDeclaration' || s.type === 'ExportNamedDeclaration') add(s.source);
  }
  return out;
}

const layers = {
  meta: { type: 'problem', docs: { description: 'imports follow the layers of src/' }, schema: [] },
  create(context) {
    const file = context.filename;
    const from = layerOf(file);
    if (from === undefined || ROOT_LAYERS.has(from)) return {};
    const allowed = LAYERS[from];
    return {
      Program(node) {
        for (const src of specifiers(node)) {
          if (!src.value.startsWith('.')) continue;
          const to = layerOf(path.resolve(path.dirname(file), src.value));
          if (to === undefined) continue;
          if (!allowed) {
            context.report({ node: src, message: `src/${from}/ is not a known layer: add it to LAYERS in scripts/lint/layers.js and docs/ARCHITECTURE.md` });
          } else if (!allowed.includes(to)) {
            const target = to === '' ? 'the composition root (src/*.ts)' : `${to}/`;
            context.report({ node: src, message: `${from}/ may not import ${target} (${src.value}); ${from}/ may import ${allowed.map((l) => `${l}/`).join(', ')}` });
          }
        }
      },
    };
  },
};

// The import graph of src/, read once per lint run.
let graph;
const IMPORT = /^\s*(?:import|export)\s[^'";]*?from\s*'(\.[^']+)'|^\s*import\s*'(\.[^']+)'/gm;
function importGraph() {
  if (graph) return graph;
  graph = new Map();
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (p.endsWith('.ts')) {
        const text = fs.readFileSync(p, 'utf8');
        const deps = new Set();
        for (const m of text.matchAll(IMPORT)) deps.add(path.resolve(dir, m[1] ?? m[2]));
        graph.set(p, deps);
      }
    }
  };
  walk(SRC);
  return graph;
}

/** A path of imports from `start` back to `target`, if there is one. */
function pathBack(g, start, target) {
  const seen = new Set([start]);
  const prev = new Map();
  const queue = [start];
  while (queue.length) {
    const n = queue.shift();
    if (n === target) {
      const chain = [n];
      for (let c = n; prev.has(c); ) chain.unshift((c = prev.get(c)));
      return chain;
    }
    for (const d of g.get(n) ?? []) {
      if (seen.has(d)) continue;
      seen.add(d);
      prev.set(d, n);
      queue.push(d);
    }
  }
  return undefined;
}

const noCycle = {
  meta: { type: 'problem', docs: { description: 'no import cycles among src/ files' }, schema: [] },
  create(context) {
    const file = context.filename;
    if (layerOf(file) === undefined) return {};
    return {
      Program(node) {
        const g = importGraph();
        for (const src of specifiers(node)) {
          if (!src.value.startsWith('.')) continue;
          const to = path.resolve(path.dirname(file), src.value);
          const back = pathBack(g, to, file);
          if (back) context.report({ node: src, message: `import cycle: ${[file, ...back].map((f) => path.relative(SRC, f)).join(' → ')}` });
        }
      },
    };
  },
};

export default { rules: { layers, 'no-cycle': noCycle } };
