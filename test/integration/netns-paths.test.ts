// The four migration paths across network namespaces, with transparent interception:
// direct (no sidecar), client single-hop (caller's sidecar only), server single-hop
// (provider's sidecar only) and double-hop. Hosts: a meshed caller, a legacy caller, two
// sidecar'd provider hosts (WorkloadEntry) and a legacy VM (SOA registry in etcd, through
// `isthmus register`). Isthmus serves xDS and DNS from the root namespace on the lab's
// /24. Every path carries HTTP/1.1, gRPC and a line-based TCP protocol, and the provider
// records the bytes it receives: they must be identical on every path. Then a provider is
// migrated from the VM to the sidecar'd hosts under continuous calls, with no failed call.
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { interfaceHostname, applicationHostname } from '../../src/model/naming.ts';
import { startEtcd, type EtcdServer } from '../helpers/etcd.ts';
import { bootstrap, ManifestDir, MAIN, REPO } from '../helpers/isthmus.ts';
import { NetLab, type Agent, type Host } from '../helpers/netns.ts';
import { assertNoLeftovers, dumpLogsOnFailure, spawnTracked, stopAll, type Proc } from '../helpers/processes.ts';
import { waitFor, waitUntil } from '../helpers/wait.ts';
import { PORTS, type Call } from '../helpers/netns-protocol.ts';

const APP = 'echo';
const APP_HOST = applicationHostname(APP);
const IFACES = { http: 'com.echo.Http', grpc: 'com.echo.Grpc', tcp: 'com.echo.Tcp' } as const;
const URL_PROTO = { http: 'http', grpc: 'grpc', tcp: 'dubbo' } as const;
type Proto = keyof typeof IFACES;
const PROTOS: Proto[] = ['http', 'grpc', 'tcp'];
const PROPAGATION = { timeoutMs: 30_000, intervalMs: 200 };

const manifests = new ManifestDir();
let lab: NetLab | undefined;
let etcd: EtcdServer;
let adminUrl: string;
let dns: string;
const hosts: Record<'caller' | 'oldcaller' | 'prova' | 'provb' | 'vm', Host> = {} as never;
const agents: Record<string, Agent> = {};
const envoyAdmin: Record<string, string> = {};
const registrations: Proc[] = [];

function workloadEntry(name: string, host: Host): object {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'WorkloadEntry',
    metadata: { name, namespace: 'default' },
    // Default weight: a normal instance, as a VM provider with Dubbo's default weight 100 is.
    spec: { address: host.ip, labels: { app: APP }, ports: { http: PORTS.http, grpc: PORTS.grpc, dubbo: PORTS.tcp } },
  };
}

/** The application as the mesh declares it, so it outlives its last VM provider. */
const declaration = {
  apiVersion: 'networking.istio.io/v1',
  kind: 'ServiceEntry',
  metadata: { name: APP, namespace: 'default' },
  spec: {
    hosts: [APP_HOST],
    location: 'MESH_INTERNAL',
    resolution: 'STATIC',
    ports: [
      { number: PORTS.http, name: 'http', protocol: 'HTTP' },
      { number: PORTS.grpc, name: 'grpc', protocol: 'GRPC' },
      { number: PORTS.tcp, name: 'dubbo', protocol: 'TCP' },
    ],
    workloadSelector: { labels: { app: APP } },
  },
};

async function sidecarBootstrap(host: Host, appPorts: boolean): Promise<Record<string, unknown>> {
  return bootstrap([
    '--node-id', `${host.name}.default`, '--cluster', host.name, '--mode', 'transparent',
    '--xds-address', xds, '--namespace', 'default', '--label', `app=${appPorts ? APP : host.name}`,
    '--instance-ip', host.ip,
    ...(appPorts ? ['--app-port', `${PORTS.http}:HTTP`, '--app-port', `${PORTS.grpc}:GRPC`, '--app-port', `${PORTS.tcp}:TCP`] : []),
  ]);
}

