import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { VirtualService } from '../../../../src/model/rules/types.ts';
import { doc, parseDocs, parseOne, REG, rejectionsOf, SOURCE, vsOf, warningsOf } from './helpers.ts';

const ROUTE = [{ destination: { host: 'reviews.shop.local' } }];

/** A valid VirtualService spec; `patch` replaces top-level spec fields. */
function spec(patch: Record<string, unknown> = {}): Record<string, unknown> {
  return { hosts: ['reviews.shop.local'], http: [{ route: ROUTE }], ...patch };
}

/** A spec whose single HTTP rule is `route` (merged over a plain route). */
const http = (route: Record<string, unknown>): Record<string, unknown> => spec({ http: [{ route: ROUTE, ...route }] });

/** A spec whose single HTTP rule has one match. */
const match = (m: Record<string, unknown>): Record<string, unknown> => http({ match: [m] });

describe('VirtualService: valid documents map to the typed model', () => {
  it('maps every supported field, with durations in ms and Istio defaults filled in', () => {
    const d = parseOne(
      doc('VirtualService', 'reviews', {
        hosts: ['reviews.shop.local', 'reviews', 'com.alipay.userservice.UserQuery'],
        gateways: ['mesh'],
        exportTo: ['.'],
        http: [
          {
            name: 'canary',
            match: [
              {
                name: 'api',
                uri: { prefix: '/api' },
                method: { exact: 'GET' },
                authority: { regex: '^reviews(:[0-9]+)?$' },
                headers: { 'x-user': { exact: 'alice' }, 'x-debug': {} },
                withoutHeaders: { 'x-skip': { prefix: 'y' } },
                queryParams: { v: { regex: '^[0-9]+$' }, flag: { exact: '' } },
                port: 80,
                sourceLabels: { app: 'web' },
                gateways: ['mesh'],
                ignoreUriCase: true,
              },
            ],
            route: [
              { destination: { host: 'reviews.shop.local', subset: 'v2', port: { number: 80 } }, weight: 90, headers: { response: { remove: ['x-internal'] } } },
              { destination: { host: 'reviews.shop.local', subset: 'v1' }, weight: 10 },
            ],
            rewrite: { uri: '/v2/api' },
            timeout: '1.5s',
            retries: { attempts: 3, perTryTimeout: '500ms', retryOn: '5xx,connect-failure,503' },
            fault: { delay: { fixedDelay: '100ms', percentage: { value: 10 } }, abort: { grpcStatus: 'UNAVAILABLE', percentage: { value: 0.5 } } },
            mirror: { host: 'reviews.shop.local', subset: 'v1' },
            mirrorPercentage: { value: 25 },
            headers: { request: { set: { 'x-a': '1', host: 'reviews.internal' }, add: { 'x-b': '%HOSTNAME% 100%%' }, remove: ['x-c'] } },
          },
          { match: [{ uri: { exact: '/old' } }], redirect: { uri: '/new', redirectCode: 308 } },
          { route: [{ destination: { host: 'reviews.shop.local' }, weight: 0 }], timeout: '1m30s', fault: { abort: { httpStatus: 503, percentage: { value: 100 } } } },
        ],
        tcp: [
          { match: [{ port: 9000, destinationSubnets: ['10.0.0.0/8', '192.168.1.1'], sourceLabels: { app: 'db-client' } }], route: [{ destination: { host: 'db.shop.local', port: { number: 5432 } } }] },
          { route: [{ destination: { host: 'db.shop.local', subset: 'a' }, weight: 70 }, { destination: { host: 'db.shop.local', subset: 'b' }, weight: 30 }] },
        ],
      }),
    );
    assert.deepEqual(rejectionsOf(d), []);
    const expected: VirtualService = {
      name: 'reviews',
      namespace: 'shop',
      origin: { registry: REG, ref: `${SOURCE}#0 VirtualService shop/reviews` },
      location: { source: SOURCE, document: 0 },
      appliesToMesh: true,
      spec: {
        hosts: ['reviews.shop.local', 'reviews', 'com.alipay.userservice.UserQuery'],
        gateways: ['mesh'],
        exportTo: ['.'],
        http: [
          {
            name: 'canary',
            match: [
              {
                name: 'api',
                uri: { type: 'prefix', value: '/api' },
                method: { type: 'exact', value: 'GET' },
                authority: { type: 'regex', value: '^reviews(:[0-9]+)?$' },
                headers: { 'x-user': { type: 'exact', value: 'alice' }, 'x-debug': { type: 'present' } },
                withoutHeaders: { 'x-skip': { type: 'prefix', value: 'y' } },
                queryParams: { v: { type: 'regex', value: '^[0-9]+$' }, flag: { type: 'exact', value: '' } },
                port: 80,
                sourceLabels: { app: 'web' },
                gateways: ['mesh'],
                ignoreUriCase: true,
              },
            ],
            route: [
              { destination: { host: 'reviews.shop.local', subset: 'v2', port: 80 }, weight: 90, headers: { response: { set: {}, add: {}, remove: ['x-internal'] } } },
              { destination: { host: 'reviews.shop.local', subset: 'v1' }, weight: 10 },
            ],
            rewrite: { uri: '/v2/api' },
            timeoutMs: 1500,
            retries: { attempts: 3, perTryTimeoutMs: 500, retryOn: ['5xx', 'connect-failure', '503'] },
            fault: { delay: { fixedDelayMs: 100, percentage: 10 }, abort: { type: 'grpc', grpcStatus: 'UNAVAILABLE', grpcCode: 14, percentage: 0.5 } },
            mirror: { destination: { host: 'reviews.shop.local', subset: 'v1' }, percentage: 25 },
            headers: { request: { set: { 'x-a': '1', host: 'reviews.internal' }, add: { 'x-b': '%HOSTNAME% 100%%' }, remove: ['x-c'] } },
          },
          { match: [{ uri: { type: 'exact', value: '/old' }, headers: {}, withoutHeaders: {}, queryParams: {}, sourceLabels: {}, gateways: [], ignoreUriCase: false }], route: [], redirect: { uri: '/new', redirectCode: 308 } },
          // A single destination takes all the traffic whatever its weight says.
          { match: [], route: [{ destination: { host: 'reviews.shop.local' }, weight: 100 }], timeoutMs: 90_000, fault: { abort: { type: 'http', httpStatus: 503, percentage: 100 } } },
        ],
        tcp: [
          { match: [{ port: 9000, destinationSubnets: ['10.0.0.0/8', '192.168.1.1'], sourceLabels: { app: 'db-client' }, gateways: [] }], route: [{ destination: { host: 'db.shop.local', port: 5432 }, weight: 100 }] },
          { match: [], route: [{ destination: { host: 'db.shop.local', subset: 'a' }, weight: 70 }, { destination: { host: 'db.shop.local', subset: 'b' }, weight: 30 }] },
        ],
      },
    };
    assert.deepEqual(vsOf(d), expected);
    assert.deepEqual(warningsOf(d), []);
  });

  it('accepts the older API versions and fills defaults: redirect 301, mirror 100%, no gateways = mesh', () => {
    for (const apiVersion of ['networking.istio.io/v1beta1', 'networking.istio.io/v1alpha3']) {
      const d = parseOne({
        ...doc('VirtualService', 'r', spec({ http: [{ redirect: { authority: 'new.shop.local' } }, { route: ROUTE, mirror: { host: 'shadow.shop.local' } }] })),
        apiVersion,
      });
      const v = vsOf(d);
      assert.equal(v.appliesToMesh, true);
      assert.deepEqual(v.spec.http[0]?.redirect, { authority: 'new.shop.local', redirectCode: 301 });
      assert.deepEqual(v.spec.http[1]?.mirror, { destination: { host: 'shadow.shop.local' }, percentage: 100 });
    }
  });

  it('accepts Go durations, the protobuf JSON form included', () => {
    const cases: [string, number][] = [['1s', 1000], ['0.5s', 500], ['100ms', 100], ['1m30s', 90_000], ['2h', 7_200_000], ['1.001s', 1001], ['1000us', 1], ['3000000ns', 3]];
    for (const [text, ms] of cases) assert.equal(vsOf(parseOne(doc('VirtualService', 'r', http({ timeout: text })))).spec.http[0]?.timeoutMs, ms, text);
  });
});

