//! A seeded, deterministic traffic generator that writes pcap (nanosecond stamps, Ethernet): the
//! same scenario, packet count and seed always give the same bytes. Scenarios:
//!
//! - `mix`: a realistic mix (every session started is completed, so a few packets more than asked) — many interleaved flows with IMIX-sized data (7:4:1 of 64, 594 and
//!   1518-byte frames), TLS handshakes (a quarter of them resuming by session id), HTTP requests
//!   (plain, ACME HTTP-01, OpenPGP HKP, OCSP), DNS over UDP, FTP control sessions with a cleartext
//!   login and a passive-mode data connection, BFD control packets between two routers, mDNS.
//! - `udp-flood`: 64-byte frames, every one a new UDP flow.
//! - `syn-flood`: TCP SYNs from as many sources as packets to one server, optionally with one FTP
//!   login in the middle (`ftp_login_at`).
//! - `elephant`: one TCP connection carrying full-size segments.
//! - `frag-flood`: first fragments of IPv4 datagrams that never complete.
//!
//! Addresses come from 198.18.0.0/15 (RFC 2544 benchmarking) and 2001:db8::/32 only. Packets are
//! spaced by their wire time at 10 Gbit/s plus a little jitter, so a correct timestamp checker
//! finds no anomaly in them.

use etherparse::PacketBuilder;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::{DataLink, TsResolution};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::VecDeque;
use std::io::Write;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    Mix,
    UdpFlood,
    SynFlood,
    Elephant,
    FragFlood,
}

impl Scenario {
    pub fn parse(s: &str) -> Option<Scenario> {
        Some(match s {
            "mix" => Scenario::Mix,
            "udp-flood" => Scenario::UdpFlood,
            "syn-flood" => Scenario::SynFlood,
            "elephant" => Scenario::Elephant,
            "frag-flood" => Scenario::FragFlood,
            _ => return None,
        })
    }
}

/// What was written, by construction (the tests compare spanwatch's counts with it).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Truth {
    pub packets: u64,
    pub bytes: u64,
    pub tls_sessions: u64,
    pub tls_resumed: u64,
    pub http_requests: u64,
    pub http_acme: u64,
    pub http_hkp: u64,
    pub http_ocsp: u64,
    pub dns_flows: u64,
    pub ftp_sessions: u64,
    pub ftp_logins: u64,
    pub ftp_data: u64,
    pub bfd_packets: u64,
    pub mdns_packets: u64,
    pub flows: u64,
}

pub struct Options {
    pub scenario: Scenario,
    pub packets: u64,
    pub seed: u64,
    /// syn-flood: the packet index after which a complete FTP login session is written.
    pub ftp_login_at: Option<u64>,
}

struct Out<W: Write> {
    w: PcapWriter<W>,
    ts_ns: u64,
    truth: Truth,
    buf: Vec<u8>,
}

impl<W: Write> Out<W> {
    fn put(&mut self, rng: &mut ChaCha8Rng, frame: &[u8]) -> std::io::Result<()> {
        // Wire time at 10 Gbit/s (frame + FCS + preamble + gap = +24 bytes), plus 0-50 % jitter.
        let wire = (frame.len() as u64 + 24) * 8 / 10;
        self.ts_ns += wire + rng.random_range(0..=wire / 2) + 1;
        let p = PcapPacket::new(Duration::from_nanos(self.ts_ns), frame.len() as u32, frame);
        self.w
            .write_packet(&p)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        self.truth.packets += 1;
        self.truth.bytes += frame.len() as u64;
        Ok(())
    }
}

const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];

fn v4(rng: &mut ChaCha8Rng) -> [u8; 4] {
    // 198.18.0.0/15, avoiding .0 and .255 host parts.
    [
        198,
        18 + rng.random_range(0..2u8),
        rng.random_range(0..=255u8),
        rng.random_range(1..255u8),
    ]
}

/// Frames of one TCP connection, built as they are appended.
struct Tcp {
    c: ([u8; 4], u16),
    s: ([u8; 4], u16),
    seq: [u32; 2],
    frames: VecDeque<Vec<u8>>,
}

