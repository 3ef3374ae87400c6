//! ICMP and ICMPv6 errors quoting arbitrary bytes, through the worker, plus the quote decoders.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = analyzer::decode::decode_quoted(data);
    let _ = analyzer::decode::quoted_udp_payload(data);
    // Type 3 code 3 (port unreachable), then the quote; ICMPv6 type 1 code 4.
    let mut v4 = vec![3u8, 3, 0, 0, 0, 0, 0, 0];
    v4.extend_from_slice(data);
    let mut v6 = vec![1u8, 4, 0, 0, 0, 0, 0, 0];
    v6.extend_from_slice(data);
    let chunks = |body: &[u8], ctl: u8| {
        let mut c = vec![ctl, body.len().min(255) as u8];
        c.extend_from_slice(&body[..body.len().min(255)]);
        c
    };
    spanwatch_fuzz::ip_conversation(&chunks(&v4, 0), 1);
    spanwatch_fuzz::ip_conversation(&chunks(&v6, 0x40), 58);
});
