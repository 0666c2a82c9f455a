// The cache follows the model from update to update: an endpoint change costs one service's
// resources, and every generation is what a fresh cache would build from the same model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mergeStates } from '../../../src/model/aggregate.ts';
import type { DestinationRule } from '../../../src/model/rules/types.ts';
import type { ModelSnapshot } from '../../../src/model/snapshot.ts';
import type { Endpoint, Service } from '../../../src/model/types.ts';
import { type Generation, type ResourceMap, XdsCache } from '../../../src/xds/cache.ts';
import { proxyFromNode, type ProxyInfo } from '../../../src/xds/proxy.ts';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE } from '../../../src/xds/resources.ts';
import { doc, drOf, parseOne } from '../model/rules/helpers.ts';
import { endpoint, proxy, service } from './fixtures.ts';

const host = (i: number): string => `s${i}.shop.svc.cluster.local`;

/** A registry's state over time, merged the way the server does: each snapshot from the one before. */
class Fleet {
  services: Service[];
  endpoints: Endpoint[];
  rules: DestinationRule[] = [];
  private last?: ModelSnapshot;

  constructor(n: number) {
    this.services = Array.from({ length: n }, (_, i) => ({ ...service(host(i)), namespace: 'shop' }));
    this.endpoints = this.services.flatMap((s, i) => [0, 1].map((j) => ({ ...endpoint(s.hostname, `10.0.${i}.${j + 1}`), labels: { version: `v${j + 1}` }, locality: { region: j ? 'west' : 'east' } })));
  }

  setAddress(k: number, address: string): void {
    this.endpoints = this.endpoints.slice();
    this.endpoints[k] = { ...this.endpoints[k]!, address };
  }

  snapshot(): ModelSnapshot {
    const state = { id: 'memory://test', synced: true, services: this.services, endpoints: this.endpoints, workloads: [], rejections: [], destinationRules: this.rules };
    this.last = mergeStates([state], this.last);
    return this.last;
  }
}

const listing = (m: ResourceMap): [string, string][] => [...m].map(([n, r]) => [n, r.version]);

/** Versions, names and their order as a cache that never saw an earlier model gives them. */
function assertAsFresh(g: Generation, model: ModelSnapshot, proxies: ProxyInfo[]): void {
  const fresh = new XdsCache().update(model);
  assert.equal(g.endpointsVersion, fresh.endpointsVersion);
  assert.deepEqual(listing(g.endpoints), listing(fresh.endpoints));
  assert.equal(g.endpoints.size, fresh.endpoints.size);
  assert.deepEqual([...g.endpoints.values()], [...g.endpoints.keys()].map((n) => g.endpoints.get(n)));
  const each: string[] = [];
  g.endpoints.forEach((r, n) => each.push(`${n} ${r.version}`));
  assert.deepEqual(each, listing(fresh.endpoints).map(([n, v]) => `${n} ${v}`));
  assert.deepEqual(listing(g.clusters), listing(fresh.clusters));
  for (const p of proxies) {
    assert.deepEqual(g.view(p).versions, fresh.view(p).versions);
    for (const t of [CLUSTER_TYPE, LISTENER_TYPE, ROUTE_TYPE, ENDPOINT_TYPE] as const) assert.deepEqual(listing(g.wildcard(t, p)), listing(fresh.wildcard(t, p)), t);
  }
}

test('an endpoint change rebuilds one service: everything else is the previous generation’s', () => {
  const fleet = new Fleet(30);
  const cache = new XdsCache();
  const p = proxy('p');
  const g1 = cache.update(fleet.snapshot());
  const v1 = g1.view(p);
  fleet.setAddress(2 * 7, '10.9.9.9');
  const g2 = cache.update(fleet.snapshot());
  const changed = 'outbound|8080||s7.shop.svc.cluster.local';
  assert.deepEqual([...g2.changed.get(ENDPOINT_TYPE)!], [changed]);
  assert.equal(g2.changed.get(CLUSTER_TYPE)!.size, 0);
  assert.equal(g2.changed.get(ROUTE_TYPE)!.size, 0);
  assert.equal(g2.clusters, g1.clusters, 'no cluster changed: the same map');
  assert.equal(g2.outboundRoute, g1.outboundRoute);
  for (const [name, r] of g2.endpoints) assert.equal(r === g1.endpoints.get(name), name !== changed, name);
  assert.notEqual(g2.endpoints.get(changed)!.version, g1.endpoints.get(changed)!.version);
  const v2 = g2.view(p);
  assert.notEqual(g2.endpointsVersion, g1.endpointsVersion);
  assert.equal(v2.versions[ENDPOINT_TYPE], g2.endpointsVersion);
  for (const t of [CLUSTER_TYPE, LISTENER_TYPE, ROUTE_TYPE] as const) assert.equal(v2.versions[t], v1.versions[t], t);
  assertAsFresh(g2, fleet.snapshot(), [p]);
});

