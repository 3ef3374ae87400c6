#!/usr/bin/env bash
# Loss against offered rate on veth (a benchmark, not a test): where does each receiver start to
# lose frames? The sender is `xdpblast` (kernel-transmitted frames, paced frame by frame by its XDP
# program: rates a socket cannot offer here), spinning on the first CPU. Everything receiving
# shares one other CPU, as on one NIC queue: the veth's NAPI poll runs in its own kernel thread
# there at real-time priority (a NIC's softirq preempts user threads the same way), and so does
# the receiver — `spanwatch live` (AF_XDP native, full analysis, one worker) or
# `tcpdump -w /dev/null` (AF_PACKET, copy only, its default 2 MiB buffer unless TCPDUMP_BUF=KiB).
# Frames carry a foreign destination MAC, as mirrored frames do. A frame is lost either at the
# veth's 256-entry ring, before any capture hook ("ring": the NAPI thread fell behind), or in the
# capture path ("capture": AF_PACKET's drops; spanwatch's capture_dropped_total, kernel causes and
# its worker queue). "analyzed": what tcpdump wrote, what spanwatch's worker processed.
# The last column names spanwatch's capture losses by reason (`-`: none, or tcpdump).
# Namespaces and addresses (198.18.9.0/24) are created here and removed on exit.
#   usage: sudo bench/scripts/loss-at-rate.sh [COUNT] [SIZE] [RATE...]
#   KEEP=DIR keeps each run's metrics (spanwatch) or summary (tcpdump) there. RECEIVERS="spanwatch"
#   (or "tcpdump") runs one of the two; SWOPT adds options to spanwatch's command line.
#   (default 3000000 frames of 64 bytes at 300 k, 500 k, 700 k, 850 k, 1 M and 1.5 M frames/s: a run
#   lasts seconds, not one, so that what builds up shows; the rx thread's frame leak, fixed in
#   session 24, emptied its fill ring only after ~1.1 s at 1.46 M frames/s)
set -euo pipefail
cd "$(dirname "$0")/../.."
COUNT=${1:-3000000}
SIZE=${2:-64}
shift $(($# < 2 ? $# : 2))
RATES=${*:-300000 500000 700000 850000 1000000 1500000}
BIN=${BIN:-target/release}
TCPDUMP_BUF=${TCPDUMP_BUF:-2048}
CPUS=$(nproc)
[ "$CPUS" -ge 2 ] || { echo "loss-at-rate: needs two CPUs (one sends, one receives)" >&2; exit 2; }
TX_CPU=0 RX_CPU=$((CPUS - 1))
S=swl-s$$ C=swl-c$$
cleanup() {
  set +e
  ip netns pids "$C" 2>/dev/null | xargs -r kill 2>/dev/null
  ip netns pids "$S" 2>/dev/null | xargs -r kill 2>/dev/null
  ip netns del "$S" 2>/dev/null; ip netns del "$C" 2>/dev/null
}
trap cleanup EXIT INT TERM
. bench/scripts/veth-pair.sh
veth_pair "$S" swl0 "$C" swl1 198.18.9.1/24 198.18.9.2/24
# NAPI on without a program (so the veth takes kernel-transmitted frames for AF_PACKET too), run
# in a thread of its own.
ip netns exec "$C" ethtool -K swl1 gro on >/dev/null
ip netns exec "$C" sh -c 'echo 1 > /sys/class/net/swl1/threaded'
cpu_ns() { awk '{printf "%.0f\n", ($14 + $15) * 10000000}' "/proc/$1/stat"; }   # utime+stime, USER_HZ=100
# Frames that reached the receive hook (the veth counts them whether or not a program is attached).
at_hook() { ip netns exec "$C" ethtool -S swl1 | awk '/rx_queue_0_xdp_packets:/ {print $2}'; }
napi_pid() { pgrep -f '^\[?napi/swl1-' | head -1; }
# The NAPI thread onto the receive CPU at real-time priority (it may be new after an XDP attach).
pin_napi() {
  local p; p=$(napi_pid) || { echo "loss-at-rate: no NAPI thread for swl1 (threaded NAPI unsupported?)" >&2; exit 1; }
  taskset -pc "$RX_CPU" "$p" >/dev/null; chrt -f -p 50 "$p"
}
printf '%-32s %9s %9s %9s %9s %9s %8s %10s %10s  %s\n' receiver offered sent analyzed "lost:ring" "capture" "lost %" "rx ns/pkt" "napi ns" "capture by reason"
for pps in $RATES; do
  for rx in ${RECEIVERS:-spanwatch tcpdump}; do
    rm -f /tmp/swl.prom /tmp/swl.td
    case $rx in
      spanwatch)
        ip netns exec "$C" taskset -c "$RX_CPU" "$BIN/spanwatch" live --iface swl1 --xdp-mode native \
          --listen off --workers 1 --metrics-out /tmp/swl.prom ${SWOPT:-} >/dev/null 2>/tmp/swl.err &
        label="spanwatch live AF_XDP (native)" ;;
      tcpdump)
        ip netns exec "$C" taskset -c "$RX_CPU" tcpdump -i swl1 -w /dev/null -s 0 -B "$TCPDUMP_BUF" udp 2>/tmp/swl.td &
        label="tcpdump -w /dev/null AF_PACKET" ;;
    esac
    pid=$!; sleep 1.5
    kill -0 "$pid" 2>/dev/null || { echo "loss-at-rate: $rx did not start:" >&2; cat /tmp/swl.err /tmp/swl.td >&2 2>/dev/null; exit 1; }
    pin_napi
    h0=$(at_hook); c0=$(cpu_ns "$pid"); n0=$(cpu_ns "$(napi_pid)")
    out=$(timeout 120 ip netns exec "$S" taskset -c "$TX_CPU" "$BIN/xdpblast" swl0 02:00:00:00:00:01 198.18.9.1 198.18.9.3 "$COUNT" "$SIZE" "$pps")
    sent=$(echo "$out" | awk '{print $2}'); rate=$(echo "$out" | sed 's/.*(\([0-9]*\) pps)/\1/')
    sleep 1
    h1=$(at_hook); c1=$(cpu_ns "$pid"); n1=$(cpu_ns "$(napi_pid)")
    kill -INT "$pid"; wait "$pid" || true
    if [ "$rx" = spanwatch ]; then
      # Taken in by rx, less what the worker queue could not take: analyzed.
      taken=$(awk '/^spanwatch_packets_total\{source="xdp"\}/ {print $2}' /tmp/swl.prom)
      qfull=$(awk '/^spanwatch_capture_dropped_total\{reason="queue_full",queue="0"\}/ {print $2}' /tmp/swl.prom)
      got=$((taken - ${qfull:-0}))
      cap=$(awk '/^spanwatch_capture_dropped_total\{.*queue="0"\}/ {s += $2} END {print s + 0}' /tmp/swl.prom)
      why=$(awk -F'"' '/^spanwatch_capture_dropped_total\{.*queue="0"\}/ {split($NF, v, " "); if (v[2] > 0) {printf "%s%s=%s", sep, $2, v[2]; sep = ","}}' /tmp/swl.prom)
    else
      got=$(awk '/packets captured/ {print $1}' /tmp/swl.td)
      cap=$(awk '/dropped by kernel/ {print $1}' /tmp/swl.td)
      why=
    fi
    if [ -n "${KEEP:-}" ]; then
      mkdir -p "$KEEP"
      for f in /tmp/swl.prom /tmp/swl.td; do [ ! -f "$f" ] || cp "$f" "$KEEP/$rx-$pps.${f##*.}"; done
    fi
    printf '%-32s %9s %9s %9s %9s %9s %8.2f %10.0f %10.0f  %s\n' "$label" "$rate" "$sent" "$got" $((sent - (h1 - h0))) "$cap" \
      "$(echo "100 * ($sent - $got) / $sent" | bc -l)" "$(echo "($c1 - $c0) / ($got + 1)" | bc -l)" \
      "$(echo "($n1 - $n0) / $sent" | bc -l)" "${why:--}"
  done
done
