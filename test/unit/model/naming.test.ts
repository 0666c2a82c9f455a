import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applicationHostname, interfaceHostname, NamingError } from '../../../src/model/naming.ts';

test('interface names: lowercase labels, version and group as labels of their own', () => {
  assert.equal(interfaceHostname('com.alipay.userservice.UserQuery', undefined, undefined), 'com.alipay.userservice.userquery.rpc.cluster.local');
  assert.equal(interfaceHostname('com.alipay.userservice.UserQuery', '1.0.0', undefined), 'com.alipay.userservice.userquery.v1-0-0.rpc.cluster.local');
  assert.equal(interfaceHostname('com.alipay.userservice.UserQuery', '2.0', 'Blue_Team'), 'com.alipay.userservice.userquery.v2-0.g-blue-team.rpc.cluster.local');
  assert.equal(interfaceHostname('org.x.Outer$Inner', undefined, undefined, 'rpc.example'), 'org.x.outer-inner.rpc.example');
});

test('every label stays within 63 octets, stable and distinct', () => {
  const long = 'a'.repeat(70);
  const a = interfaceHostname(`com.${long}`, undefined, undefined);
  const b = interfaceHostname(`com.${long}b`, undefined, undefined);
  for (const name of [a, b]) assert.ok(name.split('.').every((l) => l.length <= 63), name);
  assert.notEqual(a, b);
  assert.equal(a, interfaceHostname(`com.${long}`, undefined, undefined));
});

test('names that cannot be DNS names are refused with a reason', () => {
  assert.throws(() => interfaceHostname('com..Bad', undefined, undefined), (e: Error) => e instanceof NamingError && /empty name segment/.test(e.message));
  assert.throws(() => interfaceHostname('com.$$$', undefined, undefined), /no letters or digits/);
  const deep = Array.from({ length: 40 }, (_, i) => `segment${i}`).join('.');
  assert.throws(() => interfaceHostname(deep, undefined, undefined), /over the DNS limit of 253/);
  assert.equal(applicationHostname('UserService'), 'userservice.rpc.cluster.local');
});
