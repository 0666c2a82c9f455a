import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mapProviders } from '../../../../src/registries/soa/mapping.ts';
import { buildProviderUrl, parseProviderKey, providerKey, type ProviderSpec } from '../../../../src/registries/soa/provider.ts';

function providers(specs: ProviderSpec[]) {
  return specs.map((s) => parseProviderKey(providerKey('/dubbo', s.interface, buildProviderUrl(s, 1)), '/dubbo')!);
}
const opts = { registry: 'etcd://test/dubbo' };

test('one application, many interfaces: one service, each interface a name with its own providers', () => {
  const m = mapProviders(
    providers([
      { address: '10.0.0.1', port: 20880, interface: 'com.a.UserQuery', application: 'user', methods: ['get'], version: '1.0.0' },
      { address: '10.0.0.1', port: 20880, interface: 'com.a.UserWrite', application: 'user', methods: ['put'] },
      { address: '10.0.0.2', port: 20880, interface: 'com.a.UserQuery', application: 'user', methods: ['get', 'list'], version: '2.0.0' },
    ]),
    opts,
  );
  assert.deepEqual(m.rejections, []);
  assert.equal(m.services.length, 1);
  const svc = m.services[0]!;
  assert.equal(svc.hostname, 'user.rpc.cluster.local');
  assert.deepEqual(svc.ports, [{ name: 'dubbo', number: 20880, protocol: 'TCP' }]);
  assert.deepEqual(svc.workloadSelector, { app: 'user' });
  assert.deepEqual(
    svc.interfaces.map((i) => [i.hostname, i.name, i.version, i.methods]),
    [
      ['com.a.userquery.v1-0-0.rpc.cluster.local', 'com.a.UserQuery', '1.0.0', ['get']],
      ['com.a.userquery.v2-0-0.rpc.cluster.local', 'com.a.UserQuery', '2.0.0', ['get', 'list']],
      ['com.a.userwrite.rpc.cluster.local', 'com.a.UserWrite', undefined, ['put']],
    ],
  );
  assert.deepEqual(
    m.endpoints.map((e) => [e.address, e.ports, e.interfaces]),
    [
      ['10.0.0.1', { dubbo: 20880 }, ['com.a.userquery.v1-0-0.rpc.cluster.local', 'com.a.userwrite.rpc.cluster.local']],
      ['10.0.0.2', { dubbo: 20880 }, ['com.a.userquery.v2-0-0.rpc.cluster.local']],
    ],
  );
});

test('interfaces that collide on one name are both reported and neither served', () => {
  const m = mapProviders(
    providers([
      { address: '10.0.0.1', port: 1, interface: 'com.a.Foo_Bar', application: 'x' },
      { address: '10.0.0.2', port: 1, interface: 'com.a.Foo$Bar', application: 'y' },
      { address: '10.0.0.3', port: 1, interface: 'com.a.Ok', application: 'y' },
    ]),
    opts,
  );
  assert.equal(m.rejections.length, 2);
  assert.ok(m.rejections.every((r) => /com\.a\.foo-bar\.rpc\.cluster\.local is also claimed by/.test(r.reason)), JSON.stringify(m.rejections));
  assert.deepEqual(m.services.flatMap((s) => s.interfaces.map((i) => i.name)), ['com.a.Ok']);
});

test('the same interface in two applications is a conflict, not a merge', () => {
  const m = mapProviders(
    providers([
      { address: '10.0.0.1', port: 1, interface: 'com.a.Shared', application: 'x' },
      { address: '10.0.0.2', port: 1, interface: 'com.a.Shared', application: 'y' },
    ]),
    opts,
  );
  assert.equal(m.rejections.length, 2);
  assert.deepEqual(m.services.map((s) => [s.hostname, s.interfaces.length]), [['x.rpc.cluster.local', 0], ['y.rpc.cluster.local', 0]]);
});

test('protocols map to ports: tri is gRPC, two protocols on one port are refused', () => {
  const m = mapProviders(
    providers([
      { protocol: 'tri', address: '10.0.0.1', port: 50051, interface: 'com.a.G', application: 'g' },
      { protocol: 'dubbo', address: '10.0.0.1', port: 50051, interface: 'com.a.H', application: 'g' },
    ]),
    opts,
  );
  assert.deepEqual(m.services[0]!.ports, [{ name: 'dubbo', number: 50051, protocol: 'TCP' }]);
  assert.match(m.rejections[0]!.reason, /serves dubbo and tri on port 50051/);
});
