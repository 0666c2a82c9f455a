// Automatic mTLS between sidecars, as Istio does it: a sidecar that has the agent's SDS
// (node metadata ISTHMUS_SDS) connects with mTLS to endpoints labelled
// security.istio.io/tlsMode=istio (their sidecar has certificates too) and in plaintext to
// the rest, per endpoint (transport_socket_matches on the endpoint metadata EDS carries).
// Its inbound side accepts both (PERMISSIVE): Istio's mTLS (ALPN "istio") is terminated with
// the workload certificate and a peer certificate of the trust domain is required; anything
// else goes to the plaintext chain as before. Certificates are the secrets `default` and
// `ROOTCA` of the agent, through the bootstrap's cluster SDS_CLUSTER.
import type { Cluster, FilterChain, ListenerFilter, TransportSocket } from '../../generated/envoy.ts';
import { toAny } from '../proto.ts';
import { struct } from './common.ts';
import { SDS_CLUSTER } from '../bootstrap.ts';

/** Endpoint label (Istio's) saying the endpoint's sidecar terminates Istio mTLS. */
export const TLS_MODE_LABEL = 'security.istio.io/tlsMode';
/** EDS endpoint metadata that transport_socket_matches read. */
export const TRANSPORT_SOCKET_MATCH = 'envoy.transport_socket_match';
/** ALPN of Istio's mTLS between sidecars: tells it apart from an application's own TLS. */
export const MESH_ALPN = 'istio';

function sdsSecret(name: string): Record<string, unknown> {
  return { name, sds_config: { resource_api_version: 'V3', api_config_source: { api_type: 'GRPC', transport_api_version: 'V3', grpc_services: [{ envoy_grpc: { cluster_name: SDS_CLUSTER } }] } } };
}

/** Certificates of this workload and peers of the trust domain, from the agent. */
function commonTlsContext(trustDomain: string, alpn: readonly string[]): Record<string, unknown> {
  return {
    tls_certificate_sds_secret_configs: [sdsSecret('default')],
    combined_validation_context: {
      // Any workload of this mesh; which identities may call what is AuthorizationPolicy's part.
      default_validation_context: { match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { prefix: `spiffe://${trustDomain}/` } }] },
      validation_context_sds_secret_config: sdsSecret('ROOTCA'),
    },
    alpn_protocols: [...alpn],
  };
}

/** SNI of a call to a cluster, in Istio's form (outbound_.PORT_.SUBSET_.HOST), from the cluster's name. */
export function meshSni(clusterName: string): string {
  const [dir, port, subset, host] = clusterName.split('|');
  return `${dir}_.${port}_.${subset ? `${subset}_` : '_'}.${host}`;
}

function upstreamMtls(trustDomain: string, clusterName: string, sni?: string, sans?: readonly string[]): TransportSocket {
  const common = commonTlsContext(trustDomain, [MESH_ALPN]) as { combined_validation_context: { default_validation_context: { match_typed_subject_alt_names: unknown[] } } };
  // A DestinationRule's subjectAltNames: exactly these identities instead of any of the trust domain.
  if (sans?.length) common.combined_validation_context.default_validation_context.match_typed_subject_alt_names = sans.map((s) => ({ san_type: 'URI', matcher: { exact: s } }));
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: toAny('envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', {
      common_tls_context: common as never,
      sni: sni ?? meshSni(clusterName),
    }),
  };
}

/** The DestinationRule tls mark of a cluster (destination-rule.ts applyClientTls), if any. */
function tlsMark(c: Cluster): { mode: string; sni?: string; sans?: string[] } | undefined {
  const f = (c.metadata?.filter_metadata as Record<string, { fields?: Record<string, { stringValue?: string }> }> | undefined)?.isthmus?.fields;
  const mode = f?.tls?.stringValue;
  if (!mode) return undefined;
  return { mode, ...(f.sni?.stringValue ? { sni: f.sni.stringValue } : {}), ...(f.sans?.stringValue ? { sans: f.sans.stringValue.split(',') } : {}) };
}

/**
 * A service cluster as a sidecar with certificates gets it: mTLS to endpoints whose sidecar
 * terminates it, plaintext to the others; a DestinationRule's tls decides instead where it
 * has one (ISTIO_MUTUAL: mTLS to every endpoint; DISABLE: none; SIMPLE, MUTUAL: its own TLS).
 */
