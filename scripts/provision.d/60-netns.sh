# Network namespaces and iptables for the transparent-interception suites (test/integration/netns-*).
apt_install iproute2 iptables
