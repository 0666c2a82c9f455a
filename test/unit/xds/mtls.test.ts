// Automatic mTLS as a sidecar with the agent's certificates receives it, encoded as Envoy
// gets it: per-endpoint transport socket matches, inbound mTLS chains beside plaintext; a
// sidecar without certificates gets exactly what it got before.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { XdsCache } from '../../../src/xds/cache.ts';
import { decodeToJson, messageType } from '../../../src/xds/proto.ts';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE } from '../../../src/xds/resources.ts';
import { meshSni } from '../../../src/xds/generators/mtls.ts';
import { endpoint, model, proxy, service } from './fixtures.ts';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type J = Record<string, any>;
function decode(typeUrl: string, any: Uint8Array): J {
  const value = (messageType('google.protobuf.Any').decode(any) as unknown as { value: Uint8Array }).value;
  return decodeToJson(typeUrl.replace('type.googleapis.com/', ''), value);
}
const inner = (any: { type_url: string; value: string }): J => decodeToJson(any.type_url.replace('type.googleapis.com/', ''), Buffer.from(any.value, 'base64'));

function generation(trustDomain?: string) {
  const meshed = { ...endpoint('web.rpc.cluster.local', '10.0.0.1'), labels: { 'security.istio.io/tlsMode': 'istio' } };
  const m = model([service('web.rpc.cluster.local', 80)], [meshed, endpoint('web.rpc.cluster.local', '10.0.0.2')]);
  return new XdsCache(trustDomain ? { trustDomain } : {}).update(m, new Map([['web.rpc.cluster.local', '240.240.0.1']]));
}

test('EDS marks the endpoints whose sidecar terminates mesh mTLS', () => {
  const cla = decode(ENDPOINT_TYPE, generation().endpoints.get('outbound|80||web.rpc.cluster.local')!.any);
  const meta = cla.endpoints[0].lb_endpoints.map((e: J) => e.metadata.filter_metadata['envoy.transport_socket_match']?.fields?.tlsMode?.stringValue);
  assert.deepEqual(meta, ['istio', undefined]);
});

test('a sidecar with certificates: mTLS (SDS secrets, trust-domain SANs, ALPN istio, Istio SNI) to marked endpoints, plaintext to the rest', () => {
  const g = generation('acme.internal');
  const sds = proxy('s', { ISTHMUS_SDS: 'true' });
  const c = decode(CLUSTER_TYPE, g.view(sds).clusters.get('outbound|80||web.rpc.cluster.local')!.any);
  assert.deepEqual(c.transport_socket_matches.map((m: J) => [m.name, m.match.fields?.tlsMode?.stringValue]), [['tlsMode-istio', 'istio'], ['tlsMode-disabled', undefined]]);
  const tls = inner(c.transport_socket_matches[0].transport_socket.typed_config);
  assert.equal(tls.sni, 'outbound_.80_._.web.rpc.cluster.local');
  assert.deepEqual(tls.common_tls_context.alpn_protocols, ['istio']);
  assert.equal(tls.common_tls_context.tls_certificate_sds_secret_configs[0].name, 'default');
  assert.equal(tls.common_tls_context.tls_certificate_sds_secret_configs[0].sds_config.api_config_source.grpc_services[0].envoy_grpc.cluster_name, 'isthmus-sds');
  assert.equal(tls.common_tls_context.combined_validation_context.validation_context_sds_secret_config.name, 'ROOTCA');
  assert.deepEqual(tls.common_tls_context.combined_validation_context.default_validation_context.match_typed_subject_alt_names, [{ san_type: 'URI', matcher: { prefix: 'spiffe://acme.internal/' } }]);
  assert.equal(c.transport_socket_matches[1].transport_socket.name, 'envoy.transport_sockets.raw_buffer');
  // Without certificates: the shared cluster, no transport socket at all.
  const plain = decode(CLUSTER_TYPE, g.view(proxy('p')).clusters.get('outbound|80||web.rpc.cluster.local')!.any);
  assert.equal(plain.transport_socket_matches, undefined);
  assert.equal(meshSni('outbound|9080|v1|reviews.default.svc.cluster.local'), 'outbound_.9080_.v1_.reviews.default.svc.cluster.local');
});

