// Loads test/fixtures/echo.proto for gRPC backends and clients.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

export const ECHO_PROTO = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'echo.proto');
export const ECHO_SERVICE = 'isthmus.test.Echo';

export interface EchoRequest {
  message: string;
}
export interface EchoReply {
  message: string;
  backend: string;
}

export type EchoClient = grpc.Client & {
  Call(
    req: EchoRequest,
    metadata: grpc.Metadata,
    options: grpc.CallOptions,
    cb: (err: grpc.ServiceError | null, reply?: EchoReply) => void,
  ): grpc.ClientUnaryCall;
};

type EchoCtor = grpc.ServiceClientConstructor & { service: grpc.ServiceDefinition };

let cached: EchoCtor | undefined;
/** The generated Echo client constructor; `.service` is its service definition. */
export function echoConstructor(): EchoCtor {
  if (!cached) {
    const def = protoLoader.loadSync(ECHO_PROTO, { keepCase: true, defaults: true });
    const pkg = grpc.loadPackageDefinition(def) as unknown as { isthmus: { test: { Echo: EchoCtor } } };
    cached = pkg.isthmus.test.Echo;
  }
  return cached;
}
