#!/usr/bin/env bash
# Records tests/data/lab-default.pcap: real traffic between two network namespaces (vsftpd, curl,
# python3 http.server, openssl s_server/s_client), the capture `spanwatch read` analyzes when given
# no file. Needs root, vsftpd, openssl, curl, tcpdump, python3. Addresses: 198.18.0.0/15 and
# 2001:db8::/32 only; everything it creates is removed on exit.
#   usage: sudo tests/lab/record-default.sh [OUT.pcap]
set -euo pipefail
OUT=$(realpath -m "${1:-$(dirname "$0")/../data/lab-default.pcap}")
C=swlab-c$$ S=swlab-s$$
WORK=$(mktemp -d)
PW='Sw0rdfish-lab-7Q'   # the lab user's password: tests assert it never appears in any output
cleanup() {
  set +e
  [ -n "${TCPDUMP_PID:-}" ] && kill "$TCPDUMP_PID" 2>/dev/null && wait "$TCPDUMP_PID" 2>/dev/null
  ip netns pids "$S" 2>/dev/null | xargs -r kill 2>/dev/null
  ip netns pids "$C" 2>/dev/null | xargs -r kill 2>/dev/null
  ip netns del "$C" 2>/dev/null; ip netns del "$S" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

ip netns add "$C"; ip netns add "$S"
ip link add swc0 netns "$C" type veth peer name sws0 netns "$S"
for ns in "$C" "$S"; do ip -n "$ns" link set lo up; done
ip -n "$C" addr add 198.18.0.1/24 dev swc0; ip -n "$S" addr add 198.18.0.2/24 dev sws0
ip -n "$C" addr add 2001:db8::1/64 dev swc0 nodad; ip -n "$S" addr add 2001:db8::2/64 dev sws0 nodad
ip -n "$C" link set swc0 up; ip -n "$S" link set sws0 up
for ns in "$C" "$S"; do ip netns exec "$ns" ethtool -K "$(ip -n "$ns" -o link show | awk -F': ' '/sw[cs]0/{print $2}' | cut -d@ -f1)" tso off gso off gro off >/dev/null 2>&1 || true; done

id swlab >/dev/null 2>&1 || useradd -m -s /bin/bash swlab
echo "swlab:$PW" | chpasswd
mkdir -p /var/run/vsftpd/empty "$WORK/ftp"
echo "hello from the spanwatch lab" > /home/swlab/readme.txt
for spec in "21 NO YES listen_address=198.18.0.2" "2121 NO YES listen_address=198.18.0.2" "21 YES NO listen_address6=2001:db8::2"; do
  set -- $spec
  cat > "$WORK/vsftpd-$1-$2.conf" <<CONF
listen=$3
listen_ipv6=$2
listen_port=$1
$4
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
CONF
  ip netns exec "$S" vsftpd "$WORK/vsftpd-$1-$2.conf" &
done
mkdir -p "$WORK/www/.well-known/acme-challenge" "$WORK/www/pks"
echo token > "$WORK/www/.well-known/acme-challenge/evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
(cd "$WORK/www" && ip netns exec "$S" python3 -m http.server 8080 --bind 198.18.0.2 >/dev/null 2>&1 &)
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/k.pem" -out "$WORK/c.pem" -days 2 -subj /CN=lab.example >/dev/null 2>&1
ip netns exec "$S" openssl s_server -accept 4433 -cert "$WORK/c.pem" -key "$WORK/k.pem" -www -quiet >/dev/null 2>&1 &
sleep 1

ip netns exec "$C" tcpdump -i swc0 -w "$OUT" -U -s 0 not arp and not icmp6 2>/dev/null &
TCPDUMP_PID=$!
sleep 1
cx() { ip netns exec "$C" "$@"; }
# FTP: accepted (PASV, IPv4), rejected, active (PORT), non-standard port (EPSV), IPv6 (EPSV, EPRT).
cx curl -s -m 5 --disable-epsv "ftp://swlab:$PW@198.18.0.2/readme.txt" -o /dev/null || true
cx curl -s -m 5 "ftp://swlab:wrong-password@198.18.0.2/" -o /dev/null || true
cx curl -s -m 5 --disable-eprt -P - "ftp://swlab:$PW@198.18.0.2/readme.txt" -o /dev/null || true
cx curl -s -m 5 "ftp://swlab:$PW@198.18.0.2:2121/readme.txt" -o /dev/null || true
cx curl -s -m 5 -g "ftp://swlab:$PW@[2001:db8::2]/readme.txt" -o /dev/null || true
cx curl -s -m 5 -g -P - "ftp://swlab:$PW@[2001:db8::2]/readme.txt" -o /dev/null || true
# HTTP: ACME HTTP-01, HKP lookup, a plain page.
cx curl -s -m 5 http://198.18.0.2:8080/.well-known/acme-challenge/evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA -o /dev/null || true
cx curl -s -m 5 "http://198.18.0.2:8080/pks/lookup?op=get&search=0x0123456789ABCDEF" -o /dev/null || true
cx curl -s -m 5 http://198.18.0.2:8080/ -o /dev/null || true
# TLS 1.2 session-id resumption, TLS 1.3 PSK resumption.
echo | cx openssl s_client -connect 198.18.0.2:4433 -tls1_2 -no_ticket -sess_out "$WORK/s12" >/dev/null 2>&1 || true
echo | cx openssl s_client -connect 198.18.0.2:4433 -tls1_2 -no_ticket -sess_in "$WORK/s12" >/dev/null 2>&1 || true
printf 'GET / HTTP/1.0\r\n\r\n' | cx openssl s_client -connect 198.18.0.2:4433 -tls1_3 -sess_out "$WORK/s13" -ign_eof >/dev/null 2>&1 || true
printf 'GET / HTTP/1.0\r\n\r\n' | cx openssl s_client -connect 198.18.0.2:4433 -tls1_3 -sess_in "$WORK/s13" -ign_eof >/dev/null 2>&1 || true
sleep 1
echo "recorded $OUT"
