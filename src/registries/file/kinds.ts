// The specs of the Istio kinds we read, checked the way Istio's validation webhook does,
// then mapped to the model. Problems go to the Checker; results are only used when none.

import type { Endpoint, Locality, Origin, Protocol, Resolution, Service, ServicePort, Workload } from '../../model/types.ts';
import { identityNameProblem } from '../../model/identity.ts';
import { Checker, describe, isDns1123Label, isHostname, isIpAddress, isIpOrCidr, isMapping, isWildcardHostname, sub } from '../../shared/checks.ts';

const SE_KEYS = ['hosts', 'addresses', 'ports', 'location', 'resolution', 'endpoints', 'workloadSelector', 'exportTo', 'subjectAltNames'];
const PORT_KEYS = ['number', 'protocol', 'name', 'targetPort'];
// WorkloadEntry spec, also the shape of a ServiceEntry endpoint. network is ignored; serviceAccount
// (in the document's namespace) is the workload's identity.
const WE_KEYS = ['address', 'ports', 'labels', 'network', 'locality', 'weight', 'serviceAccount'];
const RESOLUTIONS = ['NONE', 'STATIC', 'DNS', 'DNS_ROUND_ROBIN'] as const;
const LOCATIONS = ['MESH_EXTERNAL', 'MESH_INTERNAL'] as const;
const MAX_PORT = 65535;
const MAX_WEIGHT = 4294967295;

// Istio protocol names (case-insensitive) → the model. Protocols Isthmus cannot parse are plain TCP.
const PROTOCOLS: Readonly<Record<string, Protocol>> = {
  http: 'HTTP', http_proxy: 'HTTP', 'grpc-web': 'HTTP', http2: 'HTTP2', grpc: 'GRPC', https: 'HTTPS', tls: 'TLS',
  tcp: 'TCP', mongo: 'TCP', mysql: 'TCP', redis: 'TCP',
};
const PROTOCOL_NAMES = 'HTTP, HTTPS, HTTP2, GRPC, GRPC-WEB, HTTP_PROXY, TCP, TLS, MONGO, MYSQL, REDIS';

interface WorkloadFields {
  address: string;
  ports: Record<string, number>;
  labels: Record<string, string>;
  locality: Locality;
  weight: number;
  serviceAccount?: string;
}

/** The endpoint fields of a WorkloadEntry-shaped spec in `namespace`: its serviceAccount as an identity. */
function endpointOf(f: WorkloadFields, namespace: string): Omit<WorkloadFields, 'serviceAccount'> & { identity?: { namespace: string; serviceAccount: string } } {
  const { serviceAccount, ...rest } = f;
  return serviceAccount ? { ...rest, identity: { namespace, serviceAccount } } : rest;
}

