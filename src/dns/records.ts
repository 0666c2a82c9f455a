// Desired DNS records: a pure function of the model and the VIP table.
//
// For a zone Z (default rpc.cluster.local), only names inside Z get records:
//
//   <service hostname or alias>        A/AAAA  the service's own addresses, or its VIP
//   <interface hostname>               A/AAAA  the interface's VIP
//   <interface hostname>               TXT     interface metadata, one "key=value" per string:
//                                              interface, version, group, application,
//                                              service, port, methods (comma-separated).
//                                              A value too long for one 255-octet string goes
//                                              on in the next string with the same key:
//                                              concatenate them.
//   _<port>._tcp.<service or alias>    SRV     0 <weight> <port> <instance> per healthy endpoint
//   _<port>._tcp.<interface hostname>  SRV     the same, for the endpoints serving the interface
//                                              on its port (every service port if it has none)
//   <instance>                         A/AAAA  the endpoint's address
//
// Instance names live in a subtree of their own, `<address>.ep.Z`, where <address> is the
// IPv4 address with '-' for '.' (10-1-2-3.ep.Z) or the fully expanded IPv6 address with '-'
// for ':' (fd00-0000-…-0001.ep.Z). One name per address, whatever service or port uses it,
// and never below a service or interface name, so a store that answers a name with its
// whole subtree (the CoreDNS etcd plugin) never mixes instances into a VIP answer. An
// endpoint whose address is a hostname is its own SRV target. A model name inside the
// instance subtree, or the apex itself, is reported and gets no record.
//
// <port> is the service port's name, lowercased, with characters other than a-z, 0-9 and
// '-' turned into '-'. SRV weights are endpoint weights in hundredths, as Envoy gets them
// (a normal instance is 100; clamped to 65535), priority 0.
// Output is sorted (canonical name order, then type, then data) and free of duplicates.
import type { ModelSnapshot } from '../model/snapshot.ts';
import { type Endpoint, endpointPort, lbWeight, type RpcInterface, type Service, type ServicePort } from '../model/types.ts';
import { formatIp, parseIp } from '../shared/ip.ts';
import { type DnsRecord, inZone, recordKey, sortRecords, type SrvRecord } from './rr.ts';

export const DEFAULT_TTL = 30;
export const INSTANCE_LABEL = 'ep';
const MAX_STRING = 255;

export interface RecordsOptions {
  readonly zone: string;
  /** TTL of every record, in seconds. */
  readonly ttl: number;
  /**
   * Names waiting for a VIP, with why: they get no record at all until they have one, so a
   * client never caches an answer that bypasses its sidecar.
   */
  readonly waiting?: { readonly names: ReadonlySet<string>; readonly reason: string };
}

/** A name that gets no record, and why. */
export interface RecordProblem {
  readonly name: string;
  readonly reason: string;
}

export interface DesiredRecords {
  readonly records: readonly DnsRecord[];
  readonly problems: readonly RecordProblem[];
}

/** Instance name of an endpoint address in the zone; undefined for a non-IP address. */
export function instanceName(address: string, zone: string): string | undefined {
  const ip = parseIp(address);
  if (!ip) return undefined;
  if (ip.family === 4) return `${formatIp(4, ip.value).replace(/\./g, '-')}.${INSTANCE_LABEL}.${zone}`;
  const groups: string[] = [];
  for (let s = 112n; s >= 0n; s -= 16n) groups.push(((ip.value >> s) & 0xffffn).toString(16).padStart(4, '0'));
  return `${groups.join('-')}.${INSTANCE_LABEL}.${zone}`;
}

/** SRV owner label for a port name: `_grpc`. */
export function portLabel(port: ServicePort): string {
  const l = port.name.toLowerCase().replace(/[^a-z0-9-]/g, '-').replace(/^-+|-+$/g, '').slice(0, 62);
  return `_${l || `port-${port.number}`}`;
}

const HOSTNAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

