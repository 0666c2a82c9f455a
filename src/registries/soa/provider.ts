// Dubbo-layout provider entries: `/<root>/<interface>/providers/<url-encoded provider URL>`.
// Real Dubbo applications write exactly this; Isthmus reads and writes exactly this.
import { isIP } from 'node:net';

export interface Provider {
  /** The registry key the provider came from. */
  readonly key: string;
  readonly protocol: string;
  readonly address: string;
  readonly port: number;
  readonly interface: string;
  readonly application: string;
  readonly methods: readonly string[];
  readonly version?: string;
  readonly group?: string;
  readonly weight: number;
  /** `enabled=false` in the URL: registered but not to be called. */
  readonly enabled: boolean;
  /** Every other URL parameter. */
  readonly params: Readonly<Record<string, string>>;
  /**
   * An application instance whose interfaces are not known (application-level discovery
   * without metadata): it serves its application's ports, and names no interface.
   */
  readonly instanceOnly?: true;
  /**
   * Written by the Dubbo framework for its own protocol (a dubbo:// URL with Dubbo's protocol
   * version, `dubbo=2.0.2`, or a Dubbo 3 instance): calls on it are Dubbo frames Envoy's
   * Dubbo filter can decode. A hand-registered dubbo:// provider stays opaque TCP.
   */
  readonly speaksDubbo?: true;
}

export class ProviderError extends Error {
  readonly field: string;
  constructor(field: string, message: string) {
    super(message);
    this.field = field;
  }
}

export const MAX_KEY_BYTES = 8192;
const MAX_PARAM_VALUE = 1024;
const INTERFACE = /^[A-Za-z_$][\w$-]*(\.[A-Za-z_$][\w$-]*)*$/;
const PROTOCOL = /^[a-z][a-z0-9+.-]*$/;
// Parameters that describe the provider rather than label it.
const NOT_LABELS = new Set(['interface', 'methods', 'timestamp', 'pid', 'weight', 'enabled', 'side', 'anyhost', 'generic', 'dubbo', 'release']);

/** Where a key sits in the layout: the interface segment and the encoded URL, or why it is not a provider key. */
export function splitProviderKey(key: string, root: string): { iface: string; encoded: string } | { skip: string } | { error: string } {
  const prefix = root.endsWith('/') ? root : `${root}/`;
  if (!key.startsWith(prefix)) return { skip: 'outside the root' };
  const parts = key.slice(prefix.length).split('/');
  if (parts.length <= 2) return { skip: 'interface or category node' };
  // Consumers, configurators, routers and Dubbo's metadata reports share the root.
  if (parts[1] !== 'providers') return { skip: parts[1]! };
  if (parts.length !== 3 || !parts[0] || !parts[2]) return { error: `expected ${prefix}<interface>/providers/<url-encoded URL>` };
  return { iface: parts[0], encoded: parts[2] };
}

/** Parses one provider key; throws ProviderError naming the field that is wrong. */
export function parseProviderKey(key: string, root: string): Provider | undefined {
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) throw new ProviderError('key', `key is ${Buffer.byteLength(key)} bytes, over the ${MAX_KEY_BYTES}-byte limit`);
  const where = splitProviderKey(key, root);
  if ('skip' in where) return undefined;
  if ('error' in where) throw new ProviderError('key', where.error);
  let url: string;
  try {
    url = decodeURIComponent(where.encoded);
  } catch {
    throw new ProviderError('key', 'provider URL is not valid percent-encoding');
  }
  const p = parseProviderUrl(url, key);
  if (p.interface !== where.iface) {
    throw new ProviderError('interface', `provider URL names interface "${p.interface}" but is registered under "${where.iface}"`);
  }
  return p;
}

