import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { stringify } from 'yaml';
import type { Rejection } from '../../../../src/model/types.ts';
import { collect, parseManifests, type ParsedFile, serveFile } from '../../../../src/registries/file/index.ts';

const REG = 'file:///etc/isthmus';
const parse = (text: string, source = 'conf/a.yaml'): ParsedFile => parseManifests(text, source, { registry: REG });

function validSpec(): Record<string, unknown> {
  return {
    hosts: ['web.demo.local'],
    location: 'MESH_INTERNAL',
    resolution: 'STATIC',
    ports: [{ number: 80, name: 'http', protocol: 'HTTP', targetPort: 8081 }],
    endpoints: [{ address: '10.0.0.1' }],
  };
}

/** A ServiceEntry document; `patch` replaces spec fields (undefined deletes one). */
function se(name: string, patch: Record<string, unknown> = {}): Record<string, unknown> {
  const spec: Record<string, unknown> = { ...validSpec(), ...patch };
  for (const k of Object.keys(spec)) if (spec[k] === undefined) delete spec[k];
  return { apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry', metadata: { name }, spec };
}

const yamlOf = (...docs: unknown[]): string => docs.map((d) => stringify(d)).join('---\n');

function rejections(f: ParsedFile): Rejection[] {
  return f.documents.flatMap((d) => (d.ok ? [] : d.rejections));
}

describe('parseManifests: valid documents', () => {
  it('maps a ServiceEntry and a WorkloadEntry to the model', () => {
    const text = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: web, namespace: shop }
spec:
  hosts: [web.shop.local, www.shop.local]
  addresses: [240.240.0.10, 10.1.0.0/16]
  location: MESH_INTERNAL
  resolution: STATIC
  exportTo: ["."]
  subjectAltNames: ["spiffe://cluster.local/ns/shop/sa/web"]
  ports:
    - { number: 80, name: http, protocol: HTTP, targetPort: 8081 }
    - { number: 443, name: https, protocol: https }
  endpoints:
    - address: 10.0.0.1
      ports: { http: 9080 }
      labels: { version: v1 }
      locality: cn-east/zone-a/rack-1
      weight: 3
      network: net1
      serviceAccount: web
---
apiVersion: networking.istio.io/v1beta1
kind: WorkloadEntry
metadata: { name: echo-1 }
spec: { address: 10.0.0.2, labels: { app: echo }, ports: { tcp: 9001 }, locality: cn-east, serviceAccount: echo }
`;
    const f = parse(text);
    assert.equal(f.yamlError, undefined);
    assert.deepEqual(rejections(f), []);
    const [d0, d1] = f.documents;
    assert.ok(d0?.ok && d1?.ok);
    const origin0 = { registry: REG, ref: 'conf/a.yaml#0 ServiceEntry shop/web' };
    // Istio's semantics: each host of the entry is a service of its own, with its endpoints.
    const svc = (hostname: string): object => ({
      hostname,
      aliases: [],
      namespace: 'shop',
      ports: [
        { name: 'http', number: 80, protocol: 'HTTP', targetPort: 8081 },
        { name: 'https', number: 443, protocol: 'HTTPS' },
      ],
      addresses: ['240.240.0.10', '10.1.0.0/16'],
      resolution: 'STATIC',
      location: 'MESH_INTERNAL',
      interfaces: [],
      origin: origin0,
    });
    assert.deepEqual(d0.services, [svc('web.shop.local'), svc('www.shop.local')]);
    const ep = (service: string): object => ({
      service,
      address: '10.0.0.1',
      ports: { http: 9080 },
      labels: { version: 'v1' },
      locality: { region: 'cn-east', zone: 'zone-a', subzone: 'rack-1' },
      weight: 3,
      health: 'HEALTHY',
      origin: origin0,
      // serviceAccount, in the entry's namespace: the workload's identity
      identity: { namespace: 'shop', serviceAccount: 'web' },
    });
    assert.deepEqual(d0.endpoints, [ep('web.shop.local'), ep('www.shop.local')]);
    assert.deepEqual(d1.workloads, [
      {
        name: 'echo-1',
        namespace: 'default',
        address: '10.0.0.2',
        labels: { app: 'echo' },
        ports: { tcp: 9001 },
        locality: { region: 'cn-east' },
        weight: 1,
        health: 'HEALTHY',
        origin: { registry: REG, ref: 'conf/a.yaml#1 WorkloadEntry default/echo-1' },
        identity: { namespace: 'default', serviceAccount: 'echo' },
      },
    ]);
  });

  it('applies Istio defaults and maps protocols and resolutions', () => {
    const f = parse(
      yamlOf(
        se('a', { resolution: undefined, location: undefined, endpoints: undefined, ports: [{ number: 27017, name: 'mongo', protocol: 'MONGO' }, { number: 1, name: 'raw' }] }),
        se('b', { resolution: 'DNS_ROUND_ROBIN', endpoints: [{ address: 'db.example.com' }], ports: [{ number: 50051, name: 'grpc', protocol: 'grpc' }] }),
        { ...se('c', { workloadSelector: { labels: { app: 'c' } }, endpoints: undefined }), apiVersion: 'networking.istio.io/v1alpha3' },
      ),
    );
    assert.deepEqual(rejections(f), []);
    const svc = f.documents.flatMap((d) => (d.ok ? d.services : []));
    assert.deepEqual(svc.map((s) => [s.resolution, s.location, s.ports.map((p) => p.protocol)]), [
      ['NONE', 'MESH_EXTERNAL', ['TCP', 'TCP']],
      ['DNS', 'MESH_INTERNAL', ['GRPC']],
      ['STATIC', 'MESH_INTERNAL', ['HTTP']],
    ]);
    assert.deepEqual(svc[2]?.workloadSelector, { app: 'c' });
  });

  it('reads a single JSON object from a .json file', () => {
    const f = parse(JSON.stringify(se('j')), 'conf/j.json');
    assert.equal(f.documents.length, 1);
    assert.ok(f.documents[0]?.ok);
    assert.equal(f.documents[0].services[0]?.origin.ref, 'conf/j.json#0 ServiceEntry default/j');
  });

  it('skips empty documents but keeps document indexes', () => {
    const f = parse(`---\n# only a comment\n---\n${stringify(se('x'))}---\n`);
    assert.deepEqual(f.documents.map((d) => [d.index, d.ok]), [[1, true]]);
  });
});

