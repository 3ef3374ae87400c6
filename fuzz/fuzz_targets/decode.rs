//! Frame decoding for every link type spanwatch reads (Ethernet with VLANs, PPPoE, GRE and
//! IP-in-IP tunnels, SLL, SLL2, raw IP, loopback).
#![no_main]
use analyzer::decode::{decode, link};
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    for l in [
        link::ETHERNET,
        link::RAW,
        link::IPV4,
        link::IPV6,
        link::NULL,
        link::LOOP,
        link::LINUX_SLL,
        link::LINUX_SLL2,
        link::RAW_BSD1,
        link::RAW_BSD2,
    ] {
        if let Ok((d, payload)) = decode(l, data) {
            assert!(payload.len() <= data.len());
            let _ = (d.src_ip(), d.dst_ip(), d.is_icmp_error());
        }
    }
});
