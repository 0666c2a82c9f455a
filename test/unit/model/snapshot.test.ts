// Incremental merging: a merge given the previous snapshot reuses what did not change (by
// object identity) and must give exactly what a merge from scratch gives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mergeStates } from '../../../src/model/aggregate.ts';
import { ModelSnapshot } from '../../../src/model/snapshot.ts';
import type { Endpoint, RegistryState, Service, Workload } from '../../../src/model/types.ts';
import { doc, drOf, parseOne, vsOf } from './rules/helpers.ts';

const origin = (registry: string) => ({ registry, ref: 'test' });

function service(host: string, over: Partial<Service> = {}, registry = 'memory://a'): Service {
  return { hostname: host, aliases: [], namespace: 'default', ports: [{ name: 'http', number: 8080, protocol: 'HTTP' }], addresses: [], resolution: 'STATIC', location: 'MESH_INTERNAL', interfaces: [], origin: origin(registry), ...over };
}

function endpoint(host: string, address: string, registry = 'memory://a'): Endpoint {
  return { service: host, address, ports: { http: 8080 }, labels: {}, locality: {}, weight: 1, health: 'HEALTHY', origin: origin(registry) };
}

function workload(name: string, address: string, labels: Record<string, string>): Workload {
  return { name, namespace: 'default', address, labels, ports: {}, locality: {}, weight: 1, health: 'HEALTHY', origin: origin('memory://b') };
}

function state(services: readonly Service[], endpoints: readonly Endpoint[], over: Partial<RegistryState> = {}): RegistryState {
  return { id: 'memory://a', synced: true, services, endpoints, workloads: [], rejections: [], ...over };
}

/** Everything a snapshot says, as text: equal text, equal snapshots. */
function view(m: ModelSnapshot): string {
  return JSON.stringify([m.version, [...m.serviceHashes], [...m.endpointHashes], m.rulesHash, m.toJSON(), [...m.aliases], [...m.interfaces]]);
}

/** Merges with the previous snapshot, and checks the result against a merge from scratch. */
function next(states: readonly RegistryState[], previous: ModelSnapshot): ModelSnapshot {
  const m = mergeStates(states, previous);
  assert.equal(view(m), view(mergeStates(states)));
  return m;
}

const HOSTS = ['a.svc', 'b.svc', 'c.svc'];
const base = () => state(HOSTS.map((h) => service(h)), HOSTS.flatMap((h, i) => [endpoint(h, `10.0.${i}.1`), endpoint(h, `10.0.${i}.2`)]));

test('an endpoint replaced in place changes its service\'s endpoint hash and the version, and nothing else', () => {
  const s0 = base();
  const m0 = mergeStates([s0]);
  const eps = [...s0.endpoints];
  eps[3] = { ...eps[3]!, address: '10.9.9.9' };
  const m1 = next([{ ...s0, endpoints: eps }], m0);
  assert.notEqual(m1.version, m0.version);
  assert.notEqual(m1.endpointHashes.get('b.svc'), m0.endpointHashes.get('b.svc'));
  assert.deepEqual(m1.endpoints.get('b.svc')!.map((e) => e.address), ['10.0.1.1', '10.9.9.9']);
  // The unchanged lists are the previous objects; the services map is reused outright.
  assert.equal(m1.endpoints.get('a.svc'), m0.endpoints.get('a.svc'));
  assert.equal(m1.endpoints.get('c.svc'), m0.endpoints.get('c.svc'));
  assert.equal(m1.services, m0.services);
  assert.deepEqual([...m1.serviceHashes], [...m0.serviceHashes]);
  // And back: the content of m0 again gives m0's version.
  assert.equal(next([s0], m1).version, m0.version);
});

test('equal content in new objects keeps the version', () => {
  const m0 = mergeStates([base()]);
  const m1 = next([base()], m0);
  assert.equal(m1.version, m0.version);
  assert.deepEqual([...m1.endpointHashes], [...m0.endpointHashes]);
});

test('endpoints added, removed, moved to another service, or present twice are regrouped like a merge from scratch', () => {
  const s0 = base();
  let m = mergeStates([s0]);
  const versions = new Set([m.version]);
  const steps: ((eps: Endpoint[]) => void)[] = [
    (eps) => eps.splice(2, 0, endpoint('a.svc', '10.0.0.3')), // inserted in the middle
    (eps) => eps.push(endpoint('c.svc', '10.0.2.3')), // appended
    (eps) => eps.splice(0, 1), // removed
    (eps) => (eps[1] = endpoint('c.svc', '10.0.0.9')), // same position, another service
    (eps) => eps.push(eps[0]!), // the same object twice
    (eps) => (eps[eps.length - 1] = { ...eps[0]!, address: '10.7.7.7' }), // one of the two replaced
    (eps) => eps.reverse(), // every position changes: same content
    (eps) => eps.splice(0, eps.length), // all gone
  ];
  let s = s0;
  for (const step of steps) {
    const eps = [...s.endpoints];
    step(eps);
    s = { ...s, endpoints: eps };
    m = next([s], m);
    versions.add(m.version);
  }
  // Every step but the reversal changed the content.
  assert.equal(versions.size, steps.length);
  assert.equal(m.endpoints.size, 3);
  assert.deepEqual([...m.endpoints.values()].map((l) => l.length), [0, 0, 0]);
});