describe('parseManifests: rejections', () => {
  // Each case: a bad document placed between two good ones, so it is document 1.
  const cases: { name: string; doc: unknown; field: string | undefined; reason: RegExp }[] = [
    { name: 'not a mapping', doc: ['a', 'b'], field: undefined, reason: /document is a list, not a mapping/ },
    { name: 'missing apiVersion', doc: { ...se('x'), apiVersion: undefined }, field: 'apiVersion', reason: /apiVersion is missing; expected networking\.istio\.io\/v1/ },
    { name: 'unknown apiVersion', doc: { ...se('x'), apiVersion: 'networking.istio.io/v2' }, field: 'apiVersion', reason: /"networking\.istio\.io\/v2" is not supported/ },
    { name: 'unknown kind', doc: { ...se('x'), kind: 'Gateway' }, field: 'kind', reason: /kind "Gateway" is not supported; supported kinds are ServiceEntry, WorkloadEntry, VirtualService, DestinationRule and PeerAuthentication/ },
    { name: 'missing name', doc: { ...se('x'), metadata: { namespace: 'a' } }, field: 'metadata.name', reason: /metadata\.name is missing/ },
    { name: 'bad name', doc: se('Web_1'), field: 'metadata.name', reason: /"Web_1" is not a valid DNS-1123 subdomain/ },
    { name: 'bad namespace', doc: { ...se('x'), metadata: { name: 'x', namespace: 'a.b' } }, field: 'metadata.namespace', reason: /not a valid DNS-1123 label/ },
    { name: 'unknown top-level field', doc: { ...se('x'), extra: 1 }, field: 'extra', reason: /unknown field "extra"/ },
    { name: 'unknown spec field', doc: se('x', { hostz: ['a'] }), field: 'spec.hostz', reason: /unknown field "hostz"; expected one of: hosts, / },
    { name: 'unknown nested field', doc: se('x', { ports: [{ number: 80, name: 'http', protocl: 'HTTP' }] }), field: 'spec.ports[0].protocl', reason: /unknown field "protocl"/ },
    { name: 'unknown endpoint field', doc: se('x', { endpoints: [{ address: '10.0.0.1', zone: 'a' }] }), field: 'spec.endpoints[0].zone', reason: /unknown field "zone"/ },
    { name: 'wrong type', doc: se('x', { hosts: 'web.demo.local' }), field: 'spec.hosts', reason: /spec\.hosts must be a list, not the string "web\.demo\.local"/ },
    { name: 'string port number', doc: se('x', { ports: [{ number: '80', name: 'http' }] }), field: 'spec.ports[0].number', reason: /must be an integer from 1 to 65535, not the string "80"/ },
    { name: 'port out of range', doc: se('x', { ports: [{ number: 65536, name: 'http' }] }), field: 'spec.ports[0].number', reason: /65536, out of range; expected an integer from 1 to 65535/ },
    { name: 'target port zero', doc: se('x', { ports: [{ number: 80, name: 'http', targetPort: 0 }] }), field: 'spec.ports[0].targetPort', reason: /out of range/ },
    { name: 'weight out of range', doc: se('x', { endpoints: [{ address: '10.0.0.1', weight: 4294967296 }] }), field: 'spec.endpoints[0].weight', reason: /from 0 to 4294967295/ },
    { name: 'bad resolution', doc: se('x', { resolution: 'static' }), field: 'spec.resolution', reason: /"static" is not valid; expected one of: NONE, STATIC, DNS, DNS_ROUND_ROBIN/ },
    { name: 'bad location', doc: se('x', { location: 'INTERNAL' }), field: 'spec.location', reason: /expected one of: MESH_EXTERNAL, MESH_INTERNAL/ },
    { name: 'bad protocol', doc: se('x', { ports: [{ number: 80, name: 'http', protocol: 'SMTP' }] }), field: 'spec.ports[0].protocol', reason: /protocol "SMTP" is not supported; expected one of: HTTP, / },
    { name: 'UDP', doc: se('x', { ports: [{ number: 53, name: 'dns', protocol: 'UDP' }] }), field: 'spec.ports[0].protocol', reason: /UDP .* not supported by Isthmus/ },
    { name: 'bad address', doc: se('x', { addresses: ['240.240.0.300'] }), field: 'spec.addresses[0]', reason: /"240\.240\.0\.300" is not an IP address or CIDR block/ },
    { name: 'bad CIDR', doc: se('x', { addresses: ['10.0.0.0/33'] }), field: 'spec.addresses[0]', reason: /not an IP address or CIDR block/ },
    { name: 'CIDR with DNS', doc: se('x', { addresses: ['10.0.0.0/24'], resolution: 'DNS' }), field: 'spec.addresses[0]', reason: /allowed only with resolution NONE or STATIC/ },
    { name: 'host not a DNS name', doc: se('x', { hosts: ['web_1.local'] }), field: 'spec.hosts[0]', reason: /"web_1\.local" is not a valid DNS name/ },
    { name: 'host "*"', doc: se('x', { hosts: ['*'], location: 'MESH_EXTERNAL' }), field: 'spec.hosts[0]', reason: /host "\*" is not allowed/ },
    { name: 'internal wildcard', doc: se('x', { hosts: ['*.demo.local'] }), field: 'spec.hosts[0]', reason: /allowed only with location MESH_EXTERNAL/ },
    { name: 'no hosts', doc: se('x', { hosts: [] }), field: 'spec.hosts', reason: /at least one host/ },
    { name: 'duplicate port number', doc: se('x', { ports: [{ number: 80, name: 'a' }, { number: 80, name: 'b' }] }), field: 'spec.ports[1].number', reason: /port number 80 is already used by spec\.ports\[0\]/ },
    { name: 'duplicate port name', doc: se('x', { ports: [{ number: 80, name: 'a' }, { number: 81, name: 'a' }] }), field: 'spec.ports[1].name', reason: /port name "a" is already used by spec\.ports\[0\]/ },
    { name: 'port without name', doc: se('x', { ports: [{ number: 80 }] }), field: 'spec.ports[0].name', reason: /name is missing/ },
    { name: 'endpoints with selector', doc: se('x', { workloadSelector: { labels: { app: 'x' } } }), field: 'spec.endpoints', reason: /only one of them/ },
    { name: 'STATIC with hostname', doc: se('x', { endpoints: [{ address: 'web.example.com' }] }), field: 'spec.endpoints[0].address', reason: /resolution STATIC needs IP addresses/ },
    { name: 'NONE with endpoints', doc: se('x', { resolution: 'NONE' }), field: 'spec.endpoints', reason: /must be empty when resolution is NONE/ },
    { name: 'undeclared endpoint port', doc: se('x', { endpoints: [{ address: '10.0.0.1', ports: { grpc: 9090 } }] }), field: 'spec.endpoints[0].ports.grpc', reason: /port "grpc" is not declared in spec\.ports; declared port names: http/ },
    { name: 'bad locality', doc: se('x', { endpoints: [{ address: '10.0.0.1', locality: 'a/b/c/d' }] }), field: 'spec.endpoints[0].locality', reason: /expected region, region\/zone or region\/zone\/subzone/ },
    { name: 'numeric label', doc: se('x', { endpoints: [{ address: '10.0.0.1', labels: { version: 2 } }] }), field: 'spec.endpoints[0].labels.version', reason: /must be a string, not the number 2 \(quote it\)/ },
    { name: 'bad label key', doc: se('x', { endpoints: [{ address: '10.0.0.1', labels: { '-x': 'a' } }] }), field: 'spec.endpoints[0].labels["-x"]', reason: /label key "-x" is invalid/ },
    { name: 'several TCP hosts', doc: se('x', { hosts: ['a.local', 'b.local'], ports: [{ number: 9000, name: 'tcp', protocol: 'TCP' }] }), field: 'spec.hosts', reason: /several hosts with a TCP port/ },
    { name: 'wildcard DNS without endpoints', doc: se('x', { hosts: ['*.example.com'], location: 'MESH_EXTERNAL', resolution: 'DNS', endpoints: undefined }), field: 'spec.hosts[0]', reason: /is a wildcard; with resolution DNS/ },
    { name: 'WorkloadEntry with a service account that is no Kubernetes name', doc: { apiVersion: 'networking.istio.io/v1', kind: 'WorkloadEntry', metadata: { name: 'w' }, spec: { address: '10.0.0.1', serviceAccount: 'Orders_SA' } }, field: 'spec.serviceAccount', reason: /service account "Orders_SA" is not a Kubernetes name/ },
    { name: 'WorkloadEntry without address', doc: { apiVersion: 'networking.istio.io/v1', kind: 'WorkloadEntry', metadata: { name: 'w' }, spec: { labels: { app: 'a' } } }, field: 'spec.address', reason: /spec\.address is missing/ },
    { name: 'WorkloadEntry bad port', doc: { apiVersion: 'networking.istio.io/v1', kind: 'WorkloadEntry', metadata: { name: 'w' }, spec: { address: '10.0.0.1', ports: { tcp: 0 } } }, field: 'spec.ports.tcp', reason: /0, out of range/ },
    { name: 'missing spec', doc: { apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry', metadata: { name: 'x' } }, field: 'spec', reason: /spec is missing/ },
  ];

  for (const c of cases) {
    it(`rejects ${c.name}, and still serves the other documents`, () => {
      const f = parse(yamlOf(se('before'), c.doc, se('after')));
      assert.equal(f.yamlError, undefined);
      assert.deepEqual(f.documents.map((d) => [d.index, d.ok]), [[0, true], [1, false], [2, true]]);
      const rs = rejections(f);
      assert.ok(rs.length >= 1);
      const r = rs.find((x) => x.field === c.field && c.reason.test(x.reason));
      assert.ok(r, `no rejection on ${c.field} matching ${c.reason}; got ${JSON.stringify(rs, null, 1)}`);
      assert.equal(r.source, 'conf/a.yaml');
      assert.equal(r.document, 1);
    });
  }

  it('names the kind and the object in the rejection', () => {
    const [r] = rejections(parse(yamlOf(se('web', { ports: [{ number: 0, name: 'http' }] }))));
    assert.deepEqual(r, {
      source: 'conf/a.yaml',
      document: 0,
      kind: 'ServiceEntry',
      name: 'web',
      field: 'spec.ports[0].number',
      reason: 'spec.ports[0].number is 0, out of range; expected an integer from 1 to 65535',
    });
  });

  it('reports every problem of a document, not just the first', () => {
    const doc = se('x', { hosts: ['bad host'], resolution: 'MAYBE', ports: [{ number: 0, name: 'HTTP', protocol: 'FOO' }], extra: true });
    const fields = rejections(parse(yamlOf(doc))).map((r) => r.field).sort();
    assert.deepEqual(fields, ['spec.extra', 'spec.hosts[0]', 'spec.ports[0].name', 'spec.ports[0].number', 'spec.ports[0].protocol', 'spec.resolution']);
  });

  it('rejects a YAML syntax error for the whole file, with its line', () => {
    const f = parse(`${stringify(se('ok'))}---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: [unclosed\n`);
    assert.deepEqual(f.documents, []);
    assert.equal(f.yamlError?.source, 'conf/a.yaml');
    assert.match(f.yamlError?.reason ?? '', /^YAML syntax error at line 2\d, column \d+/);
  });

  it('rejects duplicate keys as a syntax error', () => {
    const f = parse('apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nkind: WorkloadEntry\n');
    assert.match(f.yamlError?.reason ?? '', /YAML syntax error at line 3.*unique/);
  });

  it('rejects a JSON syntax error with its line', () => {
    const f = parse('{\n "apiVersion": "networking.istio.io/v1",\n "kind": }\n', 'conf/b.json');
    assert.match(f.yamlError?.reason ?? '', /^JSON syntax error at line 3/);
  });

  it('survives binary junk and alias bombs', () => {
    const junk = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 256)).toString('latin1');
    const f = parse(junk);
    assert.ok(f.yamlError || f.documents.every((d) => !d.ok));
    const bomb = 'a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n';
    assert.match(parse(bomb).yamlError?.reason ?? '', /cannot be read/);
  });
});