export function parseProviderUrl(raw: string, key = raw): Provider {
  const m = /^([^:/?#]+):\/\/([^/?#]*)(\/[^?#]*)?(?:\?([^#]*))?/.exec(raw);
  if (!m) throw new ProviderError('url', `"${clip(raw)}" is not a provider URL (protocol://address:port/interface?params)`);
  const protocol = m[1]!.toLowerCase();
  if (!PROTOCOL.test(protocol)) throw new ProviderError('protocol', `protocol "${clip(m[1]!)}" is not a URL scheme`);
  const hostport = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d+)$/.exec(m[2]!);
  if (!hostport) throw new ProviderError('address', `"${clip(m[2]!)}" is not ADDRESS:PORT`);
  const address = hostport[1] ?? hostport[2]!;
  if (!isIP(address)) throw new ProviderError('address', `provider address "${clip(address)}" is not an IP address`);
  const port = Number(hostport[3]);
  if (port < 1 || port > 65535) throw new ProviderError('port', `port ${hostport[3]} is outside 1-65535`);

  const params: Record<string, string> = {};
  for (const pair of (m[4] ?? '').split('&')) {
    if (!pair) continue;
    const eq = pair.indexOf('=');
    let k: string;
    let v: string;
    try {
      k = decodeURIComponent(eq < 0 ? pair : pair.slice(0, eq));
      v = eq < 0 ? '' : decodeURIComponent(pair.slice(eq + 1).replace(/\+/g, ' '));
    } catch {
      throw new ProviderError('params', `parameter "${clip(pair)}" is not valid percent-encoding`);
    }
    if (v.length > MAX_PARAM_VALUE) throw new ProviderError(k, `parameter ${clip(k)} is ${v.length} characters, over the ${MAX_PARAM_VALUE} limit`);
    params[k] = v;
  }

  const pathIface = (m[3] ?? '').replace(/^\//, '');
  const iface = params.interface ?? pathIface;
  if (!iface) throw new ProviderError('interface', 'no interface: neither the URL path nor the interface parameter names one');
  if (params.interface && pathIface && pathIface !== params.interface && !pathIface.endsWith(`/${params.interface}`)) {
    // Dubbo allows a path that differs from the interface (e.g. a context path); the parameter wins.
  }
  if (!INTERFACE.test(iface)) throw new ProviderError('interface', `interface "${clip(iface)}" is not a dotted identifier`);
  const application = params.application;
  if (!application) throw new ProviderError('application', 'missing application parameter: providers are grouped into services by application');
  if (params.side && params.side !== 'provider') throw new ProviderError('side', `side=${clip(params.side)}: not a provider`);
  const weight = params.weight === undefined ? 100 : Number(params.weight);
  if (!Number.isInteger(weight) || weight < 0 || weight > 0xffffffff) throw new ProviderError('weight', `weight "${clip(params.weight!)}" is not a whole number 0-4294967295`);

  const labels = providerLabels(params);
  return {
    key,
    protocol,
    address,
    port,
    interface: iface,
    application,
    methods: (params.methods ?? '').split(',').map((s) => s.trim()).filter(Boolean),
    ...(params.version ? { version: params.version } : {}),
    ...(params.group ? { group: params.group } : {}),
    weight,
    enabled: params.enabled !== 'false',
    params: labels,
    ...(protocol === 'dubbo' && params.dubbo ? { speaksDubbo: true as const } : {}),
  };
}

/** The parameters of a provider that label it (not those that describe it). */
export function providerLabels(params: Readonly<Record<string, string>>): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(params)) if (!NOT_LABELS.has(k)) labels[k] = v;
  return labels;
}

export interface ProviderSpec {
  readonly protocol?: string;
  readonly address: string;
  readonly port: number;
  readonly interface: string;
  readonly application: string;
  readonly methods?: readonly string[];
  readonly version?: string;
  readonly group?: string;
  readonly weight?: number;
  readonly params?: Readonly<Record<string, string>>;
}

/** The provider URL a Dubbo application would register, parameters in a stable order. */
export function buildProviderUrl(s: ProviderSpec, timestamp = Date.now()): string {
  const params: [string, string][] = [
    ['anyhost', 'false'],
    ['application', s.application],
    ['interface', s.interface],
    ['methods', (s.methods ?? []).join(',')],
    ['side', 'provider'],
    ...(s.version ? ([['version', s.version]] as [string, string][]) : []),
    ...(s.group ? ([['group', s.group]] as [string, string][]) : []),
    ...(s.weight !== undefined ? ([['weight', String(s.weight)]] as [string, string][]) : []),
    ...Object.entries(s.params ?? {}),
    ['timestamp', String(timestamp)],
  ];
  const host = s.address.includes(':') ? `[${s.address}]` : s.address;
  const query = params.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v).replace(/%2C/g, ',')}`).join('&');
  return `${s.protocol ?? 'dubbo'}://${host}:${s.port}/${s.interface}?${query}`;
}

/** The registry key of a provider URL under a root. */
export function providerKey(root: string, iface: string, url: string): string {
  return `${root.replace(/\/+$/, '')}/${iface}/providers/${encodeURIComponent(url)}`;
}

function clip(s: string): string {
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}
