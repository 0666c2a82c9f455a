import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DestinationRule } from '../../../../src/model/rules/types.ts';
import { doc, drOf, parseDocs, parseOne, REG, rejectionsOf, SOURCE, warningsOf } from './helpers.ts';

function spec(patch: Record<string, unknown> = {}): Record<string, unknown> {
  return { host: 'reviews.shop.local', subsets: [{ name: 'v1', labels: { version: 'v1' } }], ...patch };
}

const policy = (tp: Record<string, unknown>): Record<string, unknown> => spec({ trafficPolicy: tp });

describe('DestinationRule: valid documents map to the typed model', () => {
  it('maps subsets and every traffic policy setting, with durations in ms', () => {
    const d = parseOne(
      doc('DestinationRule', 'reviews', {
        host: 'reviews.shop.local',
        exportTo: ['*'],
        trafficPolicy: {
          loadBalancer: {
            consistentHash: { httpCookie: { name: 'user', path: '/', ttl: '0s' } },
            localityLbSetting: { enabled: true, failover: [{ from: 'cn-east', to: 'cn-north' }] },
          },
          connectionPool: {
            tcp: { maxConnections: 100, connectTimeout: '30ms', tcpKeepalive: { probes: 3, time: '7200s', interval: '75s' }, maxConnectionDuration: '1h', idleTimeout: '10m' },
            http: { http1MaxPendingRequests: 10, http2MaxRequests: 1000, maxRequestsPerConnection: 1, maxRetries: 3, idleTimeout: '1m', h2UpgradePolicy: 'UPGRADE', maxConcurrentStreams: 100 },
          },
          outlierDetection: { consecutive5xxErrors: 5, consecutiveGatewayErrors: 3, interval: '5m', baseEjectionTime: '15m', maxEjectionPercent: 100, minHealthPercent: 0, splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailures: 2 },
          tls: { mode: 'SIMPLE', caCertificates: '/etc/certs/ca.pem', sni: 'reviews.example.com', subjectAltNames: ['reviews'] },
          portLevelSettings: [{ port: { number: 80 }, loadBalancer: { simple: 'LEAST_REQUEST' } }, { port: { number: 9000 }, connectionPool: { tcp: { maxConnections: 5 } } }],
        },
        subsets: [
          { name: 'v1', labels: { version: 'v1' } },
          {
            name: 'v2',
            labels: { version: 'v2', 'app.kubernetes.io/name': 'reviews' },
            trafficPolicy: {
              loadBalancer: {
                simple: 'RANDOM',
                localityLbSetting: { distribute: [{ from: 'cn-east/zone-a/*', to: { 'cn-east/zone-a/*': 80, 'cn-east/zone-b/*': 20 } }] },
              },
            },
          },
          { name: 'hashed', trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: 'x-user' } } } },
          { name: 'by-ip', trafficPolicy: { loadBalancer: { consistentHash: { useSourceIp: true } } } },
          { name: 'by-query', trafficPolicy: { loadBalancer: { consistentHash: { httpQueryParameterName: 'uid' } } } },
        ],
      }),
    );
    assert.deepEqual(rejectionsOf(d), []);
    const expected: DestinationRule = {
      name: 'reviews',
      namespace: 'shop',
      origin: { registry: REG, ref: `${SOURCE}#0 DestinationRule shop/reviews` },
      location: { source: SOURCE, document: 0 },
      spec: {
        host: 'reviews.shop.local',
        exportTo: ['*'],
        trafficPolicy: {
          loadBalancer: {
            consistentHash: { type: 'cookie', httpCookie: { name: 'user', path: '/', ttlMs: 0 } },
            localityLbSetting: { distribute: [], failover: [{ from: 'cn-east', to: 'cn-north' }], enabled: true },
          },
          connectionPool: {
            tcp: { maxConnections: 100, connectTimeoutMs: 30, tcpKeepalive: { probes: 3, timeMs: 7_200_000, intervalMs: 75_000 }, maxConnectionDurationMs: 3_600_000, idleTimeoutMs: 600_000 },
            http: { http1MaxPendingRequests: 10, http2MaxRequests: 1000, maxRequestsPerConnection: 1, maxRetries: 3, idleTimeoutMs: 60_000, h2UpgradePolicy: 'UPGRADE', maxConcurrentStreams: 100 },
          },
          outlierDetection: { consecutive5xxErrors: 5, consecutiveGatewayErrors: 3, intervalMs: 300_000, baseEjectionTimeMs: 900_000, maxEjectionPercent: 100, minHealthPercent: 0, splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailures: 2 },
          tls: { mode: 'SIMPLE', caCertificates: '/etc/certs/ca.pem', sni: 'reviews.example.com', subjectAltNames: ['reviews'] },
          portLevelSettings: [{ port: 80, loadBalancer: { simple: 'LEAST_REQUEST' } }, { port: 9000, connectionPool: { tcp: { maxConnections: 5 } } }],
        },
        subsets: [
          { name: 'v1', labels: { version: 'v1' } },
          {
            name: 'v2',
            labels: { version: 'v2', 'app.kubernetes.io/name': 'reviews' },
            trafficPolicy: {
              loadBalancer: {
                simple: 'RANDOM',
                localityLbSetting: { distribute: [{ from: 'cn-east/zone-a/*', to: { 'cn-east/zone-a/*': 80, 'cn-east/zone-b/*': 20 } }], failover: [] },
              },
              portLevelSettings: [],
            },
          },
          { name: 'hashed', labels: {}, trafficPolicy: { loadBalancer: { consistentHash: { type: 'header', httpHeaderName: 'x-user' } }, portLevelSettings: [] } },
          { name: 'by-ip', labels: {}, trafficPolicy: { loadBalancer: { consistentHash: { type: 'sourceIp' } }, portLevelSettings: [] } },
          { name: 'by-query', labels: {}, trafficPolicy: { loadBalancer: { consistentHash: { type: 'queryParameter', httpQueryParameterName: 'uid' } }, portLevelSettings: [] } },
        ],
      },
    };
    assert.deepEqual(drOf(d), expected);
    assert.deepEqual(warningsOf(d), []);
  });

  it('reads LEAST_CONN as LEAST_REQUEST with a warning, and UNSPECIFIED as unset', () => {
    const d = parseOne(doc('DestinationRule', 'r', policy({ loadBalancer: { simple: 'LEAST_CONN' }, portLevelSettings: [{ port: { number: 80 }, loadBalancer: { simple: 'UNSPECIFIED' } }] })));
    assert.deepEqual(drOf(d).spec.trafficPolicy?.loadBalancer, { simple: 'LEAST_REQUEST' });
    assert.deepEqual(drOf(d).spec.trafficPolicy?.portLevelSettings, [{ port: 80, loadBalancer: {} }]);
    assert.deepEqual(warningsOf(d).map((w) => [w.field, w.reason]), [['spec.trafficPolicy.loadBalancer.simple', 'LEAST_CONN is deprecated in Istio; it means LEAST_REQUEST, write that']]);
  });

  it('warns when failover has no outlier detection to notice failures', () => {
    const d = parseOne(doc('DestinationRule', 'r', policy({ loadBalancer: { localityLbSetting: { failover: [{ from: 'a', to: 'b' }] } } })));
    assert.deepEqual(warningsOf(d).map((w) => w.field), ['spec.trafficPolicy.loadBalancer.localityLbSetting.failover']);
    assert.match(warningsOf(d)[0]!.reason, /failover without outlierDetection/);
  });

  it('accepts a wildcard host and a rule without subsets', () => {
    const r = drOf(parseOne(doc('DestinationRule', 'all', { host: '*.shop.local', trafficPolicy: { outlierDetection: { consecutive5xxErrors: 1 } } })));
    assert.equal(r.spec.host, '*.shop.local');
    assert.deepEqual(r.spec.subsets, []);
  });
});

