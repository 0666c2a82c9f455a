// `etcd://HOST:PORT[,HOST:PORT]/ROOT` and `zk://HOST:PORT[,HOST:PORT]/ROOT` registry URLs.

export interface SoaUrl {
  readonly scheme: 'etcd' | 'zk';
  /** host:port pairs, in the order given. */
  readonly hosts: readonly string[];
  /** Layout root, e.g. /dubbo (the default when the URL has no path). */
  readonly root: string;
  /** Namespace of the services (query parameter `namespace`, default "default"). */
  readonly namespace: string;
  /** Where application-level instances are registered (query parameter `services`, default /services). */
  readonly services: string;
  /** The URL in canonical form: the registry id. */
  readonly id: string;
}

export class SoaUrlError extends Error {}

const DEFAULT_PORT = { etcd: 2379, zk: 2181 } as const;

export function parseSoaUrl(raw: string): SoaUrl {
  const m = /^(etcd|zk):\/\/([^/?#]*)(\/[^?#]*)?(?:\?([^#]*))?$/i.exec(raw);
  if (!m) throw new SoaUrlError(`"${raw}" is not etcd://HOST:PORT[,HOST:PORT]/ROOT or zk://HOST:PORT[,HOST:PORT]/ROOT`);
  const scheme = m[1]!.toLowerCase() as 'etcd' | 'zk';
  if (!m[2]) throw new SoaUrlError(`"${raw}": no server address`);
  const hosts = m[2].split(',').map((h) => {
    const hp = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::(\d+))?$/.exec(h.trim());
    const port = hp?.[2] ? Number(hp[2]) : DEFAULT_PORT[scheme];
    if (!hp || port < 1 || port > 65535) throw new SoaUrlError(`"${raw}": "${h}" is not HOST:PORT`);
    return `${hp[1]}:${port}`;
  });
  const root = (m[3] ?? '').replace(/\/+$/, '') || '/dubbo';
  if (root.includes('//') || /[\s]/.test(root)) throw new SoaUrlError(`"${raw}": root "${root}" is not a clean path`);
  const params = new URLSearchParams(m[4] ?? '');
  for (const k of params.keys()) if (k !== 'namespace' && k !== 'services') throw new SoaUrlError(`"${raw}": unknown parameter "${k}" (known: namespace, services)`);
  const services = (params.get('services') ?? '/services').replace(/\/+$/, '') || '/';
  if (!services.startsWith('/') || services.includes('//') || /\s/.test(services)) throw new SoaUrlError(`"${raw}": services "${services}" is not an absolute clean path`);
  const namespace = params.get('namespace') ?? 'default';
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(namespace)) throw new SoaUrlError(`"${raw}": namespace "${namespace}" is not a DNS-1123 label`);
  return { scheme, hosts, root, namespace, services, id: `${scheme}://${hosts.join(',')}${root}` };
}
