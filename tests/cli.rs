//! The command line as a user meets it: the default run, exit codes and one-line reasons, the
//! Prometheus output (checked by `promtool` where installed), the event log, and that a password
//! never reaches any output.

mod common;

use std::path::PathBuf;
use std::process::Command;

fn spanwatch() -> Command {
    Command::new(env!("CARGO_BIN_EXE_spanwatch"))
}

fn tmp(name: &str) -> PathBuf {
    common::tmp("cli", name)
}

#[test]
fn default_run_reads_the_builtin_capture() {
    let out = common::spanwatch_ok(["read", "--workers", "2"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("lab-default.pcap"), "{text}");
    assert!(
        text.contains("cleartext FTP logins: 5 accepted, 1 rejected, 0 unknown"),
        "{text}"
    );
}

#[test]
fn missing_and_bad_inputs_exit_2_with_one_line() {
    let garbage = tmp("garbage.pcap");
    std::fs::write(
        &garbage,
        b"this is not a capture file at all, not even close",
    )
    .unwrap();
    let empty = tmp("empty.pcap");
    std::fs::write(&empty, b"").unwrap();
    for (args, needle) in [
        (vec!["read", "/nonexistent/x.pcap"], "no such file"),
        (
            vec!["read", garbage.to_str().unwrap()],
            "not a pcap or pcapng file",
        ),
        (vec!["read", empty.to_str().unwrap()], "empty file"),
        (vec!["read", "/"], "directory"),
        (vec!["read", "--link-speed", "fast"], "--link-speed"),
        (vec!["read", "--workers", "0"], "--workers"),
        (vec!["read", "--bogus"], "unexpected argument"),
    ] {
        let out = spanwatch().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        if !args.contains(&"--bogus") {
            assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        }
    }
}

#[test]
fn truncated_capture_is_counted_not_fatal() {
    let src = std::fs::read(common::default_capture()).unwrap();
    let cut = tmp("cut.pcap");
    std::fs::write(&cut, &src[..src.len() - 7]).unwrap();
    let out = spanwatch()
        .args(["read", cut.to_str().unwrap(), "--metrics-out", "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "spanwatch_capture_dropped_total{reason=\"truncated_record\",queue=\"file\"} 1"
        ),
        "{text}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("truncated"));
}

#[test]
fn metrics_pass_promtool() {
    let path = tmp("m.prom");
    let out = spanwatch()
        .args(["read", "--metrics-out", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("spanwatch_sessions_total{protocol=\"ftp\",ip_version=\"6\"} 2"),
        "{text}"
    );
    match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&path).unwrap())
        .output()
    {
        Ok(o) => assert!(
            o.status.success(),
            "promtool: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(_) => eprintln!("NOTICE: promtool not installed: exposition format not checked by it"),
    }
}

#[test]
fn json_summary_and_config_file() {
    let cfg = tmp("spanwatch.toml");
    std::fs::write(
        &cfg,
        "workers = 2\nlink-speed = \"1G\"\nformat = \"json\"\n",
    )
    .unwrap();
    let v = common::read_json(&[std::ffi::OsStr::new("--config"), cfg.as_os_str()]);
    assert_eq!(v["workers"], 2);
    assert_eq!(v["sessions"]["ftp_data"]["total"], 5);
    assert_eq!(v["tls_resumed"]["session_id"], 1);
    assert_eq!(v["tls_resumed"]["psk"], 1);
    std::fs::write(&cfg, "wrokers = 2\n").unwrap();
    let out = spanwatch()
        .args(["read", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Passwords in the lab capture and the corpus FTP captures, found by scanning the raw bytes.
fn passwords_in(files: &[PathBuf]) -> Vec<String> {
    let mut out = Vec::new();
    for f in files {
        let b = std::fs::read(f).unwrap();
        for i in 0..b.len().saturating_sub(6) {
            if &b[i..i + 5] == b"PASS " {
                let end = b[i + 5..]
                    .iter()
                    .position(|&c| c == b'\r' || c == b'\n')
                    .map_or(0, |e| e.min(64));
                if let Ok(p) = std::str::from_utf8(&b[i + 5..i + 5 + end]) {
                    if p.len() >= 4 && !out.contains(&p.to_string()) {
                        out.push(p.to_string());
                    }
                }
            }
        }
    }
    out
}

#[test]
fn passwords_never_reach_any_output() {
    let mut files = vec![common::default_capture()];
    if let Some(dir) = common::corpus() {
        for f in [
            "zeek/ftp_bruteforce.pcap",
            "zeek/ftp_ipv4.pcap",
            "zeek/ftp_password_pass_command.pcap",
            "ndpi/ftp.pcap",
            "ndpi/ftp_failed.pcap",
        ] {
            files.push(dir.join(f));
        }
    }
    let pws = passwords_in(&files);
    // Event records name their capture file: give the inputs names no password can be part of.
    let files: Vec<PathBuf> = files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let copy = tmp(&format!("in{i}.pcap"));
            std::fs::copy(f, &copy).unwrap();
            copy
        })
        .collect();
    assert!(
        pws.iter().any(|p| p == "Sw0rdfish-lab-7Q"),
        "lab password not found in the capture: {pws:?}"
    );
    for extra in [&["--log-usernames"][..], &[][..]] {
        let ev = tmp("ev.ndjson");
        let _ = std::fs::remove_file(&ev);
        let mut args: Vec<String> = vec![
            "read".into(),
            "--events".into(),
            ev.to_str().unwrap().into(),
            "--metrics-out".into(),
            "-".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(files.iter().map(|f| f.to_str().unwrap().to_string()));
        let out = spanwatch().args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let events = std::fs::read_to_string(&ev).unwrap();
        assert!(events.lines().count() >= 6, "{events}");
        for line in events.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            if v["event"]["action"] == "ftp-cleartext-login" {
                assert!(
                    v["source"]["ip"].is_string() && v["destination"]["port"].is_u64(),
                    "{line}"
                );
                if extra.is_empty() {
                    assert!(
                        v["user"].get("name").is_none() && v["user"]["hash"].is_string(),
                        "{line}"
                    );
                } else {
                    assert!(v["user"]["name"].is_string(), "{line}");
                }
            }
        }
        let all = format!(
            "{events}{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for p in &pws {
            assert!(!all.contains(p.as_str()), "password {p:?} leaked");
        }
    }
}

#[test]
fn config_check_accepts_good_files_and_names_the_bad_line() {
    let bin = env!("CARGO_BIN_EXE_spanwatch");
    let good = common::tmp("cli", "good.toml");
    std::fs::write(&good, "workers = 2\nlink-speed = \"1G\"\niface = \"lo\"\n").unwrap();
    let out = Command::new(bin)
        .args(["config", "check"])
        .arg(&good)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let v: toml::Table = text.parse().unwrap();
    // /metrics binds to loopback unless told otherwise, and read serves nothing by default.
    assert_eq!(v["live"]["listen"].as_str(), Some("127.0.0.1:9890"));
    assert_eq!(v["read"]["listen"].as_str(), Some("off"));
    assert_eq!(
        v["live"]["link-speed-bps"].as_integer(),
        Some(1_000_000_000)
    );
    assert_eq!(v["live"]["workers"].as_integer(), Some(2));
    for (body, want) in [
        ("workers = 2\nbogus = 1\n", "line 2: unknown field `bogus`"),
        ("workers = \"two\"\n", "line 1: invalid type"),
        ("link-speed = \"fast\"\n", "--link-speed fast"),
        ("syslog = \"smtp://x:1\"\n", "--syslog"),
        ("iface = \"lo\"\nring-size = 1000\n", "--ring-size 1000"),
    ] {
        let bad = common::tmp("cli", "bad.toml");
        std::fs::write(&bad, body).unwrap();
        let out = Command::new(bin)
            .args(["config", "check"])
            .arg(&bad)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{body}: {err}");
        assert!(
            err.contains(want) && err.lines().count() == 1,
            "{body}: {err}"
        );
    }
}

#[test]
fn live_without_an_interface_is_one_line_exit_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_spanwatch"))
        .args(["live", "--listen", "off"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--iface") && err.lines().count() == 1, "{err}");
}
