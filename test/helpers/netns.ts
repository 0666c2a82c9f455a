// Hosts as network namespaces for the transparent-interception suites: a private /24 in
// 10.210.0.0/16 on a bridge in a hub namespace, one namespace per host on a veth, and one
// veth into the root namespace (.1) where Isthmus serves xDS and DNS. Nothing is routed
// beyond the /24 (and the VIP range, on-link, which only a sidecar ever answers).
// Everything created is recorded and removed by destroy(), also on failure; namespaces
// left by a crashed run (its pid gone) are removed at the next start.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ENVOY_BIN } from './envoy.ts';
import { MAIN, REPO } from './isthmus.ts';
import { freePort } from './ports.ts';
import { scratchDir, spawnTracked, type Proc } from './processes.ts';
import { GiveUp, waitFor } from './wait.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const IPTABLES_SCRIPT = path.resolve(HERE, '..', '..', 'deploy', 'iptables', 'isthmus-iptables.sh');
const AGENT = path.join(HERE, 'netns-agent.ts');
export const PROXY_UID = 1337;
const PREFIX = 'isth';

/** Runs a short command (stdin closed); throws with its stderr unless `okToFail`. */
function sh(cmd: string, args: readonly string[], okToFail = false): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: 20_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err && !okToFail) reject(new Error(`${cmd} ${args.join(' ')} failed: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes namespaces and root veths of earlier runs whose process is gone. */
async function sweepStale(): Promise<void> {
  const list = await sh('ip', ['netns', 'list'], true);
  for (const line of list.split('\n')) {
    const m = new RegExp(`^(${PREFIX}(\\d+)-\\S+)`).exec(line.trim());
    if (m && !pidAlive(Number(m[2]))) await sh('ip', ['netns', 'del', m[1]!], true);
  }
  const links = await sh('ip', ['-o', 'link', 'show'], true);
  for (const line of links.split('\n')) {
    const m = new RegExp(`^\\d+: (${PREFIX}(\\d+)r)[@:]`).exec(line);
    if (m && !pidAlive(Number(m[2]))) await sh('ip', ['link', 'del', m[1]!], true);
  }
}

export interface Host {
  readonly name: string;
  readonly ns: string;
  readonly ip: string;
}

/** A host's app (netns-agent.ts), driven over its Unix control socket. */
export class Agent {
  readonly proc: Proc;
  readonly socket: string;

  constructor(proc: Proc, socket: string) {
    this.proc = proc;
    this.socket = socket;
  }

  request<T>(pathname: string, body: unknown = {}): Promise<T> {
    return new Promise((resolve, reject) => {
      const data = JSON.stringify(body);
      const req = http.request({ socketPath: this.socket, path: pathname, method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) }, timeout: 30_000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          if (res.statusCode !== 200) reject(new Error(`agent ${pathname}: ${res.statusCode} ${text}`));
          else resolve(JSON.parse(text) as T);
        });
      });
      req.on('error', reject);
      req.on('timeout', () => req.destroy(new Error(`agent ${pathname}: timeout`)));
      req.end(data);
    });
  }
}

export class NetLab {
  readonly id = process.pid;
  /** Third octet of this run's /24. */
  readonly net: number;
  readonly hub: string;
  readonly rootVeth: string;
  readonly rootIp: string;
  readonly hosts: Host[] = [];
  private readonly namespaces: string[] = [];
  private readonly procs: Proc[] = [];
  /** A world-readable directory for files uid PROXY_UID reads (bootstraps, Envoy's binary). */
  readonly shared: string;
  private envoyBin?: string;

  private constructor(net: number) {
    this.net = net;
    this.hub = `${PREFIX}${this.id}-hub`;
    this.rootVeth = `${PREFIX}${this.id}r`;
    this.rootIp = `10.210.${this.net}.1`;
    this.shared = fs.mkdtempSync(path.join(os.tmpdir(), 'isthmus-netns-'));
    fs.chmodSync(this.shared, 0o755);
  }

  static async create(): Promise<NetLab> {
    await sweepStale();
    // A /24 no other run (or anything else on this machine) routes already.
    const routes = await sh('ip', ['-4', 'route', 'show'], true);
    let net = 1 + (process.pid % 250);
    for (let i = 0; i < 250 && routes.includes(`10.210.${net}.`); i++) net = 1 + (net % 250);
    const lab = new NetLab(net);
    try {
      await lab.addNs(lab.hub);
      await lab.inNs(lab.hub, 'ip', ['link', 'add', 'br0', 'type', 'bridge']);
      await lab.inNs(lab.hub, 'ip', ['link', 'set', 'br0', 'up']);
      // Root side: Isthmus's address on this /24, and nothing else.
      await sh('ip', ['link', 'add', lab.rootVeth, 'type', 'veth', 'peer', 'name', `${lab.rootVeth}h`, 'netns', lab.hub]);
      await sh('ip', ['addr', 'add', `${lab.rootIp}/24`, 'dev', lab.rootVeth]);
      await sh('ip', ['link', 'set', lab.rootVeth, 'up']);
      await lab.inNs(lab.hub, 'ip', ['link', 'set', `${lab.rootVeth}h`, 'master', 'br0', 'up']);
    } catch (err) {
      await lab.destroy();
      throw err;
    }
    return lab;
  }

  private async addNs(ns: string): Promise<void> {
    await sh('ip', ['netns', 'add', ns]);
    this.namespaces.push(ns);
    await this.inNs(ns, 'ip', ['link', 'set', 'lo', 'up']);
  }

  inNs(ns: string, cmd: string, args: readonly string[], okToFail = false): Promise<string> {
    return sh('ip', ['netns', 'exec', ns, cmd, ...args], okToFail);
  }

  /** A host namespace at 10.210.NET.(10+index), with the VIP range on-link. */
  async addHost(name: string, vipCidr = '240.240.0.0/16'): Promise<Host> {
    const index = this.hosts.length;
    const ns = `${PREFIX}${this.id}-${name}`;
    const ip = `10.210.${this.net}.${10 + index}`;
    const veth = `${PREFIX}${this.id}h${index}`;
    await this.addNs(ns);
    await sh('ip', ['link', 'add', veth, 'netns', ns, 'type', 'veth', 'peer', 'name', `${veth}b`, 'netns', this.hub]);
    await this.inNs(this.hub, 'ip', ['link', 'set', `${veth}b`, 'master', 'br0', 'up']);
    await this.inNs(ns, 'ip', ['link', 'set', veth, 'name', 'eth0']);
    await this.inNs(ns, 'ip', ['addr', 'add', `${ip}/24`, 'dev', 'eth0']);
    await this.inNs(ns, 'ip', ['link', 'set', 'eth0', 'up']);
    await this.inNs(ns, 'ip', ['route', 'add', vipCidr, 'dev', 'eth0']);
    const host = { name, ns, ip };
    this.hosts.push(host);
    return host;
  }

  /**
   * `isthmus serve` in the root namespace, ready: xDS and DNS on the lab's root address (what
   * the hosts reach), admin on loopback, short debounce; `args` adds or overrides flags.
   */
  async isthmus(registries: readonly string[], vipStore: string, args: readonly string[] = []): Promise<{ proc: Proc; adminUrl: string; xds: string; dns: string }> {
    const xds = `${this.rootIp}:${await freePort()}`;
    const dns = `${this.rootIp}:${await freePort()}`;
    const adminUrl = `http://127.0.0.1:${await freePort()}`;
    const proc = spawnTracked('isthmus', process.execPath, [
      MAIN, 'serve', ...registries.flatMap((r) => ['--registry', r]), '--xds-address', xds, '--admin-address', adminUrl.slice('http://'.length),
      '--dns-listen', dns, '--debounce-quiet', '50ms', '--debounce-max', '500ms', '--vip-store', vipStore, ...args,
    ], { cwd: REPO });
    await waitFor(async () => {
      if (proc.exit) throw new GiveUp(`isthmus exited: ${proc.tail()}`);
      return (await fetch(`${adminUrl}/healthz/ready`, { signal: AbortSignal.timeout(1000) })).status === 200;
    }, { timeoutMs: 20_000, what: 'isthmus ready' });
    return { proc, adminUrl, xds, dns };
  }

  /** Starts a tracked process inside the host's namespace. */
  spawn(host: Host, name: string, cmd: string, args: readonly string[]): Proc {
    const p = spawnTracked(`${host.name}-${name}`, 'ip', ['netns', 'exec', host.ns, cmd, ...args]);
    this.procs.push(p);
    return p;
  }

  /** The host's app: a provider (`serve` = its name) or a caller; `dns` = where it resolves names. */
  async agent(host: Host, opts: { serve?: string; dns?: string } = {}): Promise<Agent> {
    const socket = path.join(scratchDir(`agent-${host.name}`), 'control.sock');
    const args = [AGENT, '--control', socket, ...(opts.serve ? ['--serve', opts.serve] : []), ...(opts.dns ? ['--dns', opts.dns] : [])];
    const proc = this.spawn(host, opts.serve ? `app-${opts.serve}` : 'app', process.execPath, args);
    await waitFor(
      () => {
        if (proc.exit) throw new GiveUp(`exited: ${proc.tail()}`);
        return proc.output().includes('ready');
      },
      { timeoutMs: 10_000, intervalMs: 50, what: `agent on ${host.name}` },
    );
    return new Agent(proc, socket);
  }

  /** Runs deploy/iptables/isthmus-iptables.sh in the host's namespace (args: its flags). */
  iptables(host: Host, args: readonly string[]): Promise<string> {
    return this.inNs(host.ns, 'sh', [IPTABLES_SCRIPT, ...args]);
  }

  /** The nat table of the host's namespace, as `iptables -S`. */
  natRules(host: Host): Promise<string> {
    return this.inNs(host.ns, 'iptables', ['-t', 'nat', '-S']);
  }

  /** Envoy's binary where uid PROXY_UID can run it (the cache under /root is not). */
  private envoy(): string {
    if (this.envoyBin) return this.envoyBin;
    const dir = path.join(os.tmpdir(), 'isthmus-netns-bin');
    fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
    fs.chmodSync(dir, 0o755);
    const target = path.join(dir, 'envoy');
    const src = fs.realpathSync(ENVOY_BIN);
    const stale = !fs.existsSync(target) || fs.statSync(target).size !== fs.statSync(src).size;
    if (stale) {
      const tmp = `${target}.${process.pid}`;
      fs.copyFileSync(src, tmp);
      fs.chmodSync(tmp, 0o755);
      fs.renameSync(tmp, target);
    }
    return (this.envoyBin = target);
  }

  /**
   * Envoy as uid PROXY_UID inside the host's namespace, from `bootstrap` with its admin
   * listener moved to HOST_IP:15000 (excluded from interception) so the test can reach it.
   */
  async sidecar(host: Host, bootstrap: Record<string, unknown>): Promise<{ proc: Proc; admin: string }> {
    const dir = fs.mkdtempSync(path.join(this.shared, `${host.name}-`));
    fs.chmodSync(dir, 0o755);
    fs.chownSync(dir, PROXY_UID, PROXY_UID);
    const boot = { ...bootstrap, admin: { address: { socket_address: { address: host.ip, port_value: 15000 } } } };
    const config = path.join(dir, 'bootstrap.json');
    fs.writeFileSync(config, JSON.stringify(boot));
    fs.chmodSync(config, 0o644);
    const proc = this.spawn(host, 'envoy', 'setpriv', [
      '--reuid', String(PROXY_UID), '--regid', String(PROXY_UID), '--clear-groups',
      this.envoy(), '--config-path', config, '--disable-hot-restart', '-l', 'warning',
      '--drain-time-s', '1', '--parent-shutdown-time-s', '2', '--concurrency', '1',
    ]);
    const admin = `http://${host.ip}:15000`;
    await waitFor(
      async () => {
        if (proc.exit) throw new GiveUp(`envoy on ${host.name} exited: ${proc.tail()}`);
        const res = await fetch(`${admin}/ready`, { signal: AbortSignal.timeout(1000) });
        return (await res.text()).trim() === 'LIVE';
      },
      { timeoutMs: 30_000, intervalMs: 100, what: `envoy on ${host.name} LIVE` },
    );
    return { proc, admin };
  }

  /** Stops its processes, clears iptables, and deletes every namespace and veth it made. */
  async destroy(): Promise<void> {
    await Promise.all(this.procs.map((p) => p.stop(3000)));
    for (const h of this.hosts) await this.iptables(h, ['--clean']).catch(() => undefined);
    for (const ns of [...this.namespaces].reverse()) await sh('ip', ['netns', 'del', ns], true);
    await sh('ip', ['link', 'del', this.rootVeth], true);
    fs.rmSync(this.shared, { recursive: true, force: true });
  }

  /** Namespaces and root links of this run still present (for the leftover check). */
  async leftovers(): Promise<string[]> {
    const ns = (await sh('ip', ['netns', 'list'], true)).split('\n').filter((l) => l.startsWith(`${PREFIX}${this.id}-`));
    const links = (await sh('ip', ['-o', 'link', 'show'], true)).split('\n').filter((l) => l.includes(`${PREFIX}${this.id}`));
    return [...ns, ...links];
  }
}
