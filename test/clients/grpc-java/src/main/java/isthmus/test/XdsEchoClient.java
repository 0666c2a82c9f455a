// A real grpc-java proxyless xDS client for the Isthmus integration tests, driven over
// loopback HTTP. It implements the control contract at the top of test/helpers/proxyless.ts:
//
//   - the xDS bootstrap JSON is in env GRPC_XDS_BOOTSTRAP_CONFIG (grpc-xds reads it itself);
//   - it listens on 127.0.0.1:0 and prints "PORT <n>" on stdout once it serves;
//   - GET /call?target=xds:///HOST:PORT&n=N&timeoutMs=T[&header=name:value]... makes N unary
//     /isthmus.test.Echo/Call calls, one after the other, on one ManagedChannel per target
//     (kept across requests), and answers
//     {"counts": {backend: n, "!error": n}, "errors": [up to 3 messages]}, each message
//     starting with the gRPC status code name ("UNAVAILABLE: ...");
//   - it exits on SIGTERM.
//
// No protoc: the two messages of test/fixtures/echo.proto are (de)serialised by hand with
// protobuf-java's CodedOutputStream / CodedInputStream.
package isthmus.test;

import com.google.protobuf.CodedInputStream;
import com.google.protobuf.CodedOutputStream;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientInterceptors;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.MetadataUtils;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.logging.ConsoleHandler;
import java.util.logging.Level;
import java.util.logging.Logger;

public final class XdsEchoClient {
  /** EchoReply {string message = 1; string backend = 2;} */
  record EchoReply(String message, String backend) {}

  /** EchoRequest {string message = 1;} as a plain String. */
  static final MethodDescriptor.Marshaller<String> REQUEST =
      new MethodDescriptor.Marshaller<>() {
        @Override
        public InputStream stream(String message) {
          return new ByteArrayInputStream(encode(out -> {
            if (!message.isEmpty()) out.writeString(1, message);
          }));
        }

        @Override
        public String parse(InputStream stream) {
          String message = "";
          try {
            CodedInputStream in = CodedInputStream.newInstance(stream);
            for (int tag; (tag = in.readTag()) != 0; ) {
              if (tag == (1 << 3 | 2)) message = in.readStringRequireUtf8();
              else if (!in.skipField(tag)) break;
            }
          } catch (IOException e) {
            throw new UncheckedIOException(e);
          }
          return message;
        }
      };

  static final MethodDescriptor.Marshaller<EchoReply> REPLY =
      new MethodDescriptor.Marshaller<>() {
        @Override
        public InputStream stream(EchoReply reply) {
          return new ByteArrayInputStream(encode(out -> {
            if (!reply.message().isEmpty()) out.writeString(1, reply.message());
            if (!reply.backend().isEmpty()) out.writeString(2, reply.backend());
          }));
        }

        @Override
        public EchoReply parse(InputStream stream) {
          String message = "";
          String backend = "";
          try {
            CodedInputStream in = CodedInputStream.newInstance(stream);
            for (int tag; (tag = in.readTag()) != 0; ) {
              switch (tag) {
                case 1 << 3 | 2 -> message = in.readStringRequireUtf8();
                case 2 << 3 | 2 -> backend = in.readStringRequireUtf8();
                default -> {
                  if (!in.skipField(tag)) return new EchoReply(message, backend);
                }
              }
            }
          } catch (IOException e) {
            throw new UncheckedIOException(e);
          }
          return new EchoReply(message, backend);
        }
      };

  static final MethodDescriptor<String, EchoReply> CALL =
      MethodDescriptor.<String, EchoReply>newBuilder()
          .setType(MethodDescriptor.MethodType.UNARY)
          .setFullMethodName(MethodDescriptor.generateFullMethodName("isthmus.test.Echo", "Call"))
          .setRequestMarshaller(REQUEST)
          .setResponseMarshaller(REPLY)
          .build();

  interface Writer {
    void write(CodedOutputStream out) throws IOException;
  }

