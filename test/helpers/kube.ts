// A throwaway Kubernetes API server for tests: etcd + kube-apiserver (built by
// scripts/provision.d/50-kube.sh) on free loopback ports, serving certificates made by
// openssl in a scratch directory, static-token users, service-account signing keys, RBAC
// authorization. No controllers, scheduler or kubelets run: tests write EndpointSlices and
// pod status themselves. The API server can be restarted (same ports, same etcd) mid-test.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import YAML from 'yaml';
import { type KubeApi, KubeApiError, KubeConfigApi, type KubeObject } from '../../src/registries/kube/client.ts';
import { startEtcd, type EtcdServer } from './etcd.ts';
import { freePort, isListening } from './ports.ts';
import { runCommand, scratchDir, spawnTracked, type Proc } from './processes.ts';
import { GiveUp, waitFor } from './wait.ts';

export const KUBE_APISERVER_BIN =
  process.env.ISTHMUS_KUBE_APISERVER ?? path.join(process.env.ISTHMUS_CACHE ?? path.join(os.homedir(), '.cache', 'isthmus'), 'bin', 'kube-apiserver');

/** Static-token users: an admin (system:masters) and a user with no rights but what RBAC grants. */
export interface KubeUsers {
  readonly admin: string;
  readonly nobody: string;
}

export interface KubeApiServerOptions {
  name?: string;
  timeoutMs?: number;
}

export class KubeApiServer {
  readonly name: string;
  readonly port: number;
  readonly dir: string;
  readonly etcd: EtcdServer;
  readonly tokens: KubeUsers;
  /** kubeconfig with contexts "admin" (current) and "nobody". */
  readonly kubeconfigPath: string;
  proc: Proc | undefined;
  private readonly args: string[];
  private readonly timeoutMs: number;
  private adminApi: KubeConfigApi | undefined;

  constructor(init: { name: string; port: number; dir: string; etcd: EtcdServer; tokens: KubeUsers; kubeconfigPath: string; args: string[]; timeoutMs: number }) {
    this.name = init.name;
    this.port = init.port;
    this.dir = init.dir;
    this.etcd = init.etcd;
    this.tokens = init.tokens;
    this.kubeconfigPath = init.kubeconfigPath;
    this.args = init.args;
    this.timeoutMs = init.timeoutMs;
  }

  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  get caFile(): string {
    return path.join(this.dir, 'ca.crt');
  }

