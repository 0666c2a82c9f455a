// A real Envoy started from a bootstrap object, with typed access to its admin API.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnTracked, scratchDir, type Proc } from './processes.ts';
import { GiveUp, waitFor } from './wait.ts';

export const ENVOY_BIN =
  process.env.ISTHMUS_ENVOY ?? path.join(process.env.ISTHMUS_CACHE ?? path.join(os.homedir(), '.cache', 'isthmus'), 'bin', 'envoy');

export interface EnvoyOptions {
  /** Name for logs (default "envoy"). */
  name?: string;
  /** Wait for `/ready` to answer LIVE ('live'), only for the admin port ('admin'), or not at all. */
  waitFor?: 'live' | 'admin' | 'none';
  timeoutMs?: number;
  logLevel?: string;
  /** Extra command-line arguments. */
  args?: readonly string[];
}

export interface HostStatus {
  address: string;
  port: number;
  /** EDS health as Envoy sees it, e.g. HEALTHY, UNHEALTHY, DRAINING. */
  health: string;
  /** Envoy's failed_outlier_check / failed_active_health_check flags, when set. */
  flags: string[];
  weight: number;
  stats: Record<string, number>;
}

export interface ClusterStatus {
  name: string;
  hosts: HostStatus[];
}

export interface ListenerStatus {
  name: string;
  address: string;
  port: number;
}

export class Envoy {
  readonly proc: Proc;
  readonly adminPort: number;
  readonly configPath: string;

  constructor(proc: Proc, adminPort: number, configPath: string) {
    this.proc = proc;
    this.adminPort = adminPort;
    this.configPath = configPath;
  }

  get adminUrl(): string {
    return `http://127.0.0.1:${this.adminPort}`;
  }

  /** GET (or POST) an admin path; throws on a non-2xx answer. */
  async admin(pathAndQuery: string, method = 'GET'): Promise<string> {
    const res = await fetch(`${this.adminUrl}${pathAndQuery}`, { method, signal: AbortSignal.timeout(5000) });
    const body = await res.text();
    if (!res.ok) throw new Error(`envoy admin ${pathAndQuery}: HTTP ${res.status}: ${body.slice(0, 300)}`);
    return body;
  }

  /** The text of `/ready` (LIVE, PRE_INITIALIZING, INITIALIZING, DRAINING). */
  async readyState(): Promise<string> {
    const res = await fetch(`${this.adminUrl}/ready`, { signal: AbortSignal.timeout(2000) });
    return (await res.text()).trim();
  }

  /** `/config_dump` parsed; `resource` selects e.g. dynamic_active_clusters. */
  async configDump(query = ''): Promise<ConfigDump> {
    return JSON.parse(await this.admin(`/config_dump${query ? `?${query}` : ''}`)) as ConfigDump;
  }

  /** The config_dump section of one type, e.g. 'ClustersConfigDump'. */
  async configSection(kind: 'ClustersConfigDump' | 'ListenersConfigDump' | 'RoutesConfigDump' | 'BootstrapConfigDump'): Promise<Record<string, unknown>> {
    const dump = await this.configDump();
    const section = dump.configs.find((c) => c['@type'].endsWith(`.${kind}`));
    if (!section) throw new Error(`config_dump has no ${kind}`);
    return section;
  }

  /** version_info of every dynamic active cluster and listener, by name. */
  async dynamicVersions(): Promise<{ clusters: Record<string, string>; listeners: Record<string, string> }> {
    const dump = await this.configDump();
    const clusters: Record<string, string> = {};
    const listeners: Record<string, string> = {};
    for (const c of dump.configs) {
      if (c['@type'].endsWith('.ClustersConfigDump')) {
        for (const d of (c.dynamic_active_clusters ?? []) as DynamicEntry[]) {
          clusters[(d.cluster as { name: string }).name] = d.version_info ?? '';
        }
      } else if (c['@type'].endsWith('.ListenersConfigDump')) {
        for (const d of (c.dynamic_listeners ?? []) as DynamicListener[]) {
          listeners[d.name] = d.active_state?.version_info ?? '';
        }
      }
    }
    return { clusters, listeners };
  }

  /** `/clusters?format=json` as cluster name → hosts. */
  async clusters(): Promise<Map<string, ClusterStatus>> {
    const raw = JSON.parse(await this.admin('/clusters?format=json')) as { cluster_statuses?: RawCluster[] };
    const out = new Map<string, ClusterStatus>();
    for (const c of raw.cluster_statuses ?? []) {
      const hosts: HostStatus[] = (c.host_statuses ?? []).map((h) => {
        const hs = h.health_status ?? {};
        const flags = Object.entries(hs)
          .filter(([k, v]) => k !== 'eds_health_status' && v === true)
          .map(([k]) => k);
        const stats: Record<string, number> = {};
        for (const s of h.stats ?? []) stats[s.name] = Number(s.value ?? 0);
        return {
          address: h.address?.socket_address?.address ?? '',
          port: h.address?.socket_address?.port_value ?? 0,
          health: typeof hs.eds_health_status === 'string' ? hs.eds_health_status : 'HEALTHY',
          flags,
          weight: h.weight ?? 1,
          stats,
        };
      });
      out.set(c.name, { name: c.name, hosts });
    }
    return out;
  }

