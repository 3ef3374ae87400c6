# Sourced by the bench scripts that send between two namespaces (not run on its own).
# veth_pair NS_A IF_A NS_B IF_B [ADDR_A ADDR_B]: creates both namespaces and a veth between them,
# IPv6 off, offloads off (so every frame is one packet), links up, addresses from 198.18.0.0/15
# when given. The caller removes the namespaces on exit.
veth_pair() {
  local a=$1 ia=$2 b=$3 ib=$4 addr_a=${5:-} addr_b=${6:-} x
  ip netns add "$a"; ip netns add "$b"
  ip link add "$ia" netns "$a" type veth peer name "$ib" netns "$b"
  for x in "$a $ia $addr_a" "$b $ib $addr_b"; do
    set -- $x
    ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    [ -z "${3:-}" ] || ip -n "$1" addr add "$3" dev "$2"
    ip -n "$1" link set "$2" up
    ip netns exec "$1" ethtool -K "$2" tso off gso off gro off >/dev/null 2>&1 || true
  done
}
