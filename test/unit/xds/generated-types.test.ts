// src/generated/envoy.ts: the messages Isthmus builds are typed from the protos it loads.
// The @ts-expect-error lines are the test at compile time: if a misspelt or mistyped field
// stopped being an error, `tsc` (run by npm test) fails on the unused directive.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { ClusterLoadAssignment, Listener } from '../../../src/generated/envoy.ts';
import { EncodedResource } from '../../../src/xds/encoded.ts';
import { messageType } from '../../../src/xds/proto.ts';
import { ENDPOINT_TYPE } from '../../../src/xds/resources.ts';
import { generate } from '../../../scripts/gen-types.ts';
import { REPO } from '../../helpers/isthmus.ts';

test('src/generated/envoy.ts is what scripts/gen-types.ts makes of the protos in protos/manifest.json', () => {
  const have = fs.readFileSync(path.join(REPO, 'src', 'generated', 'envoy.ts'), 'utf8');
  assert.ok(have === generate(), 'out of date: run node scripts/gen-types.ts');
});

test('a misspelt or mistyped field is a compile error, where protobufjs would drop or mangle it', () => {
  // @ts-expect-error clustr_name is not a field of ClusterLoadAssignment
  const misspelt: ClusterLoadAssignment = { clustr_name: 'a' };
  // @ts-expect-error port_value is a number
  const mistyped: ClusterLoadAssignment = { endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '10.0.0.1', port_value: 'http' } } } }] }] };
  // Not run: only compiled.
  const build = (): EncodedResource =>
    // @ts-expect-error an unknown field of any resource is refused where a resource is built
    new EncodedResource(ENDPOINT_TYPE, 'a', { cluster_name: 'a', endpoint: [] });
  const ok: Listener = { name: 'l', address: { socket_address: { address: '127.0.0.1', port_value: 15001 } } };
  // What the types prevent: protobufjs silently drops the misspelt field.
  const t = messageType('envoy.config.endpoint.v3.ClusterLoadAssignment');
  assert.deepEqual(t.toObject(t.decode(t.encode(t.fromObject(misspelt)).finish())), {});
  assert.ok(mistyped && ok && build);
});
