// A proxy's class holds everything that shapes its configuration and nothing else: equal
// classes share one view, and the key is the class itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { proxyFromNode } from '../../../src/xds/proxy.ts';
import { proxyClass } from '../../../src/xds/proxy-class.ts';

function node(id: string, metadata: Record<string, string>, over: { userAgent?: string; zone?: string } = {}) {
  const fields = Object.fromEntries(Object.entries(metadata).map(([k, v]) => [k, { stringValue: v }]));
  return proxyFromNode({ id, user_agent_name: over.userAgent ?? 'envoy', metadata: { fields } as never, ...(over.zone ? { locality: { region: 'r1', zone: over.zone } } : {}) });
}

const none = { localityLb: false, selectors: [] };

test('the kind shapes config, so an Envoy and a gRPC client never share a class', () => {
  const envoy = proxyClass(node('a', {}), none);
  const grpc = proxyClass(node('b', {}, { userAgent: 'gRPC Go' }), none);
  assert.notEqual(envoy.key, grpc.key);
  assert.equal(envoy.kind, 'envoy');
  assert.equal(grpc.kind, 'grpc');
});

test('ids, labels no rule selects, and locality without locality rules do not split classes', () => {
  const a = proxyClass(node('a', { ISTHMUS_LABELS: 'app=shop', ISTHMUS_NAMESPACE: 'x' }, { zone: 'z1' }), none);
  const b = proxyClass(node('b', { ISTHMUS_LABELS: 'app=cart' }, { zone: 'z2' }), none);
  assert.equal(a.key, b.key);
  assert.equal(a.locality, undefined);
});

test('a selector a proxy matches, and its locality under locality rules, are part of its class', () => {
  const inputs = { localityLb: true, selectors: [{ app: 'shop' }] };
  const shop = proxyClass(node('a', { ISTHMUS_LABELS: 'app=shop,v=1' }, { zone: 'z1' }), inputs);
  const shop2 = proxyClass(node('b', { ISTHMUS_LABELS: 'app=shop,v=2' }, { zone: 'z1' }), inputs);
  const cart = proxyClass(node('c', { ISTHMUS_LABELS: 'app=cart' }, { zone: 'z1' }), inputs);
  const elsewhere = proxyClass(node('d', { ISTHMUS_LABELS: 'app=shop' }, { zone: 'z2' }), inputs);
  assert.equal(shop.key, shop2.key, 'labels beyond the selectors do not matter');
  assert.deepEqual(shop.sources, ['[["app","shop"]]']);
  assert.notEqual(shop.key, cart.key);
  assert.notEqual(shop.key, elsewhere.key);
  assert.deepEqual(elsewhere.locality, { region: 'r1', zone: 'z2' });
});

test('the key is the class: every field of the class is in it', () => {
  const c = proxyClass(node('a', { ISTHMUS_MODE: 'transparent', ISTHMUS_APP_PORTS: '8080:HTTP' }), none);
  const { key, ...fields } = c;
  assert.deepEqual(JSON.parse(key), JSON.parse(JSON.stringify(fields)));
});
