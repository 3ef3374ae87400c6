#!/usr/bin/env bash
# Soak (not run in CI): `spanwatch live` on a veth in namespaces made here, fed the generator's mix
# (new flows all the time: ~10 000 per 100 000 packets, replayed in a loop by tcpreplay at a steady
# rate) for SECONDS. Samples the sensor's resident memory every 10 s and prints the samples, the
# growth after the first minute, and every capture drop.   usage: bench/scripts/soak.sh [SECONDS] [PPS]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-600}
PPS=${2:-20000}
BIN=target/release
S=sws-s$$ C=sws-c$$
OUT=$(mktemp -d)
cleanup() { set +e; ip netns pids "$S" 2>/dev/null | xargs -r kill 2>/dev/null; ip netns pids "$C" 2>/dev/null | xargs -r kill -INT 2>/dev/null; sleep 1; ip netns del "$S" 2>/dev/null; ip netns del "$C" 2>/dev/null; }
trap cleanup EXIT INT TERM
"$BIN/gen" --scenario mix --packets 100000 --seed 5 -o "$OUT/mix.pcap" >/dev/null
. bench/scripts/veth-pair.sh
veth_pair "$S" sws0 "$C" sws1
ip netns exec "$C" "$BIN/spanwatch" live --iface sws1 --xdp-mode skb --listen off --workers 1 \
  --metrics-out "$OUT/soak.prom" 2>"$OUT/err" &
SW=$!
sleep 2
# The mix's addresses are all in 198.18.0.0/15; tcpreplay sends them only onto this veth.
LOOPS=$(( SECS * PPS / 100000 + 1 ))
ip netns exec "$S" timeout "$SECS" tcpreplay -q -i sws0 --pps="$PPS" --loop="$LOOPS" "$OUT/mix.pcap" >"$OUT/replay" 2>&1 &
RP=$!
echo "t_s rss_kib"
start=$(date +%s)
while kill -0 "$RP" 2>/dev/null; do
  echo "$(( $(date +%s) - start )) $(awk '/VmRSS/ {print $2}' /proc/$SW/status)"
  sleep 10
done
wait "$RP" || true
sleep 1
kill -INT "$SW"; wait "$SW" || true
echo "---"
grep -E '^spanwatch_packets_total\{source="xdp"\}|^spanwatch_capture_dropped_total.* [1-9]|^spanwatch_flows_evicted_total' "$OUT/soak.prom" || true
echo "capture drops: $(awk '/^spanwatch_capture_dropped_total/ {s += $2} END {print s+0}' "$OUT/soak.prom")"
cat "$OUT/replay" | grep -E "Actual|Rated" || true
rm -rf "$OUT"
