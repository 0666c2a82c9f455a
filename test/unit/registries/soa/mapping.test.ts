import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type MappedProviders, mapProviders, SoaMapper } from '../../../../src/registries/soa/mapping.ts';
import { buildProviderUrl, parseProviderKey, type Provider, providerKey, type ProviderSpec } from '../../../../src/registries/soa/provider.ts';

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

test('an interface in two applications resolves to the providers of both; each application keeps its own name; a warning says so', () => {
  const m = mapProviders(
    providers([
      { address: '10.0.0.1', port: 20880, interface: 'com.a.Shared', application: 'x', methods: ['get'] },
      { address: '10.0.0.1', port: 20880, interface: 'com.a.OnlyX', application: 'x' },
      { address: '10.0.0.2', port: 20881, interface: 'com.a.Shared', application: 'y', methods: ['get', 'put'] },
    ]),
    opts,
  );
  assert.deepEqual(m.rejections, []);
  assert.deepEqual(m.services.map((s) => [s.hostname, s.interfaces.map((i) => i.name)]), [
    ['x.rpc.cluster.local', ['com.a.OnlyX']],
    ['y.rpc.cluster.local', []],
    ['com.a.shared.rpc.cluster.local', []],
  ]);
  const shared = m.services[2]!;
  assert.deepEqual(shared.ports, [{ name: 'dubbo', number: 20880, protocol: 'TCP' }]);
  assert.match(shared.origin.ref ?? '', /interface com\.a\.Shared \(get,put\) of applications x, y/);
  assert.deepEqual(
    m.endpoints.filter((e) => e.service === shared.hostname).map((e) => [e.address, e.ports, e.labels.app]),
    [['10.0.0.1', { dubbo: 20880 }, 'x'], ['10.0.0.2', { dubbo: 20881 }, 'y']],
  );
  // The applications' own endpoints stay, without the shared name.
  assert.deepEqual(m.endpoints.filter((e) => e.service === 'x.rpc.cluster.local').map((e) => e.interfaces), [['com.a.onlyx.rpc.cluster.local']]);
  assert.equal(m.warnings.length, 1);
  assert.match(m.warnings[0]!.reason, /interface com\.a\.Shared is provided by applications x, y; com\.a\.shared\.rpc\.cluster\.local resolves to the providers of all of them/);
});

test('the same interface name in two applications with different versions is two names, one each', () => {
  const m = mapProviders(
    providers([
      { address: '10.0.0.1', port: 1, interface: 'com.a.S', application: 'x', version: '1' },
      { address: '10.0.0.2', port: 1, interface: 'com.a.S', application: 'y', version: '2' },
    ]),
    opts,
  );
  assert.deepEqual(m.warnings, []);
  assert.deepEqual(m.services.map((s) => s.interfaces.map((i) => i.hostname)), [['com.a.s.v1.rpc.cluster.local'], ['com.a.s.v2.rpc.cluster.local']]);
});

