// Shared by the file registry tests: temp directories and a recorder of emitted states.

import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Subscription } from 'rxjs';
import type { Registry } from '../../../../src/model/registry.ts';
import type { RegistryState } from '../../../../src/model/types.ts';

export function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'isthmus-file-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Polls `pred` every 10 ms; fails after `timeoutMs` with `what`. */
export async function until(pred: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Subscribes to a registry and keeps every state it emits. */
export class Recorder {
  readonly states: RegistryState[] = [];
  private readonly sub: Subscription;

  constructor(registry: Registry) {
    this.sub = registry.states.subscribe((s) => this.states.push(s));
  }

  get last(): RegistryState {
    const s = this.states.at(-1);
    if (!s) throw new Error('no state emitted yet');
    return s;
  }

  /** Waits for a state (emitted after `after` states) that satisfies `pred`, and returns it. */
  async next(pred: (s: RegistryState) => boolean, what: string, after = 0): Promise<RegistryState> {
    let found: RegistryState | undefined;
    await until(() => (found = this.states.slice(after).find(pred)) !== undefined, what);
    return found!;
  }

  close(): void {
    this.sub.unsubscribe();
  }
}

export const hostnames = (s: RegistryState): string[] => s.services.map((x) => x.hostname);
