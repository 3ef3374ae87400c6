#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 15) each, seeded from real captures: the shared
# corpus (../shared/corpus, when present) and the lab's capture. cargo-fuzz on stable Rust, with no
# sanitizer (safe Rust: a crash is a panic, an overflow with debug assertions, or a timeout) and
# debug assertions on. Seeds and findings stay under fuzz/ (ignored by git). Exit status 1 on any
# crash, with the reproducer's path.    usage: fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-15}; shift || true
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2
cargo fuzz build -s none -O -a >/dev/null
(cd fuzz && cargo build --release --example seeds -q)
seeds=fuzz/seeds; rm -rf "$seeds"
caps=(tests/data/lab-default.pcap)
if [ -d ../shared/corpus ]; then
  while IFS= read -r f; do caps+=("$f"); done < <(find ../shared/corpus -type f \( -name '*.pcap' -o -name '*.pcapng' -o -name '*.pcap.gz' \))
else
  echo "NOTICE: ../shared/corpus absent: seeds from the lab capture only"
fi
fuzz/target/release/examples/seeds "$seeds" "${caps[@]}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=($(cargo fuzz list))
status=0
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "$seeds/$t"
  log=$(mktemp)
  if cargo fuzz run -s none -O -a "$t" "fuzz/corpus/$t" "$seeds/$t" -- \
      -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    runs=$(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    echo "fuzz $t: ${secs}s, $runs executions, $cov, no crash"
  else
    status=1
    echo "fuzz $t: CRASH"; grep -E "panicked|ERROR|Test unit written|artifact_prefix" "$log" | head -10
  fi
  rm -f "$log"
done
exit $status