describe('DestinationRule: rejections name the field and the reason', () => {
  const tp = 'spec.trafficPolicy';
  const lb = `${tp}.loadBalancer`;
  const cases: { name: string; spec: unknown; problems: [string, RegExp][] }[] = [
    { name: 'missing host', spec: spec({ host: undefined }), problems: [['spec.host', /spec\.host is missing/]] },
    { name: 'bad host', spec: spec({ host: 'a..b' }), problems: [['spec.host', /host "a\.\.b" has an invalid label ""/]] },
    { name: 'unknown field', spec: spec({ hosts: ['a'] }), problems: [['spec.hosts', /^unknown field "hosts"; expected one of: host, trafficPolicy, subsets, exportTo$/]] },
    { name: 'workloadSelector', spec: spec({ workloadSelector: { matchLabels: { app: 'a' } } }), problems: [['spec.workloadSelector', /valid Istio but not supported by Isthmus/]] },
    { name: 'subset without name', spec: spec({ subsets: [{ labels: { version: 'v1' } }] }), problems: [['spec.subsets[0].name', /name is missing/]] },
    { name: 'bad subset name', spec: spec({ subsets: [{ name: 'v1.0' }] }), problems: [['spec.subsets[0].name', /subset name "v1\.0" is not a valid DNS-1123 label/]] },
    { name: 'duplicate subset', spec: spec({ subsets: [{ name: 'v1' }, { name: 'v1' }] }), problems: [['spec.subsets[1].name', /subset name "v1" is already used by spec\.subsets\[0\]/]] },
    { name: 'numeric label value', spec: spec({ subsets: [{ name: 'v1', labels: { version: 1 } }] }), problems: [['spec.subsets[0].labels.version', /must be a string, not the number 1 \(quote it\)/]] },
    { name: 'wildcard label', spec: spec({ subsets: [{ name: 'v1', labels: { version: 'v*' } }] }), problems: [['spec.subsets[0].labels.version', /contains "\*"/]] },
    { name: 'empty traffic policy', spec: policy({}), problems: [[tp, /is empty; a traffic policy needs at least one setting/]] },
    { name: 'unknown simple policy', spec: policy({ loadBalancer: { simple: 'FASTEST' } }), problems: [[`${lb}.simple`, /"FASTEST" is not valid; expected one of: ROUND_ROBIN, LEAST_REQUEST, RANDOM, PASSTHROUGH/]] },
    { name: 'simple and consistentHash', spec: policy({ loadBalancer: { simple: 'RANDOM', consistentHash: { useSourceIp: true } } }), problems: [[lb, /sets both simple and consistentHash/]] },
    { name: 'hash without key', spec: policy({ loadBalancer: { consistentHash: {} } }), problems: [[`${lb}.consistentHash`, /needs a hash key: one of httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName/]] },
    { name: 'useSourceIp false only', spec: policy({ loadBalancer: { consistentHash: { useSourceIp: false } } }), problems: [[`${lb}.consistentHash`, /needs a hash key/]] },
    { name: 'two hash keys', spec: policy({ loadBalancer: { consistentHash: { httpHeaderName: 'x', useSourceIp: true } } }), problems: [[`${lb}.consistentHash`, /sets httpHeaderName and useSourceIp; exactly one hash key/]] },
    { name: 'cookie without name', spec: policy({ loadBalancer: { consistentHash: { httpCookie: { ttl: '10s' } } } }), problems: [[`${lb}.consistentHash.httpCookie.name`, /name is missing/]] },
    { name: 'ring hash settings', spec: policy({ loadBalancer: { consistentHash: { useSourceIp: true, ringHash: { minimumRingSize: 1024 } } } }), problems: [[`${lb}.consistentHash.ringHash`, /not supported by Isthmus/]] },
    { name: 'distribute and failover', spec: policy({ outlierDetection: { consecutive5xxErrors: 1 }, loadBalancer: { localityLbSetting: { distribute: [{ from: 'a/*', to: { 'a/*': 100 } }], failover: [{ from: 'a', to: 'b' }] } } }), problems: [[`${lb}.localityLbSetting`, /sets both distribute and failover/]] },
    { name: 'distribute weights', spec: policy({ loadBalancer: { localityLbSetting: { distribute: [{ from: 'a/*', to: { 'a/*': 60, 'b/*': 30 } }] } } }), problems: [[`${lb}.localityLbSetting.distribute[0].to`, /locality weights sum to 90; they must sum to 100/]] },
    { name: 'distribute weight 0', spec: policy({ loadBalancer: { localityLbSetting: { distribute: [{ from: 'a/*', to: { 'a/*': 0, 'b/*': 100 } }] } } }), problems: [[`${lb}.localityLbSetting.distribute[0].to["a/*"]`, /0, out of range; expected an integer from 1 to 100/]] },
    { name: 'wildcard inside a locality', spec: policy({ loadBalancer: { localityLbSetting: { distribute: [{ from: 'a/*/c', to: { 'a/*': 100 } }] } } }), problems: [[`${lb}.localityLbSetting.distribute[0].from`, /"\*" may appear once, at the end/]] },
    { name: 'overlapping localities', spec: policy({ loadBalancer: { localityLbSetting: { distribute: [{ from: 'a/*', to: { 'a/*': 100 } }, { from: 'a/z1', to: { 'a/*': 100 } }] } } }), problems: [[`${lb}.localityLbSetting.distribute[1].from`, /locality "a\/z1" overlaps "a\/\*"/]] },
    { name: 'failover to itself', spec: policy({ outlierDetection: { consecutive5xxErrors: 1 }, loadBalancer: { localityLbSetting: { failover: [{ from: 'a', to: 'a' }] } } }), problems: [[`${lb}.localityLbSetting.failover[0]`, /failover from "a" to itself/]] },
    { name: 'failover by zone', spec: policy({ outlierDetection: { consecutive5xxErrors: 1 }, loadBalancer: { localityLbSetting: { failover: [{ from: 'a/z1', to: 'b' }] } } }), problems: [[`${lb}.localityLbSetting.failover[0].from`, /is not a region; failover is between regions/]] },
    { name: 'failoverPriority', spec: policy({ loadBalancer: { localityLbSetting: { failoverPriority: ['topology.kubernetes.io/region'] } } }), problems: [[`${lb}.localityLbSetting.failoverPriority`, /not supported by Isthmus/]] },
    { name: 'empty connection pool', spec: policy({ connectionPool: {} }), problems: [[`${tp}.connectionPool`, /is empty; give tcp or http settings/]] },
    { name: 'negative max connections', spec: policy({ connectionPool: { tcp: { maxConnections: -1 } } }), problems: [[`${tp}.connectionPool.tcp.maxConnections`, /-1, out of range; expected an integer from 0 to 2147483647/]] },
    { name: 'connect timeout without unit', spec: policy({ connectionPool: { tcp: { connectTimeout: '30' } } }), problems: [[`${tp}.connectionPool.tcp.connectTimeout`, /"30" is not a duration/]] },
    { name: 'keepalive time 0', spec: policy({ connectionPool: { tcp: { tcpKeepalive: { time: '0s' } } } }), problems: [[`${tp}.connectionPool.tcp.tcpKeepalive.time`, /it must be at least 1ms/]] },
    { name: 'bad h2 upgrade policy', spec: policy({ connectionPool: { http: { h2UpgradePolicy: 'ALWAYS' } } }), problems: [[`${tp}.connectionPool.http.h2UpgradePolicy`, /expected one of: DEFAULT, DO_NOT_UPGRADE, UPGRADE/]] },
    { name: 'UPGRADE with client protocol', spec: policy({ connectionPool: { http: { h2UpgradePolicy: 'UPGRADE', useClientProtocol: true } } }), problems: [[`${tp}.connectionPool.http.useClientProtocol`, /must not be true when h2UpgradePolicy is UPGRADE/]] },
    { name: 'ejection percent over 100', spec: policy({ outlierDetection: { maxEjectionPercent: 101 } }), problems: [[`${tp}.outlierDetection.maxEjectionPercent`, /101, out of range; expected an integer from 0 to 100/]] },
    { name: 'negative 5xx errors', spec: policy({ outlierDetection: { consecutive5xxErrors: -1 } }), problems: [[`${tp}.outlierDetection.consecutive5xxErrors`, /-1, out of range/]] },
    { name: 'interval as a number', spec: policy({ outlierDetection: { interval: 10 } }), problems: [[`${tp}.outlierDetection.interval`, /must be a duration string/]] },
    { name: 'deprecated consecutiveErrors', spec: policy({ outlierDetection: { consecutiveErrors: 5 } }), problems: [[`${tp}.outlierDetection.consecutiveErrors`, /deprecated in Istio; use consecutive5xxErrors or consecutiveGatewayErrors/]] },
    { name: 'local-origin failures without split', spec: policy({ outlierDetection: { consecutiveLocalOriginFailures: 3 } }), problems: [[`${tp}.outlierDetection.consecutiveLocalOriginFailures`, /needs splitExternalLocalOriginErrors: true/]] },
    { name: 'bad TLS mode', spec: policy({ tls: { mode: 'STRICT' } }), problems: [[`${tp}.tls.mode`, /expected one of: DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL/]] },
    { name: 'MUTUAL without certificate', spec: policy({ tls: { mode: 'MUTUAL', privateKey: '/k', caCertificates: '/ca' } }), problems: [[`${tp}.tls.clientCertificate`, /mode MUTUAL needs clientCertificate/]] },
    { name: 'port-level without port', spec: policy({ portLevelSettings: [{ loadBalancer: { simple: 'RANDOM' } }] }), problems: [[`${tp}.portLevelSettings[0].port`, /port is missing/]] },
    { name: 'port-level without settings', spec: policy({ portLevelSettings: [{ port: { number: 80 } }] }), problems: [[`${tp}.portLevelSettings[0]`, /has no settings/]] },
    { name: 'port-level twice for a port', spec: policy({ portLevelSettings: [{ port: { number: 80 }, loadBalancer: { simple: 'RANDOM' } }, { port: { number: 80 }, loadBalancer: { simple: 'ROUND_ROBIN' } }] }), problems: [[`${tp}.portLevelSettings[1].port.number`, /port 80 already has settings in spec\.trafficPolicy\.portLevelSettings\[0\]/]] },
    { name: 'port-level subsets', spec: policy({ portLevelSettings: [{ port: { number: 80 }, subsets: [] }] }), problems: [[`${tp}.portLevelSettings[0].subsets`, /unknown field "subsets"/], [`${tp}.portLevelSettings[0]`, /has no settings/]] },
    { name: 'tunnel', spec: policy({ tunnel: { protocol: 'CONNECT' } }), problems: [[`${tp}.tunnel`, /not supported by Isthmus: tunneling/], [tp, /is empty/]] },
    { name: 'subset policy problem', spec: spec({ subsets: [{ name: 'v1', trafficPolicy: { loadBalancer: { simple: 'NOPE' } } }] }), problems: [['spec.subsets[0].trafficPolicy.loadBalancer.simple', /"NOPE" is not valid/]] },
  ];

  for (const c of cases) {
    it(`rejects ${c.name}`, () => {
      const docs = parseDocs(doc('DestinationRule', 'before', spec()), doc('DestinationRule', 'bad', c.spec), doc('DestinationRule', 'after', spec()));
      assert.deepEqual(docs.map((d) => d.ok), [true, false, true]);
      const rs = rejectionsOf(docs[1]!);
      assert.deepEqual(rs.map((r) => r.field), c.problems.map(([f]) => f), `fields; got ${JSON.stringify(rs.map((r) => [r.field, r.reason]), null, 1)}`);
      c.problems.forEach(([, re], i) => assert.match(rs[i]!.reason, re));
      for (const r of rs) assert.deepEqual([r.source, r.document, r.kind, r.name], [SOURCE, 1, 'DestinationRule', 'bad']);
    });
  }
});
