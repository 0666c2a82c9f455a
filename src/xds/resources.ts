// Type URLs served over ADS, and the message each one carries.
import type { Cluster, ClusterLoadAssignment, Listener, MultipleRouteConfiguration, RouteConfiguration } from '../generated/envoy.ts';

export const CLUSTER_TYPE = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';
export const ENDPOINT_TYPE = 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment';
export const LISTENER_TYPE = 'type.googleapis.com/envoy.config.listener.v3.Listener';
export const ROUTE_TYPE = 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration';
/** Routes of Envoy's Dubbo filter (its `drds`), so a rule change does not re-create a listener. */
export const DUBBO_ROUTE_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.dubbo_proxy.v3.MultipleRouteConfiguration';

export type TypeUrl = typeof CLUSTER_TYPE | typeof ENDPOINT_TYPE | typeof LISTENER_TYPE | typeof ROUTE_TYPE | typeof DUBBO_ROUTE_TYPE;

/** The generated type of each resource (src/generated/envoy.ts). */
export interface MessageOf {
  [CLUSTER_TYPE]: Cluster;
  [ENDPOINT_TYPE]: ClusterLoadAssignment;
  [LISTENER_TYPE]: Listener;
  [ROUTE_TYPE]: RouteConfiguration;
  [DUBBO_ROUTE_TYPE]: MultipleRouteConfiguration;
}

/** Push order Envoy needs: clusters before their endpoints, listeners before their routes. */
export const TYPE_ORDER: readonly TypeUrl[] = [CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, DUBBO_ROUTE_TYPE];

export const MESSAGE_OF: Readonly<Record<TypeUrl, string>> = {
  [CLUSTER_TYPE]: 'envoy.config.cluster.v3.Cluster',
  [ENDPOINT_TYPE]: 'envoy.config.endpoint.v3.ClusterLoadAssignment',
  [LISTENER_TYPE]: 'envoy.config.listener.v3.Listener',
  [ROUTE_TYPE]: 'envoy.config.route.v3.RouteConfiguration',
  [DUBBO_ROUTE_TYPE]: 'envoy.extensions.filters.network.dubbo_proxy.v3.MultipleRouteConfiguration',
};

export const SHORT_NAME: Readonly<Record<TypeUrl, string>> = {
  [CLUSTER_TYPE]: 'CDS',
  [ENDPOINT_TYPE]: 'EDS',
  [LISTENER_TYPE]: 'LDS',
  [ROUTE_TYPE]: 'RDS',
  [DUBBO_ROUTE_TYPE]: 'DRDS',
};

export function isTypeUrl(s: string): s is TypeUrl {
  return s in MESSAGE_OF;
}

/** Types where a response must hold every subscribed resource (absence means removal). */
export function isStateOfWorldType(t: TypeUrl): boolean {
  return t === CLUSTER_TYPE || t === LISTENER_TYPE;
}
