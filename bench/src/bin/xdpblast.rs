//! A bounded UDP sender for the receive benchmarks that goes past what a socket can offer: COUNT
//! frames of SIZE bytes (Ethernet to UDP payload, no FCS) from SRC to DST: the kernel repeats one
//! frame per call, call i going to port 9000 + i % 16 (so a run of at most CHUNK frames is one flow),
//! transmitted by the kernel from IFACE with `BPF_PROG_TEST_RUN` live frames (see
//! `spanwatch_xdp::blast`), in calls of CHUNK frames (default 2^20: each call costs the kernel ~25 ms of setup), optionally
//! paced to PPS frames per second, frame by frame, by the program itself.
//! Prints what it handed to the device. Only for the benchmark's own namespaces (addresses in
//! 198.18.0.0/15).
//!   usage: xdpblast IFACE DST_MAC SRC DST COUNT SIZE [PPS] [CHUNK]

use spanwatch_bench::udp_frame;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use xdp::blast::Blaster;

fn mac(s: &str) -> Option<[u8; 6]> {
    let v: Vec<u8> = s
        .trim()
        .split(':')
        .map(|x| u8::from_str_radix(x, 16).ok())
        .collect::<Option<_>>()?;
    v.try_into().ok()
}

fn fail(msg: &str) -> ! {
    eprintln!("xdpblast: {msg}");
    std::process::exit(2);
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 7 {
        fail("usage: xdpblast IFACE DST_MAC SRC DST COUNT SIZE [PPS] [CHUNK]");
    }
    let iface = &a[1];
    let dst_mac = mac(&a[2]).unwrap_or_else(|| fail("DST_MAC: aa:bb:cc:dd:ee:ff"));
    let src_mac = std::fs::read_to_string(format!("/sys/class/net/{iface}/address"))
        .ok()
        .and_then(|s| mac(&s))
        .unwrap_or_else(|| fail(&format!("{iface}: no such interface here")));
    let src: Ipv4Addr = a[3].parse().unwrap_or_else(|_| fail("SRC"));
    let dst: Ipv4Addr = a[4].parse().unwrap_or_else(|_| fail("DST"));
    let bench_net = |ip: Ipv4Addr| ip.octets()[0] == 198 && (ip.octets()[1] & 0xfe) == 18;
    if !bench_net(src) || !bench_net(dst) {
        fail("addresses must be in 198.18.0.0/15");
    }
    let count: u64 = a[5].parse().unwrap_or_else(|_| fail("COUNT"));
    let size: usize = a[6].parse().unwrap_or_else(|_| fail("SIZE"));
    if !(42..=1514).contains(&size) {
        fail("SIZE: 42 to 1514 bytes");
    }
    let pps: Option<u64> = a.get(7).and_then(|s| s.parse().ok()).filter(|&p| p > 0);
    let chunk: u64 = a
        .get(8)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1 << 20)
        .clamp(1, 1 << 20);
    let frames: Vec<Vec<u8>> = (0..16u16)
        .map(|i| udp_frame(src_mac, dst_mac, (src, 40000), (dst, 9000 + i), size))
        .collect();
    // The kernel paces frame by frame; the loop below only keeps the average right across calls.
    let interval = pps.map_or(0, |p| 1_000_000_000 / p.max(1));
    let mut tx = Blaster::new(iface, interval).unwrap_or_else(|e| fail(&e.to_string()));
    let start = Instant::now();
    let mut sent = 0u64;
    let mut i = 0usize;
    while sent < count {
        let n = chunk.min(count - sent);
        if let Err(e) = tx.send(&frames[i % frames.len()], n as u32, 0) {
            fail(&e.to_string());
        }
        sent += n;
        i += 1;
        if let Some(p) = pps {
            let due = Duration::from_secs_f64(sent as f64 / p as f64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
    let s = start.elapsed().as_secs_f64();
    println!("sent {sent} in {s:.3} s ({:.0} pps)", sent as f64 / s);
}
