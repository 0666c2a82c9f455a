// The CLI and the admin API as a user meets them: help, clear errors, and bad input on
// the xDS port that is refused without disturbing connected proxies.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { AdsClient, TYPE } from '../helpers/ads-client.ts';
import { MAIN, ManifestDir, REPO, startIsthmus, type Isthmus } from '../helpers/isthmus.ts';
import { assertNoLeftovers, runCommand, scratchDir, spawnTracked, stopAll } from '../helpers/processes.ts';
import { freePort } from '../helpers/ports.ts';
import { waitFor } from '../helpers/wait.ts';

const run = (args: string[]) => runCommand(process.execPath, [MAIN, ...args], { cwd: REPO, timeoutMs: 20_000 });

test('every command has a help text', async () => {
  for (const args of [['--help'], ['serve', '--help'], ['bootstrap', '--help']]) {
    const r = await run(args);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Usage: isthmus/);
  }
});

test('bad command lines exit 2 naming what is wrong', async () => {
  const cases: [string[], RegExp][] = [
    [['frobnicate'], /unknown command "frobnicate"/],
    [['serve', '--registry', 'gopher://x'], /--registry "gopher:\/\/x": unknown scheme "gopher"/],
    [['serve', '--debounce-quiet', 'soon'], /--debounce-quiet "soon": expected a duration/],
    [['serve', '--debounce-quiet', '2s', '--debounce-max', '1s'], /--debounce-max \(1000ms\) must not be shorter/],
    [['serve', '--xds-address', 'nowhere'], /--xds-address "nowhere": expected HOST:PORT/],
    [['serve', '--xds-inflight-limit', 'lots'], /--xds-inflight-limit "lots": expected a size like 64MiB/],
    [['serve', '--bogus'], /Unknown option '--bogus'/],
    [['bootstrap'], /--node-id is required/],
    [['bootstrap', '--node-id', 'x', '--app-port', '99999'], /--app-port: "99999" has no valid port/],
    [['bootstrap', '--node-id', 'x', '--app-port', '80:SMTP'], /unknown protocol SMTP/],
    [['bootstrap', '--node-id', 'x', '--app-port', '20880:DUBBO'], /unknown protocol DUBBO/],
    [['serve', '--registry', 'zk://127.0.0.1:2181/dubbo?services=relative'], /services "relative" is not an absolute clean path/],
    [['register', '--registry', 'zk://127.0.0.1:2181/dubbo?services=/services', '--application', 'a', '--address', '10.0.0.1', '--port', '1', '--interface', 'com.a.B'], /services= says where application-level instances are read; isthmus register writes interface-level providers/],
  ];
  for (const [args, re] of cases) {
    const r = await run(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re);
  }
});

test('serve refuses a port that is already taken, with the address in the message', async () => {
  const dir = new ManifestDir();
  const first = await startIsthmus({ registries: [dir.url] });
  try {
    const r = await run(['serve', '--registry', dir.url, '--admin-address', `127.0.0.1:${first.opts.adminPort}`, '--xds-address', '127.0.0.1:0']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /cannot start: .*EADDRINUSE.*127\.0\.0\.1/);
  } finally {
    await first.stop();
  }
});

let isthmus: Isthmus;
let dir: ManifestDir;

