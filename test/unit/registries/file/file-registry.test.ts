import assert from 'node:assert/strict';
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { setLogLevel } from '../../../../src/shared/log.ts';
import { metrics } from '../../../../src/shared/metrics.ts';
import { FileRegistry } from '../../../../src/registries/file/index.ts';
import { hostnames, Recorder, tempDir, until } from './helpers.ts';

setLogLevel('error'); // rejections are expected here; keep the test output readable

function se(name: string, host: string, extra = ''): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: ${name}
spec:
  hosts: [${host}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
    - { number: 80, name: http, protocol: HTTP }
  endpoints:
    - address: 10.0.0.1${extra}
`;
}

const WE = `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: echo-1, namespace: demo }
spec: { address: 10.0.0.9, labels: { app: echo }, ports: { tcp: 9001 } }
`;

function start(t: { after: (fn: () => void) => void }, dir: string, opts = {}): Recorder {
  const rec = new Recorder(new FileRegistry(dir, { settleMs: 20, pollMs: 50, ...opts }));
  t.after(() => rec.close());
  return rec;
}

describe('FileRegistry', () => {
  it('serves every manifest under the directory, recursively, skipping dotfiles and editor files', async (t) => {
    const dir = tempDir(t);
    mkdirSync(path.join(dir, 'sub'));
    mkdirSync(path.join(dir, '.git'));
    writeFileSync(path.join(dir, 'a.yaml'), se('a', 'a.local'));
    writeFileSync(path.join(dir, 'sub', 'b.yml'), `${se('b', 'b.local')}---\n${WE}`);
    writeFileSync(path.join(dir, 'c.json'), JSON.stringify({ apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry', metadata: { name: 'c' }, spec: { hosts: ['c.local'] } }));
    for (const junk of ['.hidden.yaml', 'a.yaml~', '.a.yaml.swp', '4913', 'notes.txt', '.git/x.yaml']) writeFileSync(path.join(dir, junk), 'not: [valid');
    const rec = start(t, dir);
    const s = await rec.next((x) => x.synced, 'first state');
    assert.equal(s.id, `file://${dir}`);
    assert.equal(s.error, undefined);
    assert.deepEqual(hostnames(s), ['a.local', 'c.local', 'b.local']); // a.yaml, c.json, sub/b.yml
    assert.deepEqual(s.rejections, []);
    assert.deepEqual(s.endpoints.map((e) => [e.service, e.address, e.origin.ref]), [
      ['a.local', '10.0.0.1', `${path.join(dir, 'a.yaml')}#0 ServiceEntry default/a`],
      ['b.local', '10.0.0.1', `${path.join(dir, 'sub/b.yml')}#0 ServiceEntry default/b`],
    ]);
    assert.deepEqual(s.workloads.map((w) => [w.namespace, w.name, w.address, w.ports]), [['demo', 'echo-1', '10.0.0.9', { tcp: 9001 }]]);
    assert.equal(rec.states.length, 1);
  });

  it('follows a file that is replaced by rename again and again, as editors and tools save', async (t) => {
    const dir = tempDir(t);
    mkdirSync(path.join(dir, 'sub'));
    for (const f of ['a.yaml', 'sub/b.yaml']) writeFileSync(path.join(dir, f), se(f[0]!, `${f[0]}0.local`));
    const rec = start(t, dir);
    await rec.next((s) => s.synced, 'first state');
    for (let i = 1; i <= 3; i++) {
      for (const f of ['a.yaml', 'sub/b.yaml']) {
        const tmp = path.join(dir, path.dirname(f), `.${path.basename(f)}.tmp`);
        writeFileSync(tmp, se(path.basename(f)[0]!, `${path.basename(f)[0]}${i}.local`));
        renameSync(tmp, path.join(dir, f));
      }
      await rec.next((s) => hostnames(s).join() === `a${i}.local,b${i}.local`, `replacement ${i}`);
    }
  });

  it('emits a new state when a file is edited, added or deleted', async (t) => {
    const dir = tempDir(t);
    writeFileSync(path.join(dir, 'a.yaml'), se('a', 'a.local'));
    const rec = start(t, dir);
    await rec.next((s) => s.synced, 'first state');

    writeFileSync(path.join(dir, 'a.yaml'), se('a', 'a2.local'));
    await rec.next((s) => hostnames(s).join() === 'a2.local', 'the edit');

    mkdirSync(path.join(dir, 'new'));
    writeFileSync(path.join(dir, 'new', 'b.yaml'), se('b', 'b.local'));
    await rec.next((s) => hostnames(s).join() === 'a2.local,b.local', 'the new file in a new directory');

    rmSync(path.join(dir, 'a.yaml'));
    const s = await rec.next((x) => hostnames(x).join() === 'b.local', 'the deletion');
    assert.deepEqual(s.endpoints.map((e) => e.service), ['b.local']);
  });

  it('emits nothing when a file is rewritten with the same content', async (t) => {
    const dir = tempDir(t);
    writeFileSync(path.join(dir, 'a.yaml'), se('a', 'a.local'));
    const rec = start(t, dir);
    const first = await rec.next((s) => s.synced, 'first state');
    const unchanged = (): number => metrics.counter('isthmus_registry_events_total', '').get({ registry: first.id, event: 'unchanged' });
    const before = unchanged();
    writeFileSync(path.join(dir, 'a.yaml'), se('a', 'a.local'));
    await until(() => unchanged() > before, 'the re-read of the unchanged file');
    assert.equal(rec.states.length, 1);
  });

  it('keeps the last good objects of a file with a YAML syntax error', async (t) => {
    const dir = tempDir(t);
    const file = path.join(dir, 'a.yaml');
    writeFileSync(file, `${se('a', 'a.local')}---\n${WE}`);
    writeFileSync(path.join(dir, 'b.yaml'), se('b', 'b.local'));
    const rec = start(t, dir);
    const good = await rec.next((s) => s.synced, 'first state');

    writeFileSync(file, `${se('a', 'changed.local')}  broken: [\n`);
    const s = await rec.next((x) => x.rejections.length > 0, 'the syntax error');
    assert.deepEqual(hostnames(s), ['a.local', 'b.local']);
    assert.deepEqual(s.workloads, good.workloads);
    assert.equal(s.rejections.length, 1);
    assert.equal(s.rejections[0]?.source, file);
    assert.match(s.rejections[0]?.reason ?? '', /^YAML syntax error at line 1\d, .*last good version of this file are still served/);
    assert.equal(metrics.gauge('isthmus_registry_rejections', '').get({ registry: s.id }), 1);

    writeFileSync(file, se('a', 'fixed.local'));
    const fixed = await rec.next((x) => x.rejections.length === 0 && hostnames(x).includes('fixed.local'), 'the fix');
    assert.deepEqual(hostnames(fixed), ['fixed.local', 'b.local']);
    assert.deepEqual(fixed.workloads, []);
  });

  it('keeps the last good version of a document that becomes invalid, and updates the others', async (t) => {
    const dir = tempDir(t);
    const file = path.join(dir, 'a.yaml');
    writeFileSync(file, `${se('a', 'a.local')}---\n${se('b', 'b.local')}`);
    const rec = start(t, dir);
    await rec.next((s) => s.synced, 'first state');

    writeFileSync(file, `${se('a', 'a-new.local', '\n      weight: -5')}---\n${se('b', 'b-new.local')}`);
    const s = await rec.next((x) => hostnames(x).includes('b-new.local'), 'the edit');
    assert.deepEqual(hostnames(s), ['a.local', 'b-new.local']);
    assert.equal(s.rejections.length, 1);
    assert.deepEqual({ ...s.rejections[0], reason: undefined }, {
      source: file, document: 0, kind: 'ServiceEntry', name: 'a', field: 'spec.endpoints[0].weight', reason: undefined,
    });
  });

  it('rejects a document defined twice; the first file in path order wins', async (t) => {
    const dir = tempDir(t);
    writeFileSync(path.join(dir, 'b.yaml'), se('web', 'second.local'));
    writeFileSync(path.join(dir, 'a.yaml'), se('web', 'first.local'));
    const rec = start(t, dir);
    const s = await rec.next((x) => x.synced, 'first state');
    assert.deepEqual(hostnames(s), ['first.local']);
    assert.equal(s.rejections.length, 1);
    assert.equal(s.rejections[0]?.source, path.join(dir, 'b.yaml'));
    assert.match(s.rejections[0]?.reason ?? '', new RegExp(`already defined in ${path.join(dir, 'a.yaml')}#0`));
  });

  it('rejects binary junk and oversized files without crashing, and serves the rest', async (t) => {
    const dir = tempDir(t);
    writeFileSync(path.join(dir, 'a.yaml'), se('a', 'a.local'));
    writeFileSync(path.join(dir, 'junk.yaml'), Buffer.from([0xff, 0xfe, 0x00, 0x01, 0xc3, 0x28, 0x0a]));
    writeFileSync(path.join(dir, 'huge.yaml'), Buffer.alloc(2048, 0x61));
    const rec = start(t, dir, { maxFileBytes: 1024 });
    const s = await rec.next((x) => x.synced, 'first state');
    assert.deepEqual(hostnames(s), ['a.local']);
    const by = Object.fromEntries(s.rejections.map((r) => [path.basename(r.source), r.reason]));
    assert.match(by['junk.yaml'] ?? '', /not UTF-8 text/);
    assert.match(by['huge.yaml'] ?? '', /2048 bytes, larger than the 1024-byte limit/);
  });

  it('reports a missing directory, and syncs when it appears', async (t) => {
    const parent = tempDir(t);
    const dir = path.join(parent, 'later');
    const rec = start(t, dir);
    const s = await rec.next(() => true, 'first state');
    assert.equal(s.synced, false);
    assert.match(s.error ?? '', new RegExp(`cannot read directory ${dir}: ENOENT`));
    assert.deepEqual(s.services, []);

    mkdirSync(dir);
    writeFileSync(path.join(dir, 'a.yaml'), se('a', 'a.local'));
    const ok = await rec.next((x) => x.synced && x.services.length === 1, 'the directory to appear');
    assert.equal(ok.error, undefined);
  });

  it('keeps the last known state when the directory disappears, and says so', async (t) => {
    const dir = tempDir(t);
    writeFileSync(path.join(dir, 'a.yaml'), se('a', 'a.local'));
    const rec = start(t, dir);
    await rec.next((x) => x.synced, 'first state');
    rmSync(dir, { recursive: true });
    const s = await rec.next((x) => x.error !== undefined, 'the error');
    assert.equal(s.synced, true);
    assert.deepEqual(hostnames(s), ['a.local']);

    mkdirSync(dir);
    writeFileSync(path.join(dir, 'b.yaml'), se('b', 'b.local'));
    await rec.next((x) => x.error === undefined && hostnames(x).join() === 'b.local', 'the new directory');
  });

  it('logs each distinct rejection once', async (t) => {
    const dir = tempDir(t);
    writeFileSync(path.join(dir, 'bad.yaml'), se('bad', 'bad_host'));
    writeFileSync(path.join(dir, 'a.yaml'), se('a', 'a.local'));
    const lines: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string | Uint8Array) => (lines.push(String(chunk)), true)) as typeof process.stderr.write;
    setLogLevel('warn');
    t.after(() => {
      process.stderr.write = write;
      setLogLevel('error');
    });
    const rec = start(t, dir);
    await rec.next((x) => x.synced, 'first state');
    writeFileSync(path.join(dir, 'a.yaml'), se('a', 'a2.local'));
    await rec.next((x) => hostnames(x).includes('a2.local'), 'the edit');
    const logged = lines.filter((l) => l.includes('manifest rejected')).map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(logged.length, 1);
    assert.equal(logged[0]?.field, 'spec.hosts[0]');
  });

  it('leaves no watcher or timer behind after unsubscribe', async (t) => {
    const handles = (): string[] => process.getActiveResourcesInfo().filter((r) => r === 'FSEventWrap' || r === 'Timeout').sort();
    await until(() => !handles().includes('FSEventWrap'), 'earlier tests to release their watchers', 2000);
    const before = handles();
    const dir = tempDir(t);
    mkdirSync(path.join(dir, 'sub'));
    writeFileSync(path.join(dir, 'sub', 'a.yaml'), se('a', 'a.local'));
    const rec = new Recorder(new FileRegistry(dir, { settleMs: 500 }));
    const first = await rec.next((x) => x.synced, 'first state');
    assert.ok(handles().includes('FSEventWrap'));
    const fsEvents = (): number => metrics.counter('isthmus_registry_events_total', '').get({ registry: first.id, event: 'fs_event' });
    const seen = fsEvents();
    writeFileSync(path.join(dir, 'sub', 'a.yaml'), se('a', 'b.local'));
    await until(() => fsEvents() > seen, 'the watcher to see the edit'); // the settle timer is now armed
    assert.ok(handles().includes('Timeout'));
    rec.close();
    assert.deepEqual(handles().filter((h) => h === 'Timeout'), before.filter((h) => h === 'Timeout'), 'timers cleared at once');
    await until(() => handles().join() === before.join(), `watchers to be released (before: ${before.join()})`, 2000);
    assert.equal(rec.states.length, 1);
  });
});
