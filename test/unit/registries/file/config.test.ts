// The shipped config/ is what a new user runs first: it must load cleanly and mean what the README says.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { mergeStates } from '../../../../src/model/aggregate.ts';
import { FileRegistry, isManifestName, parseManifests } from '../../../../src/registries/file/index.ts';
import { Recorder } from './helpers.ts';

const CONFIG = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../../config');

function manifests(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => isManifestName(path.basename(f))).sort();
}

describe('config/', () => {
  it('every manifest parses with zero rejections', () => {
    const files = manifests(CONFIG);
    assert.ok(files.includes('demo.yaml'));
    for (const f of files) {
      const parsed = parseManifests(readFileSync(path.join(CONFIG, f), 'utf8'), `config/${f}`);
      assert.equal(parsed.yamlError, undefined, f);
      assert.deepEqual(parsed.documents.flatMap((d) => (d.ok ? [] : d.rejections)), [], f);
    }
  });

  it('serves the demo: web with a static endpoint, echo selecting its workload', async (t) => {
    const rec = new Recorder(new FileRegistry(CONFIG));
    t.after(() => rec.close());
    const state = await rec.next((s) => s.synced, 'config/ to load');
    assert.deepEqual(state.rejections, []);
    const snap = mergeStates([state]);
    const web = snap.lookup('web.demo.local');
    assert.deepEqual(web?.ports, [{ name: 'http', number: 80, protocol: 'HTTP', targetPort: 8081 }]);
    assert.deepEqual(web?.addresses, ['240.240.0.10']);
    assert.equal(web?.resolution, 'STATIC');
    assert.equal(web?.location, 'MESH_INTERNAL');
    assert.deepEqual(snap.endpoints.get('web.demo.local')?.map((e) => [e.address, e.ports]), [['127.0.0.1', {}]]);
    const echo = snap.lookup('echo.demo.local');
    assert.deepEqual(echo?.ports, [{ name: 'tcp', number: 9000, protocol: 'TCP' }]);
    assert.deepEqual(echo?.workloadSelector, { app: 'echo' });
    assert.deepEqual(snap.endpoints.get('echo.demo.local')?.map((e) => [e.address, e.ports]), [['127.0.0.1', { tcp: 9001 }]]);
  });
});