test('labels that differ per interface on one instance are kept under each interface', () => {
  const m = mapProviders(
    providers([
      { address: '10.0.0.1', port: 20880, interface: 'com.a.Q', application: 'u', version: '1.0.0', params: { revision: '1.2', region: 'r1' } },
      { address: '10.0.0.1', port: 20880, interface: 'com.a.W', application: 'u', params: { revision: '3.0', region: 'r1' } },
    ]),
    opts,
  );
  const [e] = m.endpoints;
  assert.deepEqual(e!.labels, { app: 'u', application: 'u', region: 'r1' });
  assert.deepEqual(e!.interfaceLabels, {
    'com.a.q.v1-0-0.rpc.cluster.local': { revision: '1.2', version: '1.0.0' },
    'com.a.w.rpc.cluster.local': { revision: '3.0' },
  });
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

// A registry keeps one SoaMapper: each call must equal a mapping from scratch, and what an
// edit did not touch keeps its objects (the model downstream reuses them by identity).
test('a SoaMapper re-maps only the applications a change touches, and equals a mapping from scratch', () => {
  const mapper = new SoaMapper(opts);
  const check = (ps: Provider[]): MappedProviders => {
    const m = mapper.map(ps);
    assert.deepEqual(m, mapProviders(ps, opts));
    return m;
  };
  const ps = providers([
    { address: '10.0.0.1', port: 20880, interface: 'com.a.UserQuery', application: 'user' },
    { address: '10.0.0.2', port: 20880, interface: 'com.a.UserQuery', application: 'user' },
    { address: '10.0.1.1', port: 20880, interface: 'com.a.Order', application: 'order' },
  ]);
  const m0 = check(ps);
  // Same providers in a new array: the same arrays out.
  const m1 = check([...ps].reverse());
  assert.equal(m1.services, m0.services);
  assert.equal(m1.endpoints, m0.endpoints);
  // One instance's weight: a new endpoint object for it; the services are the same objects.
  const heavier = [...ps];
  heavier[1] = { ...ps[1]!, weight: 300 };
  const m2 = check(heavier);
  assert.equal(m2.services, m0.services);
  const byAddress = (m: MappedProviders, a: string) => m.endpoints.find((e) => e.address === a)!;
  assert.notEqual(byAddress(m2, '10.0.0.2'), byAddress(m0, '10.0.0.2'));
  assert.equal(byAddress(m2, '10.0.0.2').weight, 3);
  assert.equal(byAddress(m2, '10.0.0.1'), byAddress(m0, '10.0.0.1'));
  assert.equal(byAddress(m2, '10.0.1.1'), byAddress(m0, '10.0.1.1'));
  // Another application claiming order's interface: order's unchanged providers lose the name.
  const [rival] = providers([{ address: '10.0.2.1', port: 20880, interface: 'com.a.Order', application: 'rival' }]);
  const m3 = check([...heavier, rival!]);
  assert.deepEqual(m3.services.find((s) => s.hostname === 'order.rpc.cluster.local')!.interfaces, []);
  assert.deepEqual(m3.endpoints.filter((e) => e.service === 'com.a.order.rpc.cluster.local').map((e) => e.labels.app), ['order', 'rival']);
  assert.equal(m3.warnings.length, 1);
  // The rival gone: the name is order's again.
  const m4 = check(heavier);
  assert.deepEqual(m4.services.find((s) => s.hostname === 'order.rpc.cluster.local')!.interfaces.map((i) => i.name), ['com.a.Order']);
  assert.deepEqual(m4.rejections, []);
  assert.deepEqual(m4.warnings, []);
  // A provider gone, then the application gone.
  check(heavier.slice(1));
  assert.deepEqual(check(heavier.slice(2)).services.map((s) => s.hostname), ['order.rpc.cluster.local']);
});

test('a SoaMapper over random edits (collisions, bad names, several protocols) equals mappings from scratch', () => {
  let seed = 7;
  const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
  const ifaces = ['com.a.Foo_Bar', 'com.a.Foo$Bar', 'com.a.Ok', 'com.a.Shared', 'app1'];
  const apps = ['app1', 'app2', 'x', '---'];
  const one = (): Provider => {
    const [p] = providers([{ protocol: ['dubbo', 'tri'][rnd(2)]!, address: `10.0.0.${rnd(4)}`, port: [20880, 50051][rnd(2)]!, interface: ifaces[rnd(ifaces.length)]!, application: apps[rnd(apps.length)]!, ...(rnd(3) ? {} : { version: `1.${rnd(2)}` }), weight: [100, 50][rnd(2)]!, params: { release: `${rnd(2)}` } }]);
    return { ...p!, key: `${p!.key}#${rnd(1000)}` };
  };
  for (let run = 0; run < 40; run++) {
    const mapper = new SoaMapper(opts);
    let ps = Array.from({ length: 1 + rnd(8) }, one);
    for (let step = 0; step < 15; step++) {
      assert.deepEqual(mapper.map(ps), mapProviders(ps, opts));
      ps = [...ps];
      const k = rnd(4);
      if (k === 0) ps.push(one());
      else if (k === 1 && ps.length > 1) ps.splice(rnd(ps.length), 1);
      else if (k === 2) {
        const i = rnd(ps.length);
        ps[i] = { ...ps[i]!, weight: 10 * rnd(20) };
      }
      else ps.reverse();
    }
  }
});
