#!/bin/sh
# Transparent interception for an Isthmus sidecar: redirects the host's (or pod's) TCP to
# Envoy, outbound to the outbound port and inbound to the inbound port, in the nat table,
# in chains of its own. Envoy runs as UID; its traffic is never redirected, so its upstream
# connections leave as they are. Idempotent: every run flushes and rebuilds its chains.
#
#   isthmus-iptables.sh [-u UID] [-g GID] [-p PORT] [-z PORT] [-x CIDRS] [-o PORTS]
#                       [-i PORTS|*] [-d PORTS] [-q PORTS] [--clean]
#
# Every option may also come from the environment (in brackets); flags win.
#   -u UID    uid Envoy runs as; its traffic is not redirected [ISTHMUS_PROXY_UID, 1337]
#   -g GID    also exclude this gid (optional)                 [ISTHMUS_PROXY_GID]
#   -p PORT   Envoy's outbound listener                          [ISTHMUS_OUTBOUND_PORT, 15001]
#   -z PORT   Envoy's inbound listener                           [ISTHMUS_INBOUND_PORT, 15006]
#   -x CIDRS  outbound destinations never redirected, comma-separated [ISTHMUS_EXCLUDE_CIDRS]
#   -o PORTS  outbound destination ports never redirected       [ISTHMUS_EXCLUDE_OUTBOUND_PORTS]
#   -i PORTS  inbound ports redirected: a list, '*' for all, '' for none [ISTHMUS_INBOUND_PORTS, *]
#   -d PORTS  inbound ports never redirected (with -i '*')       [ISTHMUS_EXCLUDE_INBOUND_PORTS]
#   -q PORTS  sidecar ports, never redirected either way         [ISTHMUS_SIDECAR_PORTS, 15000,15010,15014,15053]
#             (Envoy admin, Isthmus xDS, admin and DNS)
#   --clean   remove every rule and chain this script added, then exit
#
# As a Kubernetes init container: run it with NET_ADMIN (and NET_RAW) before the app and
# the sidecar start (deploy/sidecar/sidecar-template.yaml). On a VM: the systemd unit
# deploy/iptables/isthmus-iptables.service runs it before Envoy starts and --clean on stop.
set -eu

IPT="${IPTABLES:-iptables}"
PROXY_UID="${ISTHMUS_PROXY_UID:-1337}"
PROXY_GID="${ISTHMUS_PROXY_GID:-}"
OUT_PORT="${ISTHMUS_OUTBOUND_PORT:-15001}"
IN_PORT="${ISTHMUS_INBOUND_PORT:-15006}"
EXCLUDE_CIDRS="${ISTHMUS_EXCLUDE_CIDRS:-}"
EXCLUDE_OUT_PORTS="${ISTHMUS_EXCLUDE_OUTBOUND_PORTS:-}"
IN_PORTS="${ISTHMUS_INBOUND_PORTS-*}"
EXCLUDE_IN_PORTS="${ISTHMUS_EXCLUDE_INBOUND_PORTS:-}"
SIDECAR_PORTS="${ISTHMUS_SIDECAR_PORTS:-15000,15010,15014,15053}"
CLEAN=0

usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//' >&2; exit "${1:-2}"; }

while [ $# -gt 0 ]; do
  case "$1" in
    -u) PROXY_UID="$2"; shift 2 ;;
    -g) PROXY_GID="$2"; shift 2 ;;
    -p) OUT_PORT="$2"; shift 2 ;;
    -z) IN_PORT="$2"; shift 2 ;;
    -x) EXCLUDE_CIDRS="$2"; shift 2 ;;
    -o) EXCLUDE_OUT_PORTS="$2"; shift 2 ;;
    -i) IN_PORTS="$2"; shift 2 ;;
    -d) EXCLUDE_IN_PORTS="$2"; shift 2 ;;
    -q) SIDECAR_PORTS="$2"; shift 2 ;;
    --clean) CLEAN=1; shift ;;
    -h|--help) usage 0 ;;
    *) echo "isthmus-iptables: unknown argument $1" >&2; usage ;;
  esac
done

is_port() { case "$1" in ''|*[!0-9]*) return 1 ;; esac; [ "$1" -ge 1 ] && [ "$1" -le 65535 ]; }
for p in "$OUT_PORT" "$IN_PORT"; do is_port "$p" || { echo "isthmus-iptables: bad port '$p'" >&2; exit 2; }; done
case "$PROXY_UID" in ''|*[!0-9]*) echo "isthmus-iptables: bad uid '$PROXY_UID'" >&2; exit 2 ;; esac

