import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeGrpcMessage, FramingError, MessageFramer, Status } from '../../../src/xds/server/transport.ts';

function frame(body: Buffer, flag = 0): Buffer {
  const head = Buffer.alloc(5);
  head[0] = flag;
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

/** Messages as the framer delivers them, copied (they are valid only during delivery). */
function framer(max = 1 << 20): { f: MessageFramer; got: string[] } {
  const got: string[] = [];
  return { f: new MessageFramer(max, (b) => got.push(b.toString('latin1'))), got };
}

test('messages are framed however the stream is cut into chunks', () => {
  const bodies = [Buffer.from('first'), Buffer.alloc(0), Buffer.alloc(70_000, 'x'), Buffer.from('last')];
  const wire = Buffer.concat(bodies.map((b) => frame(b)));
  for (const size of [1, 3, 5, 7, 4096, 16_384, wire.length]) {
    const { f, got } = framer();
    for (let i = 0; i < wire.length; i += size) f.push(wire.subarray(i, i + size));
    assert.deepEqual(got, bodies.map((b) => b.toString('latin1')), `chunks of ${size}`);
  }
});

test('a message spanning chunks is whole when delivered, and the next one is unaffected', () => {
  const a = Buffer.alloc(40_000, 'a');
  const b = Buffer.alloc(30_000, 'b');
  const wire = Buffer.concat([frame(a), frame(b)]);
  const { f, got } = framer();
  f.push(wire.subarray(0, 20_000));
  f.push(wire.subarray(20_000, 40_010));
  f.push(wire.subarray(40_010));
  assert.deepEqual(got, [a.toString('latin1'), b.toString('latin1')]);
});

test('compressed or oversized messages are refused with the reason', () => {
  assert.throws(
    () => framer().f.push(frame(Buffer.from('x'), 1)),
    (e: unknown) => e instanceof FramingError && e.code === Status.UNIMPLEMENTED && /compressed/.test(e.message),
  );
  assert.throws(
    () => framer(10).f.push(frame(Buffer.alloc(11))),
    (e: unknown) => e instanceof FramingError && e.code === Status.RESOURCE_EXHAUSTED && /11 bytes is over the limit of 10/.test(e.message),
  );
});

test('grpc-message is percent-encoded', () => {
  assert.equal(encodeGrpcMessage('bad 100% "ü"\n'), 'bad 100%25 "%C3%BC"%0A');
});

test('with a parts handler, a message spanning chunks is handed over as those chunks, uncopied', () => {
  const body = Buffer.alloc(50_000, 'p');
  const wire = frame(body);
  const chunks = [wire.subarray(0, 16_384), wire.subarray(16_384, 32_768), wire.subarray(32_768)];
  let whole: string[] = [];
  const got: { parts: readonly Buffer[]; length: number }[] = [];
  const f = new MessageFramer(1 << 20, (b) => whole.push(b.toString('latin1')), (parts, length) => got.push({ parts: [...parts], length }));
  for (const c of chunks) f.push(c);
  assert.deepEqual(whole, []);
  assert.equal(got.length, 1);
  assert.equal(got[0]!.length, body.length);
  assert.ok(Buffer.concat(got[0]!.parts).equals(body));
  assert.equal(got[0]!.parts[0]!.buffer, chunks[0]!.buffer, 'a view of the chunk, not a copy');
  whole = [];
  f.push(frame(Buffer.from('small')));
  assert.deepEqual(whole, ['small'], 'a message within one chunk still comes whole');
});
