// deploy/ against a real kube-apiserver: every manifest passes a server-side dry run and is
// then applied for real; the CRD schemas refuse what they should; the ClusterRole is enough
// for the registry (read everything it reads, write RPCService status) and no more; the
// Deployment's registry URL and the sidecar's bootstrap command are ones Isthmus accepts;
// the CoreDNS block has the shape the DNS zone needs.
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { Subscription } from 'rxjs';
import YAML from 'yaml';
import type { RegistryState } from '../../src/model/types.ts';
import { KubeApiError, KubeConfigApi, KubeRegistry, loadKubeConfig, parseKubeUrl } from '../../src/registries/kube/index.ts';
import type { RpcServiceStatus } from '../../src/registries/kube/rpcservice.ts';
import { bootstrap, cli, REPO } from '../helpers/isthmus.ts';
import { type KubeApiServer, startKubeApiServer } from '../helpers/kube.ts';
import { assertNoLeftovers, dumpLogsOnFailure, stopAll } from '../helpers/processes.ts';
import { waitUntil } from '../helpers/wait.ts';

const DEPLOY = path.join(REPO, 'deploy');
// Apply order: the namespace, the CRDs (established before anything uses them), the rest.
const ORDER = [
  'isthmus/namespace.yaml',
  'crds/rpcservice.yaml',
  'crds/istio-networking.yaml',
  'crds/istio-security.yaml',
  'isthmus/rbac.yaml',
  'isthmus/services.yaml',
  'isthmus/deployment.yaml',
  'sidecar/sidecar-template.yaml',
  'sidecar/sidecar-transparent-template.yaml',
  'examples/rpcservice.yaml',
];

interface Doc {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  [k: string]: unknown;
}

function docs(file: string): Doc[] {
  return YAML.parseAllDocuments(fs.readFileSync(path.join(DEPLOY, file), 'utf8')).map((d) => d.toJS() as Doc).filter(Boolean);
}

function manifestFiles(dir = DEPLOY, rel = ''): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) return manifestFiles(path.join(dir, e.name), r);
    return /\.ya?ml$/.test(e.name) ? [r] : [];
  });
}

let kube: KubeApiServer;

before(async () => {
  kube = await startKubeApiServer({ name: 'kube-apiserver-deploy' });
});

afterEach(dumpLogsOnFailure);

after(async () => {
  await stopAll();
  assertNoLeftovers();
});

test('every manifest in deploy/ is in the apply order', () => {
  assert.deepEqual(manifestFiles().sort(), [...ORDER].sort());
});

test('every manifest passes a server-side dry run, then applies for real', async () => {
  for (const file of ORDER) {
    const text = fs.readFileSync(path.join(DEPLOY, file), 'utf8');
    const dry = await kube.applyYaml(text, { dryRun: true }).catch((e: unknown) => {
      throw new Error(`${file}: server-side dry run refused: ${(e as Error).message}`, { cause: e });
    });
    assert.equal(dry.length, docs(file).length, file);
    const applied = await kube.applyYaml(text).catch((e: unknown) => {
      throw new Error(`${file}: apply refused: ${(e as Error).message}`, { cause: e });
    });
    for (const d of applied) if (d.kind === 'CustomResourceDefinition') await kube.waitForCrd(d.metadata!.name!);
  }
  const dep = await kube.get<{ spec: { replicas: number; template: { spec: { containers: { readinessProbe: { httpGet: { path: string; port: string } }; resources: { requests: Record<string, string> } }[] } } } }>(
    'apps/v1', 'Deployment', 'isthmus-system', 'isthmus',
  );
  assert.ok(dep.spec.replicas >= 2);
  const c = dep.spec.template.spec.containers[0]!;
  assert.deepEqual(c.readinessProbe.httpGet, { path: '/healthz/ready', port: 'http-admin', scheme: 'HTTP' });
  assert.ok(c.resources.requests.cpu && c.resources.requests.memory);
});

