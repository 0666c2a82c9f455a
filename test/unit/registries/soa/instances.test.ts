// Application-level instance documents and their providers, without a registry.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { instanceProviders, parseDefinition, parseInstance, parseMapping, parseRevision } from '../../../../src/registries/soa/instances.ts';
import { ProviderError } from '../../../../src/registries/soa/provider.ts';

const CURATOR = JSON.stringify({
  name: 'orders',
  id: '10.0.0.5:20880',
  address: '10.0.0.5',
  port: 20880,
  payload: { '@class': 'org.apache.dubbo.registry.zookeeper.ZookeeperInstance', metadata: { 'dubbo.endpoints': '[{"port":20880,"protocol":"dubbo"},{"port":50051,"protocol":"tri"}]', 'dubbo.metadata.revision': 'r1', 'dubbo.metadata.storage-type': 'local', 'meta-v': '1.0.0', zone: 'z1' } },
});
// What Dubbo's etcd ServiceDiscovery writes (Gson of DefaultServiceInstance).
const GSON = JSON.stringify({ serviceName: 'orders', host: '10.0.0.6', port: 20880, enabled: true, healthy: false, metadata: { 'dubbo.metadata.revision': 'r2', 'dubbo.metadata.storage-type': 'remote' } });

test('instance documents in both shapes: Curator (ZooKeeper) and Dubbo\'s own (etcd)', () => {
  const a = parseInstance('/services/orders/10.0.0.5:20880', 'orders', CURATOR);
  assert.deepEqual(a, { key: '/services/orders/10.0.0.5:20880', application: 'orders', address: '10.0.0.5', endpoints: [{ protocol: 'dubbo', port: 20880 }, { protocol: 'tri', port: 50051 }], revision: 'r1', storage: 'local', labels: { zone: 'z1' }, healthy: true });
  const b = parseInstance('/services/orders/10.0.0.6:20880', 'orders', GSON);
  assert.deepEqual([b.address, b.endpoints, b.storage, b.healthy], ['10.0.0.6', [{ protocol: 'dubbo', port: 20880 }], 'remote', false]);
  const bad: [string, string, RegExp][] = [
    [JSON.stringify({ name: 'other', address: '10.0.0.5', port: 1 }), 'name', /names application "other" but is registered under "orders"/],
    [JSON.stringify({ serviceName: 'orders', host: 'db.local', port: 1 }), 'host', /instance address "db.local" is not an IP address/],
    [JSON.stringify({ address: '10.0.0.5', port: 70000 }), 'port', /port 70000 is not a port/],
    ['[1]', 'instance', /not a JSON object/],
  ];
  for (const [doc, field, re] of bad) assert.throws(() => parseInstance('k', 'orders', doc), (e: Error) => e instanceof ProviderError && e.field === field && re.test(e.message), doc);
});

test('providers of an instance: from the revision document when remote, else the mapping and definitions; a registered-both-ways instance is skipped', () => {
  const local = parseInstance('/services/orders/10.0.0.5:20880', 'orders', CURATOR);
  const remote = parseInstance('/services/orders/10.0.0.6:20880', 'orders', GSON);
  const def = parseDefinition('com.a.Q', JSON.stringify({ canonicalName: 'com.a.Q', methods: [{ name: 'get' }, { name: 'list' }], parameters: { version: '1.0.0', side: 'provider', revision: '2.1' } }));
  const rev = parseRevision('orders', 'r2', JSON.stringify({ app: 'orders', revision: 'r2', services: { 'com.a.Q:1.0.0:tri': { name: 'com.a.Q', version: '1.0.0', protocol: 'tri', port: 50052, params: { methods: 'get' } } } }));
  const out = instanceProviders({
    instances: [local, remote],
    mapping: new Map([['com.a.Q', parseMapping('orders, orders ,')]]),
    definitions: new Map([['orders\u0000com.a.Q', [def]]]),
    revisions: new Map([['orders/r2', rev]]),
    interfaceLevel: [],
    metadataRoot: '/dubbo/metadata',
  });
  assert.deepEqual(out.warnings, []);
  assert.deepEqual(
    out.providers.map((p) => [p.address, p.protocol, p.port, p.interface, p.version, p.methods.join(','), p.enabled, p.params.revision]),
    [
      ['10.0.0.5', 'dubbo', 20880, 'com.a.Q', '1.0.0', 'get,list', true, '2.1'],
      ['10.0.0.5', 'tri', 50051, 'com.a.Q', '1.0.0', 'get,list', true, '2.1'],
      ['10.0.0.6', 'tri', 50052, 'com.a.Q', '1.0.0', 'get', false, undefined],
    ],
  );
  // The same instance registered at interface level too: those providers alone describe it.
  const both = instanceProviders({ instances: [local], mapping: new Map([['com.a.Q', ['orders']]]), definitions: new Map(), revisions: new Map(), metadataRoot: '/dubbo/metadata', interfaceLevel: [{ key: 'k', protocol: 'dubbo', address: '10.0.0.5', port: 20880, interface: 'com.a.Q', application: 'orders', methods: [], weight: 100, enabled: true, params: {} }] });
  assert.deepEqual(both.providers, []);
});

