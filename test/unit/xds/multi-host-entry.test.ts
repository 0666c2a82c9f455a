// A ServiceEntry with several hosts is, as in Istio, one service per host: each its own
// clusters and its own DestinationRule, sharing the entry's ports, addresses and endpoints.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stringify } from 'yaml';
import { mergeStates } from '../../../src/model/aggregate.ts';
import { parseManifests } from '../../../src/registries/file/index.ts';
import { decodeToJson } from '../../../src/xds/proto.ts';
import { XdsCache } from '../../../src/xds/cache.ts';
import { proxy } from './fixtures.ts';

const docs = [
  {
    apiVersion: 'networking.istio.io/v1',
    kind: 'ServiceEntry',
    metadata: { name: 'payments', namespace: 'shop' },
    spec: {
      hosts: ['pay.shop.local', 'refund.shop.local'],
      addresses: ['240.240.0.20'],
      location: 'MESH_INTERNAL',
      resolution: 'STATIC',
      ports: [{ number: 8080, name: 'http', protocol: 'HTTP' }],
      endpoints: [
        { address: '10.0.0.1', labels: { version: 'v1' } },
        { address: '10.0.0.2', labels: { version: 'v2' } },
      ],
    },
  },
  {
    apiVersion: 'networking.istio.io/v1',
    kind: 'DestinationRule',
    metadata: { name: 'refund', namespace: 'shop' },
    spec: { host: 'refund.shop.local', trafficPolicy: { loadBalancer: { simple: 'RANDOM' } }, subsets: [{ name: 'v2', labels: { version: 'v2' } }] },
  },
];

test('each host of a ServiceEntry has its own clusters and its own DestinationRule; shared addresses are not a conflict', () => {
  const parsed = parseManifests(docs.map((d) => stringify(d)).join('---\n'), 'payments.yaml');
  const services = parsed.documents.flatMap((d) => (d.ok ? d.services : []));
  const endpoints = parsed.documents.flatMap((d) => (d.ok ? d.endpoints : []));
  const destinationRules = parsed.documents.flatMap((d) => (d.ok ? d.destinationRules : []));
  const model = mergeStates([{ id: 'file://test', synced: true, services, endpoints, workloads: [], rejections: [], destinationRules }]);
  assert.deepEqual(model.ruleRejections, [], 'a DestinationRule for the second host is not "one per host" any more');
  assert.deepEqual([...model.services.keys()].sort(), ['pay.shop.local', 'refund.shop.local']);
  const g = new XdsCache().update(model);
  const cluster = (name: string): Record<string, unknown> => {
    const r = g.clusters.get(name);
    assert.ok(r, `cluster ${name}`);
    return decodeToJson('envoy.config.cluster.v3.Cluster', Buffer.from((decodeToJson('google.protobuf.Any', r.any) as { value: string }).value, 'base64'));
  };
  assert.equal(cluster('outbound|8080||refund.shop.local').lb_policy, 'RANDOM');
  assert.equal(cluster('outbound|8080||pay.shop.local').lb_policy ?? 'ROUND_ROBIN', 'ROUND_ROBIN', 'the rule for refund does not touch pay');
  cluster('outbound|8080|v2|refund.shop.local');
  assert.equal(g.clusters.has('outbound|8080|v2|pay.shop.local'), false);
  const transparent = proxy('t', { ISTHMUS_MODE: 'transparent' });
  g.view(transparent);
  g.view(proxy('e'));
  assert.deepEqual(g.problems, [], 'the two hosts share 240.240.0.20:8080 by design');
  const table = decodeToJson('envoy.config.route.v3.RouteConfiguration', Buffer.from((decodeToJson('google.protobuf.Any', g.outboundRoute.any) as { value: string }).value, 'base64')) as {
    virtual_hosts: { name: string; domains: string[] }[];
  };
  assert.deepEqual(table.virtual_hosts.map((v) => v.name).sort(), ['pay.shop.local:8080', 'refund.shop.local:8080']);
});
