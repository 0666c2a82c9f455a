// protos/manifest.json: the Envoy protos the server loads, checked against what is installed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { checkedManifest, MANIFEST_PATH, ProtoManifestError } from '../../../src/xds/proto.ts';
import { scratchDir } from '../../helpers/processes.ts';

const manifest = JSON.parse(fs.readFileSync(MANIFEST_PATH, 'utf8')) as { source: { package: string; version: string }; files: string[] };

function variant(edit: (m: typeof manifest) => void): string {
  const m = structuredClone(manifest);
  edit(m);
  const p = path.join(scratchDir('proto-manifest'), 'manifest.json');
  fs.writeFileSync(p, JSON.stringify(m));
  return p;
}

test('the manifest pins the version package.json pins, and every listed file is there', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(path.dirname(MANIFEST_PATH), '..', 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  assert.equal(pkg.dependencies[manifest.source.package], manifest.source.version, 'package.json pins the exact version the manifest names');
  const { files, includeDirs } = checkedManifest();
  assert.ok(files.length >= 10);
  for (const f of files) assert.ok(includeDirs.some((d) => fs.existsSync(path.join(d, f))), f);
});

test('another installed version, a missing file or an unreadable manifest stop start-up with what is wrong', () => {
  assert.throws(() => checkedManifest(variant((m) => (m.source.version = '0.0.1'))), (e: unknown) => e instanceof ProtoManifestError && /pinned to @grpc\/grpc-js-xds 0\.0\.1, but 1\.\d+\.\d+ is installed/.test(e.message));
  assert.throws(() => checkedManifest(variant((m) => m.files.push('envoy/nothing/v3/nothing.proto'))), /lacks 1 listed proto file\(s\): envoy\/nothing\/v3\/nothing\.proto/);
  assert.throws(() => checkedManifest('/nonexistent/manifest.json'), /cannot read the proto manifest \/nonexistent\/manifest\.json/);
});