  static byte[] encode(Writer w) {
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    try {
      CodedOutputStream out = CodedOutputStream.newInstance(bytes);
      w.write(out);
      out.flush();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return bytes.toByteArray();
  }

  /** One channel per target, created on first use and kept until exit. */
  static final Map<String, ManagedChannel> CHANNELS = new ConcurrentHashMap<>();

  public static void main(String[] args) throws IOException {
    // GRPC_TRACE / GRPC_VERBOSITY=DEBUG (set by startProxylessClient's `trace`) turn on
    // grpc-java's own xDS logging (java.util.logging, to stderr).
    if (System.getenv("GRPC_TRACE") != null || "DEBUG".equalsIgnoreCase(System.getenv("GRPC_VERBOSITY"))) {
      ConsoleHandler handler = new ConsoleHandler();
      handler.setLevel(Level.ALL);
      Logger xds = Logger.getLogger("io.grpc.xds");
      xds.setLevel(Level.FINEST);
      xds.addHandler(handler);
    }

    HttpServer server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
    server.setExecutor(Executors.newCachedThreadPool());
    server.createContext("/", XdsEchoClient::handle);
    server.start();

    // SIGTERM runs the shutdown hooks, then the JVM exits.
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      server.stop(0);
      CHANNELS.values().forEach(ManagedChannel::shutdownNow);
    }));

    System.out.println("PORT " + server.getAddress().getPort());
    System.out.flush();
  }

  static void handle(HttpExchange ex) throws IOException {
    try {
      serve(ex);
    } catch (RuntimeException e) {
      // A bad query (e.g. n=abc) or target: 400 with the reason; the server keeps serving.
      byte[] body = String.valueOf(e).getBytes(StandardCharsets.UTF_8);
      ex.sendResponseHeaders(400, body.length);
      try (OutputStream os = ex.getResponseBody()) {
        os.write(body);
      }
    } finally {
      ex.close();
    }
  }

  static void serve(HttpExchange ex) throws IOException {
    if (!"/call".equals(ex.getRequestURI().getPath())) {
      ex.sendResponseHeaders(404, -1);
      return;
    }
    String target = "";
    int n = 1;
    long timeoutMs = 3000;
    Metadata headers = new Metadata();
    String query = ex.getRequestURI().getRawQuery();
    for (String pair : query == null ? new String[0] : query.split("&")) {
      int eq = pair.indexOf('=');
      if (eq < 0) continue;
      String key = URLDecoder.decode(pair.substring(0, eq), StandardCharsets.UTF_8);
      String value = URLDecoder.decode(pair.substring(eq + 1), StandardCharsets.UTF_8);
      switch (key) {
        case "target" -> target = value;
        case "n" -> n = Integer.parseInt(value);
        case "timeoutMs" -> timeoutMs = Long.parseLong(value);
        case "header" -> {
          int colon = value.indexOf(':');
          if (colon > 0) {
            // Metadata.Key lower-cases the name, as HTTP/2 requires.
            headers.put(Metadata.Key.of(value.substring(0, colon), Metadata.ASCII_STRING_MARSHALLER), value.substring(colon + 1));
          }
        }
        default -> {}
      }
    }

    ManagedChannel managed = CHANNELS.computeIfAbsent(target,
        t -> Grpc.newChannelBuilder(t, InsecureChannelCredentials.create()).build());
    Channel channel = ClientInterceptors.intercept(managed, MetadataUtils.newAttachHeadersInterceptor(headers));

    Map<String, Integer> counts = new LinkedHashMap<>();
    List<String> errors = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      String key;
      try {
        EchoReply reply = ClientCalls.blockingUnaryCall(channel, CALL,
            CallOptions.DEFAULT.withDeadlineAfter(timeoutMs, TimeUnit.MILLISECONDS), "hi");
        key = reply.backend();
      } catch (StatusRuntimeException e) {
        key = "!error";
        if (errors.size() < 3) {
          String detail = e.getStatus().getDescription();
          if (detail == null && e.getStatus().getCause() != null) detail = e.getStatus().getCause().toString();
          errors.add(e.getStatus().getCode().name() + ": " + (detail == null ? "" : detail));
        }
      }
      counts.merge(key, 1, Integer::sum);
    }

    StringBuilder json = new StringBuilder("{\"counts\":{");
    String sep = "";
    for (Map.Entry<String, Integer> c : counts.entrySet()) {
      json.append(sep).append(quote(c.getKey())).append(':').append(c.getValue());
      sep = ",";
    }
    json.append("},\"errors\":[");
    sep = "";
    for (String e : errors) {
      json.append(sep).append(quote(e));
      sep = ",";
    }
    json.append("]}");

    byte[] body = json.toString().getBytes(StandardCharsets.UTF_8);
    ex.getResponseHeaders().set("content-type", "application/json");
    ex.sendResponseHeaders(200, body.length);
    try (OutputStream os = ex.getResponseBody()) {
      os.write(body);
    }
  }

  /** A JSON string literal. */
  static String quote(String s) {
    StringBuilder b = new StringBuilder("\"");
    for (char c : s.toCharArray()) {
      switch (c) {
        case '"' -> b.append("\\\"");
        case '\\' -> b.append("\\\\");
        default -> {
          if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
          else b.append(c);
        }
      }
    }
    return b.append('"').toString();
  }
}