describe('serving: last good versions and duplicates', () => {
  it('keeps the last good version of a document that became invalid', () => {
    const v1 = serveFile('conf/a.yaml', parse(yamlOf(se('web'), se('api', { hosts: ['api.local'] }))));
    const v2 = serveFile('conf/a.yaml', parse(yamlOf(se('web', { ports: [{ number: 0, name: 'http' }] }), se('api', { hosts: ['api2.local'] }))), v1);
    assert.deepEqual(v2.docs.map((d) => d.services[0]?.hostname), ['web.demo.local', 'api2.local']);
    assert.equal(v2.rejections.length, 1);
    assert.match(v2.rejections[0]!.reason, /last good version of this document is still served/);
    const v3 = serveFile('conf/a.yaml', parse('a: [\n'), v2);
    assert.deepEqual(v3.docs, v2.docs);
    assert.match(v3.rejections[0]!.reason, /^YAML syntax error.*last good version of this file/);
  });

  it('lets the first definition win and names it in the later one', () => {
    const a = serveFile('conf/a.yaml', parse(yamlOf(se('web')), 'conf/a.yaml'));
    const b = serveFile('conf/b.yaml', parse(yamlOf(se('other', { hosts: ['other.local'] }), se('web', { hosts: ['web2.local'] })), 'conf/b.yaml'));
    const all = collect([a, b]);
    assert.deepEqual(all.services.map((s) => s.hostname), ['web.demo.local', 'other.local']);
    assert.deepEqual(all.rejections, [
      {
        source: 'conf/b.yaml',
        document: 1,
        kind: 'ServiceEntry',
        name: 'web',
        field: 'metadata.name',
        reason: 'ServiceEntry default/web is already defined in conf/a.yaml#0; the first definition wins and this one is ignored',
      },
    ]);
  });
});
