# The spanwatch lab, sourced by tests/lab/*.sh. Three network namespaces: a client and a server
# joined by a veth (the "switch port"), and a tap namespace holding two SPAN ports. Every frame of
# the client's link, both directions, is mirrored with `tc … u32 match u32 0 0 action mirred
# egress mirror` to both SPAN ports (an AF_XDP socket takes the frames it receives, so spanwatch
# gets one copy and tcpdump the other). Real daemons: vsftpd (plain, FTPS), python3 http.server,
# openssl s_server and ocsp, avahi-daemon, FRR zebra/bfdd/ospfd/ospf6d; clients curl, lftp, openssl
# (Python only where no stock client does the job: a split login, a one-shot mDNS query). Addresses from 198.18.0.0/15 and 2001:db8::/32 only; `lab_down`
# (run from a trap) removes everything.
#
# Variables: LAB_PW (the lab user's password; tests assert it never appears in any output).

LAB_ID=${LAB_ID:-$$}
CL=swlab-cl$LAB_ID SV=swlab-sv$LAB_ID TAP=swlab-tap$LAB_ID
LAB_WORK=""
# LAB_SPAN_ROOT=1: the first SPAN port is in the root namespace (named $LAB_SPAN0), so that a
# spanwatch there serves /metrics on the host's own localhost (the demo).
LAB_SPAN_ROOT=${LAB_SPAN_ROOT:-}
LAB_SPAN0=span0
[ -n "$LAB_SPAN_ROOT" ] && LAB_SPAN0=swspan$((LAB_ID % 1000000))
LAB_PW='Sw0rdfish-lab-7Q'
LAB_REMOTE_SPAN=${LAB_REMOTE_SPAN:-}
LAB_USER=swlab

lab_log() { printf 'lab: %s\n' "$*" >&2; }

lab_down() {
  set +e
  for ns in "$CL" "$SV" "$TAP"; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null
  done
  sleep 0.2
  for ns in "$CL" "$SV" "$TAP"; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip netns del "$ns" 2>/dev/null
  done
  [ -n "$LAB_SPAN_ROOT" ] && ip link del "$LAB_SPAN0" 2>/dev/null
  [ -n "$LAB_WORK" ] && rm -rf "$LAB_WORK"
  return 0
}

lab_offloads_off() { # ns dev
  ip netns exec "$1" ethtool -K "$2" tso off gso off gro off tx off rx off >/dev/null 2>&1 || true
}

lab_up() {
  LAB_WORK=$(mktemp -d)
  for ns in "$CL" "$SV" "$TAP"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
  for ns in "$CL" "$SV"; do
    # No router solicitations or RAs: the only frames on the link are the scenarios' own.
    # No duplicate-address detection either (link-local addresses included).
    for k in all default; do
      ip netns exec "$ns" sysctl -qw "net.ipv6.conf.$k.router_solicitations=0" "net.ipv6.conf.$k.accept_ra=0" \
        "net.ipv6.conf.$k.accept_dad=0" "net.ipv6.conf.$k.dad_transmits=0"
    done
  done
  ip link add c0 netns "$CL" type veth peer name s0 netns "$SV"
  if [ -n "$LAB_SPAN_ROOT" ]; then
    ip link add "$LAB_SPAN0" type veth peer name m0 netns "$CL"
    sysctl -qw "net.ipv6.conf.$LAB_SPAN0.disable_ipv6=1"
    ip link set "$LAB_SPAN0" up
    ethtool -K "$LAB_SPAN0" tso off gso off gro off tx off rx off >/dev/null 2>&1 || true
  else
    ip link add m0 netns "$CL" type veth peer name span0 netns "$TAP"
  fi
  ip link add m1 netns "$CL" type veth peer name span1 netns "$TAP"
  ip -n "$CL" addr add 198.18.0.1/24 dev c0
  ip -n "$SV" addr add 198.18.0.2/24 dev s0
  ip -n "$CL" addr add 2001:db8::1/64 dev c0 nodad
  ip -n "$SV" addr add 2001:db8::2/64 dev s0 nodad
  local tap_ports="$TAP span0"
  [ -n "$LAB_SPAN_ROOT" ] && tap_ports=""
  for x in "$CL c0" "$SV s0" "$CL m0" "$CL m1" ${tap_ports:+"$tap_ports"} "$TAP span1"; do
    set -- $x
    ip -n "$1" link set "$2" up
    lab_offloads_off "$1" "$2"
  done
  ip netns exec "$TAP" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
  local remote=""
  [ -n "$LAB_REMOTE_SPAN" ] && lab_remote_span_up &&
    remote="pipe action mirred egress mirror dev vx0 pipe action mirred egress mirror dev vx1"
  # The SPAN: both directions of c0 to both mirror ports (and into the remote SPAN's tunnel).
  ip netns exec "$CL" tc qdisc add dev c0 clsact
  for dir in ingress egress; do
    ip netns exec "$CL" tc filter add dev c0 "$dir" protocol all u32 match u32 0 0 \
      action mirred egress mirror dev m0 pipe action mirred egress mirror dev m1 $remote
  done
  lab_log "up: client $CL, server $SV, SPAN ports $LAB_SPAN0 and span1 (in $TAP)${remote:+, remote SPAN over VXLAN to span2 and span3}"
}

