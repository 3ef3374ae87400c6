//! TLS and OCSP against Zeek's baselines in the shared corpus, file by file: ssl.log rows are TLS
//! connections (and their `resumed` column), ocsp.log rows are OCSP exchanges over HTTP, and the
//! stapling baseline's OCSP result is a stapled CertificateStatus. Skips where the corpus is absent.

mod common;

use metrics::{slot, HttpKind, Proto, ResumeMethod};

fn rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

fn column(text: &str, name: &str) -> Option<usize> {
    let fields = text.lines().find_map(|l| l.strip_prefix("#fields\t"))?;
    fields.split('\t').position(|f| f == name)
}

#[test]
fn tls_and_ocsp_match_zeek() {
    let Some(dir) = common::corpus() else { return };
    let z = dir.join("zeek");
    let mut checked = 0;
    for entry in std::fs::read_dir(&z).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.ends_with(".zeek-ssl.log") && !name.ends_with(".zeek-ocsp.log") {
            continue;
        }
        let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        if let Some(pcap) = name.strip_suffix(".zeek-ssl.log") {
            let c = common::analyze(&[z.join(pcap)], 1);
            let r = rows(&text);
            let tls =
                c.get(slot::sessions(Proto::Tls, false)) + c.get(slot::sessions(Proto::Tls, true));
            assert_eq!(tls as usize, r.len(), "{pcap}: TLS connections");
            let i = column(&text, "resumed").unwrap();
            let resumed = r.iter().filter(|row| row[i] == "T").count() as u64;
            let ours: u64 = ResumeMethod::ALL
                .iter()
                .map(|m| c.get(slot::tls_resumed(*m)))
                .sum();
            assert_eq!(ours, resumed, "{pcap}: resumed");
            checked += 1;
        }
        if let Some(pcap) = name.strip_suffix(".zeek-ocsp.log") {
            let c = common::analyze(&[z.join(pcap)], 1);
            assert_eq!(
                c.get(slot::http_request(HttpKind::Ocsp)) as usize,
                rows(&text).len(),
                "{pcap}: OCSP over HTTP"
            );
            checked += 1;
        }
    }
    // Zeek prints the stapled response's validation result for tls_ocsp_stapling.
    let stdout = std::fs::read_to_string(z.join("tls_ocsp_stapling.pcap.zeek-stdout")).unwrap();
    assert!(stdout.contains("result=1"));
    let c = common::analyze(&[z.join("tls_ocsp_stapling.pcap")], 1);
    assert_eq!(c.get(slot::OCSP_STAPLED), 1);
    assert!(checked >= 3, "only {checked} baselines found");
}
