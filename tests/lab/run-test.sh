#!/usr/bin/env bash
# The lab test: real daemons, a mirrored SPAN port, `spanwatch live` (AF_XDP) on span0 and tcpdump
# on span1, and remote SPAN ports: the same frames in the kernel's VXLAN tunnels, captured by
# tcpdump on span2 and by `spanwatch live` on span3. Asserts: live metrics = the counts of
# construction = an offline `spanwatch read` of tcpdump's file = an offline read of the tunnel's
# capture = the live counts on the tunnel's port. Needs root.
#   usage: tests/lab/run-test.sh [SPANWATCH_BINARY]
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=$(realpath "${1:-target/release/spanwatch}")
LAB_REMOTE_SPAN=1
. tests/lab/lib.sh
trap '[ -n "${KEEP:-}" ] && cp -r "$OUT" "$KEEP"; lab_down' EXIT INT TERM
lab_up
lab_servers
lab_settle
OUT=$LAB_WORK/out; mkdir -p "$OUT"
ip netns exec "$TAP" tcpdump -i span1 -w "$OUT/span1.pcap" -U -s 0 2>"$OUT/tcpdump.err" &
for _ in $(seq 100); do grep -q "listening on" "$OUT/tcpdump.err" 2>/dev/null && break; sleep 0.1; done
if [ -n "$LAB_REMOTE" ]; then
  ip netns exec "$TAP" tcpdump -i span2 -w "$OUT/span2.pcap" -U -s 0 2>"$OUT/tcpdump2.err" &
  for _ in $(seq 100); do grep -q "listening on" "$OUT/tcpdump2.err" 2>/dev/null && break; sleep 0.1; done
fi
ip netns exec "$TAP" "$BIN" live --iface span0 --listen 127.0.0.1:9890 --workers 2 --metrics-out "$OUT/live.prom" \
  --events "$OUT/live.ndjson" 2>"$OUT/live.err" &
SW=$!
for _ in $(seq 100); do grep -q "capturing on" "$OUT/live.err" 2>/dev/null && break; sleep 0.1; done
grep -q "capturing on" "$OUT/live.err" || { cat "$OUT/live.err" >&2; exit 1; }
SW2=
if [ -n "$LAB_REMOTE" ]; then
  # A second sensor, live on the remote SPAN port: AF_XDP takes the tunnel's frames.
  ip netns exec "$TAP" "$BIN" live --iface span3 --listen 127.0.0.1:9891 --workers 1 \
    --metrics-out "$OUT/remote-live.prom" --events "$OUT/remote-live.ndjson" 2>"$OUT/remote-live.err" &
  SW2=$!
  for _ in $(seq 100); do grep -q "capturing on" "$OUT/remote-live.err" 2>/dev/null && break; sleep 0.1; done
  grep -q "capturing on" "$OUT/remote-live.err" || { cat "$OUT/remote-live.err" >&2; exit 1; }
fi
# A real Prometheus server (Debian's package) in the tap namespace scrapes the sensor every second
# and evaluates deploy/prometheus/spanwatch.rules.yml.
PROM=
if command -v prometheus >/dev/null; then
  mkdir -p "$OUT/prom"
  cat >"$OUT/prom/prometheus.yml" <<YML
global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: ["$PWD/deploy/prometheus/spanwatch.rules.yml"]
scrape_configs:
  - job_name: spanwatch
    static_configs: [{targets: ["127.0.0.1:9890"]}]
YML
  ip netns exec "$TAP" prometheus --config.file="$OUT/prom/prometheus.yml" --storage.tsdb.path="$OUT/prom/data" \
    --web.listen-address=127.0.0.1:9090 2>"$OUT/prom/prometheus.log" &
  PROM=http://127.0.0.1:9090
  ok=
  for _ in $(seq 150); do
    if ip netns exec "$TAP" curl -sf "$PROM/api/v1/query?query=up%7Bjob%3D%22spanwatch%22%7D%3D%3D1" 2>/dev/null | grep -q '"value"'; then ok=1; break; fi
    sleep 0.2
  done
  [ -n "$ok" ] || { echo "prometheus did not scrape spanwatch"; tail -20 "$OUT/prom/prometheus.log"; exit 1; }
