package com.example.isthmus;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executors;
import org.apache.dubbo.config.ApplicationConfig;
import org.apache.dubbo.config.ProtocolConfig;
import org.apache.dubbo.config.ReferenceConfig;
import org.apache.dubbo.config.RegistryConfig;
import org.apache.dubbo.config.ServiceConfig;
import org.apache.dubbo.config.bootstrap.DubboBootstrap;
import org.apache.dubbo.rpc.RpcContext;
import org.apache.dubbo.rpc.RpcException;
import org.apache.dubbo.rpc.model.ModuleModel;

/**
 * A stock Apache Dubbo application (3.3 with ZooKeeper, or 3.2 with etcd: see pom.xml) for
 * Isthmus's integration tests, configured with Dubbo's plain Java API (no Spring), in one of
 * two modes:
 *
 * <pre>
 * provider --registry zookeeper://127.0.0.1:2181 [--application orders] [--instance orders-1]
 *          [--register-mode interface|instance|all] [--host 127.0.0.1] [--port 20880]
 *          [--tri [--tri-port N]] [--version V] [--group G] [--weight W] [--delay-ms D]
 *          [--param k=v[,k=v]] [--prefer-serialization fastjson2,hessian2] [--bind-host H] [--register-host H] [--bind-port N] [--register-port N]
 *          [--metadata-type local|remote] [--shutdown-wait-ms 1000] [--network-interface-ignored REGEX]
 *     Exports Greeter and Orders on one port with the dubbo protocol (and with tri on a
 *     second port with --tri), registers in the registry, prints the exported URLs and then
 *     a line "READY". SIGTERM runs Dubbo's shutdown hook: it unregisters, then exits.
 *
 * consumer [--registry zookeeper://...] [--application isthmus-consumer]
 *          [--discovery interface|application|both] [--network-interface-ignored REGEX]
 *          [--metadata-service-port N]
 *     Serves HTTP on 127.0.0.1:0 and prints "PORT n".
 *     GET /call?interface=I&amp;n=N&amp;timeoutMs=T[&amp;url=dubbo://HOST:PORT][&amp;version=V][&amp;group=G]
 *     makes N calls of I's method through a Dubbo reference (direct to url when given,
 *     Dubbo's point-to-point mode; else through the registry), and answers
 *     {"counts": {answer: n, "!error": n}, "errors": [up to 3 messages]}; a message starts with
 *     the RpcException's code name (TIMEOUT: ..., NETWORK: ..., FORBIDDEN: ...).
 * </pre>
 *
 * --registry may name several registries, separated by spaces, e.g. Dubbo 3.2's two etcd
 * extensions, each with its own register-mode: "etcd3://H:P?register-mode=interface
 * etcd://H:P?register-mode=instance".
 *
 * Every flag maps onto one Dubbo setting; nothing here changes how Dubbo registers or
 * discovers, so what lands in the registry is what any Dubbo application of that version writes.
 */
public final class DubboApp {
    private DubboApp() {}

    public static void main(String[] argv) throws Exception {
        if (argv.length == 0 || !(argv[0].equals("provider") || argv[0].equals("consumer"))) {
            System.err.println("usage: isthmus-dubbo-app provider|consumer [--flag value]... (see DubboApp.java)");
            System.exit(2);
        }
        boolean provider = argv[0].equals("provider");
        Flags f = new Flags(argv, provider ? PROVIDER_FLAGS : CONSUMER_FLAGS, provider ? Set.of("tri") : Set.of());
        // Before the first Dubbo class loads: Dubbo picks its logging adapter once.
        System.setProperty("dubbo.application.logger", "slf4j");
        // On SIGTERM Dubbo's shutdown hook unregisters first, then waits this long for calls
        // in flight (Dubbo's default is 10 s, longer than a test wants to wait).
        System.setProperty("dubbo.service.shutdown.wait", f.get("shutdown-wait-ms", "1000"));
        // Dubbo replaces a 127.x (or empty, or 0.0.0.0) host with the machine's first
        // non-loopback address (NetUtils.getLocalHost) and then binds 0.0.0.0. With every
        // interface ignored (--network-interface-ignored '.*') it finds none and uses 127.0.0.1.
        f.toSystemProperty("network-interface-ignored", "dubbo.network.interface.ignored");
        if (provider) provider(f);
        else consumer(f);
    }

