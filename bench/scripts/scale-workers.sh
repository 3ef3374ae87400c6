#!/usr/bin/env bash
# Scaling of `spanwatch read --workers N` on generated inputs, with `tcpdump -r FILE -w /dev/null`
# (where installed) and optionally the sequential reader (SEQUENTIAL=1) in the same run on the same
# machine: median of RUNS (5) wall-clock runs each, files in the page cache. Meant for a many-core
# machine (the device tool's 16 cores); the binaries are carried there prebuilt.
#   usage: [SCENARIOS="mix udp-flood"] [FORMAT=pcapng] [BASELINE_BIN=…] [EXTRA_BINS="name=path …"] [PIN_CPUS=0-3] [PROFILE_WORKERS="1 16"] [VARIANTS="A=1 B=1,C=2"]
#          [VARIANT_WORKERS="8 16"] bench/scripts/scale-workers.sh [PACKETS] [WORKERS…]
#          (default 2000000 packets; 1 2 4 8 12 workers)
# BASELINE_BIN: an earlier build measured beside BIN at every worker count (same run, same files);
# EXTRA_BINS="name=path …": more builds measured the same way, each row named after its build.
# PIN_CPUS="0-3": BIN measured again at every worker count under `taskset -c 0-3` (the reader
# thread and every worker confined to those CPUs: the "line rate on at most 4 cores" rows).
# PROFILE_WORKERS: worker counts for which one run prints where each thread's time went
# (SPANWATCH_PROFILE_THREADS; BASELINE_BIN's too). VARIANTS: space-separated environment settings (commas between
# several) each measured at VARIANT_WORKERS beside the plain binary. FORMAT=pcapng: the inputs
# written as pcapng (`gen --pcapng plain`) rather than libpcap.
set -euo pipefail
B=${BIN:-target/release/spanwatch}
G=${GEN:-target/release/gen}
N=${1:-2000000}; [ $# -gt 0 ] && shift
if [ $# -gt 0 ]; then WORKERS=("$@"); else WORKERS=(1 2 4 8 12); fi
DIR=${WORKDIR:-$(mktemp -d)}; mkdir -p "$DIR"; trap 'rm -rf "$DIR"' EXIT
OUTF=${OUT:-.}/scaling.txt
SCENARIOS=${SCENARIOS:-mix udp-flood}
RUNS=${RUNS:-5}
case ${FORMAT:-pcap} in
  pcap) EXT=pcap; NG=() ;;
  pcapng) EXT=pcapng; NG=(--pcapng plain) ;;
  *) echo "FORMAT=$FORMAT: expected pcap or pcapng" >&2; exit 2 ;;
esac
{
echo "cpus $(nproc); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); kernel $(uname -r); $(ldd --version | head -1)"
lscpu 2>/dev/null | grep -E '^(Thread|Core|Socket|NUMA node\(s\)|L2|L3)' || true
for sc in $SCENARIOS; do
  $G --scenario $sc --packets "$N" --seed 1 "${NG[@]}" -o "$DIR/$sc.$EXT" >/dev/null
  cat "$DIR/$sc.$EXT" >/dev/null
done
median() {  # "wall cpu" seconds of the run with the median wall time of RUNS runs of "$@"
  local TIMEFORMAT='%R %U %S'
  for _ in $(seq "$RUNS"); do
    { time "$@" >/dev/null 2>&1; } 2>&1 | awk '{printf "%.6f %.6f\n", $1, $2 + $3}'
  done | sort -g | sed -n "$(( (RUNS + 1) / 2 ))p"
}
row() {  # scenario tool workers "wall cpu"
  set -- "$1" "$2" "$3" $4
  printf '%s tool=%s workers=%s median_s=%.3f Mpps=%.2f cpu_s=%.3f\n' "$1" "$2" "$3" "$4" \
    "$(awk -v p="$pk" -v t="$4" 'BEGIN {print p / t / 1e6}')" "$5"
}
for sc in $SCENARIOS; do
  f=$DIR/$sc.$EXT
  pk=$($B read --workers 1 --format json "$f" | awk '/^  "packets"/ {gsub(/[^0-9]/, ""); p = $0} END {print p}')
  echo "$sc: $pk packets, $(stat -c %s "$f") bytes"
  if command -v tcpdump >/dev/null; then
    row $sc tcpdump-read - "$(median tcpdump -r "$f" -w /dev/null)"
  fi
  for w in "${WORKERS[@]}"; do
    row $sc parallel $w "$(median $B read --workers $w "$f")"
    if [ -n "${BASELINE_BIN:-}" ]; then
      row $sc baseline $w "$(median $BASELINE_BIN read --workers $w "$f")"
    fi
    for e in ${EXTRA_BINS:-}; do
      row $sc "${e%%=*}" $w "$(median ${e#*=} read --workers $w "$f")"
    done
    if [ -n "${PIN_CPUS:-}" ]; then
      row $sc "cpus-$PIN_CPUS" $w "$(median taskset -c "$PIN_CPUS" $B read --workers $w "$f")"
    fi
    if [ -n "${SEQUENTIAL:-}" ]; then
      row $sc sequential $w "$(median env SPANWATCH_SEQUENTIAL_READ=1 $B read --workers $w "$f")"
    fi
  done
  for v in ${VARIANTS:-}; do
    for w in ${VARIANT_WORKERS:-8}; do
      row $sc "plain" $w "$(median $B read --workers $w "$f")"
      row $sc "$v" $w "$(median env ${v//,/ } $B read --workers $w "$f")"
    done
  done
  for w in ${PROFILE_WORKERS:-}; do
    profile() {  # label, then the command's prefix (environment and binary)
      echo "$sc profile, $w workers$1:"; shift
      env "$@" read --workers $w "$f" 2>&1 >/dev/null | grep '^thread' | sort
    }
    profile "" SPANWATCH_PROFILE_THREADS=1 $B
    [ -z "${BASELINE_BIN:-}" ] || profile ", baseline" SPANWATCH_PROFILE_THREADS=1 $BASELINE_BIN
    for e in ${EXTRA_BINS:-}; do profile ", ${e%%=*}" SPANWATCH_PROFILE_THREADS=1 ${e#*=}; done
    for v in ${VARIANTS:-}; do profile ", $v" ${v//,/ } SPANWATCH_PROFILE_THREADS=1 $B; done
  done
done
} | tee "$OUTF"
# Issue #9's scaling measure: what each added worker adds, as a share of one worker's rate
# (rate at N workers over the rate at 1, less 1, over N - 1), for each build or setting that was
# measured at one worker.
awk '/ tool=[^ ]* workers=[0-9]+ / {
  split($2, t, "="); split($3, w, "="); split($5, m, "="); key = $1 " tool=" t[2]
  if (w[2] == 1) one[key] = m[2]; else { n++; ks[n] = key; ws[n] = w[2]; ms[n] = m[2] }
} END {
  for (i = 1; i <= n; i++) if (ks[i] in one)
    printf "%s workers=%d gain_per_added_worker=%.1f%%\n", ks[i], ws[i], (ms[i] / one[ks[i]] - 1) / (ws[i] - 1) * 100
}' "$OUTF" | tee -a "$OUTF"