test('malformed definitions and revision documents name what is wrong', () => {
  const bad: [() => unknown, string, RegExp][] = [
    [() => parseDefinition('com.a.Q', '{"canonicalName":"com.a.Other"}'), 'canonicalName', /definition names interface "com\.a\.Other" but is stored under "com\.a\.Q"/],
    [() => parseDefinition('com.a.Q', 'nope'), 'definition', /definition is not JSON/],
    [() => parseRevision('orders', 'r1', '{"app":"billing","services":{}}'), 'app', /revision document names application "billing", stored under "orders"/],
    [() => parseRevision('orders', 'r1', '{"app":"orders"}'), 'services', /revision document has no services map/],
    [() => parseRevision('orders', 'r1', '{"services":{"x":{"name":"com.a.Q","port":"99999"}}}'), 'services.x.port', /services\.x\.port "99999" is not a port/],
    [() => parseInstance('k', 'orders', JSON.stringify({ address: '10.0.0.5', port: 1, payload: { metadata: { 'dubbo.endpoints': '[{"protocol":"Dubbo!","port":1}]' } } })), 'payload.metadata.dubbo.endpoints[0].protocol', /protocol "Dubbo!" is not a URL scheme/],
    [() => parseInstance('k', 'orders', 'x'.repeat((1 << 20) + 1)), 'instance', /over the 1048576-byte limit/],
  ];
  for (const [fn, field, re] of bad) assert.throws(fn, (e: Error) => e instanceof ProviderError && e.field === field && re.test(e.message), String(re));
});

test('the same instance with the same interfaces gives the same provider objects; a changed definition new ones', () => {
  const inst = parseInstance('/services/orders/10.0.0.5:20880', 'orders', CURATOR);
  const input = (methods: string) => ({
    instances: [inst],
    mapping: new Map([['com.a.Q', ['orders']]]),
    definitions: new Map([['orders\u0000com.a.Q', [parseDefinition('com.a.Q', JSON.stringify({ canonicalName: 'com.a.Q', parameters: { methods } }))]]]),
    revisions: new Map(),
    interfaceLevel: [],
    metadataRoot: '/dubbo/metadata',
  });
  const a = instanceProviders(input('get'));
  const b = instanceProviders(input('get'));
  assert.equal(a.providers.length, 2);
  a.providers.forEach((p, i) => assert.equal(b.providers[i], p));
  const c = instanceProviders(input('get,put'));
  assert.notEqual(c.providers[0], a.providers[0]);
  assert.deepEqual(c.providers[0]!.methods, ['get', 'put']);
});

test('no mapping (Dubbo on etcd): an instance serves the interfaces its application registers at interface level, on the protocols it has; none known → its application name only', () => {
  // What Dubbo 3.2 writes to etcd (metadata kept in the application: storage-type local).
  const inst = parseInstance('/services/orders/10.0.0.7:20880', 'orders', JSON.stringify({ serviceName: 'orders', host: '10.0.0.7', port: 20880, enabled: true, healthy: true, metadata: { 'dubbo.endpoints': '[{"port":20880,"protocol":"dubbo"}]', 'dubbo.metadata.revision': 'r3' } }));
  const sibling = (iface: string, protocol: string, version?: string) => ({ key: `/dubbo/${iface}/providers/x`, protocol, address: '10.0.0.5', port: 20880, interface: iface, application: 'orders', methods: ['get'], weight: 100, enabled: true, params: { timestamp: '1', zone: 'z9' }, ...(version ? { version } : {}) });
  const input = { instances: [inst], mapping: new Map(), definitions: new Map(), revisions: new Map(), metadataRoot: '/dubbo/metadata' };
  const out = instanceProviders({ ...input, interfaceLevel: [sibling('com.a.Q', 'dubbo', '2'), sibling('com.a.Q', 'dubbo', '2'), sibling('com.a.P', 'dubbo'), sibling('com.a.R', 'tri'), { ...sibling('com.b.S', 'dubbo'), application: 'billing' }] });
  assert.deepEqual(
    out.providers.map((p) => [p.address, p.protocol, p.port, p.interface, p.version, p.methods.join(','), p.params.zone]),
    [
      ['10.0.0.7', 'dubbo', 20880, 'com.a.P', undefined, 'get', undefined],
      ['10.0.0.7', 'dubbo', 20880, 'com.a.Q', '2', 'get', undefined],
    ],
  );
  assert.deepEqual(out.warnings.map((w) => w.reason), ["no interface of application orders is in the mapping: its interfaces (com.a.P, com.a.Q) are taken from the application's interface-level providers"]);
  const alone = instanceProviders({ ...input, interfaceLevel: [] });
  assert.deepEqual(alone.providers.map((p) => [p.address, p.interface, p.instanceOnly]), [['10.0.0.7', '', true]]);
  assert.match(alone.warnings[0]!.reason, /no interface of application orders is known .*served under the application name only/);
});
