// A resource encoded once per content: the bytes every response that carries it shares.
import { contentHash } from '../model/hash.ts';
import { metrics } from '../shared/metrics.ts';
import { messageType } from './proto.ts';
import { MESSAGE_OF, type MessageOf, type TypeUrl } from './resources.ts';
import { encodeAny, encodeDeltaResource } from './wire.ts';

const encodes = metrics.counter('isthmus_xds_resource_encodes_total', 'Resources encoded to protobuf, by type (once per content version).');

export class EncodedResource {
  readonly typeUrl: TypeUrl;
  readonly name: string;
  /** Hash of the encoded bytes: equal content gives equal versions in every process. */
  readonly version: string;
  /** The resource as an encoded google.protobuf.Any, shared by every response. */
  readonly any: Buffer;
  private delta?: Buffer;

  constructor(typeUrl: TypeUrl, name: string, message: MessageOf[TypeUrl]) {
    const t = messageType(MESSAGE_OF[typeUrl]);
    const bytes = t.encode(t.fromObject(message)).finish();
    this.typeUrl = typeUrl;
    this.name = name;
    this.version = contentHash(bytes);
    this.any = encodeAny(typeUrl, bytes);
    encodes.inc({ type: MESSAGE_OF[typeUrl] });
  }

  /** The encoded message itself (the Any's value), e.g. to derive a variant of it. */
  payload(): Uint8Array {
    return (messageType('google.protobuf.Any').decode(this.any) as unknown as { value: Uint8Array }).value;
  }

  /** The delta-protocol Resource wrapper, built on first use and then shared. */
  deltaBytes(): Buffer {
    return (this.delta ??= encodeDeltaResource(this.name, this.version, this.any));
  }
}

export type ResourceMap = ReadonlyMap<string, EncodedResource>;
