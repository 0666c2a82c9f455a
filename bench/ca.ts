// CA benchmark: `isthmus serve --ca-address` in a child process, W workloads that each send a
// CSR with their own join token over their own TLS channel. Reports CSRs signed per second
// for a burst of W new workloads at once, and the time from a workload's request to its
// certificate (p50/p99/max), plus the same for one workload at a time on an idle CA.
import 'reflect-metadata';
import { spawn } from 'node:child_process';
import { randomBytes, webcrypto } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import * as x509 from '@peculiar/x509';
import { EC_P256 } from '../src/ca/authority.ts';
import { loadCaService } from '../src/ca/server.ts';

const HELP = `Usage: npm run bench:ca -- [--workloads N] [--serial N]

Starts 'isthmus serve --ca-address' and measures its CA (see bench/RESULTS.md):
  --workloads N   new workloads asking for their first certificate at once (default 1000)
  --serial N      requests one at a time on the idle CA, for the unloaded latency (default 50)
  -h, --help      this text
`;

const { values } = parseArgs({ options: { workloads: { type: 'string' }, serial: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
if (values.help) {
  process.stdout.write(HELP);
  process.exit(0);
}
const W = Number(values.workloads ?? 1000);
const SERIAL = Number(values.serial ?? 50);
const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'isthmus-bench-ca-'));
const tokens = Array.from({ length: W + SERIAL }, (_, i) => ({ token: randomBytes(20).toString('hex'), sa: `wl-${i}` }));
fs.writeFileSync(path.join(dir, 'tokens.yaml'), 'tokens:\n' + tokens.map((t) => `- { token: ${t.token}, namespace: bench, serviceAccount: ${t.sa} }\n`).join(''));

async function freePort(): Promise<number> {
  const net = await import('node:net');
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

const caPort = await freePort();
const child = spawn(process.execPath, [path.join(REPO, 'src/cli/main.ts'), 'serve', '--registry', `file://${dir}/empty`, '--xds-address', `127.0.0.1:${await freePort()}`, '--admin-address', `127.0.0.1:${await freePort()}`, '--dns-listen', 'off', '--ca-address', `127.0.0.1:${caPort}`, '--ca-dir', path.join(dir, 'ca'), '--ca-join-tokens', path.join(dir, 'tokens.yaml')], { stdio: ['ignore', 'ignore', 'pipe'] });
fs.mkdirSync(path.join(dir, 'empty'));
let stderr = '';
child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
for (let i = 0; !/"CA listening"/.test(stderr); i++) {
  if (i > 300 || child.exitCode !== null) throw new Error(`isthmus did not start:\n${stderr}`);
  await new Promise((r) => setTimeout(r, 100));
}
const root = fs.readFileSync(path.join(dir, 'ca', 'root-cert.pem'));
const Client = grpc.makeGenericClientConstructor(loadCaService(), 'IstioCertificateService');

async function makeCsr(): Promise<string> {
  const keys = await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']);
  return (await x509.Pkcs10CertificateRequestGenerator.create({ keys, signingAlgorithm: EC_P256 })).toString('pem');
}

/** One workload: its own channel (a new TLS connection), its token, its CSR; ms to the certificate. */
function ask(csr: string, token: string): Promise<number> {
  const t0 = performance.now();
  const c = new Client(`127.0.0.1:${caPort}`, grpc.credentials.createSsl(root), { 'grpc.use_local_subchannel_pool': 1 });
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${token}`);
  return new Promise((resolve, reject) =>
    (c as unknown as { CreateCertificate: (r: unknown, m: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null) => void) => void }).CreateCertificate({ csr }, md, { deadline: Date.now() + 120_000 }, (e) => {
      c.close();
      if (e) reject(new Error(`${grpc.status[e.code]}: ${e.details}`));
      else resolve(performance.now() - t0);
    }),
  );
}

const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)]!;
const cpuMs = (): number => {
  const f = fs.readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
};

// CSRs are made before the clock starts: a workload's own key generation is not the CA's time.
const t0k = performance.now();
const csrs = await Promise.all(tokens.map(() => makeCsr()));
const keygenMs = (performance.now() - t0k) / tokens.length;

const serial: number[] = [];
for (let i = 0; i < SERIAL; i++) serial.push(await ask(csrs[W + i]!, tokens[W + i]!.token));

const cpu0 = cpuMs();
const tb = performance.now();
const burst = await Promise.all(tokens.slice(0, W).map((t, i) => ask(csrs[i]!, t.token)));
const wallS = (performance.now() - tb) / 1000;
const cpuS = (cpuMs() - cpu0) / 1000;
const rss = Number(/VmHWM:\s+(\d+)/.exec(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]) / 1024;
child.kill('SIGTERM');

const r = (x: number): string => x.toFixed(1);
process.stdout.write(
  [
    `CA benchmark (${os.cpus().length} cores, Node ${process.version}); each workload: its own TLS channel, join token, ECDSA P-256 CSR`,
    `idle CA, one at a time (N=${SERIAL}): request → certificate p50 ${r(pct(serial, 50))} ms, p99 ${r(pct(serial, 99))} ms`,
    `${W} new workloads at once: ${r(W / wallS)} CSRs/s signed (wall ${r(wallS)} s, CA CPU ${r(cpuS)} s = ${r((cpuS * 1000) / W)} ms per CSR)`,
    `  request → certificate p50 ${r(pct(burst, 50))} ms, p99 ${r(pct(burst, 99))} ms, max ${r(Math.max(...burst))} ms; CA peak RSS ${r(rss)} MiB`,
    `  (client-side key + CSR generation, not counted: ${r(keygenMs)} ms per workload)`,
    '',
  ].join('\n'),
);
fs.rmSync(dir, { recursive: true, force: true });
