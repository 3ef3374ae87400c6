//! Seeds for the fuzz targets from real captures: `seeds OUT_DIR CAPTURE...` writes, per target,
//! each flow of the captures re-encoded as the target's chunk format (direction + payload), and
//! the capture files themselves for `pcap_file` and `parallel_read`, and for `decode` the first
//! frames of each capture as they are and in the mirror tunnels. Run by fuzz/run.sh on the
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
        let mut frames = 0;
        f.for_each(
            |frame| {
                // The first frames of each capture seed `decode`, each also in the mirror tunnels.
                if frames < 4 && frame.link == analyzer::decode::link::ETHERNET {
                    frames += 1;
                    let dir = out.join("decode");
                    std::fs::create_dir_all(&dir).unwrap();
                    for (kind, bytes) in tunnelled(frame.data) {
                        let n = written_decode(&dir);
                        std::fs::write(dir.join(format!("{kind}-{n}")), bytes).unwrap();
                    }
                }
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

/// How many seeds `dir` holds (the next one's number).
fn written_decode(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

/// An Ethernet frame as it is, and inside ERSPAN type II, VXLAN and Geneve (IPv4 outer headers
/// from 198.18.9.1 to 198.18.9.2; checksums left 0).
fn tunnelled(frame: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let outer = |proto: u8, payload: &[u8]| {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00, 0x45, 0];
        f.extend(((20 + payload.len()) as u16).to_be_bytes());
        f.extend([0, 1, 0x40, 0, 64, proto, 0, 0, 198, 18, 9, 1, 198, 18, 9, 2]);
        f.extend(payload);
        f
    };
    let udp = |dport: u16, payload: &[u8]| {
        let mut u = vec![0xc0, 0x00];
        u.extend(dport.to_be_bytes());
        u.extend(((8 + payload.len()) as u16).to_be_bytes());
        u.extend([0, 0]);
        u.extend(payload);
        outer(17, &u)
    };
    let erspan2 = [
        &[0x10, 0, 0x88, 0xbe, 0, 0, 0, 1, 0x10, 0, 0, 5, 0, 0, 0, 0][..],
        frame,
    ]
    .concat();
    let vxlan = [&[0x08, 0, 0, 0, 0, 0, 42, 0][..], frame].concat();
    let geneve = [&[0, 0, 0x65, 0x58, 0, 0, 42, 0][..], frame].concat();
    vec![
        ("frame", frame.to_vec()),
        ("erspan2", outer(47, &erspan2)),
        ("vxlan", udp(4789, &vxlan)),
        ("geneve", udp(6081, &geneve)),
    ]
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
