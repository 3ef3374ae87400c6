#!/usr/bin/env bash
# Scaling of `spanwatch read --workers N` on one input, same machine, same run: median of 3.
B=${BIN:-target/release/spanwatch}
DIR=${DIR:-.devcarry}   # holds reddit.pcap and ult.pcapng (copies of the corpus captures)
echo "cpus $(nproc); $(uname -r); $(ldd --version | head -1)"
for input in reddit ult; do
  if [ $input = reddit ]; then f=$DIR/reddit.pcap; n=400; else f=$DIR/ult.pcapng; n=40; fi
  args=(); for i in $(seq $n); do args+=("$f"); done
  $B read --workers 1 "${args[@]}" >/dev/null  # warm the page cache
  for w in 1 2 4 8 12; do
    for r in 1 2 3; do
      $B read --workers $w --format json "${args[@]}" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["elapsed_seconds"], d["packets"])'
    done | sort -g | sed -n 2p | awk -v w=$w -v i=$input '{printf "%s workers=%d median_s=%.3f packets=%d Mpps=%.2f\n", i, w, $1, $2, $2/$1/1e6}'
  done
done | tee "${OUT:-.}/scaling.txt"
