import { Isthmus, DEFAULTS } from '../server.ts';
import { DEFAULT_INFLIGHT_BYTES } from '../xds/server/shared.ts';
import { DEFAULT_INTAKE_BYTES } from '../xds/server/transport.ts';
import { registryFromUrl, RegistryUrlError, REGISTRY_SCHEMES } from '../registries/index.ts';
import path from 'node:path';
import { address, byteSize, durationMs, durationSeconds, parse, UsageError } from './args.ts';
import type { CaOptions, TokenReviewer } from '../ca/index.ts';
import { KubeConfigApi, loadKubeConfig } from '../registries/kube/index.ts';
import { DEFAULT_TRUST_DOMAIN, trustDomainProblem } from '../model/identity.ts';
import { logger } from '../shared/log.ts';
import { DEFAULT_VIP_CIDR, defaultVipStorePath } from '../addresses/index.ts';
import { DNS_DEFAULTS } from '../dns/index.ts';
import { parseCidr } from '../shared/ip.ts';

export const SERVE_HELP = `Usage: isthmus serve [options]

Serves the unified service model as xDS (ADS, SotW and delta) to Envoy sidecars and
proxyless gRPC clients. With no --registry, reads ./config as a file registry.

Options:
  --registry URL          a source; repeatable. ${REGISTRY_SCHEMES.join(' | ')}
  --xds-address HOST:PORT xDS gRPC listen address (default ${DEFAULTS.xdsAddress})
  --admin-address HOST:PORT
                          admin HTTP: /healthz/ready /metrics /debug/registryz
                          /debug/syncz /debug/config_dump?proxy=ID (default ${DEFAULTS.adminAddress})
  --xds-inflight-limit SIZE
                          bytes of xDS responses in flight to all proxies at once; more wait
                          their turn, so a reconnect storm cannot exhaust memory (default 64MiB)
  --xds-intake-limit SIZE bytes of xDS requests received and not yet handled; over it, proxy
                          streams are not read (flow control holds the rest) (default 32MiB)
  --xds-keepalive DUR     ping a proxy connection silent this long; one that does not answer
                          within as long again (at most 10s) is closed (default 30s; 0 never)
  --debounce-quiet DUR    push after the model is quiet this long (default ${DEFAULTS.debounceQuietMs}ms)
  --debounce-max DUR      push at the latest this long after a change (default ${DEFAULTS.debounceMaxMs}ms)
  --sync-timeout DUR      serve without registries that have not synced by then (default ${DEFAULTS.syncTimeoutMs}ms)
  --dns-listen HOST:PORT  built-in DNS responder, UDP and TCP (default ${DNS_DEFAULTS.listen}; "off" disables DNS)
  --dns-zone ZONE         the zone of service and interface names (default ${DNS_DEFAULTS.zone})
  --dns-ttl SECONDS       record TTL; a freed VIP is held back twice this long (default ${DNS_DEFAULTS.ttl})
  --dns-upstream HOST:PORT
                          forward queries outside the zone there (default: refuse them)
  --dns-publish-timeout DUR
                          longest wait for sidecars to ACK new VIPs before DNS names them (default 5s)
  --vip-cidr CIDR         range VIPs are allocated from (default ${DEFAULT_VIP_CIDR})
  --vip-store PATH|etcd://HOST:PORT[/KEY]
                          where VIP allocations are kept across restarts; etcd shares them
                          between replicas (default ${defaultVipStorePath()})
  --dns-store etcd://HOST:PORT[,HOST:PORT]/PREFIX
                          also write the zone to etcd for CoreDNS's etcd plugin (e.g. /skydns)
  --records-api HOST:PORT HTTPS API for records operators manage by hand in the zone; needs
                          --records-token-file, --tls-cert and --tls-key
  --records-token-file PATH
                          bearer token of the records API (at least 16 characters)
  --records-file PATH     where manual records are kept without --dns-store
  --tls-cert PATH, --tls-key PATH
                          PEM certificate and key of the records API

  --trust-domain NAME     of workload SPIFFE IDs spiffe://NAME/ns/NS/sa/SA, shown per instance in
                          /debug/registryz and signed by the CA (default ${DEFAULT_TRUST_DOMAIN})

Certificate authority (off unless --ca-address is given; see README "Workload identity"):
  --ca-address HOST:PORT  gRPC over TLS: istio.v1.auth.IstioCertificateService, signing
                          workload certificates for proven identities
  --ca-dir DIR            signing certificate and key in Istio's cacerts layout (ca-cert.pem,
                          ca-key.pem, cert-chain.pem, root-cert.pem); an operator's intermediate,
                          or a root generated there on first start (default ${defaultCaDir()})
  --ca-join-tokens FILE   join tokens of VMs and legacy hosts (YAML: tokens: [{sha256|token,
                          namespace, serviceAccount, expires, addresses}]), read again when it
                          changes; a token with addresses is taken from those hosts only and
                          names the identity of their endpoints in /debug/registryz
  --ca-token-review kube://[CONTEXT][?kubeconfig=PATH]
                          check Kubernetes ServiceAccount tokens by TokenReview on that cluster
  --ca-token-audience AUD audience the ServiceAccount tokens must carry (default istio-ca)
  --ca-cluster-id ID      the cluster Istio's ClusterID request metadata must name (default Kubernetes)
  --ca-cert-ttl DUR       workload certificate lifetime when none is asked for (default 24h)
  --ca-max-cert-ttl DUR   longest lifetime granted (default 90d)
  --ca-server-name NAME   DNS name in the CA's serving certificate, repeatable
                          (default isthmus-ca and istiod.istio-system.svc)
  -h, --help              this text
`;