  /** A KubeConfig for a context of the kubeconfig file (default admin). */
  kubeConfig(context = 'admin'): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromFile(this.kubeconfigPath);
    kc.setCurrentContext(context);
    return kc;
  }

  /** A kubeconfig file for a bearer token (e.g. a service account's), context "token". */
  writeTokenKubeconfig(token: string, name = 'token'): string {
    const file = path.join(this.dir, `kubeconfig-${name}-${randomBytes(3).toString('hex')}`);
    fs.writeFileSync(file, kubeconfigText(this.url, this.caFile, { [name]: token }, name), { mode: 0o600 });
    return file;
  }

  /** The admin client: JSON requests against this server. */
  get api(): KubeApi {
    this.adminApi ??= new KubeConfigApi(this.kubeConfig('admin'));
    return this.adminApi;
  }

  running(): boolean {
    return this.proc !== undefined && this.proc.alive();
  }

  /** Starts kube-apiserver (again, after stop(): same port, same etcd) and waits for /readyz. */
  async start(): Promise<void> {
    if (this.running()) throw new Error(`${this.name} is already running`);
    const proc = spawnTracked(this.name, KUBE_APISERVER_BIN, this.args);
    this.proc = proc;
    try {
      await waitFor(
        async () => {
          if (proc.exit) throw new GiveUp(`exited with ${proc.exit.code ?? proc.exit.signal}`);
          await this.api.request('GET', '/readyz', { timeoutMs: 2000 }); // throws unless 2xx
          return true;
        },
        { timeoutMs: this.timeoutMs, intervalMs: 200, what: `${this.name} ${this.url}/readyz` },
      );
    } catch (err) {
      await proc.stop();
      throw new Error(`${this.name} did not become ready: ${(err as Error).message}\n--- ${proc.logFile} ---\n${proc.tail(60)}`, { cause: err });
    }
  }

  /** SIGTERM (SIGKILL after graceMs); resolves once the process is gone and its port closed. */
  async stop(graceMs = 10_000): Promise<void> {
    if (!this.proc) return;
    await this.proc.stop(graceMs);
    await waitFor(async () => !(await isListening(this.port)), { timeoutMs: 5000, intervalMs: 25, what: `${this.name} port ${this.port} closed` });
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  /** Stops the API server and its etcd. */
  async close(): Promise<void> {
    await this.stop();
    await this.etcd.stop();
  }

  // --- object helpers (admin) ---

  async create<T extends KubeObject>(obj: KubeObject, opts: { dryRun?: boolean } = {}): Promise<T> {
    return this.api.request<T>('POST', collectionPathOf(obj), { body: obj, query: opts.dryRun ? { dryRun: 'All' } : {} });
  }

  async get<T extends KubeObject>(apiVersion: string, kind: string, namespace: string | undefined, name: string): Promise<T> {
    return this.api.request<T>('GET', `${collectionPathOf({ apiVersion, kind, metadata: { ...(namespace ? { namespace } : {}) } })}/${name}`);
  }

  /** Replaces an object with the latest resourceVersion after applying `edit` (retries conflicts). */
  async update<T extends KubeObject>(obj: KubeObject, edit: (current: T) => T, subresource?: 'status'): Promise<T> {
    for (let i = 0; ; i++) {
      const cur = await this.get<T>(obj.apiVersion!, obj.kind!, obj.metadata?.namespace, obj.metadata!.name!);
      const next = edit(structuredClone(cur));
      try {
        return await this.api.request<T>('PUT', `${collectionPathOf(obj)}/${obj.metadata!.name}${subresource ? `/${subresource}` : ''}`, { body: next });
      } catch (e) {
        if (!(e instanceof KubeApiError && e.conflict) || i >= 5) throw e;
      }
    }
  }

  async setStatus<T extends KubeObject>(obj: KubeObject, status: unknown): Promise<T> {
    return this.update<T>(obj, (cur) => ({ ...cur, status }), 'status');
  }

  async delete(obj: KubeObject): Promise<void> {
    await this.api.request('DELETE', `${collectionPathOf(obj)}/${obj.metadata!.name}`, { query: { gracePeriodSeconds: 0 } });
  }

  /**
   * Creates every document of a YAML text (server-side dry run when asked), as plain JSON
   * (KubernetesObjectApi's serializer drops `enum` from CRD schemas); returns what the server answered.
   */
  async applyYaml(text: string, opts: { dryRun?: boolean } = {}): Promise<KubeObject[]> {
    const out: KubeObject[] = [];
    for (const doc of YAML.parseAllDocuments(text)) {
      const obj = doc.toJS() as KubeObject | null;
      if (!obj) continue;
      const { plural, namespaced } = await this.resource(obj.apiVersion ?? 'v1', obj.kind ?? '');
      const base = (obj.apiVersion ?? 'v1').includes('/') ? `/apis/${obj.apiVersion}` : `/api/${obj.apiVersion}`;
      const p = namespaced ? `${base}/namespaces/${obj.metadata?.namespace ?? 'default'}/${plural}` : `${base}/${plural}`;
      out.push(await this.api.request<KubeObject>('POST', p, { body: obj, query: opts.dryRun ? { dryRun: 'All' } : {} }));
    }
    return out;
  }

  /** The resource name of a kind, from API discovery. */
  async resource(apiVersion: string, kind: string): Promise<{ plural: string; namespaced: boolean }> {
    const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
    const list = await this.api.request<{ resources: { name: string; kind: string; namespaced: boolean }[] }>('GET', base);
    const r = list.resources.find((x) => x.kind === kind && !x.name.includes('/'));
    if (!r) throw new Error(`the API server does not serve ${kind} in ${apiVersion}`);
    return { plural: r.name, namespaced: r.namespaced };
  }

  /** Waits until a CRD is Established and its resources are served. */
  async waitForCrd(name: string): Promise<void> {
    await waitFor(
      async () => {
        const crd = await this.get<{ status?: { conditions?: { type: string; status: string }[] } } & KubeObject>('apiextensions.k8s.io/v1', 'CustomResourceDefinition', undefined, name);
        return crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True');
      },
      { timeoutMs: 20_000, intervalMs: 100, what: `CRD ${name} established` },
    );
  }

  /** A token for a service account, from the TokenRequest API (for `audiences`, if given). */
  async serviceAccountToken(namespace: string, name: string, audiences?: readonly string[]): Promise<string> {
    const res = await this.api.request<{ status: { token: string } }>('POST', `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`, {
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600, ...(audiences ? { audiences } : {}) } },
    });
    return res.status.token;
  }
}

const CORE_PLURALS: Record<string, string> = {
  Service: 'services', Pod: 'pods', Node: 'nodes', Namespace: 'namespaces', ServiceAccount: 'serviceaccounts', ConfigMap: 'configmaps', Endpoints: 'endpoints',
};
const CLUSTER_SCOPED = new Set(['Node', 'Namespace', 'CustomResourceDefinition', 'ClusterRole', 'ClusterRoleBinding']);