  /** `address:port` of every host of a cluster ([] if the cluster is unknown). */
  async endpointsOf(cluster: string): Promise<string[]> {
    const c = (await this.clusters()).get(cluster);
    return (c?.hosts ?? []).map((h) => `${h.address}:${h.port}`).sort();
  }

  /** `/listeners?format=json` as a list. */
  async listeners(): Promise<ListenerStatus[]> {
    const raw = JSON.parse(await this.admin('/listeners?format=json')) as { listener_statuses?: RawListener[] };
    return (raw.listener_statuses ?? []).map((l) => ({
      name: l.name,
      address: l.local_address?.socket_address?.address ?? '',
      port: l.local_address?.socket_address?.port_value ?? 0,
    }));
  }

  /** Counters and gauges whose name starts with `prefix`, as name → value. */
  async stats(prefix = ''): Promise<Record<string, number>> {
    const text = await this.admin(`/stats?filter=${encodeURIComponent(`^${escapeRegex(prefix)}`)}`);
    const out: Record<string, number> = {};
    for (const line of text.split('\n')) {
      const m = /^(\S+): (\d+)$/.exec(line.trim());
      if (m) out[m[1] as string] = Number(m[2]);
    }
    return out;
  }

  /** Stops Envoy (SIGTERM, then SIGKILL). */
  async stop(graceMs = 5000): Promise<void> {
    await this.proc.stop(graceMs);
  }
}

export interface ConfigDump {
  configs: Array<Record<string, unknown> & { '@type': string }>;
}
interface DynamicEntry {
  version_info?: string;
  cluster?: unknown;
}
interface DynamicListener {
  name: string;
  active_state?: { version_info?: string };
}
interface SocketAddr {
  socket_address?: { address?: string; port_value?: number };
}
interface RawCluster {
  name: string;
  host_statuses?: Array<{
    address?: SocketAddr;
    health_status?: Record<string, unknown>;
    weight?: number;
    stats?: Array<{ name: string; value?: string | number }>;
  }>;
}
interface RawListener {
  name: string;
  local_address?: SocketAddr;
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Starts Envoy with `bootstrap` (an object, or JSON text). The admin port is whatever the
 * bootstrap says (0 is fine: it is read back from --admin-address-path).
 */
export async function startEnvoy(bootstrap: object | string, opts: EnvoyOptions = {}): Promise<Envoy> {
  const name = opts.name ?? 'envoy';
  const dir = scratchDir(name);
  const configPath = path.join(dir, 'bootstrap.json');
  const adminPathFile = path.join(dir, 'admin-address');
  fs.writeFileSync(configPath, typeof bootstrap === 'string' ? bootstrap : JSON.stringify(bootstrap, null, 2));
  if (!fs.existsSync(ENVOY_BIN)) throw new Error(`Envoy not found at ${ENVOY_BIN}: run bash scripts/provision.sh`);
  const args = [
    '--config-path', configPath,
    '--disable-hot-restart',
    '--admin-address-path', adminPathFile,
    '-l', opts.logLevel ?? 'warning',
    '--drain-time-s', '1',
    '--parent-shutdown-time-s', '2',
    '--concurrency', '1',
    ...(opts.args ?? []),
  ];
  const proc = spawnTracked(name, ENVOY_BIN, args);
  const timeoutMs = opts.timeoutMs ?? 20_000;
  const fail = (err: unknown): Error =>
    new Error(`${name} did not start: ${(err as Error).message}\n--- ${proc.logFile} ---\n${proc.tail()}`);
  let adminPort: number;
  try {
    adminPort = await waitFor(
      () => {
        if (proc.exit) throw new GiveUp(`exited with ${proc.exit.code ?? proc.exit.signal}`);
        const text = fs.existsSync(adminPathFile) ? fs.readFileSync(adminPathFile, 'utf8').trim() : '';
        const m = /:(\d+)$/.exec(text);
        return m ? Number(m[1]) : 0;
      },
      { timeoutMs, intervalMs: 50, what: `${name} admin address in ${adminPathFile}` },
    );
  } catch (err) {
    await proc.stop();
    throw fail(err);
  }
  const envoy = new Envoy(proc, adminPort, configPath);
  const mode = opts.waitFor ?? 'live';
  try {
    if (mode !== 'none') {
      await waitFor(
        async () => {
          if (proc.exit) throw new GiveUp(`exited with ${proc.exit.code ?? proc.exit.signal}`);
          const state = await envoy.readyState();
          return mode === 'admin' || state === 'LIVE' ? state : false;
        },
        { timeoutMs, intervalMs: 100, what: `${name} /ready ${mode === 'live' ? '= LIVE' : 'to answer'}` },
      );
    }
  } catch (err) {
    await proc.stop();
    throw fail(err);
  }
  return envoy;
}
