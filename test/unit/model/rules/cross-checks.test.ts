import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DestinationRule, VirtualService } from '../../../../src/model/rules/types.ts';
import type { Service } from '../../../../src/model/types.ts';
import { canonicalHost, checkRules, findDestinationRule, hostIndex, qualifyHost } from '../../../../src/model/rules/index.ts';
import { doc, drOf, parseDocs, SOURCE, vsOf } from './helpers.ts';

/** Parses rule documents (as one file) and splits them by kind, in order. */
function rules(...docs: Record<string, unknown>[]): { vs: VirtualService[]; dr: DestinationRule[] } {
  const parsed = parseDocs(...docs);
  return {
    vs: parsed.filter((d) => d.ok && d.virtualServices.length).map(vsOf),
    dr: parsed.filter((d) => d.ok && d.destinationRules.length).map(drOf),
  };
}

const to = (host: string, subset?: string, weight?: number): Record<string, unknown> => ({
  destination: { host, ...(subset ? { subset } : {}) },
  ...(weight !== undefined ? { weight } : {}),
});

const vs = (name: string, hosts: string[], route: Record<string, unknown>[], extra: Record<string, unknown> = {}, ns = 'shop'): Record<string, unknown> =>
  doc('VirtualService', name, { hosts, http: [{ route }], ...extra }, ns);

const dr = (name: string, host: string, subsets: string[], extra: Record<string, unknown> = {}, ns = 'shop'): Record<string, unknown> =>
  doc('DestinationRule', name, { host, subsets: subsets.map((s) => ({ name: s, labels: { version: s } })), ...extra }, ns);

function service(hostname: string, namespace = 'shop', interfaces: { name: string; hostname: string }[] = []): Service {
  return {
    hostname,
    aliases: [],
    namespace,
    ports: [{ name: 'http', number: 80, protocol: 'HTTP' }],
    addresses: [],
    resolution: 'STATIC',
    location: 'MESH_INTERNAL',
    interfaces: interfaces.map((i) => ({ ...i, methods: [] })),
    origin: { registry: 'test', ref: hostname },
  };
}

const names = (xs: readonly { name: string }[]): string[] => xs.map((x) => x.name);
const problems = (rs: readonly { document?: number; field?: string; reason: string }[]): [number | undefined, string | undefined, string][] =>
  rs.map((r) => [r.document, r.field, r.reason]);

