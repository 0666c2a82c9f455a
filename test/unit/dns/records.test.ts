import { test } from 'node:test';
import assert from 'node:assert/strict';
import { desiredRecords, instanceName } from '../../../src/dns/records.ts';
import { vipNames } from '../../../src/model/mesh-snapshot.ts';
import { compareRecords, recordText, sortRecords } from '../../../src/dns/rr.ts';
import { mapProviders } from '../../../src/registries/soa/mapping.ts';
import { parseProviderUrl } from '../../../src/registries/soa/provider.ts';
import { ep, iface, modelOf, svc } from '../../helpers/dns.ts';

const Z = 'rpc.cluster.local';
const opts = { zone: Z, ttl: 30 };

function soaModel() {
  const userQuery = iface('com.alipay.userservice.UserQuery', `com.alipay.userservice.userquery.${Z}`, { methods: ['getUser', 'listUsers'], version: '1.0.0', group: 'blue', port: 20880 });
  const userAdmin = iface('com.alipay.userservice.UserAdmin', `com.alipay.userservice.useradmin.${Z}`, { methods: ['ban'], port: 20880 });
  const app = svc(`userservice.${Z}`, { interfaces: [userAdmin, userQuery], workloadSelector: { app: 'userservice' } });
  const web = svc('web.example.com', { aliases: [`web.${Z}`], addresses: ['10.96.0.10', 'fd00::10', '10.0.0.0/24'], ports: [{ name: 'http', number: 80, protocol: 'HTTP', targetPort: 8080 }] });
  return modelOf(
    [app, web],
    [
      ep(app.hostname, '10.0.0.1', { ports: { dubbo: 20880 }, weight: 1, interfaces: [userQuery.hostname, userAdmin.hostname] }),
      ep(app.hostname, '10.0.0.2', { ports: { dubbo: 20881 }, weight: 0.5, interfaces: [userQuery.hostname] }),
      ep(app.hostname, '10.0.0.3', { ports: { dubbo: 20880 }, health: 'UNHEALTHY' }),
      ep(app.hostname, 'fd00::7', { ports: { dubbo: 20880 } }), // a migrated pod: serves every interface
      ep(web.hostname, '10.1.0.1'),
    ],
  );
}

test('VIPs are wanted for every interface and every service without an address of its own', () => {
  const m = modelOf([...soaModel().services.values(), svc('*.wild.example.com')]);
  assert.deepEqual(vipNames(m), [`com.alipay.userservice.useradmin.${Z}`, `com.alipay.userservice.userquery.${Z}`, `userservice.${Z}`]);
});

test('records of a model: A to the VIP, SRV to instances, TXT metadata, only inside the zone, sorted', () => {
  const vips = new Map([
    [`userservice.${Z}`, '240.240.0.1'],
    [`com.alipay.userservice.userquery.${Z}`, '240.240.0.2'],
    [`com.alipay.userservice.useradmin.${Z}`, '240.240.0.3'],
  ]);
  const { records, problems } = desiredRecords(soaModel(), vips, opts);
  assert.deepEqual(problems, []);
  assert.deepEqual(records.map(recordText), [
    `10-0-0-1.ep.${Z}. 30 IN A 10.0.0.1`,
    `10-0-0-2.ep.${Z}. 30 IN A 10.0.0.2`,
    `10-1-0-1.ep.${Z}. 30 IN A 10.1.0.1`,
    `fd00-0000-0000-0000-0000-0000-0000-0007.ep.${Z}. 30 IN AAAA fd00::7`,
    `com.alipay.userservice.useradmin.${Z}. 30 IN A 240.240.0.3`,
    `com.alipay.userservice.useradmin.${Z}. 30 IN TXT "interface=com.alipay.userservice.UserAdmin" "application=userservice" "service=userservice.${Z}" "port=20880" "methods=ban"`,
    `_dubbo._tcp.com.alipay.userservice.useradmin.${Z}. 30 IN SRV 0 100 20880 10-0-0-1.ep.${Z}.`,
    `_dubbo._tcp.com.alipay.userservice.useradmin.${Z}. 30 IN SRV 0 100 20880 fd00-0000-0000-0000-0000-0000-0000-0007.ep.${Z}.`,
    `com.alipay.userservice.userquery.${Z}. 30 IN A 240.240.0.2`,
    `com.alipay.userservice.userquery.${Z}. 30 IN TXT "interface=com.alipay.userservice.UserQuery" "version=1.0.0" "group=blue" "application=userservice" "service=userservice.${Z}" "port=20880" "methods=getUser,listUsers"`,
    `_dubbo._tcp.com.alipay.userservice.userquery.${Z}. 30 IN SRV 0 100 20880 10-0-0-1.ep.${Z}.`,
    `_dubbo._tcp.com.alipay.userservice.userquery.${Z}. 30 IN SRV 0 100 20880 fd00-0000-0000-0000-0000-0000-0000-0007.ep.${Z}.`,
    `_dubbo._tcp.com.alipay.userservice.userquery.${Z}. 30 IN SRV 0 50 20881 10-0-0-2.ep.${Z}.`,
    `userservice.${Z}. 30 IN A 240.240.0.1`,
    `_dubbo._tcp.userservice.${Z}. 30 IN SRV 0 100 20880 10-0-0-1.ep.${Z}.`,
    `_dubbo._tcp.userservice.${Z}. 30 IN SRV 0 100 20880 fd00-0000-0000-0000-0000-0000-0000-0007.ep.${Z}.`,
    `_dubbo._tcp.userservice.${Z}. 30 IN SRV 0 50 20881 10-0-0-2.ep.${Z}.`,
    // web.example.com is outside the zone; its alias inside gets the service's own addresses (not the /24).
    `web.${Z}. 30 IN A 10.96.0.10`,
    `web.${Z}. 30 IN AAAA fd00::10`,
    `_http._tcp.web.${Z}. 30 IN SRV 0 100 8080 10-1-0-1.ep.${Z}.`,
  ]);
});