test('inbound with certificates (PERMISSIVE): a TLS inspector, an mTLS chain per app port beside the plaintext one', () => {
  const g = generation();
  for (const [meta, name] of [[{ ISTHMUS_SDS: 'true', ISTHMUS_APP_PORTS: '8080:HTTP' }, 'virtualInbound'], [{ ISTHMUS_SDS: 'true', ISTHMUS_MODE: 'transparent', ISTHMUS_APP_PORTS: '8080:HTTP,7070:TCP' }, 'virtualInbound']] as const) {
    const l = decode(LISTENER_TYPE, g.view(proxy('i', meta)).listeners.get(name)!.any);
    assert.ok(l.listener_filters.some((f: J) => f.name === 'envoy.filters.listener.tls_inspector'), name);
    const mtls = l.filter_chains.filter((c: J) => c.transport_socket);
    const plain = l.filter_chains.filter((c: J) => !c.transport_socket);
    assert.equal(mtls.length, plain.length, name);
    for (const c of mtls) {
      assert.equal(c.filter_chain_match.transport_protocol, 'tls');
      assert.deepEqual(c.filter_chain_match.application_protocols, ['istio']);
      const d = inner(c.transport_socket.typed_config);
      assert.equal(d.require_client_certificate.value, true);
      assert.deepEqual(d.common_tls_context.combined_validation_context.default_validation_context.match_typed_subject_alt_names[0].matcher, { prefix: 'spiffe://cluster.local/' });
    }
  }
  const before = decode(LISTENER_TYPE, g.view(proxy('n', { ISTHMUS_MODE: 'transparent', ISTHMUS_APP_PORTS: '8080:HTTP' })).listeners.get('virtualInbound')!.any);
  assert.ok(!before.filter_chains.some((c: J) => c.transport_socket), 'no certificates, no TLS chain');
  assert.deepEqual(before.listener_filters.map((f: J) => f.name), ['envoy.filters.listener.original_dst']);
});

import { Checker } from '../../../src/shared/checks.ts';
import { effectiveMtls, peerAuthentication, type PeerAuthentication } from '../../../src/model/rules/peer-authentication.ts';
import { ModelSnapshot } from '../../../src/model/snapshot.ts';

function pa(namespace: string, spec: unknown, name = 'p'): PeerAuthentication {
  const c = new Checker();
  const out = peerAuthentication(spec, c, { name, namespace, origin: { registry: 'test', ref: name }, location: { source: 'test' } });
  assert.deepEqual(c.problems, []);
  return out!;
}

test('PeerAuthentication: workload selector over namespace over mesh (istio-system), UNSET inherits, ports override; bad specs named', () => {
  const mesh = pa('istio-system', { mtls: { mode: 'STRICT' } }, 'mesh');
  const ns = pa('shop', { mtls: { mode: 'PERMISSIVE' } }, 'ns');
  const wl = pa('shop', { selector: { matchLabels: { app: 'cart' } }, mtls: { mode: 'UNSET' }, portLevelMtls: { 8080: { mode: 'DISABLE' } } }, 'wl');
  const all = [mesh, ns, wl];
  assert.equal(effectiveMtls(all, 'other', {}, 80), 'STRICT', 'the mesh-wide policy');
  assert.equal(effectiveMtls(all, 'shop', { app: 'web' }, 80), 'PERMISSIVE', 'the namespace policy');
  assert.equal(effectiveMtls(all, 'shop', { app: 'cart' }, 80), 'PERMISSIVE', 'UNSET inherits the namespace mode');
  assert.equal(effectiveMtls(all, 'shop', { app: 'cart' }, 8080), 'DISABLE', 'the port-level mode');
  assert.equal(effectiveMtls([], 'shop', {}, 80), 'PERMISSIVE', 'the default');
  for (const [spec, ns_, re] of [
    [{ mtls: { mode: 'MUTUAL' } }, 'shop', /mode "MUTUAL" is not one of UNSET, DISABLE, PERMISSIVE, STRICT/],
    [{ portLevelMtls: { 8080: { mode: 'STRICT' } } }, 'shop', /portLevelMtls needs spec.selector/],
    [{ selector: { matchLabels: { app: 'x' } }, portLevelMtls: { http: { mode: 'STRICT' } } }, 'shop', /port "http" is not a port number/],
    [{ selector: {} }, 'shop', /a selector needs at least one label/],
    [{ mtls: { mode: 'STRICT' }, jwtRules: [] }, 'shop', /jwtRules/],
  ] as const) {
    const c = new Checker();
    peerAuthentication(spec, c, { name: 'x', namespace: ns_, origin: { registry: 't', ref: 'x' }, location: { source: 't' } });
    assert.match(c.problems.map((p) => `${p.field}: ${p.reason}`).join('\n'), re, JSON.stringify(spec));
  }
});

