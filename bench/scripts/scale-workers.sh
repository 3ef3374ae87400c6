#!/usr/bin/env bash
# Scaling of `spanwatch read --workers N` on generated inputs, parallel reader against the
# sequential one (SPANWATCH_SEQUENTIAL_READ=1) and `tcpdump -r FILE -w /dev/null`, all in the same
# run on the same machine: median of 5 wall-clock runs each, files in the page cache. Meant for a
# many-core machine (the device tool's 16 cores); the binaries are carried there prebuilt.
#   usage: [SCENARIOS="mix udp-flood"] bench/scripts/scale-workers.sh [PACKETS] [WORKERS…]
#          (default 2000000 packets; 1 2 4 8 12 workers)
set -euo pipefail
B=${BIN:-target/release/spanwatch}
G=${GEN:-target/release/gen}
N=${1:-2000000}; [ $# -gt 0 ] && shift
if [ $# -gt 0 ]; then WORKERS=("$@"); else WORKERS=(1 2 4 8 12); fi
DIR=$(mktemp -d); trap 'rm -rf "$DIR"' EXIT
OUTF=${OUT:-.}/scaling.txt
SCENARIOS=${SCENARIOS:-mix udp-flood}
{
echo "cpus $(nproc); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); kernel $(uname -r); $(ldd --version | head -1)"
lscpu 2>/dev/null | grep -E '^(Thread|Core|Socket|NUMA node\(s\)|L3)' || true
for sc in $SCENARIOS; do
  $G --scenario $sc --packets "$N" --seed 1 -o "$DIR/$sc.pcap" >/dev/null
  cat "$DIR/$sc.pcap" >/dev/null
done
median() {  # "wall cpu" seconds of the run with the median wall time of 5 runs of "$@"
  local TIMEFORMAT='%R %U %S'
  for r in 1 2 3 4 5; do
    { time "$@" >/dev/null 2>&1; } 2>&1 | awk '{printf "%.6f %.6f\n", $1, $2 + $3}'
  done | sort -g | sed -n 3p
}
row() {  # scenario tool workers "wall cpu"
  set -- "$1" "$2" "$3" $4
  printf '%s tool=%s workers=%s median_s=%.3f Mpps=%.2f cpu_s=%.3f\n' "$1" "$2" "$3" "$4" \
    "$(awk -v p="$pk" -v t="$4" 'BEGIN {print p / t / 1e6}')" "$5"
}
for sc in $SCENARIOS; do
  f=$DIR/$sc.pcap
  pk=$($B read --workers 1 --format json "$f" | awk '/^  "packets"/ {gsub(/[^0-9]/, ""); p = $0} END {print p}')
  if command -v tcpdump >/dev/null; then
    row $sc tcpdump-read - "$(median tcpdump -r "$f" -w /dev/null)"
  fi
  for w in "${WORKERS[@]}"; do
    row $sc parallel $w "$(median $B read --workers $w "$f")"
    row $sc sequential $w "$(median env SPANWATCH_SEQUENTIAL_READ=1 $B read --workers $w "$f")"
  done
done
} | tee "$OUTF"