test('a changed service definition changes its hash and the version, with endpoints unchanged', () => {
  const s0 = base();
  const m0 = mergeStates([s0]);
  const services = [...s0.services];
  services[2] = service('c.svc', { ports: [{ name: 'http', number: 9090, protocol: 'HTTP' }] });
  const m1 = next([{ ...s0, services }], m0);
  assert.notEqual(m1.version, m0.version);
  assert.notEqual(m1.serviceHashes.get('c.svc'), m0.serviceHashes.get('c.svc'));
  assert.equal(m1.serviceHashes.get('a.svc'), m0.serviceHashes.get('a.svc'));
  assert.equal(m1.endpoints.get('c.svc'), m0.endpoints.get('c.svc'));
});

test('a service merged from two registries is rebuilt when either side changes', () => {
  const a = state([service('a.svc', { aliases: ['x'] })], [endpoint('a.svc', '10.0.0.1')]);
  const b = state([service('a.svc', { aliases: ['y'], ports: [{ name: 'grpc', number: 9090, protocol: 'GRPC' }] }, 'memory://b')], [endpoint('a.svc', '10.1.0.1', 'memory://b')], { id: 'memory://b' });
  const m0 = mergeStates([a, b]);
  assert.deepEqual(m0.services.get('a.svc')!.ports.map((p) => p.number), [8080, 9090]);
  assert.deepEqual(m0.endpoints.get('a.svc')!.map((e) => e.address), ['10.0.0.1', '10.1.0.1']);
  // Same objects again: the merged service is the same object.
  const m1 = next([a, { ...b }], m0);
  assert.equal(m1.services.get('a.svc'), m0.services.get('a.svc'));
  assert.equal(m1.version, m0.version);
  const b2 = { ...b, services: [service('a.svc', { aliases: ['y'], ports: [{ name: 'grpc', number: 9091, protocol: 'GRPC' }] }, 'memory://b')] };
  const m2 = next([a, b2], m1);
  assert.deepEqual(m2.services.get('a.svc')!.ports.map((p) => p.number), [8080, 9091]);
  assert.notEqual(m2.version, m1.version);
  // An endpoint change in the second registry changes the joined list.
  const m3 = next([a, { ...b2, endpoints: [endpoint('a.svc', '10.1.0.2', 'memory://b')] }], m2);
  assert.deepEqual(m3.endpoints.get('a.svc')!.map((e) => e.address), ['10.0.0.1', '10.1.0.2']);
  assert.notEqual(m3.version, m2.version);
});

test('workloads selected by a service follow workload changes', () => {
  const sel = service('s.svc', { workloadSelector: { app: 'web' } });
  const w0 = [workload('w1', '10.2.0.1', { app: 'web' }), workload('w2', '10.2.0.2', { app: 'db' })];
  const s0 = state([sel], [], { workloads: w0 });
  const m0 = mergeStates([s0]);
  assert.deepEqual(m0.endpoints.get('s.svc')!.map((e) => e.address), ['10.2.0.1']);
  const m1 = next([{ ...s0, workloads: [w0[0]!, { ...w0[1]!, labels: { app: 'web' } }] }], m0);
  assert.deepEqual(m1.endpoints.get('s.svc')!.map((e) => e.address), ['10.2.0.1', '10.2.0.2']);
  assert.notEqual(m1.version, m0.version);
  const m2 = next([{ ...s0, workloads: [{ ...w0[0]!, address: '10.2.0.9' }, w0[1]!] }], m1);
  assert.deepEqual(m2.endpoints.get('s.svc')!.map((e) => e.address), ['10.2.0.9']);
  // Equal workloads in new objects: the same version.
  const m3 = next([{ ...s0, workloads: [{ ...w0[0]!, address: '10.2.0.9' }, { ...w0[1]! }] }], m2);
  assert.equal(m3.version, m2.version);
});

test('rules are checked again when services change, and their hash follows the rules', () => {
  const dr = drOf(parseOne(doc('DestinationRule', 'd', { host: 'd.default.svc.cluster.local', subsets: [{ name: 'v1', labels: { v: '1' } }] }, 'default')));
  const s0 = state([service('a.svc')], [], { destinationRules: [dr] });
  const m0 = mergeStates([s0]);
  assert.equal(m0.ruleWarnings.length, 1, 'host unknown yet');
  const services = [service('a.svc'), service('d.default.svc.cluster.local')];
  const m1 = next([{ ...s0, services }], m0);
  assert.equal(m1.ruleWarnings.length, 0);
  const vs = vsOf(parseOne(doc('VirtualService', 'v', { hosts: ['a.svc'], http: [{ route: [{ destination: { host: 'a.svc' } }] }] }, 'default')));
  const m2 = next([{ ...s0, services, virtualServices: [vs] }], m1);
  assert.notEqual(m2.rulesHash, m1.rulesHash);
  assert.notEqual(m2.version, m1.version);
  assert.equal(next([{ ...s0, services }], m2).rulesHash, m1.rulesHash);
});