export function serviceEntry(spec: unknown, c: Checker, meta: { namespace: string; origin: Origin }): { services: Service[]; endpoints: Endpoint[] } | undefined {
  const s = c.object(spec, 'spec', SE_KEYS);
  if (!s) return undefined;
  const location = c.oneOf(s.location, 'spec.location', LOCATIONS) ?? 'MESH_EXTERNAL';
  const resolution = c.oneOf(s.resolution, 'spec.resolution', RESOLUTIONS) ?? 'NONE';
  // An invalid resolution is reported once, not again through every rule that depends on it.
  const known = s.resolution === undefined || s.resolution === null || (RESOLUTIONS as readonly unknown[]).includes(s.resolution);

  const hosts = c.strings(s.hosts, 'spec.hosts') ?? [];
  if (hosts.length === 0 && (s.hosts === undefined || s.hosts === null || Array.isArray(s.hosts))) {
    c.fail('spec.hosts', 'spec.hosts is empty; a ServiceEntry needs at least one host');
  }
  for (const h of hosts) checkHost(h.value, h.field, location, c);

  const addresses = c.strings(s.addresses, 'spec.addresses') ?? [];
  for (const a of addresses) {
    if (!isIpOrCidr(a.value)) c.fail(a.field, `address ${JSON.stringify(a.value)} is not an IP address or CIDR block (e.g. 240.240.0.10 or 10.0.0.0/24)`);
    else if (known && a.value.includes('/') && resolution !== 'NONE' && resolution !== 'STATIC') {
      c.fail(a.field, `CIDR address ${JSON.stringify(a.value)} is allowed only with resolution NONE or STATIC`);
    }
  }

  const ports = checkPorts(s.ports, c);
  const declared = new Set(ports.map((p) => p.name));

  let selector: Record<string, string> | undefined;
  const sel = c.object(s.workloadSelector, 'spec.workloadSelector', ['labels']);
  if (sel) selector = c.labels(sel.labels, 'spec.workloadSelector.labels', { noWildcard: true }) ?? {};

  const rawEndpoints = c.list(s.endpoints, 'spec.endpoints');
  if (rawEndpoints && s.workloadSelector !== undefined && s.workloadSelector !== null) {
    c.fail('spec.endpoints', 'spec.endpoints and spec.workloadSelector are both set; Istio allows only one of them');
  }
  const endpointList = rawEndpoints ?? [];
  if (known && resolution === 'NONE' && endpointList.length > 0) {
    c.fail('spec.endpoints', 'spec.endpoints must be empty when resolution is NONE; use STATIC or DNS to list endpoints');
  }
  if (resolution === 'DNS_ROUND_ROBIN' && endpointList.length > 1) {
    c.fail('spec.endpoints', `resolution DNS_ROUND_ROBIN allows at most 1 endpoint, got ${endpointList.length}`);
  }
  if ((resolution === 'DNS' || resolution === 'DNS_ROUND_ROBIN') && endpointList.length === 0) {
    for (const h of hosts) {
      if (h.value.startsWith('*')) c.fail(h.field, `host ${JSON.stringify(h.value)} is a wildcard; with resolution ${resolution} and no endpoints every host must be a DNS name to resolve`);
    }
  }
  // With several hosts, only HTTP (Host header) and TLS (SNI) let the proxy tell them apart.
  if (known && resolution !== 'NONE' && hosts.length > 1 && ports.some((p) => p.protocol === 'TCP')) {
    c.fail('spec.hosts', 'several hosts with a TCP port are ambiguous unless resolution is NONE; use one host per ServiceEntry or HTTP/TLS ports');
  }
  const mode = known && resolution === 'STATIC' ? 'ip' : 'ip-or-dns';
  const endpointFields = endpointList.map((e, i) => workloadFields(e, sub('spec.endpoints', i), c, mode, declared));

  for (const e of c.strings(s.exportTo, 'spec.exportTo') ?? []) {
    if (!['.', '*', '~'].includes(e.value) && !isDns1123Label(e.value)) c.fail(e.field, `exportTo entry ${JSON.stringify(e.value)} is not ".", "*", "~" or a namespace name`);
  }
  c.strings(s.subjectAltNames, 'spec.subjectAltNames');

  if (hosts.length === 0) return undefined;
  // Istio's semantics: each host is a service of its own (its own clusters, VIP and rules),
  // with the entry's ports, addresses and endpoints.
  const services: Service[] = [];
  const endpoints: Endpoint[] = [];
  for (const { value: hostname } of hosts) {
    services.push({
      hostname,
      aliases: [],
      namespace: meta.namespace,
      ports,
      addresses: addresses.map((a) => a.value),
      resolution: (resolution === 'DNS_ROUND_ROBIN' ? 'DNS' : resolution) as Resolution,
      location,
      interfaces: [],
      ...(selector ? { workloadSelector: selector } : {}),
      origin: meta.origin,
    });
    for (const f of endpointFields) if (f) endpoints.push({ service: hostname, ...endpointOf(f, meta.namespace), health: 'HEALTHY', origin: meta.origin });
  }
  return { services, endpoints };
}

export function workloadEntry(spec: unknown, c: Checker, meta: { name: string; namespace: string; origin: Origin }): Workload | undefined {
  const f = workloadFields(spec, 'spec', c, 'ip-or-dns');
  return f ? { name: meta.name, namespace: meta.namespace, ...endpointOf(f, meta.namespace), health: 'HEALTHY', origin: meta.origin } : undefined;
}

function checkHost(h: string, field: string, location: string, c: Checker): void {
  if (h === '*') {
    c.fail(field, 'host "*" is not allowed in a ServiceEntry; name the hosts, or use a "*.domain" wildcard');
  } else if (!isWildcardHostname(h)) {
    c.fail(field, `host ${JSON.stringify(h)} is not a valid DNS name; expected labels of letters, digits and "-" separated by dots, optionally starting with "*."`);
  } else if (h.startsWith('*.') && location !== 'MESH_EXTERNAL') {
    c.fail(field, `wildcard host ${JSON.stringify(h)} is allowed only with location MESH_EXTERNAL`);
  }
}

function checkPorts(v: unknown, c: Checker): ServicePort[] {
  const out: ServicePort[] = [];
  const names = new Map<string, number>();
  const numbers = new Map<number, number>();
  (c.list(v, 'spec.ports') ?? []).forEach((item, i) => {
    const field = sub('spec.ports', i);
    const p = c.object(item, field, PORT_KEYS);
    if (!p) {
      if (item === null || item === undefined) c.fail(field, `${field} is empty; expected a mapping with number, name and protocol`);
      return;
    }
    if (p.number === undefined || p.number === null) c.fail(`${field}.number`, `${field}.number is missing; expected an integer from 1 to ${MAX_PORT}`);
    const num = c.integer(p.number, `${field}.number`, 1, MAX_PORT);
    if (p.name === undefined || p.name === null) c.fail(`${field}.name`, `${field}.name is missing; every port needs a name, e.g. "http"`);
    const name = c.string(p.name, `${field}.name`);
    if (name !== undefined && !isDns1123Label(name)) {
      c.fail(`${field}.name`, `port name ${JSON.stringify(name)} is not a valid DNS-1123 label; expected lower-case letters, digits and "-", at most 63 characters`);
    }
    const protocol = checkProtocol(p.protocol, `${field}.protocol`, c);
    const target = c.integer(p.targetPort, `${field}.targetPort`, 1, MAX_PORT);
    if (name !== undefined) {
      const first = names.get(name);
      if (first !== undefined) c.fail(`${field}.name`, `port name ${JSON.stringify(name)} is already used by spec.ports[${first}]; port names must be unique`);
      else names.set(name, i);
    }
    if (num !== undefined) {
      const first = numbers.get(num);
      if (first !== undefined) c.fail(`${field}.number`, `port number ${num} is already used by spec.ports[${first}]; port numbers must be unique`);
      else numbers.set(num, i);
    }
    if (num !== undefined && name !== undefined && protocol !== undefined) {
      out.push({ name, number: num, protocol, ...(target !== undefined ? { targetPort: target } : {}) });
    }
  });
  return out;
}

