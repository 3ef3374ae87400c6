//! A bounded UDP sender for the receive benchmarks: COUNT datagrams of SIZE bytes from SRC to DST
//! (port 9000 + i % 16), optionally paced to PPS packets per second; prints what it sent.
//! Only for the benchmark's own namespaces (addresses in 198.18.0.0/15).
//!   usage: udpflood SRC DST COUNT SIZE [PPS]

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 5 {
        eprintln!("usage: udpflood SRC DST COUNT SIZE [PPS]");
        std::process::exit(2);
    }
    let src: Ipv4Addr = a[1].parse().expect("SRC");
    let dst: Ipv4Addr = a[2].parse().expect("DST");
    let bench_net = |ip: Ipv4Addr| ip.octets()[0] == 198 && (ip.octets()[1] & 0xfe) == 18;
    if !bench_net(src) || !bench_net(dst) {
        eprintln!("udpflood: addresses must be in 198.18.0.0/15");
        std::process::exit(2);
    }
    let count: u64 = a[3].parse().expect("COUNT");
    let size: usize = a[4].parse().expect("SIZE");
    let pps: Option<u64> = a.get(5).and_then(|s| s.parse().ok()).filter(|&p| p > 0);
    let sock = UdpSocket::bind(SocketAddrV4::new(src, 40000)).expect("bind");
    let buf = vec![0u8; size];
    let start = Instant::now();
    let mut sent = 0u64;
    for i in 0..count {
        if sock
            .send_to(&buf, SocketAddrV4::new(dst, 9000 + (i % 16) as u16))
            .is_ok()
        {
            sent += 1;
        }
        if let Some(p) = pps {
            if i % 64 == 63 {
                let due = Duration::from_secs_f64((i + 1) as f64 / p as f64);
                if let Some(wait) = due.checked_sub(start.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
        }
    }
    let s = start.elapsed().as_secs_f64();
    println!("sent {sent} in {s:.3} s ({:.0} pps)", sent as f64 / s);
}