describe('checkRules', () => {
  it('accepts rules whose subsets are defined, and keeps the order given', () => {
    const r = rules(
      dr('reviews', 'reviews.shop.local', ['v1', 'v2']),
      vs('canary', ['reviews.shop.local'], [to('reviews.shop.local', 'v1', 90), to('reviews.shop.local', 'v2', 10)]),
      vs('ratings', ['ratings.shop.local'], [to('ratings.shop.local')]),
    );
    const out = checkRules(r.vs, r.dr);
    assert.deepEqual(out.rejections, []);
    assert.deepEqual(out.warnings, []);
    assert.deepEqual(names(out.accepted.virtualServices), ['canary', 'ratings']);
    assert.deepEqual(names(out.accepted.destinationRules), ['reviews']);
  });

  it('refuses a VirtualService whose subset no DestinationRule defines, and applies the others', () => {
    const r = rules(
      dr('reviews', 'reviews.shop.local', ['v1']),
      vs('bad-subset', ['reviews.shop.local'], [to('reviews.shop.local', 'v1', 50), to('reviews.shop.local', 'v3', 50)]),
      vs('no-rule', ['ratings.shop.local'], [to('ratings.shop.local', 'v1')]),
      vs('mirror', ['details.shop.local'], [to('details.shop.local')], { http: [{ route: [to('details.shop.local')], mirror: { host: 'reviews.shop.local', subset: 'shadow' } }] }),
      vs('tcp', ['db.shop.local'], [], { http: undefined, tcp: [{ route: [to('db.shop.local', 'primary')] }] }),
      vs('fine', ['web.shop.local'], [to('reviews.shop.local', 'v1')]),
    );
    const out = checkRules(r.vs, r.dr);
    assert.deepEqual(names(out.accepted.virtualServices), ['fine']);
    assert.deepEqual(names(out.accepted.destinationRules), ['reviews']);
    const reviews = `DestinationRule shop/reviews (${SOURCE}#0)`;
    assert.deepEqual(problems(out.rejections), [
      [1, 'spec.http[0].route[1].destination.subset', `subset "v3" is not defined by ${reviews}, which defines "v1"`],
      [2, 'spec.http[0].route[0].destination.subset', 'subset "v1" of host "ratings.shop.local" is defined by no DestinationRule'],
      [3, 'spec.http[0].mirror.subset', `subset "shadow" is not defined by ${reviews}, which defines "v1"`],
      [4, 'spec.tcp[0].route[0].destination.subset', 'subset "primary" of host "db.shop.local" is defined by no DestinationRule'],
    ]);
    assert.deepEqual(out.rejections.map((x) => [x.source, x.kind]), Array(4).fill([SOURCE, 'VirtualService']));
  });

  it('keeps the first of two VirtualServices claiming one host in one namespace', () => {
    const r = rules(
      vs('first', ['reviews.shop.local', 'a.shop.local'], [to('reviews.shop.local')]),
      vs('second', ['b.shop.local', 'REVIEWS.shop.local'], [to('reviews.shop.local')]),
      vs('short', ['reviews'], [to('reviews')]), // reviews.shop.svc.cluster.local: another host
    );
    const out = checkRules(r.vs, r.dr);
    assert.deepEqual(names(out.accepted.virtualServices), ['first', 'short']);
    assert.deepEqual(problems(out.rejections), [
      [1, 'spec.hosts[1]', `host "REVIEWS.shop.local" is already routed by VirtualService shop/first (${SOURCE}#0); one VirtualService per host: the first is kept and this one is ignored (merge the two)`],
    ]);
  });

  it('does not let a refused rule shadow a later good one for the same host', () => {
    const r = rules(
      dr('reviews', 'reviews.shop.local', ['v1']),
      vs('broken', ['reviews.shop.local'], [to('reviews.shop.local', 'v7')]),
      vs('good', ['reviews.shop.local'], [to('reviews.shop.local', 'v1')]),
    );
    const out = checkRules(r.vs, r.dr);
    assert.deepEqual(names(out.accepted.virtualServices), ['good']);
    assert.deepEqual(out.rejections.map((x) => [x.name, x.field]), [['broken', 'spec.http[0].route[0].destination.subset']]);
  });

  it('sees a conflict across namespaces only where both rules are visible', () => {
    const r = rules(
      vs('a', ['reviews.shop.local'], [to('reviews.shop.local')], {}, 'team-a'),
      vs('b', ['reviews.shop.local'], [to('reviews.shop.local')], { exportTo: ['.'] }, 'team-b'),
      vs('c', ['ratings.shop.local'], [to('ratings.shop.local')], { exportTo: ['.'] }, 'team-a'),
      vs('d', ['ratings.shop.local'], [to('ratings.shop.local')], { exportTo: ['.'] }, 'team-b'),
    );
    const out = checkRules(r.vs, r.dr);
    // a is exported everywhere, so team-b sees both a and b; c and d never meet.
    assert.deepEqual(names(out.accepted.virtualServices), ['a', 'c', 'd']);
    assert.deepEqual(out.rejections.map((x) => [x.name, x.field]), [['b', 'spec.hosts[0]']]);
  });

  it('ignores gateway-only rules when looking for conflicts', () => {
    const r = rules(
      vs('gw', ['reviews.shop.local'], [to('reviews.shop.local')], { gateways: ['istio-system/ingress'] }),
      vs('mesh', ['reviews.shop.local'], [to('reviews.shop.local')]),
    );
    assert.deepEqual(checkRules(r.vs, r.dr).rejections, []);
  });

  it('keeps the first of two DestinationRules for one host; a short name is the same host as its FQDN', () => {
    const r = rules(
      dr('first', 'reviews', ['v1']),
      dr('second', 'reviews.shop.svc.cluster.local', ['v1', 'v2']),
      dr('elsewhere', 'reviews', ['v2'], {}, 'other'), // reviews.other.svc.cluster.local
      vs('uses-v2', ['reviews'], [to('reviews', 'v2')]),
    );
    const out = checkRules(r.vs, r.dr);
    assert.deepEqual(names(out.accepted.destinationRules), ['first', 'elsewhere']);
    assert.deepEqual(names(out.accepted.virtualServices), []);
    assert.deepEqual(problems(out.rejections), [
      [1, 'spec.host', `host "reviews.shop.svc.cluster.local" already has DestinationRule shop/first (${SOURCE}#0); one DestinationRule per host: the first is kept and this one is ignored (merge the two)`],
      [3, 'spec.http[0].route[0].destination.subset', `subset "v2" is not defined by DestinationRule shop/first (${SOURCE}#0), which defines "v1"`],
    ]);
  });

  it('uses the most specific wildcard DestinationRule for a host, and only one visible to the caller', () => {
    const r = rules(
      dr('any', '*.local', ['v9']),
      dr('shop', '*.shop.local', ['v1']),
      dr('private', 'web.shop.local', ['v1'], { exportTo: ['.'] }, 'other'),
      vs('ok', ['reviews.shop.local'], [to('reviews.shop.local', 'v1')]),
      vs('too-general', ['web.shop.local'], [to('web.shop.local', 'v9')]),
    );
    const out = checkRules(r.vs, r.dr);
    assert.deepEqual(names(out.accepted.virtualServices), ['ok']);
    assert.deepEqual(problems(out.rejections), [
      [4, 'spec.http[0].route[0].destination.subset', `subset "v9" is not defined by DestinationRule shop/shop (${SOURCE}#1), which defines "v1"`],
    ]);
    assert.equal(findDestinationRule(r.dr, 'web.shop.local', 'other')?.name, 'private');
    assert.equal(findDestinationRule(r.dr, 'web.shop.local', 'shop')?.name, 'shop');
    assert.equal(findDestinationRule(r.dr, 'x.example.local', 'shop')?.name, 'any');
    assert.equal(findDestinationRule(r.dr, 'x.example.com', 'shop'), undefined);
  });

  it('warns about hosts no registry knows, and matches interfaces by name or DNS name', () => {
    const index = hostIndex([
      service('userservice.rpc.cluster.local', 'rpc', [{ name: 'com.alipay.userservice.UserQuery', hostname: 'com.alipay.userservice.userquery.rpc.cluster.local' }]),
      service('reviews', 'shop'), // a ServiceEntry with a short host
    ]);
    const r = rules(
      dr('iface', 'com.alipay.userservice.userquery.rpc.cluster.local', ['v2']),
      vs('canary', ['com.alipay.userservice.UserQuery'], [to('com.alipay.userservice.UserQuery', 'v1', 95), to('com.alipay.userservice.UserQuery', 'v2', 5)]),
      vs('short', ['reviews', 'ghost.shop.local'], [to('reviews', undefined, 50), to('gone.shop.local', undefined, 50)]),
      dr('nobody', 'nobody.shop.local', ['v1']),
    );
    const out = checkRules(r.vs, r.dr, index);
    assert.deepEqual(names(out.accepted.virtualServices), ['short']);
    assert.deepEqual(problems(out.rejections), [
      [1, 'spec.http[0].route[0].destination.subset', `subset "v1" is not defined by DestinationRule shop/iface (${SOURCE}#0), which defines "v2"`],
    ]);
    assert.deepEqual(problems(out.warnings).map(([d, f]) => [d, f]), [
      [3, 'spec.host'],
      [2, 'spec.http[0].route[1].destination.host'],
      [2, 'spec.hosts[1]'],
    ]);
    assert.match(out.warnings[0]!.reason, /^host "nobody\.shop\.local" is not a service or interface any registry knows \(yet\)/);
    assert.equal(canonicalHost('com.alipay.userservice.UserQuery', 'shop', index), 'com.alipay.userservice.userquery.rpc.cluster.local');
    assert.equal(canonicalHost('reviews', 'shop', index), 'reviews');
    assert.equal(canonicalHost('reviews', 'other', index), 'reviews.other.svc.cluster.local');
  });
});

describe('qualifyHost', () => {
  it('qualifies short names the way Istio does and leaves the rest', () => {
    assert.equal(qualifyHost('reviews', 'shop'), 'reviews.shop.svc.cluster.local');
    assert.equal(qualifyHost('Reviews.Shop.Local.', 'shop'), 'reviews.shop.local');
    assert.equal(qualifyHost('*', 'shop'), '*');
    assert.equal(qualifyHost('10.0.0.1', 'shop'), '10.0.0.1');
  });
});
