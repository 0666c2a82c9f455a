// Automatic mTLS on the four migration paths, in network namespaces with transparent
// interception: a meshed caller and a meshed provider each run `isthmus agent` (a join
// token, certificates over SDS) beside their sidecar; a legacy caller and a legacy VM have
// neither. The meshed provider's WorkloadEntry says security.istio.io/tlsMode=istio. Every
// path carries TCP and HTTP with the provider receiving identical bytes; a capture on the
// provider's interface shows the double-hop leg is TLS (the request line never appears) and
// the server single-hop leg plaintext (PERMISSIVE); the caller's Envoy counts the handshakes.
// Then a PeerAuthentication moves the provider to STRICT under load: no meshed call fails,
// the legacy caller's connections are refused, and the provider's sidecar counts them.
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { applicationHostname } from '../../src/model/naming.ts';
import { bootstrap, ManifestDir, MAIN } from '../helpers/isthmus.ts';
import { NetLab, PROXY_UID, type Agent, type Host } from '../helpers/netns.ts';
import { PORTS, type Call } from '../helpers/netns-protocol.ts';
import { freePort } from '../helpers/ports.ts';
import { assertNoLeftovers, dumpLogsOnFailure, stopAll, type Proc } from '../helpers/processes.ts';
import { waitFor, waitUntil } from '../helpers/wait.ts';

const APP = 'echo';
const APP_HOST = applicationHostname(APP);
const TCP_LINE = 'GET user 42 v=1'; // what netns-agent.ts sends on a TCP call
const WAIT = { timeoutMs: 40_000, intervalMs: 200 };
const manifests = new ManifestDir();
let lab: NetLab | undefined;
const hosts: Record<'caller' | 'oldcaller' | 'prova' | 'vm', Host> = {} as never;
const apps: Record<string, Agent> = {};
const envoyAdmin: Record<string, string> = {};
let shared: string;

function workloadEntry(name: string, host: Host, meshed: boolean): object {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'WorkloadEntry',
    metadata: { name, namespace: 'default' },
    spec: { address: host.ip, labels: { app: APP, ...(meshed ? { 'security.istio.io/tlsMode': 'istio' } : {}) }, ports: { http: PORTS.http, tcp: PORTS.tcp }, ...(meshed ? { serviceAccount: 'echo' } : {}) },
  };
}

const declaration = {
  apiVersion: 'networking.istio.io/v1',
  kind: 'ServiceEntry',
  metadata: { name: APP, namespace: 'default' },
  spec: {
    hosts: [APP_HOST],
    location: 'MESH_INTERNAL',
    resolution: 'STATIC',
    ports: [{ number: PORTS.http, name: 'http', protocol: 'HTTP' }, { number: PORTS.tcp, name: 'tcp', protocol: 'TCP' }],
    workloadSelector: { labels: { app: APP } },
  },
};

/**
 * `isthmus agent` in the host's namespace, its SDS socket handed to the sidecar's uid. (In a
 * pod the agent runs as the sidecar's uid itself; here it runs as root, since the checkout it
 * runs from may not be readable by that uid. It starts before interception, like an init step.)
 */
async function agent(host: Host, caAddress: string, token: string, root: string): Promise<string> {
  const dir = fs.mkdtempSync(path.join(shared, `agent-${host.name}-`));
  fs.writeFileSync(path.join(dir, 'token'), token, { mode: 0o600 });
  fs.copyFileSync(root, path.join(dir, 'root-cert.pem'));
  fs.chownSync(dir, PROXY_UID, PROXY_UID);
  const sock = path.join(dir, 'sds.sock');
  const p: Proc = lab!.spawn(host, 'agent', process.execPath, [MAIN, 'agent', '--ca-address', caAddress, '--ca-root', path.join(dir, 'root-cert.pem'), '--token-file', path.join(dir, 'token'), '--sds-socket', sock]);
  await waitFor(() => /workload certificate issued/.test(p.output()) && fs.existsSync(sock), { timeoutMs: 30_000, what: `the agent on ${host.name} has its certificate` });
  fs.chownSync(sock, PROXY_UID, PROXY_UID);
  return sock;
}

