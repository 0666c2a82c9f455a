// isthmus plan: a dry run. Loads the given registries once, builds the xDS each connected
// proxy of a running Isthmus would get, and compares it with what that Isthmus has sent
// (resource names and versions per type, from /debug/config_dump): added, changed, removed.
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { filter, firstValueFrom, timeout } from 'rxjs';
import { mergeStates } from '../model/aggregate.ts';
import { MeshSnapshot, vipNames } from '../model/mesh-snapshot.ts';
import type { RegistryState } from '../model/types.ts';
import { FileVipStore } from '../addresses/file-store.ts';
import { registryFromUrl } from '../registries/index.ts';
import { XdsCache, type Generation } from '../xds/cache.ts';
import { proxyFromNode, type ProxyInfo } from '../xds/proxy.ts';
import { CLUSTER_TYPE, DUBBO_ROUTE_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, SHORT_NAME, type TypeUrl } from '../xds/resources.ts';
import { OUTBOUND_LISTENER } from '../xds/generators/names.ts';
import { UsageError } from './args.ts';

export const PLAN_HELP = `Usage: isthmus plan [options]

A dry run: loads the configuration the given registries hold now, builds the xDS that
each proxy connected to a running Isthmus would receive from it, and prints, per proxy
and resource type, which resources would be added, changed or removed compared with what
that Isthmus has sent (names and versions, from its /debug/config_dump).

Options:
  --registry URL    a registry to load (repeatable; default file://config), as for serve
  --against URL     admin address of the running Isthmus (default http://127.0.0.1:15014)
  --proxy ID        only this proxy (node id)
  --vip-store PATH  VIP table to use (default: the running Isthmus's, when it is a file)
  --timeout DUR     how long to wait for each registry's first complete read (default 20s)
  -h, --help        this text

Output: one block per proxy, one line per difference:
  + TYPE NAME        added
  ~ TYPE NAME        changed (version OLD → NEW)
  - TYPE NAME        removed
and a summary line. Proxyless gRPC clients are compared on the names they subscribed to.
Problems the new configuration would report (rules refused before sending) are listed too.
Exit status 0 (differences are not an error); 2 on usage errors; 1 when a registry or the
running Isthmus cannot be read.
`;

interface SyncEntry {
  id: string;
}
interface DumpEntry {
  proxy: string;
  metadata: Record<string, unknown>;
  resources: Record<string, { name: string; version: string }[]>;
}

const TYPES: readonly TypeUrl[] = [CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, DUBBO_ROUTE_TYPE];

