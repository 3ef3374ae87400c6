//! `--syslog`: events reach a real rsyslogd (Debian's rsyslog) on loopback as RFC 5424, over UDP
//! and over TCP with octet counting, and rsyslog's own RFC 5424 parser recovers the MSGID, the
//! structured data and the JSON message. Skips with a notice where rsyslogd is missing.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Rsyslog {
    child: Child,
    out: PathBuf,
    udp: u16,
    tcp: u16,
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn rsyslog(name: &str) -> Option<Rsyslog> {
    let bin = ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let Some(bin) = bin else {
        eprintln!("NOTICE: rsyslogd missing (Debian package rsyslog): syslog test skipped");
        return None;
    };
    let dir = common::tmp("syslog", name);
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("received.tsv");
    let (udp, tcp) = (free_port(), free_port());
    // Only the network inputs: no /dev/log, no kernel log, nothing written outside `dir`.
    let conf = format!(
        r#"global(workDirectory="{d}")
module(load="imudp")
module(load="imtcp")
input(type="imudp" address="127.0.0.1" port="{udp}")
input(type="imtcp" address="127.0.0.1" port="{tcp}")
template(name="fields" type="string"
  string="%protocol-version%\t%app-name%\t%msgid%\t%syslogfacility-text%\t%syslogseverity-text%\t%structured-data%\t%msg%\n")
action(type="omfile" file="{out}" template="fields")
"#,
        d = dir.display(),
        out = out.display()
    );
    let conf_path = dir.join("rsyslog.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let child = Command::new(bin)
        .args(["-n", "-f"])
        .arg(&conf_path)
        .arg("-i")
        .arg(dir.join("rsyslog.pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let r = Rsyslog {
        child,
        out,
        udp,
        tcp,
    };
    // Ready when its TCP input accepts.
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", tcp)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "rsyslogd did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(r)
}

fn received(r: &Rsyslog, want: usize) -> Vec<Vec<String>> {
    let t0 = Instant::now();
    loop {
        let text = std::fs::read_to_string(&r.out).unwrap_or_default();
        let rows: Vec<Vec<String>> = text
            .lines()
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect();
        if rows.len() >= want || t0.elapsed() > Duration::from_secs(10) {
            return rows;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn events_reach_rsyslog_as_rfc5424_over_udp_and_tcp() {
    for (name, scheme) in [("udp", "udp"), ("tcp", "tcp")] {
        let Some(r) = rsyslog(name) else { return };
        let port = if scheme == "udp" { r.udp } else { r.tcp };
        let events = common::tmp("syslog", &format!("{name}.ndjson"));
        let target = format!("{scheme}://127.0.0.1:{port}");
        let capture = common::default_capture();
        let args: [&std::ffi::OsStr; 6] = [
            "read".as_ref(),
            "--syslog".as_ref(),
            target.as_ref(),
            "--events".as_ref(),
            events.as_ref(),
            capture.as_ref(),
        ];
        common::spanwatch_ok(args);
        let file: Vec<serde_json::Value> = std::fs::read_to_string(&events)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(file.len() >= 6);
        let rows = received(&r, file.len());
        assert_eq!(rows.len(), file.len(), "{scheme}: {rows:?}");
        let mut logins = 0;
        for (row, ev) in rows.iter().zip(&file) {
            assert_eq!(row.len(), 7, "{row:?}");
            // rsyslog parsed it as RFC 5424: version 1, our APP-NAME and MSGID.
            assert_eq!(row[0], "1", "{row:?}");
            assert_eq!(row[1], "spanwatch");
            assert_eq!(row[2], ev["event"]["action"].as_str().unwrap());
            assert_eq!(row[3], "daemon");
            assert!(row[5].starts_with("[spanwatch@32473 action=\""), "{row:?}");
            let msg = row[6].trim_start_matches('\u{feff}');
            let back: serde_json::Value = serde_json::from_str(msg).unwrap();
            assert_eq!(&back, ev, "the message is the event itself");
            if row[2] == "ftp-cleartext-login" {
                logins += 1;
                let want = if ev["event"]["outcome"] == "success" {
                    "crit"
                } else {
                    "warning"
                };
                assert_eq!(row[4], want, "{row:?}");
                assert!(row[5].contains(" src=\"") && row[5].contains(" user_hash=\""));
            }
        }
        assert_eq!(logins, 6, "{scheme}");
        let all = std::fs::read_to_string(&r.out).unwrap();
        assert!(!all.contains("Sw0rdfish-lab-7Q"));
    }
}

#[test]
fn a_collector_that_is_not_there_is_a_usage_error_for_tcp() {
    let port = free_port();
    let out = Command::new(env!("CARGO_BIN_EXE_spanwatch"))
        .args(["read", "--syslog", &format!("tcp://127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--syslog") && err.lines().count() == 1,
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_spanwatch"))
        .args(["read", "--syslog", "ftp://127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
