// Explicit mode has one TCP listener per port: two applications on one port (Dubbo's
// 20880) cannot both have it. The one that held it keeps it; the other is refused by name,
// and the problem is kept in the generation (what /debug/registryz shows).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { XdsCache } from '../../../src/xds/cache.ts';
import { endpoint, model, proxy, service } from './fixtures.ts';

const sidecar = proxy('e');
const listenerNames = (c: XdsCache): string[] => [...c.generation!.view(sidecar).listeners.keys()];

test('a second application on a taken TCP port is refused by name, and the port keeps the one that held it', () => {
  const cache = new XdsCache();
  const billing = service('billing.rpc.cluster.local', 20880, 'TCP');
  cache.update(model([billing], [endpoint(billing.hostname, '10.0.0.1')]));
  assert.ok(listenerNames(cache).includes('127.0.0.1_20880'));
  assert.deepEqual(cache.generation!.problems, []);

  // "audit" sorts before "billing", and still does not take the port.
  const audit = service('audit.rpc.cluster.local', 20880, 'TCP');
  const g = cache.update(model([audit, billing], [endpoint(billing.hostname, '10.0.0.1'), endpoint(audit.hostname, '10.0.0.2')]));
  const l = g.view(sidecar).listeners.get('127.0.0.1_20880');
  assert.ok(l, 'the port keeps its listener');
  assert.ok(l.any.includes(Buffer.from('outbound|20880||billing.rpc.cluster.local')), 'the listener still leads to billing');
  assert.equal(g.problems.length, 1);
  assert.equal(g.problems[0]!.name, 'audit.rpc.cluster.local:20880');
  assert.match(g.problems[0]!.reason, /TCP port 20880 is already taken by billing\.rpc\.cluster\.local/);
});

test('without history the first in name order gets the port; the same content gives the same listener versions either way', () => {
  const audit = service('audit.rpc.cluster.local', 20880, 'TCP');
  const billing = service('billing.rpc.cluster.local', 20880, 'TCP');
  const fresh = new XdsCache().update(model([audit, billing], []));
  fresh.view(sidecar);
  assert.match(fresh.problems[0]!.reason, /already taken by audit\.rpc\.cluster\.local/);
  const cache = new XdsCache();
  cache.update(model([audit], []));
  const later = cache.update(model([audit, billing], []));
  assert.equal(later.view(sidecar).versions['type.googleapis.com/envoy.config.listener.v3.Listener'], fresh.view(sidecar).versions['type.googleapis.com/envoy.config.listener.v3.Listener']);
});
