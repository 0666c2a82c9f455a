// DNS benchmark: the built-in responder and CoreDNS (etcd plugin) side by side, in one run,
// on one query file, over one model (Isthmus writes the same records to both).
// Options: see USAGE below (`node bench/dns.ts --help`).
//
// 1. dnsperf (-v: one line per answer, for percentiles) against each server: QPS and latency.
// 2. Registry change → DNS answer: a new interface is added to the registry; the time until
//    a UDP query to each server answers it (polled every 2 ms with a small in-process client).
import { TestDns } from '../test/helpers/dns-pipeline.ts';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { benchOptions } from './cli.ts';
import { EtcdRecordStore } from '../src/dns/etcd-store.ts';
import { TYPE } from '../src/dns/rr.ts';
import { MemoryRegistry } from '../src/registries/memory.ts';
import { mapProviders } from '../src/registries/soa/mapping.ts';
import { parseProviderUrl } from '../src/registries/soa/provider.ts';
import { startCoreDns } from '../test/helpers/coredns.ts';
import { udpQuery } from '../test/helpers/dns.ts';
import { startEtcd } from '../test/helpers/etcd.ts';
import { freePort } from '../test/helpers/ports.ts';
import { runCommand, scratchDir, stopAll } from '../test/helpers/processes.ts';

const USAGE = `Usage: node bench/dns.ts (npm run bench:dns --) [--apps 200] [--interfaces 5] [--seconds 10]
       [--clients 4] [--changes 20]
The built-in DNS responder and CoreDNS (etcd plugin) side by side over one model:
--apps × --interfaces names, dnsperf for --seconds with --clients, then --changes registry
changes timed until each server answers them.
`;
const args = benchOptions('bench:dns', USAGE, {
  apps: { type: 'string', default: '200' },
  interfaces: { type: 'string', default: '5' },
  seconds: { type: 'string', default: '10' },
  clients: { type: 'string', default: '4' },
  changes: { type: 'string', default: '20' },
});
const APPS = Number(args.apps);
const IFACES = Number(args.interfaces);
const SECONDS = Number(args.seconds);
const CLIENTS = Number(args.clients);
const CHANGES = Number(args.changes);
const Z = 'rpc.cluster.local';

function providerUrls(extra: string[] = []): string[] {
  const urls: string[] = [];
  for (let a = 0; a < APPS; a++) {
    for (let i = 0; i < IFACES; i++) {
      for (let h = 0; h < 3; h++) urls.push(`dubbo://10.${a >> 8}.${a & 255}.${h + 1}:20880/com.bench.app${a}.Iface${i}?application=app${a}&methods=get,list`);
    }
  }
  return [...urls, ...extra];
}

interface PerfResult {
  qps: number;
  sent: number;
  lost: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  rcodes: Record<string, number>;
}

async function dnsperf(port: number, queryFile: string): Promise<PerfResult> {
  const r = await runCommand('dnsperf', ['-s', '127.0.0.1', '-p', String(port), '-d', queryFile, '-l', String(SECONDS), '-c', String(CLIENTS), '-T', String(Math.min(CLIENTS, 4)), '-v'], { timeoutMs: (SECONDS + 30) * 1000 });
  if (r.code !== 0) throw new Error(`dnsperf exited ${r.code}: ${r.stderr}`);
  const lat: number[] = [];
  const rcodes: Record<string, number> = {};
  for (const line of r.stdout.split('\n')) {
    const m = /^> (\S+) \S+ \S+ ([\d.]+)$/.exec(line.trim());
    if (!m) continue;
    rcodes[m[1]!] = (rcodes[m[1]!] ?? 0) + 1;
    lat.push(Number(m[2]) * 1000);
  }
  lat.sort((a, b) => a - b);
  const pct = (p: number): number => lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))] ?? NaN;
  const num = (re: RegExp): number => Number(re.exec(r.stdout)?.[1] ?? NaN);
  return {
    qps: num(/Queries per second:\s+([\d.]+)/),
    sent: num(/Queries sent:\s+(\d+)/),
    lost: num(/Queries lost:\s+(\d+)/),
    p50: pct(50),
    p90: pct(90),
    p99: pct(99),
    max: lat.at(-1) ?? NaN,
    rcodes,
  };
}

