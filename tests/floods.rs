//! Floods, from the seeded generator (bench `gen`): memory stays bounded by `--max-flows` however
//! many flows arrive, evictions are counted by reason, a login in the middle of a SYN flood is still
//! seen; one flow carrying 150 MB, and 300 000 fragments that never complete, do not grow memory,
//! and every fragment is accounted for. Peak memory is the `max_rss_bytes` of the JSON summary.

mod common;

use spanwatch_bench::gen::{write, Options, Scenario, Truth};
use std::path::{Path, PathBuf};

fn generate(
    name: &str,
    scenario: Scenario,
    packets: u64,
    ftp_login_at: Option<u64>,
) -> (PathBuf, Truth) {
    let path = common::tmp("floods", name);
    let f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&path).unwrap());
    let t = write(
        &Options {
            scenario,
            packets,
            seed: 7,
            ftp_login_at,
        },
        f,
    )
    .unwrap();
    (path, t)
}

fn read(path: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args: Vec<&std::ffi::OsStr> = vec!["--workers".as_ref(), "2".as_ref()];
    args.extend(extra.iter().map(|e| std::ffi::OsStr::new(*e)));
    args.push(path.as_os_str());
    common::read_json(&args)
}

fn rss_mib(v: &serde_json::Value) -> f64 {
    v["max_rss_bytes"].as_u64().unwrap() as f64 / (1 << 20) as f64
}

#[test]
fn syn_flood_memory_is_bounded_by_max_flows_and_a_login_is_still_seen() {
    let (small, ts) = generate("syn-200k.pcap", Scenario::SynFlood, 200_000, Some(100_000));
    let (big, tb) = generate(
        "syn-2m.pcap",
        Scenario::SynFlood,
        2_000_000,
        Some(1_000_000),
    );
    let mut rss = Vec::new();
    for (path, truth) in [(&small, &ts), (&big, &tb)] {
        let v = read(path, &["--max-flows", "100000"]);
        assert_eq!(v["packets"], truth.packets);
        // Every flow beyond the cap was evicted for pressure, and counted as such.
        assert_eq!(v["flows_evicted"]["pressure"], truth.flows - 100_000, "{v}");
        assert_eq!(v["flows_evicted"]["timeout"], 0);
        // The one FTP login among the SYNs.
        assert_eq!(v["ftp_logins"]["accepted"], 1, "{v}");
        assert_eq!(v["sessions"]["ftp"]["total"], 1);
        rss.push(rss_mib(&v));
        std::fs::remove_file(path).unwrap();
    }
    // Ten times the flood, the same memory: the table holds 100 000 flows either way.
    assert!(rss[1] - rss[0] < 4.0, "peak RSS {rss:?} MiB");
    // The documented bound: 16 MiB + 256 bytes per flow of --max-flows + 8 MiB per worker.
    assert!(
        rss[1] < 16.0 + 100_000.0 * 256.0 / (1 << 20) as f64 + 2.0 * 8.0,
        "{rss:?}"
    );
}

#[test]
fn mapping_pages_ahead_changes_no_count() {
    // 300 000 new flows on each of two workers: the threads around them map their slabs ahead
    // of them while idle (the parallel reader's threads; in the sequential pipeline the workers
    // and the producer waiting for room), and each one's index grows into the buckets made and
    // mapped ahead of the growth. The file is read twice over: on the second pass every packet
    // must find its flow.
    let (path, truth) = generate("udp-600k.pcap", Scenario::UdpFlood, 600_000, None);
    let run = |vars: &[(&str, &str)]| {
        let args = ["read", "--format", "json", "--workers", "2"].map(std::ffi::OsStr::new);
        let out = common::spanwatch_ok_env(
            vars,
            args.into_iter().chain([path.as_os_str(), path.as_os_str()]),
        );
        let mut v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        for k in ["elapsed_seconds", "max_rss_bytes"] {
            v.as_object_mut().unwrap().remove(k);
        }
        v
    };
    let with = run(&[("SPANWATCH_PREFAULT", "1")]);
    assert_eq!(with["packets"], 2 * truth.packets);
    assert_eq!(
        with["sessions"]["other_udp"]["total"], truth.flows,
        "{with}"
    );
    assert_eq!(with, run(&[("SPANWATCH_PREFAULT", "0")]));
    let sequential = ("SPANWATCH_SEQUENTIAL_READ", "1");
    assert_eq!(with, run(&[("SPANWATCH_PREFAULT", "1"), sequential]));
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn an_elephant_flow_does_not_grow_memory() {
    let mut rss = Vec::new();
    for n in [10_000u64, 100_000] {
        let (path, truth) = generate(&format!("elephant-{n}.pcap"), Scenario::Elephant, n, None);
        let v = read(&path, &[]);
        assert_eq!(v["packets"], truth.packets);
        assert_eq!(v["sessions"]["other_tcp"]["total"], 1);
        assert!(truth.bytes > n * 1000);
        rss.push(rss_mib(&v));
        std::fs::remove_file(&path).unwrap();
    }
    // 15 MB and 150 MB through one connection: the same peak memory.
    assert!(rss[1] - rss[0] < 4.0, "peak RSS {rss:?} MiB");
}

#[test]
fn a_fragment_flood_is_bounded_and_every_fragment_accounted_for() {
    let mut rss = Vec::new();
    for n in [30_000u64, 300_000] {
        let (path, _) = generate(&format!("frag-{n}.pcap"), Scenario::FragFlood, n, None);
        let m = common::tmp("floods", "frag.prom");
        let v = read(&path, &["--metrics-out", m.to_str().unwrap()]);
        let text = std::fs::read_to_string(&m).unwrap();
        let get = |k: &str| -> u64 {
            text.lines()
                .find(|l| l.starts_with(k))
                .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .unwrap() as u64
        };
        assert_eq!(get("spanwatch_ip_fragments_total{ip_version=\"4\"}"), n);
        let overflow = get("spanwatch_stream_issues_total{reason=\"fragment_overflow\"}");
        let timeout = get("spanwatch_stream_issues_total{reason=\"fragment_timeout\"}");
        assert_eq!(overflow + timeout, n, "every fragment given up is counted");
        rss.push(rss_mib(&v));
        std::fs::remove_file(&path).unwrap();
    }
    assert!(rss[1] - rss[0] < 4.0, "peak RSS {rss:?} MiB");
}
