import { createRequire } from 'node:module';
import { accessSync } from 'node:fs';
import path from 'node:path';
import protobuf from 'protobufjs';

// The Envoy API protos ship inside @grpc/grpc-js-xds; they are loaded from there, never copied.
const require = createRequire(import.meta.url);
const DEPS = path.join(path.dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
export const PROTO_INCLUDE_DIRS = [
  path.join(DEPS, 'envoy-api'),
  path.join(DEPS, 'xds'),
  path.join(DEPS, 'googleapis'),
  path.join(DEPS, 'protoc-gen-validate'),
  path.dirname(require.resolve('protobufjs/package.json')),
];

const FILES = [
  'envoy/service/discovery/v3/ads.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/config/bootstrap/v3/bootstrap.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/filters/http/fault/v3/fault.proto',
  'envoy/extensions/filters/http/header_mutation/v3/header_mutation.proto',
  'envoy/extensions/http/header_formatters/preserve_case/v3/preserve_case.proto',
  'envoy/extensions/filters/listener/original_dst/v3/original_dst.proto',
  'envoy/extensions/filters/listener/http_inspector/v3/http_inspector.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
];

function load(): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => {
    if (path.isAbsolute(target)) return target;
    for (const dir of PROTO_INCLUDE_DIRS) {
      const candidate = path.join(dir, target);
      try {
        accessSync(candidate);
        return candidate;
      } catch {
        // try the next include dir
      }
    }
    return target;
  };
  root.loadSync(FILES, { keepCase: true });
  root.resolveAll();
  return root;
}

export const root: protobuf.Root = load();

const typeCache = new Map<string, protobuf.Type>();
export function messageType(fullName: string): protobuf.Type {
  let t = typeCache.get(fullName);
  if (!t) {
    t = root.lookupType(fullName);
    typeCache.set(fullName, t);
  }
  return t;
}

export const TYPE_PREFIX = 'type.googleapis.com/';

/** Encodes a message (enum names accepted) and wraps it as google.protobuf.Any. */
export function toAny(fullName: string, value: Record<string, unknown>): { type_url: string; value: Uint8Array } {
  const t = messageType(fullName);
  return { type_url: TYPE_PREFIX + fullName, value: t.encode(t.fromObject(value)).finish() };
}

/** Decodes bytes to a plain object with enum names, longs as strings: for debug output. */
export function decodeToJson(fullName: string, bytes: Uint8Array): Record<string, unknown> {
  const t = messageType(fullName);
  return t.toObject(t.decode(bytes), { enums: String, longs: String, bytes: String, defaults: false }) as Record<string, unknown>;
}
