#!/usr/bin/env bash
# Instructions per frame of the live path, under callgrind (counts, not seconds: comparable across
# commits on a busy machine): `spanwatch live` (AF_XDP native, one worker) receives COUNT 64-byte
# frames of one UDP flow that `bench` `xdpblast` sends at RATE frames/s, in two namespaces made
# here and removed on exit (198.18.9.0/24). Counted per thread (--separate-threads): the rx
# thread (rings, decode, timestamp checks, batching, the idle flushes between frames) and the
# worker; the main thread's start-up (loading the program, parsing the kernel's BTF) is not.
# RATE must stay low enough for spanwatch under valgrind (the script says if frames were lost).
#   usage: sudo bench/scripts/callgrind-live.sh [COUNT] [RATE]   (default 100000 at 20000/s)
set -euo pipefail
cd "$(dirname "$0")/../.."
COUNT=${1:-100000}
RATE=${2:-20000}
BIN=${BIN:-target/release}
S=swg-s$$ C=swg-c$$
DIR=$(mktemp -d)
cleanup() {
  set +e
  ip netns pids "$C" 2>/dev/null | xargs -r kill 2>/dev/null
  ip netns pids "$S" 2>/dev/null | xargs -r kill 2>/dev/null
  ip netns del "$S" 2>/dev/null; ip netns del "$C" 2>/dev/null
  rm -rf "$DIR"
}
trap cleanup EXIT INT TERM
. bench/scripts/veth-pair.sh
veth_pair "$S" swg0 "$C" swg1 198.18.9.1/24 198.18.9.2/24
ip netns exec "$C" valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$DIR/cg" \
  "$BIN/spanwatch" live --iface swg1 --xdp-mode native --listen off --workers 1 \
  --metrics-out "$DIR/m.prom" >/dev/null 2>"$DIR/err" &
pid=$!
for _ in $(seq 120); do grep -q "capturing on" "$DIR/err" && break; sleep 0.5; done
grep -q "capturing on" "$DIR/err" || { echo "callgrind-live: spanwatch did not start:" >&2; cat "$DIR/err" >&2; exit 1; }
sleep 1
timeout 120 ip netns exec "$S" "$BIN/xdpblast" swg0 02:00:00:00:00:01 198.18.9.1 198.18.9.3 "$COUNT" 64 "$RATE" >/dev/null
sleep 2
kill -INT "$pid"; wait "$pid" || true
got=$(awk '/^spanwatch_packets_total\{source="xdp"\}/ {print $2}' "$DIR/m.prom")
[ "${got:-0}" -gt 0 ] || { echo "callgrind-live: no frames received" >&2; exit 1; }
[ "$got" -ge "$COUNT" ] || echo "callgrind-live: received $got of $COUNT frames (lower RATE)" >&2
printf '| frames | rx thread | of it: LiveSink::frame | worker | rx + worker |\n|---|---|---|---|---|\n'
rx=0 fr=0 wk=0
for f in "$DIR"/cg-*; do
  total=$(awk '/^(summary|totals):/ {print $2; exit}' "$f")
  if grep -q 'LiveSink as spanwatch_xdp::Sink>::frame' "$f"; then
    rx=$total
    fr=$(python3 bench/scripts/cg-functions.py "$f" 'LiveSink as spanwatch_xdp::Sink>::frame' | cut -f3)
  elif grep -q 'Worker::process_pkts' "$f"; then
    wk=$total
  fi
done
per() { echo "$1 / $got" | bc -l | xargs printf '%.0f'; }
printf '| %s | %s | %s | %s | %s |\n' "$got" "$(per "$rx")" "$(per "$fr")" "$(per "$wk")" "$(per "$((rx + wk))")"