function withPolicies(policies: PeerAuthentication[]) {
  const meshed = { ...endpoint('web.rpc.cluster.local', '10.0.0.1'), labels: { 'security.istio.io/tlsMode': 'istio', app: 'web' } };
  const base = model([service('web.rpc.cluster.local', 80)], [meshed]);
  const m = new ModelSnapshot({ services: base.services, endpoints: base.endpoints, registries: [], conflicts: [], rules: { virtualServices: [], destinationRules: [], peerAuthentications: policies, rejections: [], warnings: [] } });
  return new XdsCache().update(m, new Map());
}

test('STRICT: a sidecar with certificates takes mTLS only; one without takes nothing on the port and says so; DISABLE: plaintext only, and callers send no mTLS', () => {
  const strict = withPolicies([pa('default', { mtls: { mode: 'STRICT' } })]);
  const chains = (g: ReturnType<typeof withPolicies>, meta: Record<string, string>): J => decode(LISTENER_TYPE, g.view(proxy('x', { ISTHMUS_MODE: 'transparent', ISTHMUS_APP_PORTS: '8080:HTTP', ISTHMUS_NAMESPACE: 'default', ...meta })).listeners.get('virtualInbound')!.any);
  const s = chains(strict, { ISTHMUS_SDS: 'true' });
  assert.deepEqual(s.filter_chains.map((c: J) => !!c.transport_socket), [true]);
  assert.equal(s.default_filter_chain, undefined, 'no plaintext passthrough under a workload-wide STRICT');
  const none = chains(strict, {});
  assert.deepEqual(none.filter_chains.map((c: J) => c.name), ['refused'], 'a chain nothing matches: Envoy needs one');
  assert.equal(none.default_filter_chain, undefined);
  const p = strict.view(proxy('x', { ISTHMUS_MODE: 'transparent', ISTHMUS_APP_PORTS: '8080:HTTP', ISTHMUS_NAMESPACE: 'default' })).problems;
  assert.match(p.map((x) => x.reason).join('\n'), /PeerAuthentication STRICT, but this sidecar has no certificates .* accepts no connection on the port rather than plaintext/);
  // A sidecar with no app ports under a namespace-wide STRICT: no passthrough, one chain nothing matches.
  const bare = decode(LISTENER_TYPE, strict.view(proxy('y', { ISTHMUS_MODE: 'transparent', ISTHMUS_NAMESPACE: 'default', ISTHMUS_SDS: 'true' })).listeners.get('virtualInbound')!.any);
  assert.deepEqual([bare.filter_chains.map((c: J) => c.name), bare.default_filter_chain], [['refused'], undefined]);
  const off = withPolicies([pa('default', { mtls: { mode: 'DISABLE' } })]);
  assert.deepEqual(chains(off, { ISTHMUS_SDS: 'true' }).filter_chains.map((c: J) => !!c.transport_socket), [false]);
  const cla = decode(ENDPOINT_TYPE, off.endpoints.get('outbound|80||web.rpc.cluster.local')!.any);
  assert.equal(cla.endpoints[0].lb_endpoints[0].metadata.filter_metadata['envoy.transport_socket_match'], undefined, 'a DISABLE endpoint is called in plaintext');
});

import { destinationRule } from '../../../src/model/rules/destination-rule.ts';
import { Warnings } from '../../../src/model/rules/fields.ts';

function drModel(tls: Record<string, unknown>) {
  const c = new Checker();
  const dr = destinationRule({ host: 'web.rpc.cluster.local', trafficPolicy: { tls } }, c, new Warnings(), { name: 'd', namespace: 'default', origin: { registry: 't', ref: 'd' }, location: { source: 't' } });
  assert.deepEqual(c.problems, []);
  const base = model([service('web.rpc.cluster.local', 80)], [endpoint('web.rpc.cluster.local', '10.0.0.1')]);
  const m = new ModelSnapshot({ services: base.services, endpoints: base.endpoints, registries: [], conflicts: [], rules: { virtualServices: [], destinationRules: [dr!], rejections: [], warnings: [] } });
  return new XdsCache().update(m, new Map());
}