impl Tcp {
    fn open(c: ([u8; 4], u16), s: ([u8; 4], u16), rng: &mut ChaCha8Rng) -> Tcp {
        let mut t = Tcp {
            c,
            s,
            seq: [rng.random(), rng.random()],
            frames: VecDeque::new(),
        };
        t.seg(0, 1, &[]);
        t.seq[0] = t.seq[0].wrapping_add(1);
        t.seg(1, 3, &[]);
        t.seq[1] = t.seq[1].wrapping_add(1);
        t.seg(0, 2, &[]);
        t
    }
    /// dir 0: client to server. flags: 1 SYN, 2 ACK, 4 FIN.
    fn seg(&mut self, dir: usize, flags: u8, payload: &[u8]) {
        let ((sa, sp), (da, dp), (sm, dm)) = if dir == 0 {
            (self.c, self.s, (MAC_A, MAC_B))
        } else {
            (self.s, self.c, (MAC_B, MAC_A))
        };
        let mut b =
            PacketBuilder::ethernet2(sm, dm)
                .ipv4(sa, da, 64)
                .tcp(sp, dp, self.seq[dir], 64240);
        if flags & 1 != 0 {
            b = b.syn();
        }
        if flags & 2 != 0 {
            b = b.ack(self.seq[1 - dir]);
        }
        if flags & 4 != 0 {
            b = b.fin();
        }
        let mut f = Vec::with_capacity(b.size(payload.len()));
        if b.write(&mut f, payload).is_ok() {
            self.frames.push_back(f);
        }
    }
    fn data(&mut self, dir: usize, payload: &[u8]) {
        for chunk in payload.chunks(1460) {
            self.seg(dir, 2, chunk);
            self.seq[dir] = self.seq[dir].wrapping_add(chunk.len() as u32);
        }
    }
    fn close(&mut self) {
        self.seg(0, 6, &[]);
        self.seq[0] = self.seq[0].wrapping_add(1);
        self.seg(1, 6, &[]);
        self.seq[1] = self.seq[1].wrapping_add(1);
        self.seg(0, 2, &[]);
    }
}

fn udp_frame(src: ([u8; 4], u16), dst: ([u8; 4], u16), payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(src.0, dst.0, 64)
        .udp(src.1, dst.1);
    let mut f = Vec::with_capacity(b.size(payload.len()));
    let _ = b.write(&mut f, payload);
    f
}

/// An IMIX payload length for TCP data (frames of 64, 594 or 1518 bytes, 7:4:1).
fn imix_tcp(rng: &mut ChaCha8Rng) -> usize {
    match rng.random_range(0..12) {
        0..=6 => 6,
        7..=10 => 540,
        _ => 1460,
    }
}

fn tls_record(ct: u8, body: &[u8]) -> Vec<u8> {
    let mut r = vec![ct, 3, 3];
    r.extend_from_slice(&(body.len() as u16).to_be_bytes());
    r.extend_from_slice(body);
    r
}

fn handshake(t: u8, body: &[u8]) -> Vec<u8> {
    let n = body.len() as u32;
    let mut h = vec![t, (n >> 16) as u8, (n >> 8) as u8, n as u8];
    h.extend_from_slice(body);
    h
}

fn client_hello(rng: &mut ChaCha8Rng, sid: &[u8], sni: &str) -> Vec<u8> {
    let mut b = vec![3, 3];
    b.extend((0..32).map(|_| rng.random::<u8>()));
    b.push(sid.len() as u8);
    b.extend_from_slice(sid);
    b.extend_from_slice(&[0, 4, 0xc0, 0x2f, 0x13, 0x01, 1, 0]);
    let name = sni.as_bytes();
    let mut ext = vec![0, 0];
    ext.extend_from_slice(&((name.len() + 5) as u16).to_be_bytes());
    ext.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes());
    ext.push(0);
    ext.extend_from_slice(&(name.len() as u16).to_be_bytes());
    ext.extend_from_slice(name);
    b.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    b.extend_from_slice(&ext);
    tls_record(22, &handshake(1, &b))
}

fn server_hello(rng: &mut ChaCha8Rng, sid: &[u8]) -> Vec<u8> {
    let mut b = vec![3, 3];
    b.extend((0..32).map(|_| rng.random::<u8>()));
    b.push(sid.len() as u8);
    b.extend_from_slice(sid);
    b.extend_from_slice(&[0xc0, 0x2f, 0, 0, 0]);
    handshake(2, &b)
}

