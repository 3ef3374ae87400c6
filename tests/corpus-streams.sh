#!/usr/bin/env bash
# Regenerates tests/data/corpus-streams.tsv: per capture of ../shared/corpus, how many TCP/UDP
# streams tshark (4.0, Debian 12) dissects as DNS, HTTP, TLS and SSH — the session counts
# tests/corpus.rs compares with spanwatch's. Only counts are stored, no capture data.
#   usage: tests/corpus-streams.sh [CORPUS] > tests/data/corpus-streams.tsv
set -euo pipefail
export LC_ALL=C
DIR=${1:-$(dirname "$0")/../../shared/corpus}
streams() { # file filter
  tshark -n -r "$1" -Y "$2" -T fields -e tcp.stream -e udp.stream 2>/dev/null |
    awk -F'\t' '{ if ($1 != "") print "t" $1; else if ($2 != "") print "u" $2 }' | sort -u | grep -c . || true
}
printf 'file\tdns_streams\thttp_streams\ttls_streams\tssh_streams\n'
cd "$DIR"
find . -type f \( -name '*.pcap' -o -name '*.pcapng' \) | sed 's|^\./||' | sort | while read -r f; do
  printf '%s\t%s\t%s\t%s\t%s\n' "$f" \
    "$(streams "$f" 'dns && !mdns')" \
    "$(streams "$f" 'tcp && (http.request || http.response)')" \
    "$(streams "$f" 'tcp && tls.handshake')" \
    "$(streams "$f" 'ssh')"
done
