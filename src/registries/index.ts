// Registry URLs (`--registry`) to registry instances.
import type { Registry } from '../model/registry.ts';
import { FileRegistry } from './file/index.ts';

export class RegistryUrlError extends Error {}

export const REGISTRY_SCHEMES = ['file://DIR', 'etcd://HOST:PORT[,HOST:PORT]/ROOT', 'zk://HOST:PORT/ROOT', 'kube://[CONTEXT]'];

export function registryFromUrl(raw: string): Registry {
  const m = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/i.exec(raw);
  if (!m) {
    // A bare path is a directory, the common case on the command line.
    if (raw && !raw.includes('://')) return new FileRegistry(raw);
    throw new RegistryUrlError(`--registry "${raw}": expected one of ${REGISTRY_SCHEMES.join(', ')}`);
  }
  const scheme = m[1]!.toLowerCase();
  const rest = m[2]!;
  switch (scheme) {
    case 'file':
      if (!rest) throw new RegistryUrlError(`--registry "${raw}": file:// needs a directory, e.g. file://config`);
      return new FileRegistry(rest);
    case 'etcd':
    case 'zk':
    case 'kube':
      throw new RegistryUrlError(`--registry "${raw}": the ${scheme} registry is not available in this build yet`);
    default:
      throw new RegistryUrlError(`--registry "${raw}": unknown scheme "${scheme}"; expected one of ${REGISTRY_SCHEMES.join(', ')}`);
  }
}