test('the CRD schemas refuse what Isthmus would refuse anyway', async () => {
  const bad = async (obj: object, field: RegExp): Promise<void> => {
    await assert.rejects(kube.create(obj as Doc, { dryRun: true }), (e: unknown) => e instanceof KubeApiError && e.status === 422 && field.test(e.message));
  };
  const rpc = (spec: object): object => ({ apiVersion: 'rpc.isthmus.io/v1alpha1', kind: 'RPCService', metadata: { name: 'x', namespace: 'default' }, spec });
  await bad(rpc({ interfaces: [{ name: 'com.x.A', port: 70000 }] }), /spec\.interfaces\[0\]\.port/);
  await bad(rpc({ interfaces: [] }), /spec\.interfaces/);
  await bad(rpc({ interfaces: [{ port: 80 }] }), /spec\.interfaces\[0\]\.name/);
  await bad(rpc({ interfaces: [{ name: 'not valid!', port: 80 }] }), /spec\.interfaces\[0\]\.name/);
  const se = (spec: object): object => ({ apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry', metadata: { name: 'x', namespace: 'default' }, spec });
  await bad(se({ hosts: ['a.example'], resolution: 'SOMETIMES' }), /spec\.resolution/);
  await bad(se({ ports: [{ number: 80, name: 'http' }] }), /spec\.hosts/);
  // The protocol default is filled in by the server.
  const ok = await kube.create<{ spec: { interfaces: { protocol: string }[] } }>(rpc({ interfaces: [{ name: 'com.x.A', port: 80 }] }) as Doc, { dryRun: true });
  assert.equal(ok.spec.interfaces[0]!.protocol, 'grpc');
});

test('the ClusterRoles let the registry read all it reads, write RPCService status and the CA review tokens, and nothing else', async () => {
  const token = await kube.serviceAccountToken('isthmus-system', 'isthmus');
  const kubeconfig = kube.writeTokenKubeconfig(token, 'isthmus');
  const registry = new KubeRegistry({ kubeconfig, settleMs: 20, maxWaitMs: 200, watch: { minBackoffMs: 100, maxBackoffMs: 1000 } });
  let latest: RegistryState | undefined;
  let sub: Subscription | undefined;
  try {
    sub = registry.states.subscribe((s) => (latest = s));
    const s = await waitUntil(() => latest, (x) => x?.synced === true && x.services.some((v) => v.hostname === 'userservice.rpc.cluster.local'), { timeoutMs: 20_000, what: 'synced as the isthmus service account' });
    assert.equal(s?.error, undefined);
    // Synced means listed; each watch opens right after its list, so wait for them rather than read once.
    const notWatching = await waitUntil(() => registry.watchStatus().filter((w) => w.phase !== 'watching').map((w) => w.resource), (r) => r.length === 0, { timeoutMs: 10_000, what: 'every watch open as the isthmus service account' });
    assert.deepEqual(notWatching, []);
    const status = await waitUntil(
      () => kube.get<{ status?: RpcServiceStatus }>('rpc.isthmus.io/v1alpha1', 'RPCService', 'default', 'userservice'),
      (o) => o.status?.hostname === 'userservice.rpc.cluster.local',
      { timeoutMs: 20_000, what: 'RPCService status written by the service account' },
    );
    assert.deepEqual(status.status!.interfaces.map((i) => i.hostname), [
      'com.alipay.userservice.useradmin.g-internal.rpc.cluster.local',
      'com.alipay.userservice.userquery.v1-0-0.rpc.cluster.local',
    ]);
  } finally {
    sub?.unsubscribe();
  }
  const asSa = new KubeConfigApi(loadKubeConfig({ kubeconfig }));
  const forbidden = async (method: 'GET' | 'POST' | 'PUT', p: string, body?: object): Promise<void> => {
    await assert.rejects(asSa.request(method, p, body ? { body } : {}), (e: unknown) => e instanceof KubeApiError && e.status === 403, `${method} ${p} should be forbidden`);
  };
  await forbidden('GET', '/api/v1/secrets');
  await forbidden('GET', '/api/v1/configmaps');
  await forbidden('POST', '/api/v1/namespaces/default/services', { apiVersion: 'v1', kind: 'Service', metadata: { name: 'x' }, spec: { ports: [{ port: 1 }] } });
  const rpc = await kube.get<Doc>('rpc.isthmus.io/v1alpha1', 'RPCService', 'default', 'userservice');
  await forbidden('PUT', '/apis/rpc.isthmus.io/v1alpha1/namespaces/default/rpcservices/userservice', rpc);
  await forbidden('POST', '/api/v1/namespaces/default/pods', { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'x' }, spec: { containers: [{ name: 'c', image: 'x' }] } });
  // The CA's one write: TokenReviews, to check the tokens of pods asking for certificates.
  const review = await asSa.request<{ status?: { authenticated?: boolean } }>('POST', '/apis/authentication.k8s.io/v1/tokenreviews', { body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token: 'not-a-token', audiences: ['istio-ca'] } } });
  assert.notEqual(review.status?.authenticated, true);
});