test('versions depend on content only: an address changed and changed back gives the first version', () => {
  const fleet = new Fleet(10);
  const cache = new XdsCache();
  const first = cache.update(fleet.snapshot()).endpointsVersion;
  fleet.setAddress(3, '10.9.9.9');
  const second = cache.update(fleet.snapshot()).endpointsVersion;
  fleet.setAddress(3, '10.0.1.2');
  assert.notEqual(second, first);
  assert.equal(cache.update(fleet.snapshot()).endpointsVersion, first);
});

test('after many endpoint, service and rule changes, each generation is what a fresh cache builds', () => {
  const fleet = new Fleet(12);
  // DNS: clusters carry their endpoints; a rule's subsets and locality load balancing: clusters built from endpoints.
  fleet.services[1] = { ...fleet.services[1]!, resolution: 'DNS' };
  const subsets = drOf(parseOne(doc('DestinationRule', 's2', { host: 's2', subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] })));
  const locality = drOf(parseOne(doc('DestinationRule', 's3', { host: 's3', trafficPolicy: { loadBalancer: { localityLbSetting: { enabled: true, failover: [{ from: 'east', to: 'west' }] } } } })));
  fleet.rules = [subsets, locality];
  const proxies = [proxy('p'), proxyFromNode({ id: 'q', user_agent_name: 'envoy', locality: { region: 'west' } })];
  const cache = new XdsCache();
  let g = cache.update(fleet.snapshot());
  assert.ok(g.clusters.has(`outbound|8080|v2|${host(2)}`));
  assert.deepEqual([...g.locality.keys()], [`outbound|8080||${host(3)}`]);
  const steps: (() => void)[] = [
    () => fleet.setAddress(2 * 1, '10.8.0.1'), // DNS service
    () => fleet.setAddress(2 * 2 + 1, '10.8.0.2'), // subset v2 of s2
    () => fleet.setAddress(2 * 3, '10.8.0.3'), // locality cluster of s3
    () => fleet.setAddress(2 * 5, '10.8.0.4'),
    () => (fleet.endpoints = fleet.endpoints.filter((e) => e.address !== '10.0.6.2')), // an endpoint gone
    () => (fleet.services = [...fleet.services, { ...service(host(20)), namespace: 'shop' }]), // a service with no endpoint yet
    () => (fleet.endpoints = [...fleet.endpoints, endpoint(host(20), '10.8.0.5')]),
    () => (fleet.services = fleet.services.filter((s) => s.hostname !== host(4))), // a service gone
    () => (fleet.rules = [subsets]),
    () => fleet.setAddress(2 * 3, '10.8.0.6'),
  ];
  for (const step of steps) {
    const before = g;
    step();
    const model = fleet.snapshot();
    g = cache.update(model);
    assertAsFresh(g, model, proxies);
    // Whatever differs from the generation before is announced as changed.
    for (const [t, now, was] of [[CLUSTER_TYPE, g.clusters, before.clusters], [ENDPOINT_TYPE, g.endpoints, before.endpoints]] as const) {
      const differ = new Set([...now.keys(), ...was.keys()].filter((n) => now.get(n)?.version !== was.get(n)?.version));
      for (const n of differ) assert.ok(g.changed.get(t)!.has(n), `${t} ${n}`);
    }
  }
});

test('a generation stays as it was built while later ones are, however many services change', () => {
  const fleet = new Fleet(80);
  const cache = new XdsCache();
  const g1 = cache.update(fleet.snapshot());
  const before = listing(g1.endpoints);
  let g = g1;
  for (let i = 0; i < 80; i++) {
    fleet.setAddress(2 * i, `10.7.0.${i}`);
    g = cache.update(fleet.snapshot());
  }
  assert.deepEqual(listing(g1.endpoints), before);
  assertAsFresh(g, fleet.snapshot(), [proxy('p')]);
});
