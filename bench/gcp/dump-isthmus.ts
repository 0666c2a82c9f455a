// Prints, as protobuf JSON, what Isthmus serves an explicit-mode Envoy for the bench model
// with S services × E endpoints: the reference the Go peer (bench/gcp/main.go) must match.
// Usage: node bench/gcp/dump-isthmus.ts [--services 2] [--endpoints 2] [--peer GCP_BINARY]
// With --peer it compares instead: the peer's -dump, decoded the same way, must be equal
// (nested Any values expanded, resources in name order); exits 1 naming the first difference.
import { execFileSync } from 'node:child_process';
import { isDeepStrictEqual, parseArgs } from 'node:util';
import { firstValueFrom } from 'rxjs';
import { Isthmus, DEFAULTS } from '../../src/server.ts';
import { proxyFromNode } from '../../src/xds/proxy.ts';
import { messageType } from '../../src/xds/proto.ts';
import { MemoryRegistry } from '../../src/registries/memory.ts';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, MESSAGE_OF, ROUTE_TYPE } from '../../src/xds/resources.ts';
import { benchModel, REGISTRY } from '../model.ts';

const { values } = parseArgs({ options: { services: { type: 'string', default: '2' }, endpoints: { type: 'string', default: '2' }, peer: { type: 'string' } } });
const S = Number(values.services);
const E = Number(values.endpoints);
const registry = new MemoryRegistry(REGISTRY);
registry.set(benchModel(S, E));
const isthmus = new Isthmus({
  registries: [registry],
  xdsAddress: '127.0.0.1:0',
  adminAddress: '127.0.0.1:0',
  debounceQuietMs: DEFAULTS.debounceQuietMs,
  debounceMaxMs: DEFAULTS.debounceMaxMs,
  syncTimeoutMs: DEFAULTS.syncTimeoutMs,
});
await isthmus.start();
const g = isthmus.xds.current() ?? (await firstValueFrom(isthmus.xds.snapshots), isthmus.xds.current());
if (!g) throw new Error('no generation');
// The node the simulated proxies send (bench/sim-proxies.ts).
const proxy = proxyFromNode({ id: 'sim-0.bench', cluster: 'bench', user_agent_name: 'envoy', metadata: { fields: { ISTHMUS_MODE: { stringValue: 'explicit' } } } });
const any = messageType('google.protobuf.Any');
const TYPES = [CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE] as const;

/**
 * Decoded JSON with proto3 defaults filled in (protobufjs writes some zero values that Go
 * leaves out: the same config on the wire) and every nested Any decoded too.
 */
function decodeToJson(fullName: string, bytes: Uint8Array): Record<string, unknown> {
  const t = messageType(fullName);
  return t.toObject(t.decode(bytes), { enums: String, longs: String, bytes: String, defaults: true }) as Record<string, unknown>;
}
function expand(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(expand);
  if (!v || typeof v !== 'object') return v;
  const o = v as Record<string, unknown>;
  if (typeof o.type_url === 'string' && typeof o.value === 'string') {
    const t = o.type_url.slice(o.type_url.indexOf('/') + 1);
    return { '@type': t, ...(expand(decodeToJson(t, Buffer.from(o.value, 'base64'))) as object) };
  }
  return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, expand(x)]));
}
const nameOf = (r: Record<string, unknown>): string => String(r.name ?? r.cluster_name);
const byName = (rs: Record<string, unknown>[]): Record<string, unknown>[] => rs.sort((a, b) => (nameOf(a) < nameOf(b) ? -1 : 1));

const ours: Record<string, Record<string, unknown>[]> = {};
for (const t of TYPES) {
  const rs = t === ROUTE_TYPE ? [g.resolve(t, 'outbound', proxy)!] : [...g.wildcard(t, proxy).values()];
  ours[MESSAGE_OF[t]] = byName(rs.map((r) => expand(decodeToJson(MESSAGE_OF[t], (any.decode(r.any) as unknown as { value: Uint8Array }).value)) as Record<string, unknown>));
}
await isthmus.close();
if (!values.peer) {
  process.stdout.write(JSON.stringify(ours, null, 1) + '\n');
} else {
  const theirs: Record<string, Record<string, unknown>[]> = {};
  const lines = execFileSync(values.peer, ['-services', String(S), '-endpoints', String(E), '-dump'], { encoding: 'utf8', maxBuffer: 1 << 30 }).trim().split('\n');
  for (const line of lines) {
    const [url, b64] = line.split(' ') as [string, string];
    const t = url.slice(url.indexOf('/') + 1);
    (theirs[t] ??= []).push(expand(decodeToJson(t, Buffer.from(b64, 'base64'))) as Record<string, unknown>);
  }
  let same = true;
  for (const t of TYPES.map((u) => MESSAGE_OF[u])) {
    const a = ours[t] ?? [];
    const b = byName(theirs[t] ?? []);
    const i = a.findIndex((r, n) => !isDeepStrictEqual(r, b[n]));
    if (a.length !== b.length || i >= 0) {
      same = false;
      process.stderr.write(`${t} differs (${a.length} vs ${b.length} resources)${i >= 0 ? `:\nIsthmus ${JSON.stringify(a[i])}\npeer    ${JSON.stringify(b[i])}` : ''}\n`);
    } else process.stdout.write(`${t}: ${a.length} resources, identical\n`);
  }
  process.exitCode = same ? 0 : 1;
}
