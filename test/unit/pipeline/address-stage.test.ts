// The address stage with a VIP store that hangs: models go on with the VIPs already
// allocated, new names wait, and everything is allocated once the store answers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Subject } from 'rxjs';
import { VipAllocator, type VipStore, type VipTable } from '../../../src/addresses/allocator.ts';
import type { ModelSnapshot } from '../../../src/model/snapshot.ts';
import { type Addressed, allocateAddresses } from '../../../src/pipeline/address-stage.ts';
import { ep, iface, modelOf, svc } from '../../helpers/dns.ts';
import { waitFor } from '../../helpers/wait.ts';

const Z = 'rpc.cluster.local';

/** A store whose writes hang while `hang` is set, and finish once it is released. */
function hangingStore(): { store: VipStore; hang: (on: boolean) => void } {
  let version = 0;
  let table: VipTable | undefined;
  let hanging = false;
  const waiting: (() => void)[] = [];
  const store: VipStore = {
    id: 'hanging',
    load: async () => ({ version, table }),
    compareAndSwap: async (expected, t) => {
      while (hanging) await new Promise<void>((r) => waiting.push(r));
      if (expected !== version) return { ok: false, current: { version, table } };
      table = t;
      return { ok: true, version: ++version };
    },
    close: async () => undefined,
  };
  return { store, hang: (on) => ((hanging = on), on || waiting.splice(0).forEach((r) => r())) };
}

function app(interfaces: string[], address: string): ModelSnapshot {
  const a = svc(`app.${Z}`, { interfaces: interfaces.map((n) => iface(`com.x.${n}`, `com.x.${n.toLowerCase()}.${Z}`)) });
  return modelOf([a], [ep(a.hostname, address)]);
}

test('a hanging VIP store holds back only new names; models keep flowing and get their VIPs when it answers', async (t) => {
  const { store, hang } = hangingStore();
  const models = new Subject<ModelSnapshot>();
  const out: Addressed[] = [];
  const sub = models.pipe(allocateAddresses(new VipAllocator(store, { cidr: '240.240.0.0/16', ttl: 30 }), { waitMs: 50 })).subscribe((a) => out.push(a));
  t.after(() => sub.unsubscribe());

  const m1 = app(['Alpha'], '10.0.0.1');
  models.next(m1);
  await waitFor(() => out.length === 1, { what: 'the first model with its VIPs' });
  assert.deepEqual(out[0]!.addresses.pending, []);
  const alpha = out[0]!.addresses.vips.get(`com.x.alpha.${Z}`);
  assert.ok(alpha);

  hang(true);
  const m2 = app(['Alpha', 'Beta'], '10.0.0.1');
  models.next(m2);
  // An endpoint change right behind it, while the store still hangs.
  const m3 = app(['Alpha', 'Beta'], '10.0.0.2');
  models.next(m3);
  await waitFor(() => out.some((a) => a.model === m3), { timeoutMs: 2000, what: 'the endpoint change to go on without the store' });
  const degraded = out.find((a) => a.model === m3)!;
  assert.equal(degraded.addresses.vips.get(`com.x.alpha.${Z}`), alpha, 'a name that has its VIP keeps it');
  assert.deepEqual(degraded.addresses.pending, [`com.x.beta.${Z}`]);
  assert.match(degraded.addresses.error ?? '', /VIP store hanging has not answered within 50 ms/);

  hang(false);
  await waitFor(() => out.at(-1)!.addresses.pending.length === 0, { timeoutMs: 5000, what: 'Beta to get its VIP once the store answers' });
  const last = out.at(-1)!;
  assert.equal(last.model, m3, 'the latest model is the one allocated');
  assert.ok(last.addresses.vips.get(`com.x.beta.${Z}`));
  assert.equal(last.addresses.error, undefined);
});
