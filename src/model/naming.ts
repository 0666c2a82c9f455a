// Canonical DNS names for RPC interfaces and applications.
//
// An interface `com.alipay.userservice.UserQuery` with version `1.0.0` and group `blue`
// is named `com.alipay.userservice.userquery.v1-0-0.g-blue.rpc.cluster.local`:
//  - the interface name is lowercased and split on dots into labels;
//  - in every label, characters other than a-z, 0-9 and '-' become '-' ('$' of inner
//    classes and '_' included), runs of '-' are kept, leading/trailing '-' are dropped;
//  - a version adds the label `v<version>` and a group the label `g-<group>`, after the
//    interface labels, so a versioned name is never a subdomain of another interface;
//  - a label longer than 63 octets keeps its first 54 characters, '-', and 8 hex
//    characters of a hash of the original, so it stays unique and stable;
//  - the zone (default rpc.cluster.local) ends the name; a name over 253 octets is refused.
// Different interfaces that map to one name are a conflict: both are reported, neither served.
import { createHash } from 'node:crypto';

export const DEFAULT_ZONE = 'rpc.cluster.local';
const MAX_LABEL = 63;
const MAX_NAME = 253;

export class NamingError extends Error {}

function label(raw: string, what: string): string {
  let l = raw.toLowerCase().replace(/[^a-z0-9-]/g, '-').replace(/^-+|-+$/g, '');
  if (!l) throw new NamingError(`${what} "${raw}" has no letters or digits to make a DNS label of`);
  if (l.length > MAX_LABEL) l = `${l.slice(0, 54)}-${createHash('sha256').update(raw).digest('hex').slice(0, 8)}`;
  return l;
}

/** DNS name of one interface (+version, +group) in the zone. */
export function interfaceHostname(iface: string, version: string | undefined, group: string | undefined, zone = DEFAULT_ZONE): string {
  const parts = iface.split('.');
  if (parts.some((p) => p === '')) throw new NamingError(`interface "${iface}" has an empty name segment`);
  const labels = parts.map((p) => label(p, `interface segment of ${iface}`));
  if (version) labels.push(label(`v${version}`, 'version'));
  if (group) labels.push(label(`g-${group}`, 'group'));
  return checkLength([...labels, zone].join('.'));
}

/** DNS name of an application (a service of the SOA registry) in the zone. */
export function applicationHostname(application: string, zone = DEFAULT_ZONE): string {
  return checkLength(`${label(application, 'application')}.${zone}`);
}

function checkLength(name: string): string {
  if (name.length > MAX_NAME) throw new NamingError(`name ${name.slice(0, 40)}… is ${name.length} octets, over the DNS limit of ${MAX_NAME}`);
  return name;
}
