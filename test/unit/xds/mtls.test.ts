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