function defaultCaDir(): string {
  return path.join(path.dirname(defaultVipStorePath()), 'ca');
}

function trustDomainOf(values: Record<string, unknown>): string {
  const td = (values['trust-domain'] as string | undefined) ?? DEFAULT_TRUST_DOMAIN;
  const problem = trustDomainProblem(td);
  if (problem) throw new UsageError(`--trust-domain: ${problem}`);
  return td;
}

function caOptions(values: Record<string, string | boolean | string[] | undefined>): CaOptions | undefined {
  const v = (k: string): string | undefined => values[k] as string | undefined;
  const given = ['ca-dir', 'ca-join-tokens', 'ca-token-review', 'ca-token-audience', 'ca-cluster-id', 'ca-cert-ttl', 'ca-max-cert-ttl', 'ca-server-name'].filter((k) => values[k] !== undefined);
  if (!v('ca-address')) {
    if (given.length) throw new UsageError(`--${given[0]} needs --ca-address (the CA is off without it)`);
    return undefined;
  }
  const trustDomain = trustDomainOf(values);
  const defaultTtlSeconds = durationSeconds('ca-cert-ttl', v('ca-cert-ttl'), 86400);
  const maxTtlSeconds = durationSeconds('ca-max-cert-ttl', v('ca-max-cert-ttl'), 90 * 86400);
  if (defaultTtlSeconds > maxTtlSeconds) throw new UsageError(`--ca-cert-ttl (${defaultTtlSeconds}s) is longer than --ca-max-cert-ttl (${maxTtlSeconds}s)`);
  let tokenReview: TokenReviewer | undefined;
  const tr = v('ca-token-review');
  if (tr !== undefined) {
    const m = /^kube:\/\/([^?#]*)(?:\?kubeconfig=([^&#]+))?$/.exec(tr);
    if (!m) throw new UsageError(`--ca-token-review "${tr}": expected kube://[CONTEXT][?kubeconfig=PATH]`);
    let api: KubeConfigApi;
    try {
      api = new KubeConfigApi(loadKubeConfig({ ...(m[1] ? { context: decodeURIComponent(m[1]) } : {}), ...(m[2] ? { kubeconfig: decodeURIComponent(m[2]) } : {}) }));
    } catch (e) {
      throw new UsageError(`--ca-token-review "${tr}": ${(e as Error).message}`);
    }
    tokenReview = async (token, audiences) => {
      const r = await api.request<{ status?: { authenticated?: boolean; user?: { username?: string }; error?: string } }>('POST', '/apis/authentication.k8s.io/v1/tokenreviews', {
        body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences } },
        timeoutMs: 10_000,
      });
      return { authenticated: r.status?.authenticated === true, ...(r.status?.user?.username ? { username: r.status.user.username } : {}), ...(r.status?.error ? { error: r.status.error } : {}) };
    };
  }
  const joinTokensFile = v('ca-join-tokens');
  return {
    address: address('ca-address', v('ca-address'), ''),
    dir: v('ca-dir') ?? defaultCaDir(),
    trustDomain,
    clusterId: v('ca-cluster-id') ?? 'Kubernetes',
    serverNames: (values['ca-server-name'] as string[] | undefined) ?? ['isthmus-ca', 'istiod.istio-system.svc'],
    defaultTtlSeconds,
    maxTtlSeconds,
    audiences: [v('ca-token-audience') ?? 'istio-ca'],
    ...(joinTokensFile ? { joinTokensFile } : {}),
    ...(tokenReview ? { tokenReview } : {}),
  };
}

