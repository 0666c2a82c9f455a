// gRPC message framing for the ADS transport: status codes, DATA chunks split into
// length-prefixed messages (in place when a message lies in one chunk), and messages that
// span chunks joined in one reused scratch buffer.

/** gRPC status codes used here. */
export const Status = {
  OK: 0,
  INVALID_ARGUMENT: 3,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
} as const;

/** Messages larger than this spanning several frames get their own buffer; smaller ones share one. */
const SCRATCH_MAX = 1 << 20;
let scratch = Buffer.allocUnsafeSlow(64 * 1024);

function scratchOf(len: number): Buffer {
  if (len > SCRATCH_MAX) return Buffer.allocUnsafe(len);
  if (scratch.length < len) scratch = Buffer.allocUnsafeSlow(Math.min(SCRATCH_MAX, 2 ** Math.ceil(Math.log2(len))));
  return scratch;
}

/** The parts of one message joined, in the shared scratch buffer when small enough: valid until the next join. */
export function joinParts(parts: readonly Buffer[], length: number): Buffer {
  const buf = scratchOf(length);
  let at = 0;
  for (const p of parts) at += p.copy(buf, at);
  return buf.subarray(0, length);
}

/** grpc-message is percent-encoded: printable ASCII except '%' stays as is. */
export function encodeGrpcMessage(s: string): string {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) out += b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  return out;
}

/** Splits a stream of DATA chunks into gRPC messages (5-byte prefix: compressed flag, length). */
export class MessageFramer {
  private readonly head = Buffer.alloc(5);
  private headGot = 0;
  private len = 0;
  private parts: Buffer[] = [];
  private got = 0;
  private readonly max: number;
  private readonly deliver: (bytes: Buffer) => void;
  private readonly deliverParts?: (parts: readonly Buffer[], length: number) => void;

  constructor(max: number, deliver: (bytes: Buffer) => void, deliverParts?: (parts: readonly Buffer[], length: number) => void) {
    this.max = max;
    this.deliver = deliver;
    this.deliverParts = deliverParts;
  }

  /** Bytes of a message begun and not yet delivered. */
  get held(): number {
    return this.headGot < 5 ? this.headGot : 5 + this.got;
  }

  /** Bytes still to come of a message begun (0 until its length is known). */
  get remaining(): number {
    return this.headGot < 5 ? 0 : this.len - this.got;
  }

  /** Messages delivered so far. */
  delivered = 0;

  /** Throws FramingError on a message that cannot be accepted; the call is then ended. */
  push(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.headGot < 5) {
        const take = Math.min(5 - this.headGot, chunk.length - i);
        chunk.copy(this.head, this.headGot, i, i + take);
        this.headGot += take;
        i += take;
        if (this.headGot < 5) return;
        if (this.head[0] !== 0) throw new FramingError(Status.UNIMPLEMENTED, this.head[0] === 1 ? 'compressed messages are not supported (send grpc-encoding identity)' : `bad message flag ${this.head[0]}`);
        this.len = this.head.readUInt32BE(1);
        if (this.len > this.max) throw new FramingError(Status.RESOURCE_EXHAUSTED, `request message of ${this.len} bytes is over the limit of ${this.max}`);
        this.got = 0;
        if (this.len === 0) {
          this.headGot = 0;
          this.delivered++;
          this.deliver(Buffer.alloc(0));
        }
        continue;
      }
      const avail = chunk.length - i;
      if (this.got === 0 && avail >= this.len) {
        // The whole message is in this chunk: no copy.
        const end = i + this.len;
        this.headGot = 0;
        this.delivered++;
        this.deliver(chunk.subarray(i, end));
        i = end;
        continue;
      }
      const take = Math.min(avail, this.len - this.got);
      this.parts.push(chunk.subarray(i, i + take));
      this.got += take;
      i += take;
      if (this.got < this.len) return;
      const parts = this.parts;
      this.parts = [];
      this.headGot = 0;
      this.delivered++;
      if (this.deliverParts) {
        this.deliverParts(parts, this.len);
        continue;
      }
      this.deliver(joinParts(parts, this.len));
    }
  }
}

export class FramingError extends Error {
  readonly code: number;
  constructor(code: number, message: string) {
    super(message);
    this.code = code;
  }
}
