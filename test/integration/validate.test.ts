// `isthmus validate` as a user runs it: the real CLI on files in a temp directory.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { MAIN, REPO } from '../helpers/isthmus.ts';
import { assertNoLeftovers, runCommand, scratchDir } from '../helpers/processes.ts';

const run = (args: string[], cwd = REPO) => runCommand(process.execPath, [MAIN, 'validate', ...args], { cwd, timeoutMs: 20_000 });

after(() => assertNoLeftovers());

/** Writes files (path → documents or raw text) under a fresh directory. */
function tree(files: Record<string, unknown[] | string | Buffer>): string {
  const dir = scratchDir('validate');
  for (const [rel, content] of Object.entries(files)) {
    const file = path.join(dir, rel);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, Array.isArray(content) ? content.map((d) => stringify(d)).join('---\n') : content);
  }
  return dir;
}

const meta = (name: string, namespace = 'shop') => ({ name, namespace });
const se = (name: string) => ({
  apiVersion: 'networking.istio.io/v1',
  kind: 'ServiceEntry',
  metadata: meta(name),
  spec: { hosts: [`${name}.shop.local`], location: 'MESH_INTERNAL', resolution: 'STATIC', ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], endpoints: [{ address: '10.0.0.1', labels: { version: 'v1' } }] },
});
const dr = (name: string, host: string, subsets: string[]) => ({
  apiVersion: 'networking.istio.io/v1',
  kind: 'DestinationRule',
  metadata: meta(name),
  spec: { host, subsets: subsets.map((s) => ({ name: s, labels: { version: s } })) },
});
const vs = (name: string, host: string, route: unknown[], extra: Record<string, unknown> = {}) => ({
  apiVersion: 'networking.istio.io/v1',
  kind: 'VirtualService',
  metadata: meta(name),
  spec: { hosts: [host], http: [{ route, ...extra }] },
});
const to = (host: string, subset: string, weight?: number) => ({ destination: { host, subset }, ...(weight !== undefined ? { weight } : {}) });

describe('isthmus validate', () => {
  it('has a help text', async () => {
    const r = await run(['--help']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Usage: isthmus validate \[options\] FILE\|DIR\.\.\./);
    assert.match(r.stdout, /FILE:DOC: FIELD: REASON \(KIND NAME\)/);
  });

  it('exits 2 on usage errors, naming what is wrong', async () => {
    const empty = scratchDir('validate-empty');
    fs.writeFileSync(path.join(empty, 'notes.txt'), 'not a manifest');
    const cases: [string[], RegExp][] = [
      [[], /^isthmus: validate needs at least one FILE or DIR$/m],
      [[path.join(empty, 'missing.yaml')], /^isthmus: cannot read ".*missing\.yaml": ENOENT/m],
      [[empty], /^isthmus: no manifest files \(\*\.yaml, \*\.yml, \*\.json\) under ".*validate-empty-\d+"$/m],
      [['--strict', empty], /Unknown option '--strict'/],
    ];
    for (const [args, re] of cases) {
      const r = await run(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, re);
      assert.equal(r.stdout, '');
    }
  });

  it('passes good manifests with a one-line summary, reading directories recursively', async () => {
    const dir = tree({
      'services.yaml': [se('reviews'), se('ratings')],
      'rules/reviews.yaml': [dr('reviews', 'reviews.shop.local', ['v1', 'v2']), vs('reviews', 'reviews.shop.local', [to('reviews.shop.local', 'v1', 90), to('reviews.shop.local', 'v2', 10)])],
      'rules/.hidden.yaml': 'this: [is not read',
      'rules/README.md': '# not a manifest',
    });
    const r = await run([dir]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.stdout, '4 documents in 2 files: valid\n');
    assert.equal(r.stderr, '');
  });

  it('passes the demo configuration shipped in config/', async () => {
    const r = await run(['config']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^\d+ documents in \d+ files?: valid\n$/);
  });

  it('prints one line per problem with file, document, field, reason, kind and name, and exits 1', async () => {
    const dir = tree({
      'a-services.yaml': [se('reviews'), { ...se('bad'), spec: { ...se('bad').spec, ports: [{ number: 'eighty', name: 'http' }] } }],
      'b-rules.yaml': [
        dr('reviews', 'reviews.shop.local', ['v1']),
        vs('canary', 'reviews.shop.local', [to('reviews.shop.local', 'v1', 90), to('reviews.shop.local', 'v2', 20)], { timeout: '1.5', bogus: true }),
        vs('regex', 'ratings.shop.local', [to('ratings.shop.local', 'v1')], { match: [{ uri: { regex: '^/api/(?!internal)' } }] }),
        vs('subset', 'reviews.shop.local', [to('reviews.shop.local', 'v2')]),
        vs('first', 'reviews.shop.local', [to('reviews.shop.local', 'v1')]),
        vs('second', 'reviews.shop.local', [to('reviews.shop.local', 'v1')]),
      ],
      'c-broken.yaml': 'kind: [unclosed\n',
    });
    const a = path.join(dir, 'a-services.yaml');
    const b = path.join(dir, 'b-rules.yaml');
    const c = path.join(dir, 'c-broken.yaml');
    const r = await run([a, b, c]);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stderr, '');
    assert.deepEqual(r.stdout.split('\n'), [
      `${a}:1: spec.ports[0].number: spec.ports[0].number must be an integer from 1 to 65535, not the string "eighty" (ServiceEntry bad)`,
      `${b}:1: spec.http[0].bogus: unknown field "bogus"; expected one of: name, match, route, redirect, rewrite, timeout, retries, fault, mirror, mirrorPercentage, headers (VirtualService canary)`,
      `${b}:1: spec.http[0].route: weights 90 + 20 sum to 110; with more than one destination the weights must sum to 100 (VirtualService canary)`,
      `${b}:1: spec.http[0].timeout: spec.http[0].timeout "1.5" is not a duration; expected a number with a unit (h, m, s, ms, us, ns), e.g. "1s", "1.5s", "100ms", "1m30s" (VirtualService canary)`,
      `${b}:2: spec.http[0].match[0].uri.regex: spec.http[0].match[0].uri.regex "^/api/(?!internal)" does not compile as RE2 (the regex engine of Envoy and Istio): lookahead "(?!" is not supported by RE2 (VirtualService regex)`,
      `${b}:3: spec.http[0].route[0].destination.subset: subset "v2" is not defined by DestinationRule shop/reviews (${b}#0), which defines "v1" (VirtualService subset)`,
      `${b}:5: spec.hosts[0]: host "reviews.shop.local" is already routed by VirtualService shop/first (${b}#4); one VirtualService per host: the first is kept and this one is ignored (merge the two) (VirtualService second)`,
      `${c}:0: YAML syntax error at line 2, column 1 (document 0): Flow sequence in block collection must be sufficiently indented and end with a ]; the whole file is ignored until it is fixed`,
      '',
    ]);
  });

  it('reports warnings without failing, and counts them in the summary', async () => {
    const dir = tree({
      'all.yaml': [
        se('reviews'),
        vs('reviews', 'reviews.shop.local', [to('reviews.shop.local', 'v1')]),
        dr('reviews', 'reviews.shop.local', ['v1']),
        vs('elsewhere', 'unknown.shop.local', [to('reviews.shop.local', 'v1')], { fault: { abort: { httpStatus: 503 } } }),
      ],
    });
    const f = path.join(dir, 'all.yaml');
    const r = await run([f]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.deepEqual(r.stdout.split('\n'), [
      `${f}:3: spec.http[0].fault.abort.percentage: warning: percentage is not set; Istio then leaves every request unaborted; set percentage: { value: 100 } to abort all (VirtualService elsewhere)`,
      `${f}:3: spec.hosts[0]: warning: host "unknown.shop.local" is not a service or interface any registry knows (yet) (VirtualService elsewhere)`,
      '4 documents in 1 file: valid, 2 warnings',
      '',
    ]);
  });

  it('reports a file that is not UTF-8 as a problem of that file', async () => {
    const dir = tree({ 'latin1.yaml': Buffer.from([0x6b, 0x69, 0x6e, 0x64, 0x3a, 0x20, 0xe9, 0x0a]) });
    const f = path.join(dir, 'latin1.yaml');
    const r = await run([dir]);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, `${f}: file is not UTF-8 text; expected YAML or JSON manifests\n`);
  });
});

