# kube-apiserver: built from the k8s.io/kubernetes Go module, for the Kubernetes registry
# tests. k8s.io/kubernetes requires its staging modules (k8s.io/api, k8s.io/apiserver, …)
# at v0.0.0 and replaces them with ./staging in its own go.mod, which a dependent module
# does not inherit; so a throwaway module in $CACHE requires k8s.io/kubernetes v1.X.Y and
# replaces every staging module it names with the published v0.X.Y. The staging list is
# read from the release's own go.mod, so a new release needs no edit here.
# The apiserver stores into the etcd of 20-etcd.sh ($CACHE/bin/etcd). The JS client does
# what kubectl would (apply, dry run), so kubectl is not built.
# ISTHMUS_KUBE_VERSION picks another release; ISTHMUS_KUBE_APISERVER a prebuilt binary.
KUBE_VERSION="${ISTHMUS_KUBE_VERSION:-1.37.2}"
if [[ ! -f "$CACHE/kube-apiserver-$KUBE_VERSION.ok" || ! -x "$CACHE/bin/kube-apiserver" ]]; then
  command -v go >/dev/null 2>&1 || { log "go is needed to build kube-apiserver"; exit 1; }
  kube_dir="$CACHE/kube-build-$KUBE_VERSION"
  kube_minor="v0.${KUBE_VERSION#*.}"
  kube_m="${KUBE_VERSION#*.}"
  log "building kube-apiserver v$KUBE_VERSION in $kube_dir (staging modules at $kube_minor; takes a while on a cold cache)"
  kube_start=$SECONDS
  mkdir -p "$kube_dir"
  (
    cd "$kube_dir"
    rm -f go.mod go.sum
    go mod init isthmus.local/kube-build >/dev/null 2>&1
    kube_gomod="$(go mod download -json "k8s.io/kubernetes@v$KUBE_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')"
    [[ -f "$kube_gomod" ]] || { echo "no go.mod for k8s.io/kubernetes@v$KUBE_VERSION" >&2; exit 1; }
    go mod edit -require="k8s.io/kubernetes@v$KUBE_VERSION"
    for m in $(sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._-]*\)[[:space:]]*=>[[:space:]]*\./staging/.*#\1#p' "$kube_gomod"); do
      go mod edit -replace="$m=$m@$kube_minor"
    done
    go mod edit -tool=k8s.io/kubernetes/cmd/kube-apiserver
    go mod tidy
    # -p 1: the machine is shared with other test runs.
    go build -p 1 -trimpath \
      -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=v$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${kube_m%%.*}" \
      -o "$CACHE/bin/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
    mv "$CACHE/bin/kube-apiserver.tmp" "$CACHE/bin/kube-apiserver"
  ) || { log "kube-apiserver v$KUBE_VERSION build failed"; exit 1; }
  "$CACHE/bin/kube-apiserver" --version >&2
  echo "$((SECONDS - kube_start))" >"$CACHE/kube-apiserver-$KUBE_VERSION.build-seconds"
  log "kube-apiserver built in $((SECONDS - kube_start)) s"
  touch "$CACHE/kube-apiserver-$KUBE_VERSION.ok"
fi