export function withAutoMtls(c: Cluster, trustDomain: string): Cluster {
  if (c.transport_socket) return c;
  const mark = tlsMark(c);
  if (mark?.mode === 'DISABLE') return c;
  if (mark?.mode === 'ISTIO_MUTUAL') return { ...c, transport_socket: upstreamMtls(trustDomain, c.name as string, mark.sni, mark.sans) };
  return {
    ...c,
    transport_socket_matches: [
      { name: 'tlsMode-istio', match: struct({ tlsMode: 'istio' }), transport_socket: upstreamMtls(trustDomain, c.name as string) },
      { name: 'tlsMode-disabled', match: struct({}), transport_socket: { name: 'envoy.transport_sockets.raw_buffer', typed_config: toAny('envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer', {}) } },
    ],
  };
}

export function tlsInspector(): ListenerFilter {
  return { name: 'envoy.filters.listener.tls_inspector', typed_config: toAny('envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector', {}) };
}

/**
 * The mTLS twin of an inbound filter chain: the same filters behind Istio's mTLS (ALPN
 * istio), the workload certificate served, a peer certificate of the trust domain required.
 */
export function inboundMtlsChain(chain: FilterChain, trustDomain: string): FilterChain {
  return {
    ...chain,
    name: `${chain.name}|mtls`,
    filter_chain_match: { ...(chain.filter_chain_match ?? {}), transport_protocol: 'tls', application_protocols: [MESH_ALPN] },
    transport_socket: {
      name: 'envoy.transport_sockets.tls',
      typed_config: toAny('envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext', {
        require_client_certificate: { value: true },
        common_tls_context: commonTlsContext(trustDomain, [MESH_ALPN]) as never,
      }),
    },
  };
}

/** What decides a sidecar's inbound TLS: its certificates, the trust domain, its PeerAuthentication. */
export interface InboundSecurity {
  /** The sidecar has the agent's certificates. */
  readonly sds: boolean;
  readonly trustDomain: string;
  readonly peerAuth?: { readonly mode?: 'STRICT' | 'DISABLE'; readonly ports: Readonly<Record<string, 'STRICT' | 'PERMISSIVE' | 'DISABLE'>> };
}

/**
 * The inbound filter chains of a sidecar's app ports under its PeerAuthentication: PERMISSIVE
 * mesh mTLS beside plaintext, STRICT mesh mTLS only, DISABLE plaintext only. A sidecar
 * without certificates cannot do STRICT: it then accepts nothing on that port (never
 * plaintext instead), and says so. `plaintextRest` tells whether connections to other ports
 * may still be taken in plaintext (not under a workload-wide STRICT).
 */
export function inboundChains(
  plain: readonly { readonly port: number; readonly chain: FilterChain }[],
  sec: InboundSecurity | undefined,
  problems: { name: string; reason: string }[],
): { chains: FilterChain[]; inspector: boolean; plaintextRest: boolean } {
  const chains: FilterChain[] = [];
  let inspector = false;
  for (const { port, chain } of plain) {
    const mode = sec?.peerAuth?.ports[port] ?? sec?.peerAuth?.mode ?? 'PERMISSIVE';
    if (mode !== 'DISABLE' && sec?.sds) {
      chains.push(inboundMtlsChain(chain, sec.trustDomain));
      inspector = true;
    }
    if (mode === 'STRICT' && !sec?.sds) {
      problems.push({ name: `inbound port ${port}`, reason: 'PeerAuthentication STRICT, but this sidecar has no certificates (isthmus agent, isthmus bootstrap --sds-socket): it accepts no connection on the port rather than plaintext' });
    }
    if (mode !== 'STRICT') chains.push(chain);
    // A port-level STRICT where other ports pass through in plaintext: a plaintext connection
    // to this port must not fall to that default chain. A chain without filters closes it.
    else if (sec?.peerAuth?.mode !== 'STRICT') chains.push({ name: `${chain.name}|refused`, filter_chain_match: chain.filter_chain_match ?? {}, filters: [] });
  }
  const plaintextRest = sec?.peerAuth?.mode !== 'STRICT';
  // Envoy refuses a listener without filter chains: one that no connection matches keeps it
  // (and refuses every connection, counted in its no_filter_chain_match).
  if (chains.length === 0 && (plain.length > 0 || !plaintextRest)) chains.push({ name: 'refused', filter_chain_match: { transport_protocol: 'isthmus-refused' }, filters: [] });
  return { chains, inspector, plaintextRest };
}