describe('isthmus validate --client', () => {
  const rules = () => {
    const random = dr('reviews', 'reviews.shop.local', ['v1']);
    (random.spec as Record<string, unknown>).trafficPolicy = { loadBalancer: { simple: 'RANDOM' } };
    const dubbo = vs('orders', 'com.example.isthmus.orders', [to('reviews.shop.local', 'v1')], { timeout: '2s', match: [{ uri: { prefix: '/com.example.isthmus.Orders/pl' } }, { uri: { regex: 'place.*' } }] });
    return tree({ 'rules.yaml': [se('reviews'), random, dubbo] });
  };

  it('names what proxyless gRPC clients cannot apply: a problem with --client grpc, a warning by default, nothing with --client envoy', async () => {
    const dir = rules();
    const f = path.join(dir, 'rules.yaml');
    const gap = `${f}:1: spec.trafficPolicy.loadBalancer.simple: `;
    const grpc = await run(['--client', 'grpc', f]);
    assert.equal(grpc.code, 1, grpc.stdout + grpc.stderr);
    assert.ok(grpc.stdout.split('\n').some((l) => l.startsWith(gap) && /not applied for proxyless gRPC clients: .*RANDOM/.test(l)), grpc.stdout);
    const both = await run([f]);
    assert.ok(both.stdout.split('\n').some((l) => l.startsWith(`${gap}warning: not applied for proxyless gRPC clients`)), both.stdout);
    const envoy = await run(['--client', 'envoy', f]);
    assert.ok(!envoy.stdout.includes('proxyless'), envoy.stdout);
  });

  it('with --client dubbo, names each http setting Envoy\'s Dubbo filter cannot apply, and passes a Dubbo method rule', async () => {
    const dir = rules();
    const f = path.join(dir, 'rules.yaml');
    const r = await run(['--client', 'dubbo', f]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const dubboLines = r.stdout.split('\n').filter((l) => l.includes('Dubbo'));
    assert.deepEqual(dubboLines, [
      `${f}:2: spec.http[0].timeout: not applied on Dubbo ports: Envoy's Dubbo filter has no per-route timeout (the consumer's own timeout applies) (VirtualService shop/orders)`,
      `${f}:2: spec.http[0].match[1].uri: not applied on Dubbo ports: on a Dubbo port a uri regex is read as a method match after the literal interface path /<interface>/ (or a prefix of /) (VirtualService shop/orders)`,
    ]);
    const good = tree({ 'good.yaml': [se('reviews'), dr('reviews', 'reviews.shop.local', ['v1']), vs('orders', 'reviews.shop.local', [to('reviews.shop.local', 'v1')], { match: [{ uri: { exact: '/com.example.isthmus.Orders/place' }, headers: { tenant: { exact: 'a' } } }] })] });
    const ok = await run(['--client', 'dubbo', good]);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  });
});