describe('VirtualService: warnings do not reject', () => {
  it('warns about a rule bound only to gateways, rules after a catch-all, and faults without a percentage', () => {
    const d = parseOne(
      doc('VirtualService', 'r', spec({
        gateways: ['istio-system/ingress'],
        http: [{ route: ROUTE, fault: { delay: { fixedDelay: '1s' } } }, { match: [{ uri: { prefix: '/a' } }], route: ROUTE }],
      })),
    );
    const v = vsOf(d);
    assert.equal(v.appliesToMesh, false);
    assert.deepEqual(v.spec.http[0]?.fault, { delay: { fixedDelayMs: 1000, percentage: 0 } });
    assert.deepEqual(
      warningsOf(d).map((w) => [w.field, w.reason]),
      [
        ['spec.gateways', 'the rule is bound only to gateways, not to "mesh"; Isthmus serves sidecars and proxyless clients only, so it has no effect'],
        ['spec.http[0].fault.delay.percentage', 'percentage is not set; Istio then leaves every request undelayed; set percentage: { value: 100 } to delay all'],
        ['spec.http[1]', 'this rule is never used: spec.http[0] before it has no match and takes all traffic'],
      ],
    );
    assert.deepEqual(warningsOf(d).map((w) => [w.source, w.document, w.kind, w.name]), Array(3).fill([SOURCE, 0, 'VirtualService', 'r']));
  });
});