fn random_bytes(rng: &mut ChaCha8Rng, n: usize) -> Vec<u8> {
    (0..n).map(|_| rng.random::<u8>()).collect()
}

fn dns_query(id: u16, name: &str, response: Option<[u8; 4]>) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(if response.is_some() {
        &[0x81, 0x80]
    } else {
        &[0x01, 0x00]
    });
    m.extend_from_slice(&[0, 1, 0, response.is_some() as u8, 0, 0, 0, 0]);
    for label in name.split('.') {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.extend_from_slice(&[0, 0, 1, 0, 1]);
    if let Some(ip) = response {
        m.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4]);
        m.extend_from_slice(&ip);
    }
    m
}

/// Builds one session of the mix; returns its frames.
fn mix_session(rng: &mut ChaCha8Rng, t: &mut Truth, sids: &mut Vec<[u8; 32]>) -> VecDeque<Vec<u8>> {
    let client = (v4(rng), rng.random_range(32768..61000u16));
    let server_ip = [198, 19, 0, rng.random_range(1..40u8)];
    t.flows += 1;
    match rng.random_range(0..100) {
        // TLS, a quarter resuming an earlier session id.
        0..=39 => {
            let mut c = Tcp::open(client, (server_ip, 443), rng);
            let resume = !sids.is_empty() && rng.random_range(0..4) == 0;
            let sid = if resume {
                sids[rng.random_range(0..sids.len())]
            } else {
                let s: [u8; 32] = rng.random();
                if sids.len() < 1024 {
                    sids.push(s);
                }
                s
            };
            let offered: &[u8] = if resume { &sid } else { &[] };
            c.data(0, &client_hello(rng, offered, "www.example.test"));
            t.tls_sessions += 1;
            if resume {
                t.tls_resumed += 1;
                let mut r = tls_record(22, &server_hello(rng, &sid));
                r.extend(tls_record(20, &[1]));
                r.extend(tls_record(22, &random_bytes(rng, 40)));
                c.data(1, &r);
            } else {
                let mut hs = server_hello(rng, &sid);
                hs.extend(handshake(11, &[0, 0, 0]));
                hs.extend(handshake(14, &[]));
                c.data(1, &tls_record(22, &hs));
                let mut fin = tls_record(20, &[1]);
                fin.extend(tls_record(22, &random_bytes(rng, 40)));
                c.data(0, &fin);
            }
            for _ in 0..rng.random_range(1..12) {
                let n = imix_tcp(rng);
                let body = random_bytes(rng, n.saturating_sub(5).max(1));
                c.data(rng.random_range(0..2), &tls_record(23, &body));
            }
            c.close();
            c.frames
        }
        // HTTP: plain, ACME HTTP-01, HKP, OCSP.
        40..=59 => {
            let mut c = Tcp::open(client, (server_ip, 80), rng);
            let req = match rng.random_range(0..4) {
                0 => {
                    t.http_acme += 1;
                    "GET /.well-known/acme-challenge/LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0 HTTP/1.1\r\nHost: www.example.test\r\nUser-Agent: Go-http-client/1.1\r\n\r\n".to_string()
                }
                1 => {
                    t.http_hkp += 1;
                    "GET /pks/lookup?op=get&options=mr&search=0x1234ABCD HTTP/1.1\r\nHost: keys.example.test:11371\r\n\r\n".to_string()
                }
                2 => {
                    t.http_ocsp += 1;
                    "POST /ocsp HTTP/1.1\r\nHost: ocsp.example.test\r\nContent-Type: application/ocsp-request\r\nContent-Length: 0\r\n\r\n".to_string()
                }
                _ => "GET /index.html HTTP/1.1\r\nHost: www.example.test\r\nAccept: */*\r\n\r\n"
                    .to_string(),
            };
            t.http_requests += 1;
            c.data(0, req.as_bytes());
            let n = rng.random_range(0..6000);
            let body = random_bytes(rng, n);
            let mut resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n\r\n",
                body.len()
            )
            .into_bytes();
            resp.extend(body);
            c.data(1, &resp);
            c.close();
            c.frames
        }
        // DNS over UDP: a query and its answer.
        60..=84 => {
            t.dns_flows += 1;
            let id: u16 = rng.random();
            let name = format!("host{}.example.test", rng.random_range(0..10_000));
            let dns = ([198, 19, 1, 53], 53);
            VecDeque::from(vec![
                udp_frame(client, dns, &dns_query(id, &name, None)),
                udp_frame(dns, client, &dns_query(id, &name, Some(v4(rng)))),
            ])
        }
        // FTP: a cleartext login, PASV, RETR over a data connection.
        85..=89 => {
            t.ftp_sessions += 1;
            t.ftp_logins += 1;
            t.ftp_data += 1;
            t.flows += 1;
            let data_port = rng.random_range(40000..50000u16);
            let mut c = Tcp::open(client, (server_ip, 21), rng);
            c.data(1, b"220 (vsFTPd 3.0.3)\r\n");
            c.data(0, b"USER bench\r\n");
            c.data(1, b"331 Please specify the password.\r\n");
            c.data(0, b"PASS not-a-real-password\r\n");
            c.data(1, b"230 Login successful.\r\n");
            c.data(0, b"PASV\r\n");
            let s = server_ip;
            c.data(
                1,
                format!(
                    "227 Entering Passive Mode ({},{},{},{},{},{}).\r\n",
                    s[0],
                    s[1],
                    s[2],
                    s[3],
                    data_port >> 8,
                    data_port & 0xff
                )
                .as_bytes(),
            );
            c.data(0, b"RETR file.bin\r\n");
            c.data(1, b"150 Opening BINARY mode data connection.\r\n");
            let mut d = Tcp::open(
                (client.0, client.1.wrapping_add(1)),
                (server_ip, data_port),
                rng,
            );
            let n = rng.random_range(1000..20_000);
            d.data(1, &random_bytes(rng, n));
            d.close();
            let mut frames = c.frames;
            frames.extend(d.frames);
            let mut tail = Tcp {
                frames: VecDeque::new(),
                ..c
            };
            tail.data(1, b"226 Transfer complete.\r\n");
            tail.data(0, b"QUIT\r\n");
            tail.data(1, b"221 Goodbye.\r\n");
            tail.close();
            frames.extend(tail.frames);
            frames
        }
        // BFD control packets between two routers (one session, both ways).
        90..=94 => {
            t.flows -= 1;
            let (a, b) = (([198, 18, 9, 1], 49152), ([198, 18, 9, 2], 49153));
            let pkt = |my: u32, your: u32| {
                let mut p = vec![0x20, 0xc0, 3, 24];
                p.extend_from_slice(&my.to_be_bytes());
                p.extend_from_slice(&your.to_be_bytes());
                p.extend_from_slice(&300_000u32.to_be_bytes());
                p.extend_from_slice(&300_000u32.to_be_bytes());
                p.extend_from_slice(&0u32.to_be_bytes());
                p
            };
            t.bfd_packets += 2;
            VecDeque::from(vec![
                udp_frame(a, (b.0, 3784), &pkt(1, 2)),
                udp_frame(b, (a.0, 3784), &pkt(2, 1)),
            ])
        }
        // mDNS query to the multicast group.
        _ => {
            t.mdns_packets += 1;
            let q = dns_query(0, "_ipp._tcp.local", None);
            VecDeque::from(vec![udp_frame(
                ([198, 18, 7, rng.random_range(1..250u8)], 5353),
                ([224, 0, 0, 251], 5353),
                &q,
            )])
        }
    }
}