function checkProtocol(v: unknown, field: string, c: Checker): Protocol | undefined {
  const s = c.string(v, field);
  if (v === undefined || v === null || s === '') return 'TCP'; // Istio would sniff; Isthmus treats unnamed as TCP
  if (s === undefined) return undefined;
  const p = PROTOCOLS[s.toLowerCase()];
  if (p) return p;
  if (s.toLowerCase() === 'udp') c.fail(field, 'protocol UDP is valid in Istio but not supported by Isthmus; expected a TCP-based protocol');
  else c.fail(field, `protocol ${JSON.stringify(s)} is not supported; expected one of: ${PROTOCOL_NAMES}`);
  return undefined;
}

function workloadFields(v: unknown, field: string, c: Checker, mode: 'ip' | 'ip-or-dns', declared?: ReadonlySet<string>): WorkloadFields | undefined {
  const w = c.object(v, field, WE_KEYS);
  if (!w) {
    if (v === null || v === undefined) c.fail(field, `${field} is empty; expected a mapping with at least an address`);
    return undefined;
  }
  if (w.address === undefined || w.address === null) c.fail(`${field}.address`, `${field}.address is missing; expected an IP address${mode === 'ip' ? '' : ' or DNS name'}`);
  const address = c.string(w.address, `${field}.address`);
  if (address !== undefined) checkAddress(address, `${field}.address`, mode, c);

  const ports: Record<string, number> = {};
  if (w.ports !== undefined && w.ports !== null && !isMapping(w.ports)) c.fail(`${field}.ports`, `${field}.ports must be a mapping of port name to number, not ${describe(w.ports)}`);
  for (const [name, value] of Object.entries(isMapping(w.ports) ? w.ports : {})) {
    const pf = sub(`${field}.ports`, name);
    if (declared && !declared.has(name)) {
      const known = declared.size ? [...declared].join(', ') : 'none';
      c.fail(pf, `port ${JSON.stringify(name)} is not declared in spec.ports; declared port names: ${known}`);
    } else if (!isDns1123Label(name)) c.fail(pf, `port name ${JSON.stringify(name)} is not a valid DNS-1123 label`);
    if (value === null) c.fail(pf, `${pf} is empty; expected an integer from 1 to ${MAX_PORT}`);
    const n = c.integer(value, pf, 1, MAX_PORT);
    if (n !== undefined) ports[name] = n;
  }
  const labels = c.labels(w.labels, `${field}.labels`) ?? {};
  const locality = checkLocality(c.string(w.locality, `${field}.locality`), `${field}.locality`, c);
  const weight = c.integer(w.weight, `${field}.weight`, 0, MAX_WEIGHT);
  c.string(w.network, `${field}.network`);
  const serviceAccount = c.string(w.serviceAccount, `${field}.serviceAccount`) || undefined;
  const saProblem = serviceAccount === undefined ? undefined : identityNameProblem('service account', serviceAccount);
  if (saProblem) c.fail(`${field}.serviceAccount`, saProblem);
  if (address === undefined) return undefined;
  // 0 is protobuf's "unset"; Envoy needs a weight of at least 1.
  return { address, ports, labels, locality, weight: weight || 1, ...(serviceAccount && !saProblem ? { serviceAccount } : {}) };
}

function checkAddress(a: string, field: string, mode: 'ip' | 'ip-or-dns', c: Checker): void {
  if (a.startsWith('unix://')) c.fail(field, `address ${JSON.stringify(a)} is a unix domain socket, which Isthmus does not support; expected an IP address`);
  else if (mode === 'ip' && !isIpAddress(a)) {
    c.fail(field, `address ${JSON.stringify(a)} is not an IP address; resolution STATIC needs IP addresses (use resolution DNS for host names)`);
  } else if (mode === 'ip-or-dns' && !isIpAddress(a) && !isHostname(a)) {
    c.fail(field, `address ${JSON.stringify(a)} is neither an IP address nor a DNS name`);
  }
}

function checkLocality(s: string | undefined, field: string, c: Checker): Locality {
  if (!s) return {};
  const parts = s.split('/');
  if (parts.length > 3 || parts.some((p) => p === '' || /\s/.test(p))) {
    c.fail(field, `locality ${JSON.stringify(s)} is malformed; expected region, region/zone or region/zone/subzone with non-empty parts`);
    return {};
  }
  const [region, zone, subzone] = parts;
  return { ...(region ? { region } : {}), ...(zone ? { zone } : {}), ...(subzone ? { subzone } : {}) };
}
