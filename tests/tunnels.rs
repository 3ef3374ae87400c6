//! Remote SPAN: a switch that mirrors a port to a sensor elsewhere sends each frame inside a
//! tunnel (ERSPAN, GRE, VXLAN, Geneve). Here every frame of the lab's capture is carried in each
//! kind, over IPv4 and IPv6, and the tunnelled capture must count exactly as the capture itself:
//! the same packets, sessions, logins, handshakes, timestamps and decode errors (only the bytes
//! taken in, which include the tunnel's headers, differ). The kernel's own VXLAN tunnel, mirrored
//! to by `tc`, is run in the lab (tests/lab/remote-span.sh).

mod common;

use metrics::{slot, LoginOutcome, Proto, Source, Tunnel};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
use pcap_file::DataLink;

use std::fs::File;
use std::path::Path;

/// What a tunnel carries: the whole Ethernet frame, or the IP packet in it.
#[derive(Clone, Copy, PartialEq)]
enum Carries {
    Ethernet,
    Ip,
}

/// An Ethernet frame from 198.18.9.1 to 198.18.9.2 (or 2001:db8::1 to 2001:db8::2) carrying
/// `payload` as IP protocol `proto`.
fn outer_ip(v6: bool, proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    let len = payload.len();
    if v6 {
        f.extend([0x86, 0xdd, 0x60, 0, 0, 0]);
        f.extend((len as u16).to_be_bytes());
        f.extend([proto, 64]);
        for last in [1, 2] {
            f.extend([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, last]);
        }
    } else {
        f.extend([0x08, 0x00, 0x45, 0]);
        f.extend(((20 + len) as u16).to_be_bytes());
        f.extend([0, 1, 0x40, 0, 64, proto, 0, 0, 198, 18, 9, 1, 198, 18, 9, 2]);
    }
    f.extend(payload);
    f
}

/// `payload` in a UDP datagram to `dport` (the source port varies with the carried frame, as a
/// VXLAN or Geneve endpoint's does, from a hash of it).
fn outer_udp(v6: bool, dport: u16, payload: &[u8]) -> Vec<u8> {
    let sum = payload.iter().fold(0u16, |a, &b| a.wrapping_add(b as u16));
    let sport = 49152 + (sum & 0x3fff);
    let mut u = Vec::with_capacity(8 + payload.len());
    u.extend(sport.to_be_bytes());
    u.extend(dport.to_be_bytes());
    u.extend(((8 + payload.len()) as u16).to_be_bytes());
    u.extend([0, 0]);
    u.extend(payload);
    outer_ip(v6, 17, &u)
}

/// A GRE header: flags (K = 0x20 adds a key word, S = 0x10 a sequence number) and protocol.
fn gre(flags: u8, proto: u16, seq: u32) -> Vec<u8> {
    let mut g = vec![flags, 0];
    g.extend(proto.to_be_bytes());
    if flags & 0x20 != 0 {
        g.extend(77u32.to_be_bytes());
    }
    if flags & 0x10 != 0 {
        g.extend(seq.to_be_bytes());
    }
    g
}

/// GRE and an ERSPAN type III header (version 2, session 7, a timestamp): frame type `ft` (0
/// Ethernet, 2 IP), and with `subheader` its O bit and 8 bytes of platform subheader.
fn erspan3(n: u32, ft: u8, subheader: bool) -> Vec<u8> {
    let mut h = gre(0x10, 0x22eb, n);
    h.extend([0x20, 0, 0, 7]);
    h.extend(n.to_be_bytes());
    h.extend([0, 0, ft << 2, subheader as u8]);
    if subheader {
        h.extend([0x0a; 8]);
    }
    h
}

/// The tunnels, each as a function of (IPv6 outer?, sequence number, carried bytes).
type Wrap = fn(bool, u32, &[u8]) -> Vec<u8>;

