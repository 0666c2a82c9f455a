// isthmus agent beside a real Envoy: the agent makes the key, gets a certificate from the
// CA of `isthmus serve` with a VM's join token, and serves it over SDS on a Unix socket to
// an Envoy whose TLS listener (client certificates required) uses secrets "default" and
// "ROOTCA". Checked as a client sees it: openssl s_client shows the SPIFFE SAN, its expiry
// and the chain to the root; the certificate is renewed (over mTLS) and swapped in Envoy
// under a steady stream of TLS calls, with no failed call and the open connection kept.
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { cli, MAIN, REPO, bootstrap, startIsthmus, type Isthmus } from '../helpers/isthmus.ts';
import { startEnvoy, type Envoy } from '../helpers/envoy.ts';
import { freePort } from '../helpers/ports.ts';
import { assertNoLeftovers, dumpLogsOnFailure, scratchDir, spawnTracked, stopAll, type Proc } from '../helpers/processes.ts';
import { waitFor } from '../helpers/wait.ts';

const TOKEN = randomBytes(24).toString('hex');
const ID = 'spiffe://cluster.local/ns/legacy/sa/orders';
let dir: string;
let caDir: string;
let isthmus: Isthmus;
let agentProc: Proc;
let envoy: Envoy;
let tlsPort: number;
let echo: net.Server;
let client: { cert: string; key: string };

before(async () => {
  dir = scratchDir('agent');
  caDir = path.join(dir, 'ca');
  fs.writeFileSync(path.join(dir, 'tokens.yaml'), `tokens:\n- token: ${TOKEN}\n  namespace: legacy\n  serviceAccount: orders\n`);
  fs.writeFileSync(path.join(dir, 'token'), TOKEN, { mode: 0o600 });
  const caPort = await freePort();
  isthmus = await startIsthmus({ name: 'isthmus-agent', registries: [`file://${scratchDir('agent-config')}`], args: ['--ca-address', `127.0.0.1:${caPort}`, '--ca-dir', caDir, '--ca-join-tokens', path.join(dir, 'tokens.yaml')] });
  const sock = path.join(dir, 'sds.sock');
  // A one-minute certificate: renewed 30-48 s after it was issued.
  agentProc = spawnTracked('agent', process.execPath, [MAIN, 'agent', '--ca-address', `127.0.0.1:${caPort}`, '--ca-root', path.join(caDir, 'root-cert.pem'), '--token-file', path.join(dir, 'token'), '--sds-socket', sock, '--cert-ttl', '1m'], { cwd: REPO });
  await waitFor(() => /workload certificate issued/.test(agentProc.output()), { timeoutMs: 20_000, what: 'the agent\'s first certificate' });

  echo = net.createServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  tlsPort = await freePort();
  const b = await bootstrap(['--node-id', 'tls-1', '--xds-address', isthmus.xdsAddress, '--admin-port', String(await freePort()), '--sds-socket', sock]);
  const sds = (name: string) => ({ name, sds_config: { resource_api_version: 'V3', api_config_source: { api_type: 'GRPC', transport_api_version: 'V3', grpc_services: [{ envoy_grpc: { cluster_name: 'isthmus-sds' } }] } } });
  const res = b.static_resources as { clusters: unknown[]; listeners?: unknown[] };
  res.clusters.push({ name: 'echo', type: 'STATIC', connect_timeout: '1s', load_assignment: { cluster_name: 'echo', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: (echo.address() as net.AddressInfo).port } } } }] }] } });
  res.listeners = [{
    name: 'mtls-in',
    address: { socket_address: { address: '127.0.0.1', port_value: tlsPort } },
    filter_chains: [{
      transport_socket: {
        name: 'envoy.transport_sockets.tls',
        typed_config: {
          '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
          require_client_certificate: true,
          common_tls_context: { tls_certificate_sds_secret_configs: [sds('default')], validation_context_sds_secret_config: sds('ROOTCA') },
        },
      },
      filters: [{ name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', stat_prefix: 'echo', cluster: 'echo' } }],
    }],
  }];
  envoy = await startEnvoy(b, { name: 'envoy-sds' });
  // A client certificate from the same CA, for the callers below.
  client = await clientCertificate(caPort);
});

afterEach(dumpLogsOnFailure);
after(async () => {
  echo?.close();
  await stopAll(10_000);
  assertNoLeftovers();
});

