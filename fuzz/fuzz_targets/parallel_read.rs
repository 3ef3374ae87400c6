//! The parallel reader against the sequential one on arbitrary libpcap and pcapng files: the same
//! counters and the same per-file report (frames, truncated and corrupt records, first and last
//! times). Input starting with a pcapng section header is read as pcapng; other input not starting
//! with a libpcap magic gets an Ethernet, microsecond file header first. Three workers: the
//! reading threads then guess where libpcap records start and partition their blocks from there,
//! and walk pcapng blocks from where they appear to start (the reader checks each guess). Each input is compared twice: as it is (smaller than one of the
//! reader's 256 KiB blocks, as the fuzzer keeps inputs) and repeated past three blocks — a libpcap
//! body after its header, a pcapng file whole (each copy a new section) —, so that records
//! straddle block boundaries, blocks begin inside records, and times step back where the input
//! starts again.
#![no_main]
use analyzer::pipeline::{self, Options};
use analyzer::protocols::Config;
use metrics::Hub;

const MAGICS: [[u8; 4]; 4] = [
    [0xd4, 0xc3, 0xb2, 0xa1],
    [0xa1, 0xb2, 0xc3, 0xd4],
    [0x4d, 0x3c, 0xb2, 0xa1],
    [0xa1, 0xb2, 0x3c, 0x4d],
];
const PCAPNG: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

/// Bytes a repeated body reaches: past three of the parallel reader's 256 KiB blocks.
const TILED: usize = 3 * 256 * 1024 + 1000;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if data.starts_with(&PCAPNG) {
        same_both_ways(data, ".pcapng");
        let mut bytes = data.to_vec();
        while bytes.len() < TILED {
            bytes.extend_from_slice(data);
        }
        same_both_ways(&bytes, "-tiled.pcapng");
        return;
    }
    let mut bytes = Vec::with_capacity(data.len() + 24);
    if !data.get(..4).is_some_and(|m| MAGICS.iter().any(|x| x == m)) {
        bytes.extend_from_slice(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0]);
        bytes.extend_from_slice(&[0; 8]);
        bytes.extend_from_slice(&65535u32.to_le_bytes());
        bytes.extend_from_slice(&1u32.to_le_bytes());
    }
    bytes.extend_from_slice(data);
    same_both_ways(&bytes, ".pcap");
    // The body after the 24-byte file header, repeated.
    if bytes.len() > 24 {
        let body = bytes[24..].to_vec();
        while bytes.len() < TILED {
            bytes.extend_from_slice(&body);
        }
        same_both_ways(&bytes, "-tiled.pcap");
    }
});

/// Reads `bytes` as a file with the sequential reader and the parallel one: the same counters
/// and file reports.
fn same_both_ways(bytes: &[u8], tag: &str) {
    let path = std::env::temp_dir().join(format!(
        "spanwatch-fuzz-parallel-{}{tag}",
        std::process::id()
    ));
    std::fs::write(&path, bytes).unwrap();
    let run = |sequential: bool| {
        let files = pipeline::open_all(std::slice::from_ref(&path)).ok()?;
        let hub = Hub::new();
        let opts = Options {
            workers: 3,
            link_bps: 10_000_000_000,
            max_flows: 1000,
            cfg: Config::default(),
            events: metrics::events::EventSink::disabled(),
            hub: hub.clone(),
            timeline: None,
            sequential,
        };
        let report = pipeline::run(files, opts, &|_| {});
        Some((
            hub.snapshot().as_slice().to_vec(),
            format!("{:?}", report.files),
        ))
    };
    let (a, b) = (run(true), run(false));
    assert!(
        a == b,
        "the parallel reader differs from the sequential one{tag}"
    );
}
