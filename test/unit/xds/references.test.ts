// The consistency checks read references from the served bytes: listeners → routes,
// listeners and routes → clusters.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { XdsCache } from '../../../src/xds/cache.ts';
import { checkView, referencesOf } from '../../../src/xds/references.ts';
import { endpoint, model, proxy, service } from './fixtures.ts';

const sidecar = proxy('e', { ISTHMUS_APP_PORTS: '8080:HTTP' });

function generation() {
  return new XdsCache().update(model([service('web.test.local', 80), service('db.test.local', 5432, 'TCP')], [endpoint('web.test.local', '10.0.0.1'), endpoint('db.test.local', '10.0.0.2')]));
}

test('references are read from the encoded listeners and routes', () => {
  const v = generation().view(sidecar);
  assert.deepEqual([...referencesOf(v.listeners.get('virtualOutbound')!).routes], ['outbound']);
  assert.deepEqual([...referencesOf(v.listeners.get('127.0.0.1_5432')!).clusters], ['outbound|5432||db.test.local']);
  assert.deepEqual([...referencesOf(v.listeners.get('virtualInbound')!).routes], ['inbound']);
  assert.ok(referencesOf(v.routes.get('outbound')!).clusters.has('outbound|80||web.test.local'));
  assert.deepEqual(v.problems, [], 'a generated view is consistent');
});

test('a listener naming a route that is not served is left out and reported; a missing cluster is reported', () => {
  const v = generation().view(sidecar);
  const listeners = new Map(v.listeners);
  const problems: { name: string; reason: string }[] = [];
  checkView({ listeners, routes: new Map([['inbound', v.routes.get('inbound')!]]), clusters: new Map() }, problems);
  assert.ok(!listeners.has('virtualOutbound'), 'the listener whose route is missing is not served');
  assert.ok(listeners.has('127.0.0.1_5432'), 'a listener whose cluster is missing is still served');
  assert.ok(problems.some((p) => p.name === 'virtualOutbound' && /names missing route outbound/.test(p.reason)));
  assert.ok(problems.some((p) => p.name === '127.0.0.1_5432' && /names missing cluster outbound\|5432\|\|db\.test\.local/.test(p.reason)));
  assert.ok(problems.some((p) => p.name === 'inbound' && /route inbound names missing cluster inbound\|8080/.test(p.reason)));
});
