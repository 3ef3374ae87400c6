//! BFD control (3784) and echo (3785) datagrams through the worker, and the control-packet parser.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = analyzer::protocols::bfd::parse_control(data);
    let (sel, rest) = data.split_first().unwrap_or((&0, data));
    spanwatch_fuzz::udp_conversation(rest, if sel & 1 == 0 { 3784 } else { 3785 });
});
