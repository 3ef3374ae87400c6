//! `spanwatch read --report FILE.html`: the timeline behind the plots adds up to the final counters
//! on every corpus file, and the page opens in headless Chromium (Debian's chromium, driven by
//! playwright-core from tests/node) with no errors and no network request, showing its four plots.
//! The screenshot is left in the test's scratch directory (its path is printed).

mod common;

use analyzer::pipeline::{self, Options};
use analyzer::protocols::Config;
use analyzer::timeline::Collector;
use metrics::{slot, Hub, LoginOutcome, Proto, Source};
use std::path::Path;
use std::process::Command;

fn tracked() -> Vec<usize> {
    let mut v: Vec<usize> = Proto::ALL
        .iter()
        .flat_map(|p| [slot::sessions(*p, false), slot::sessions(*p, true)])
        .collect();
    v.extend(LoginOutcome::ALL.iter().map(|o| slot::ftp_login(*o)));
    v.push(slot::ts_negative(Source::Pcap));
    v.push(slot::ts_impossible(Source::Pcap));
    v.push(slot::packets(Source::Pcap));
    v
}

#[test]
fn timeline_adds_up_to_the_counters_on_every_capture() {
    let mut files = vec![common::default_capture()];
    if let Some(dir) = common::corpus() {
        for (name, _) in common::ground_truth(&dir) {
            files.push(dir.join(name));
        }
    }
    for f in &files {
        let hub = Hub::new();
        let col = Collector::new(tracked());
        let opts = Options {
            workers: 2,
            link_bps: 10_000_000_000,
            max_flows: 1_000_000,
            cfg: Config::default(),
            events: metrics::events::EventSink::disabled(),
            hub: hub.clone(),
            timeline: Some(col.clone()),
            sequential: false,
        };
        pipeline::run(
            pipeline::open_all(std::slice::from_ref(f)).unwrap(),
            opts,
            &|_| {},
        );
        let c = hub.snapshot();
        let t = col.merged();
        assert!(t.bins().count() <= analyzer::timeline::MAX_BINS);
        for (i, s) in tracked().into_iter().enumerate() {
            let sum: u64 = t.bins().map(|(_, v)| v[i]).sum();
            assert_eq!(sum, c.get(s), "{}: slot {s}", f.display());
        }
    }
}

/// Text content of the page between `<h2 id="ID">` and the next `<h2`.
fn section<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html.find(&format!("<h2 id=\"{id}\">")).expect(id);
    let rest = &html[start + 1..];
    &rest[..rest.find("<h2").unwrap_or(rest.len())]
}

fn report(files: &[&Path], name: &str) -> (String, std::path::PathBuf) {
    let page = common::tmp("report", name);
    let mut args: Vec<&std::ffi::OsStr> = vec!["read".as_ref(), "--report".as_ref(), page.as_ref()];
    args.extend(files.iter().map(|f| f.as_os_str()));
    common::spanwatch_ok(args);
    (std::fs::read_to_string(&page).unwrap(), page)
}

/// The same capture gives the same page, byte for byte, run after run and whichever reader
/// reads it (the page has no time of day or run time in it).
#[test]
fn report_page_is_the_same_every_run() {
    let lab = common::default_capture();
    let (first, _) = report(&[&lab], "again-0.html");
    for i in 1..4 {
        let (again, _) = report(&[&lab], &format!("again-{i}.html"));
        assert!(again == first, "run {i}: the page differs");
    }
    let page = common::tmp("report", "again-sequential.html");
    let out = Command::new(env!("CARGO_BIN_EXE_spanwatch"))
        .env("SPANWATCH_SEQUENTIAL_READ", "1")
        .args(["read", "--report"])
        .arg(&page)
        .arg(&lab)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        std::fs::read_to_string(&page).unwrap() == first,
        "the sequential reader's page differs"
    );
}

#[test]
fn report_page_has_the_counts_and_fetches_nothing() {
    let (html, _) = report(&[&common::default_capture()], "default.html");
    // The built-in capture: 5 accepted and 1 rejected cleartext login (tests/cli.rs has the rest).
    assert!(
        section(&html, "logins")
            .contains("6 USER+PASS pair(s) sent in clear text: 5 accepted, 1 rejected, 0 unknown"),
        "{html}"
    );
    assert!(section(&html, "sessions").contains("<td>ftp</td><td>4</td><td>2</td><td>6</td>"));
    for id in [
        "plot-sessions",
        "plot-logins",
        "plot-interarrival",
        "plot-anomalies",
    ] {
        assert!(html.contains(&format!("<figure id=\"{id}\"><svg")), "{id}");
    }
    // Self-contained: no script, no stylesheet or image from elsewhere.
    assert!(!html.contains("<script"));
    let without_ns = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    assert!(!without_ns.contains("http://") && !without_ns.contains("https://"));
    assert!(!html.contains("src="));
    // The lab password is not on the page.
    assert!(!html.contains("Sw0rdfish-lab-7Q"));
}

#[test]
fn report_page_renders_in_headless_chromium() {
    let Some(node) = common::node_tools() else {
        return;
    };
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        eprintln!("NOTICE: {chromium} missing (Debian package chromium): browser check skipped");
        return;
    }
    let mut cases: Vec<(Vec<std::path::PathBuf>, &str)> =
        vec![(vec![common::default_capture()], "lab-default")];
    if let Some(dir) = common::corpus() {
        // A capture with many timestamp anomalies: 66 negative deltas (tshark agrees).
        cases.push((
            vec![dir.join("suricata-verify/dnp3-too-long-reassembly-response.pcap")]
                .into_iter()
                .filter(|p| p.is_file())
                .collect(),
            "anomalies",
        ));
    }
    for (files, name) in cases {
        if files.is_empty() {
            continue;
        }
        let refs: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
        let (_, page) = report(&refs, &format!("{name}.html"));
        let shot = page.with_extension("png");
        let (out, text) = common::run(
            Command::new("node")
                .arg(node.join("report-check.mjs"))
                .arg(&page)
                .arg(&shot)
                .env("CHROMIUM", &chromium),
        );
        assert!(out.status.success(), "{text}");
        let v: serde_json::Value =
            serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap())
                .unwrap_or_else(|e| panic!("{e}: {text}"));
        assert_eq!(v["errors"], serde_json::json!([]), "{text}");
        assert_eq!(v["requests"], serde_json::json!([]), "{text}");
        assert_eq!(v["ok"], true);
        let plots = v["plots"].as_object().unwrap();
        for (id, caption) in [
            ("plot-sessions", "New sessions per protocol"),
            ("plot-logins", "Cleartext FTP logins by outcome"),
            ("plot-interarrival", "Packet inter-arrival time"),
            ("plot-anomalies", "Timestamp anomalies over capture time"),
        ] {
            let p = &plots[id];
            assert!(p["width"].as_u64().unwrap() >= 900, "{id}: {p}");
            assert!(p["height"].as_u64().unwrap() >= 300, "{id}: {p}");
            assert!(p["paths"].as_u64().unwrap() >= 10, "{id}: {p}");
            let texts = p["texts"].to_string();
            assert!(texts.contains(caption), "{id}: {texts}");
        }
        let legend = plots["plot-sessions"]["texts"].to_string();
        if name == "lab-default" {
            for proto in ["ftp", "ftp_data", "tls", "http", "mdns"] {
                assert!(legend.contains(&format!("\\n{proto}\\n")), "{legend}");
            }
        }
        let png = std::fs::read(&shot).unwrap();
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 50_000,
            "{}",
            shot.display()
        );
        eprintln!("report screenshot: {}", shot.display());
    }
}
