// The go-control-plane peer (bench/gcp/main.go): built once per source into a cache outside
// the work tree, then driven over its stdin/stdout line protocol by bench/run.ts.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { MemCgroup } from './cgroup.ts';
import { Peer } from './procs.ts';

const SOURCE = path.join(path.dirname(new URL(import.meta.url).pathname), 'gcp');
const CACHE = path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'isthmus', 'bench');

export type ToGcp = { type: 'ping'; id: number } | { type: 'change'; id: number; service: number; endpoint: number; address: string };

export type FromGcp =
  | { type: 'ready'; xdsPort: number; t: number }
  | { type: 'pong'; id: number; t: number }
  | { type: 'changed'; id: number; tApply: number; tSet: number }
  | { type: 'error'; message: string };

function parse(line: string): FromGcp | undefined {
  const f = line.trim().split(/\s+/);
  switch (f[0]) {
    case 'ready':
      return { type: 'ready', xdsPort: Number(f[1]), t: Number(f[2]) };
    case 'pong':
      return { type: 'pong', id: Number(f[1]), t: Number(f[2]) };
    case 'changed':
      return { type: 'changed', id: Number(f[1]), tApply: Number(f[2]), tSet: Number(f[3]) };
  }
  return undefined;
}

function encode(m: ToGcp): string {
  return m.type === 'ping' ? `ping ${m.id}` : `change ${m.id} ${m.service} ${m.endpoint} ${m.address}`;
}

/**
 * The peer's binary, named by a hash of its sources and the Go toolchain: built with
 * `go build` (modules from the Go module proxy) the first time, reused afterwards.
 */
export function buildGcp(log: (line: string) => void): string {
  const goVersion = execFileSync('go', ['version'], { encoding: 'utf8' }).trim();
  const h = createHash('sha256').update(goVersion);
  for (const f of ['go.mod', 'go.sum', 'main.go']) h.update(f).update(fs.readFileSync(path.join(SOURCE, f)));
  const bin = path.join(CACHE, `gcp-${h.digest('hex').slice(0, 16)}`);
  if (fs.existsSync(bin)) return bin;
  fs.mkdirSync(CACHE, { recursive: true });
  log(`building the go-control-plane peer (${goVersion}) into ${bin} — the first build takes about a minute`);
  const tmp = `${bin}.tmp-${process.pid}`;
  try {
    execFileSync('go', ['build', '-trimpath', '-o', tmp, '.'], { cwd: SOURCE, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    throw new Error(`go build in ${SOURCE} failed:\n${String((e as { stderr?: Buffer }).stderr ?? e)}`, { cause: e });
  }
  fs.renameSync(tmp, bin);
  return bin;
}

/**
 * eds: 'linear' (a LinearCache for EDS, as go-control-plane recommends) or 'snapshot' (one
 * SnapshotCache). port 0: any free one (a restarted peer gets the port of the one before);
 * apply: the endpoint changes made so far, "K:J:ADDRESS,…".
 */
export function startGcp(bin: string, S: number, E: number, eds: 'linear' | 'snapshot', logFile: string, port = 0, cgroup?: MemCgroup, apply = ''): Peer<FromGcp, ToGcp> {
  const args = ['-services', String(S), '-endpoints', String(E), '-eds', eds, '-port', String(port), ...(apply ? ['-apply', apply] : [])];
  return new Peer<FromGcp, ToGcp>('go-control-plane', bin, args, logFile, [], { parse, encode }, cgroup);
}
