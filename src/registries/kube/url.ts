// `--registry kube://[CONTEXT][?OPTIONS]` → KubeRegistry options.
//
//   kube://                      current kubeconfig context, or in-cluster config inside a pod
//   kube://prod-east             kubeconfig context prod-east
//   kube://prod-east?cluster=east&region=hz-idc1&namespaces=shop,pay&kubeconfig=/etc/kube.conf
//
// The context is everything between kube:// and ? (percent-decoded), since context names
// often contain ':', '/' or '@' (e.g. arn:aws:eks:…:cluster/x, user@cluster).
// Options: kubeconfig, cluster (cluster name), region (region/IDC), namespaces (comma
// list), domain, zone, status (true/false: write RPCService status), shortnames (true/false).
import { KubeUrlError } from './errors.ts';
import type { KubeRegistryOptions } from './kube-registry.ts';


const KEYS = ['kubeconfig', 'cluster', 'region', 'namespaces', 'domain', 'zone', 'status', 'shortnames'];

function bool(raw: string, key: string, url: string): boolean {
  if (raw === 'true' || raw === '1' || raw === '') return true;
  if (raw === 'false' || raw === '0') return false;
  throw new KubeUrlError(`--registry "${url}": ${key}=${raw} must be true or false`);
}

export function parseKubeUrl(url: string): KubeRegistryOptions {
  const m = /^kube:\/\/([^?]*)(?:\?(.*))?$/i.exec(url);
  if (!m) throw new KubeUrlError(`--registry "${url}": expected kube://[CONTEXT][?cluster=NAME&region=REGION&namespaces=A,B&kubeconfig=PATH]`);
  let context: string;
  try {
    context = decodeURIComponent(m[1]!);
  } catch {
    throw new KubeUrlError(`--registry "${url}": the context name is not valid percent-encoding`);
  }
  const opts: { -readonly [K in keyof KubeRegistryOptions]: KubeRegistryOptions[K] } = { id: url };
  if (context) opts.context = context;
  for (const [key, value] of new URLSearchParams(m[2] ?? '')) {
    switch (key) {
      case 'kubeconfig':
        opts.kubeconfig = value;
        break;
      case 'cluster':
        opts.clusterName = value;
        break;
      case 'region':
        opts.region = value;
        break;
      case 'namespaces':
        opts.namespaces = value.split(',').map((s) => s.trim()).filter(Boolean);
        break;
      case 'domain':
        opts.domain = value;
        break;
      case 'zone':
        opts.zone = value;
        break;
      case 'status':
        opts.writeStatus = bool(value, key, url);
        break;
      case 'shortnames':
        opts.shortNames = bool(value, key, url);
        break;
      default:
        throw new KubeUrlError(`--registry "${url}": unknown option "${key}"; expected one of ${KEYS.join(', ')}`);
    }
  }
  return opts;
}
