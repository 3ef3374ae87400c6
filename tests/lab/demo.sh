#!/usr/bin/env bash
# The main job on a machine with no SPAN port: builds spanwatch, brings the lab up (real vsftpd,
# curl, python3 http.server, openssl, avahi, FRR bfdd/ospfd/ospf6d in network namespaces, the client's link mirrored to a SPAN
# port), runs `spanwatch live` on that port with /metrics on http://127.0.0.1:9890/metrics, replays
# the lab's scenarios every few seconds and prints a status line every 3 s. Ctrl-C stops
# spanwatch (which prints its summary) and tears everything down. Needs root.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --bin spanwatch
LAB_SPAN_ROOT=1
. tests/lab/lib.sh
SW=""
finish() {
  trap - EXIT INT TERM
  [ -n "$SW" ] && kill -INT "$SW" 2>/dev/null && wait "$SW" 2>/dev/null
  lab_down
  exit 0
}
trap finish EXIT INT TERM
lab_up
lab_servers
lab_settle
target/release/spanwatch live --iface "$LAB_SPAN0" --listen 127.0.0.1:9890 --status-every 3 &
SW=$!
sleep 1
lab_routing_start   # FRR: BFD and OSPF come up and keep talking
echo "spanwatch is watching the lab's SPAN port $LAB_SPAN0. Try: curl -s http://127.0.0.1:9890/metrics | grep ^spanwatch_"
echo "Ctrl-C stops it."
# Bounded: at most an hour of rounds.
for _ in $(seq 900); do
  lab_traffic
  sleep 2
done
