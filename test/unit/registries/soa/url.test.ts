import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSoaUrl, SoaUrlError } from '../../../../src/registries/soa/url.ts';

test('registry URLs: hosts, root, namespace, canonical id', () => {
  assert.deepEqual(parseSoaUrl('etcd://10.0.0.1:2379,10.0.0.2:2379/dubbo'), {
    scheme: 'etcd',
    hosts: ['10.0.0.1:2379', '10.0.0.2:2379'],
    root: '/dubbo',
    namespace: 'default',
    services: '/services',
    id: 'etcd://10.0.0.1:2379,10.0.0.2:2379/dubbo',
  });
  const zk = parseSoaUrl('zk://127.0.0.1/services/?namespace=legacy');
  assert.deepEqual([zk.hosts, zk.root, zk.namespace, zk.id], [['127.0.0.1:2181'], '/services', 'legacy', 'zk://127.0.0.1:2181/services']);
  assert.equal(parseSoaUrl('etcd://localhost:2379').root, '/dubbo');
  assert.equal(parseSoaUrl('zk://h:1/dubbo?services=/dubbo-services/').services, '/dubbo-services');
});

test('bad registry URLs say what is wrong', () => {
  const cases: [string, RegExp][] = [
    ['consul://x', /is not etcd:\/\//],
    ['etcd:///dubbo', /no server address/],
    ['etcd://host:99999/dubbo', /"host:99999" is not HOST:PORT/],
    ['zk://h:1/dubbo?color=red', /unknown parameter "color"/],
    ['zk://h:1/dubbo?namespace=Bad_NS', /not a DNS-1123 label/],
    ['zk://h:1/dubbo?services=relative', /services "relative" is not an absolute clean path/],
  ];
  for (const [raw, re] of cases) assert.throws(() => parseSoaUrl(raw), (e: Error) => e instanceof SoaUrlError && re.test(e.message), raw);
});