else
  echo "NOTICE: prometheus not installed: the scrape check is skipped"
fi
sleep 1
lab_traffic
lab_routing_start
lab_routing_stop
lab_settle 1
if [ -n "$PROM" ]; then
  sleep 3 # three more scrapes and rule evaluations
  PY=/usr/bin/python3; [ -x "$PY" ] || PY=python3 # Debian's, with python3-yaml
  ip netns exec "$TAP" "$PY" tests/deploy/queries.py check "$PROM" \
    SpanwatchCleartextFtpLoginAccepted SpanwatchCleartextFtpLogin
fi
# Stop both captures together.
ip netns pids "$TAP" | xargs -r kill -INT 2>/dev/null || true
wait "$SW"
[ -n "$SW2" ] && wait "$SW2"
sleep 0.5
"$BIN" read --workers 1 --metrics-out "$OUT/offline.prom" --events "$OUT/offline.ndjson" "$OUT/span1.pcap" >/dev/null
if [ -n "$LAB_REMOTE" ]; then
  "$BIN" read --workers 2 --metrics-out "$OUT/remote.prom" --events "$OUT/remote.ndjson" "$OUT/span2.pcap" >/dev/null
fi
python3 - "$OUT" "$LAB_EXPECT" "$LAB_PW" "$LAB_REMOTE" <<'PY'
import json, os, sys, re
out, expect, pw, remote_span = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
def load(path):
    m = {}
    for line in open(path):
        if line.startswith('#'):
            continue
        name, value = line.rsplit(' ', 1)
        m[name] = float(value)
    return m
def counts(m, src):
    g = lambda k: int(m.get(k, 0))
    s = lambda p, v: g(f'spanwatch_sessions_total{{protocol="{p}",ip_version="{v}"}}')
    return {
        "ftp": s("ftp", 4) + s("ftp", 6), "ftp_ipv6": s("ftp", 6), "ftp_data": s("ftp_data", 4) + s("ftp_data", 6),
        "ftps": s("ftps", 4) + s("ftps", 6),
        **{f"logins_{o}": g(f'spanwatch_ftp_logins_total{{outcome="{o}"}}') for o in ("accepted", "rejected", "unknown")},
        **{f"data_{d}": g(f'spanwatch_ftp_data_sessions_total{{mode="{d}"}}') for d in ("pasv", "epsv", "port", "eprt")},
        **{f"tls_resumed_{r}": g(f'spanwatch_tls_resumed_total{{method="{r}"}}') for r in ("session_id", "ticket", "psk")},
        **{f"http_{k}": g(f'spanwatch_http_requests_total{{kind="{k if k != "acme" else "acme_http01"}"}}') for k in ("acme", "hkp", "ocsp", "other")},
        "packets": g(f'spanwatch_packets_total{{source="{src}"}}'),
        "tls": s("tls", 4) + s("tls", 6),
        "ocsp_stapled": g('spanwatch_ocsp_stapled_total'),
        "mdns": s("mdns", 4) + s("mdns", 6), "mdns_ipv6": s("mdns", 6),
        "bfd": s("bfd", 4) + s("bfd", 6), "ospf": s("ospf", 4) + s("ospf", 6), "ospf_ipv6": s("ospf", 6),
        "bfd_ipv6": s("bfd", 6),
        "ospf_v3_hello": g('spanwatch_ospf_packets_total{version="3",type="hello"}'),
        "bfd_up": g('spanwatch_bfd_state_changes_total{state="up"}'),
        "bfd_echo": g('spanwatch_bfd_echo_packets_total'),
        "icmp_unreachable_bfd": g('spanwatch_icmp_errors_total{type="dest_unreachable",protocol="bfd"}'),
    }
live = counts(load(f"{out}/live.prom"), "xdp")
offline = counts(load(f"{out}/offline.prom"), "pcap")
remote = counts(load(f"{out}/remote.prom"), "pcap") if remote_span else {}
# How many BFD echo packets and ICMP errors a run sees depends on timers: "seen" means at least one.
for c in (live, offline) + ((remote,) if remote_span else ()):
    c["bfd_echo_seen"] = int(c["bfd_echo"] > 0)
    c["icmp_unreachable_bfd_seen"] = int(c["icmp_unreachable_bfd"] > 0)
    c["ospf_v3_hello_seen"] = int(c["ospf_v3_hello"] > 0)
