//! Seeds for the fuzz targets from real captures: `seeds OUT_DIR CAPTURE...` writes, per target,
//! each flow of the captures re-encoded as the target's chunk format (direction + payload), and
//! the capture files themselves for `pcap_file` and `parallel_read`. Run by fuzz/run.sh on the
//! shared corpus and the lab capture; nothing it writes is committed.

use analyzer::decode::{decode, L4};
use analyzer::source::pcap::PcapFile;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn target_for(l4: L4, sport: u16, dport: u16) -> Option<(&'static str, Option<u8>)> {
    let port = sport.min(dport);
    Some(match (l4, port) {
        (L4::Tcp, 21) | (L4::Tcp, 2121) => ("ftp", None),
        (L4::Tcp, 443) | (L4::Tcp, 990) | (L4::Tcp, 8443) => ("tls", None),
        (L4::Tcp, 80) | (L4::Tcp, 8080) | (L4::Tcp, 11371) => ("http", None),
        (L4::Udp, 53) => ("dns", Some(0)),
        (L4::Udp, 5353) => ("dns", Some(1)),
        (L4::Tcp, 53) => ("dns", Some(2)),
        (L4::Udp, 3784) => ("bfd", Some(0)),
        (L4::Udp, 3785) => ("bfd", Some(1)),
        _ => return None,
    })
}

/// A target's selector byte (if it has one) and the flow's chunks, by (target, flow).
type Seed = (Option<u8>, Vec<u8>);

fn main() {
    let mut args = std::env::args_os().skip(1);
    let out = PathBuf::from(args.next().expect("usage: seeds OUT_DIR CAPTURE..."));
    let mut flows: HashMap<(&str, String), Seed> = HashMap::new();
    let mut n_files = 0;
    for cap in args {
        let path = Path::new(&cap);
        let Ok(mut f) = PcapFile::open(path) else {
            continue;
        };
        n_files += 1;
        if std::fs::metadata(path).map(|m| m.len()).unwrap_or(u64::MAX) <= 1 << 20 {
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            // Whole files seed the reader targets.
            for target in ["pcap_file", "parallel_read"] {
                let dir = out.join(target);
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::copy(path, dir.join(&name)).unwrap();
            }
        }
        let tag = path.display().to_string();
        f.for_each(
            |frame| {
                let Ok((d, payload)) = decode(frame.link, frame.data) else {
                    return;
                };
                if d.l4 == L4::OtherIp && d.proto == 89 {
                    let e = flows
                        .entry(("ospf", format!("{tag}:{:?}", d.src())))
                        .or_default();
                    push(&mut e.1, 0, payload);
                    return;
                }
                if payload.is_empty() {
                    return;
                }
                let Some((t, prefix)) = target_for(d.l4, d.sport(), d.dport()) else {
                    return;
                };
                let client_to_server = d.dport() <= d.sport();
                let (a, b) = if client_to_server {
                    ((d.src(), d.sport()), (d.dst(), d.dport()))
                } else {
                    ((d.dst(), d.dport()), (d.src(), d.sport()))
                };
                let e = flows
                    .entry((t, format!("{tag}:{a:?}:{b:?}")))
                    .or_insert((prefix, Vec::new()));
                push(&mut e.1, u8::from(!client_to_server), payload);
            },
            |_| {},
        );
    }
    let mut written = HashMap::<&str, usize>::new();
    for ((t, _), (prefix, body)) in flows {
        let dir = out.join(t);
        std::fs::create_dir_all(&dir).unwrap();
        let mut seed: Vec<u8> = prefix.into_iter().collect();
        seed.extend_from_slice(&body[..body.len().min(64 * 1024)]);
        let n = written.entry(t).or_default();
        *n += 1;
        std::fs::write(dir.join(format!("seed-{n}")), seed).unwrap();
    }
    eprintln!("seeds: {n_files} captures -> {written:?}");
}

/// One chunk per ≤255 payload bytes: control (direction), length, bytes.
fn push(out: &mut Vec<u8>, dir: u8, mut payload: &[u8]) {
    while !payload.is_empty() {
        let n = payload.len().min(255);
        out.extend_from_slice(&[dir, n as u8]);
        out.extend_from_slice(&payload[..n]);
        payload = &payload[n..];
    }
}