async function sidecar(host: Host, xds: string, sds: string, appPorts: boolean): Promise<void> {
  const boot = await bootstrap([
    '--node-id', `${host.name}.default`, '--cluster', host.name, '--mode', 'transparent', '--xds-address', xds, '--namespace', 'default', '--label', `app=${appPorts ? APP : host.name}`,
    '--instance-ip', host.ip, '--sds-socket', sds, ...(appPorts ? ['--app-port', `${PORTS.http}:HTTP`, '--app-port', `${PORTS.tcp}:TCP`] : []),
  ]);
  await lab!.iptables(host, ['-u', String(PROXY_UID), '-i', '*']);
  envoyAdmin[host.name] = (await lab!.sidecar(host, boot)).admin;
}

before(async () => {
  lab = await NetLab.create();
  for (const name of ['caller', 'oldcaller', 'prova', 'vm'] as const) hosts[name] = await lab.addHost(name);
  shared = fs.mkdtempSync(path.join(lab.shared, 'mtls-'));
  fs.chmodSync(shared, 0o755);
  const tokens = { caller: randomBytes(20).toString('hex'), prova: randomBytes(20).toString('hex') };
  const caDir = path.join(manifests.dir, '..', 'ca');
  fs.writeFileSync(path.join(manifests.dir, '..', 'tokens.yaml'), `tokens:\n- { token: ${tokens.caller}, namespace: default, serviceAccount: caller }\n- { token: ${tokens.prova}, namespace: default, serviceAccount: echo }\n`);
  manifests.write('echo.yaml', [declaration, workloadEntry('prova', hosts.prova, true), workloadEntry('vm', hosts.vm, false)]);
  const ca = `${lab.rootIp}:${await freePort()}`;
  const served = await lab.isthmus([manifests.url], `${manifests.dir}/../vips.json`, ['--ca-address', ca, '--ca-dir', caDir, '--ca-join-tokens', path.join(manifests.dir, '..', 'tokens.yaml')]);
  for (const name of ['prova', 'vm'] as const) apps[name] = await lab.agent(hosts[name], { serve: name });
  apps.caller = await lab.agent(hosts.caller, { dns: served.dns });
  apps.oldcaller = await lab.agent(hosts.oldcaller, { dns: served.dns });
  const root = path.join(caDir, 'root-cert.pem');
  await sidecar(hosts.caller, served.xds, await agent(hosts.caller, ca, tokens.caller, root), false);
  await sidecar(hosts.prova, served.xds, await agent(hosts.prova, ca, tokens.prova, root), true);
});

afterEach(dumpLogsOnFailure);
after(async () => {
  await stopAll();
  await lab?.destroy();
  const still = lab ? await lab.leftovers() : [];
  assertNoLeftovers();
  assert.deepEqual(still, [], `left behind: ${still.join('; ')}`);
});

/** One call; who answered, and the bytes that provider received. */
async function call(from: 'caller' | 'oldcaller', c: Call): Promise<{ by: string; bytes: string }> {
  for (const p of ['prova', 'vm']) await apps[p]!.request('/reset');
  const a = await apps[from]!.request<{ ok: boolean; by?: string; error?: string }>('/call', c);
  assert.ok(a.ok, `${from} → ${c.host}:${c.port} (${c.proto}): ${a.error}`);
  const got: { bytes: string }[] = [];
  for (const p of ['prova', 'vm']) got.push(...(await apps[p]!.request<{ bytes: string }[]>('/records')));
  assert.equal(got.length, 1, JSON.stringify(got));
  return { by: a.by!, bytes: got[0]!.bytes };
}

async function envoyStat(host: string, name: string): Promise<number> {
  const text = await (await fetch(`${envoyAdmin[host]}/stats?filter=${encodeURIComponent(name)}`, { signal: AbortSignal.timeout(3000) })).text();
  return text.split('\n').filter((l) => l.startsWith(`${name}:`)).reduce((n, l) => n + Number(l.split(': ')[1]), 0);
}