    private static final Set<String> PROVIDER_FLAGS = Set.of(
            "registry", "application", "instance", "register-mode", "host", "port", "tri", "tri-port",
            "version", "group", "weight", "param", "prefer-serialization", "delay-ms", "bind-host", "register-host", "bind-port", "register-port",
            "metadata-type", "shutdown-wait-ms", "network-interface-ignored");
    private static final Set<String> CONSUMER_FLAGS = Set.of("registry", "application", "discovery", "shutdown-wait-ms", "network-interface-ignored", "control-host", "metadata-service-port");

    // ---------------------------------------------------------------- provider

    private static void provider(Flags f) throws Exception {
        String app = f.get("application", "orders");
        String instance = f.get("instance", app + "-1");
        String registry = f.require("registry");
        String host = f.get("host", "127.0.0.1");
        int port = Integer.parseInt(f.get("port", "20880"));
        long delayMs = Long.parseLong(f.get("delay-ms", "0"));

        // Bind and registered addresses apart from dubbo.protocol.host/port: Dubbo reads these
        // from the environment or system properties (ServiceConfig.findConfiguredHosts/Port);
        // ports are per protocol (DUBBO_ prefix for the dubbo protocol), hosts for both.
        // Note that Dubbo refuses 127.x and 0.0.0.0 for all of these (NetUtils.isInvalidLocalHost).
        f.toSystemProperty("bind-host", "DUBBO_IP_TO_BIND");
        f.toSystemProperty("register-host", "DUBBO_IP_TO_REGISTRY");
        f.toSystemProperty("bind-port", "DUBBO_DUBBO_PORT_TO_BIND");
        f.toSystemProperty("register-port", "DUBBO_DUBBO_PORT_TO_REGISTRY");

        ApplicationConfig application = new ApplicationConfig(app);
        quiet(application);
        // dubbo.application.register-mode: interface (2.x layout), instance (3.x application
        // level: /services/<app>) or all (both; Dubbo 3's default when unset).
        if (f.has("register-mode")) application.setRegisterMode(f.get("register-mode", null));
        if (f.has("metadata-type")) application.setMetadataType(f.get("metadata-type", null));

        List<ProtocolConfig> protocols = new ArrayList<>();
        ProtocolConfig dubbo = new ProtocolConfig("dubbo", port);
        dubbo.setHost(host); // dubbo.protocol.host: bound and registered
        // dubbo.protocol.prefer-serialization, e.g. fastjson2,hessian2 (Dubbo 3.2's default).
        if (f.has("prefer-serialization")) dubbo.setPreferSerialization(f.get("prefer-serialization", null));
        protocols.add(dubbo);
        if (f.has("tri")) {
            ProtocolConfig tri = new ProtocolConfig("tri", Integer.parseInt(f.get("tri-port", String.valueOf(port + 1))));
            tri.setHost(host);
            protocols.add(tri);
        }

        ServiceConfig<Greeter> greeter = service(f, Greeter.class, new GreeterImpl(app + "/" + instance, delayMs));
        ServiceConfig<Orders> orders = service(f, Orders.class, new OrdersImpl(app + "/" + instance, delayMs));

        DubboBootstrap.getInstance()
                .application(application)
                .registries(registries(registry))
                .protocols(protocols)
                .service(greeter)
                .service(orders)
                .start(); // exports (and registers) before it returns

        for (ServiceConfig<?> s : List.of(greeter, orders)) {
            s.getExportedUrls().forEach(u -> System.out.println("EXPORTED " + u.toString()));
        }
        System.out.println("READY");
        System.out.flush();
        new CountDownLatch(1).await(); // until SIGTERM
    }

