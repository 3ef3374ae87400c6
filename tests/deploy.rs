//! What `deploy/` ships, checked with the real tools: the alert rules with `promtool check rules`
//! and `promtool test rules`; every alert and dashboard query naming only metrics spanwatch
//! exports; the Grafana dashboard against Grafana's published schema (@grafana/schema, through
//! tests/node); the systemd unit with `systemd-analyze verify`; the Kubernetes manifests against
//! the Kubernetes OpenAPI schemas (kubernetes-validate). The live scrape by a real Prometheus
//! server is in the lab (tests/lab/run-test.sh). A tool that is missing skips its test with a notice.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

use common::{have, run};

#[test]
fn alert_rules_pass_promtool() {
    if !have("promtool") {
        eprintln!("NOTICE: promtool missing (Debian package prometheus): rule tests skipped");
        return;
    }
    let dir = root().join("deploy/prometheus");
    let (out, text) = run(Command::new("promtool")
        .args(["check", "rules", "spanwatch.rules.yml"])
        .current_dir(&dir));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("SUCCESS: 12 rules found"), "{text}");
    let (out, text) = run(Command::new("promtool")
        .args(["test", "rules", "spanwatch.rules.test.yml"])
        .current_dir(&dir));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("SUCCESS"), "{text}");
}

/// Metric names in a Prometheus text exposition, with a histogram's `_bucket`, `_sum`, `_count`.
fn exported_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            let (name, kind) = (it.next().unwrap(), it.next().unwrap());
            names.insert(name.to_string());
            if kind == "histogram" {
                for s in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{s}"));
                }
            }
        }
    }
    names
}

#[test]
fn every_alert_and_dashboard_query_names_exported_metrics() {
    let exposition = Command::new(env!("CARGO_BIN_EXE_spanwatch"))
        .args(["read", "--metrics-out", "-"])
        .output()
        .unwrap();
    assert!(exposition.status.success());
    let exported = exported_names(&String::from_utf8_lossy(&exposition.stdout));
    assert!(exported.contains("spanwatch_ftp_logins_total"));
    let (out, text) = run(Command::new("python3")
        .arg(root().join("tests/deploy/queries.py"))
        .arg("list"));
    assert!(out.status.success(), "{text}");
    let queries: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let queries = queries.as_array().unwrap();
    let from = |f: &str| queries.iter().filter(|q| q["from"] == f).count();
    assert_eq!(from("rules"), 12);
    assert!(from("dashboard") >= 20, "{}", from("dashboard"));
    let mut unknown = Vec::new();
    for q in queries {
        let sels = q["selectors"].as_array().unwrap();
        assert!(!sels.is_empty(), "no metric found in {q}");
        for s in sels {
            let s = s.as_str().unwrap();
            // `up` is Prometheus's own, for the sensor-down alert.
            let prometheus_own = s == "up" && q["from"] == "rules";
            if !exported.contains(s) && !prometheus_own {
                unknown.push(format!("{}: {}: {s}", q["from"], q["name"]));
            }
        }
    }
    assert!(unknown.is_empty(), "not exported: {unknown:#?}");
    // The dashboard covers what the issue asks for.
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("deploy/grafana/spanwatch.json")).unwrap(),
    )
    .unwrap();
    let all = dash.to_string();
    for m in [
        "spanwatch_sessions_total",
        "spanwatch_ftp_logins_total",
        "spanwatch_tls_resumed_total",
        "spanwatch_http_requests_total",
        "spanwatch_bfd_state_changes_total",
        "spanwatch_timestamp_negative_deltas_total",
        "spanwatch_packet_interarrival_seconds_bucket",
        "spanwatch_capture_dropped_total",
        "spanwatch_flows_active",
        "spanwatch_flows_evicted_total",
    ] {
        assert!(all.contains(m), "dashboard lacks {m}");
    }
    assert!(all.contains("\"heatmap\""));
    let vars: Vec<&str> = dash["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(vars, ["datasource", "instance"]);
}

#[test]
fn dashboard_matches_grafana_schema() {
    let Some(dir) = common::node_tools() else {
        return;
    };
    let (out, text) = run(Command::new("node")
        .arg(dir.join("dashboard-schema.mjs"))
        .arg(root().join("deploy/grafana/spanwatch.json")));
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("valid against @grafana/schema Dashboard"),
        "{text}"
    );
    // The check has teeth: a panel with a key the schema does not know fails.
    let bad = common::tmp("deploy", "bad-dashboard.json");
    let mut dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("deploy/grafana/spanwatch.json")).unwrap(),
    )
    .unwrap();
    dash["panels"][1]["datasourse"] = serde_json::json!("typo");
    std::fs::write(&bad, dash.to_string()).unwrap();
    let (out, text) = run(Command::new("node")
        .arg(dir.join("dashboard-schema.mjs"))
        .arg(&bad));
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("datasourse"), "{text}");
}