/** A host's sidecar as a pod gets it: interception first (the init container), then Envoy as the excluded uid. */
async function sidecar(host: Host, appPorts: boolean): Promise<Proc> {
  const boot = await sidecarBootstrap(host, appPorts);
  await lab!.iptables(host, ['-u', '1337', '-i', '*']);
  const s = await lab!.sidecar(host, boot);
  envoyAdmin[host.name] = s.admin;
  return s.proc;
}

let xds: string;

before(async () => {
  lab = await NetLab.create();
  for (const name of ['caller', 'oldcaller', 'prova', 'provb', 'vm'] as const) hosts[name] = await lab.addHost(name);
  etcd = await startEtcd({ name: 'etcd-netns' });
  manifests.write('echo.yaml', declaration);
  manifests.write('pods.yaml', [workloadEntry('prova', hosts.prova)]);
  const served = await lab.isthmus([etcd.url('/dubbo'), manifests.url], `${manifests.dir}/../vips.json`, ['--dns-publish-timeout', '3s']);
  ({ adminUrl, dns, xds } = served);

  // Providers: the same app on the VM and on both sidecar'd hosts.
  for (const name of ['prova', 'provb', 'vm'] as const) agents[name] = await lab.agent(hosts[name], { serve: name });
  agents.caller = await lab.agent(hosts.caller, { dns });
  agents.oldcaller = await lab.agent(hosts.oldcaller, { dns });
  // The VM registers itself in the SOA registry, one provider per interface, as Dubbo would.
  for (const proto of PROTOS) {
    registrations.push(spawnTracked(`register-vm-${proto}`, process.execPath, [
      MAIN, 'register', '--registry', etcd.url('/dubbo'), '--application', APP, '--address', hosts.vm.ip,
      '--port', String(PORTS[proto]), '--interface', IFACES[proto], '--protocol', URL_PROTO[proto], '--methods', 'echo', '--ttl', '5s',
    ], { cwd: REPO }));
  }
  await sidecar(hosts.caller, false);
  await sidecar(hosts.prova, true);
  await sidecar(hosts.provb, true);
});

afterEach(dumpLogsOnFailure);
after(async () => {
  await stopAll();
  const left = lab ? await lab.leftovers() : [];
  await lab?.destroy();
  const still = lab ? await lab.leftovers() : [];
  assertNoLeftovers();
  assert.deepEqual(still, [], `left behind: ${still.join('; ')} (before destroy: ${left.length})`);
});

async function registryz(): Promise<{ services: { hostname: string; endpoints: { address: string; origin: { registry: string } }[] }[] }> {
  const res = await fetch(`${adminUrl}/debug/registryz`, { signal: AbortSignal.timeout(5000) });
  return (await res.json()) as never;
}

/** address → source registry scheme of every endpoint of the application. */
async function sources(): Promise<Record<string, string>> {
  const svc = (await registryz()).services.find((s) => s.hostname === APP_HOST);
  const out: Record<string, string> = {};
  for (const e of svc?.endpoints ?? []) out[e.address] = [...new Set([...(out[e.address] ?? '').split('+').filter(Boolean), e.origin.registry.split(':')[0]!])].join('+');
  return out;
}

/** address → "SOURCE sidecar=ID PATH" of every instance of the application, from registryz. */
async function instances(): Promise<Record<string, string>> {
  const all = ((await registryz()) as unknown as { instances?: { service: string; address: string; source: string; sidecar: string | null; paths: { fromMeshedCaller: string } }[] }).instances ?? [];
  const out: Record<string, string> = {};
  for (const i of all.filter((x) => x.service === APP_HOST).sort((x, y) => (x.address < y.address ? -1 : 1))) {
    out[i.address] = `${i.source.split(':')[0]} sidecar=${i.sidecar ?? '-'} ${i.paths.fromMeshedCaller}`;
  }
  return out;
}

async function envoyEndpoints(cluster: string): Promise<string[]> {
  const res = await fetch(`${envoyAdmin.caller}/clusters?format=json`, { signal: AbortSignal.timeout(3000) });
  const raw = (await res.json()) as { cluster_statuses?: { name: string; host_statuses?: { address: { socket_address: { address: string } } }[] }[] };
  const c = raw.cluster_statuses?.find((x) => x.name === cluster);
  return [...new Set((c?.host_statuses ?? []).map((h) => h.address.socket_address.address))].sort();
}

