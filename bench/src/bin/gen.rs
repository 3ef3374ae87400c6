//! `gen`: writes a seeded, deterministic pcap of a traffic scenario (see `spanwatch_bench::gen`)
//! and prints what it wrote, by construction, as JSON.
//!   gen --scenario mix --packets 1000000 --seed 1 -o mix.pcap
//!   gen --scenario mix --packets 1000000 --pcapng plain -o mix.pcapng

use clap::Parser;
use spanwatch_bench::gen::{write, Options, Scenario};
use spanwatch_bench::ng::{to_pcapng, Layout};
use std::io::Write;

#[derive(Parser)]
struct Args {
    /// mix, udp-flood, syn-flood, elephant, frag-flood
    #[arg(long, default_value = "mix")]
    scenario: String,
    #[arg(long, default_value_t = 1_000_000)]
    packets: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// syn-flood: write one FTP login session after this many SYNs.
    #[arg(long)]
    ftp_login_at: Option<u64>,
    /// Write pcapng: `plain` (one interface, as capture tools write it) or `rich` (several
    /// interfaces, time units, sections and block kinds; see `spanwatch_bench::ng`).
    #[arg(long)]
    pcapng: Option<String>,
    #[arg(short, long)]
    output: std::path::PathBuf,
}

fn main() -> std::process::ExitCode {
    let a = Args::parse();
    let Some(scenario) = Scenario::parse(&a.scenario) else {
        eprintln!(
            "gen: --scenario {}: expected mix, udp-flood, syn-flood, elephant or frag-flood",
            a.scenario
        );
        return std::process::ExitCode::from(2);
    };
    let layout = match a.pcapng.as_deref() {
        None => None,
        Some("plain") => Some(Layout::Plain),
        Some("rich") => Some(Layout::Rich),
        Some(other) => {
            eprintln!("gen: --pcapng {other}: expected plain or rich");
            return std::process::ExitCode::from(2);
        }
    };
    let mut f = match std::fs::File::create(&a.output) {
        Ok(f) => std::io::BufWriter::with_capacity(1 << 20, f),
        Err(e) => {
            eprintln!("gen: {}: {e}", a.output.display());
            return std::process::ExitCode::from(2);
        }
    };
    let o = Options {
        scenario,
        packets: a.packets,
        seed: a.seed,
        ftp_login_at: a.ftp_login_at,
    };
    let written = match layout {
        None => write(&o, f).map_err(|e| e.to_string()),
        // The capture in memory first (pcapng is written from the libpcap one).
        Some(layout) => {
            let mut legacy = Vec::new();
            write(&o, &mut legacy)
                .map_err(|e| e.to_string())
                .and_then(|t| {
                    let ng = to_pcapng(&legacy, layout).map_err(|e| e.to_string())?;
                    f.write_all(&ng)
                        .and_then(|_| f.flush())
                        .map_err(|e| e.to_string())?;
                    Ok(t)
                })
        }
    };
    match written {
        Ok(t) => {
            println!("{}", serde_json::to_string(&t).unwrap_or_default());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gen: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
