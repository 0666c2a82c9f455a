// The layer rules of scripts/lint/layers.js, run through ESLint as `npm run lint` runs them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { ESLint } from 'eslint';
import { REPO } from '../../helpers/isthmus.ts';

const eslint = new ESLint({ cwd: REPO });

async function messages(file: string, text: string): Promise<string[]> {
  const [r] = await eslint.lintText(text, { filePath: path.join(REPO, file) });
  return r!.messages.filter((m) => m.ruleId?.startsWith('isthmus/')).map((m) => `${m.ruleId}: ${m.message}`);
}

test('an import that runs the wrong way between layers fails lint, naming both layers', async () => {
  assert.deepEqual(await messages('src/model/probe.ts', "import { XdsCache } from '../xds/cache.ts';\nexport const c = XdsCache;\n"), [
    'isthmus/layers: model/ may not import xds/ (../xds/cache.ts); model/ may import shared/, model/',
  ]);
  const [dnsToXds] = await messages('src/dns/probe.ts', "export { XdsOutput } from '../xds/output.ts';\n");
  assert.match(dnsToXds ?? '', /dns\/ may not import xds\//);
  assert.deepEqual(await messages('src/xds/probe.ts', "import type { ModelSnapshot } from '../model/snapshot.ts';\nexport type M = ModelSnapshot;\n"), []);
});

test('an import that closes a cycle fails lint, showing the cycle', async () => {
  // src/model/types.ts imports src/model/rules/types.ts; importing back from there closes a cycle.
  const found = await messages('src/model/rules/types.ts', "import type { Service } from '../types.ts';\nexport type S = Service;\n");
  assert.ok(found.some((m) => /^isthmus\/no-cycle: import cycle: model\/rules\/types\.ts → model\/types\.ts → model\/rules\/types\.ts/.test(m)), found.join('\n'));
});
