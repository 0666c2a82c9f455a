# CoreDNS: built from the Go module proxy (`go install github.com/coredns/coredns@vX.Y.Z`),
# for the DNS tests and benchmark (the etcd plugin, which serves the records Isthmus writes
# under /skydns, is in the default build). Installed as $CACHE/bin/coredns; a marker file
# per version makes a second run a no-op. ISTHMUS_COREDNS_VERSION picks another release;
# ISTHMUS_COREDNS a prebuilt binary (then nothing is built).
COREDNS_VERSION="${ISTHMUS_COREDNS_VERSION:-1.14.7}"
if [[ -z "${ISTHMUS_COREDNS:-}" ]] && [[ ! -f "$CACHE/coredns-$COREDNS_VERSION.ok" || ! -x "$CACHE/bin/coredns" ]]; then
  command -v go >/dev/null 2>&1 || { log "go is needed to build CoreDNS"; exit 1; }
  log "building CoreDNS v$COREDNS_VERSION (go install; takes a few minutes on a cold cache)"
  coredns_start=$SECONDS
  # -p 1: the machine is shared with other test runs. GOFLAGS=-mod=mod: module mode, no vendor dir.
  GOBIN="$CACHE/bin" GOFLAGS=-mod=mod go install -p 1 -trimpath -ldflags "-s -w" "github.com/coredns/coredns@v$COREDNS_VERSION" \
    || { log "CoreDNS v$COREDNS_VERSION build failed"; exit 1; }
  "$CACHE/bin/coredns" -version >&2
  coredns_plugins="$("$CACHE/bin/coredns" -plugins)"
  grep -Eq '^(dns\.)?etcd$' <<<"$coredns_plugins" || { log "CoreDNS v$COREDNS_VERSION has no etcd plugin"; exit 1; }
  log "CoreDNS built in $((SECONDS - coredns_start)) s"
  touch "$CACHE/coredns-$COREDNS_VERSION.ok"
fi