# Splits a comma-separated list into words, checking each is a port.
ports() {
  for p in $(echo "$1" | tr ',' ' '); do
    is_port "$p" || { echo "isthmus-iptables: bad port '$p'" >&2; exit 2; }
    echo "$p"
  done
}

for list in "$SIDECAR_PORTS" "$EXCLUDE_OUT_PORTS" "$EXCLUDE_IN_PORTS"; do ports "$list" >/dev/null; done
[ "$IN_PORTS" = '*' ] || ports "$IN_PORTS" >/dev/null

CHAINS="ISTHMUS_OUTPUT ISTHMUS_REDIRECT ISTHMUS_INBOUND ISTHMUS_IN_REDIRECT"

# Removes our jumps from the built-in chains (every copy), then our chains.
clean() {
  while $IPT -t nat -D OUTPUT -p tcp -j ISTHMUS_OUTPUT 2>/dev/null; do :; done
  while $IPT -t nat -D PREROUTING -p tcp -j ISTHMUS_INBOUND 2>/dev/null; do :; done
  for c in $CHAINS; do $IPT -t nat -F "$c" 2>/dev/null || true; done
  for c in $CHAINS; do $IPT -t nat -X "$c" 2>/dev/null || true; done
}

clean
[ "$CLEAN" = 1 ] && exit 0

for c in $CHAINS; do $IPT -t nat -N "$c"; done
# Only connection openings (SYN): on a live host (a VM getting its sidecar in place), the
# kernel picks up established connections mid-stream as "new" in the nat table, and
# redirecting those would cut them (Envoy's own xDS stream included).
$IPT -t nat -A ISTHMUS_REDIRECT -p tcp --syn -j REDIRECT --to-ports "$OUT_PORT"
$IPT -t nat -A ISTHMUS_IN_REDIRECT -p tcp --syn -j REDIRECT --to-ports "$IN_PORT"

# --- inbound: connections arriving for the host's ports -> Envoy's inbound listener
for p in $(ports "$SIDECAR_PORTS") "$OUT_PORT" "$IN_PORT"; do
  $IPT -t nat -A ISTHMUS_INBOUND -p tcp --dport "$p" -j RETURN
done
if [ "$IN_PORTS" = '*' ]; then
  for p in $(ports "$EXCLUDE_IN_PORTS"); do $IPT -t nat -A ISTHMUS_INBOUND -p tcp --dport "$p" -j RETURN; done
  $IPT -t nat -A ISTHMUS_INBOUND -p tcp -j ISTHMUS_IN_REDIRECT
else
  for p in $(ports "$IN_PORTS"); do $IPT -t nat -A ISTHMUS_INBOUND -p tcp --dport "$p" -j ISTHMUS_IN_REDIRECT; done
fi
$IPT -t nat -A PREROUTING -p tcp -j ISTHMUS_INBOUND

# --- outbound: connections the host's processes open -> Envoy's outbound listener
# Envoy's own traffic (its uid, or gid) leaves untouched: no loop.
$IPT -t nat -A ISTHMUS_OUTPUT -m owner --uid-owner "$PROXY_UID" -j RETURN
[ -n "$PROXY_GID" ] && $IPT -t nat -A ISTHMUS_OUTPUT -m owner --gid-owner "$PROXY_GID" -j RETURN
# Loopback stays local (the app talking to itself, Envoy to the app).
$IPT -t nat -A ISTHMUS_OUTPUT -o lo -j RETURN
$IPT -t nat -A ISTHMUS_OUTPUT -d 127.0.0.0/8 -j RETURN
for p in $(ports "$SIDECAR_PORTS") $(ports "$EXCLUDE_OUT_PORTS"); do
  $IPT -t nat -A ISTHMUS_OUTPUT -p tcp --dport "$p" -j RETURN
done
for cidr in $(echo "$EXCLUDE_CIDRS" | tr ',' ' '); do
  $IPT -t nat -A ISTHMUS_OUTPUT -d "$cidr" -j RETURN
done
$IPT -t nat -A ISTHMUS_OUTPUT -p tcp -j ISTHMUS_REDIRECT
$IPT -t nat -A OUTPUT -p tcp -j ISTHMUS_OUTPUT
