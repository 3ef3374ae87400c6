#!/usr/bin/env bash
# The throughput harness: generates the scenarios with bench `gen` (seeded, deterministic), then on
# each file, in the same run, times `spanwatch read` (1 worker and 2; and 1 worker with the
# sequential reader, SPANWATCH_SEQUENTIAL_READ=1), ndpiReader (Debian
# libndpi-bin), `tshark -q -z io,phs` and `tcpdump -r FILE -w /dev/null` (the cost of merely reading
# it): the median of RUNS wall-clock runs each, packets/s, and ratios against spanwatch with one
# worker. Writes a Markdown table to stdout (bench/RESULTS.md keeps the last one).
#   usage: [SCENARIOS="mix …"] bench/scripts/harness.sh [PACKETS]      (RUNS=5 by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-1000000}
RUNS=${RUNS:-5}
cargo build --release -q -p spanwatch -p spanwatch-bench
BIN=target/release
DIR=${DIR:-/tmp/spanwatch-harness}; mkdir -p "$DIR"
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
timeit() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc -l; }
echo "Machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r); $(date -u +%F)."
echo "Versions: spanwatch $($BIN/spanwatch --version | awk '{print $2}'), ndpiReader $(dpkg-query -W -f='${Version}' libndpi-bin 2>/dev/null), $(tshark --version | head -1), $(tcpdump --version 2>&1 | head -1)."
echo "Runs: median of $RUNS, files in the page cache, one tool at a time."
echo
echo "| file | packets | tool | seconds | packets/s | spanwatch-1w ÷ tool (time) |"
echo "|---|---|---|---|---|---|"
for sc in ${SCENARIOS:-mix udp-flood syn-flood elephant}; do
  f=$DIR/$sc-$N.pcap
  [ -s "$f" ] || "$BIN/gen" --scenario "$sc" --packets "$N" --seed 1 -o "$f" >/dev/null
  pk=$(capinfos -c -M "$f" 2>/dev/null | awk -F: '/Number of packets/ {gsub(/ /,"",$2); print $2}')
  cat "$f" >/dev/null
  base=
  for tool in spanwatch-1w spanwatch-2w spanwatch-1w-seq ndpiReader tshark-phs tcpdump-read; do
    case $tool in
      spanwatch-1w) cmd=("$BIN/spanwatch" read --workers 1 "$f") ;;
      spanwatch-1w-seq) cmd=(env SPANWATCH_SEQUENTIAL_READ=1 "$BIN/spanwatch" read --workers 1 "$f") ;;
      spanwatch-2w) cmd=("$BIN/spanwatch" read --workers 2 "$f") ;;
      ndpiReader) cmd=(ndpiReader -q -i "$f") ;;
      tshark-phs) cmd=(tshark -q -z io,phs -r "$f") ;;
      tcpdump-read) cmd=(tcpdump -r "$f" -w /dev/null) ;;
    esac
    runs=$RUNS; [ "$tool" = tshark-phs ] && [ "$N" -gt 300000 ] && runs=${TSHARK_RUNS:-$RUNS}
    t=$(for i in $(seq "$runs"); do timeit "${cmd[@]}"; done | median)
    [ -n "$base" ] || base=$t
    printf '| %s | %s | %s | %.3f | %.0f | %.2f |\n' "$sc" "$pk" "$tool" "$t" "$(echo "$pk / $t" | bc -l)" "$(echo "$base / $t" | bc -l)"
  done
done