/** A client key and certificate for legacy/orders, by the CLI-free path: openssl CSR + the CA over gRPC. */
async function clientCertificate(caPort: number): Promise<{ cert: string; key: string }> {
  const d = fs.mkdtempSync(path.join(dir, 'client-'));
  execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', path.join(d, 'key.pem'), '-subj', '/O=c', '-out', path.join(d, 'csr.pem')], { stdio: 'pipe' });
  const grpc = await import('@grpc/grpc-js');
  const { loadCaService } = await import('../../src/ca/index.ts');
  const C = grpc.makeGenericClientConstructor(loadCaService(), 'S');
  const c = new C(`127.0.0.1:${caPort}`, grpc.credentials.createSsl(fs.readFileSync(path.join(caDir, 'root-cert.pem'))));
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${TOKEN}`);
  const chain = await new Promise<string[]>((resolve, reject) =>
    (c as unknown as { CreateCertificate: (r: unknown, m: unknown, cb: (e: Error | null, v?: { cert_chain: string[] }) => void) => void }).CreateCertificate({ csr: fs.readFileSync(path.join(d, 'csr.pem'), 'utf8') }, md, (e, v) => (e ? reject(e) : resolve(v!.cert_chain))),
  );
  c.close();
  return { cert: chain.join('\n'), key: fs.readFileSync(path.join(d, 'key.pem'), 'utf8') };
}

/** One TLS connection to Envoy's listener: the server certificate it shows, and an echoed line. */
function call(payload = 'ping'): Promise<{ serial: string; san: string; echoed: string }> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: tlsPort, ca: fs.readFileSync(path.join(caDir, 'root-cert.pem')), cert: client.cert, key: client.key, checkServerIdentity: () => undefined });
    s.setTimeout(5000, () => s.destroy(new Error('timeout')));
    s.once('secureConnect', () => s.write(payload));
    s.once('data', (d) => {
      const peer = s.getPeerCertificate();
      resolve({ serial: peer.serialNumber, san: peer.subjectaltname ?? '', echoed: d.toString() });
      s.end();
    });
    s.once('error', reject);
  });
}

test('Envoy serves the agent\'s certificate: openssl s_client sees the SPIFFE SAN, a 1-minute life and a chain to the root', async () => {
  const first = await waitFor(() => call().catch(() => undefined), { timeoutMs: 20_000, what: 'a TLS call through Envoy' });
  assert.equal(first.echoed, 'ping');
  assert.equal(first.san, `URI:${ID}`);
  const d = fs.mkdtempSync(path.join(dir, 'sclient-'));
  fs.writeFileSync(path.join(d, 'c.pem'), client.cert);
  fs.writeFileSync(path.join(d, 'k.pem'), client.key);
  const out = execFileSync('openssl', ['s_client', '-connect', `127.0.0.1:${tlsPort}`, '-CAfile', path.join(caDir, 'root-cert.pem'), '-cert', path.join(d, 'c.pem'), '-key', path.join(d, 'k.pem'), '-showcerts'], { input: '', encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
  assert.match(out, /Verify return code: 0 \(ok\)/);
  const leaf = new X509Certificate(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(out)![0]);
  assert.equal(leaf.subjectAltName, `URI:${ID}`);
  const life = new Date(leaf.validTo).getTime() - new Date(leaf.validFrom).getTime();
  assert.ok(life <= 125_000 && life >= 60_000, `life ${life} ms (1 min, backdated 1 min)`);
  // A caller without a client certificate is refused by the listener (require_client_certificate).
  await assert.rejects(new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: tlsPort, ca: fs.readFileSync(path.join(caDir, 'root-cert.pem')), checkServerIdentity: () => undefined });
    s.once('secureConnect', () => s.write('x'));
    s.once('data', resolve);
    s.once('error', reject);
    s.once('close', () => reject(new Error('closed')));
  }));
});

test('renewal under load: Envoy swaps in the renewed certificate, no call fails, an open connection stays up', async () => {
  const before = (await call()).serial;
  // One connection held open across the swap.
  const held = tls.connect({ host: '127.0.0.1', port: tlsPort, ca: fs.readFileSync(path.join(caDir, 'root-cert.pem')), cert: client.cert, key: client.key, checkServerIdentity: () => undefined });
  await new Promise((r) => held.once('secureConnect', r));
  let failed = 0;
  let calls = 0;
  let after = before;
  const deadline = Date.now() + 70_000;
  while (after === before && Date.now() < deadline) {
    try {
      const r = await call(`c${calls}`);
      calls++;
      if (r.echoed !== `c${calls - 1}`) failed++;
      after = r.serial;
    } catch {
      failed++;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.notEqual(after, before, 'the certificate was renewed within 70 s');
  for (let i = 0; i < 20; i++) {
    try {
      await call();
      calls++;
    } catch {
      failed++;
    }
  }
  process.stderr.write(`# certificate renewed (serial ${before} → ${after}) during ${calls} TLS calls through Envoy: ${failed} failed\n`);
  assert.equal(failed, 0);
  const echoed = await new Promise<string>((resolve, reject) => {
    held.once('data', (d) => resolve(d.toString()));
    held.once('error', reject);
    held.write('still here');
  });
  assert.equal(echoed, 'still here', 'the connection opened before the renewal still works');
  held.end();
  assert.match(agentProc.output(), /"via":"certificate"/, 'renewed with the current certificate, not the token');
  const stats = await envoy.admin('/stats?filter=sds');
  assert.match(stats, /sds\.default\.update_success: [2-9]/);
});

test('the agent and bootstrap commands have help texts', async () => {
  assert.match(await cli(['agent', '--help']), /Usage: isthmus agent --ca-address HOST:PORT --ca-root FILE --token-file FILE/);
  assert.match(await cli(['bootstrap', '--help']), /--sds-socket PATH/);
});
