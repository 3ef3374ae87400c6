//! The shared corpus of real captures against tshark's ground truth (GROUND_TRUTH.tsv), column by
//! column where spanwatch's definitions and tshark's agree. Where they differ on purpose (content
//! instead of ports, OCSP GET requests tshark does not dissect), the expected value is spanwatch's
//! and the reason is written beside it. Skips with a notice where ../shared/corpus is absent.

mod common;

use metrics::{slot, Counters, HttpKind, LoginOutcome, Proto, ResumeMethod, Source};
use std::collections::HashMap;

fn sessions(c: &Counters, p: Proto) -> u64 {
    c.get(slot::sessions(p, false)) + c.get(slot::sessions(p, true))
}

/// spanwatch's value for a ground-truth column, where the two are meant to agree.
fn ours(c: &Counters, column: &str) -> Option<u64> {
    Some(match column {
        "packets" => c.get(slot::packets(Source::Pcap)),
        "tls_handshakes" => c.get(slot::TLS_HANDSHAKES),
        "tls_resumed" => ResumeMethod::ALL
            .iter()
            .map(|m| c.get(slot::tls_resumed(*m)))
            .sum(),
        "tls_certificate_status" => c.get(slot::OCSP_STAPLED),
        "http_requests" => HttpKind::ALL
            .iter()
            .map(|k| c.get(slot::http_request(*k)))
            .sum(),
        "ocsp_http_requests" => c.get(slot::http_request(HttpKind::Ocsp)),
        "acme_challenges" => c.get(slot::http_request(HttpKind::AcmeHttp01)),
        "hkp_requests" => c.get(slot::http_request(HttpKind::Hkp)),
        "ssh_streams" => sessions(c, Proto::Ssh),
        "negative_delta_times" => c.get(slot::ts_negative(Source::Pcap)),
        "ftp_control_sessions" => sessions(c, Proto::Ftp) + sessions(c, Proto::Ftps),
        "ftps_sessions" => sessions(c, Proto::Ftps),
        "ftp_data_conns_announced" => sessions(c, Proto::FtpData),
        "ftp_pass_commands" => LoginOutcome::ALL
            .iter()
            .map(|o| c.get(slot::ftp_login(*o)))
            .sum(),
        "ftp_ipv6_control_sessions" => {
            c.get(slot::sessions(Proto::Ftp, true)) + c.get(slot::sessions(Proto::Ftps, true))
        }
        "bfd_echo_packets" => c.get(slot::BFD_ECHO),
        "bfd_control_packets" => c.get(slot::protocol_packets(Proto::Bfd)) - c.get(slot::BFD_ECHO),
        "mdns_packets" => c.get(slot::protocol_packets(Proto::Mdns)),
        "dns_packets" => c.get(slot::protocol_packets(Proto::Dns)),
        "ospf_packets" => metrics::OspfType::ALL
            .iter()
            .map(|t| c.get(slot::ospf_packets(false, *t)) + c.get(slot::ospf_packets(true, *t)))
            .sum(),
        _ => return None,
    })
}

/// Where spanwatch is right and tshark 4.0 is not: (file, column, spanwatch's value, why).
const DELIBERATE: &[(&str, &str, u64, &str)] = &[
    ("ndpi/ssh.pcap", "ssh_streams", 2, "the second SSH connection runs on port 8000: tshark goes by port, nDPI agrees with us"),
    ("ndpi/ocsp.pcapng", "ocsp_http_requests", 18, "3 OCSP requests are GETs (RFC 6960 A.1) that tshark does not dissect as OCSP"),
    ("zeek/tls_ocsp_http_get.pcap", "ocsp_http_requests", 1, "an OCSP GET; Zeek's ocsp.log has it, tshark does not dissect GETs"),
    ("ndpi/fuzz-2006-06-26-2594.pcap", "ftp_control_sessions", 3, "a fuzzed capture: 8 of tshark's 11 port-21 'FTP' streams are single packets with a mutated address, a lone reply or fragment only the port calls FTP"),
    ("ndpi/fuzz-2006-06-26-2594.pcap", "ftp_pass_commands", 0, "its one PASS is a lone packet with no USER before it: no login by DESIGN.md's definition"),
    ("ultimate_pcap/The_Ultimate_PCAP_v20200224.pcapng", "http_requests", 96, "28 UPnP requests by RFC 9112 (Zeek logs any method): 12 SSDP NOTIFY over UDP and 16 GENA SUBSCRIBE/NOTIFY over TCP; tshark 4.0 sets http.request only for methods it knows"),
    ("ultimate_pcap/The_Ultimate_PCAP_v20200224.pcapng", "dns_packets", 1131, "9 DNS-over-TCP messages span two segments: spanwatch counts payload packets (125 over TCP), tshark reassembled PDUs (116)"),
    ("ndpi/fuzz-2006-06-26-2594.pcap", "dns_packets", 231, "tshark labels malformed port-53 datagrams DNS; spanwatch requires a DNS message"),
    ("ndpi/fuzz-2006-06-26-2594.pcap", "dns_streams", 113, "a fuzzed capture: tshark labels port-53 datagrams DNS even when malformed (78 malformed DNS frames); spanwatch requires a DNS message"),
];