bad = []
for k, v in expect.items():
    if live[k] != v: bad.append(f"live {k} = {live[k]}, constructed {v}")
    if offline[k] != v: bad.append(f"offline {k} = {offline[k]}, constructed {v}")
for k in live:
    if live[k] != offline[k]: bad.append(f"{k}: live {live[k]} != offline {offline[k]}")
if remote_span:
    # The remote SPAN port's capture holds the same frames, each in VXLAN: the same counts, and
    # every packet taken in analyzed (a tunnel left closed would be an other_udp flow or a
    # packet not analyzed).
    rm = load(f"{out}/remote.prom")
    for k in offline:
        if remote[k] != offline[k]: bad.append(f"{k}: remote SPAN (VXLAN) {remote[k]} != offline {offline[k]}")
    om = load(f"{out}/offline.prom")
    for k in sorted(set(rm) | set(om)):
        if k.startswith(("spanwatch_packets_not_analyzed_total", "spanwatch_sessions_total")) and rm.get(k, 0) != om.get(k, 0):
            bad.append(f"{k}: remote SPAN (VXLAN) {rm.get(k, 0)} != offline {om.get(k, 0)}")
    # Every packet analyzed came in the tunnel.
    analyzed = om.get('spanwatch_packets_total{source="pcap"}', 0) - sum(
        v for k, v in om.items() if k.startswith("spanwatch_packets_not_analyzed_total"))
    vx = rm.get('spanwatch_tunnel_packets_total{kind="vxlan"}', 0)
    if vx != analyzed or vx == 0:
        bad.append(f"remote SPAN: {vx} packets counted as VXLAN, {analyzed} analyzed")
    # And live on the remote SPAN port (AF_XDP): the same, with nothing dropped.
    lm = load(f"{out}/remote-live.prom")
    remote_live = counts(lm, "xdp")
    for k in remote_live:
        if remote_live[k] != offline[k]:
            bad.append(f"{k}: remote SPAN live {remote_live[k]} != offline {offline[k]}")
    lvx = lm.get('spanwatch_tunnel_packets_total{kind="vxlan"}', 0)
    if lvx != analyzed:
        bad.append(f"remote SPAN live: {lvx} VXLAN packets, {analyzed} analyzed offline")
    rdrops = sum(v for k, v in lm.items() if k.startswith("spanwatch_capture_dropped_total"))
    if rdrops: bad.append(f"remote SPAN live dropped {rdrops} packets")
    # The same login events, but for what differs between two captures and two runs: the time
    # and number of the packet, the file's name, the user name's hash (keyed afresh each run).
    def logins(path):
        out = []
        for line in open(path):
            e = json.loads(line)
            if e["event"]["action"] != "ftp-cleartext-login":
                continue
            for k in ("@timestamp", "user"):
                e.pop(k, None)
            for k in ("capture", "packet_number"):
                e["spanwatch"].pop(k, None)
            out.append(json.dumps(e, sort_keys=True))
        return sorted(out)
    if logins(f"{out}/remote.ndjson") != logins(f"{out}/offline.ndjson"):
        bad.append("remote SPAN (VXLAN) login events differ from offline's")
drops = sum(v for k, v in load(f"{out}/live.prom").items() if k.startswith("spanwatch_capture_dropped_total"))
if drops: bad.append(f"live dropped {drops} packets")
for f in ("live.prom", "live.ndjson", "offline.prom", "offline.ndjson", "live.err") + (("remote.prom", "remote.ndjson", "remote-live.prom", "remote-live.ndjson", "remote-live.err") if remote_span else ()):
    if pw in open(f"{out}/{f}").read(): bad.append(f"password in {f}")
print(json.dumps({"live": live, "offline": offline, **({"remote": remote, "remote_live": remote_live} if remote_span else {})}, sort_keys=True))
if bad:
    print("\n".join(bad)); sys.exit(1)
print("lab: live = offline = construction")
if remote_span:
    print("lab: remote SPAN (VXLAN) = offline, read and live")
PY
