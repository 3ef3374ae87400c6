//! The decoder's fast path (Ethernet/raw IPv4 + TCP/UDP, no options, not a fragment) against the
//! general path (etherparse's SlicedPacket): on every packet of the shared corpus, the lab capture
//! and the generator's scenarios, wherever the fast path answers, it answers exactly what the
//! general path does — every field of `Decoded` and the same payload bytes.

mod common;

use analyzer::decode::{decode_fast_only, decode_general};
use analyzer::source::pcap::PcapFile;
use spanwatch_bench::gen::{write, Options, Scenario};
use std::path::PathBuf;

fn compare(f: &mut PcapFile, fast: &mut u64, total: &mut u64) {
    let name = f.path().to_string();
    f.for_each(
        |fr| {
            *total += 1;
            if let Some((d, pl)) = decode_fast_only(fr.link, fr.data) {
                *fast += 1;
                let (gd, gpl) = decode_general(fr.link, fr.data).unwrap_or_else(|e| {
                    panic!("{name}: fast path decoded what the general path refuses ({e:?})")
                });
                assert_eq!(d, gd, "{name}");
                assert_eq!(pl, gpl, "{name}: payload");
            }
        },
        |_| {},
    );
}

#[test]
fn fast_path_equals_general_path_on_real_and_generated_traffic() {
    let mut files: Vec<PathBuf> = vec![common::default_capture()];
    if let Some(dir) = common::corpus() {
        files.extend(
            common::ground_truth(&dir)
                .into_iter()
                .map(|(n, _)| dir.join(n)),
        );
    }
    let (mut fast, mut total) = (0u64, 0u64);
    for p in &files {
        compare(&mut PcapFile::open(p).unwrap(), &mut fast, &mut total);
    }
    for sc in [
        Scenario::Mix,
        Scenario::UdpFlood,
        Scenario::SynFlood,
        Scenario::FragFlood,
    ] {
        let mut buf = Vec::new();
        write(
            &Options {
                scenario: sc,
                packets: 20_000,
                seed: 3,
                ftp_login_at: Some(100),
            },
            &mut buf,
        )
        .unwrap();
        let mut f =
            PcapFile::from_reader(format!("{sc:?}"), Box::new(std::io::Cursor::new(buf)), 0)
                .unwrap();
        compare(&mut f, &mut fast, &mut total);
    }
    eprintln!("fast path decoded {fast} of {total} packets, each equal to the general path");
    assert!(fast > total / 2, "{fast} of {total}");
}