const COLUMNS: &[&str] = &[
    "packets",
    "tls_handshakes",
    "tls_resumed",
    "tls_certificate_status",
    "http_requests",
    "ocsp_http_requests",
    "acme_challenges",
    "hkp_requests",
    "ssh_streams",
    "negative_delta_times",
    "ftp_control_sessions",
    "ftps_sessions",
    "ftp_data_conns_announced",
    "ftp_pass_commands",
    "ftp_ipv6_control_sessions",
    "bfd_echo_packets",
    "bfd_control_packets",
    "mdns_packets",
    "dns_packets",
    "ospf_packets",
];

#[test]
fn corpus_matches_ground_truth() {
    let Some(dir) = common::corpus() else { return };
    let deliberate: HashMap<(&str, &str), u64> = DELIBERATE
        .iter()
        .map(|(f, c, v, _)| ((*f, *c), *v))
        .collect();
    let mut failures = Vec::new();
    let rows = common::ground_truth(&dir);
    assert!(rows.len() >= 50, "ground truth has {} rows", rows.len());
    for (file, row) in rows {
        let c = common::analyze(&[dir.join(&file)], 1);
        for col in COLUMNS {
            let want: u64 = match deliberate.get(&(file.as_str(), *col)) {
                Some(v) => *v,
                None => row[*col].parse().expect("numeric column"),
            };
            let got = ours(&c, col).expect("known column");
            if got != want {
                failures.push(format!("{file}: {col} = {got}, expected {want}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Sessions per protocol against the streams tshark dissects as that protocol
/// (tests/data/corpus-streams.tsv, made by tests/corpus-streams.sh).
#[test]
fn sessions_match_tshark_stream_counts() {
    let Some(dir) = common::corpus() else { return };
    let deliberate: HashMap<(&str, &str), u64> = DELIBERATE
        .iter()
        .map(|(f, c, v, _)| ((*f, *c), *v))
        .collect();
    let table = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/corpus-streams.tsv"),
    )
    .unwrap();
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let mut failures = Vec::new();
    let mut n = 0;
    for line in lines {
        let cells: Vec<&str> = line.split('\t').collect();
        let file = cells[0];
        let c = common::analyze(&[dir.join(file)], 1);
        n += 1;
        for (col, proto) in [
            ("dns_streams", Proto::Dns),
            ("http_streams", Proto::Http),
            ("tls_streams", Proto::Tls),
            ("ssh_streams", Proto::Ssh),
        ] {
            let i = header.iter().position(|h| *h == col).unwrap();
            let want = deliberate
                .get(&(file, col))
                .copied()
                .unwrap_or_else(|| cells[i].parse().unwrap());
            let got = sessions(&c, proto);
            if got != want {
                failures.push(format!(
                    "{file}: {col}: tshark {} spanwatch {got}",
                    cells[i]
                ));
            }
        }
    }
    assert!(n >= 50, "table has {n} rows");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn one_and_two_workers_agree_on_every_file() {
    let Some(dir) = common::corpus() else { return };
    for (file, _) in common::ground_truth(&dir) {
        let one = common::analyze(&[dir.join(&file)], 1);
        let two = common::analyze(&[dir.join(&file)], 2);
        let diff: Vec<usize> = (0..slot::TOTAL)
            .filter(|&i| one.get(i) != two.get(i))
            .collect();
        assert!(
            diff.is_empty(),
            "{file}: slots {diff:?} differ between 1 and 2 workers"
        );
    }
}

#[test]
fn every_file_reads_with_all_packets() {
    let Some(dir) = common::corpus() else { return };
    for (file, row) in common::ground_truth(&dir) {
        let c = common::analyze(&[dir.join(&file)], 2);
        assert_eq!(
            c.get(slot::packets(Source::Pcap)).to_string(),
            row["packets"],
            "{file}"
        );
    }
}
