import { test } from 'node:test';
import assert from 'node:assert/strict';
import { byteSize, UsageError } from '../../../src/cli/args.ts';

test('sizes take bytes or a unit, and a bad one names the flag and what was expected', () => {
  assert.equal(byteSize('x', undefined, 7), 7);
  assert.equal(byteSize('x', '1048576', 0), 1048576);
  assert.equal(byteSize('x', '64MiB', 0), 64 * 1024 * 1024);
  assert.equal(byteSize('x', '500k', 0), 500_000);
  assert.equal(byteSize('x', '1.5GiB', 0), 1.5 * 1024 ** 3);
  for (const bad of ['', 'lots', '64 parsecs', '0', '-5']) {
    assert.throws(() => byteSize('xds-inflight-limit', bad, 0), (e: Error) => e instanceof UsageError && e.message.includes('--xds-inflight-limit') && e.message.includes('64MiB'));
  }
});
