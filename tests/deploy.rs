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

#[test]
fn systemd_unit_verifies_and_is_hardened() {
    if !have("systemd-analyze") {
        eprintln!("NOTICE: systemd-analyze missing: unit check skipped");
        return;
    }
    // verify needs ExecStart to exist: point it at the binary under test.
    let unit = std::fs::read_to_string(root().join("deploy/systemd/spanwatch.service")).unwrap();
    let unit = unit.replace("/usr/local/bin/spanwatch", env!("CARGO_BIN_EXE_spanwatch"));
    let dir = common::tmp("deploy", "unit");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("spanwatch.service");
    std::fs::write(&path, unit).unwrap();
    let (out, text) = run(Command::new("systemd-analyze").arg("verify").arg(&path));
    assert!(out.status.success(), "{text}");
    // Unknown keys are only warnings there: the unit must produce none.
    assert!(text.trim().is_empty(), "{text}");
    let (out, text) = run(Command::new("systemd-analyze")
        .args(["security", "--offline=yes"])
        .arg(&path));
    assert!(out.status.success(), "{text}");
    let level: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for spanwatch.service: ")
                .nth(1)
        })
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    assert!(level <= 3.5, "exposure {level}:\n{text}");
    // The example config the unit reads passes `spanwatch config check`.
    let (out, text) = run(Command::new(env!("CARGO_BIN_EXE_spanwatch"))
        .args(["config", "check"])
        .arg(root().join("deploy/spanwatch.toml")));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("user = \"spanwatch\""), "{text}");
}

#[test]
fn container_and_kubernetes_manifests_validate() {
    let Some(bin) = common::py_tools() else {
        return;
    };
    let (out, text) =
        run(Command::new(bin.join("hadolint")).arg(root().join("deploy/Containerfile")));
    assert!(out.status.success(), "hadolint:\n{text}");
    let (out, text) = run(Command::new(bin.join("kubernetes-validate"))
        .args(["--strict", "-k", "1.30"])
        .arg(root().join("deploy/kubernetes/spanwatch.yaml")));
    assert!(out.status.success(), "{text}");
    for kind in ["namespace", "configmap", "daemonset", "networkpolicy"] {
        assert!(
            text.contains(&format!("passed for resource {kind}/")),
            "{kind}: {text}"
        );
    }
    // The ConfigMap's spanwatch.toml is a config spanwatch accepts.
    let manifest =
        std::fs::read_to_string(root().join("deploy/kubernetes/spanwatch.yaml")).unwrap();
    let toml_part: String = manifest
        .split("spanwatch.toml: |\n")
        .nth(1)
        .unwrap()
        .lines()
        .take_while(|l| l.starts_with("    "))
        .map(|l| format!("{}\n", &l[4..]))
        .collect();
    let cfg = common::tmp("deploy", "k8s.toml");
    std::fs::write(&cfg, toml_part).unwrap();
    let (out, text) = run(Command::new(env!("CARGO_BIN_EXE_spanwatch"))
        .args(["config", "check"])
        .arg(&cfg));
    assert!(out.status.success(), "{text}");
    // PodMonitor and PrometheusRule against the prometheus-operator CRD schemas, and the
    // PrometheusRule holds exactly the rules Prometheus users load from the rules file.
    if let Some(node) = common::node_tools() {
        let (out, text) = run(Command::new("node")
            .arg(node.join("crd-validate.mjs"))
            .arg(root().join("deploy/kubernetes/podmonitor.yaml")));
        assert!(out.status.success(), "{text}");
        assert!(text.contains("checked 2, invalid 0"), "{text}");
    }
    let py = "import sys, yaml\n\
              rules = yaml.safe_load(open(sys.argv[1]))['groups']\n\
              docs = [d for d in yaml.safe_load_all(open(sys.argv[2])) if d['kind'] == 'PrometheusRule']\n\
              sys.exit(0 if docs[0]['spec']['groups'] == rules else 1)";
    let (out, text) = run(Command::new(bin.join("python3"))
        .args(["-c", py])
        .arg(root().join("deploy/prometheus/spanwatch.rules.yml"))
        .arg(root().join("deploy/kubernetes/podmonitor.yaml")));
    assert!(
        out.status.success(),
        "PrometheusRule differs from spanwatch.rules.yml: {text}"
    );
}
