# ZooKeeper: Debian's zookeeper package (3.8) and a headless JRE. Tests run a throwaway
# standalone server from the jars in /usr/share/zookeeper (see test/helpers/zookeeper.ts);
# the system service the package ships is not used.
if [[ ! -f /usr/share/java/zookeeper.jar ]] || ! command -v java >/dev/null 2>&1; then
  # Another apt run (a parallel provisioning) may hold the lock for a while: retry.
  for zk_try in 1 2 3 4 5 6 7 8 9 10; do
    if apt_install zookeeper default-jre-headless; then break; fi
    [[ $zk_try == 10 ]] && { log "could not install zookeeper"; exit 1; }
    log "apt busy; retrying zookeeper install in 15 s"
    sleep 15
  done
fi
if [[ ! -f "$CACHE/zookeeper.ok" ]]; then
  [[ -f /usr/share/java/zookeeper.jar ]] || { log "zookeeper.jar missing after install"; exit 1; }
  java -version 2>&1 | head -n1 >&2
  touch "$CACHE/zookeeper.ok"
fi
