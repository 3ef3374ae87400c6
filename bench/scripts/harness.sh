#!/usr/bin/env bash
# The throughput harness: generates the scenarios with bench `gen` (seeded, deterministic), then on
# each file, in the same run, times `spanwatch read` (1 worker and 2; 1 worker with the
# sequential reader, SPANWATCH_SEQUENTIAL_READ=1; 1 worker with huge pages asked for and not,
# SPANWATCH_HUGE_PAGES=1 and 0, whatever this machine's default; 1 worker without the prefault
# threads, SPANWATCH_PREFAULT=0), ndpiReader (Debian
# libndpi-bin), `tshark -q -z io,phs` and `tcpdump -r FILE -w /dev/null` (the cost of merely reading
# it): RUNS rounds of every tool in turn, each tool's median wall-clock time, packets/s, and ratios
# against spanwatch with one worker (with the median and range of the rounds' own ratios). Writes a Markdown
# table to stdout (bench/RESULTS.md keeps the last one). Each round starts with bench `cpu-distance`
# (a cache line's round trip between CPUs 0 and 1): on this VM it jumps several-fold while the host
# runs the two vCPUs on cores that share no cache, which slows spanwatch's two threads and not the
# one-thread tools; each scenario's table is followed by its rounds' round trips, each beside
# spanwatch-1w's time in that round.
# FORMAT=pcapng: the same scenarios written as pcapng (`gen --pcapng plain`).
#   usage: [SCENARIOS="mix …"] [FORMAT=pcapng] bench/scripts/harness.sh [PACKETS]      (RUNS=5 by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-1000000}
RUNS=${RUNS:-5}
cargo build --release -q -p spanwatch -p spanwatch-bench
BIN=target/release
DIR=${DIR:-/tmp/spanwatch-harness}; mkdir -p "$DIR"
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# Timed with bash's own clock ($EPOCHREALTIME, bash 5): `$(date)` around a run added the start of
# a `date` process (~1.5 ms here) to every tool's time.
timeit() { local s e; s=$EPOCHREALTIME; "$@" >/dev/null 2>&1; e=$EPOCHREALTIME; echo "$e - $s" | bc -l; }
echo "Machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r); $(date -u +%F)."
echo "Versions: spanwatch $($BIN/spanwatch --version | awk '{print $2}'), ndpiReader $(dpkg-query -W -f='${Version}' libndpi-bin 2>/dev/null), $(tshark --version | head -1), $(tcpdump --version 2>&1 | head -1)."
echo "Runs: $RUNS rounds, each running every tool once in turn (so a noisy spell of the machine falls on all of them), files in the page cache; seconds are each tool's median; the last column is the ratio of medians and, in brackets, the median, lowest and highest of the rounds' own ratios."
TOOLS="spanwatch-1w spanwatch-2w spanwatch-1w-seq spanwatch-1w-huge spanwatch-1w-4k spanwatch-1w-nopf ndpiReader tshark-phs tcpdump-read"
case ${FORMAT:-pcap} in
  pcap) EXT=pcap; NG=() ;;
  pcapng) EXT=pcapng; NG=(--pcapng plain) ;;
  *) echo "FORMAT=$FORMAT: expected pcap or pcapng" >&2; exit 2 ;;
esac
for sc in ${SCENARIOS:-mix udp-flood syn-flood elephant}; do
  f=$DIR/$sc-$N.$EXT
  [ -s "$f" ] || "$BIN/gen" --scenario "$sc" --packets "$N" --seed 1 "${NG[@]}" -o "$f" >/dev/null
  pk=$(capinfos -c -M "$f" 2>/dev/null | awk -F: '/Number of packets/ {gsub(/ /,"",$2); print $2}')
  cat "$f" >/dev/null
  declare -A times=()
  far=()
  for round in $(seq "$RUNS"); do
    far+=("$("$BIN/cpu-distance" 0 1 2>/dev/null || echo -)")
    for tool in $TOOLS; do
      case $tool in
        spanwatch-1w) cmd=("$BIN/spanwatch" read --workers 1 "$f") ;;
        spanwatch-1w-seq) cmd=(env SPANWATCH_SEQUENTIAL_READ=1 "$BIN/spanwatch" read --workers 1 "$f") ;;
        spanwatch-2w) cmd=("$BIN/spanwatch" read --workers 2 "$f") ;;
        spanwatch-1w-huge) cmd=(env SPANWATCH_HUGE_PAGES=1 "$BIN/spanwatch" read --workers 1 "$f") ;;
        spanwatch-1w-4k) cmd=(env SPANWATCH_HUGE_PAGES=0 "$BIN/spanwatch" read --workers 1 "$f") ;;
        spanwatch-1w-nopf) cmd=(env SPANWATCH_PREFAULT=0 "$BIN/spanwatch" read --workers 1 "$f") ;;
        ndpiReader) cmd=(ndpiReader -q -i "$f") ;;
        tshark-phs) cmd=(tshark -q -z io,phs -r "$f") ;;
        tcpdump-read) cmd=(tcpdump -r "$f" -w /dev/null) ;;
      esac
      # tshark takes minutes on large files: it runs in the first TSHARK_RUNS rounds only.
      if [ "$tool" = tshark-phs ] && [ "$N" -gt 300000 ] && [ "$round" -gt "${TSHARK_RUNS:-$RUNS}" ]; then continue; fi
      times[$tool]="${times[$tool]:-} $(timeit "${cmd[@]}")"
    done
  done
  base=$(echo ${times[spanwatch-1w]} | tr ' ' '\n' | median)
  echo
  echo "| file | packets | tool | seconds | packets/s | spanwatch-1w ÷ tool (time) |"
  echo "|---|---|---|---|---|---|"
  for tool in $TOOLS; do
    t=$(echo ${times[$tool]} | tr ' ' '\n' | median)
    # Per-round ratios, for the rounds both ran in (tshark's are its first rounds).
    range=$(paste <(echo ${times[spanwatch-1w]} | tr ' ' '\n') <(echo ${times[$tool]} | tr ' ' '\n') |
      awk 'NF == 2 { print $1 / $2 }' | sort -g |
      awk '{ r[NR] = $1 } END { printf "median %.3f, %.3f–%.3f", r[int((NR + 1) / 2)], r[1], r[NR] }')
    printf '| %s | %s | %s | %.3f | %.0f | %.3f (%s) |\n' "$sc" "$pk" "$tool" "$t" "$(echo "$pk / $t" | bc -l)" "$(echo "$base / $t" | bc -l)" "$range"
  done
  echo
  echo "$sc, round by round: a cache line's round trip between CPUs 0 and 1 at the round's start (ns) / spanwatch-1w's time (s): $(paste -d/ <(printf '%s\n' "${far[@]}") <(echo ${times[spanwatch-1w]} | tr ' ' '\n' | awk '{printf "%.4f\n", $1}') | tr '\n' ' ' | sed 's/ $//')."
  unset times
done