test('the Deployment\'s registry URL and the sidecar\'s bootstrap command are accepted by Isthmus', async () => {
  const dep = docs('isthmus/deployment.yaml').find((d) => d.kind === 'Deployment')!;
  const container = (dep.spec as { template: { spec: { containers: { args: string[]; env: { name: string; value: string }[] }[] } } }).template.spec.containers[0]!;
  const env = Object.fromEntries(container.env.map((e) => [e.name, e.value]));
  const args = container.args.map((a) => a.replace(/\$\((\w+)\)/g, (_m, v: string) => env[v] ?? ''));
  const url = args[args.indexOf('--registry') + 1]!;
  assert.deepEqual(parseKubeUrl(url), { id: url, clusterName: 'cluster-1', region: 'region-1' });

  const tpl = docs('sidecar/sidecar-template.yaml')[0]!;
  const init = (tpl.template as { spec: { initContainers: { name: string; args: string[] }[] } }).spec.initContainers.find((c) => c.name === 'isthmus-bootstrap')!;
  const cmd = init.args[0]!.replace(/\$POD_NAMESPACE/g, 'shop').replace(/\$POD_NAME/g, 'app-1').replace(/\$APP/g, 'app');
  const m = /^exec isthmus bootstrap (.*) > (\S+)$/.exec(cmd);
  assert.ok(m, cmd);
  const argv = [...m[1]!.matchAll(/"([^"]*)"|(\S+)/g)].map((x) => x[1] ?? x[2]!);
  const boot = await bootstrap(argv);
  assert.equal((boot.node as { id: string }).id, 'app-1.shop');
  assert.match(JSON.stringify(boot), /isthmus\.isthmus-system\.svc/);

  // The agent beside it: flags `isthmus agent` has, serving SDS where the bootstrap's cluster points.
  for (const file of ['sidecar/sidecar-template.yaml', 'sidecar/sidecar-transparent-template.yaml']) {
    const t = docs(file)[0]!;
    const spec = (t.template as { spec: { initContainers: { name: string; args: string[] }[] } }).spec;
    const agent = spec.initContainers.find((c) => c.name === 'isthmus-agent')!;
    assert.ok(agent, `${file}: an isthmus-agent container`);
    assert.equal(agent.args[0], 'agent');
    const help = await cli(['agent', '--help']);
    for (const flag of agent.args.filter((a) => a.startsWith('--'))) assert.ok(help.includes(`${flag} `), `${file}: isthmus agent has no ${flag}`);
    const socket = agent.args[agent.args.indexOf('--sds-socket') + 1];
    const bootArgs = spec.initContainers.find((c) => c.name === 'isthmus-bootstrap')!.args[0]!;
    assert.ok(bootArgs.includes(`--sds-socket ${socket}`), `${file}: the bootstrap points Envoy at the agent's socket ${socket}`);
  }
  // The CA flags of the Deployment are flags of serve.
  const serveHelp = await cli(['serve', '--help']);
  for (const flag of container.args.filter((a) => a.startsWith('--ca-'))) assert.ok(serveHelp.includes(`${flag} `), `serve has no ${flag}`);
});

test('the CoreDNS block serves rpc.cluster.local from etcd under /skydns, on its own', () => {
  const text = fs.readFileSync(path.join(DEPLOY, 'coredns', 'rpc-zone.Corefile'), 'utf8').replace(/#.*$/gm, '');
  const blocks = [...text.matchAll(/^(\S+)\s*\{([^]*?)^\}/gm)].map((b) => ({ keys: b[1]!, body: b[2]! }));
  assert.deepEqual(blocks.map((b) => b.keys), ['rpc.cluster.local:53']);
  const body = blocks[0]!.body;
  assert.match(body, /^\s*etcd rpc\.cluster\.local \{[^}]*^\s*path \/skydns$/m);
  assert.doesNotMatch(body, /\bforward\b|\bfallthrough\b/);
});