/** tcpdump on a host's interface while `fn` runs: the captured bytes of TCP port `port`. */
async function capture(host: Host, port: number, fn: () => Promise<void>): Promise<Buffer> {
  const file = path.join(shared, `${host.name}-${port}-${Date.now()}.pcap`);
  const p = lab!.spawn(host, 'tcpdump', 'tcpdump', ['-i', 'eth0', '-U', '--immediate-mode', '-Z', 'root', '-s', '0', '-w', file, 'tcp', 'port', String(port)]);
  await waitFor(() => /listening on/.test(p.output()), { timeoutMs: 10_000, what: 'tcpdump listening' });
  try {
    await fn();
    await new Promise((r) => setTimeout(r, 300));
  } finally {
    p.kill('SIGINT');
    await p.stop(5000);
  }
  return fs.readFileSync(file);
}

test('four paths under PERMISSIVE: each call answered, the provider receives identical bytes; mTLS only where both sides have certificates', async () => {
  const vip = (await waitUntil(() => apps.caller!.request<string[]>('/resolve', { name: APP_HOST }).catch(() => [] as string[]), (a) => a.length === 1, { ...WAIT, what: `${APP_HOST} resolves` }))[0]!;
  for (const proto of ['tcp', 'http'] as const) {
    const base = { proto, port: PORTS[proto], authority: `${APP_HOST}:${PORTS[proto]}` };
    const direct = await call('oldcaller', { ...base, host: hosts.vm.ip });
    const serverSingle = await call('oldcaller', { ...base, host: hosts.prova.ip });
    const seen: Record<string, string> = {};
    await waitUntil(async () => {
      const r = await call('caller', { ...base, host: vip });
      seen[r.by] = r.bytes;
      return Object.keys(seen).length;
    }, (n) => n === 2, { ...WAIT, what: `${proto} calls from the meshed caller reaching both providers` });
    assert.equal(direct.by, 'vm');
    assert.equal(serverSingle.by, 'prova');
    // direct, server single-hop (legacy → meshed, plaintext accepted), client single-hop (→ vm, plaintext), double-hop (→ prova, mTLS)
    if (proto === 'tcp') for (const b of [direct.bytes, serverSingle.bytes, seen.vm, seen.prova]) assert.equal(Buffer.from(b!, 'base64').toString(), `${TCP_LINE}\n`);
    else {
      const norm = (b: string): string => Buffer.from(b, 'base64').toString().replace(/^x-forwarded-for:.*\r\n/gim, '');
      assert.equal(norm(seen.prova!), norm(serverSingle.bytes));
      assert.equal(norm(seen.vm!), norm(direct.bytes));
    }
  }
  assert.ok((await envoyStat('caller', `cluster.outbound|${PORTS.tcp}||${APP_HOST}.ssl.handshake`)) > 0, 'the caller\'s sidecar made TLS handshakes to prova');
  // Its sidecar's inbound side served them: SSL connections on the inbound listener.
  assert.ok((await envoyStat('prova', 'listener.0.0.0.0_15006.ssl.handshake')) > 0);
});

test('from a capture on the provider\'s interface: the double-hop leg is TLS, the legacy caller\'s leg plaintext', async () => {
  const vip = (await apps.caller!.request<string[]>('/resolve', { name: APP_HOST }))[0]!;
  const base = { proto: 'tcp' as const, port: PORTS.tcp, authority: `${APP_HOST}:${PORTS.tcp}` };
  let toProva = 0;
  const meshed = await capture(hosts.prova, PORTS.tcp, async () => {
    for (let i = 0; i < 12; i++) if ((await call('caller', { ...base, host: vip })).by === 'prova') toProva++;
  });
  assert.ok(toProva > 0, 'some calls went to prova');
  assert.equal(meshed.indexOf(TCP_LINE), -1, 'the request line never crosses the wire in the clear');
  // A TLS handshake record (content type 22, version 3.1-3.3) and ALPN "istio" in the ClientHello.
  const handshake = [0x01, 0x02, 0x03].some((v) => meshed.includes(Buffer.from([0x16, 0x03, v])));
  assert.ok(handshake, `TLS records on the wire (${meshed.length} bytes captured)`);
  assert.ok(meshed.includes(Buffer.from('\x05istio', 'latin1')), 'ALPN istio offered');
  const legacy = await capture(hosts.prova, PORTS.tcp, async () => {
    await call('oldcaller', { ...base, host: hosts.prova.ip });
  });
  assert.ok(legacy.indexOf(TCP_LINE) >= 0, 'a legacy caller\'s request arrives in the clear (PERMISSIVE)');
});