const TUNNELS: &[(&str, Tunnel, Carries, Wrap)] = &[
    ("gretap", Tunnel::Gre, Carries::Ethernet, |v6, n, f| {
        outer_ip(v6, 47, &[gre(0x20, 0x6558, n), f.to_vec()].concat())
    }),
    (
        "ERSPAN type I",
        Tunnel::Erspan,
        Carries::Ethernet,
        |v6, _, f| outer_ip(v6, 47, &[gre(0, 0x88be, 0), f.to_vec()].concat()),
    ),
    (
        "ERSPAN type II",
        Tunnel::Erspan,
        Carries::Ethernet,
        |v6, n, f| {
            // Version 1, VLAN 0, session 5, index 0.
            let h = [0x10, 0, 0, 5, 0, 0, 0, 0];
            outer_ip(
                v6,
                47,
                &[gre(0x10, 0x88be, n), h.to_vec(), f.to_vec()].concat(),
            )
        },
    ),
    (
        "ERSPAN type III",
        Tunnel::Erspan,
        Carries::Ethernet,
        |v6, n, f| outer_ip(v6, 47, &[erspan3(n, 0, true), f.to_vec()].concat()),
    ),
    (
        "ERSPAN type III, IP frames",
        Tunnel::Erspan,
        Carries::Ip,
        |v6, n, f| outer_ip(v6, 47, &[erspan3(n, 2, false), f.to_vec()].concat()),
    ),
    ("VXLAN", Tunnel::Vxlan, Carries::Ethernet, |v6, _, f| {
        outer_udp(
            v6,
            4789,
            &[vec![0x08, 0, 0, 0, 0, 0, 42, 0], f.to_vec()].concat(),
        )
    }),
    ("Geneve", Tunnel::Geneve, Carries::Ethernet, |v6, _, f| {
        outer_udp(
            v6,
            6081,
            &[vec![0, 0, 0x65, 0x58, 0, 0, 42, 0], f.to_vec()].concat(),
        )
    }),
    (
        "Geneve, IP, an option",
        Tunnel::Geneve,
        Carries::Ip,
        |v6, _, f| {
            // One 4-byte option word (class, type, length 0).
            let h = vec![1, 0, 0x08, 0x00, 0, 0, 42, 0, 0x01, 0x02, 0x03, 0];
            outer_udp(v6, 6081, &[h, f.to_vec()].concat())
        },
    ),
];

/// Writes `src`'s frames to `dst`, each made by `frame` (None leaves it out), with its time.
fn rewrite(src: &Path, dst: &Path, link: DataLink, frame: impl Fn(u32, &[u8]) -> Option<Vec<u8>>) {
    let mut r = PcapReader::new(File::open(src).unwrap()).unwrap();
    let header = PcapHeader {
        datalink: link,
        snaplen: 262_144,
        ..r.header()
    };
    let mut w = PcapWriter::with_header(File::create(dst).unwrap(), header).unwrap();
    let mut n = 0;
    while let Some(p) = r.next_packet() {
        let p = p.unwrap();
        assert_eq!(
            p.orig_len as usize,
            p.data.len(),
            "the lab's capture is whole"
        );
        if let Some(f) = frame(n, &p.data) {
            let len = f.len() as u32;
            w.write_packet(&PcapPacket::new_owned(p.timestamp, len, f))
                .unwrap();
        }
        n += 1;
    }
}

/// The IP packet in an untagged Ethernet frame, if it carries one.
fn ip_of(f: &[u8]) -> Option<&[u8]> {
    (f.len() > 14 && matches!([f[12], f[13]], [0x08, 0x00] | [0x86, 0xdd])).then(|| &f[14..])
}

