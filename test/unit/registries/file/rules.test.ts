// Rule documents in the file registry: parsed beside ServiceEntries, served last-good like them.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { stringify } from 'yaml';
import { collect, parseManifests, type ParsedFile, serveFile } from '../../../../src/registries/file/index.ts';

const REG = 'file:///etc/isthmus';
const parse = (text: string, source = 'conf/r.yaml'): ParsedFile => parseManifests(text, source, { registry: REG });
const yamlOf = (...docs: unknown[]): string => docs.map((d) => stringify(d)).join('---\n');

const vs = (name: string, timeout: unknown, extra: Record<string, unknown> = {}): unknown => ({
  apiVersion: 'networking.istio.io/v1',
  kind: 'VirtualService',
  metadata: { name, namespace: 'shop' },
  spec: { hosts: [`${name}.shop.local`], http: [{ route: [{ destination: { host: `${name}.shop.local`, subset: 'v1' } }], timeout }], ...extra },
});
const dr = (name: string, subsets: unknown[]): unknown => ({
  apiVersion: 'networking.istio.io/v1',
  kind: 'DestinationRule',
  metadata: { name, namespace: 'shop' },
  spec: { host: `${name}.shop.local`, subsets },
});
const se = {
  apiVersion: 'networking.istio.io/v1',
  kind: 'ServiceEntry',
  metadata: { name: 'web', namespace: 'shop' },
  spec: { hosts: ['web.shop.local'], resolution: 'STATIC', location: 'MESH_INTERNAL', ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], endpoints: [{ address: '10.0.0.1' }] },
};

describe('file registry: VirtualService and DestinationRule documents', () => {
  it('collects valid rules with their origin, beside services', () => {
    const all = collect([serveFile('conf/r.yaml', parse(yamlOf(se, vs('web', '2s'), dr('web', [{ name: 'v1', labels: { version: 'v1' } }]))))]);
    assert.deepEqual(all.rejections, []);
    assert.deepEqual(all.services.map((s) => s.hostname), ['web.shop.local']);
    assert.deepEqual(all.virtualServices.map((v) => [v.name, v.origin.ref, v.spec.http[0]?.timeoutMs]), [['web', 'conf/r.yaml#1 VirtualService shop/web', 2000]]);
    assert.deepEqual(all.destinationRules.map((d) => [d.name, d.origin, d.location]), [['web', { registry: REG, ref: 'conf/r.yaml#2 DestinationRule shop/web' }, { source: 'conf/r.yaml', document: 2 }]]);
  });

  it('keeps serving the last good version of a rule broken by an edit, and says so', () => {
    const v1 = serveFile('conf/r.yaml', parse(yamlOf(vs('web', '2s'), dr('web', [{ name: 'v1' }]))));
    const v2 = serveFile('conf/r.yaml', parse(yamlOf(vs('web', 'soon'), dr('web', [{ name: 'v1' }, { name: 'v1' }]))), v1);
    const all = collect([v2]);
    assert.deepEqual(all.virtualServices.map((v) => v.spec.http[0]?.timeoutMs), [2000]);
    assert.deepEqual(all.destinationRules.map((d) => d.spec.subsets.map((s) => s.name)), [['v1']]);
    assert.deepEqual(all.rejections.map((r) => [r.document, r.kind, r.field]), [
      [0, 'VirtualService', 'spec.http[0].timeout'],
      [1, 'DestinationRule', 'spec.subsets[1].name'],
    ]);
    for (const r of all.rejections) assert.match(r.reason, /; the last good version of this document is still served$/);
  });

  it('rejects a rule defined twice (kind/namespace/name) across files, keeping the first', () => {
    const a = serveFile('conf/a.yaml', parse(yamlOf(vs('web', '1s')), 'conf/a.yaml'));
    const b = serveFile('conf/b.yaml', parse(yamlOf(vs('web', '3s')), 'conf/b.yaml'));
    const all = collect([a, b]);
    assert.deepEqual(all.virtualServices.map((v) => v.spec.http[0]?.timeoutMs), [1000]);
    assert.deepEqual(all.rejections.map((r) => [r.source, r.document, r.field, r.reason]), [
      ['conf/b.yaml', 0, 'metadata.name', 'VirtualService shop/web is already defined in conf/a.yaml#0; the first definition wins and this one is ignored'],
    ]);
  });

  it('carries warnings of valid documents', () => {
    const all = collect([serveFile('conf/r.yaml', parse(yamlOf(vs('web', '1s', { gateways: ['istio-system/ingress'] }))))]);
    assert.equal(all.virtualServices.length, 1);
    assert.deepEqual(all.warnings.map((w) => [w.source, w.document, w.kind, w.name, w.field]), [['conf/r.yaml', 0, 'VirtualService', 'web', 'spec.gateways']]);
  });
});
