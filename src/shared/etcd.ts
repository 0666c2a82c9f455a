// etcd client options shared by every etcd user: the SOA registry and registrar, the DNS
// record store and the VIP store.
import { type IOptions, isRecoverableError } from 'etcd3';

type FaultHandling = NonNullable<IOptions['faultHandling']>;
type Policy = NonNullable<FaultHandling['global']>;

/** Thrown instead of calling a member that failed a moment ago, so the pool tries the next one. */
class MemberResting extends Error {}

/**
 * With several members, one that just failed (refused, dropped) rests for `restMs` and calls
 * go to the others; the library moves on to the next member only when a policy declines to
 * call one. With one member there is nothing to move to, and the caller's backoff decides.
 */
function memberPolicy(restMs: number): Policy {
  let restingUntil = 0;
  return {
    async execute(fn: () => unknown): Promise<unknown> {
      if (Date.now() < restingUntil) throw new MemberResting('member resting after a failure');
      try {
        return await fn();
      } catch (err) {
        if (err instanceof Error && isRecoverableError(err)) restingUntil = Date.now() + restMs;
        throw err;
      }
    },
  } as unknown as Policy;
}

/**
 * Etcd3 options shared by the registry and the registrar: no retries of the library (callers
 * own their retry and backoff), failover between members, a deadline on every unary call,
 * keepalive pings so a silent peer is noticed, and room for large listings.
 */
export function clientOptions(endpoints: readonly string[], requestTimeoutMs: number): IOptions {
  const noop = { execute: async (fn: () => unknown) => fn() } as unknown as Policy;
  // Only used by the library to re-open a watch stream we have already given up on.
  const watchBackoff = { duration: 100, next() { return this; } } as unknown as NonNullable<FaultHandling['watchBackoff']>;
  return {
    hosts: endpoints.map((e) => (/^https?:\/\//.test(e) ? e : `http://${e}`)),
    dialTimeout: requestTimeoutMs,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + requestTimeoutMs }),
    grpcOptions: {
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      'grpc.max_receive_message_length': 256 * 1024 * 1024,
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 1000,
    },
    faultHandling: { host: () => (endpoints.length > 1 ? memberPolicy(1000) : noop), global: noop, watchBackoff },
  };
}