    /** One RegistryConfig per space-separated address. */
    private static List<RegistryConfig> registries(String addresses) {
        List<RegistryConfig> out = new ArrayList<>();
        for (String a : addresses.trim().split("\\s+")) out.add(new RegistryConfig(a));
        return out;
    }

    /** Settings of both modes that keep test processes from sharing state on the machine. */
    private static void quiet(ApplicationConfig application) {
        // No QoS server: it would take port 22222 in every process on the machine.
        application.setQosEnable(false);
        // No registry, metadata and mapping caches in ~/.dubbo: processes of one application
        // name would share them across test runs (and a consumer could start from stale providers).
        application.setEnableFileCache(false);
    }

    private static <T> ServiceConfig<T> service(Flags f, Class<T> iface, T impl) {
        ServiceConfig<T> s = new ServiceConfig<>();
        s.setInterface(iface);
        s.setRef(impl);
        if (f.has("version")) s.setVersion(f.get("version", null));
        if (f.has("group")) s.setGroup(f.get("group", null));
        if (f.has("weight")) s.setWeight(Integer.parseInt(f.get("weight", null)));
        // --param k=v[,k=v]: service parameters, registered in the provider URL (labels in Isthmus).
        if (f.has("param")) {
            Map<String, String> params = new LinkedHashMap<>();
            for (String kv : f.get("param", "").split(",")) {
                int eq = kv.indexOf('=');
                if (eq > 0) params.put(kv.substring(0, eq), kv.substring(eq + 1));
            }
            s.setParameters(params);
        }
        return s;
    }

    /** Answers name the instance, so that a test can tell which one answered. */
    private static final class GreeterImpl implements Greeter {
        private final String who;
        private final long delayMs;

        GreeterImpl(String who, long delayMs) {
            this.who = who;
            this.delayMs = delayMs;
        }

        @Override
        public String greet(String name) {
            pause(delayMs);
            return who + ": hello " + name;
        }
    }

    private static final class OrdersImpl implements Orders {
        private final String who;
        private final long delayMs;

        OrdersImpl(String who, long delayMs) {
            this.who = who;
            this.delayMs = delayMs;
        }

        @Override
        public String place(String item) {
            pause(delayMs);
            return who + ": placed " + item;
        }
    }