# LAB_REMOTE_SPAN=1: two more copies of the link go to remote SPAN ports, as a switch's remote
# mirror sends them: the kernel's VXLAN tunnels (VNI 42 and 43, UDP 4789) from the client
# namespace, each over an underlay veth (m2 198.19.0.1 to span2, m3 198.19.1.1 to span3, in the
# tap namespace), where the tunnels' frames are received (two ports, as an AF_XDP socket takes
# the frames it receives: tcpdump captures one, `spanwatch live` the other). The underlays' MTU is
# 1 600, as a VXLAN or ERSPAN underlay's must be above 1 500: a mirrored 1 514-byte frame is 1 564
# bytes in VXLAN (and an AF_XDP socket with 4 KiB frames takes up to 3 584). span2 and span3 have
# no address: what arrives is received, not answered; the tunnel ends know their MACs (no ARP), and
# no end speaks IPv6 (no router or listener messages inside or outside the tunnels). False, with a
# notice, where the kernel has no VXLAN.
LAB_REMOTE=""
lab_remote_span_up() {
  local i m span vx
  for i in 0 1; do
    m=m$((2 + i)) span=span$((2 + i)) vx=vx$i
    ip link add "$m" netns "$CL" mtu 1600 type veth peer name "$span" netns "$TAP" mtu 1600
    ip netns exec "$CL" sysctl -qw "net.ipv6.conf.$m.disable_ipv6=1"
    ip netns exec "$TAP" sysctl -qw "net.ipv6.conf.$span.disable_ipv6=1"
    ip -n "$CL" addr add "198.19.$i.1/24" dev "$m"
    ip -n "$CL" link set "$m" up
    ip -n "$TAP" link set "$span" up
    lab_offloads_off "$CL" "$m"
    lab_offloads_off "$TAP" "$span"
    ip -n "$CL" neigh replace "198.19.$i.2" lladdr "$(ip -n "$TAP" -br link show "$span" | awk '{print $3}')" dev "$m" nud permanent
    if ! ip -n "$CL" link add "$vx" type vxlan id $((42 + i)) local "198.19.$i.1" remote "198.19.$i.2" dstport 4789 dev "$m" 2>"$LAB_WORK/vxlan.err"; then
      echo "NOTICE: no VXLAN in this kernel ($(cat "$LAB_WORK/vxlan.err")): the remote SPAN leg is skipped"
      return 1
    fi
    ip netns exec "$CL" sysctl -qw "net.ipv6.conf.$vx.disable_ipv6=1"
    ip -n "$CL" link set "$vx" up
  done
  LAB_REMOTE=1
}

# Waits until the mirrored link has been silent for $1 seconds (default 4): IPv6 multicast-listener
# reports and avahi's announcements follow a start, and both SPAN captures must start and end on a
# quiet link to see the same frames.
lab_settle() {
  local quiet=0 before after
  for _ in $(seq 30); do
    before=$(ip netns exec "$CL" cat /sys/class/net/c0/statistics/tx_packets /sys/class/net/c0/statistics/rx_packets | paste -sd+)
    sleep 1
    after=$(ip netns exec "$CL" cat /sys/class/net/c0/statistics/tx_packets /sys/class/net/c0/statistics/rx_packets | paste -sd+)
    if [ "$before" = "$after" ]; then quiet=$((quiet + 1)); else quiet=0; fi
    [ "$quiet" -ge "${1:-4}" ] && return 0
  done
  lab_log "the link did not settle"
}

