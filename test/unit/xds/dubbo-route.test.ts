// Dubbo ports through Envoy's Dubbo filter: which ports get it, how Istio http rules read as
// Dubbo routes, and what is refused by name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mergeStates } from '../../../src/model/aggregate.ts';
import { mapProviders } from '../../../src/registries/soa/mapping.ts';
import { parseProviderUrl } from '../../../src/registries/soa/provider.ts';
import { XdsCache } from '../../../src/xds/cache.ts';
import { decodeToJsonDeep } from '../../../src/xds/proto.ts';
import { DUBBO_ROUTE_TYPE, LISTENER_TYPE } from '../../../src/xds/resources.ts';
import { messageType } from '../../../src/xds/proto.ts';
import { drOf, parseOne, vsOf } from '../model/rules/helpers.ts';
import { proxy, settle, Sink, Source } from './fixtures.ts';
import { DeltaConnection } from '../../../src/xds/server/delta.ts';
import { SotwConnection } from '../../../src/xds/server/sotw.ts';

const GREETER = 'com.a.Greeter';
const GREETER_HOST = 'com.a.greeter.rpc.cluster.local';

/** A provider URL as the Dubbo framework writes it (`dubbo=2.0.2`), or as a hand-made one without it. */
function url(address: string, iface: string, extra = '', framework = true): string {
  return `dubbo://${address}:20880/${iface}?application=orders&interface=${iface}&methods=greet,hello${framework ? '&dubbo=2.0.2' : ''}${extra}`;
}

function dubboFilter(urls: string[], rules: object[] = []): { filter?: Record<string, unknown>; problems: readonly { name: string; reason: string }[]; warnings: readonly { reason: string }[]; proto?: string } {
  const soa = mapProviders(urls.map((u, i) => parseProviderUrl(u, `/dubbo/${i}`)), { registry: 'zk://x/dubbo' });
  const parsed = rules.map((r) => parseOne(r as never));
  const model = mergeStates([{ id: 'zk://x/dubbo', synced: true, services: soa.services, endpoints: soa.endpoints, workloads: [], rejections: [], virtualServices: parsed.filter((p) => p.kind === 'VirtualService').map(vsOf), destinationRules: parsed.filter((p) => p.kind === 'DestinationRule').map(drOf) }]);
  const g = new XdsCache().update(model);
  const p = proxy('x');
  const r = g.resolve(LISTENER_TYPE, '127.0.0.1_20880', p);
  const any = messageType('google.protobuf.Any').decode(r!.any) as unknown as { value: Uint8Array };
  const listener = decodeToJsonDeep('envoy.config.listener.v3.Listener', any.value) as { filter_chains: { filters: { name: string; typed_config: Record<string, unknown> }[] }[] };
  const f = listener.filter_chains[0]!.filters[0]!;
  // The route tables are their own resource (DRDS), named in the filter.
  const drds = f.typed_config.drds as { route_config_name: string } | undefined;
  const tables = drds && g.resolve(DUBBO_ROUTE_TYPE, drds.route_config_name, p);
  const decoded = tables ? decodeToJsonDeep('envoy.extensions.filters.network.dubbo_proxy.v3.MultipleRouteConfiguration', (messageType('google.protobuf.Any').decode(tables.any) as unknown as { value: Uint8Array }).value) : undefined;
  return { filter: decoded && { multiple_route_config: decoded }, problems: g.view(p).problems, warnings: soa.warnings, proto: f.name };
}

test('a Dubbo port of framework providers gets the Dubbo filter: one route table per interface, then every other interface to the service', () => {
  const { filter, proto, problems } = dubboFilter([url('10.0.0.1', GREETER), url('10.0.0.2', GREETER)]);
  assert.equal(proto, 'envoy.filters.network.dubbo_proxy');
  assert.deepEqual(problems, []);
  const rc = (filter!.multiple_route_config as { route_config: { interface: string; routes: { route: { cluster: string } }[] }[] }).route_config;
  assert.deepEqual(rc.map((c) => [c.interface, c.routes.map((r) => r.route.cluster)]), [
    [GREETER, [`outbound|20880|${GREETER_HOST}|orders.rpc.cluster.local`]],
    ['*', ['outbound|20880||orders.rpc.cluster.local']],
  ]);
});

