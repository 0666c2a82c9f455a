# Network namespaces and iptables for the transparent-interception suites (test/integration/netns-*).
# tcpdump: the mTLS suite checks from a capture that the double-hop leg is TLS on the wire.
apt_install iproute2 iptables tcpdump