lab_servers() {
  id "$LAB_USER" >/dev/null 2>&1 || useradd -m -s /bin/bash "$LAB_USER"
  echo "$LAB_USER:$LAB_PW" | chpasswd
  echo "hello from the spanwatch lab" > "/home/$LAB_USER/readme.txt"
  mkdir -p /var/run/vsftpd/empty
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$LAB_WORK/k.pem" -out "$LAB_WORK/c.pem" \
    -days 2 -subj /CN=lab.example >/dev/null 2>&1
  # port, listen_ipv6, listen, address line, extra
  local n=0
  for spec in "21|NO|YES|listen_address=198.18.0.2|" "2121|NO|YES|listen_address=198.18.0.2|" \
              "21|YES|NO|listen_address6=2001:db8::2|" \
              "2990|NO|YES|listen_address=198.18.0.2|ssl_enable=YES;rsa_cert_file=$LAB_WORK/c.pem;rsa_private_key_file=$LAB_WORK/k.pem;force_local_logins_ssl=YES;force_local_data_ssl=YES;require_ssl_reuse=NO;ssl_ciphers=HIGH"; do
    n=$((n + 1))
    IFS='|' read -r port v6 v4 addr extra <<<"$spec"
    extra=${extra//;/$'\n'}
    cat > "$LAB_WORK/vsftpd-$n.conf" <<CONF
listen=$v4
listen_ipv6=$v6
listen_port=$port
$addr
anonymous_enable=NO
local_enable=YES
write_enable=NO
pasv_enable=YES
port_enable=YES
connect_from_port_20=NO
seccomp_sandbox=NO
pam_service_name=vsftpd
secure_chroot_dir=/var/run/vsftpd/empty
ftpd_banner=spanwatch lab FTP ready
$extra
CONF
    ip netns exec "$SV" vsftpd "$LAB_WORK/vsftpd-$n.conf" &
  done
  mkdir -p "$LAB_WORK/www/.well-known/acme-challenge" "$LAB_WORK/www/pks"
  echo token > "$LAB_WORK/www/.well-known/acme-challenge/evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
  (cd "$LAB_WORK/www" && exec ip netns exec "$SV" python3 -m http.server 8080 --bind 198.18.0.2 >/dev/null 2>&1) &
  ip netns exec "$SV" openssl s_server -accept 4433 -cert "$LAB_WORK/c.pem" -key "$LAB_WORK/k.pem" \
    -www -quiet >/dev/null 2>&1 &
  # OCSP: a CA, a server certificate it issued, an `openssl ocsp` responder (OCSP over HTTP), and a
  # second s_server that staples a response made by the same responder code, offline.
  local w=$LAB_WORK
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$w/ca.key" -out "$w/ca.pem" -days 2 -subj /CN=lab-ca >/dev/null 2>&1
  openssl req -newkey rsa:2048 -nodes -keyout "$w/leaf.key" -out "$w/leaf.csr" -subj /CN=ocsp.lab.example >/dev/null 2>&1
  openssl x509 -req -in "$w/leaf.csr" -CA "$w/ca.pem" -CAkey "$w/ca.key" -CAcreateserial -days 2 -out "$w/leaf.pem" >/dev/null 2>&1
  : > "$w/index.txt"
  printf 'V\t%s\t\t%s\tunknown\t%s\n' "$(date -u -d '+2 days' +%y%m%d%H%M%SZ)" \
    "$(openssl x509 -in "$w/leaf.pem" -noout -serial | cut -d= -f2)" \
    "$(openssl x509 -in "$w/leaf.pem" -noout -subject -nameopt compat | sed 's/^subject=//')" > "$w/index.txt"
  openssl ocsp -issuer "$w/ca.pem" -cert "$w/leaf.pem" -no_nonce -reqout "$w/req.der" >/dev/null 2>&1
  openssl ocsp -index "$w/index.txt" -rsigner "$w/ca.pem" -rkey "$w/ca.key" -CA "$w/ca.pem" \
    -reqin "$w/req.der" -respout "$w/resp.der" >/dev/null 2>&1
  ip netns exec "$SV" openssl ocsp -index "$w/index.txt" -port 8888 -rsigner "$w/ca.pem" -rkey "$w/ca.key" \
    -CA "$w/ca.pem" -ignore_err >/dev/null 2>&1 &
  ip netns exec "$SV" openssl s_server -accept 4443 -cert "$w/leaf.pem" -key "$w/leaf.key" \
    -status_file "$w/resp.der" -www -quiet >/dev/null 2>&1 &
  # mDNS: avahi-daemon (no D-Bus) answers for swlab-server.local on the server's link.
  cat > "$w/avahi.conf" <<CONF
[server]
host-name=swlab-server
use-ipv4=yes
use-ipv6=yes
allow-interfaces=s0
enable-dbus=no
ratelimit-interval-usec=1000000
ratelimit-burst=1000
[wide-area]
enable-wide-area=no
[publish]
publish-addresses=yes
publish-hinfo=no
publish-workstation=no
publish-aaaa-on-ipv4=no
publish-a-on-ipv6=no
[reflector]
enable-reflector=no
CONF
  # avahi keeps its pid file in one global place: a stale one (a killed lab) would stop it.
  pgrep -x avahi-daemon >/dev/null || rm -f /run/avahi-daemon/pid
  ip netns exec "$SV" avahi-daemon --no-drop-root --no-chroot --no-rlimits -f "$w/avahi.conf" >/dev/null 2>&1 &
  # Wait until every server listens.
  for _ in $(seq 50); do
    local up; up=$(ip netns exec "$SV" ss -ltnH 2>/dev/null | grep -cE ':(21|2121|2990|8080|4433|4443|8888) ' || true)
    [ "$up" -ge 8 ] && break
    sleep 0.1
  done
}

# FRR on both ends of the link: zebra, bfdd (a BFD peer, RFC 5881, with echo), ospfd (area 0, 1 s
# hellos) and ospf6d (OSPFv3 over the link-local addresses, area 0, 1 s hellos), each adjacency
# BFD-tracked: two BFD sessions, the configured IPv4 one and one that ospf6d asks for between the
# link-local addresses. Started while the captures run, so BFD and both OSPF adjacencies are seen
# coming up.
lab_routing_start() {
  chmod 755 "$LAB_WORK"
  local x ns n addr peer dev d daemon
  for x in "$CL cl 198.18.0.1 198.18.0.2 c0" "$SV sv 198.18.0.2 198.18.0.1 s0"; do
    set -- $x
    ns=$1 n=$2 addr=$3 peer=$4 dev=$5 d=$LAB_WORK/frr-$2
    mkdir -p "$d"
    # BFD echo packets (RFC 5880 §6.4) are addressed to their sender and looped back by the peer.
    ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 "net.ipv4.conf.$dev.rp_filter=0" \
      "net.ipv4.conf.$dev.accept_local=1" net.ipv4.conf.all.send_redirects=0 "net.ipv4.conf.$dev.send_redirects=0"
    cat > "$d/frr.conf" <<CONF
frr defaults traditional
hostname swlab-$n
bfd
 peer $peer interface $dev
  echo-mode
  echo transmit-interval 300
  echo receive-interval 300
 !
!
interface $dev
 ip ospf hello-interval 1
 ip ospf dead-interval 4
 ip ospf bfd
 ipv6 ospf6 area 0.0.0.0
 ipv6 ospf6 bfd
 ipv6 ospf6 hello-interval 1
 ipv6 ospf6 dead-interval 4
!
router ospf
 ospf router-id $addr
 network 198.18.0.0/24 area 0
!
router ospf6
 ospf6 router-id $addr
!
CONF
    chown -R frr:frr "$d"
    for daemon in zebra bfdd ospfd ospf6d; do
      ip netns exec "$ns" "/usr/lib/frr/$daemon" -d -f "$d/frr.conf" -i "$d/$daemon.pid" -z "$d/zserv.api" \
        --vty_socket "$d" -u frr -g frr $([ "$daemon" = bfdd ] && echo "--bfdctl $d/bfdd.sock") 2>>"$d/err.log"
    done
    # The client's router comes up first: its first BFD packets find no listener on the server
    # and are answered by ICMP port unreachable (attributed to BFD by the quoted packet).
    if [ "$n" = cl ]; then sleep 2.5; fi
  done
}

# Waits for both OSPF adjacencies to be Full and both BFD sessions Up on the server, then stops the
# routing daemons without a goodbye (SIGKILL), so what the captures see ends deterministically.
lab_routing_stop() {
  local d=$LAB_WORK/frr-sv
  for _ in $(seq 30); do
    if ip netns exec "$SV" vtysh --vty_socket "$d" -c 'show ip ospf neighbor' 2>/dev/null | grep -q Full &&
       ip netns exec "$SV" vtysh --vty_socket "$d" -c 'show ipv6 ospf6 neighbor' 2>/dev/null | grep -q Full &&
       [ "$(ip netns exec "$SV" vtysh --vty_socket "$d" -c 'show bfd peers brief' 2>/dev/null | grep -ci ' up')" -ge 2 ]; then
      break
    fi
    sleep 0.5
  done
  local f
  for f in "$LAB_WORK"/frr-*/*.pid; do
    [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
  done
  return 0
}

# The scenarios, and what they must count (by construction). Keep the two in step.
LAB_EXPECT='{
  "ftp": 9, "ftp_ipv6": 3, "ftp_data": 6, "ftps": 1, "tls": 9, "ocsp_stapled": 1, "http_ocsp": 1,
  "mdns": 4, "mdns_ipv6": 2,
  "bfd": 2, "bfd_ipv6": 1, "bfd_up": 4, "ospf": 2, "ospf_ipv6": 1, "ospf_v3_hello_seen": 1,
  "bfd_echo_seen": 1, "icmp_unreachable_bfd_seen": 1,
  "logins_accepted": 7, "logins_rejected": 2, "logins_unknown": 0,
  "data_pasv": 2, "data_epsv": 2, "data_port": 1, "data_eprt": 1,
  "tls_resumed_session_id": 1, "tls_resumed_ticket": 1, "tls_resumed_psk": 1,
  "http_acme": 1, "http_hkp": 1, "http_other": 1
}'

lab_traffic() {
  local cx="ip netns exec $CL"
  # FTP: accepted (PASV, IPv4), rejected, active (PORT), non-standard port (EPSV), IPv6 (EPSV, EPRT).
  $cx curl -s -m 5 --disable-epsv "ftp://$LAB_USER:$LAB_PW@198.18.0.2/readme.txt" -o /dev/null || true
  $cx curl -s -m 5 "ftp://$LAB_USER:wrong-password@198.18.0.2/" -o /dev/null || true
  $cx curl -s -m 5 --disable-eprt -P - "ftp://$LAB_USER:$LAB_PW@198.18.0.2/readme.txt" -o /dev/null || true
  $cx curl -s -m 5 "ftp://$LAB_USER:$LAB_PW@198.18.0.2:2121/readme.txt" -o /dev/null || true
  $cx curl -s -m 5 -g "ftp://$LAB_USER:$LAB_PW@[2001:db8::2]/readme.txt" -o /dev/null || true
  $cx curl -s -m 5 -g -P - "ftp://$LAB_USER:$LAB_PW@[2001:db8::2]/readme.txt" -o /dev/null || true
  $cx curl -s -m 5 -g "ftp://$LAB_USER:wrong-password@[2001:db8::2]/" -o /dev/null || true
  # lftp (passive mode, PASV over IPv4).
  $cx lftp -e 'set ftp:passive-mode on; set ftp:prefer-epsv off; set net:max-retries 1; set net:timeout 5; get readme.txt -o /dev/null; bye' \
    -u "$LAB_USER,$LAB_PW" 198.18.0.2 >/dev/null 2>&1 || true
  # A login whose USER and PASS lines are each cut across two TCP segments (no stock client does
  # that on demand: a few lines of Python talk to the real vsftpd).
  $cx python3 - "$LAB_USER" "$LAB_PW" <<'PY' || true
import socket, sys, time
user, pw = sys.argv[1], sys.argv[2]
s = socket.create_connection(("198.18.0.2", 21), timeout=5)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
f = s.makefile("rb")
def reply():
    line = f.readline()
    while line[3:4] == b"-":
        line = f.readline()
for part in (b"US", ("ER %s\r\n" % user).encode()):
    if part == b"US":
        reply()  # greeting
    s.sendall(part); time.sleep(0.05)
reply()
for part in (b"PA", ("SS %s\r\n" % pw).encode()):
    s.sendall(part); time.sleep(0.05)
reply()
s.sendall(b"QUIT\r\n"); reply(); s.close()
PY
  # FTPS (AUTH TLS): the login is encrypted, so it is no cleartext login; control and data
  # connections are both TLS (TLS 1.2 without session reuse, so neither is a resumption).
  $cx curl -s -m 5 -k --ssl-reqd --tls-max 1.2 --no-sessionid "ftp://$LAB_USER:$LAB_PW@198.18.0.2:2990/" -o /dev/null || true
  # HTTP: ACME HTTP-01, HKP lookup, a plain page.
  $cx curl -s -m 5 http://198.18.0.2:8080/.well-known/acme-challenge/evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA -o /dev/null || true
  $cx curl -s -m 5 "http://198.18.0.2:8080/pks/lookup?op=get&search=0x0123456789ABCDEF" -o /dev/null || true
  $cx curl -s -m 5 http://198.18.0.2:8080/ -o /dev/null || true
  # TLS 1.2 session-id resumption, TLS 1.3 PSK resumption.
  echo | $cx openssl s_client -connect 198.18.0.2:4433 -tls1_2 -no_ticket -sess_out "$LAB_WORK/s12" >/dev/null 2>&1 || true
  echo | $cx openssl s_client -connect 198.18.0.2:4433 -tls1_2 -no_ticket -sess_in "$LAB_WORK/s12" >/dev/null 2>&1 || true
  # TLS 1.2 ticket resumption (RFC 5077): tickets on, the server echoes the session id.
  echo | $cx openssl s_client -connect 198.18.0.2:4433 -tls1_2 -sess_out "$LAB_WORK/t12" >/dev/null 2>&1 || true
  echo | $cx openssl s_client -connect 198.18.0.2:4433 -tls1_2 -sess_in "$LAB_WORK/t12" >/dev/null 2>&1 || true
  printf 'GET / HTTP/1.0\r\n\r\n' | $cx openssl s_client -connect 198.18.0.2:4433 -tls1_3 -sess_out "$LAB_WORK/s13" -ign_eof >/dev/null 2>&1 || true
  printf 'GET / HTTP/1.0\r\n\r\n' | $cx openssl s_client -connect 198.18.0.2:4433 -tls1_3 -sess_in "$LAB_WORK/s13" -ign_eof >/dev/null 2>&1 || true
  # OCSP over HTTP (a POST to the responder), and a TLS 1.2 handshake with a stapled response
  # (in TLS 1.3 the CertificateStatus travels encrypted).
  $cx openssl ocsp -issuer "$LAB_WORK/ca.pem" -cert "$LAB_WORK/leaf.pem" -url http://198.18.0.2:8888 >/dev/null 2>&1 || true
  echo | $cx openssl s_client -connect 198.18.0.2:4443 -tls1_2 -status >/dev/null 2>&1 || true
  # mDNS (RFC 6762 §6.7): one-shot queries from an ephemeral port to 224.0.0.251 and ff02::fb,
  # answered by avahi with legacy unicast responses from its own address: two flows per IP
  # version. The querier is a few lines of Python: no resolver that runs without D-Bus sends
  # one-shot queries.
  $cx python3 - <<'PY' || true
import socket, struct
def query(name, qtype):
    q = struct.pack(">HHHHHH", 0x1234, 0, 1, 0, 0, 0)
    q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return q + struct.pack(">HH", qtype, 1)
idx = socket.if_nametoindex("c0")
for fam, dst, t in ((socket.AF_INET, ("224.0.0.251", 5353), 1), (socket.AF_INET6, ("ff02::fb", 5353, 0, idx), 28)):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    # No default route here: name the interface multicast leaves by.
    if fam == socket.AF_INET:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("198.18.0.1"))
    else:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, idx)
    s.settimeout(1.0)
    s.sendto(query("swlab-server.local", t), dst)
    try:
        s.recvfrom(2048)
    except OSError:
        pass
PY
}