#[test]
fn remote_span_tunnels_count_as_the_frames_they_carry() {
    let dir = tempdir("tunnels");
    let lab = common::default_capture();
    // The capture as raw IP: the reference for tunnels that carry IP packets.
    let lab_ip = dir.join("lab-ip.pcap");
    rewrite(&lab, &lab_ip, DataLink::RAW, |_, f| {
        ip_of(f).map(<[u8]>::to_vec)
    });
    let plain = common::analyze(std::slice::from_ref(&lab), 1);
    let plain_ip = common::analyze(&[lab_ip], 1);
    // The capture is a test of something: its sessions, logins and non-IP frames.
    for c in [&plain, &plain_ip] {
        assert!(Tunnel::ALL
            .iter()
            .all(|t| c.get(slot::tunnel_packets(*t)) == 0));
        for p in [Proto::Ftp, Proto::Tls, Proto::Http, Proto::Mdns] {
            assert!(c.get(slot::sessions(p, false)) > 0, "{p:?}");
        }
        assert!(c.get(slot::sessions(Proto::Ftp, true)) > 0);
        assert!(c.get(slot::ftp_login(LoginOutcome::Accepted)) > 0);
    }
    assert!(plain.get(slot::decode_error(metrics::DecodeError::NonIp)) > 0);
    for &(name, kind, carries, wrap) in TUNNELS {
        for v6 in [false, true] {
            let out = dir.join(format!("{}-{v6}.pcap", name.replace([' ', ','], "_")));
            rewrite(&lab, &out, DataLink::ETHERNET, |n, f| match carries {
                Carries::Ethernet => Some(wrap(v6, n, f)),
                Carries::Ip => ip_of(f).map(|ip| wrap(v6, n, ip)),
            });
            let want = if carries == Carries::Ip {
                &plain_ip
            } else {
                &plain
            };
            for workers in [1, 2] {
                let got = common::analyze(std::slice::from_ref(&out), workers);
                let tunnel_slots = Tunnel::ALL
                    .iter()
                    .map(|t| slot::tunnel_packets(*t))
                    .collect::<Vec<_>>();
                let differ: Vec<usize> = (0..slot::TOTAL)
                    .filter(|i| *i != slot::bytes(Source::Pcap) && !tunnel_slots.contains(i))
                    .filter(|&i| got.get(i) != want.get(i))
                    .collect();
                assert!(
                    differ.is_empty(),
                    "{name} over IPv{}, {workers} workers: slots {differ:?} differ",
                    if v6 { 6 } else { 4 }
                );
                assert!(got.get(slot::bytes(Source::Pcap)) > want.get(slot::bytes(Source::Pcap)));
                // Every packet analyzed came in this tunnel (those not analyzed are not counted).
                let errors: u64 = metrics::DecodeError::ALL
                    .iter()
                    .map(|e| want.get(slot::decode_error(*e)))
                    .sum();
                for &t in Tunnel::ALL {
                    let n = if t == kind {
                        want.get(slot::packets(Source::Pcap)) - errors
                    } else {
                        0
                    };
                    assert_eq!(got.get(slot::tunnel_packets(t)), n, "{name}: {t:?}");
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A VXLAN datagram fragmented on its way (an underlay without jumbo frames) is reassembled and
/// counted, not opened and not taken for a UDP flow of its own; an unfragmented one beside it is
/// opened.
#[test]
fn a_fragmented_tunnel_packet_is_counted_not_opened() {
    let dir = tempdir("fragmented-tunnel");
    // The carried frame: an FTP command, padded to 1 400 bytes of TCP payload.
    let mut inner = vec![4, 0, 0, 0, 0, 4, 4, 0, 0, 0, 0, 3, 0x08, 0x00];
    let mut tcp = vec![
        0x9c, 0x40, 0, 21, 0, 0, 0, 7, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0,
    ];
    tcp.extend(b"USER alice\r\n");
    tcp.resize(1420, b' ');
    inner.extend([0x45, 0]);
    inner.extend(((20 + tcp.len()) as u16).to_be_bytes());
    inner.extend([0, 1, 0x40, 0, 64, 6, 0, 0, 198, 18, 1, 1, 198, 18, 1, 2]);
    inner.extend(&tcp);
    let whole = outer_udp(
        false,
        4789,
        &[vec![0x08, 0, 0, 0, 0, 0, 42, 0], inner].concat(),
    );
    // Its IP payload in two fragments of 1 000 and the rest (offsets in 8-byte units).
    let ip = &whole[14..];
    let payload = &ip[20..];
    let frag = |off: usize, more: bool, part: &[u8]| {
        let mut f = outer_ip(false, 17, part);
        f[18..20].copy_from_slice(&[0, 9]); // IP identification
        let flags_off = (off / 8) as u16 | if more { 0x2000 } else { 0 };
        f[20..22].copy_from_slice(&flags_off.to_be_bytes());
        f
    };
    let frames = [
        frag(0, true, &payload[..1000]),
        frag(1000, false, &payload[1000..]),
        whole.clone(),
    ];
    let path = dir.join("fragmented.pcap");
    let header = PcapHeader {
        datalink: DataLink::ETHERNET,
        ..PcapHeader::default()
    };
    let mut w = PcapWriter::with_header(File::create(&path).unwrap(), header).unwrap();
    for (i, f) in frames.iter().enumerate() {
        let t = std::time::Duration::from_millis(1_000 + i as u64);
        w.write_packet(&PcapPacket::new(t, f.len() as u32, f))
            .unwrap();
    }
    drop(w);
    for workers in [1, 2] {
        let c = common::analyze(std::slice::from_ref(&path), workers);
        let issue = slot::stream_issue(metrics::StreamIssue::TunnelFragmented);
        assert_eq!(c.get(issue), 1, "{workers} workers");
        assert_eq!(c.get(slot::ip_reassembled(false)), 1);
        // The whole one was opened: one FTP session; the reassembled one made no UDP flow.
        assert_eq!(c.get(slot::sessions(Proto::Ftp, false)), 1);
        assert_eq!(c.get(slot::sessions(Proto::OtherUdp, false)), 0);
        assert_eq!(c.get(slot::tunnel_packets(Tunnel::Vxlan)), 1);
    }
    // The summary says so, in text and in JSON.
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_spanwatch"))
            .arg("read")
            .args(args)
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let text = run(&[]);
    assert!(
        text.contains("tunnel packets that came in fragments (not opened): 1"),
        "{text}"
    );
    assert!(
        text.contains("packets that came in tunnels: 1 vxlan"),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&run(&["--format", "json"])).unwrap();
    assert_eq!(json["stream_issues"]["tunnel_fragmented"], 1);
    assert_eq!(json["tunnel_packets"]["vxlan"], 1);
    assert_eq!(json["tunnel_packets"]["erspan"], 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A directory of the test's own (the tests run in parallel).
fn tempdir(test: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("spanwatch-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
