#!/usr/bin/env bash
# Records tests/data/lab-default.pcap, the capture `spanwatch read` analyzes when given no file
# (tests/cli.rs asserts the counts of the committed recording: re-recording changes them):
# the lab's scenarios (tests/lab/lib.sh: vsftpd plain and FTPS, curl, python3 http.server,
# openssl s_server/s_client) captured by tcpdump on the client's side of the link.
#   usage: sudo tests/lab/record-default.sh [OUT.pcap]
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=$(realpath -m "${1:-tests/data/lab-default.pcap}")
. tests/lab/lib.sh
trap lab_down EXIT INT TERM
lab_up
lab_servers
lab_settle
ip netns exec "$CL" tcpdump -i c0 -w "$LAB_WORK/out.pcap" -U -s 0 2>"$LAB_WORK/tcpdump.err" &
for _ in $(seq 100); do grep -q "listening on" "$LAB_WORK/tcpdump.err" 2>/dev/null && break; sleep 0.1; done
lab_traffic
sleep 1
ip netns pids "$CL" | xargs -r kill -INT 2>/dev/null || true
sleep 0.5
cp "$LAB_WORK/out.pcap" "$OUT"
lab_log "recorded $OUT"
