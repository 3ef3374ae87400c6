//! OSPF (IP protocol 89, v2 over IPv4 and v3 over IPv6) through the worker, and its parser.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = analyzer::protocols::ospf::parse(data);
    spanwatch_fuzz::ip_conversation(data, 89);
});
