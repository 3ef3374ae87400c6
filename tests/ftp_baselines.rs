//! FTP against Zeek's ftp.log baselines (shared corpus): control connections, logins (a USER with
//! a PASS, Zeek's `password` column set) and, where Zeek logged the PASS command, its outcome by
//! the reply code. Also the brute-force capture seen as a user would: 30 rejected logins, each an
//! event from the same client, and one brute-force alert where Zeek raised FTP::Bruteforcing. Skips with a notice where ../shared/corpus is absent.

mod common;

use metrics::{slot, LoginOutcome, Proto};
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

struct Baseline {
    sessions: usize,
    logins: usize,
    outcomes: Option<(usize, usize)>,
}

fn zeek_ftp_log(text: &str) -> Baseline {
    let mut fields: Vec<String> = Vec::new();
    let mut uids = BTreeSet::new();
    let mut with_password = BTreeSet::new();
    let mut pass_codes: BTreeMap<String, u32> = BTreeMap::new();
    for line in text.lines() {
        if let Some(f) = line.strip_prefix("#fields\t") {
            fields = f.split('\t').map(str::to_string).collect();
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let cells: Vec<&str> = line.split('\t').collect();
        let col = |name: &str| {
            fields
                .iter()
                .position(|f| f == name)
                .map(|i| cells[i])
                .unwrap_or("-")
        };
        let uid = col("uid").to_string();
        uids.insert(uid.clone());
        if col("password") != "-" {
            with_password.insert(uid.clone());
        }
        if col("command") == "PASS" {
            if let Ok(code) = col("reply_code").parse() {
                pass_codes.insert(uid, code);
            }
        }
    }
    let outcomes = (!pass_codes.is_empty()).then(|| {
        let acc = pass_codes.values().filter(|c| **c / 100 == 2).count();
        let rej = pass_codes
            .values()
            .filter(|c| matches!(**c / 100, 4 | 5))
            .count();
        (acc, rej)
    });
    Baseline {
        sessions: uids.len(),
        logins: with_password.len(),
        outcomes,
    }
}

#[test]
fn ftp_matches_zeek_baselines() {
    let Some(dir) = common::corpus() else { return };
    let mut checked = 0;
    for entry in std::fs::read_dir(dir.join("zeek")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let Some(pcap) = name.strip_suffix(".zeek-ftp.log") else {
            continue;
        };
        let b = zeek_ftp_log(&std::fs::read_to_string(&path).unwrap());
        let c = common::analyze(&[dir.join("zeek").join(pcap)], 2);
        let sessions = [Proto::Ftp, Proto::Ftps]
            .iter()
            .map(|p| c.get(slot::sessions(*p, false)) + c.get(slot::sessions(*p, true)))
            .sum::<u64>() as usize;
        let login = |o| c.get(slot::ftp_login(o)) as usize;
        let logins = login(LoginOutcome::Accepted)
            + login(LoginOutcome::Rejected)
            + login(LoginOutcome::Unknown);
        assert_eq!(sessions, b.sessions, "{pcap}: control connections");
        assert_eq!(logins, b.logins, "{pcap}: logins");
        if let Some((acc, rej)) = b.outcomes {
            assert_eq!(
                (login(LoginOutcome::Accepted), login(LoginOutcome::Rejected)),
                (acc, rej),
                "{pcap}: outcomes"
            );
        }
        checked += 1;
    }
    assert!(checked >= 6, "only {checked} Zeek ftp.log baselines found");
}

#[test]
fn brute_force_shows_as_such() {
    let Some(dir) = common::corpus() else { return };
    let notice =
        std::fs::read_to_string(dir.join("zeek/ftp_bruteforce.pcap.zeek-notice.log")).unwrap();
    assert!(notice.contains("FTP::Bruteforcing"));
    let out = Command::new(env!("CARGO_BIN_EXE_spanwatch"))
        .args(["read", "--events", "-", "--log-usernames"])
        .arg(dir.join("zeek/ftp_bruteforce.pcap"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut by_client: BTreeMap<String, usize> = BTreeMap::new();
    let mut brute = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["event"]["action"] == "ftp-cleartext-login" {
            assert_eq!(v["event"]["outcome"], "failure", "{line}");
            assert_eq!(v["user"]["name"], "bro", "{line}");
            *by_client
                .entry(v["source"]["ip"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
        if v["event"]["action"] == "ftp-bruteforce" {
            brute.push(v["source"]["ip"].as_str().unwrap().to_string());
        }
    }
    // Zeek's notice: "192.168.56.1 had 20 failed logins on 1 FTP server"; one alert, same client.
    let zeek_notices = notice.matches("FTP::Bruteforcing").count();
    assert_eq!(brute.len(), zeek_notices);
    assert!(notice.contains(&format!("{} had 20 failed logins", brute[0])));
    assert_eq!(
        by_client.into_iter().collect::<Vec<_>>(),
        vec![("192.168.56.1".to_string(), 30)]
    );
}