test('the same model and VIPs always give the same records', () => {
  const vips = new Map([[`userservice.${Z}`, '240.240.0.1']]);
  assert.deepEqual(desiredRecords(soaModel(), vips, opts), desiredRecords(soaModel(), vips, opts));
});

test('names without a VIP, at the apex, under the instance subtree or claimed twice are reported, not served', () => {
  const m = modelOf([
    svc(`a.${Z}`, { interfaces: [iface('x.A', `b.${Z}`)] }),
    svc(`b.${Z}`),
    svc(Z),
    svc(`1-2-3-4.ep.${Z}`),
  ]);
  const { records, problems } = desiredRecords(m, new Map([[`b.${Z}`, '240.240.0.9']]), opts);
  assert.deepEqual(problems.map((p) => `${p.name}: ${p.reason}`), [
    `1-2-3-4.ep.${Z}: service 1-2-3-4.ep.${Z}: names under ep.${Z} are reserved for instance names`,
    `a.${Z}: service a.${Z}: no VIP allocated`,
    `b.${Z}: interface x.A: the name already belongs to service b.${Z}`,
    `${Z}: service ${Z}: the zone apex holds only SOA and NS records`,
  ]);
  assert.deepEqual(records.filter((r) => r.type === 'A').map(recordText), [`b.${Z}. 30 IN A 240.240.0.9`]);
});

test('long TXT values are split over several strings of at most 255 octets', () => {
  const methods = Array.from({ length: 60 }, (_, i) => `method${i}WithALongName`);
  const m = modelOf([svc(`app.${Z}`, { interfaces: [iface('com.x.Big', `com.x.big.${Z}`, { methods })] })]);
  const txt = desiredRecords(m, new Map(), opts).records.find((r) => r.type === 'TXT');
  assert.ok(txt && txt.type === 'TXT');
  const parts = txt.text.filter((t) => t.startsWith('methods='));
  assert.ok(parts.length > 1);
  for (const t of txt.text) assert.ok(Buffer.byteLength(t) <= 255, t);
  assert.equal(parts.map((p) => p.slice('methods='.length)).join(''), methods.join(','));
});

test('instance names: dashed IPv4, expanded IPv6, none for hostnames', () => {
  assert.equal(instanceName('10.1.2.3', Z), `10-1-2-3.ep.${Z}`);
  assert.equal(instanceName('::1', Z), `0000-0000-0000-0000-0000-0000-0000-0001.ep.${Z}`);
  assert.equal(instanceName('db.example.com', Z), undefined);
  const m = modelOf([svc(`ext.${Z}`, { resolution: 'DNS', addresses: ['10.9.9.9'] })], [ep(`ext.${Z}`, 'db.example.com', { ports: { dubbo: 5432 } })]);
  const srv = desiredRecords(m, new Map(), opts).records.filter((r) => r.type === 'SRV').map(recordText);
  assert.deepEqual(srv, [`_dubbo._tcp.ext.${Z}. 30 IN SRV 0 100 5432 db.example.com.`]);
});

test('an SOA registry model (providers → model) yields records for every interface', () => {
  const providers = [
    'dubbo://10.0.0.1:20880/com.alipay.userservice.UserQuery?application=userservice&methods=getUser,listUsers&version=1.0.0',
    'dubbo://10.0.0.2:20880/com.alipay.userservice.UserQuery?application=userservice&methods=getUser,listUsers&version=1.0.0',
    'dubbo://10.0.0.1:20880/com.alipay.userservice.Admin?application=userservice&methods=ban',
  ].map((u, i) => parseProviderUrl(u, `/dubbo/k${i}`));
  const mapped = mapProviders(providers, { registry: 'etcd://x/dubbo' });
  const m = modelOf(mapped.services, mapped.endpoints);
  const names = vipNames(m);
  assert.deepEqual(names, [`com.alipay.userservice.admin.${Z}`, `com.alipay.userservice.userquery.v1-0-0.${Z}`, `userservice.${Z}`]);
  const vips = new Map(names.map((n, i) => [n, `240.240.0.${i + 1}`]));
  const { records, problems } = desiredRecords(m, vips, opts);
  assert.deepEqual(problems, []);
  const srv = records.filter((r) => r.name === `_dubbo._tcp.com.alipay.userservice.userquery.v1-0-0.${Z}`).map(recordText);
  assert.deepEqual(srv, [`_dubbo._tcp.com.alipay.userservice.userquery.v1-0-0.${Z}. 30 IN SRV 0 100 20880 10-0-0-1.ep.${Z}.`, `_dubbo._tcp.com.alipay.userservice.userquery.v1-0-0.${Z}. 30 IN SRV 0 100 20880 10-0-0-2.ep.${Z}.`]);
});

test('sorting with precomputed keys agrees with the canonical comparison', () => {
  const names = ['a', 'b.a', 'a.b', 'ab', 'a-b', '_x._tcp.a', 'z.a.b', '0.a'].map((n) => `${n}.${Z}`);
  const recs = names.flatMap((name, i) => [
    { name, ttl: 30, type: 'A' as const, address: `10.0.0.${i}` },
    { name, ttl: 30, type: 'TXT' as const, text: [`i=${i}`] },
  ]);
  const shuffled = [...recs].sort(() => Math.random() - 0.5);
  assert.deepEqual(sortRecords(shuffled), [...recs].sort(compareRecords));
});