/// Writes `o.packets` packets of the scenario to `w`; returns what was written.
pub fn write<W: Write>(o: &Options, w: W) -> std::io::Result<Truth> {
    let header = PcapHeader {
        datalink: DataLink::ETHERNET,
        ts_resolution: TsResolution::NanoSecond,
        snaplen: 65535,
        ..PcapHeader::default()
    };
    let w = PcapWriter::with_header(w, header).map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut rng = ChaCha8Rng::seed_from_u64(o.seed);
    let mut out = Out {
        w,
        // 2026-01-01T00:00:00Z
        ts_ns: 1_767_225_600_000_000_000,
        truth: Truth::default(),
        buf: Vec::with_capacity(2048),
    };
    match o.scenario {
        Scenario::Mix => {
            let mut active: Vec<VecDeque<Vec<u8>>> = Vec::new();
            let mut sids = Vec::new();
            // Sessions are finished once started, so the counts of construction are exact; the
            // file holds `packets` packets or a few more.
            while out.truth.packets < o.packets || !active.is_empty() {
                while active.len() < 64 && out.truth.packets < o.packets {
                    active.push(mix_session(&mut rng, &mut out.truth, &mut sids));
                }
                let i = rng.random_range(0..active.len());
                match active[i].pop_front() {
                    Some(f) => out.put(&mut rng, &f)?,
                    None => {
                        active.swap_remove(i);
                    }
                }
            }
        }
        Scenario::UdpFlood => {
            for i in 0..o.packets {
                let src = (
                    [198, 18, (i >> 16) as u8 & 0x7f, (i >> 8) as u8],
                    1024 + (i & 0xff) as u16 * 200 + (i >> 23) as u16,
                );
                let f = udp_frame(src, ([198, 19, 0, 1], 9), &[0u8; 18]);
                out.truth.flows += 1;
                out.put(&mut rng, &f)?;
            }
        }
        Scenario::SynFlood => {
            for i in 0..o.packets {
                if Some(i) == o.ftp_login_at {
                    let mut c = Tcp::open(
                        ([198, 19, 200, 1], 51000),
                        ([198, 19, 200, 2], 21),
                        &mut rng,
                    );
                    c.data(1, b"220 (vsFTPd 3.0.3)\r\n");
                    c.data(0, b"USER flood\r\n");
                    c.data(1, b"331 Please specify the password.\r\n");
                    c.data(0, b"PASS not-a-real-password\r\n");
                    c.data(1, b"230 Login successful.\r\n");
                    c.close();
                    out.truth.ftp_sessions += 1;
                    out.truth.ftp_logins += 1;
                    out.truth.flows += 1;
                    for f in c.frames {
                        out.put(&mut rng, &f)?;
                    }
                }
                // 2^21 sources x 2^10 ports: every SYN a new flow up to 2^31 packets.
                let src = [
                    198,
                    18 + ((i >> 29) & 1) as u8,
                    (i >> 21) as u8,
                    ((i >> 13) & 0xff) as u8,
                ];
                let sport = 1024 + (i & 0x1fff) as u16;
                let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
                    .ipv4(src, [198, 19, 0, 80], 64)
                    .tcp(sport, 80, rng.random(), 64240)
                    .syn();
                out.buf.clear();
                let _ = b.write(&mut out.buf, &[]);
                let f = std::mem::take(&mut out.buf);
                out.truth.flows += 1;
                out.put(&mut rng, &f)?;
                out.buf = f;
            }
        }
        Scenario::Elephant => {
            let mut c = Tcp::open(
                ([198, 18, 0, 10], 50000),
                ([198, 19, 0, 10], 5001),
                &mut rng,
            );
            out.truth.flows = 1;
            for f in c.frames.drain(..) {
                out.put(&mut rng, &f)?;
            }
            let payload = random_bytes(&mut rng, 1460);
            let (mut n, mut k) = (3, 0u64);
            while n < o.packets {
                c.data(0, &payload);
                // An ACK for every second segment, as a receiver with delayed ACKs sends.
                k += 1;
                if k % 2 == 0 {
                    c.seg(1, 2, &[]);
                }
                for f in c.frames.drain(..) {
                    out.put(&mut rng, &f)?;
                    n += 1;
                }
            }
        }
        Scenario::FragFlood => {
            for i in 0..o.packets {
                let Ok(mut ip) = etherparse::Ipv4Header::new(
                    1200,
                    64,
                    etherparse::IpNumber::UDP,
                    [198, 18, 3, 1 + (i % 250) as u8],
                    [198, 19, 3, 1],
                ) else {
                    continue;
                };
                ip.identification = (i & 0xffff) as u16;
                ip.more_fragments = true;
                ip.header_checksum = ip.calc_header_checksum();
                out.buf.clear();
                let eth = etherparse::Ethernet2Header {
                    source: MAC_A,
                    destination: MAC_B,
                    ether_type: etherparse::EtherType::IPV4,
                };
                let _ = eth.write(&mut out.buf);
                let _ = ip.write(&mut out.buf);
                out.buf.extend_from_slice(&[0u8; 1200]);
                let f = std::mem::take(&mut out.buf);
                out.put(&mut rng, &f)?;
                out.buf = f;
            }
        }
    }
    let truth = out.truth;
    out.w.into_writer().flush()?;
    Ok(truth)
}
