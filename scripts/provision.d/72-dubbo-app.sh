# A stock Apache Dubbo application (test/clients/dubbo: provider and consumer modes in one
# shaded jar, see DubboApp.java) for the tests that run real Dubbo against Isthmus
# (test/helpers/dubbo.ts), in two builds (Maven profiles of its pom.xml): `zookeeper`, Dubbo
# 3.3 with ZooKeeper, run by $CACHE/bin/isthmus-dubbo-app; `etcd3`, Dubbo 3.2 with
# dubbo-registry-etcd3, run by $CACHE/bin/isthmus-dubbo-app-etcd3. Each is built with Maven
# from Maven Central (`mvn -q -B -P PROFILE package`; Maven's repository stays ~/.m2, the
# build output goes to $CACHE/dubbo-app/build, never into the work tree) into
# $CACHE/dubbo-app-PROFILE-<hash>.jar. <hash> covers pom.xml and src/: a second run with the
# same sources is a no-op, a change to either rebuilds.
# After each build, two checks: every line of every META-INF/dubbo/ and META-INF/services/
# file of every dependency is in the shaded jar (Dubbo's SPI files merged, not overwritten),
# and a smoke test (a provider without a registry, a consumer calling it point-to-point)
# answers. The smoke provider also writes a class-data-sharing archive,
# $CACHE/dubbo-app-PROFILE-<hash>.jsa, which the wrapper uses: each later start is ~1 s faster.
# ISTHMUS_DUBBO_APP (ISTHMUS_DUBBO_APP_ETCD3) names a prebuilt command instead (then that
# build is skipped).
# dubbo_app_build PROFILE WRAPPER-NAME PREBUILT-VARIABLE
dubbo_app_build() {
local dubbo_app_profile="$1" dubbo_app_name="$2" dubbo_app_prebuilt="$3"
if [[ -n "${!dubbo_app_prebuilt:-}" ]]; then
  command -v "${!dubbo_app_prebuilt}" >/dev/null 2>&1 \
    || { log "$dubbo_app_prebuilt=${!dubbo_app_prebuilt} is not an executable command"; exit 1; }
else
  local dubbo_app_src dubbo_app_hash dubbo_app_jar dubbo_app_jsa dubbo_app_marker dubbo_app_bin dubbo_app_start dubbo_app_dir dubbo_app_built dubbo_app_spi dubbo_app_lost dubbo_app_dep dubbo_app_f dubbo_app_rel dubbo_app_missing dubbo_app_out dubbo_app_ppid dubbo_app_cpid dubbo_app_answer dubbo_app_pport dubbo_app_cport dubbo_app_old
  local -a dubbo_app_cp
  dubbo_app_src="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../test/clients/dubbo" && pwd)"
  dubbo_app_hash="$(cd "$dubbo_app_src" && find pom.xml src -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)"
  dubbo_app_jar="$CACHE/dubbo-app-$dubbo_app_profile-$dubbo_app_hash.jar"
  dubbo_app_jsa="$CACHE/dubbo-app-$dubbo_app_profile-$dubbo_app_hash.jsa"
  dubbo_app_marker="$CACHE/dubbo-app-$dubbo_app_profile-$dubbo_app_hash.ok"
  dubbo_app_bin="$CACHE/bin/$dubbo_app_name"
  if [[ ! -f "$dubbo_app_marker" || ! -f "$dubbo_app_jar" || ! -x "$dubbo_app_bin" ]]; then
    command -v java >/dev/null 2>&1 || { log "java (17 or later) is needed to build the Dubbo test application"; exit 1; }
    command -v mvn >/dev/null 2>&1 || { log "mvn (Maven) is needed to build the Dubbo test application"; exit 1; }
    command -v unzip >/dev/null 2>&1 || apt_install unzip
    log "building the Dubbo test application, profile $dubbo_app_profile (mvn package; a cold ~/.m2 downloads ~90 MB from Maven Central)"
    dubbo_app_start=$SECONDS
    dubbo_app_dir="$CACHE/dubbo-app-$dubbo_app_profile"
    rm -rf "$dubbo_app_dir"
    mkdir -p "$dubbo_app_dir"
    # isthmus.buildDir (a property of the pom) is Maven's <build><directory>. The classpath
    # file lists the jars that were shaded, for the SPI check below. Maven's output (quiet but
    # for errors) goes to build.log, shown when the build fails.
    mvn -q -B -P "$dubbo_app_profile" -f "$dubbo_app_src/pom.xml" -Disthmus.buildDir="$dubbo_app_dir/build" \
      package dependency:build-classpath -Dmdep.outputFile="$dubbo_app_dir/classpath.txt" >"$dubbo_app_dir/build.log" 2>&1 \
      || { log "Dubbo test application build failed (mvn -P $dubbo_app_profile package of $dubbo_app_src; log $dubbo_app_dir/build.log):"; tail -n 60 "$dubbo_app_dir/build.log" >&2; exit 1; }
    dubbo_app_built="$dubbo_app_dir/build/isthmus-dubbo-app.jar"
    [[ -f "$dubbo_app_built" && -s "$dubbo_app_dir/classpath.txt" ]] \
      || { log "the Dubbo test application build made no $dubbo_app_built (or no classpath.txt)"; exit 1; }

    # SPI check: a dependency's extension lines missing from the shaded jar mean that a
    # resource was overwritten instead of merged (add an AppendingTransformer to the pom).
    dubbo_app_spi_lines() { sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e '/^$/d' "$1" 2>/dev/null | LC_ALL=C sort -u; }
    dubbo_app_spi="$dubbo_app_dir/spi"
    mkdir -p "$dubbo_app_spi/shaded"
    unzip -q -o "$dubbo_app_built" 'META-INF/dubbo/*' 'META-INF/services/*' -d "$dubbo_app_spi/shaded" 2>/dev/null || true
    dubbo_app_lost=""
    IFS=: read -r -a dubbo_app_cp <"$dubbo_app_dir/classpath.txt" || true # (no final newline)
    for dubbo_app_dep in "${dubbo_app_cp[@]}"; do
      rm -rf "$dubbo_app_spi/dep"
      mkdir -p "$dubbo_app_spi/dep"
      unzip -q -o "$dubbo_app_dep" 'META-INF/dubbo/*' 'META-INF/services/*' -d "$dubbo_app_spi/dep" 2>/dev/null || true
      while IFS= read -r -d '' dubbo_app_f; do
        dubbo_app_rel="${dubbo_app_f#"$dubbo_app_spi/dep/"}"
        dubbo_app_missing="$(LC_ALL=C comm -23 <(dubbo_app_spi_lines "$dubbo_app_f") <(dubbo_app_spi_lines "$dubbo_app_spi/shaded/$dubbo_app_rel"))"
        [[ -z "$dubbo_app_missing" ]] || dubbo_app_lost+="  $dubbo_app_rel of $(basename "$dubbo_app_dep"), e.g. $(head -n1 <<<"$dubbo_app_missing")"$'\n'
      done < <(find "$dubbo_app_spi/dep" -type f -print0)
    done
    [[ -z "$dubbo_app_lost" ]] || { log "the shaded Dubbo jar lost SPI entries (merge these files in test/clients/dubbo/pom.xml):"; printf '%s' "$dubbo_app_lost" >&2; exit 1; }
    rm -rf "$dubbo_app_spi"

    mv -f "$dubbo_app_built" "$dubbo_app_jar.$$.tmp" && mv -f "$dubbo_app_jar.$$.tmp" "$dubbo_app_jar"
    # The wrapper: a small heap, serial GC and no C2 (many short-lived JVMs on a shared 2-core
    # machine); the class-data-sharing archive when there is one (-Xshare:auto: a JVM that
    # cannot use it, e.g. another JAVA_HOME, starts without it); a crash report, if any, in
    # the temporary directory rather than the caller's working directory (the work tree).
    dubbo_app_wrapper() {
      local cds=""
      [[ -f "$dubbo_app_jsa" ]] && cds=" -XX:SharedArchiveFile=$dubbo_app_jsa -Xlog:cds=off -Xlog:cds+dynamic=off"
      cat >"$dubbo_app_bin.$$.tmp" <<EOF
#!/bin/sh
# The Dubbo test application (test/clients/dubbo, profile $dubbo_app_profile), built by scripts/provision.d/72-dubbo-app.sh.
exec "\${JAVA_HOME:+\$JAVA_HOME/bin/}java" -Xms32m -Xmx256m -Xss512k -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \\
  -XX:ErrorFile="\${TMPDIR:-/tmp}/isthmus-dubbo-app-hs_err_%p.log" -Xshare:auto$cds \${ISTHMUS_JAVA_OPTS:-} -jar "$dubbo_app_jar" "\$@"
EOF
      chmod +x "$dubbo_app_bin.$$.tmp" && mv -f "$dubbo_app_bin.$$.tmp" "$dubbo_app_bin"
    }
    rm -f "$dubbo_app_jsa"
    dubbo_app_wrapper

    # Smoke test: a provider with no registry (--port -1: Dubbo picks a free port from 20880
    # up), dumping the classes it loaded into the archive when it exits, and a consumer that
    # calls it point-to-point. 127.0.0.1 only (see --network-interface-ignored in DubboApp.java).
    dubbo_app_out="$dubbo_app_dir/smoke"
    mkdir -p "$dubbo_app_out"
    ISTHMUS_JAVA_OPTS="-XX:ArchiveClassesAtExit=$dubbo_app_jsa.$$.tmp" "$dubbo_app_bin" provider --registry N/A --application smoke \
      --instance smoke-1 --port -1 --network-interface-ignored '.*' >"$dubbo_app_out/provider.log" 2>&1 &
    dubbo_app_ppid=$!
    "$dubbo_app_bin" consumer --network-interface-ignored '.*' >"$dubbo_app_out/consumer.log" 2>&1 &
    dubbo_app_cpid=$!
    for _ in $(seq 600); do
      grep -q '^READY' "$dubbo_app_out/provider.log" && grep -q '^PORT [0-9]' "$dubbo_app_out/consumer.log" && break
      if ! kill -0 "$dubbo_app_ppid" 2>/dev/null || ! kill -0 "$dubbo_app_cpid" 2>/dev/null; then break; fi
      sleep 0.1
    done
    dubbo_app_answer=""
    dubbo_app_pport="$(sed -n 's|^EXPORTED dubbo://[^:]*:\([0-9]*\)/.*|\1|p' "$dubbo_app_out/provider.log" | head -n1)"
    dubbo_app_cport="$(sed -n 's/^PORT \([0-9]*\)$/\1/p' "$dubbo_app_out/consumer.log")"
    if [[ -n "$dubbo_app_pport" && -n "$dubbo_app_cport" ]] && grep -q '^READY' "$dubbo_app_out/provider.log"; then
      dubbo_app_answer="$(curl -sS --max-time 20 "http://127.0.0.1:$dubbo_app_cport/call?interface=com.example.isthmus.Orders&n=2&url=dubbo://127.0.0.1:$dubbo_app_pport" 2>&1 || true)"
    fi
    kill -TERM "$dubbo_app_cpid" "$dubbo_app_ppid" 2>/dev/null || true
    wait "$dubbo_app_cpid" 2>/dev/null || true
    wait "$dubbo_app_ppid" 2>/dev/null || true
    [[ "$dubbo_app_answer" == *'"smoke/smoke-1: placed isthmus":2'* ]] || {
      log "the Dubbo test application ($dubbo_app_profile) failed its smoke test (answer: ${dubbo_app_answer:-none}):"
      tail -n 30 "$dubbo_app_out/provider.log" "$dubbo_app_out/consumer.log" >&2
      rm -f "$dubbo_app_jsa.$$.tmp"
      exit 1
    }
    # Only an archive that a JVM maps without complaint is kept (a truncated one crashes it);
    # it is valid for this classpath only, hence -cp.
    if java -XX:ErrorFile="$dubbo_app_dir/hs_err_%p.log" -XX:SharedArchiveFile="$dubbo_app_jsa.$$.tmp" -Xshare:on -cp "$dubbo_app_jar" -version >/dev/null 2>&1; then
      mv -f "$dubbo_app_jsa.$$.tmp" "$dubbo_app_jsa"
      dubbo_app_wrapper
    else
      log "no class-data-sharing archive for the Dubbo test application ($dubbo_app_profile; starts ~1 s slower)"
      rm -f "$dubbo_app_jsa.$$.tmp"
    fi
    # Older builds' jars, archives and markers.
    for dubbo_app_old in "$CACHE"/dubbo-app-"$dubbo_app_profile"-*.jar "$CACHE"/dubbo-app-"$dubbo_app_profile"-*.jsa "$CACHE"/dubbo-app-"$dubbo_app_profile"-*.ok; do
      if [[ -e "$dubbo_app_old" && "$dubbo_app_old" != *"-$dubbo_app_hash".* ]]; then rm -f "$dubbo_app_old"; fi
    done
    rm -rf "$dubbo_app_dir/build"
    log "Dubbo test application ($dubbo_app_profile) built in $((SECONDS - dubbo_app_start)) s"
    touch "$dubbo_app_marker"
  fi
fi
}
# Builds of the layout before profiles (dubbo-app-<hash>.*).
rm -f "$CACHE"/dubbo-app-????????????????.jar "$CACHE"/dubbo-app-????????????????.jsa "$CACHE"/dubbo-app-????????????????.ok
rm -rf "$CACHE/dubbo-app"
dubbo_app_build zookeeper isthmus-dubbo-app ISTHMUS_DUBBO_APP
dubbo_app_build etcd3 isthmus-dubbo-app-etcd3 ISTHMUS_DUBBO_APP_ETCD3
