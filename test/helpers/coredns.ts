// A throwaway CoreDNS (built by scripts/provision.d/45-coredns.sh) on a free loopback port,
// serving one zone from etcd with the etcd plugin, no cache: what Isthmus writes under
// /skydns is what it answers. Tracked like every test process.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { encodeQuery } from '../../src/dns/wire.ts';
import { udpExchange } from './dns.ts';
import { freePort } from './ports.ts';
import { scratchDir, spawnTracked, type Proc } from './processes.ts';
import { GiveUp, waitFor } from './wait.ts';

export const COREDNS_BIN =
  process.env.ISTHMUS_COREDNS ?? path.join(process.env.ISTHMUS_CACHE ?? path.join(os.homedir(), '.cache', 'isthmus'), 'bin', 'coredns');

export interface CoreDnsOptions {
  /** etcd client endpoint, HOST:PORT. */
  readonly etcd: string;
  readonly zone?: string;
  /** The etcd plugin's path (default /skydns). */
  readonly path?: string;
  readonly name?: string;
  readonly timeoutMs?: number;
}

export class CoreDns {
  readonly port: number;
  readonly proc: Proc;
  readonly corefile: string;

  constructor(port: number, proc: Proc, corefile: string) {
    this.port = port;
    this.proc = proc;
    this.corefile = corefile;
  }

  async stop(): Promise<void> {
    await this.proc.stop();
  }
}

export function corefileText(port: number, etcd: string, zone: string, prefix: string): string {
  return `${zone}:${port} {
  bind 127.0.0.1
  etcd ${zone} {
    path ${prefix}
    endpoint http://${etcd}
  }
  errors
}
`;
}

/** Starts CoreDNS and waits until it answers (any rcode) over UDP. */
export async function startCoreDns(opts: CoreDnsOptions): Promise<CoreDns> {
  if (!fs.existsSync(COREDNS_BIN)) throw new Error(`CoreDNS not found at ${COREDNS_BIN}: run bash scripts/provision.sh`);
  const name = opts.name ?? 'coredns';
  const zone = opts.zone ?? 'rpc.cluster.local';
  const port = await freePort();
  const dir = scratchDir(name);
  const corefile = path.join(dir, 'Corefile');
  fs.writeFileSync(corefile, corefileText(port, opts.etcd, zone, opts.path ?? '/skydns'));
  const proc = spawnTracked(name, COREDNS_BIN, ['-conf', corefile, '-quiet'], { cwd: dir });
  try {
    await waitFor(
      async () => {
        if (proc.exit) throw new GiveUp(`exited with ${proc.exit.code ?? proc.exit.signal}`);
        try {
          await udpExchange(port, encodeQuery({ id: 1, name: zone, type: 6 }), 300);
          return true;
        } catch {
          return false;
        }
      },
      { timeoutMs: opts.timeoutMs ?? 15_000, intervalMs: 50, what: `${name} on 127.0.0.1:${port}` },
    );
  } catch (err) {
    await proc.stop();
    throw new Error(`${name} did not start: ${(err as Error).message}\n--- ${proc.logFile} ---\n${proc.tail()}`, { cause: err });
  }
  return new CoreDns(port, proc, corefile);
}