before(async () => {
  dir = new ManifestDir();
  dir.write('good.yaml', {
    apiVersion: 'networking.istio.io/v1',
    kind: 'ServiceEntry',
    metadata: { name: 'web' },
    spec: { hosts: ['web.test.local'], location: 'MESH_INTERNAL', resolution: 'STATIC', ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], endpoints: [{ address: '127.0.0.9' }] },
  });
  dir.write('bad.yaml', { apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry', metadata: { name: 'bad' }, spec: { hosts: ['bad.test.local'], ports: [{ number: 'eighty', name: 'http' }] } });
  isthmus = await startIsthmus({ registries: [dir.url] });
});

after(async () => {
  await stopAll();
  assertNoLeftovers();
});

async function status(path: string, method = 'GET'): Promise<[number, string]> {
  const res = await fetch(`${isthmus.adminUrl}${path}`, { method, signal: AbortSignal.timeout(5000) });
  return [res.status, await res.text()];
}

test('admin: registryz shows the model and the rejected document with its field path', async () => {
  const model = await isthmus.json<{ services: { hostname: string }[]; registries: { rejections: { source: string; document: number; field: string; reason: string }[] }[] }>('/debug/registryz');
  assert.deepEqual(model.services.map((s) => s.hostname), ['web.test.local']);
  const rej = model.registries[0]!.rejections;
  assert.ok(rej.some((r) => r.source.endsWith('bad.yaml') && r.document === 0 && r.field === 'spec.ports[0].number'), JSON.stringify(rej));
});

test('admin: clear answers for bad requests', async () => {
  assert.deepEqual((await status('/debug/config_dump'))[0], 400);
  const [code, body] = await status('/debug/config_dump?proxy=nobody');
  assert.equal(code, 404);
  assert.equal((JSON.parse(body) as { error: string }).error, 'no connected proxy with node id "nobody"');
  assert.equal((await status('/nope'))[0], 404);
  assert.equal((await status('/healthz/ready', 'POST'))[0], 405);
  const [mcode, metrics] = await status('/metrics');
  assert.equal(mcode, 200);
  assert.match(metrics, /isthmus_registry_rejections\{registry="file:\/\/[^"]+"\} 1/);
});

test('config_dump shows nested messages decoded (typed_config with its @type), not base64', async () => {
  const c = new AdsClient({ address: isthmus.xdsAddress, nodeId: 'dump-me' });
  c.subscribe(TYPE.listener);
  try {
    await waitFor(() => c.responsesFor(TYPE.listener).length > 0, { timeoutMs: 5000, what: 'LDS response' });
    const dump = JSON.parse((await status('/debug/config_dump?proxy=dump-me'))[1]) as { resources: { LDS: { name: string; resource: { filter_chains: { filters: { typed_config: Record<string, unknown> }[] }[] } }[] } }[];
    const outbound = dump[0]!.resources.LDS.find((l) => l.name === 'virtualOutbound')!;
    const hcm = outbound.resource.filter_chains[0]!.filters[0]!.typed_config;
    assert.equal(hcm['@type'], 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager');
    assert.deepEqual((hcm.rds as { route_config_name: string }).route_config_name, 'outbound');
    const filters = hcm.http_filters as { name: string; typed_config: Record<string, unknown> }[];
    assert.equal(filters.at(-1)!.typed_config['@type'], 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router');
  } finally {
    c.close();
  }
});

test('xDS: a stream without a node id or with bad metadata is refused; others are unaffected', async () => {
  const good = new AdsClient({ address: isthmus.xdsAddress, nodeId: 'good' });
  good.subscribe(TYPE.cluster);
  await waitFor(() => good.responsesFor(TYPE.cluster).length > 0, { timeoutMs: 5000, what: 'CDS response for the good client' });

  const anonymous = new AdsClient({ address: isthmus.xdsAddress, nodeId: '' });
  anonymous.subscribe(TYPE.cluster);
  const badMeta = new AdsClient({ address: isthmus.xdsAddress, nodeId: 'bad-meta', metadata: { ISTHMUS_OUTBOUND_PORT: 'lots' } });
  badMeta.subscribe(TYPE.listener);
  try {
    await waitFor(() => anonymous.error && badMeta.error, { timeoutMs: 5000, what: 'both bad streams closed' });
    assert.match(anonymous.error!.message, /INVALID_ARGUMENT|3 /);
    assert.match(anonymous.error!.message, /node\.id/);
    assert.match(badMeta.error!.message, /ISTHMUS_OUTBOUND_PORT: "lots" is not a port/);
    assert.equal(good.error, undefined);
    const syncz = await isthmus.syncz();
    assert.deepEqual(syncz.map((s) => s.id), ['good']);
    assert.equal(syncz[0]!.types[0]!.status, 'SYNCED');
  } finally {
    for (const c of [good, anonymous, badMeta]) c.close();
  }
});

/** Runs `bin/isthmus serve` as an operator would, with ISTHMUS_MALLOC set; resolves with its mapped libraries once ready, or how it exited. */
async function launcher(malloc: string): Promise<{ maps?: string; code?: number | null; log: string }> {
  const [xds, admin] = [await freePort(), await freePort()];
  const proc = spawnTracked(
    `launcher-${malloc}`,
    path.join(REPO, 'bin', 'isthmus'),
    ['serve', '--xds-address', `127.0.0.1:${xds}`, '--admin-address', `127.0.0.1:${admin}`, '--dns-listen', 'off', '--vip-store', path.join(scratchDir('vips'), 'vips.json')],
    { cwd: REPO, env: { ...process.env, ISTHMUS_MALLOC: malloc } },
  );
  try {
    await waitFor(
      async () => proc.exit !== undefined || (await fetch(`http://127.0.0.1:${admin}/healthz/ready`, { signal: AbortSignal.timeout(1000) }).then((r) => r.ok, () => false)),
      { what: `bin/isthmus serve (ISTHMUS_MALLOC=${malloc}) to be ready or gone`, timeoutMs: 20_000 },
    );
    if (proc.exit !== undefined) return { code: proc.exit.code, log: proc.tail() };
    return { maps: fs.readFileSync(`/proc/${proc.pid}/maps`, 'utf8'), log: proc.tail() };
  } finally {
    await proc.stop();
  }
}

test('bin/isthmus runs on jemalloc where it is installed, on the system allocator when told, and refuses a bad choice', async () => {
  const je = await launcher('jemalloc');
  if (je.maps) assert.match(je.maps, /libjemalloc\.so/, 'jemalloc is mapped into the serving process');
  else {
    // Not installed here: the launcher says so and how to get it.
    assert.equal(je.code, 2, je.log);
    assert.match(je.log, /libjemalloc\.so\.2 is not installed \(Debian: apt-get install libjemalloc2\)/);
  }
  const sys = await launcher('system');
  assert.ok(sys.maps, sys.log);
  assert.doesNotMatch(sys.maps, /libjemalloc/);
  const bad = await launcher('tcmalloc');
  assert.equal(bad.code, 2);
  assert.match(bad.log, /ISTHMUS_MALLOC must be auto, jemalloc or system, not "tcmalloc"/);
});

test('serve --xds-intake-limit takes a size and names itself when it is not one', async () => {
  const r = await run(['serve', '--xds-intake-limit', 'plenty']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /--xds-intake-limit "plenty": expected a size like 64MiB/);
  const help = await run(['serve', '--help']);
  assert.match(help.stdout, /--xds-intake-limit SIZE/);
});
