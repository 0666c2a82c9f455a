// Registry URLs (`--registry`) to registry instances.
import type { Registry } from '../model/registry.ts';
import { FileRegistry } from './file/index.ts';
import { KubeRegistry } from './kube/kube-registry.ts';
import { KubeUrlError } from './kube/errors.ts';
import { parseKubeUrl } from './kube/url.ts';
import { EtcdRegistry } from './soa/etcd.ts';
import { parseSoaUrl, SoaUrlError } from './soa/url.ts';
import { ZkRegistry } from './soa/zk.ts';

export class RegistryUrlError extends Error {}

export const REGISTRY_SCHEMES = ['file://DIR', 'etcd://HOST:PORT[,HOST:PORT]/ROOT[?namespace=NS&services=/services]', 'zk://HOST:PORT[,HOST:PORT]/ROOT[?namespace=NS&services=/services]', 'kube://[CONTEXT]'];

export interface RegistryDefaults {
  /** DNS zone of application and interface names; must match the DNS zone served. */
  readonly zone?: string;
}

export function registryFromUrl(raw: string, defaults: RegistryDefaults = {}): Registry {
  const zone = defaults.zone ? { zone: defaults.zone } : {};
  const m = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/i.exec(raw);
  if (!m) {
    // A bare path is a directory, the common case on the command line.
    if (raw && !raw.includes('://')) return new FileRegistry(raw);
    throw new RegistryUrlError(`--registry "${raw}": expected one of ${REGISTRY_SCHEMES.join(', ')}`);
  }
  const scheme = m[1]!.toLowerCase();
  const rest = m[2]!;
  try {
    switch (scheme) {
      case 'file':
        if (!rest) throw new RegistryUrlError(`--registry "${raw}": file:// needs a directory, e.g. file://config`);
        return new FileRegistry(rest);
      case 'etcd': {
        const u = parseSoaUrl(raw);
        return new EtcdRegistry({ endpoints: u.hosts, root: u.root, services: u.services, namespace: u.namespace, ...zone });
      }
      case 'zk': {
        const u = parseSoaUrl(raw);
        return new ZkRegistry({ connect: u.hosts.join(','), root: u.root, services: u.services, namespace: u.namespace, ...zone });
      }
      case 'kube':
        return new KubeRegistry({ ...zone, ...parseKubeUrl(raw) });
      default:
        throw new RegistryUrlError(`--registry "${raw}": unknown scheme "${scheme}"; expected one of ${REGISTRY_SCHEMES.join(', ')}`);
    }
  } catch (e) {
    if (e instanceof SoaUrlError) throw new RegistryUrlError(`--registry ${e.message}`);
    if (e instanceof KubeUrlError) throw new RegistryUrlError(e.message);
    throw e;
  }
}
