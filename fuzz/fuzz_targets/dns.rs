//! DNS and mDNS: UDP datagrams to 53 and 5353, and DNS over TCP (length-prefixed messages).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (sel, rest) = data.split_first().unwrap_or((&0, data));
    match sel % 3 {
        0 => spanwatch_fuzz::udp_conversation(rest, 53),
        1 => spanwatch_fuzz::udp_conversation(rest, 5353),
        _ => spanwatch_fuzz::tcp_conversation(rest, 53),
    }
});
