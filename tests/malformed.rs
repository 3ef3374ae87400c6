//! Hostile capture files: every one ends in exit 0 with the damage counted and reported, or exit 2
//! with one line naming the file and the reason — never a panic, never an allocation sized by a
//! field of the file.

mod common;

use std::path::PathBuf;
use std::process::Command;

fn tmp(name: &str) -> PathBuf {
    common::tmp("bad", name)
}

fn pcap_header(snaplen: u32) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend(0xa1b2_c3d4u32.to_le_bytes());
    v.extend(2u16.to_le_bytes());
    v.extend(4u16.to_le_bytes());
    v.extend(0i32.to_le_bytes());
    v.extend(0u32.to_le_bytes());
    v.extend(snaplen.to_le_bytes());
    v.extend(1u32.to_le_bytes());
    v
}

fn record(ts: u32, caplen: u32, origlen: u32, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend(ts.to_le_bytes());
    v.extend(0u32.to_le_bytes());
    v.extend(caplen.to_le_bytes());
    v.extend(origlen.to_le_bytes());
    v.extend(data);
    v
}

fn shb() -> Vec<u8> {
    let mut v = Vec::new();
    v.extend(0x0A0D_0D0Au32.to_le_bytes());
    v.extend(28u32.to_le_bytes());
    v.extend(0x1A2B_3C4Du32.to_le_bytes());
    v.extend(1u16.to_le_bytes());
    v.extend(0u16.to_le_bytes());
    v.extend((-1i64).to_le_bytes());
    v.extend(28u32.to_le_bytes());
    v
}

fn block(t: u32, body: &[u8], len_override: Option<u32>) -> Vec<u8> {
    let len = len_override.unwrap_or(12 + body.len() as u32);
    let mut v = Vec::new();
    v.extend(t.to_le_bytes());
    v.extend(len.to_le_bytes());
    v.extend(body);
    v.extend(len.to_le_bytes());
    v
}

fn idb() -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(1u16.to_le_bytes());
    b.extend(0u16.to_le_bytes());
    b.extend(65535u32.to_le_bytes());
    block(1, &b, None)
}

fn run(bytes: &[u8], name: &str) -> (Option<i32>, String) {
    let p = tmp(name);
    std::fs::write(&p, bytes).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_spanwatch"))
        .args(["read", "--format", "json"])
        .arg(&p)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!err.contains("panicked"), "{name}: {err}");
    (
        out.status.code(),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), err),
    )
}

#[test]
fn hostile_captures_are_counted_or_refused_never_a_panic() {
    let frame: Vec<u8> = (0..60u8).collect();
    // caplen far beyond the snaplen and the data: a truncated record, counted.
    let mut f = pcap_header(65535);
    f.extend(record(1, 0x7fff_fff0, 60, &frame));
    let (code, out) = run(&f, "huge-caplen.pcap");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("truncated"), "{out}");
    // caplen larger than the snaplen but present: read as it is.
    let mut f = pcap_header(40);
    f.extend(record(1, 60, 60, &frame));
    assert_eq!(run(&f, "over-snaplen.pcap").0, Some(0));
    // Zero-length packets: taken in, nothing to decode.
    let mut f = pcap_header(65535);
    for i in 0..3 {
        f.extend(record(i, 0, 0, &[]));
    }
    let (code, out) = run(&f, "zero-length.pcap");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("\"packets\": 3"), "{out}");
    // Garbage after a good record.
    let mut f = pcap_header(65535);
    f.extend(record(1, 60, 60, &frame));
    f.extend([0xff; 9]);
    assert_eq!(run(&f, "trailing-garbage.pcap").0, Some(0));
    // pcapng with an unknown block type between good ones: skipped.
    let mut f = shb();
    f.extend(idb());
    f.extend(block(0x0BAD_0BAD, &[1, 2, 3, 4], None));
    let (code, out) = run(&f, "unknown-block.pcapng");
    assert_eq!(code, Some(0), "{out}");
    // pcapng with a block length that is not a multiple of 4, or absurdly large.
    for (name, len) in [
        ("odd-length.pcapng", 13u32),
        ("huge-length.pcapng", 0xffff_fff0),
    ] {
        let mut f = shb();
        f.extend(idb());
        f.extend(block(6, &[0; 20], Some(len)));
        let (code, out) = run(&f, name);
        assert!(matches!(code, Some(0) | Some(2)), "{name}: {out}");
        assert!(
            !out.contains("[0, 0"),
            "{name}: file bytes in the message: {out}"
        );
        if code == Some(2) {
            assert_eq!(out.trim().lines().count(), 1, "{name}: {out}");
        }
    }
    // An enhanced packet block naming an interface that was never described.
    let mut f = shb();
    let mut epb = Vec::new();
    epb.extend(7u32.to_le_bytes());
    epb.extend([0u8; 8]);
    epb.extend(60u32.to_le_bytes());
    epb.extend(60u32.to_le_bytes());
    epb.extend(&frame);
    f.extend(block(6, &epb, None));
    assert_eq!(run(&f, "no-interface.pcapng").0, Some(0));
    // Only a header; only half a header.
    assert_eq!(run(&pcap_header(65535), "header-only.pcap").0, Some(0));
    let (code, out) = run(&pcap_header(65535)[..10], "half-header.pcap");
    assert_eq!(code, Some(2), "{out}");
}