describe('VirtualService: rejections name the field and the reason', () => {
  // Each case is document 1 between two good ones; all its rejections are listed exactly (field, reason pattern).
  const cases: { name: string; spec: unknown; problems: [string, RegExp][] }[] = [
    { name: 'unknown field', spec: http({ bogus: 1 }), problems: [['spec.http[0].bogus', /^unknown field "bogus"; expected one of: name, match, route, redirect, rewrite, timeout, retries, fault, mirror, mirrorPercentage, headers$/]] },
    { name: 'unknown spec field', spec: spec({ host: 'x' }), problems: [['spec.host', /^unknown field "host"; expected one of: hosts, gateways, http, tcp, exportTo$/]] },
    { name: 'Istio field Isthmus lacks', spec: http({ corsPolicy: { allowOrigins: [{ exact: 'a' }] } }), problems: [['spec.http[0].corsPolicy', /valid Istio but not supported by Isthmus: CORS/]] },
    { name: 'TLS routes', spec: spec({ tls: [{ match: [{ sniHosts: ['a'] }], route: ROUTE }] }), problems: [['spec.tls', /valid Istio but not supported by Isthmus: TLS routes/]] },
    { name: 'hosts not a list', spec: spec({ hosts: 'reviews.shop.local' }), problems: [['spec.hosts', /^spec\.hosts must be a list, not the string "reviews\.shop\.local"$/]] },
    { name: 'no hosts', spec: spec({ hosts: [] }), problems: [['spec.hosts', /spec\.hosts is empty/]] },
    { name: 'bad host', spec: spec({ hosts: ['web_1.shop.local'] }), problems: [['spec.hosts[0]', /host "web_1\.shop\.local" has an invalid label "web_1"/]] },
    { name: 'numeric TLD', spec: spec({ hosts: ['a.123'] }), problems: [['spec.hosts[0]', /all-numeric top-level label "123"/]] },
    { name: 'host "*" for the mesh', spec: spec({ hosts: ['*'] }), problems: [['spec.hosts[0]', /host "\*" is not allowed for a rule that applies to the mesh/]] },
    { name: 'overlapping hosts', spec: spec({ hosts: ['*.shop.local', 'a.shop.local'] }), problems: [['spec.hosts[1]', /host "a\.shop\.local" duplicates "\*\.shop\.local" \(spec\.hosts\[0\]\)/]] },
    { name: 'no routes', spec: spec({ http: [] }), problems: [['spec', /a VirtualService needs http or tcp routes/]] },
    { name: 'route and redirect', spec: http({ redirect: { uri: '/x' } }), problems: [['spec.http[0].redirect', /has both route and redirect/]] },
    { name: 'neither route nor redirect', spec: spec({ http: [{ timeout: '1s' }] }), problems: [['spec.http[0].route', /needs route destinations or a redirect/]] },
    { name: 'weights not summing to 100', spec: http({ route: [{ destination: { host: 'a.shop.local' }, weight: 90 }, { destination: { host: 'b.shop.local' }, weight: 20 }] }), problems: [['spec.http[0].route', /^weights 90 \+ 20 sum to 110; with more than one destination the weights must sum to 100$/]] },
    { name: 'weights left out', spec: http({ route: [{ destination: { host: 'a.shop.local' } }, { destination: { host: 'b.shop.local' } }] }), problems: [['spec.http[0].route', /weights 0 \+ 0 sum to 0/]] },
    { name: 'weight over 100', spec: http({ route: [{ destination: { host: 'a.shop.local' }, weight: 101 }] }), problems: [['spec.http[0].route[0].weight', /101, out of range; expected an integer from 0 to 100/]] },
    { name: 'weight as a string', spec: http({ route: [{ destination: { host: 'a.shop.local' }, weight: '50' }] }), problems: [['spec.http[0].route[0].weight', /must be an integer from 0 to 100, not the string "50"/]] },
    { name: 'two match kinds', spec: match({ uri: { exact: '/a', prefix: '/b' } }), problems: [['spec.http[0].match[0].uri', /sets exact and prefix; exactly one of exact, prefix, regex is allowed/]] },
    { name: 'empty uri match', spec: match({ uri: {} }), problems: [['spec.http[0].match[0].uri', /is empty; expected one of: exact, prefix, regex/]] },
    { name: 'empty prefix', spec: match({ uri: { prefix: '' } }), problems: [['spec.http[0].match[0].uri.prefix', /is empty; an empty prefix would match everything/]] },
    { name: 'lookahead regex', spec: match({ uri: { regex: '/api(?!/internal)' } }), problems: [['spec.http[0].match[0].uri.regex', /does not compile as RE2 .*lookahead "\(\?!" is not supported by RE2/]] },
    { name: 'backreference in a header regex', spec: match({ headers: { 'x-id': { regex: '(a)\\1' } } }), problems: [['spec.http[0].match[0].headers.x-id.regex', /backreference "\\1" is not supported by RE2/]] },
    { name: 'pseudo-header match', spec: match({ headers: { ':path': { exact: '/' } } }), problems: [['spec.http[0].match[0].headers[":path"]', /header name ":path" is not valid/]] },
    { name: 'query prefix', spec: match({ queryParams: { v: { prefix: '1' } } }), problems: [['spec.http[0].match[0].queryParams.v.prefix', /prefix matching is not supported here .* use a regex such as "\^1"/]] },
    { name: 'null query match', spec: match({ queryParams: { v: null } }), problems: [['spec.http[0].match[0].queryParams.v', /is empty; expected exact or regex/]] },
    { name: 'match port 0', spec: match({ port: 0 }), problems: [['spec.http[0].match[0].port', /0, out of range; expected an integer from 1 to 65535/]] },
    { name: 'bad source label', spec: match({ sourceLabels: { app: 'a b' } }), problems: [['spec.http[0].match[0].sourceLabels.app', /label value "a b" is invalid/]] },
    { name: 'ignoreUriCase not a bool', spec: match({ ignoreUriCase: 'yes' }), problems: [['spec.http[0].match[0].ignoreUriCase', /must be true or false, not the string "yes"/]] },
    { name: 'scheme match', spec: match({ scheme: { exact: 'https' } }), problems: [['spec.http[0].match[0].scheme', /not supported by Isthmus/]] },
    { name: 'wildcard destination', spec: http({ route: [{ destination: { host: '*.shop.local' } }] }), problems: [['spec.http[0].route[0].destination.host', /is a wildcard; a single service must be named here/]] },
    { name: 'missing destination', spec: http({ route: [{ weight: 100 }] }), problems: [['spec.http[0].route[0].destination', /destination is missing/]] },
    { name: 'missing destination host', spec: http({ route: [{ destination: { subset: 'v1' } }] }), problems: [['spec.http[0].route[0].destination.host', /host is missing/]] },
    { name: 'bad subset name', spec: http({ route: [{ destination: { host: 'a.shop.local', subset: 'v_1' } }] }), problems: [['spec.http[0].route[0].destination.subset', /subset name "v_1" is not a valid DNS-1123 label/]] },
    { name: 'bad destination port', spec: http({ route: [{ destination: { host: 'a.shop.local', port: { number: 70000 } } }] }), problems: [['spec.http[0].route[0].destination.port.number', /70000, out of range/]] },
    { name: 'port by name', spec: http({ route: [{ destination: { host: 'a.shop.local', port: { name: 'http' } } }] }), problems: [['spec.http[0].route[0].destination.port.name', /unknown field "name"; expected one of: number/], ['spec.http[0].route[0].destination.port.number', /is missing/]] },
    { name: 'duration without unit', spec: http({ timeout: '10' }), problems: [['spec.http[0].timeout', /"10" is not a duration; expected a number with a unit/]] },
    { name: 'duration as a number', spec: http({ timeout: 10 }), problems: [['spec.http[0].timeout', /must be a duration string such as "1s", "1\.5s" or "100ms", not the number 10/]] },
    { name: 'negative duration', spec: http({ timeout: '-1s' }), problems: [['spec.http[0].timeout', /is -1s; it must be at least 1ms/]] },
    { name: 'zero duration', spec: http({ timeout: '0s' }), problems: [['spec.http[0].timeout', /is 0s; it must be at least 1ms/]] },
    { name: 'sub-millisecond duration', spec: http({ timeout: '1.0005s' }), problems: [['spec.http[0].timeout', /only whole milliseconds are supported/]] },
    { name: 'negative attempts', spec: http({ retries: { attempts: -1 } }), problems: [['spec.http[0].retries.attempts', /-1, out of range/]] },
    { name: 'unknown retryOn', spec: http({ retries: { attempts: 2, retryOn: '5xx,sometimes' } }), problems: [['spec.http[0].retries.retryOn', /"sometimes" is not a retryOn policy/]] },
    { name: 'retryOn with a space', spec: http({ retries: { attempts: 2, retryOn: '5xx, reset' } }), problems: [['spec.http[0].retries.retryOn', /" reset" is not a retryOn policy; expected a comma-separated list \(no spaces\)/]] },
    { name: 'retry policy without attempts', spec: http({ retries: { perTryTimeout: '1s' } }), problems: [['spec.http[0].retries.attempts', /attempts is missing \(0\), which disables retries, yet perTryTimeout or retryOn is set/]] },
    { name: 'empty fault', spec: http({ fault: {} }), problems: [['spec.http[0].fault', /must have a delay, an abort, or both/]] },
    { name: 'abort with both codes', spec: http({ fault: { abort: { httpStatus: 500, grpcStatus: 'INTERNAL', percentage: { value: 1 } } } }), problems: [['spec.http[0].fault.abort', /sets both httpStatus and grpcStatus/]] },
    { name: 'abort without a code', spec: http({ fault: { abort: { percentage: { value: 1 } } } }), problems: [['spec.http[0].fault.abort', /needs httpStatus or grpcStatus/]] },
    { name: 'abort status 600', spec: http({ fault: { abort: { httpStatus: 600, percentage: { value: 1 } } } }), problems: [['spec.http[0].fault.abort.httpStatus', /600, out of range; expected an integer from 200 to 599/]] },
    { name: 'unknown gRPC status', spec: http({ fault: { abort: { grpcStatus: 'BROKEN', percentage: { value: 1 } } } }), problems: [['spec.http[0].fault.abort.grpcStatus', /"BROKEN" is not valid; expected one of: OK, CANCELLED/]] },
    { name: 'delay without fixedDelay', spec: http({ fault: { delay: { percentage: { value: 1 } } } }), problems: [['spec.http[0].fault.delay.fixedDelay', /is missing/]] },
    { name: 'percentage over 100', spec: http({ fault: { delay: { fixedDelay: '1s', percentage: { value: 101 } } } }), problems: [['spec.http[0].fault.delay.percentage.value', /101, out of range; expected a number from 0 to 100/]] },
    { name: 'percentage too small', spec: http({ fault: { delay: { fixedDelay: '1s', percentage: { value: 0.00001 } } } }), problems: [['spec.http[0].fault.delay.percentage.value', /expected 0 or a percentage from 0\.0001 to 100/]] },
    { name: 'deprecated integer percent', spec: http({ fault: { delay: { fixedDelay: '1s', percent: 10 } } }), problems: [['spec.http[0].fault.delay.percent', /deprecated in Istio; use percentage/]] },
    { name: 'fault with redirect', spec: spec({ http: [{ redirect: { uri: '/x' }, fault: { abort: { httpStatus: 500 } } }] }), problems: [['spec.http[0].fault', /has both fault and redirect/]] },
    { name: 'mirrorPercentage without mirror', spec: http({ mirrorPercentage: { value: 10 } }), problems: [['spec.http[0].mirrorPercentage', /mirrorPercentage is set but spec\.http\[0\]\.mirror is not/]] },
    { name: 'mirrorPercentage over 100', spec: http({ mirror: { host: 'a.shop.local' }, mirrorPercentage: { value: 150 } }), problems: [['spec.http[0].mirrorPercentage.value', /150, out of range/]] },
    { name: 'empty redirect', spec: spec({ http: [{ redirect: {} }] }), problems: [['spec.http[0].redirect', /must set at least one of uri, authority, scheme, port/]] },
    { name: 'redirect code Envoy cannot send', spec: spec({ http: [{ redirect: { uri: '/x', redirectCode: 305 } }] }), problems: [['spec.http[0].redirect.redirectCode', /305 cannot be sent by Envoy; expected one of: 301, 302, 303, 307, 308/]] },
    { name: 'redirect code not 3xx', spec: spec({ http: [{ redirect: { uri: '/x', redirectCode: 200 } }] }), problems: [['spec.http[0].redirect.redirectCode', /200, out of range; expected an integer from 300 to 399/]] },
    { name: 'redirect scheme', spec: spec({ http: [{ redirect: { scheme: 'ftp' } }] }), problems: [['spec.http[0].redirect.scheme', /"ftp" is not valid; expected one of: http, https/]] },
    { name: 'empty redirect uri', spec: spec({ http: [{ redirect: { uri: '' } }] }), problems: [['spec.http[0].redirect.uri', /spec\.http\[0\]\.redirect\.uri is empty/]] },
    { name: 'empty rewrite uri', spec: http({ rewrite: { uri: '' } }), problems: [['spec.http[0].rewrite.uri', /spec\.http\[0\]\.rewrite\.uri is empty/]] },
    { name: 'empty rewrite', spec: http({ rewrite: {} }), problems: [['spec.http[0].rewrite', /must set uri or authority/]] },
    { name: 'rewrite with redirect', spec: spec({ http: [{ redirect: { uri: '/x' }, rewrite: { uri: '/y' } }] }), problems: [['spec.http[0].rewrite', /has both rewrite and redirect/]] },
    { name: 'setting a pseudo-header', spec: http({ headers: { request: { set: { ':path': '/x' } } } }), problems: [['spec.http[0].headers.request.set[":path"]', /header ":path" cannot be changed: Envoy does not allow it/]] },
    { name: 'setting Host on a response', spec: http({ headers: { response: { set: { host: 'x' } } } }), problems: [['spec.http[0].headers.response.set.host', /cannot be changed in a response/]] },
    { name: 'lone % in a header value', spec: http({ headers: { request: { add: { 'x-pct': '100%' } } } }), problems: [['spec.http[0].headers.request.add.x-pct', /header value "100%" has an unterminated %COMMAND% expression; write "%%" for a literal "%"/]] },
    { name: 'authority set twice', spec: http({ rewrite: { authority: 'a.local' }, headers: { request: { set: { ':authority': 'b.local' } } } }), problems: [['spec.http[0].headers.request.set[":authority"]', /the authority is already set by rewrite\.authority/]] },
    { name: 'TCP rule without route', spec: spec({ http: undefined, tcp: [{ match: [{ port: 9000 }] }] }), problems: [['spec.tcp[0].route', /needs route destinations/]] },
    { name: 'bad destination subnet', spec: spec({ tcp: [{ match: [{ destinationSubnets: ['10.0.0.0/33'] }], route: ROUTE }] }), problems: [['spec.tcp[0].match[0].destinationSubnets[0]', /"10\.0\.0\.0\/33" is not an IP address or CIDR block/]] },
    { name: 'TCP weights', spec: spec({ tcp: [{ route: [{ destination: { host: 'a.shop.local' }, weight: 50 }, { destination: { host: 'b.shop.local' }, weight: 40 }] }] }), problems: [['spec.tcp[0].route', /weights 50 \+ 40 sum to 90/]] },
    { name: 'exportTo "~"', spec: spec({ exportTo: ['~'] }), problems: [['spec.exportTo[0]', /allowed only for ServiceEntry/]] },
    { name: 'exportTo duplicate', spec: spec({ exportTo: ['.', 'shop'] }), problems: [['spec.exportTo[1]', /exportTo entry "shop" repeats spec\.exportTo\[0\]/]] },
    { name: 'exportTo "*" with others', spec: spec({ exportTo: ['*', 'other'] }), problems: [['spec.exportTo', /cannot be combined with other entries/]] },
    { name: 'bad gateway name', spec: spec({ gateways: ['ns/Bad_Gw'] }), problems: [['spec.gateways[0]', /gateway "ns\/Bad_Gw" is not valid/]] },
    { name: 'null http rule', spec: spec({ http: [null] }), problems: [['spec.http[0]', /spec\.http\[0\] is empty/]] },
  ];

  for (const c of cases) {
    it(`rejects ${c.name}`, () => {
      const docs = parseDocs(doc('VirtualService', 'before', spec()), doc('VirtualService', 'bad', c.spec), doc('VirtualService', 'after', spec()));
      assert.deepEqual(docs.map((d) => d.ok), [true, false, true]);
      const rs = rejectionsOf(docs[1]!);
      assert.deepEqual(
        rs.map((r) => r.field),
        c.problems.map(([f]) => f),
        `fields; got ${JSON.stringify(rs.map((r) => [r.field, r.reason]), null, 1)}`,
      );
      c.problems.forEach(([, re], i) => assert.match(rs[i]!.reason, re));
      for (const r of rs) assert.deepEqual([r.source, r.document, r.kind, r.name], [SOURCE, 1, 'VirtualService', 'bad']);
    });
  }
});