/** Collection path of an object's kind (the kinds tests use; plural = lower-case kind + s otherwise). */
export function collectionPathOf(obj: KubeObject): string {
  const apiVersion = obj.apiVersion ?? 'v1';
  const kind = obj.kind ?? '';
  const plural = CORE_PLURALS[kind] ?? (kind.endsWith('y') ? `${kind.slice(0, -1).toLowerCase()}ies` : `${kind.toLowerCase()}${kind.endsWith('s') ? 'es' : 's'}`);
  const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  const ns = obj.metadata?.namespace ?? (CLUSTER_SCOPED.has(kind) ? undefined : 'default');
  return ns && !CLUSTER_SCOPED.has(kind) ? `${base}/namespaces/${ns}/${plural}` : `${base}/${plural}`;
}

function kubeconfigText(server: string, caFile: string, users: Record<string, string>, current: string): string {
  return YAML.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'test', cluster: { server, 'certificate-authority': caFile } }],
    users: Object.entries(users).map(([name, token]) => ({ name, user: { token } })),
    contexts: Object.keys(users).map((name) => ({ name, context: { cluster: 'test', user: name, namespace: 'default' } })),
    'current-context': current,
  });
}

async function openssl(args: string[], cwd: string): Promise<void> {
  const r = await runCommand('openssl', args, { cwd, timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stderr}`);
}

/** A CA and a serving certificate for 127.0.0.1 and localhost, signed by it. */
async function makeCerts(dir: string): Promise<void> {
  await openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=isthmus-test-ca', '-keyout', 'ca.key', '-out', 'ca.crt'], dir);
  await openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=kube-apiserver', '-keyout', 'apiserver.key', '-out', 'apiserver.csr'], dir);
  fs.writeFileSync(path.join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n');
  await openssl(['x509', '-req', '-in', 'apiserver.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'san.ext', '-out', 'apiserver.crt'], dir);
}

/** Starts etcd and kube-apiserver on free loopback ports and waits until the API server is ready. */
export async function startKubeApiServer(opts: KubeApiServerOptions = {}): Promise<KubeApiServer> {
  if (!fs.existsSync(KUBE_APISERVER_BIN)) throw new Error(`kube-apiserver not found at ${KUBE_APISERVER_BIN}: run bash scripts/provision.sh`);
  const name = opts.name ?? 'kube-apiserver';
  const dir = scratchDir(name);
  await makeCerts(dir);
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  fs.writeFileSync(path.join(dir, 'sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
  fs.writeFileSync(path.join(dir, 'sa.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  const tokens: KubeUsers = { admin: randomBytes(16).toString('hex'), nobody: randomBytes(16).toString('hex') };
  fs.writeFileSync(path.join(dir, 'tokens.csv'), `${tokens.admin},admin,uid-admin,"system:masters"\n${tokens.nobody},nobody,uid-nobody\n`, { mode: 0o600 });
  const port = await freePort();
  const kubeconfigPath = path.join(dir, 'kubeconfig');
  fs.writeFileSync(kubeconfigPath, kubeconfigText(`https://127.0.0.1:${port}`, path.join(dir, 'ca.crt'), { admin: tokens.admin, nobody: tokens.nobody }, 'admin'), { mode: 0o600 });

  const etcd = await startEtcd({ name: `${name}-etcd` });
  const args = [
    `--etcd-servers=http://${etcd.endpoint}`,
    '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1',
    `--secure-port=${port}`,
    `--cert-dir=${dir}`,
    `--tls-cert-file=${path.join(dir, 'apiserver.crt')}`,
    `--tls-private-key-file=${path.join(dir, 'apiserver.key')}`,
    `--client-ca-file=${path.join(dir, 'ca.crt')}`,
    `--token-auth-file=${path.join(dir, 'tokens.csv')}`,
    '--authorization-mode=RBAC',
    '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
    `--service-account-key-file=${path.join(dir, 'sa.pub')}`,
    `--service-account-signing-key-file=${path.join(dir, 'sa.key')}`,
    '--service-cluster-ip-range=10.96.0.0/16',
    // No controller manager runs, so nothing would create the default service account.
    '--disable-admission-plugins=ServiceAccount',
    // The "kubernetes" Service's endpoints would be 127.0.0.1, which EndpointSlice validation refuses.
    '--endpoint-reconciler-type=none',
    '--enable-priority-and-fairness=false',
    // Otherwise a stopping server waits for every open watch to end (up to the clients' timeouts).
    '--shutdown-watch-termination-grace-period=2s',
    '--profiling=false',
    '--v=0',
  ];
  const server = new KubeApiServer({ name, port, dir, etcd, tokens, kubeconfigPath, args, timeoutMs: opts.timeoutMs ?? 60_000 });
  try {
    await server.start();
  } catch (err) {
    await etcd.stop();
    throw err;
  }
  return server;
}
