#!/usr/bin/env bash
# Receive-rate benchmark on veth (not a test): the same bounded UDP load is received by
# `spanwatch live` (AF_XDP, full analysis) and by `tcpdump -w /dev/null` (AF_PACKET, copy only),
# one after the other, in namespaces created here and removed on exit. Reports packets received,
# losses and receiver CPU nanoseconds per packet.   usage: sudo bench/scripts/xdp-vs-afpacket.sh [COUNT] [SIZE]
set -euo pipefail
cd "$(dirname "$0")/../.."
COUNT=${1:-1000000}
SIZE=${2:-64}
BIN=${BIN:-target/release}   # where spanwatch and udpflood are (BIN=DIR compares another build)
S=swb-s$$ C=swb-c$$
cleanup() { set +e; ip netns pids "$C" 2>/dev/null | xargs -r kill 2>/dev/null; ip netns del "$S" 2>/dev/null; ip netns del "$C" 2>/dev/null; }
trap cleanup EXIT INT TERM
. bench/scripts/veth-pair.sh
veth_pair "$S" swb0 "$C" swb1 198.18.9.1/24 198.18.9.2/24
MAC=$(ip -n "$C" -o link show swb1 | sed 's/.*link\/ether \([^ ]*\).*/\1/')
ip -n "$S" neigh replace 198.18.9.2 lladdr "$MAC" dev swb0 nud permanent
cpu_ns() { awk '{printf "%.0f\n", ($14 + $15) * 10000000}' "/proc/$1/stat"; }   # utime+stime, USER_HZ=100
printf '%-34s %16s %10s %10s %10s %12s\n' receiver "offered" sent received lost "CPU ns/pkt"
for pps in 200000 400000 0; do
  label=$([ "$pps" = 0 ] && echo max || echo "$pps")
  for mode in native skb; do
    ip netns exec "$C" "$BIN/spanwatch" live --iface swb1 --xdp-mode "$mode" --listen off --workers 1 \
      --metrics-out /tmp/swb.prom >/dev/null 2>/tmp/swb.err &
    pid=$!; sleep 1.5
    c0=$(cpu_ns "$pid")
    out=$(ip netns exec "$S" "$BIN/udpflood" 198.18.9.1 198.18.9.2 "$COUNT" "$SIZE" "$pps"); sent=$(echo "$out" | awk '{print $2}'); rate=$(echo "$out" | sed "s/.*(\([0-9]*\) pps)/\1/")
    sleep 1; c1=$(cpu_ns "$pid"); kill -INT "$pid"; wait "$pid" || true
    got=$(awk '/^spanwatch_packets_total\{source="xdp"\}/ {print $2}' /tmp/swb.prom)
    printf '%-34s %16s %10s %10s %10s %12.0f\n' "spanwatch live AF_XDP ($mode)" "$label:$rate" "$sent" "$got" $((sent - got)) \
      "$(echo "($c1 - $c0) / $got" | bc -l)"
  done
  ip netns exec "$C" tcpdump -i swb1 -w /dev/null -s 0 -B 65536 udp 2>/tmp/swb.td &
  pid=$!; sleep 1.5
  c0=$(cpu_ns "$pid")
  sent=$(ip netns exec "$S" "$BIN/udpflood" 198.18.9.1 198.18.9.2 "$COUNT" "$SIZE" "$pps" | awk '{print $2}')
  sleep 1; c1=$(cpu_ns "$pid"); kill -INT "$pid"; wait "$pid" || true
  got=$(awk '/packets captured/ {print $1}' /tmp/swb.td)
  printf '%-34s %16s %10s %10s %10s %12.0f\n' "tcpdump -w /dev/null AF_PACKET" "$label:$rate" "$sent" "$got" $((sent - got)) \
    "$(echo "($c1 - $c0) / $got" | bc -l)"
done