async function main(): Promise<void> {
  const dir = scratchDir('bench-dns');
  const registry = new MemoryRegistry('memory://bench');
  const set = (urls: string[]): void => {
    const mapped = mapProviders(urls.map((u, i) => parseProviderUrl(u, `/dubbo/${i}`)), { registry: registry.id });
    registry.set({ services: mapped.services, endpoints: mapped.endpoints });
  };
  set(providerUrls());
  const etcd = await startEtcd({ name: 'bench-etcd' });
  const coredns = await startCoreDns({ etcd: etcd.endpoint, name: 'bench-coredns' });
  const store = new EtcdRecordStore({ endpoints: [etcd.endpoint], zone: Z });
  const dns = new TestDns({ listen: `127.0.0.1:${await freePort()}`, zone: Z, cidr: '240.240.0.0/16', ttl: 30, vipStorePath: path.join(dir, 'vips.json'), stores: [store], storeResyncMs: 0 });
  try {
    const t0 = performance.now();
    await dns.follow([registry]);
    while (dns.records().length === 0) await sleep(10);
    const firstMs = performance.now() - t0;
    const records = dns.records();
    process.stderr.write(`zone: ${records.length} records, first sync to etcd ${firstMs.toFixed(0)} ms\n`);

    // One query file: interface A (50 %), SRV (20 %), TXT (10 %), instance A (10 %), NXDOMAIN (10 %).
    const lines: string[] = [];
    for (let a = 0; a < APPS; a++) {
      for (let i = 0; i < IFACES; i++) {
        const name = `com.bench.app${a}.iface${i}.${Z}`;
        lines.push(`${name} A`, `${name} A`, `${name} A`, `${name} A`, `${name} A`, `_dubbo._tcp.${name} SRV`, `_dubbo._tcp.${name} SRV`, `${name} TXT`, `10-${a >> 8}-${a & 255}-${(i % 3) + 1}.ep.${Z} A`, `com.bench.app${a}.nosuch${i}.${Z} A`);
      }
    }
    const queryFile = path.join(dir, 'queries.txt');
    fs.writeFileSync(queryFile, `${lines.join('\n')}\n`);

    // Warm both, then measure one after the other (same machine, same file).
    await dnsperf(dns.port, queryFile).catch(() => undefined);
    const builtIn = await dnsperf(dns.port, queryFile);
    const core = await dnsperf(coredns.port, queryFile);

    // Registry change → answer, on both servers.
    const lags: { builtIn: number[]; core: number[] } = { builtIn: [], core: [] };
    for (let c = 0; c < CHANGES; c++) {
      const iface = `com.bench.changed${c}.Api`;
      const name = `com.bench.changed${c}.api.${Z}`;
      const start = performance.now();
      set(providerUrls([`dubbo://10.200.0.${c + 1}:20880/${iface}?application=changed${c}&methods=get`]));
      const seen: { builtIn?: number; core?: number } = {};
      while (seen.builtIn === undefined || seen.core === undefined) {
        const [b, k] = await Promise.all([
          seen.builtIn === undefined ? udpQuery(dns.port, name, TYPE.A, undefined, 500).catch(() => undefined) : undefined,
          seen.core === undefined ? udpQuery(coredns.port, name, TYPE.A, undefined, 500).catch(() => undefined) : undefined,
        ]);
        const t = performance.now() - start;
        if (b && b.answers.length) seen.builtIn = t;
        if (k && k.answers.length) seen.core = t;
        if (t > 20_000) throw new Error(`${name} not answered after 20 s`);
        await sleep(2);
      }
      lags.builtIn.push(seen.builtIn);
      lags.core.push(seen.core);
    }
    const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const mx = (xs: number[]): number => Math.max(...xs);

    const row = (label: string, r: PerfResult): string =>
      `| ${label} | ${r.qps.toFixed(0)} | ${r.p50.toFixed(3)} | ${r.p90.toFixed(3)} | ${r.p99.toFixed(3)} | ${r.max.toFixed(2)} | ${r.lost} / ${r.sent} | ${Object.entries(r.rcodes).map(([k, v]) => `${k} ${v}`).join(', ')} |`;
    const out = [
      `Model: ${APPS} applications × ${IFACES} interfaces × 3 instances → ${records.length} records; query file ${lines.length} queries`,
      '(interface A 50 %, SRV 20 %, TXT 10 %, instance A 10 %, NXDOMAIN 10 %); dnsperf -l ' + `${SECONDS} -c ${CLIENTS}, UDP, no cache plugin in CoreDNS.`,
      '',
      '| server | QPS | p50 ms | p90 ms | p99 ms | max ms | lost / sent | rcodes |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
      row('built-in responder', builtIn),
      row('CoreDNS + etcd plugin', core),
      '',
      `QPS ratio built-in / CoreDNS: ${(builtIn.qps / core.qps).toFixed(2)}×; p99 ratio: ${(builtIn.p99 / core.p99).toFixed(2)}×.`,
      '',
      `Registry change → DNS answer (${CHANGES} changes, one new interface each; zone of ${records.length} records; polled every 2 ms):`,
      `built-in responder median ${med(lags.builtIn).toFixed(1)} ms, max ${mx(lags.builtIn).toFixed(1)} ms; ` +
        `CoreDNS via etcd median ${med(lags.core).toFixed(1)} ms, max ${mx(lags.core).toFixed(1)} ms.`,
    ].join('\n');
    process.stdout.write(`${out}\n`);
  } finally {
    await dns.close();
    await store.close();
    await coredns.stop();
    await etcd.stop();
    await stopAll();
  }
}

await main();