test('hand-registered dubbo:// providers (no Dubbo protocol version) and providers preferring fastjson2 stay opaque TCP', () => {
  assert.equal(dubboFilter([url('10.0.0.1', GREETER, '', false)]).proto, 'envoy.filters.network.tcp_proxy');
  const fj = dubboFilter([url('10.0.0.1', GREETER, '&prefer.serialization=fastjson2,hessian2')]);
  assert.equal(fj.proto, 'envoy.filters.network.tcp_proxy');
  // Decided by the registry, so that a provider joining with fastjson2 changes the service (and its listeners).
  assert.match(fj.warnings.map((p) => p.reason).join('\n'), /application orders: Dubbo port 20880 served as opaque TCP .*provider 10\.0\.0\.1 prefers serialization fastjson2/);
});

test('http rules of an interface name are method routes; attachments are headers; what the filter cannot do is refused by name', () => {
  const meta = (kind: string, name: string) => ({ apiVersion: 'networking.istio.io/v1', kind, metadata: { name, namespace: 'default' } });
  const rules = [
    { ...meta('DestinationRule', 'g'), spec: { host: GREETER_HOST, subsets: [{ name: 'a', labels: { track: 'a' } }, { name: 'b', labels: { track: 'b' } }] } },
    {
      ...meta('VirtualService', 'g'),
      spec: {
        hosts: [GREETER_HOST],
        http: [
          { match: [{ uri: { exact: `/${GREETER}/greet` }, headers: { tenant: { exact: 'blue' } } }], route: [{ destination: { host: GREETER_HOST, subset: 'b' } }] },
          { match: [{ uri: { regex: '/com\\.a\\.Greeter/hel.*' } }], route: [{ destination: { host: GREETER_HOST, subset: 'a' }, weight: 90 }, { destination: { host: GREETER_HOST, subset: 'b' }, weight: 10 }] },
          { match: [{ uri: { prefix: `/${GREETER}/` } }], timeout: '1s', route: [{ destination: { host: GREETER_HOST, subset: 'a' } }] },
        ],
      },
    },
  ];
  const { filter, problems } = dubboFilter([url('10.0.0.1', GREETER, '&track=a'), url('10.0.0.2', GREETER, '&track=b')], rules);
  const greeter = (filter!.multiple_route_config as { route_config: { interface: string; routes: Record<string, any>[] }[] }).route_config[0]!; // eslint-disable-line @typescript-eslint/no-explicit-any
  assert.deepEqual(greeter.routes.map((r) => r.match), [
    { method: { name: { exact: 'greet' } }, headers: [{ name: 'tenant', string_match: { exact: 'blue' } }] },
    { method: { name: { safe_regex: { regex: 'hel.*' } } } },
    { method: { name: { safe_regex: { regex: '.*' } } } },
  ]);
  assert.equal(greeter.routes[0]!.route.cluster, `outbound|20880|b|${GREETER_HOST}`);
  assert.deepEqual(greeter.routes[1]!.route.weighted_clusters.clusters.map((c: { name: string; weight: { value: number } }) => [c.name, c.weight.value]), [[`outbound|20880|a|${GREETER_HOST}`, 90], [`outbound|20880|b|${GREETER_HOST}`, 10]]);
  assert.match(problems.map((p) => `${p.name}: ${p.reason}`).join('\n'), /VirtualService default\/g: .*spec\.http\[2\] refused: spec\.http\[2\]\.timeout: Envoy's Dubbo filter has no per-route timeout/);
});

/** A model of two framework providers of Greeter and, optionally, a 50/50 rule on its name. */
function greeterModel(withRule: boolean) {
  const soa = mapProviders([url('10.0.0.1', GREETER, '&track=a'), url('10.0.0.2', GREETER, '&track=b')].map((u, i) => parseProviderUrl(u, `/dubbo/${i}`)), { registry: 'zk://x/dubbo' });
  const meta = (kind: string) => ({ apiVersion: 'networking.istio.io/v1', kind, metadata: { name: 'g', namespace: 'default' } });
  const rules = withRule
    ? [
        parseOne({ ...meta('DestinationRule'), spec: { host: GREETER_HOST, subsets: [{ name: 'a', labels: { track: 'a' } }, { name: 'b', labels: { track: 'b' } }] } } as never),
        parseOne({ ...meta('VirtualService'), spec: { hosts: [GREETER_HOST], http: [{ route: [{ destination: { host: GREETER_HOST, subset: 'a' }, weight: 50 }, { destination: { host: GREETER_HOST, subset: 'b' }, weight: 50 }] }] } } as never),
      ]
    : [];
  return mergeStates([{ id: 'zk://x/dubbo', synced: true, services: soa.services, endpoints: soa.endpoints, workloads: [], rejections: [], virtualServices: rules.filter((p) => p.kind === 'VirtualService').map(vsOf), destinationRules: rules.filter((p) => p.kind === 'DestinationRule').map(drOf) }]);
}

for (const delta of [false, true]) {
  test(`${delta ? 'Delta' : 'SotW'}: a rule change sends the new Dubbo route table and leaves the listeners as they are`, async () => {
    const src = new Source();
    src.publish(greeterModel(false));
    const sink = new Sink(delta);
    const conn = delta ? new DeltaConnection(proxy('d'), 'test', sink, src, {}) : new SotwConnection(proxy('d'), 'test', sink, src, {});
    const table = `outbound|20880||orders.rpc.cluster.local`;
    const sub = (t: string, names?: string[]) => (delta ? { type_url: t, ...(names ? { resource_names_subscribe: names } : {}) } : { type_url: t, ...(names ? { resource_names: names } : {}) });
    conn.handle(sub(LISTENER_TYPE) as never);
    conn.handle(sub(DUBBO_ROUTE_TYPE, [table]) as never);
    await settle();
    const first = sink.drain();
    const lds = first.find((r) => r.typeUrl === LISTENER_TYPE)!;
    const drds = first.find((r) => r.typeUrl === DUBBO_ROUTE_TYPE)!;
    assert.deepEqual(drds.names, [table]);
    conn.handle({ ...(sub(LISTENER_TYPE) as object), response_nonce: lds.nonce } as never);
    conn.handle({ ...(sub(DUBBO_ROUTE_TYPE, delta ? undefined : [table]) as object), response_nonce: drds.nonce } as never);
    await settle();
    sink.drain();
    src.publish(greeterModel(true));
    conn.onSnapshot();
    await settle();
    const next = sink.drain();
    assert.deepEqual(next.map((r) => r.typeUrl), [DUBBO_ROUTE_TYPE], 'only the route table moves');
    assert.deepEqual(next[0]!.names, [table]);
  });
}

test('rules on the application name: a uri naming an interface goes to its table, one naming none to every table; a partial prefix is refused once, by name', () => {
  const meta = (name: string) => ({ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name, namespace: 'default' } });
  const APP = 'orders.rpc.cluster.local';
  const rules = [
    {
      ...meta('app'),
      spec: {
        hosts: [APP],
        http: [
          { match: [{ uri: { exact: `/${GREETER}/greet` } }], route: [{ destination: { host: GREETER_HOST } }] },
          { match: [{ uri: { prefix: '/com.' } }], route: [{ destination: { host: APP } }] },
          { match: [{ headers: { tenant: { exact: 'blue' } } }], route: [{ destination: { host: GREETER_HOST } }] },
        ],
      },
    },
  ];
  const { filter, problems } = dubboFilter([url('10.0.0.1', GREETER), url('10.0.0.1', 'com.a.Orders')], rules);
  const rc = (filter!.multiple_route_config as { route_config: { interface: string; routes: { match: Record<string, unknown> }[] }[] }).route_config;
  assert.deepEqual(rc.map((c) => [c.interface, c.routes.map((r) => JSON.stringify(r.match))]), [
    [GREETER, ['{"method":{"name":{"exact":"greet"}}}', '{"method":{"name":{"safe_regex":{"regex":".*"}}},"headers":[{"name":"tenant","string_match":{"exact":"blue"}}]}', '{"method":{"name":{"safe_regex":{"regex":".*"}}}}']],
    ['com.a.Orders', ['{"method":{"name":{"safe_regex":{"regex":".*"}}},"headers":[{"name":"tenant","string_match":{"exact":"blue"}}]}', '{"method":{"name":{"safe_regex":{"regex":".*"}}}}']],
    ['*', ['{"method":{"name":{"safe_regex":{"regex":".*"}}},"headers":[{"name":"tenant","string_match":{"exact":"blue"}}]}', '{"method":{"name":{"safe_regex":{"regex":".*"}}}}']],
  ]);
  const refused = problems.filter((p) => p.name === 'VirtualService default/app');
  assert.equal(refused.length, 1, JSON.stringify(problems));
  assert.match(refused[0]!.reason, /orders\.rpc\.cluster\.local:20880 \(Dubbo\): spec\.http\[1\] refused: .*uri prefix is read as a method match after the literal interface path/);
});