    private static void pause(long ms) {
        if (ms <= 0) return;
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    // ---------------------------------------------------------------- consumer

    private static void consumer(Flags f) throws Exception {
        // Which registrations a registry-bound reference follows (Dubbo's migration step):
        // interface = FORCE_INTERFACE, application = FORCE_APPLICATION, both = APPLICATION_FIRST
        // (Dubbo 3's default: application level when found, else interface level).
        if (f.has("discovery")) {
            String step = switch (f.get("discovery", null)) {
                case "interface" -> "FORCE_INTERFACE";
                case "application" -> "FORCE_APPLICATION";
                case "both" -> "APPLICATION_FIRST";
                default -> throw new IllegalArgumentException("--discovery must be interface, application or both");
            };
            System.setProperty("dubbo.application.service-discovery.migration", step);
        }
        ApplicationConfig application = new ApplicationConfig(f.get("application", "isthmus-consumer"));
        quiet(application);
        // Dubbo 3.2 consumers export their MetadataService on the dubbo protocol's port (20880,
        // every address): beside a sidecar listening on 20880 it must go elsewhere.
        if (f.has("metadata-service-port")) application.setMetadataServicePort(Integer.parseInt(f.get("metadata-service-port", null)));
        // Without --registry only point-to-point references (url=...) can work.
        DubboBootstrap bootstrap = DubboBootstrap.getInstance()
                .application(application)
                .registries(registries(f.get("registry", RegistryConfig.NO_AVAILABLE)))
                .start();

        Caller caller = new Caller(bootstrap.getApplicationModel().getDefaultModule());
        // --control-host: where the test reaches the control server (a host address inside a network namespace).
        HttpServer server = HttpServer.create(new InetSocketAddress(f.get("control-host", "127.0.0.1"), 0), 0);
        server.createContext("/call", caller::handle);
        server.setExecutor(Executors.newFixedThreadPool(4));
        server.start();
        System.out.println("PORT " + server.getAddress().getPort());
        System.out.flush();
    }

    /** The interfaces a consumer can call, by full and short name. */
    private static Class<?> interfaceClass(String name) {
        return switch (name) {
            case "com.example.isthmus.Greeter", "Greeter" -> Greeter.class;
            case "com.example.isthmus.Orders", "Orders" -> Orders.class;
            default -> null;
        };
    }

    /** One call of the interface's method. */
    private static String invoke(Object proxy) {
        if (proxy instanceof Greeter g) return g.greet("isthmus");
        return ((Orders) proxy).place("isthmus");
    }

    private static final class Caller {
        private final ModuleModel module;
        /** One reference per (interface, url, version, group), reused across requests. */
        private final Map<String, Object> refs = new ConcurrentHashMap<>();

        Caller(ModuleModel module) {
            this.module = module;
        }

        private Object reference(Class<?> iface, String url, String version, String group) {
            String key = iface.getName() + "|" + url + "|" + version + "|" + group;
            return refs.computeIfAbsent(key, k -> {
                ReferenceConfig<Object> rc = new ReferenceConfig<>(module);
                rc.setInterface(iface);
                // Point-to-point: Dubbo's `url` attribute bypasses the registry (how a consumer
                // is pointed at a local sidecar).
                if (url != null) rc.setUrl(url);
                if (version != null) rc.setVersion(version);
                if (group != null) rc.setGroup(group);
                rc.setCheck(false); // no provider yet is not an error at creation
                rc.setRetries(0); // one call is one attempt: a failure counts as "!error"
                rc.setTimeout(3000);
                return rc.get();
            });
        }

        void handle(HttpExchange ex) throws IOException {
            try {
                Map<String, String> q = query(ex.getRequestURI().getRawQuery());
                Class<?> iface = interfaceClass(q.getOrDefault("interface", ""));
                if (iface == null) {
                    reply(ex, 400, "{\"error\":" + json("unknown interface " + q.get("interface")) + "}");
                    return;
                }
                int n = Integer.parseInt(q.getOrDefault("n", "1"));
                String timeoutMs = q.getOrDefault("timeoutMs", "3000");
                Map<String, Integer> counts = new LinkedHashMap<>();
                List<String> errors = new ArrayList<>();
                Object proxy = null;
                try {
                    proxy = reference(iface, q.get("url"), q.get("version"), q.get("group"));
                } catch (RuntimeException e) {
                    counts.put("!error", n);
                    errors.add(describe(e));
                }
                for (int i = 0; proxy != null && i < n; i++) {
                    try {
                        // A per-call timeout for the reference's next call (Dubbo reads the
                        // "timeout" attachment before the reference's own setting).
                        RpcContext.getClientAttachment().setAttachment("timeout", timeoutMs);
                        counts.merge(invoke(proxy), 1, Integer::sum);
                    } catch (RuntimeException e) {
                        counts.merge("!error", 1, Integer::sum);
                        if (errors.size() < 3) errors.add(describe(e));
                    }
                }
                StringBuilder b = new StringBuilder("{\"counts\":{");
                String sep = "";
                for (Map.Entry<String, Integer> e : counts.entrySet()) {
                    b.append(sep).append(json(e.getKey())).append(':').append(e.getValue());
                    sep = ",";
                }
                b.append("},\"errors\":[");
                sep = "";
                for (String e : errors) {
                    b.append(sep).append(json(e));
                    sep = ",";
                }
                reply(ex, 200, b.append("]}").toString());
            } catch (RuntimeException e) {
                reply(ex, 500, "{\"error\":" + json(describe(e)) + "}");
            }
        }
    }

    /** RpcException's codes, by number (RpcException.TIMEOUT_EXCEPTION is 2, ...). */
    private static final String[] RPC_CODES = {
        "UNKNOWN", "NETWORK", "TIMEOUT", "BIZ", "FORBIDDEN", "SERIALIZATION", "NO_INVOKER_AVAILABLE_AFTER_FILTER",
        "LIMIT_EXCEEDED", "TIMEOUT_TERMINATE", "REGISTRY", "ROUTER_CACHE_NOT_BUILD", "METHOD_NOT_FOUND", "VALIDATION",
        "AUTHORIZATION",
    };

    /** "CODE: message" for a Dubbo RpcException (e.g. "TIMEOUT: Failed to invoke..."), else "Class: message". */
    private static String describe(Throwable e) {
        String kind = e.getClass().getSimpleName();
        if (e instanceof RpcException r) {
            kind = r.getCode() >= 0 && r.getCode() < RPC_CODES.length ? RPC_CODES[r.getCode()] : "RPC_" + r.getCode();
        }
        String m = kind + ": " + e.getMessage();
        return m.length() > 600 ? m.substring(0, 600) + "..." : m;
    }

    private static Map<String, String> query(String raw) {
        Map<String, String> q = new HashMap<>();
        if (raw == null) return q;
        for (String pair : raw.split("&")) {
            if (pair.isEmpty()) continue;
            int eq = pair.indexOf('=');
            String k = URLDecoder.decode(eq < 0 ? pair : pair.substring(0, eq), StandardCharsets.UTF_8);
            String v = eq < 0 ? "" : URLDecoder.decode(pair.substring(eq + 1), StandardCharsets.UTF_8);
            if (!v.isEmpty()) q.put(k, v);
        }
        return q;
    }

    private static void reply(HttpExchange ex, int status, String body) throws IOException {
        byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
        ex.getResponseHeaders().set("content-type", "application/json");
        ex.sendResponseHeaders(status, bytes.length);
        try (OutputStream os = ex.getResponseBody()) {
            os.write(bytes);
        }
    }

    private static String json(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case '\n' -> b.append("\\n");
                case '\r' -> b.append("\\r");
                case '\t' -> b.append("\\t");
                default -> {
                    if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
                    else b.append(c);
                }
            }
        }
        return b.append('"').toString();
    }

    // ---------------------------------------------------------------- flags

    /** --name value, --name=value, or a bare --name for the boolean ones; unknown flags are an error. */
    private static final class Flags {
        private final Map<String, String> values = new HashMap<>();

        Flags(String[] argv, Set<String> known, Set<String> booleans) {
            for (int i = 1; i < argv.length; i++) {
                String a = argv[i];
                if (!a.startsWith("--")) throw new IllegalArgumentException("unexpected argument " + a);
                String name = a.substring(2);
                String value;
                int eq = name.indexOf('=');
                if (eq >= 0) {
                    value = name.substring(eq + 1);
                    name = name.substring(0, eq);
                } else if (booleans.contains(name)) {
                    value = "true";
                } else {
                    if (i + 1 >= argv.length) throw new IllegalArgumentException("--" + name + " needs a value");
                    value = argv[++i];
                }
                if (!known.contains(name)) throw new IllegalArgumentException("unknown flag --" + name + " (known: " + known + ")");
                values.put(name, value);
            }
        }

        boolean has(String name) {
            return values.containsKey(name);
        }

        String get(String name, String dflt) {
            return values.getOrDefault(name, dflt);
        }

        String require(String name) {
            String v = values.get(name);
            if (v == null) throw new IllegalArgumentException("--" + name + " is required");
            return v;
        }

        void toSystemProperty(String name, String property) {
            if (has(name)) System.setProperty(property, values.get(name));
        }
    }
}