export function desiredRecords(model: ModelSnapshot, vips: ReadonlyMap<string, string>, opts: RecordsOptions): DesiredRecords {
  const zone = opts.zone.toLowerCase().replace(/\.$/, '');
  const ttl = opts.ttl;
  const instanceRoot = `${INSTANCE_LABEL}.${zone}`;
  const out = new Map<string, DnsRecord>();
  const problems: RecordProblem[] = [];
  const owners = new Map<string, string>(); // name → what it belongs to
  const instances = new Map<string, string>(); // instance name → address
  const add = (r: DnsRecord): void => {
    out.set(recordKey(r), r);
  };

  /** Claims a name for `owner`; false (and a problem) when it cannot have records. */
  const claim = (raw: string, owner: string): string | undefined => {
    const name = raw.toLowerCase();
    if (!inZone(name, zone)) return undefined;
    if (name === zone) return void problems.push({ name, reason: `${owner}: the zone apex holds only SOA and NS records` });
    if (inZone(name, instanceRoot)) return void problems.push({ name, reason: `${owner}: names under ${instanceRoot} are reserved for instance names` });
    if (!HOSTNAME.test(name)) return void problems.push({ name, reason: `${owner}: not a valid DNS hostname` });
    if (opts.waiting?.names.has(name)) return void problems.push({ name, reason: `${owner}: waiting for a VIP (${opts.waiting.reason})` });
    const prev = owners.get(name);
    if (prev !== undefined && prev !== owner) return void problems.push({ name, reason: `${owner}: the name already belongs to ${prev}` });
    owners.set(name, owner);
    return name;
  };

  const addressRecords = (name: string, addresses: readonly string[]): void => {
    for (const a of addresses) {
      const ip = parseIp(a);
      if (ip) add({ name, ttl, type: ip.family === 4 ? 'A' : 'AAAA', address: formatIp(ip.family, ip.value) });
    }
  };

  const srvRecords = (name: string, ports: readonly ServicePort[], endpoints: readonly Endpoint[]): void => {
    for (const port of ports) {
      const owner = `${portLabel(port)}._tcp.${name}`;
      const byTarget = new Map<string, SrvRecord>();
      for (const ep of endpoints) {
        if (ep.health !== 'HEALTHY') continue;
        let target = instanceName(ep.address, zone);
        if (target) instances.set(target, ep.address);
        else if (HOSTNAME.test(ep.address.toLowerCase().replace(/\.$/, ''))) target = ep.address.toLowerCase().replace(/\.$/, '');
        else continue;
        const srv: SrvRecord = { name: owner, ttl, type: 'SRV', priority: 0, weight: Math.min(65535, lbWeight(ep.weight)), port: endpointPort(ep, port), target };
        const key = `${srv.target}:${srv.port}`;
        const prev = byTarget.get(key);
        if (!prev || prev.weight < srv.weight) byTarget.set(key, srv);
      }
      for (const r of byTarget.values()) add(r);
    }
  };

  for (const svc of model.services.values()) {
    const endpoints = model.endpoints.get(svc.hostname) ?? [];
    const addresses = serviceAddresses(svc, vips);
    for (const host of [svc.hostname, ...svc.aliases]) {
      const name = claim(host, `service ${svc.hostname}`);
      if (!name) continue;
      if (addresses.length === 0) problems.push({ name, reason: svc.addresses.length ? `service ${svc.hostname}: its addresses are ranges, not single IPs; no A record` : `service ${svc.hostname}: no VIP allocated` });
      addressRecords(name, addresses);
      srvRecords(name, svc.ports, endpoints);
    }
  }

  for (const [host, { service, iface }] of model.interfaces) {
    const svc = model.services.get(service);
    if (!svc) continue;
    const name = claim(host, `interface ${iface.name}${iface.version ? ` version ${iface.version}` : ''}${iface.group ? ` group ${iface.group}` : ''}`);
    if (!name) continue;
    const vip = vips.get(name);
    if (vip) addressRecords(name, [vip]);
    else problems.push({ name, reason: `interface ${iface.name}: no VIP allocated` });
    add({ name, ttl, type: 'TXT', text: interfaceTxt(iface, svc) });
    const ports = iface.port === undefined ? svc.ports : svc.ports.filter((p) => p.number === iface.port);
    const serving = (model.endpoints.get(service) ?? []).filter((e) => !e.interfaces || e.interfaces.includes(iface.hostname));
    srvRecords(name, ports, serving);
  }

  for (const [name, address] of instances) addressRecords(name, [address]);

  return { records: sortRecords(out.values()), problems: problems.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)) };
}

/** Single addresses of a service (a /32 or /128 counts; wider ranges do not), else its VIP. */
function serviceAddresses(svc: Service, vips: ReadonlyMap<string, string>): string[] {
  if (svc.addresses.length === 0) {
    const vip = vips.get(svc.hostname.toLowerCase());
    return vip ? [vip] : [];
  }
  const out: string[] = [];
  for (const a of svc.addresses) {
    const m = /^([^/]+)(?:\/(\d+))?$/.exec(a);
    const ip = m ? parseIp(m[1]!) : undefined;
    if (!ip) continue;
    if (m![2] !== undefined && Number(m![2]) !== (ip.family === 4 ? 32 : 128)) continue;
    out.push(formatIp(ip.family, ip.value));
  }
  return out;
}

function interfaceTxt(iface: RpcInterface, svc: Service): string[] {
  const out: string[] = [];
  const kv = (key: string, value: string): void => {
    // Split the value on UTF-8 character boundaries so each string fits 255 octets.
    const room = MAX_STRING - Buffer.byteLength(key) - 1;
    let chunk = '';
    for (const ch of value) {
      if (Buffer.byteLength(chunk) + Buffer.byteLength(ch) > room) {
        out.push(`${key}=${chunk}`);
        chunk = '';
      }
      chunk += ch;
    }
    out.push(`${key}=${chunk}`);
  };
  kv('interface', iface.name);
  if (iface.version) kv('version', iface.version);
  if (iface.group) kv('group', iface.group);
  kv('application', svc.workloadSelector?.app ?? svc.hostname);
  kv('service', svc.hostname);
  if (iface.port !== undefined) kv('port', String(iface.port));
  kv('methods', iface.methods.join(','));
  return out;
}