export async function serve(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    registry: { type: 'string', multiple: true },
    'xds-address': { type: 'string' },
    'admin-address': { type: 'string' },
    'xds-inflight-limit': { type: 'string' },
    'xds-intake-limit': { type: 'string' },
    'xds-keepalive': { type: 'string' },
    'debounce-quiet': { type: 'string' },
    'debounce-max': { type: 'string' },
    'sync-timeout': { type: 'string' },
    'dns-listen': { type: 'string' },
    'dns-zone': { type: 'string' },
    'dns-ttl': { type: 'string' },
    'dns-upstream': { type: 'string' },
    'dns-publish-timeout': { type: 'string' },
    'vip-cidr': { type: 'string' },
    'vip-store': { type: 'string' },
    'dns-store': { type: 'string' },
    'records-api': { type: 'string' },
    'records-token-file': { type: 'string' },
    'records-file': { type: 'string' },
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
    'ca-address': { type: 'string' },
    'ca-dir': { type: 'string' },
    'trust-domain': { type: 'string' },
    'ca-join-tokens': { type: 'string' },
    'ca-token-review': { type: 'string' },
    'ca-token-audience': { type: 'string' },
    'ca-cluster-id': { type: 'string' },
    'ca-cert-ttl': { type: 'string' },
    'ca-max-cert-ttl': { type: 'string' },
    'ca-server-name': { type: 'string', multiple: true },
  });
  if (values.help) {
    process.stdout.write(SERVE_HELP);
    return 0;
  }
  const zone = (values['dns-zone'] ?? DNS_DEFAULTS.zone).toLowerCase().replace(/\.$/, '');
  if (!/^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(zone)) throw new UsageError(`--dns-zone "${values['dns-zone']}": expected a DNS name such as rpc.cluster.local`);
  const dnsListen = values['dns-listen'] ?? DNS_DEFAULTS.listen;
  let dns;
  if (dnsListen !== 'off') {
    const ttl = Number(values['dns-ttl'] ?? DNS_DEFAULTS.ttl);
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > 86400) throw new UsageError(`--dns-ttl "${values['dns-ttl']}": expected whole seconds 1-86400`);
    const cidr = values['vip-cidr'] ?? DEFAULT_VIP_CIDR;
    try {
      parseCidr(cidr);
    } catch (e) {
      throw new UsageError(`--vip-cidr "${cidr}": ${(e as Error).message}`);
    }
    const vipStore = values['vip-store'] ?? defaultVipStorePath();
    const dnsStore = values['dns-store'];
    if (dnsStore && !/^etcd:\/\/[^/]+:\d+(,[^/]+:\d+)*\/\S+$/.test(dnsStore)) throw new UsageError(`--dns-store "${dnsStore}": expected etcd://HOST:PORT[,HOST:PORT]/PREFIX`);
    if (vipStore.startsWith('etcd:') && !/^etcd:\/\/[^/]+:\d+(,[^/]+:\d+)*(\/\S*)?$/.test(vipStore)) throw new UsageError(`--vip-store "${vipStore}": expected a file path or etcd://HOST:PORT[,HOST:PORT][/KEY]`);
    let recordsApi;
    if (values['records-api']) {
      for (const f of ['records-token-file', 'tls-cert', 'tls-key'] as const) if (!values[f]) throw new UsageError(`--records-api needs --${f}`);
      recordsApi = {
        listen: address('records-api', values['records-api'], ''),
        tokenFile: values['records-token-file']!,
        certFile: values['tls-cert']!,
        keyFile: values['tls-key']!,
        file: values['records-file'] ?? `${vipStore.startsWith('etcd:') ? defaultVipStorePath() : vipStore}.records.json`,
      };
    }
    dns = {
      listen: address('dns-listen', dnsListen, DNS_DEFAULTS.listen),
      zone,
      cidr,
      ttl,
      vipStore,
      ...(dnsStore ? { storeUrl: dnsStore } : {}),
      ...(recordsApi ? { recordsApi } : {}),
      ...(values['dns-upstream'] ? { upstream: address('dns-upstream', values['dns-upstream'], '') } : {}),
      publishTimeoutMs: durationMs('dns-publish-timeout', values['dns-publish-timeout'], 5000),
    };
  }
  const urls = values.registry?.length ? values.registry : ['file://config'];
  let registries;
  try {
    registries = urls.map((u) => registryFromUrl(u, { zone }));
  } catch (e) {
    if (e instanceof RegistryUrlError) throw new UsageError(e.message);
    throw e;
  }
  const quiet = durationMs('debounce-quiet', values['debounce-quiet'], DEFAULTS.debounceQuietMs);
  const max = durationMs('debounce-max', values['debounce-max'], DEFAULTS.debounceMaxMs);
  if (max < quiet) throw new UsageError(`--debounce-max (${max}ms) must not be shorter than --debounce-quiet (${quiet}ms)`);
  const ca = caOptions(values);
  const isthmus = new Isthmus({
    registries,
    ...(ca ? { ca } : {}),
    trustDomain: trustDomainOf(values),
    xdsAddress: address('xds-address', values['xds-address'], DEFAULTS.xdsAddress),
    adminAddress: address('admin-address', values['admin-address'], DEFAULTS.adminAddress),
    xdsMaxInflightBytes: byteSize('xds-inflight-limit', values['xds-inflight-limit'], DEFAULT_INFLIGHT_BYTES),
    xdsIntakeLimitBytes: byteSize('xds-intake-limit', values['xds-intake-limit'], DEFAULT_INTAKE_BYTES),
    xdsKeepaliveMs: durationMs('xds-keepalive', values['xds-keepalive'], DEFAULTS.xdsKeepaliveMs),
    debounceQuietMs: quiet,
    debounceMaxMs: max,
    syncTimeoutMs: durationMs('sync-timeout', values['sync-timeout'], DEFAULTS.syncTimeoutMs),
    ...(dns ? { dns } : {}),
  });
  const log = logger('serve');
  try {
    await isthmus.start();
  } catch (e) {
    await isthmus.close().catch(() => undefined);
    throw new UsageError(`cannot start: ${(e as Error).message}`);
  }
  await new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      log.info('shutting down', { signal });
      resolve();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  await isthmus.close();
  return 0;
}