test('the rules hash follows DestinationRules while the VirtualServices stay the same array', () => {
  const vs = Object.freeze([vsOf(parseOne(doc('VirtualService', 'v', { hosts: ['a.svc'], http: [{ route: [{ destination: { host: 'a.svc' } }] }] }, 'default')))]);
  const dr = drOf(parseOne(doc('DestinationRule', 'd', { host: 'a.svc', subsets: [{ name: 'v1', labels: { v: '1' } }] }, 'default')));
  const snap = (drs: readonly (typeof dr)[]): ModelSnapshot =>
    new ModelSnapshot({ services: new Map(), endpoints: new Map(), registries: [], conflicts: [], rules: { virtualServices: vs, destinationRules: drs, rejections: [], warnings: [] } });
  const without = snap(Object.freeze([]));
  const withDr = snap(Object.freeze([dr]));
  assert.notEqual(withDr.rulesHash, without.rulesHash);
  assert.equal(snap(Object.freeze([])).rulesHash, without.rulesHash);
});

test('an endpoint list passed by a caller is hashed afresh each time unless frozen', () => {
  const services = new Map([['a.svc', service('a.svc')]]);
  const list = [endpoint('a.svc', '10.0.0.1')];
  const m0 = new ModelSnapshot({ services, endpoints: new Map([['a.svc', list]]), registries: [], conflicts: [] });
  list.push(endpoint('a.svc', '10.0.0.2'));
  const m1 = new ModelSnapshot({ services, endpoints: new Map([['a.svc', list]]), registries: [], conflicts: [], previous: m0 });
  assert.notEqual(m1.version, m0.version);
  assert.equal(m1.endpoints.get('a.svc')!.length, 2);
});

test('a snapshot built on a previous one with the same services map matches one built from scratch', () => {
  const m0 = mergeStates([base()]);
  const endpoints = new Map([['b.svc', Object.freeze([endpoint('b.svc', '10.5.0.1')])]]);
  const args = { endpoints, registries: [], conflicts: [] };
  const fresh = new ModelSnapshot({ ...args, services: new Map(m0.services) });
  const derived = new ModelSnapshot({ ...args, services: m0.services, previous: m0 });
  assert.equal(view(derived), view(fresh));
  assert.notEqual(derived.version, m0.version);
});

test('random edits over several registries: incremental merges equal merges from scratch', () => {
  let seed = 42;
  const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
  const hosts = ['a.svc', 'b.svc', 'c.svc', 'd.svc', 'e.svc'];
  const reg = (i: number): RegistryState => {
    const id = `memory://${i}`;
    return {
      id,
      synced: true,
      services: hosts.filter(() => rnd(3) > 0).map((h) => service(h, { aliases: rnd(4) ? [] : [hosts[rnd(5)]!], ...(rnd(4) ? {} : { workloadSelector: { app: `${rnd(2)}` } }) }, id)),
      endpoints: Array.from({ length: 12 }, () => endpoint(hosts[rnd(5)]!, `10.0.0.${rnd(4)}`, id)),
      workloads: Array.from({ length: 3 }, (_, k) => workload(`w${k}`, `10.3.0.${rnd(3)}`, { app: `${rnd(2)}` })),
      rejections: [],
    };
  };
  for (let run = 0; run < 30; run++) {
    let states = Array.from({ length: 1 + rnd(3) }, (_, i) => reg(i));
    let m = mergeStates(states);
    for (let step = 0; step < 20; step++) {
      const r = rnd(states.length);
      const s = states[r]!;
      const eps = [...s.endpoints];
      const i = rnd(Math.max(1, eps.length));
      let edited: RegistryState;
      switch (rnd(6)) {
        case 0:
          if (eps.length) eps[i] = { ...eps[i]!, address: `10.0.0.${rnd(4)}` };
          edited = { ...s, endpoints: eps };
          break;
        case 1:
          eps.splice(i, 0, endpoint(hosts[rnd(5)]!, `10.0.1.${rnd(4)}`, s.id));
          edited = { ...s, endpoints: eps };
          break;
        case 2:
          eps.splice(i, 1);
          edited = { ...s, endpoints: eps };
          break;
        case 3:
          if (eps.length) eps.push(eps[i]!);
          edited = { ...s, endpoints: eps };
          break;
        case 4:
          edited = { ...s, services: s.services.map((x) => (rnd(3) ? x : service(x.hostname, { aliases: [hosts[rnd(5)]!] }, s.id))) };
          break;
        default:
          edited = { ...s, workloads: s.workloads.map((w) => (rnd(2) ? w : { ...w, labels: { app: `${rnd(2)}` } })) };
      }
      states = states.map((x, k) => (k === r ? edited : x));
      m = next(states, m);
    }
  }
});
