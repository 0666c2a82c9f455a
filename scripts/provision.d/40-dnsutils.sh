# DNS tools: kdig (Debian knot-dnsutils) for the DNS tests, dnsperf for the DNS benchmark.
# Another apt run (a parallel provisioning) may hold the lock for a while: retry.
if ! command -v kdig >/dev/null 2>&1 || ! command -v dnsperf >/dev/null 2>&1; then
  for dns_try in 1 2 3 4 5 6 7 8 9 10; do
    if apt_install knot-dnsutils dnsperf; then break; fi
    [[ $dns_try == 10 ]] && { log "could not install knot-dnsutils and dnsperf"; exit 1; }
    log "apt busy; retrying knot-dnsutils/dnsperf install in 15 s"
    sleep 15
  done
fi
kdig --version | head -n1 >&2
