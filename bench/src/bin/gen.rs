//! `gen`: writes a seeded, deterministic pcap of a traffic scenario (see `spanwatch_bench::gen`)
//! and prints what it wrote, by construction, as JSON.
//!   gen --scenario mix --packets 1000000 --seed 1 -o mix.pcap

use clap::Parser;
use spanwatch_bench::gen::{write, Options, Scenario};

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
    let f = match std::fs::File::create(&a.output) {
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
    match write(&o, f) {
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
