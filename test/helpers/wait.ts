// Bounded polling: the only way tests wait for something to become true.
import { setTimeout as sleep } from 'node:timers/promises';

export interface WaitOptions {
  /** Give up after this long (default 10 s). */
  timeoutMs?: number;
  /** Pause between tries (default 100 ms). */
  intervalMs?: number;
  /** What is awaited, for the error message. */
  what?: string;
}

function show(v: unknown): string {
  if (v instanceof Error) return `${v.name}: ${v.message}`;
  let s: string;
  try {
    const plain = v instanceof Map ? Object.fromEntries(v) : v instanceof Set ? [...v] : v;
    s = typeof v === 'string' ? v : JSON.stringify(plain);
  } catch {
    s = String(v);
  }
  if (s === undefined) s = String(v);
  return s.length > 2000 ? `${s.slice(0, 2000)}… (${s.length} chars)` : s;
}

/** Thrown by a polled function to stop waiting at once (e.g. the process it waits on died). */
export class GiveUp extends Error {
  override name = 'GiveUp';
}

/**
 * Calls `fn` until it returns a truthy value (or resolves to one) and returns that value.
 * A throw counts as "not yet" (a GiveUp ends the wait at once); on timeout the error names
 * what was awaited and the last value or error observed.
 */
export async function waitFor<T>(
  fn: () => T | Promise<T>,
  opts: WaitOptions = {},
): Promise<NonNullable<T>> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const intervalMs = opts.intervalMs ?? 100;
  const what = opts.what ?? 'condition';
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  let tries = 0;
  while (true) {
    tries++;
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
      last = v;
    } catch (err) {
      if (err instanceof GiveUp) throw new Error(`gave up waiting for ${what}: ${err.message}`, { cause: err });
      last = err;
    }
    if (Date.now() >= deadline) break;
    await sleep(Math.min(intervalMs, Math.max(0, deadline - Date.now())));
  }
  throw new Error(`timed out after ${timeoutMs} ms (${tries} tries) waiting for ${what}; last observed: ${show(last)}`);
}

/**
 * Polls `fn` until `check(value)` holds; returns the value. For assertions on a value
 * whose last state should be shown on failure.
 */
export async function waitUntil<T>(
  fn: () => T | Promise<T>,
  check: (v: T) => boolean,
  opts: WaitOptions = {},
): Promise<T> {
  let last: { v: T } | undefined;
  try {
    await waitFor(async () => {
      const v = await fn();
      last = { v };
      return check(v);
    }, opts);
  } catch (err) {
    if (last) throw new Error(`${(err as Error).message.replace(/; last observed: .*$/s, '')}; last observed: ${show(last.v)}`, { cause: err });
    throw err;
  }
  return (last as { v: T }).v;
}
