# etcd: Debian's etcd-server (3.4), for the SOA registry tests. Linked as $CACHE/bin/etcd
# so tests find it the same way as Envoy; ISTHMUS_ETCD overrides the binary.
if [[ ! -x "$CACHE/bin/etcd" ]] || ! "$CACHE/bin/etcd" --version >/dev/null 2>&1; then
  if ! command -v etcd >/dev/null 2>&1 && [[ ! -x /usr/bin/etcd ]]; then
    apt_install etcd-server
  fi
  etcd_bin="$(command -v etcd || echo /usr/bin/etcd)"
  ln -sf "$etcd_bin" "$CACHE/bin/etcd"
  "$CACHE/bin/etcd" --version | head -n1 >&2
fi