test('PERMISSIVE → STRICT under load: no call from the meshed caller fails, the legacy caller is refused and counted', async () => {
  const vip = (await apps.caller!.request<string[]>('/resolve', { name: APP_HOST }))[0]!;
  const base = { proto: 'tcp' as const, port: PORTS.tcp, authority: `${APP_HOST}:${PORTS.tcp}` };
  let stop = false;
  let calls = 0;
  const failures: string[] = [];
  const load = (async () => {
    while (!stop) {
      const a = await apps.caller!.request<{ ok: boolean; error?: string }>('/call', { ...base, host: vip });
      calls++;
      if (!a.ok) failures.push(a.error ?? '?');
    }
  })();
  const refusedBefore = await envoyStat('prova', 'listener.0.0.0.0_15006.no_filter_chain_match');
  manifests.write('strict.yaml', [{ apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'echo-strict', namespace: 'default' }, spec: { selector: { matchLabels: { app: APP } }, mtls: { mode: 'STRICT' } } }]);
  // Applied once the legacy caller's plaintext is refused.
  await waitUntil(() => apps.oldcaller!.request<{ ok: boolean; error?: string }>('/call', { ...base, host: hosts.prova.ip }), (a) => !a.ok, { ...WAIT, what: 'the legacy caller refused by prova under STRICT' });
  const calls0 = calls;
  await waitUntil(async () => calls - calls0, (n) => n >= 30, { ...WAIT, what: 'meshed calls after the switch' });
  stop = true;
  await load;
  process.stderr.write(`# PERMISSIVE → STRICT: ${calls} meshed calls during the switch, ${failures.length} failed\n`);
  assert.deepEqual(failures, []);
  // The legacy caller still reaches the VM, directly.
  assert.equal((await call('oldcaller', { ...base, host: hosts.vm.ip })).by, 'vm');
  assert.ok((await envoyStat('prova', 'listener.0.0.0.0_15006.no_filter_chain_match')) > refusedBefore, 'refused plaintext connections are counted');
});

test('DestinationRule tls for real: DISABLE sends the double-hop leg in plaintext; ISTIO_MUTUAL makes mTLS mandatory, so the VM without a sidecar is no longer called', async () => {
  const vip = (await apps.caller!.request<string[]>('/resolve', { name: APP_HOST }))[0]!;
  const base = { proto: 'tcp' as const, port: PORTS.tcp, authority: `${APP_HOST}:${PORTS.tcp}` };
  const dr = (mode: string): object => ({ apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'echo', namespace: 'default' }, spec: { host: APP_HOST, trafficPolicy: { tls: { mode } } } });
  // DISABLE (the policy is back to PERMISSIVE first: STRICT would refuse the plaintext).
  manifests.remove('strict.yaml');
  manifests.write('dr.yaml', [dr('DISABLE')]);
  const plainSeen = await waitUntil(async () => {
    let prova = 0;
    const cap = await capture(hosts.prova, PORTS.tcp, async () => {
      for (let i = 0; i < 8; i++) if ((await apps.caller!.request<{ ok: boolean; by?: string }>('/call', { ...base, host: vip })).by === 'prova') prova++;
    });
    return prova > 0 && cap.indexOf(TCP_LINE) >= 0;
  }, (x) => x, { ...WAIT, what: 'the caller\'s calls to prova in plaintext under tls DISABLE' });
  assert.ok(plainSeen);
  // ISTIO_MUTUAL: every endpoint gets mTLS; the VM cannot answer it, prova does.
  manifests.write('dr.yaml', [dr('ISTIO_MUTUAL')]);
  await waitUntil(async () => {
    const tally = { prova: 0, failed: 0 };
    for (let i = 0; i < 10; i++) {
      const a = await apps.caller!.request<{ ok: boolean; by?: string }>('/call', { ...base, host: vip });
      if (a.ok && a.by === 'prova') tally.prova++;
      else if (!a.ok) tally.failed++;
      else return undefined; // the VM answered: not applied yet
    }
    return tally;
  }, (t) => t !== undefined && t.prova > 0 && t.failed > 0, { ...WAIT, what: 'calls reaching prova over mTLS and none reaching the VM in plaintext' });
  manifests.remove('dr.yaml');
});