async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}: ${(await res.text()).slice(0, 300)}`);
  return (await res.json()) as T;
}

/** The metadata from config_dump back to a proxy record (as a Struct, the way a node sends it). */
function proxyOf(d: DumpEntry): ProxyInfo {
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(d.metadata)) fields[k] = typeof v === 'string' ? { stringValue: v } : typeof v === 'number' ? { numberValue: v } : { stringValue: JSON.stringify(v) };
  // A proxyless client never subscribes to listeners by wildcard: no virtualOutbound listener was sent.
  const sentListeners = d.resources[SHORT_NAME[LISTENER_TYPE]] ?? [];
  const envoy = sentListeners.some((l) => l.name === OUTBOUND_LISTENER) || sentListeners.length === 0;
  return proxyFromNode({ id: d.proxy, metadata: { fields: fields as never }, user_agent_name: envoy ? 'envoy' : 'gRPC Node' });
}

/** Name → version of what the proxy would get from the new generation. */
function planned(g: Generation, proxy: ProxyInfo, sent: Record<string, { name: string; version: string }[]>): Map<TypeUrl, Map<string, string>> {
  const out = new Map<TypeUrl, Map<string, string>>();
  if (proxy.kind === 'envoy') {
    const clusters = g.wildcard(CLUSTER_TYPE, proxy);
    out.set(CLUSTER_TYPE, new Map([...clusters].map(([n, r]) => [n, r.version])));
    out.set(LISTENER_TYPE, new Map([...g.wildcard(LISTENER_TYPE, proxy)].map(([n, r]) => [n, r.version])));
    out.set(ROUTE_TYPE, new Map([...g.wildcard(ROUTE_TYPE, proxy)].map(([n, r]) => [n, r.version])));
    out.set(DUBBO_ROUTE_TYPE, new Map([...g.wildcard(DUBBO_ROUTE_TYPE, proxy)].map(([n, r]) => [n, r.version])));
    // Envoy asks for the assignments of its EDS clusters.
    out.set(ENDPOINT_TYPE, new Map([...g.endpoints].filter(([n]) => clusters.has(n)).map(([n, r]) => [n, r.version])));
  } else {
    for (const t of TYPES) {
      const m = new Map<string, string>();
      for (const { name } of sent[SHORT_NAME[t]] ?? []) {
        const r = g.resolve(t, name, proxy);
        if (r) m.set(name, r.version);
      }
      out.set(t, m);
    }
  }
  return out;
}

export async function plan(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        registry: { type: 'string', multiple: true },
        against: { type: 'string' },
        proxy: { type: 'string' },
        'vip-store': { type: 'string' },
        timeout: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const v = parsed.values;
  if (v.help) {
    process.stdout.write(PLAN_HELP);
    return 0;
  }
  const against = (v.against ?? 'http://127.0.0.1:15014').replace(/\/$/, '');
  const waitMs = v.timeout ? parseDuration(v.timeout) : 20_000;
  const registries = (v.registry?.length ? v.registry : ['file://config']).map((u) => registryFromUrl(u));

  // Connected proxies and what they were sent.
  const ids = v.proxy ? [v.proxy] : [...new Set((await getJson<SyncEntry[]>(`${against}/debug/syncz`)).map((s) => s.id))].sort();
  const dumps: DumpEntry[] = [];
  for (const id of ids) {
    const d = await getJson<DumpEntry[]>(`${against}/debug/config_dump?proxy=${encodeURIComponent(id)}`);
    if (d[0]) dumps.push(d[0]);
  }

  // VIPs: allocations already made (names new in this config would get theirs when served).
  let vips = new Map<string, string>();
  let vipStore = v['vip-store'];
  if (!vipStore) {
    const dns = await getJson<{ vipStore?: string }>(`${against}/debug/dnsz`).catch(() => undefined);
    if (dns?.vipStore?.startsWith('file:')) vipStore = fileURLToPath(dns.vipStore);
  }
  if (vipStore) vips = new Map(Object.entries((await new FileVipStore(vipStore).load()).table?.allocations ?? {}));

  // The new configuration, read once.
  const states: RegistryState[] = [];
  for (const r of registries) {
    states.push(await firstValueFrom(r.states.pipe(filter((s) => s.synced), timeout(waitMs))).catch((e: unknown) => {
      throw new Error(`registry ${r.id}: no complete read within ${waitMs} ms (${(e as Error).message})`);
    }));
  }
  // The snapshot serve would build before allocating: names without a VIP yet are pending.
  const model = mergeStates(states);
  const names = vipNames(model);
  const snapshot = new MeshSnapshot(model, { vips: new Map(names.filter((n) => vips.has(n)).map((n) => [n, vips.get(n)!])), pending: names.filter((n) => !vips.has(n)) });
  const g = new XdsCache().update(snapshot.routing.model, snapshot.routing.vips);

  const out: string[] = [];
  let total = 0;
  for (const d of dumps) {
    const proxy = proxyOf(d);
    const want = planned(g, proxy, d.resources);
    const lines: string[] = [];
    for (const t of TYPES) {
      const short = SHORT_NAME[t];
      const have = new Map((d.resources[short] ?? []).map((r) => [r.name, r.version]));
      const next = want.get(t) ?? new Map<string, string>();
      for (const [name, ver] of [...next].sort()) {
        const old = have.get(name);
        if (old === undefined) lines.push(`  + ${short} ${name}`);
        else if (old !== ver) lines.push(`  ~ ${short} ${name} (version ${old} → ${ver})`);
      }
      for (const name of [...have.keys()].sort()) if (!next.has(name)) lines.push(`  - ${short} ${name}`);
    }
    total += lines.length;
    out.push(`proxy ${d.proxy} (${proxy.kind}${proxy.kind === 'envoy' ? `, ${proxy.mode}` : ''}): ${lines.length ? `${lines.length} difference(s)` : 'no change'}`, ...lines);
  }
  if (!dumps.length) out.push(`no connected proxy${v.proxy ? ` with node id "${v.proxy}"` : ''} at ${against}`);
  const problems = [...model.ruleRejections.map((r) => `rule rejected: ${r.source}${r.document !== undefined ? `:${r.document}` : ''}: ${r.field ?? ''}: ${r.reason} (${r.kind ?? ''} ${r.name ?? ''})`), ...g.problems.map((p) => `xDS: ${p.name}: ${p.reason}`)];
  for (const p of problems) out.push(`problem: ${p}`);
  if (snapshot.addresses.pending.length) out.push(`note: ${snapshot.addresses.pending.length} name(s) have no VIP yet and get one when served (their VIP routes are not in this plan): ${snapshot.addresses.pending.slice(0, 5).join(', ')}${snapshot.addresses.pending.length > 5 ? ', …' : ''}`);
  out.push(`plan: ${dumps.length} proxy(ies), ${total} difference(s), ${problems.length} problem(s); model version ${model.version}`);
  process.stdout.write(out.join('\n') + '\n');
  return 0;
}

function parseDuration(raw: string): number {
  const m = /^(\d+)(ms|s|m)?$/.exec(raw);
  if (!m) throw new UsageError(`--timeout "${raw}": expected e.g. 500ms, 20s, 1m`);
  return Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 'm' ? 60_000 : 1000);
}
