// Hand-written protobuf framing for discovery responses, so that resources encoded once
// are copied into every response as bytes instead of being re-serialized per connection.

const enc = new TextEncoder();

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

class Writer {
  private readonly parts: Uint8Array[] = [];
  length = 0;

  private varint(n: number): void {
    const buf = new Uint8Array(varintSize(n));
    let i = 0;
    while (n >= 0x80) {
      buf[i++] = (n & 0x7f) | 0x80;
      n = Math.floor(n / 128);
    }
    buf[i] = n;
    this.parts.push(buf);
    this.length += buf.length;
  }

  bytes(field: number, data: Uint8Array): this {
    this.varint((field << 3) | 2);
    this.varint(data.length);
    this.parts.push(data);
    this.length += data.length;
    return this;
  }

  string(field: number, s: string): this {
    return s === '' ? this : this.bytes(field, enc.encode(s));
  }

  finish(): Buffer {
    return Buffer.concat(this.parts, this.length);
  }
}

/** google.protobuf.Any { type_url = 1; value = 2 } */
export function encodeAny(typeUrl: string, value: Uint8Array): Buffer {
  return new Writer().string(1, typeUrl).bytes(2, value).finish();
}

/** envoy.service.discovery.v3.Resource { version = 1; resource = 2; name = 3 } */
export function encodeDeltaResource(name: string, version: string, any: Uint8Array): Buffer {
  return new Writer().string(1, version).bytes(2, any).string(3, name).finish();
}

/** DiscoveryResponse { version_info = 1; resources = 2; type_url = 4; nonce = 5 } */
export function encodeDiscoveryResponse(version: string, anys: readonly Uint8Array[], typeUrl: string, nonce: string): Buffer {
  const w = new Writer().string(1, version);
  for (const a of anys) w.bytes(2, a);
  return w.string(4, typeUrl).string(5, nonce).finish();
}

/**
 * DeltaDiscoveryResponse { system_version_info = 1; resources = 2; type_url = 4; nonce = 5; removed_resources = 6 }
 * without its nonce (appended by nonceField): shareable.
 */
export function encodeDeltaBody(systemVersion: string, resources: readonly Uint8Array[], typeUrl: string, removed: readonly string[]): Buffer {
  const w = new Writer().string(1, systemVersion);
  for (const r of resources) w.bytes(2, r);
  w.string(4, typeUrl);
  for (const name of removed) w.bytes(6, enc.encode(name));
  return w.finish();
}

/** A DiscoveryResponse without its nonce: shared by every proxy sent the same thing. */
export function encodeDiscoveryBody(version: string, anys: readonly Uint8Array[], typeUrl: string): Buffer {
  const w = new Writer().string(1, version);
  for (const a of anys) w.bytes(2, a);
  return w.string(4, typeUrl).finish();
}

/** DiscoveryResponse.nonce and DeltaDiscoveryResponse.nonce (both field 5), appended to a shared body. */
export function nonceField(nonce: string): Buffer {
  return new Writer().string(5, nonce).finish();
}