test('an interface two applications share: rules on its name are its own table in the shared name\'s filter', () => {
  const SHARED = GREETER_HOST;
  const rules = [{ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 's', namespace: 'default' }, spec: { hosts: [SHARED], http: [{ match: [{ uri: { exact: `/${GREETER}/greet` } }], route: [{ destination: { host: SHARED } }] }] } }];
  const urls = [url('10.0.0.1', GREETER), url('10.0.0.2', GREETER).replace('application=orders', 'application=orders-v2')];
  const soa = mapProviders(urls.map((u, i) => parseProviderUrl(u, `/dubbo/${i}`)), { registry: 'zk://x/dubbo' });
  assert.ok(soa.services.some((s) => s.hostname === SHARED), 'the interface is a service of its own');
  const parsed = rules.map((r) => parseOne(r as never));
  const model = mergeStates([{ id: 'zk://x/dubbo', synced: true, services: soa.services, endpoints: soa.endpoints, workloads: [], rejections: [], virtualServices: parsed.map(vsOf), destinationRules: [] }]);
  const g = new XdsCache().update(model);
  const tables = g.resolve(DUBBO_ROUTE_TYPE, `outbound|20880||${SHARED}`, proxy('x'));
  assert.ok(tables, 'the shared name has a Dubbo route table');
  const decoded = decodeToJsonDeep('envoy.extensions.filters.network.dubbo_proxy.v3.MultipleRouteConfiguration', (messageType('google.protobuf.Any').decode(tables.any) as unknown as { value: Uint8Array }).value) as { route_config: { interface: string; routes: { match: { method: { name: Record<string, unknown> } } }[] }[] };
  assert.deepEqual(decoded.route_config.map((c) => [c.interface, c.routes.map((r) => r.match.method.name)]), [
    [GREETER, [{ exact: 'greet' }, { safe_regex: { regex: '.*' } }]],
    ['*', [{ safe_regex: { regex: '.*' } }]],
  ]);
});

test('a tcp rule on a Dubbo name keeps the port opaque TCP, and its http rules are reported as not applied', () => {
  const APP = 'orders.rpc.cluster.local';
  const rules = [{ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'both', namespace: 'default' }, spec: { hosts: [APP], tcp: [{ route: [{ destination: { host: APP } }] }], http: [{ route: [{ destination: { host: APP } }] }] } }];
  const { proto, problems } = dubboFilter([url('10.0.0.1', GREETER)], rules);
  assert.equal(proto, 'envoy.filters.network.tcp_proxy');
  assert.ok(problems.some((p) => p.name === 'VirtualService default/both' && /orders\.rpc\.cluster\.local:20880 \(Dubbo\): spec\.http not applied: its tcp rule keeps the port opaque TCP/.test(p.reason)), JSON.stringify(problems));
});
