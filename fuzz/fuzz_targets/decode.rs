//! Frame decoding for every link type spanwatch reads (Ethernet with VLANs, PPPoE, GRE and
//! IP-in-IP tunnels, ERSPAN, VXLAN, Geneve, SLL, SLL2, raw IP, loopback), the fast path against
//! the general one, and the hot path against `decode`.
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
        if let Some((fd, fp)) = analyzer::decode::decode_fast_only(l, data) {
            let (gd, gp) = analyzer::decode::decode_general(l, data).expect("general path agrees");
            assert_eq!(fd, gd);
            assert_eq!(fp, gp);
        }
        // The hot path (which opens the usual tunnels on its fast path) gives `decode`'s result.
        let mut hot = analyzer::decode::Decoded::default();
        let hot_payload = analyzer::decode::decode_into(l, data, &mut hot);
        match decode(l, data) {
            Ok((d, payload)) => {
                assert!(payload.len() <= data.len());
                let _ = (d.src_ip(), d.dst_ip(), d.is_icmp_error());
                assert_eq!(hot_payload, Ok(payload));
                assert_eq!(hot, d);
            }
            Err(e) => assert_eq!(hot_payload, Err(e)),
        }
    }
});
