// The Kubernetes registry's public surface.
import { KubeRegistry } from './kube-registry.ts';
import { parseKubeUrl } from './url.ts';

export { KubeApiError, type KubeApi, KubeConfigApi, type KubeConfigOptions, loadKubeConfig } from './client.ts';
export { describeFailures, KINDS, KubeRegistry, type KubeRegistryOptions } from './kube-registry.ts';
export { ListWatch, type ListWatchOptions, type WatchPhase, type WatchStatus } from './list-watch.ts';
export { RPC_GROUP, RPC_VERSION } from './resources.ts';
export { type RpcServiceStatus } from './rpcservice.ts';
export { KubeUrlError } from './errors.ts';
export { parseKubeUrl } from './url.ts';

/** `--registry kube://[CONTEXT][?OPTIONS]` → a KubeRegistry (throws KubeUrlError or a kubeconfig error). */
export function kubeRegistryFromUrl(url: string): KubeRegistry {
  return new KubeRegistry(parseKubeUrl(url));
}
