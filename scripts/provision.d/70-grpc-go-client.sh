# grpc-go proxyless xDS client (test/clients/grpc-go, the 'go' kind of
# test/helpers/proxyless.ts): built from the Go module proxy with `go build` into
# $CACHE/bin/isthmus-xds-client-go. Modules go to the usual GOMODCACHE, the binary to the
# cache, nothing into the work tree. A marker keyed by a hash of go.mod, go.sum and main.go
# makes a second run a no-op; a change to any of them rebuilds.
# ISTHMUS_XDS_CLIENT_GO names a prebuilt client binary (then nothing is built).
if [[ -n "${ISTHMUS_XDS_CLIENT_GO:-}" ]]; then
  [[ -x "$ISTHMUS_XDS_CLIENT_GO" ]] || command -v "$ISTHMUS_XDS_CLIENT_GO" >/dev/null 2>&1 \
    || { log "ISTHMUS_XDS_CLIENT_GO=$ISTHMUS_XDS_CLIENT_GO is not an executable file"; exit 1; }
else
  grpc_go_src="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../test/clients/grpc-go" && pwd)"
  grpc_go_bin="$CACHE/bin/isthmus-xds-client-go"
  grpc_go_hash="$(cd "$grpc_go_src" && cat go.mod go.sum main.go | sha256sum | cut -c1-16)"
  grpc_go_marker="$CACHE/grpc-go-client-$grpc_go_hash.ok"
  if [[ ! -f "$grpc_go_marker" || ! -x "$grpc_go_bin" ]]; then
    command -v go >/dev/null 2>&1 || { log "go is needed to build the grpc-go xDS client"; exit 1; }
    log "building the grpc-go xDS client (go build; a cold module cache downloads ~25 MB from the Go module proxy)"
    grpc_go_start=$SECONDS
    rm -f "$CACHE"/grpc-go-client-*.ok
    # -p 1: the machine is shared with other test runs. GOFLAGS=-mod=mod: module mode, no vendor dir.
    # Built to a temporary name of this run, then renamed: a failed build never leaves a
    # half-written binary, and two provision runs at once do not trip over each other.
    (cd "$grpc_go_src" && GOFLAGS=-mod=mod go build -p 1 -trimpath -ldflags "-s -w" -o "$grpc_go_bin.$$.tmp" .) \
      || { rm -f "$grpc_go_bin.$$.tmp"; log "grpc-go xDS client build failed (go build in $grpc_go_src)"; exit 1; }
    mv -f "$grpc_go_bin.$$.tmp" "$grpc_go_bin"
    # Smoke test: it starts and prints its port (no xDS server is contacted until the first call).
    grpc_go_out="$(mktemp)"
    GRPC_XDS_BOOTSTRAP_CONFIG='{"xds_servers":[{"server_uri":"127.0.0.1:1","channel_creds":[{"type":"insecure"}]}],"node":{"id":"smoke"}}' \
      "$grpc_go_bin" >"$grpc_go_out" 2>&1 &
    grpc_go_pid=$!
    for _ in $(seq 100); do
      grep -q '^PORT [0-9]' "$grpc_go_out" && break
      kill -0 "$grpc_go_pid" 2>/dev/null || break
      sleep 0.1
    done
    grpc_go_ok=0
    grep -q '^PORT [0-9]' "$grpc_go_out" && grpc_go_ok=1
    kill -TERM "$grpc_go_pid" 2>/dev/null || true
    grpc_go_rc=0
    wait "$grpc_go_pid" 2>/dev/null || grpc_go_rc=$?
    [[ $grpc_go_ok == 1 ]] || { log "the grpc-go xDS client did not print its port:"; cat "$grpc_go_out" >&2; rm -f "$grpc_go_out"; exit 1; }
    [[ $grpc_go_rc == 0 ]] || { log "the grpc-go xDS client exited $grpc_go_rc on SIGTERM (expected 0):"; cat "$grpc_go_out" >&2; rm -f "$grpc_go_out"; exit 1; }
    rm -f "$grpc_go_out"
    log "grpc-go xDS client built in $((SECONDS - grpc_go_start)) s"
    touch "$grpc_go_marker"
  fi
fi
