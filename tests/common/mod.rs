//! Helpers shared by the end-to-end tests: where the shared corpus is, and running the pipeline
//! in-process on a file.

#![allow(dead_code)]

use analyzer::pipeline::{self, Options};
use analyzer::protocols::Config;
use metrics::{Counters, Hub};
use std::path::{Path, PathBuf};

/// `../shared/corpus`, or None (with a notice) where it is absent.
pub fn corpus() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    if p.join("GROUND_TRUTH.tsv").is_file() {
        Some(p)
    } else {
        eprintln!("NOTICE: {} is absent: corpus tests skipped", p.display());
        None
    }
}

pub fn default_capture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/lab-default.pcap")
}

/// Runs the offline pipeline on `files` with `workers` workers; returns the merged counters.
pub fn analyze(files: &[PathBuf], workers: usize) -> Counters {
    analyze_with(files, workers, 1_000_000, 10_000_000_000)
}

pub fn analyze_with(
    files: &[PathBuf],
    workers: usize,
    max_flows: usize,
    link_bps: u64,
) -> Counters {
    analyze_reader(files, workers, max_flows, link_bps, false).0
}

/// As `analyze_with`, choosing the reader; also returns what the reader learnt of each file.
pub fn analyze_reader(
    files: &[PathBuf],
    workers: usize,
    max_flows: usize,
    link_bps: u64,
    sequential: bool,
) -> (Counters, pipeline::Report) {
    let opened = pipeline::open_all(files).expect("capture opens");
    // As the binary does: the workers' flow slabs mapped ahead by the prefault thread.
    analyzer::prefault::install(xdp::prefault::populate_write);
    let hub = Hub::new();
    let opts = Options {
        workers,
        link_bps,
        max_flows,
        cfg: Config::default(),
        events: metrics::events::EventSink::disabled(),
        hub: hub.clone(),
        timeline: None,
        sequential,
    };
    let report = pipeline::run(opened, opts, &|_| {});
    (hub.snapshot(), report)
}

/// GROUND_TRUTH.tsv as (file, column → value) rows.
pub fn ground_truth(corpus: &Path) -> Vec<(String, std::collections::HashMap<String, String>)> {
    let text = std::fs::read_to_string(corpus.join("GROUND_TRUTH.tsv")).expect("ground truth");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split('\t').collect();
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let cells: Vec<&str> = l.split('\t').collect();
            let row = header
                .iter()
                .zip(cells.iter())
                .map(|(h, c)| (h.to_string(), c.to_string()))
                .collect();
            (cells[0].to_string(), row)
        })
        .collect()
}

/// A scratch file for one test suite, in a directory of this process's own.
pub fn tmp(suite: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("spanwatch-{suite}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

/// Whether this process runs as root (the namespace tests need it).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// Runs `spanwatch ARGS…`, asserts it succeeded (showing its stderr if not), returns its output.
pub fn spanwatch_ok<I, S>(args: I) -> std::process::Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    spanwatch_ok_env(&[], args)
}

/// `spanwatch_ok` with these environment variables set.
pub fn spanwatch_ok_env<I, S>(vars: &[(&str, &str)], args: I) -> std::process::Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_spanwatch"))
        .envs(vars.iter().copied())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `spanwatch read --format json ARGS…`, asserts success, returns the summary.
pub fn read_json(args: &[&std::ffi::OsStr]) -> serde_json::Value {
    let mut all: Vec<&std::ffi::OsStr> =
        vec!["read".as_ref(), "--format".as_ref(), "json".as_ref()];
    all.extend_from_slice(args);
    serde_json::from_slice(&spanwatch_ok(all).stdout).unwrap()
}

/// Whether a command is on PATH.
pub fn have(cmd: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs a command; its output and its stdout+stderr as text.
pub fn run(cmd: &mut std::process::Command) -> (std::process::Output, String) {
    let out = cmd.output().expect("command starts");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

/// tests/node with its packages installed (`npm ci` once, from package-lock.json); None with a
/// notice where node or npm is missing.
pub fn node_tools() -> Option<PathBuf> {
    static READY: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    READY
        .get_or_init(|| {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node");
            if !have("node") || !have("npm") {
                eprintln!("NOTICE: node/npm missing: tests/node checks skipped");
                return None;
            }
            if !dir.join("node_modules/.package-lock.json").is_file() {
                let (out, text) = run(std::process::Command::new("npm")
                    .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                    .current_dir(&dir));
                assert!(out.status.success(), "npm ci in tests/node failed:\n{text}");
            }
            Some(dir)
        })
        .clone()
}

/// A virtual environment with tests/deploy/requirements.txt installed (hadolint, kubernetes-validate),
/// made once under target/; None with a notice where python3's venv is missing.
pub fn py_tools() -> Option<PathBuf> {
    static READY: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    READY
        .get_or_init(|| {
            let root = Path::new(env!("CARGO_MANIFEST_DIR"));
            let venv = root.join("target/pytools");
            let req = root.join("tests/deploy/requirements.txt");
            let stamp = venv.join("installed.txt");
            let want = std::fs::read_to_string(&req).unwrap();
            if std::fs::read_to_string(&stamp).ok().as_deref() != Some(want.as_str()) {
                let (out, text) = run(std::process::Command::new("python3")
                    .args(["-m", "venv", "--clear"])
                    .arg(&venv));
                if !out.status.success() {
                    eprintln!("NOTICE: python3 -m venv failed: deploy lint tests skipped\n{text}");
                    return None;
                }
                let (out, text) = run(std::process::Command::new(venv.join("bin/pip"))
                    .args(["install", "-q", "-r"])
                    .arg(&req));
                assert!(out.status.success(), "pip install failed:\n{text}");
                std::fs::write(&stamp, want).unwrap();
            }
            Some(venv.join("bin"))
        })
        .clone()
}
