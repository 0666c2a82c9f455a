#!/usr/bin/env bash
# Installs the real components the test suite runs against, into a cache outside the
# work tree (binaries in $ISTHMUS_CACHE/bin). Idempotent: what is present is skipped.
# Each component has its own script in scripts/provision.d/, sourced in name order.
set -euo pipefail

export CACHE="${ISTHMUS_CACHE:-$HOME/.cache/isthmus}"
mkdir -p "$CACHE/bin"

log() { printf '[provision] %s\n' "$*" >&2; }

# Debian packages, installed once; `apt-get update` only when something is missing.
apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [[ ${#missing[@]} -eq 0 ]] && return
  log "installing Debian packages: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

here="$(cd "$(dirname "$0")" && pwd)"
for script in "$here"/provision.d/*.sh; do
  # shellcheck source=/dev/null
  source "$script"
done
log "components ready in $CACHE/bin"
