//! The lab (tests/lab/): real daemons (vsftpd plain and FTPS, python3 http.server, openssl
//! s_server/s_client, curl) in network namespaces, the client's link mirrored to two SPAN ports;
//! `spanwatch live` on one and tcpdump on the other, and into the kernel's VXLAN tunnels to two
//! remote SPAN ports, tcpdump on one and `spanwatch live` on the other. tests/lab/run-test.sh
//! asserts live metrics = the counts of construction = an offline read of tcpdump's file = an
//! offline read of the tunnel's capture = the live counts on the tunnel's port, and that the lab
//! password is in no output. A real Prometheus server scrapes
//! the live sensor meanwhile: every alert and dashboard expression returns data and the
//! cleartext-login alerts fire. Needs root and the daemons; skips with a notice otherwise.

mod common;

use common::have;

use std::process::Command;

#[test]
fn lab_live_equals_offline_equals_construction() {
    let root = common::is_root();
    let missing: Vec<&str> = ["vsftpd", "curl", "openssl", "tcpdump", "ip", "python3"]
        .into_iter()
        .filter(|c| !have(c))
        .collect();
    if !root || !missing.is_empty() {
        eprintln!("NOTICE: lab skipped (root: {root}, missing: {missing:?})");
        return;
    }
    let dir = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("bash")
        .arg(format!("{dir}/tests/lab/run-test.sh"))
        .arg(env!("CARGO_BIN_EXE_spanwatch"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "lab failed:\n{text}");
    assert!(
        text.contains("lab: live = offline = construction"),
        "{text}"
    );
    // The remote SPAN port (the kernel's VXLAN), unless the kernel has no VXLAN.
    if !text.contains("NOTICE: no VXLAN") {
        assert!(
            text.contains("lab: remote SPAN (VXLAN) = offline, read and live"),
            "{text}"
        );
    }
    if have("prometheus") {
        assert!(
            text.contains("alert and dashboard expressions return data; firing: SpanwatchCleartextFtpLogin, SpanwatchCleartextFtpLoginAccepted"),
            "{text}"
        );
    }
}
