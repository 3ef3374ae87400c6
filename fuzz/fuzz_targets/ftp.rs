//! ftp over TCP (port 21, though spanwatch classifies by content): segmentation, gaps,
//! retransmission, reordering, FIN/RST and idle timeouts, through decode and the worker.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| spanwatch_fuzz::tcp_conversation(data, 21));
