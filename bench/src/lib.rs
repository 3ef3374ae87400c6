//! Benchmark helpers: `gen`, the seeded traffic generator behind `bench/scripts/*` and the flood
//! tests; `ng`, pcapng copies of its captures; and the one frame the live senders (`xdpblast`,
//! the live tests) repeat.

pub mod gen;
pub mod ng;

use etherparse::PacketBuilder;
use std::net::Ipv4Addr;

/// An Ethernet/IPv4/UDP frame of `size` bytes (no FCS; 42 to 1514) with a zero payload.
pub fn udp_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    (src, sport): (Ipv4Addr, u16),
    (dst, dport): (Ipv4Addr, u16),
    size: usize,
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(src.octets(), dst.octets(), 64)
        .udp(sport, dport);
    let payload = vec![0u8; size.clamp(42, 1514) - 42];
    let mut f = Vec::with_capacity(b.size(payload.len()));
    // Writing to a Vec cannot fail, and the sizes are in range.
    let _ = b.write(&mut f, &payload);
    f
}
