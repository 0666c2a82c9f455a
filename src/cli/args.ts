// Argument parsing shared by the commands: strict, with errors that name the flag.
import { parseArgs, type ParseArgsConfig } from 'node:util';

export class UsageError extends Error {}

export function parse<T extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: T) {
  try {
    return parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/** "250", "250ms", "2s" → milliseconds. */
export function durationMs(flag: string, raw: string | undefined, dflt: number): number {
  if (raw === undefined) return dflt;
  const m = /^(\d+(?:\.\d+)?)(ms|s)?$/.exec(raw.trim());
  if (!m) throw new UsageError(`--${flag} "${raw}": expected a duration like 100ms or 2s`);
  return Math.round(Number(m[1]) * (m[2] === 's' ? 1000 : 1));
}

const SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** A duration in whole seconds: 90s, 30m, 24h, 90d. */
export function durationSeconds(flag: string, raw: string | undefined, dflt: number): number {
  if (raw === undefined) return dflt;
  const m = /^(\d+)([smhd])$/.exec(raw.trim());
  if (!m || Number(m[1]) === 0) throw new UsageError(`--${flag} "${raw}": expected a duration like 30m, 24h or 90d`);
  return Number(m[1]) * SECONDS[m[2]!]!;
}

const UNITS: Record<string, number> = { '': 1, k: 1e3, kb: 1e3, kib: 1024, m: 1e6, mb: 1e6, mib: 1024 ** 2, g: 1e9, gb: 1e9, gib: 1024 ** 3 };

/** A size in bytes: 1048576, 64MiB, 500k, 1GB. */
export function byteSize(flag: string, raw: string | undefined, dflt: number): number {
  if (raw === undefined) return dflt;
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(raw.trim());
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined || Number(m[1]) * unit < 1) throw new UsageError(`--${flag} "${raw}": expected a size like 64MiB, 500k or 1048576 (bytes)`);
  return Math.round(Number(m[1]) * unit);
}

export function portNumber(flag: string, raw: string | undefined, dflt: number): number {
  if (raw === undefined) return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new UsageError(`--${flag} "${raw}": expected a port number 1-65535`);
  return n;
}

export function address(flag: string, raw: string | undefined, dflt: string): string {
  const v = raw ?? dflt;
  const m = /^(?:\[[^\]]+\]|[^:]*):(\d+)$/.exec(v);
  if (!m || Number(m[1]) > 65535) throw new UsageError(`--${flag} "${v}": expected HOST:PORT`);
  return v;
}
