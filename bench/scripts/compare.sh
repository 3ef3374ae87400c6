#!/usr/bin/env bash
# Throughput of `spanwatch read` beside ndpiReader (Debian libndpi-bin) and `tcpdump -r -w /dev/null`
# (the cost of merely reading the file) on the same files in the same run. Prints the median of
# RUNS wall-clock runs per tool and packets/s.   usage: bench/scripts/compare.sh FILE...
set -euo pipefail
RUNS=${RUNS:-5}
BIN=${BIN:-target/release/spanwatch}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
timeit() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc -l; }
printf '%-28s %-22s %10s %14s\n' file tool seconds packets/s
for f in "$@"; do
  pk=$(capinfos -c -M "$f" 2>/dev/null | awk -F: '/Number of packets/ {gsub(/ /,"",$2); print $2}')
  for tool in "spanwatch-1w" "spanwatch-2w" "ndpiReader" "tcpdump-read"; do
    case $tool in
      spanwatch-1w) cmd=("$BIN" read --workers 1 "$f") ;;
      spanwatch-2w) cmd=("$BIN" read --workers 2 "$f") ;;
      ndpiReader) cmd=(ndpiReader -q -i "$f") ;;
      tcpdump-read) cmd=(tcpdump -r "$f" -w /dev/null) ;;
    esac
    t=$(for i in $(seq "$RUNS"); do timeit "${cmd[@]}"; done | median)
    printf '%-28s %-22s %10.3f %14.0f\n' "$(basename "$f")" "$tool" "$t" "$(echo "$pk / $t" | bc -l)"
  done
done
