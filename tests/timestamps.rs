//! Timestamp metrics against an independent calculation (tests/timestamps/rewrite.py: its own
//! pcap reader, exact fractions): captures rewritten with deltas around the wire time at 1G and
//! 10G, zero and negative deltas; and the causality counter on a capture whose server side is
//! stamped 50 ms off, either way (fires), against the same capture untouched (silent).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn python() -> Option<&'static str> {
    let ok = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("NOTICE: python3 absent: independent timestamp checks skipped");
    }
    ok.then_some("python3")
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/timestamps/rewrite.py")
}

fn tmp(name: &str) -> PathBuf {
    common::tmp("ts", name)
}

fn spanwatch_timestamps(file: &Path, speed: &str) -> serde_json::Value {
    common::read_json(&["--link-speed".as_ref(), speed.as_ref(), file.as_os_str()])["timestamps"]
        .clone()
}

#[test]
fn impossible_spacing_equals_independent_count() {
    let Some(py) = python() else { return };
    let mut inputs = vec![common::default_capture()];
    if let Some(dir) = common::corpus() {
        for f in [
            "ndpi/reddit.pcap",
            "ndpi/whatsapp.pcap",
            "suricata-verify/ftp-download-active.pcap",
            "zeek/ftp_ipv6.pcap",
        ] {
            inputs.push(dir.join(f));
        }
    }
    for (i, input) in inputs.iter().enumerate() {
        for seed in [1, 2] {
            let out = tmp(&format!("rw-{i}-{seed}.pcap"));
            let o = Command::new(py)
                .arg(script())
                .args(["spacing"])
                .arg(input)
                .arg(&out)
                .arg(seed.to_string())
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let want: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            for speed in ["1G", "10G"] {
                let got = spanwatch_timestamps(&out, speed);
                let w = &want[speed];
                assert!(
                    w["impossible"].as_u64().unwrap() > 0,
                    "{input:?}: the rewrite made no close packets"
                );
                assert_eq!(
                    got["impossible_spacing"], w["impossible"],
                    "{input:?} seed {seed} at {speed}"
                );
                assert_eq!(
                    got["negative_deltas"], w["negative"],
                    "{input:?} seed {seed}"
                );
                assert_eq!(got["zero_deltas"], w["zero"], "{input:?} seed {seed}");
            }
        }
    }
}

#[test]
fn causality_fires_on_a_skewed_side_only() {
    let Some(py) = python() else { return };
    let clean = common::default_capture();
    assert_eq!(
        spanwatch_timestamps(&clean, "10G")["causality_violations"],
        0
    );
    let skewed = tmp("skewed.pcap");
    let o = Command::new(py)
        .arg(script())
        .arg("skew")
        .arg(&clean)
        .arg(&skewed)
        .args(["198.18.0.2", "50"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = spanwatch_timestamps(&skewed, "10G");
    assert!(got["causality_violations"].as_u64().unwrap() > 0, "{got}");
    // Skewed the other way, the server's acknowledgements of the client's commands come too early.
    let early = tmp("early.pcap");
    let o = Command::new(py)
        .arg(script())
        .arg("skew")
        .arg(&clean)
        .arg(&early)
        .args(["198.18.0.2", "-50"])
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(
        spanwatch_timestamps(&early, "10G")["causality_violations"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[test]
fn anomalies_are_events_first_ten_per_source() {
    let Some(py) = python() else { return };
    let out = tmp("ev.pcap");
    let o = Command::new(py)
        .arg(script())
        .args(["spacing"])
        .arg(common::default_capture())
        .arg(&out)
        .arg("3")
        .output()
        .unwrap();
    assert!(o.status.success());
    let want: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let res = Command::new(env!("CARGO_BIN_EXE_spanwatch"))
        .args(["read", "--events", "-"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(res.status.success());
    let mut negative = 0;
    let mut spacing = 0;
    for line in String::from_utf8_lossy(&res.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        match v["event"]["action"].as_str() {
            Some("timestamp-negative-delta") => {
                negative += 1;
                assert!(
                    v["spanwatch"]["delta_seconds"].as_f64().unwrap() < 0.0,
                    "{line}"
                );
                assert!(
                    v["spanwatch"]["packet_number"].as_u64().unwrap() > 1,
                    "{line}"
                );
                assert!(v["spanwatch"]["flow"]["source"]["ip"].is_string(), "{line}");
                assert!(
                    v["spanwatch"]["previous_flow"]["destination"]["port"].is_u64(),
                    "{line}"
                );
            }
            Some("timestamp-impossible-spacing") => spacing += 1,
            _ => {}
        }
    }
    let cap = |n: u64| n.min(10);
    assert_eq!(negative, cap(want["10G"]["negative"].as_u64().unwrap()));
    assert_eq!(spacing, cap(want["10G"]["impossible"].as_u64().unwrap()));
}
