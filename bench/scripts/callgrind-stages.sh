#!/usr/bin/env bash
# Instructions per packet, whole process and per stage, under callgrind (counts, not seconds: the
# same binary on the same input gives the same figures on a busy machine). Inputs are bench `gen`
# scenarios with seed 1, so the figures repeat run to run; compare them across commits to catch
# regressions.    usage: bench/scripts/callgrind-stages.sh [PACKETS]   (default 100000)
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-100000}
# Two builds: the product (its whole-process count is the one the targets name) and the `stages`
# profiling build (analyzer/Cargo.toml), where the stages that the product inlines into its packet
# loops are kept out of line so that each can be counted; that build pays for its calls, so its
# own whole-process count is shown beside the product's.
cargo build --release -q -p spanwatch -p spanwatch-bench
cargo build --release -q -p spanwatch --features stages --target-dir target/stages
STAGES_BIN=target/stages/release/spanwatch
DIR=$(mktemp -d); trap 'rm -rf "$DIR"' EXIT
# Stage = inclusive instructions of the function that is the stage, summed over every source
# file its code came from (bench/scripts/cg-functions.py: callgrind_annotate splits an
# inlined-into function by file). A name ending in "$" matches whole symbols only.
stages=(
  "partition: all|analyzer::parallel::partition"
  "partition: decode, hashes|analyzer::decode::decode_into"
  "worker: all|analyzer::worker::Worker::process_pkts"
  "worker: flow lookup|analyzer::flow::FlowTable::find"
  "worker: flow insert|analyzer::flow::FlowTable::insert"
  "worker: flow touch (LRU)|analyzer::flow::FlowTable::touch"
  "worker: classify (probes, a new session's first packet)|analyzer::worker::classify"
  "worker: sessions (every packet, the first too)|as analyzer::protocols::Session>::on_packet\$"
  "worker: end of input|analyzer::worker::Worker::finish_all"
)
printf '| scenario | packets | whole process | stages build: whole process |'; for s in "${stages[@]}"; do printf ' %s |' "${s%%|*}"; done; echo
printf '|---|---|---|---|'; for s in "${stages[@]}"; do printf -- '---|'; done; echo
# BIN OUT: the whole process's instructions on "$f" (with $opts); callgrind's output file in OUT.
# No spinning: under valgrind the threads take turns, and a spin's length would vary the counts.
count() {
  # shellcheck disable=SC2086 # $opts is a list of options
  SPANWATCH_SPIN=0 valgrind --tool=callgrind --callgrind-out-file="$2" "$1" read --workers 1 $opts "$f" >/dev/null 2>"$DIR/err"
  awk '/Collected :/ {print $NF}' "$DIR/err"
}
# The last row is the UDP flood against a table capped at 6 % of its flows: a full table evicts
# the oldest flow for each new one from then on, the steady state of any long flood.
for run in mix udp-flood syn-flood elephant "udp-flood --max-flows $((N * 6 / 100))"; do
  sc=${run%% *}; opts=${run#"$sc"}
  f=$DIR/$sc.pcap
  pk=$(target/release/gen --scenario "$sc" --packets "$N" --seed 1 -o "$f" | python3 -c 'import json,sys; print(json.load(sys.stdin)["packets"])')
  total=$(count target/release/spanwatch "$DIR/cg")
  staged=$(count "$STAGES_BIN" "$DIR/cg-stages")
  printf '| %s | %s | %.0f | %.0f |' "$run" "$pk" "$(echo "$total / $pk" | bc -l)" "$(echo "$staged / $pk" | bc -l)"
  for s in "${stages[@]}"; do
    ir=$(python3 bench/scripts/cg-functions.py "$DIR/cg-stages" "${s#*|}" | cut -f3)
    if [ "${ir:-0}" -gt 0 ]; then printf ' %.0f |' "$(echo "$ir / $pk" | bc -l)"; else printf ' - |'; fi
  done
  echo
done