async function resolveVip(name: string): Promise<string> {
  const ips = await waitUntil(() => agents.caller!.request<string[]>('/resolve', { name }).catch(() => [] as string[]), (a) => a.length === 1, { ...PROPAGATION, what: `A ${name} from the caller` });
  return ips[0]!;
}

interface Received {
  provider: string;
  proto: Proto;
  bytes: string;
  headers?: string[];
  from: string;
}

/** One call, and what exactly one provider received for it. */
async function callAndRecord(from: 'caller' | 'oldcaller', c: Call): Promise<{ by: string; got: Received }> {
  for (const p of ['prova', 'provb', 'vm']) await agents[p]!.request('/reset');
  const a = await agents[from]!.request<{ ok: boolean; by?: string; error?: string }>('/call', c);
  assert.ok(a.ok, `${from} → ${c.host}:${c.port} (${c.proto}): ${a.error}`);
  const got: Received[] = [];
  for (const p of ['prova', 'provb', 'vm']) {
    for (const r of await agents[p]!.request<Omit<Received, 'provider'>[]>('/records')) got.push({ provider: p, ...r });
  }
  assert.equal(got.length, 1, `one request recorded for one call: ${JSON.stringify(got)}`);
  assert.equal(got[0]!.provider, a.by);
  return { by: a.by!, got: got[0]! };
}

