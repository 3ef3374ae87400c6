//! TCP stream reassembly (arbitrary sequence numbers, SYN, overlaps) and the line buffer, then
//! IPv4 fragment reassembly through the worker.
#![no_main]
use analyzer::stream::{Chunk, LineBuf, Reassembler};
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut r = Reassembler::starting_at(data.first().map(|b| *b as u32 * 1000));
    let mut lines = LineBuf::new(64);
    let mut delivered = 0usize;
    let mut it = data.chunks(7);
    while let (Some(h), Some(body)) = (it.next(), it.next()) {
        if h.len() < 5 {
            break;
        }
        let seq = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
        r.push(seq, h[4] & 1 != 0, body, |c| match c {
            Chunk::Data(d) => {
                delivered += d.len();
                lines.feed(d, |l| assert!(l.len() <= 64));
            }
            _ => lines.reset(),
        });
    }
    let _ = delivered;
    // IPv4 fragments with arbitrary offsets, flags and identifications.
    spanwatch_fuzz::ipv4_fragments(data);
});
