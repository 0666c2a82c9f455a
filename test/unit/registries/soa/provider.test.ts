import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildProviderUrl, parseProviderKey, parseProviderUrl, providerKey, ProviderError } from '../../../../src/registries/soa/provider.ts';

const URL1 =
  'dubbo://10.0.0.5:20880/com.alipay.userservice.UserQuery?application=userservice&interface=com.alipay.userservice.UserQuery&methods=get,list&version=1.0.0&side=provider&weight=100&timestamp=1700000000000&dubbo=2.0.2&idc=hz1';

test('parses the provider URL a Dubbo application registers', () => {
  const p = parseProviderKey(`/dubbo/com.alipay.userservice.UserQuery/providers/${encodeURIComponent(URL1)}`, '/dubbo')!;
  assert.equal(p.protocol, 'dubbo');
  assert.equal(p.address, '10.0.0.5');
  assert.equal(p.port, 20880);
  assert.equal(p.interface, 'com.alipay.userservice.UserQuery');
  assert.equal(p.application, 'userservice');
  assert.deepEqual(p.methods, ['get', 'list']);
  assert.equal(p.version, '1.0.0');
  assert.equal(p.group, undefined);
  assert.equal(p.weight, 100);
  assert.deepEqual(p.params, { application: 'userservice', version: '1.0.0', idc: 'hz1' });
});

test('consumers, configurators and category nodes are not providers', () => {
  for (const k of ['/dubbo/com.x.Y', '/dubbo/com.x.Y/providers', '/dubbo/metadata/com.x.Y/1.0/provider/app', `/dubbo/com.x.Y/consumers/${encodeURIComponent('consumer://1.2.3.4/com.x.Y')}`, '/other/x']) {
    assert.equal(parseProviderKey(k, '/dubbo'), undefined, k);
  }
});

test('malformed keys and URLs name the field that is wrong', () => {
  const cases: [string, string, RegExp][] = [
    ['/dubbo/com.x.Y/providers/%E0%A4%A', 'key', /percent-encoding/],
    ['/dubbo/a/providers/c/d', 'key', /expected \/dubbo\/<interface>\/providers/],
    [`/dubbo/com.x.Y/providers/${encodeURIComponent('dubbo://host.example:1/com.x.Y?application=a')}`, 'address', /not an IP/],
    [`/dubbo/com.x.Y/providers/${encodeURIComponent('dubbo://1.2.3.4:99999/com.x.Y?application=a')}`, 'port', /outside 1-65535/],
    [`/dubbo/com.x.Y/providers/${encodeURIComponent('dubbo://1.2.3.4:1/com.x.Y')}`, 'application', /missing application/],
    [`/dubbo/com.x.Y/providers/${encodeURIComponent('dubbo://1.2.3.4:1/com.x.Z?application=a')}`, 'interface', /registered under "com.x.Y"/],
    [`/dubbo/com.x.Y/providers/${encodeURIComponent('dubbo://1.2.3.4:1/com.x.Y?application=a&weight=heavy')}`, 'weight', /not a whole number/],
    [`/dubbo/com.x.Y/providers/${encodeURIComponent(`dubbo://1.2.3.4:1/com.x.Y?application=a&x=${'v'.repeat(2000)}`)}`, 'x', /over the 1024 limit/],
    [`/dubbo/com.x.Y/providers/${'a'.repeat(9000)}`, 'key', /over the 8192-byte limit/],
    [`/dubbo/com.x.Y/providers/${encodeURIComponent('not a url')}`, 'url', /not a provider URL/],
  ];
  for (const [key, field, re] of cases) {
    assert.throws(
      () => parseProviderKey(key, '/dubbo'),
      (e: Error) => e instanceof ProviderError && e.field === field && re.test(e.message),
      `${key.slice(0, 80)} → ${field}`,
    );
  }
});

test('a built provider URL round-trips through the parser, IPv6 included', () => {
  for (const address of ['10.1.2.3', 'fd00::5']) {
    const url = buildProviderUrl({ address, port: 20880, interface: 'com.x.Y', application: 'app', methods: ['a', 'b'], version: '2', group: 'g' }, 1);
    const key = providerKey('/dubbo/', 'com.x.Y', url);
    assert.ok(key.startsWith('/dubbo/com.x.Y/providers/dubbo%3A%2F%2F'), key);
    const p = parseProviderKey(key, '/dubbo')!;
    assert.deepEqual([p.address, p.port, p.interface, p.application, p.methods, p.version, p.group], [address, 20880, 'com.x.Y', 'app', ['a', 'b'], '2', 'g']);
  }
  assert.equal(parseProviderUrl(URL1).address, '10.0.0.5');
});