test('DestinationRule tls: ISTIO_MUTUAL is mesh mTLS to every endpoint, and no endpoints at all for a sidecar without certificates; DISABLE turns automatic mTLS off; SIMPLE and MUTUAL originate TLS with their files', () => {
  const name = 'outbound|80||web.rpc.cluster.local';
  const cluster = (g: ReturnType<typeof drModel>, meta: Record<string, string>): J => decode(CLUSTER_TYPE, g.view(proxy('x', meta)).clusters.get(name)!.any);
  const im = drModel({ mode: 'ISTIO_MUTUAL', subjectAltNames: ['spiffe://cluster.local/ns/default/sa/web'] });
  const withCerts = cluster(im, { ISTHMUS_SDS: 'true' });
  assert.equal(withCerts.transport_socket_matches, undefined);
  const ctx = inner(withCerts.transport_socket.typed_config);
  assert.equal(ctx.common_tls_context.tls_certificate_sds_secret_configs[0].name, 'default');
  assert.deepEqual(ctx.common_tls_context.combined_validation_context.default_validation_context.match_typed_subject_alt_names, [{ san_type: 'URI', matcher: { exact: 'spiffe://cluster.local/ns/default/sa/web' } }]);
  const without = cluster(im, {});
  assert.equal(without.type, 'STATIC');
  assert.deepEqual(without.load_assignment.endpoints ?? [], []);
  assert.match(im.view(proxy('x')).problems.map((p) => p.reason).join('\n'), /tls ISTIO_MUTUAL, but this sidecar has no certificates .* no endpoints for it rather than plaintext/);
  const off = cluster(drModel({ mode: 'DISABLE' }), { ISTHMUS_SDS: 'true' });
  assert.equal(off.transport_socket_matches, undefined);
  assert.equal(off.transport_socket, undefined);
  const simple = cluster(drModel({ mode: 'MUTUAL', caCertificates: '/etc/certs/ca.pem', clientCertificate: '/etc/certs/c.pem', privateKey: '/etc/certs/k.pem', sni: 'web.example', subjectAltNames: ['web.example'] }), {});
  const s = inner(simple.transport_socket.typed_config);
  assert.equal(s.sni, 'web.example');
  assert.equal(s.common_tls_context.validation_context.trusted_ca.filename, '/etc/certs/ca.pem');
  assert.equal(s.common_tls_context.tls_certificates[0].private_key.filename, '/etc/certs/k.pem');
  assert.deepEqual(s.common_tls_context.validation_context.match_typed_subject_alt_names.map((m: J) => m.san_type), ['DNS', 'URI']);
  for (const [tls, re] of [
    [{ mode: 'SIMPLE' }, /mode SIMPLE needs caCertificates .* or insecureSkipVerify: true/],
    [{ mode: 'SIMPLE', credentialName: 'web-tls' }, /credentialName .* is not supported/],
    [{ mode: 'ISTIO_MUTUAL', caCertificates: '/x' }, /mode ISTIO_MUTUAL uses the workload certificate from the agent/],
  ] as const) {
    const c = new Checker();
    destinationRule({ host: 'web.rpc.cluster.local', trafficPolicy: { tls } }, c, new Warnings(), { name: 'd', namespace: 'default', origin: { registry: 't', ref: 'd' }, location: { source: 't' } });
    assert.match(c.problems.map((p) => `${p.field}: ${p.reason}`).join('\n'), re, JSON.stringify(tls));
  }
});

test('a port-level STRICT beside plaintext passthrough: plaintext to that port is closed by a chain of its own, never passed through', () => {
  const g = withPolicies([pa('default', { selector: { matchLabels: { app: 'web' } }, portLevelMtls: { 8080: { mode: 'STRICT' } } })]);
  const l = decode(LISTENER_TYPE, g.view(proxy('z', { ISTHMUS_MODE: 'transparent', ISTHMUS_APP_PORTS: '8080:HTTP,7070:TCP', ISTHMUS_NAMESPACE: 'default', ISTHMUS_LABELS: 'app=web', ISTHMUS_SDS: 'true' })).listeners.get('virtualInbound')!.any);
  const on8080 = l.filter_chains.filter((c: J) => c.filter_chain_match?.destination_port?.value === 8080);
  assert.deepEqual(on8080.map((c: J) => [!!c.transport_socket, (c.filters ?? []).length > 0]), [[true, true], [false, false]]);
  assert.ok(l.default_filter_chain, 'other ports still pass through');
});
