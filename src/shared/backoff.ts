// The one retry delay every reconnecting or retrying component uses.

export interface BackoffOptions {
  /** Delay after the first failure. */
  readonly initialMs: number;
  /** Ceiling the doubling stops at. */
  readonly maxMs: number;
  /** Spread the delay over [base/2, base] so that many clients retrying at once drift apart (default true). */
  readonly jitter?: boolean;
}

/** The delay before retry number `attempt` (0 for the first): `initialMs` doubling to `maxMs`, jittered. */
export function backoffDelay(attempt: number, opts: BackoffOptions): number {
  const base = Math.min(opts.maxMs, opts.initialMs * 2 ** Math.min(Math.max(0, attempt), 30));
  return opts.jitter === false ? base : Math.round(base / 2 + (Math.random() * base) / 2);
}
