# Sourced by bin/isthmus and bench/run.ts: preloads jemalloc when the system has it.
# glibc keeps the freed copies of socket reads in the middle of its arenas (about 60 KiB
# per Delta proxy at 1000 proxies, bench/RESULTS.md v5); jemalloc returns them within a
# second. ISTHMUS_MALLOC: auto (default: jemalloc if installed), jemalloc (required), system.
isthmus_malloc() {
  local want="${ISTHMUS_MALLOC:-auto}" lib="" f
  case "$want" in
    system) return 0 ;;
    auto | jemalloc) ;;
    *)
      echo "isthmus: ISTHMUS_MALLOC must be auto, jemalloc or system, not \"$want\"" >&2
      return 2
      ;;
  esac
  # An allocator preloaded by whoever started us stays.
  [ -n "${LD_PRELOAD:-}" ] && return 0
  for f in /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 /usr/lib/aarch64-linux-gnu/libjemalloc.so.2 \
    /usr/lib64/libjemalloc.so.2 /usr/lib/libjemalloc.so.2 /usr/local/lib/libjemalloc.so.2; do
    if [ -r "$f" ]; then
      lib="$f"
      break
    fi
  done
  if [ -z "$lib" ]; then
    if [ "$want" = jemalloc ]; then
      echo "isthmus: ISTHMUS_MALLOC=jemalloc but libjemalloc.so.2 is not installed (Debian: apt-get install libjemalloc2)" >&2
      return 2
    fi
    return 0
  fi
  export LD_PRELOAD="$lib"
  export MALLOC_CONF="${MALLOC_CONF:-background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0}"
}
