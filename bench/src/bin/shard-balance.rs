//! Measures what sharding by the unordered address pair costs against sharding by the 5-tuple:
//! the load of the busiest worker relative to a perfect split, for 2 to 16 workers, on real
//! captures.   usage: shard-balance FILE...
//!
//! (The alternative design, 5-tuple sharding with FTP expectations shared between workers, would
//! instead pay a shared-map lookup on every new TCP flow; `bench/benches/expectations.rs` times it.)

use analyzer::decode::decode;
use analyzer::hash::pick;
use analyzer::source::pcap::PcapFile;
use std::path::PathBuf;

fn main() {
    let files: Vec<PathBuf> = std::env::args().skip(1).map(PathBuf::from).collect();
    if files.is_empty() {
        eprintln!("usage: shard-balance FILE...");
        std::process::exit(2);
    }
    const WORKERS: [usize; 5] = [2, 4, 8, 12, 16];
    println!(
        "{:<40} {:>8} {:>30} {:>30}",
        "file", "packets", "busiest/mean, address pair", "busiest/mean, 5-tuple"
    );
    for f in files {
        let mut file = match PcapFile::open(&f) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(2);
            }
        };
        let mut pair = vec![vec![0u64; 16]; WORKERS.len()];
        let mut tuple = vec![vec![0u64; 16]; WORKERS.len()];
        let mut n = 0u64;
        file.for_each(
            |fr| {
                if let Ok((d, _)) = decode(fr.link, fr.data) {
                    n += 1;
                    for (i, &w) in WORKERS.iter().enumerate() {
                        pair[i][pick(d.shard, w)] += 1;
                        tuple[i][pick(d.flow, w)] += 1;
                    }
                }
            },
            |_| {},
        );
        let ratio = |v: &[u64], w: usize| {
            let max = v[..w].iter().copied().max().unwrap_or(0) as f64;
            max / (n as f64 / w as f64).max(1.0)
        };
        let fmt = |t: &Vec<Vec<u64>>| {
            WORKERS
                .iter()
                .enumerate()
                .map(|(i, &w)| format!("{:.2}", ratio(&t[i], w)))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let name = f
            .file_name()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        println!(
            "{:<40} {:>8} {:>30} {:>30}",
            name,
            n,
            fmt(&pair),
            fmt(&tuple)
        );
    }
    println!("(columns: {WORKERS:?} workers; 1.00 is a perfect split)");
}