test('all four paths carry HTTP, gRPC and TCP, and the provider receives identical bytes on each', async () => {
  // Wait until the caller's sidecar holds the VM (etcd) and the pod (WorkloadEntry) for every interface.
  const names = Object.fromEntries(PROTOS.map((p) => [p, interfaceHostname(IFACES[p], undefined, undefined)])) as Record<Proto, string>;
  for (const proto of PROTOS) {
    const cluster = `outbound|${PORTS[proto]}|${names[proto]}|${APP_HOST}`;
    await waitUntil(() => envoyEndpoints(cluster), (e) => e.join() === [hosts.prova.ip, hosts.vm.ip].sort().join(), { ...PROPAGATION, what: `${cluster} with prova and vm` });
  }
  // HTTP twice: lower-case header names, and names as many legacy apps write them ("Content-Type").
  const variants = [...PROTOS.map((proto) => ({ proto, properCase: false })), { proto: 'http' as const, properCase: true }];
  const label = (v: { proto: Proto; properCase: boolean }): string => (v.properCase ? 'http (Proper-Case headers)' : v.proto);
  const paths: Record<string, Record<string, Received>> = { direct: {}, 'client single-hop': {}, 'server single-hop': {}, 'double-hop': {} };
  let calls = 0;
  for (const v of variants) {
    const { proto, properCase } = v;
    const key = label(v);
    const call = { proto, port: PORTS[proto], authority: `${names[proto]}:${PORTS[proto]}`, properCase };
    // Legacy caller: dials the instance it got from the registry.
    paths.direct![key] = (await callAndRecord('oldcaller', { ...call, host: hosts.vm.ip })).got;
    paths['server single-hop']![key] = (await callAndRecord('oldcaller', { ...call, host: hosts.prova.ip })).got;
    calls += 2;
    // Meshed caller: resolves the interface's name to its VIP; its sidecar balances over the VM and the pod.
    const vip = await resolveVip(names[proto]);
    assert.match(vip, /^240\.240\./);
    for (let i = 0; i < 20 && !(paths['client single-hop']![key] && paths['double-hop']![key]); i++) {
      const { by, got } = await callAndRecord('caller', { ...call, host: vip });
      calls++;
      paths[by === 'vm' ? 'client single-hop' : 'double-hop']![key] = got;
    }
    assert.ok(paths['client single-hop']![key] && paths['double-hop']![key], `${key}: both the VM and the pod answered through the VIP`);
  }
  assert.match(Buffer.from(paths.direct!['http (Proper-Case headers)']!.bytes, 'base64').toString(), /\r\nContent-Type: application\/json\r\n/);
  const summary: string[] = [];
  for (const v of variants) {
    const key = label(v);
    const ref = paths.direct![key]!;
    for (const [path, byVariant] of Object.entries(paths)) {
      const r = byVariant[key]!;
      assert.equal(r.bytes, ref.bytes, `${key} ${path}: bytes differ from direct:\n${Buffer.from(r.bytes, 'base64').toString()}\n---\n${Buffer.from(ref.bytes, 'base64').toString()}`);
      if (v.proto === 'grpc') assert.deepEqual(r.headers, ref.headers, `gRPC ${path}: headers differ from direct`);
      summary.push(`${key} ${path}: ${Buffer.from(r.bytes, 'base64').length} bytes${r.headers ? ` + ${r.headers.length / 2} headers` : ''} identical (provider ${r.provider}, from ${r.from})`);
    }
  }
  process.stdout.write(`# ${calls} calls\n${summary.map((s) => `# ${s}`).join('\n')}\n`);
});

test('a meshed caller reaches an exact instance by address, and unknown destinations pass through', async () => {
  for (const proto of PROTOS) {
    const authority = `${interfaceHostname(IFACES[proto], undefined, undefined)}:${PORTS[proto]}`;
    // provb is not registered yet: unknown to Isthmus, passed through to that address.
    const { by } = await callAndRecord('caller', { proto, host: hosts.provb.ip, port: PORTS[proto], authority });
    assert.equal(by, 'provb');
    const vm = await callAndRecord('caller', { proto, host: hosts.vm.ip, port: PORTS[proto], authority });
    assert.equal(vm.by, 'vm');
  }
  const stats = await (await fetch(`${envoyAdmin.caller}/stats?filter=PassthroughCluster.upstream_cx_total`)).text();
  assert.match(stats, /cluster\.PassthroughCluster\.upstream_cx_total: ([6-9]|\d\d)/);
  // Envoy's own connections were not redirected back into itself (the uid exclusion).
  const rules = await lab!.natRules(hosts.caller);
  assert.match(rules, /--uid-owner 1337 -j RETURN/);
});

test('migrating the provider from the VM to sidecar\'d hosts under continuous calls fails none', async () => {
  const appVip = await resolveVip(APP_HOST);
  const calls: Call[] = PROTOS.map((proto) => ({ proto, host: appVip, port: PORTS[proto], authority: `${APP_HOST}:${PORTS[proto]}` }));
  const steps: string[] = [];
  const record = async (step: string, want: Record<string, string>): Promise<void> => {
    // /debug/registryz: each instance's source, the sidecar fronting it, and the path of a call from a meshed caller.
    const seen = await waitUntil(instances, (i) => JSON.stringify(i) === JSON.stringify(want), { ...PROPAGATION, what: `${step}: registryz instances ${JSON.stringify(want)}` });
    steps.push(`${step}: ${Object.entries(seen).map(([a, v]) => `${a} ${v}`).join('; ')}`);
  };
  const expect = async (addresses: string[], step: string): Promise<void> => {
    const want = [...addresses].sort().join();
    for (const proto of PROTOS) {
      const cluster = `outbound|${PORTS[proto]}||${APP_HOST}`;
      await waitUntil(() => envoyEndpoints(cluster), (e) => e.join() === want, { ...PROPAGATION, what: `${step}: ${cluster} = ${want}` });
    }
  };
  const [vm, a, b] = [hosts.vm.ip, hosts.prova.ip, hosts.provb.ip];
  const etcdVm = (sidecar: boolean): string => (sidecar ? 'etcd sidecar=vm.default double-hop' : 'etcd sidecar=- client single-hop');
  await expect([vm, a], 'start');
  await record('start', { [a]: 'file sidecar=prova.default double-hop', [vm]: etcdVm(false) });
  // The meshed caller calls through the application's VIP; a legacy caller dials instances it knows.
  const legacy: Call[] = PROTOS.flatMap((proto) => [vm, a].map((host) => ({ proto, host, port: PORTS[proto], authority: `${APP_HOST}:${PORTS[proto]}` })));
  await agents.caller!.request('/load/start', { calls });
  await agents.oldcaller!.request('/load/start', { calls: legacy });
  let result: { ok: number; failures: string[]; by: Record<string, number> };
  let legacyResult: typeof result | undefined;
  let vmEnvoy: Proc | undefined;
  try {
    await waitFor(async () => ((await agents.caller!.request<{ ok: number }>('/load/peek')).ok > 100), { timeoutMs: 10_000, what: 'load running' });
    // 1. The VM gets a sidecar in place: Envoy first, then interception, so no redirected connection finds nothing listening.
    const boot = await sidecarBootstrap(hosts.vm, true);
    const s = await lab!.sidecar(hosts.vm, boot);
    vmEnvoy = s.proc;
    envoyAdmin.vm = s.admin;
    await lab!.iptables(hosts.vm, ['-u', '1337', '-i', '*']);
    await record('vm sidecar\'d in place', { [a]: 'file sidecar=prova.default double-hop', [vm]: etcdVm(true) });
    await waitFor(async () => {
      const st = await (await fetch(`${s.admin}/stats?filter=inbound_${PORTS.http}.downstream_rq_total`)).text();
      return /: [1-9]/.test(st);
    }, { ...PROPAGATION, what: 'calls arriving through the VM\'s sidecar' });
    legacyResult = await agents.oldcaller!.request('/load/stop');
    // 2. A second sidecar'd host joins (WorkloadEntry).
    manifests.write('pods.yaml', [workloadEntry('prova', hosts.prova), workloadEntry('provb', hosts.provb)]);
    await expect([vm, a, b], 'provb joins');
    await record('provb joins (WorkloadEntry)', { [a]: 'file sidecar=prova.default double-hop', [b]: 'file sidecar=provb.default double-hop', [vm]: etcdVm(true) });
    // 3. Retire the VM: it deregisters (SIGTERM), and stops once no sidecar sends to it.
    await Promise.all(registrations.map((r) => r.stop()));
    await expect([a, b], 'vm deregistered');
    await record('vm deregistered from etcd', { [a]: 'file sidecar=prova.default double-hop', [b]: 'file sidecar=provb.default double-hop' });
    await new Promise((r) => setTimeout(r, 1000));
    await agents.vm!.proc.stop();
    await vmEnvoy.stop();
    await waitFor(async () => ((await agents.caller!.request<{ ok: number }>('/load/peek')).ok > 3000), { timeoutMs: 60_000, intervalMs: 200, what: 'more load after the VM left' }).catch(() => undefined);
  } finally {
    result = await agents.caller!.request('/load/stop');
    legacyResult ??= await agents.oldcaller!.request('/load/stop');
  }
  assert.ok(legacyResult, 'the legacy load was stopped');
  process.stdout.write(`# legacy caller (direct → server single-hop on the VM): ${legacyResult.ok} calls ok, ${legacyResult.failures.length} failed; ${JSON.stringify(legacyResult.by)}\n`);
  assert.deepEqual(legacyResult.failures.slice(0, 10), [], `${legacyResult.failures.length} failed legacy calls of ${legacyResult.ok + legacyResult.failures.length}`);
  process.stdout.write(`# migration: ${result.ok} calls ok, ${result.failures.length} failed; answered by ${JSON.stringify(result.by)}\n${steps.map((s) => `# ${s}`).join('\n')}\n`);
  assert.deepEqual(result.failures.slice(0, 10), [], `${result.failures.length} failed calls of ${result.ok + result.failures.length}`);
  for (const proto of PROTOS) for (const p of ['vm', 'prova', 'provb']) assert.ok((result.by[`${proto}:${p}`] ?? 0) > 0, `${proto} answered by ${p}: ${JSON.stringify(result.by)}`);
  assert.deepEqual(await sources(), { [a]: 'file', [b]: 'file' });
});
