# grpc-java proxyless xDS client (test/clients/grpc-java, the 'java' kind of
# test/helpers/proxyless.ts): built with Maven from Maven Central into one runnable jar,
# $CACHE/grpc-java-client/isthmus-xds-client-java.jar, started by the wrapper
# $CACHE/bin/isthmus-xds-client-java. Maven's repository stays ~/.m2; the build output goes
# to $CACHE/grpc-java-client/build, never into the work tree. A marker keyed by a hash of
# pom.xml and the sources makes a second run a no-op; a change to either rebuilds.
# ISTHMUS_XDS_CLIENT_JAVA names a prebuilt client command (then nothing is built).
if [[ -n "${ISTHMUS_XDS_CLIENT_JAVA:-}" ]]; then
  command -v "$ISTHMUS_XDS_CLIENT_JAVA" >/dev/null 2>&1 \
    || { log "ISTHMUS_XDS_CLIENT_JAVA=$ISTHMUS_XDS_CLIENT_JAVA is not an executable command"; exit 1; }
else
  grpc_java_src="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../test/clients/grpc-java" && pwd)"
  grpc_java_dir="$CACHE/grpc-java-client"
  grpc_java_jar="$grpc_java_dir/isthmus-xds-client-java.jar"
  grpc_java_bin="$CACHE/bin/isthmus-xds-client-java"
  grpc_java_hash="$(cd "$grpc_java_src" && find pom.xml src -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)"
  if [[ ! -f "$grpc_java_dir/built-$grpc_java_hash.ok" || ! -f "$grpc_java_jar" || ! -x "$grpc_java_bin" ]]; then
    command -v java >/dev/null 2>&1 || { log "java (17 or later) is needed to build the grpc-java xDS client"; exit 1; }
    command -v mvn >/dev/null 2>&1 || { log "mvn (Maven) is needed to build the grpc-java xDS client"; exit 1; }
    log "building the grpc-java xDS client (mvn package; a cold ~/.m2 downloads ~70 MB from Maven Central)"
    grpc_java_start=$SECONDS
    mkdir -p "$grpc_java_dir"
    rm -rf "$grpc_java_dir/build" "$grpc_java_dir"/built-*.ok
    # isthmus.buildDir (a property of the pom) is Maven's <build><directory>: all output there.
    # Maven's output (quiet but for errors) goes to build.log, shown when the build fails.
    mvn -q -B -f "$grpc_java_src/pom.xml" -Disthmus.buildDir="$grpc_java_dir/build" package >"$grpc_java_dir/build.log" 2>&1 \
      || { log "grpc-java xDS client build failed (mvn package of $grpc_java_src; log $grpc_java_dir/build.log):"; tail -n 60 "$grpc_java_dir/build.log" >&2; exit 1; }
    [[ -f "$grpc_java_dir/build/isthmus-xds-client-java.jar" ]] \
      || { log "grpc-java xDS client build made no $grpc_java_dir/build/isthmus-xds-client-java.jar"; exit 1; }
    mv "$grpc_java_dir/build/isthmus-xds-client-java.jar" "$grpc_java_jar"
    # Serial GC and no C2: a small, short-lived client on a shared 2-core machine starts faster.
    cat >"$grpc_java_bin.tmp" <<EOF
#!/bin/sh
exec "\${JAVA_HOME:+\$JAVA_HOME/bin/}java" -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \${ISTHMUS_JAVA_OPTS:-} -jar "$grpc_java_jar" "\$@"
EOF
    chmod +x "$grpc_java_bin.tmp" && mv "$grpc_java_bin.tmp" "$grpc_java_bin"
    # Smoke test: the jar starts and prints its port (no xDS needed until the first call).
    grpc_java_out="$grpc_java_dir/smoke.out"
    "$grpc_java_bin" >"$grpc_java_out" 2>&1 &
    grpc_java_pid=$!
    for _ in $(seq 300); do
      grep -q '^PORT [0-9]' "$grpc_java_out" && break
      kill -0 "$grpc_java_pid" 2>/dev/null || break
      sleep 0.1
    done
    grpc_java_ok=0
    grep -q '^PORT [0-9]' "$grpc_java_out" && grpc_java_ok=1
    kill "$grpc_java_pid" 2>/dev/null || true
    wait "$grpc_java_pid" 2>/dev/null || true
    [[ $grpc_java_ok == 1 ]] || { log "the grpc-java xDS client did not print its port:"; cat "$grpc_java_out" >&2; exit 1; }
    log "grpc-java xDS client built in $((SECONDS - grpc_java_start)) s"
    touch "$grpc_java_dir/built-$grpc_java_hash.ok"
  fi
fi
