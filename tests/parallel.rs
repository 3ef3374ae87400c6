//! The parallel reader (libpcap and pcapng files) against the sequential one: the same counters,
//! the same per-file report and the same timestamp events, on every corpus capture, on several
//! files in one run, and on generated captures cut short or carrying a corrupt record, with one
//! and with several workers.

mod common;

use analyzer::source::pcap::PcapFile;
use metrics::Counters;
use spanwatch_bench::gen::{write, Options, Scenario};
use spanwatch_bench::ng::{to_pcapng, Layout};
use std::path::{Path, PathBuf};

/// Counters and report of both readers; panics naming the first differing counter.
fn same(files: &[PathBuf], workers: usize, what: &str) {
    let (a, ra) = common::analyze_reader(files, workers, 1_000_000, 10_000_000_000, true);
    let (b, rb) = common::analyze_reader(files, workers, 1_000_000, 10_000_000_000, false);
    let differ = |x: &Counters, y: &Counters| {
        x.as_slice()
            .iter()
            .zip(y.as_slice())
            .position(|(p, q)| p != q)
    };
    if let Some(i) = differ(&a, &b) {
        panic!(
            "{what}, {workers} workers: counter slot {i} is {} sequential, {} parallel",
            a.as_slice()[i],
            b.as_slice()[i]
        );
    }
    assert_eq!(
        format!("{:?}", ra.files),
        format!("{:?}", rb.files),
        "{what}, {workers} workers: file reports"
    );
}

/// `same` with each of `workers` in turn.
fn same_with(files: &[PathBuf], workers: &[usize], what: &str) {
    for &w in workers {
        same(files, w, what);
    }
}

/// `bytes` written to this suite's temporary file `name`.
fn written(name: &str, bytes: &[u8]) -> PathBuf {
    let p = common::tmp("parallel", name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn legacy(p: &Path) -> bool {
    PcapFile::open(p).is_ok_and(|f| f.legacy().is_some())
}

fn pcapng(p: &Path) -> bool {
    PcapFile::open(p).is_ok_and(|f| f.ng_plain().is_some())
}

/// The corpus captures the parallel reader reads (libpcap and uncompressed pcapng: all of them).
fn corpus_parallel() -> Option<Vec<PathBuf>> {
    let c = common::corpus()?;
    let mut v: Vec<PathBuf> = common::ground_truth(&c)
        .into_iter()
        .map(|(f, _)| c.join(f))
        .filter(|p| legacy(p) || pcapng(p))
        .collect();
    v.sort();
    Some(v)
}

#[test]
fn corpus_same_counts_as_sequential() {
    let Some(files) = corpus_parallel() else {
        return;
    };
    let ng = files.iter().filter(|p| pcapng(p)).count();
    assert!(files.len() >= 40, "{} captures", files.len());
    assert!(ng >= 9, "{ng} pcapng captures");
    for f in &files {
        same_with(std::slice::from_ref(f), &[1, 3], &f.display().to_string());
    }
    // Every capture in one run: timestamp checks start afresh per file, flows carry over.
    same(&files, 2, "the whole corpus in one run");
}

fn generated(name: &str, scenario: Scenario, packets: u64) -> (PathBuf, Vec<u8>) {
    let path = common::tmp("parallel", name);
    let mut buf = Vec::new();
    write(
        &Options {
            scenario,
            packets,
            seed: 3,
            ftp_login_at: None,
        },
        &mut buf,
    )
    .unwrap();
    std::fs::write(&path, &buf).unwrap();
    (path, buf)
}

#[test]
fn generated_whole_cut_and_corrupt() {
    // ~9 MB: many blocks, records straddling every block boundary.
    let (mix, bytes) = generated("mix.pcap", Scenario::Mix, 30_000);
    same_with(std::slice::from_ref(&mix), &[1, 2, 5], "mix");
    let (flood, _) = generated("flood.pcap", Scenario::UdpFlood, 20_000);
    same(&[mix.clone(), flood.clone(), mix.clone()], 3, "three files");

    // Cut inside a record header, inside a record's data, and at a record boundary; plain files
    // are read by position in parallel, gzip ones as a stream: both.
    for cut in [
        bytes.len() - 3,
        bytes.len() / 2 + 5,
        24 + 16 + 60,
        bytes.len(),
    ] {
        let p = written(&format!("cut-{cut}.pcap"), &bytes[..cut]);
        same(std::slice::from_ref(&p), 2, &format!("cut at {cut}"));
        let (o, err) = common::run(std::process::Command::new("gzip").args(["-kf"]).arg(&p));
        assert!(o.status.success(), "{err}");
        let gz = p.with_extension("pcap.gz");
        same(std::slice::from_ref(&gz), 2, &format!("gzip, cut at {cut}"));
    }

    // A record claiming 64 MiB in the middle: with less than the largest record (16 MiB) left
    // in the file it is a cut-off last record; with more, corrupt data where reading stops.
    let mut off = 24;
    for _ in 0..10_000 {
        let caplen = u32::from_be_bytes(bytes[off + 8..off + 12].try_into().unwrap());
        off += 16 + caplen as usize;
    }
    let mut bad = bytes.clone();
    bad[off + 8..off + 12].copy_from_slice(&(64u32 << 20).to_be_bytes());
    for (name, pad, corrupt) in [("short", 0, false), ("long", 17 << 20, true)] {
        let p = common::tmp("parallel", &format!("corrupt-{name}.pcap"));
        let mut b = bad.clone();
        b.resize(b.len() + pad, 0);
        std::fs::write(&p, &b).unwrap();
        same(
            std::slice::from_ref(&p),
            2,
            &format!("bad record, {name} file"),
        );
        let (_, r) = common::analyze_reader(&[p], 2, 1_000_000, 10_000_000_000, false);
        assert_eq!(r.files[0].frames, 10_000);
        assert_eq!(r.files[0].corrupt.is_some(), corrupt, "{name}");
        assert_eq!(r.files[0].truncated_records, u64::from(!corrupt), "{name}");
    }

    // The same short-file case after a record larger than the sequential reader's first buffer
    // (256 KiB), which has grown for it: still a cut-off last record for both readers (the
    // sequential one called it corrupt, doubling the bytes its buffer held rather than the
    // buffer; found by fuzzing the parallel reader on inputs repeated past three blocks).
    let mut b = bytes[..off].to_vec();
    let mut big = bytes[24..40].to_vec();
    big[8..16]
        .copy_from_slice(&[&300_000u32.to_be_bytes()[..], &300_000u32.to_be_bytes()[..]].concat());
    b.extend_from_slice(&big);
    b.resize(b.len() + 300_000, 0);
    b.extend_from_slice(&bad[off..off + 16]);
    b.resize(b.len() + 1000, 0);
    let p = written("corrupt-after-big.pcap", &b);
    same_with(
        std::slice::from_ref(&p),
        &[1, 3],
        "bad record after a big one",
    );
    let (_, r) = common::analyze_reader(&[p], 1, 1_000_000, 10_000_000_000, true);
    assert_eq!(r.files[0].frames, 10_001);
    assert_eq!(r.files[0].corrupt, None);
    assert_eq!(r.files[0].truncated_records, 1);
}

/// A little-endian libpcap capture (Ethernet) of `n` UDP datagrams, 100 a second, the `i`th
/// carrying `payload(i)`.
fn udp_capture(n: u32, payload: impl Fn(u32) -> Vec<u8>) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    b.extend_from_slice(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    b.extend_from_slice(&65535u32.to_le_bytes());
    b.extend_from_slice(&1u32.to_le_bytes());
    for i in 0..n {
        let payload = payload(i);
        let mut frame = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00];
        let total = (20 + 8 + payload.len()) as u16;
        frame.extend_from_slice(&[
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0x40,
            0,
            64,
            17,
        ]);
        frame.extend_from_slice(&[0, 0, 198, 18, 0, 1, 198, 18, (i % 50) as u8, 2]);
        let ulen = (8 + payload.len()) as u16;
        frame.extend_from_slice(&(4000 + (i % 300) as u16).to_be_bytes());
        frame.extend_from_slice(&9999u16.to_be_bytes());
        frame.extend_from_slice(&[(ulen >> 8) as u8, ulen as u8, 0, 0]);
        frame.extend_from_slice(&payload);
        for w in [1_700_000_000 + i / 100, (i % 100) * 10_000] {
            b.extend_from_slice(&w.to_le_bytes());
        }
        b.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        b.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        b.extend_from_slice(&frame);
    }
    b
}

/// Frames whose payload is itself a run of legacy record headers (a capture of a capture being
/// copied), so the reading threads' guesses at where a block's first record starts are often
/// wrong: the reader must notice and hop those blocks itself, with the same counts.
#[test]
fn payloads_that_look_like_records() {
    let b = udp_capture(6000, |i| {
        // A fake header every 32 bytes claiming a 16-byte record, at different phases.
        let fakes = 20 + (i % 23) as usize;
        let mut payload = vec![0u8; (i % 7) as usize];
        for j in 0..fakes as u32 {
            for w in [1_700_000_000 + j, 1000 * j, 16, 16] {
                payload.extend_from_slice(&w.to_le_bytes());
            }
            payload.extend_from_slice(&[0xab; 16]);
        }
        payload
    });
    assert!(
        b.len() > 8 * 256 * 1024,
        "{} bytes: several blocks",
        b.len()
    );
    let p = written("records-in-payloads.pcap", &b);
    same_with(
        std::slice::from_ref(&p),
        &[1, 3],
        "record headers in payloads",
    );
    let (c, r) = common::analyze_reader(&[p], 2, 1_000_000, 10_000_000_000, false);
    assert_eq!(r.files[0].frames, 6000);
    assert_eq!(c.get(metrics::slot::packets(metrics::Source::Pcap)), 6000);
}

/// The same for pcapng: frames whose payload is a run of enhanced packet blocks (each whole, as
/// a capture tool writes them), at phases that put them on the file's 4-byte grid and off it, so
/// the reading threads' walks often start inside a payload.
#[test]
fn payloads_that_look_like_pcapng_blocks() {
    let legacy = udp_capture(6000, |i| {
        let fakes = 20 + (i % 23);
        let mut payload = vec![0u8; (i % 7) as usize];
        for j in 0..fakes {
            // Type, length, interface, time (high, low), captured and original length, length.
            for w in [6, 32, j % 3, 0, 1000 * j, 0, 0, 32] {
                payload.extend_from_slice(&w.to_le_bytes());
            }
        }
        payload
    });
    for layout in [Layout::Plain, Layout::Rich] {
        let ng = to_pcapng(&legacy, layout).unwrap();
        assert!(ng.len() > 20 * 256 * 1024, "{} bytes", ng.len());
        let p = written(&format!("blocks-in-payloads-{layout:?}.pcapng"), &ng);
        let what = format!("pcapng blocks in payloads, {layout:?}");
        same_with(std::slice::from_ref(&p), &[1, 3, 5], &what);
        let (_, r) = common::analyze_reader(&[p], 4, 1_000_000, 10_000_000_000, false);
        assert_eq!(r.files[0].frames, 6000, "{what}");
    }
}

/// The timestamp events of reading `files` with `workers` workers, by the sequential reader or
/// the parallel one, sorted.
fn timestamp_events(files: &[PathBuf], workers: usize, sequential: bool) -> Vec<String> {
    // A name of its own: tests run at once, and two may ask for the same reading.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out = common::tmp(
        "parallel",
        &format!("events-{workers}-{sequential}-{call}.ndjson"),
    );
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_spanwatch"));
    cmd.args(["read", "--workers", &workers.to_string()])
        .args(["--link-speed", "100g", "--events"])
        .arg(&out)
        .args(files);
    if sequential {
        cmd.env("SPANWATCH_SEQUENTIAL_READ", "1");
    }
    let (o, err) = common::run(&mut cmd);
    assert!(o.status.success(), "{err}");
    let mut lines: Vec<String> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        // Login events name the user by a hash keyed afresh in every run: leave them out.
        .filter(|l| l.contains("\"timestamp-"))
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

type Bins = (i64, Vec<(i64, Vec<u64>)>);

/// What `read --report` draws, over capture time: the merged timeline of sessions per protocol,
/// logins and timestamp anomalies, bin by bin (width in ns, then each bin's start and values; the
/// last four values are the negative, impossible, zero and causality anomalies).
fn report_timeline(files: &[PathBuf], workers: usize, sequential: bool) -> Bins {
    use analyzer::pipeline;
    use analyzer::timeline::Collector;
    use metrics::{slot, LoginOutcome, Proto, Source};
    let mut slots = Vec::new();
    for p in Proto::ALL {
        slots.push(slot::sessions(p, false));
        slots.push(slot::sessions(p, true));
    }
    slots.extend(LoginOutcome::ALL.iter().map(|o| slot::ftp_login(*o)));
    for f in [
        slot::ts_negative,
        slot::ts_impossible,
        slot::ts_zero,
        slot::ts_causality,
    ] {
        slots.push(f(Source::Pcap));
    }
    let collector = Collector::new(slots);
    let hub = metrics::Hub::new();
    let opts = pipeline::Options {
        workers,
        link_bps: 10_000_000_000,
        max_flows: 1_000_000,
        cfg: analyzer::protocols::Config::default(),
        events: metrics::events::EventSink::disabled(),
        hub,
        timeline: Some(collector.clone()),
        sequential,
    };
    pipeline::run(pipeline::open_all(files).unwrap(), opts, &|_| {});
    let t = collector.merged();
    let bins = t.bins().map(|(at, v)| (at, v.to_vec())).collect();
    (t.width_ns(), bins)
}

/// `read --report` takes the parallel reader too: its timeline (sessions and logins counted by
/// the workers, timestamp anomalies by whichever thread partitions a block, the reading threads'
/// own partitions included) is the sequential reader's, bin by bin.
#[test]
fn same_report_timeline() {
    let (_, mut edges) = generated("timeline.pcap", Scenario::Mix, 30_000);
    // Every 500th record stamped as the one before it (zero delta: an anomaly).
    let (mut off, mut prev, mut n) = (24, None::<usize>, 0);
    while off + 16 <= edges.len() {
        let caplen = u32::from_be_bytes(edges[off + 8..off + 12].try_into().unwrap());
        if let (Some(p), 0) = (prev, n % 500) {
            let stamp: [u8; 8] = edges[p..p + 8].try_into().unwrap();
            edges[off..off + 8].copy_from_slice(&stamp);
        }
        prev = Some(off);
        n += 1;
        off += 16 + caplen as usize;
    }
    let p = written("timeline-stamped.pcap", &edges);
    for files in [vec![p.clone()], vec![common::default_capture(), p]] {
        let seq = report_timeline(&files, 1, true);
        // The generated mix spans 8 ms: 1 ms bins.
        assert!(seq.1.len() >= 8, "{} bins", seq.1.len());
        let zero: u64 = seq.1.iter().map(|(_, v)| v[v.len() - 2]).sum();
        // The 59 records stamped (the file's first has no delta), and any the mix has itself.
        assert!(zero >= 59, "{zero} zero deltas on the timeline");
        for w in [1, 3] {
            assert_eq!(seq, report_timeline(&files, w, false), "{w} workers");
        }
    }
}

/// The FTP login events of reading `files` with `workers` workers (sequential reader or
/// parallel), as "client port, outcome, packet number" lines, sorted.
fn login_numbers(files: &[PathBuf], workers: usize, sequential: bool) -> Vec<String> {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_spanwatch"));
    cmd.args(["read", "--workers", &workers.to_string(), "--events", "-"])
        .args(files);
    if sequential {
        cmd.env("SPANWATCH_SEQUENTIAL_READ", "1");
    }
    let (o, err) = common::run(&mut cmd);
    assert!(o.status.success(), "{err}");
    let mut lines: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"]["action"] == "ftp-cleartext-login")
        .map(|v| {
            format!(
                "{} {} {}",
                v["source"]["port"], v["event"]["outcome"], v["spanwatch"]["packet_number"]
            )
        })
        .collect();
    lines.sort();
    lines
}

/// A login event names the packet of its PASS command by its number in the file, as tshark
/// numbers frames, whichever reader ran: the parallel reader numbers a block's packets from 0
/// and each worker adds the number of the block's first record.
#[test]
fn same_login_packet_numbers() {
    let lab = common::default_capture();
    // The lab capture's first login: its PASS is frame 11 (tshark).
    let seq = login_numbers(std::slice::from_ref(&lab), 1, true);
    assert!(seq.iter().any(|l| l.ends_with(" 11")), "{seq:?}");
    let (mix, _) = generated("logins.pcap", Scenario::Mix, 30_000);
    for files in [vec![lab.clone()], vec![mix.clone()], vec![mix, lab]] {
        let seq = login_numbers(&files, 1, true);
        assert!(seq.len() >= 5, "{} login events", seq.len());
        for w in [1, 3, 5] {
            assert_eq!(seq, login_numbers(&files, w, false), "{w} workers");
        }
    }
}

/// The timestamp events (rate-limited per file, so their choice depends on file order) are the
/// same lines whichever reader ran.
#[test]
fn same_timestamp_events() {
    let mut files = vec![common::default_capture()];
    if let Some(c) = common::corpus() {
        files.push(c.join("suricata-verify/dnp3-too-long-reassembly-response.pcap"));
        files.push(c.join("ndpi/cassandra.pcap"));
    }
    let seq = timestamp_events(&files, 3, true);
    assert!(seq.len() >= 3, "{} timestamp events", seq.len());
    assert!(
        seq == timestamp_events(&files, 3, false),
        "the timestamp events differ"
    );
}

/// Anomalies on the first record of a block: the record whose time check needs the record
/// before it, in the block before, which a reading thread that partitions its own block cannot
/// see (the reader checks it). Every eighth block starting from the second begins with a record
/// stamped before the one it follows, or at the same time: the same counters and events as the
/// sequential reader, with the reading threads partitioning (3 and 5 workers) and without (2).
#[test]
fn anomalies_on_block_boundaries() {
    let (_, mut bytes) = generated("edges.pcap", Scenario::Mix, 30_000);
    // The parallel reader's blocks: 256 KiB each, from the end of the 24-byte file header.
    const BLOCK: usize = 256 * 1024;
    let (mut off, mut prev, mut block, mut changed) = (24, None::<usize>, 1, 0);
    while off + 16 <= bytes.len() {
        let caplen = u32::from_be_bytes(bytes[off + 8..off + 12].try_into().unwrap());
        if off >= 24 + block * BLOCK {
            if let (Some(p), 1) = (prev, block % 8) {
                // Seconds and fraction as the record before's: a zero delta (impossible
                // spacing) on even changes, one second earlier (negative) on odd ones.
                let stamp: [u8; 8] = bytes[p..p + 8].try_into().unwrap();
                bytes[off..off + 8].copy_from_slice(&stamp);
                if changed % 2 == 1 {
                    let sec = u32::from_be_bytes(stamp[..4].try_into().unwrap()) - 1;
                    bytes[off..off + 4].copy_from_slice(&sec.to_be_bytes());
                }
                changed += 1;
            }
            block += 1;
        }
        prev = Some(off);
        off += 16 + caplen as usize;
    }
    assert!(changed >= 4, "{changed} block starts changed");
    let p = written("edges-stamped.pcap", &bytes);
    let files = [p];
    let seq = timestamp_events(&files, 3, true);
    assert_eq!(seq.len(), changed, "one event per changed record");
    for w in [2, 3, 5] {
        same(
            &files,
            w,
            &format!("anomalies on block boundaries, {w} workers"),
        );
        assert!(
            seq == timestamp_events(&files, w, false),
            "{w} workers: the timestamp events differ"
        );
    }
}

/// The byte offsets of the blocks of a pcapng file's first section (little-endian).
fn first_section_blocks(b: &[u8]) -> Vec<usize> {
    let mut v = Vec::new();
    let mut off = 0;
    while off + 8 <= b.len() {
        let ty = u32::from_le_bytes(b[off..off + 4].try_into().unwrap());
        if ty == 0x0a0d_0d0a && off > 0 {
            break;
        }
        v.push(off);
        off += u32::from_le_bytes(b[off + 4..off + 8].try_into().unwrap()) as usize;
    }
    v
}

/// A generated mix of 30 000 packets in which every 400th packet takes the time of the packet
/// six before it: on its own interface in either pcapng layout, a negative or zero delta.
fn stamped_mix(name: &str) -> Vec<u8> {
    let (_, mut b) = generated(name, Scenario::Mix, 30_000);
    let mut offs = Vec::new();
    let mut off = 24;
    while off + 16 <= b.len() {
        offs.push(off);
        off += 16 + u32::from_be_bytes(b[off + 8..off + 12].try_into().unwrap()) as usize;
    }
    for i in (400..offs.len()).step_by(400) {
        let stamp: [u8; 8] = b[offs[i - 6]..offs[i - 6] + 8].try_into().unwrap();
        b[offs[i]..offs[i] + 8].copy_from_slice(&stamp);
    }
    b
}

/// pcapng copies of a generated mix (8.7 MB: 34 of the parallel reader's blocks), as a capture
/// tool writes them and in `Layout::Rich` (interfaces with their own time units taking packets
/// in turn, packet options, simple packet blocks, unknown blocks, an interface declared
/// mid-file, a second, big-endian section): the same counters, file reports and timestamp
/// events (per interface: each has its own previous packet and its own budget) whichever
/// reader ran; whole, cut short, and with a corrupt block.
#[test]
fn pcapng_whole_cut_and_corrupt() {
    let legacy = stamped_mix("ng-source.pcap");
    let legacy_path = written("ng-source-stamped.pcap", &legacy);
    let mut made = Vec::new();
    for layout in [Layout::Plain, Layout::Rich] {
        let ng = to_pcapng(&legacy, layout).unwrap();
        let p = written(&format!("{layout:?}.pcapng"), &ng);
        let what = format!("{layout:?} pcapng");
        same_with(std::slice::from_ref(&p), &[1, 2, 5], &what);
        let (_, r) = common::analyze_reader(
            std::slice::from_ref(&p),
            2,
            1_000_000,
            10_000_000_000,
            false,
        );
        assert_eq!(r.files[0].frames, 30_417, "{what}");
        // Every interface's times read in its own unit: the mix spans 8.5 ms.
        let (first, last) = (r.files[0].first_ts.unwrap(), r.files[0].last_ts.unwrap());
        assert!(
            (8_000_000..9_000_000).contains(&(last - first)),
            "{what}: {first} to {last}"
        );
        let files = [p.clone()];
        let seq = timestamp_events(&files, 3, true);
        let ifaces: std::collections::BTreeSet<&str> = seq
            .iter()
            .filter_map(|l| l.split("\"interface\":{\"id\":\"").nth(1))
            .filter_map(|t| t.split('"').next())
            .collect();
        // The stamped packets fall on interfaces 0-2 of the first section and on the second
        // section's first (4); the microsecond interfaces also see zero deltas of their own.
        let want: &[&str] = if layout == Layout::Rich {
            &["0", "1", "2", "4"]
        } else {
            &["0"]
        };
        assert_eq!(
            ifaces.into_iter().collect::<Vec<_>>(),
            want,
            "{what}: interfaces in events"
        );
        assert!(seq.len() >= 10, "{what}: {} timestamp events", seq.len());
        for w in [2, 5] {
            assert!(
                seq == timestamp_events(&files, w, false),
                "{what}, {w} workers: the timestamp events differ"
            );
        }

        // Cut inside the last block's trailer, inside a packet's data mid-file, inside the
        // interface descriptions, and at the end.
        for cut in [ng.len() - 3, ng.len() / 2 + 5, 40, ng.len()] {
            let c = written(&format!("{layout:?}-cut-{cut}.pcapng"), &ng[..cut]);
            same(std::slice::from_ref(&c), 2, &format!("{what} cut at {cut}"));
        }

        // The 10 000th block of the first section: its trailing length disagrees (the parser
        // stops there: corrupt); or it claims 64 MiB, a cut-off last block in a short file and
        // corrupt data in a long one.
        let at = first_section_blocks(&ng)[10_000];
        let len = u32::from_le_bytes(ng[at + 4..at + 8].try_into().unwrap()) as usize;
        let mut bad = ng.clone();
        bad[at + len - 4..at + len].copy_from_slice(&(len as u32 + 4).to_le_bytes());
        let mut huge = ng.clone();
        huge[at + 4..at + 8].copy_from_slice(&(64u32 << 20).to_le_bytes());
        let mut long = huge.clone();
        long.resize(long.len() + (17 << 20), 0);
        for (name, b, corrupt) in [
            ("trailer", bad, true),
            ("huge", huge, false),
            ("huge-long", long, true),
        ] {
            let c = written(&format!("{layout:?}-{name}.pcapng"), &b);
            let what = format!("{what}, {name}");
            same_with(std::slice::from_ref(&c), &[1, 3], &what);
            let (_, r) = common::analyze_reader(&[c], 2, 1_000_000, 10_000_000_000, false);
            let f = &r.files[0];
            assert!(
                f.frames > 9_000 && f.frames < 10_000,
                "{what}: {} frames",
                f.frames
            );
            assert_eq!(f.corrupt.is_some(), corrupt, "{what}: {:?}", f.corrupt);
            assert_eq!(f.truncated_records, u64::from(!corrupt), "{what}");
        }
        made.push(p);
    }
    // Both kinds of file in one run: each file's timestamp sources begin afresh.
    let files = [made[0].clone(), legacy_path, made[1].clone()];
    same(&files, 3, "pcapng, libpcap and pcapng in one run");
    assert!(
        timestamp_events(&files, 3, true) == timestamp_events(&files, 3, false),
        "three files: the timestamp events differ"
    );
}

/// `read --report` and login events on pcapng: the timeline bin by bin and the login packets'
/// numbers are the sequential reader's.
#[test]
fn pcapng_report_timeline_and_login_numbers() {
    let legacy = stamped_mix("ng-timeline.pcap");
    let ng = to_pcapng(&legacy, Layout::Rich).unwrap();
    let p = written("timeline-rich.pcapng", &ng);
    let files = [p];
    let seq = report_timeline(&files, 1, true);
    let anomalies: u64 = seq
        .1
        .iter()
        .map(|(_, v)| v[v.len() - 4] + v[v.len() - 2])
        .sum();
    assert!(
        anomalies >= 60,
        "{anomalies} negative and zero deltas on the timeline"
    );
    for w in [1, 3] {
        assert_eq!(seq, report_timeline(&files, w, false), "{w} workers");
    }
    let logins = login_numbers(&files, 1, true);
    assert!(logins.len() >= 5, "{} login events", logins.len());
    for w in [1, 3] {
        assert_eq!(logins, login_numbers(&files, w, false), "{w} workers");
    }
}

/// A packet block larger than the parallel reader's read (256 KiB and 64 KiB more) in the middle
/// of a pcapng file: the reader reads on until it has it whole, and both readers count it.
#[test]
fn pcapng_block_larger_than_a_read() {
    let (_, legacy) = generated("ng-big.pcap", Scenario::Mix, 10_000);
    let ng = to_pcapng(&legacy, Layout::Plain).unwrap();
    let at = first_section_blocks(&ng)[5_000];
    // An enhanced packet block on interface 0 with 300 000 bytes of frame (a copy of the block at
    // `at`'s frame, padded with zeros).
    let frame_len = u32::from_le_bytes(ng[at + 20..at + 24].try_into().unwrap()) as usize;
    let mut frame = ng[at + 28..at + 28 + frame_len].to_vec();
    frame.resize(300_000, 0);
    let mut epb = Vec::new();
    let len = 32 + frame.len() as u32;
    for w in [6u32, len, 0] {
        epb.extend_from_slice(&w.to_le_bytes());
    }
    epb.extend_from_slice(&ng[at + 12..at + 20]); // the time of the block it precedes
    for w in [frame.len() as u32, frame.len() as u32] {
        epb.extend_from_slice(&w.to_le_bytes());
    }
    epb.extend_from_slice(&frame);
    epb.extend_from_slice(&len.to_le_bytes());
    let mut b = ng[..at].to_vec();
    b.extend_from_slice(&epb);
    b.extend_from_slice(&ng[at..]);
    let p = written("big-block.pcapng", &b);
    same_with(std::slice::from_ref(&p), &[1, 3], "a 300 kB packet block");
    let plain = written("big-block-without.pcapng", &ng);
    let (_, without) = common::analyze_reader(&[plain], 1, 1_000_000, 10_000_000_000, true);
    let (_, r) = common::analyze_reader(&[p], 2, 1_000_000, 10_000_000_000, false);
    assert_eq!(r.files[0].frames, without.files[0].frames + 1);
    assert_eq!(r.files[0].corrupt, None);
    assert_eq!(r.files[0].truncated_records, 0);
}

/// Packets on an interface no description names yet (an Ethernet, microsecond one for both
/// readers), whose index a later section's first interface then takes: both readers agree on
/// their times, their checks against the packet before on that index, and the events.
#[test]
fn pcapng_packets_on_undescribed_interfaces() {
    let legacy = stamped_mix("ng-undescribed.pcap");
    let mut ng = to_pcapng(&legacy, Layout::Rich).unwrap();
    // In the first section (interfaces 0-3 described), every 50th packet block on interface 0
    // moved to interface 4: the second section's first interface, not yet described there.
    let mut moved = 0;
    for (i, at) in first_section_blocks(&ng).into_iter().enumerate() {
        let ty = u32::from_le_bytes(ng[at..at + 4].try_into().unwrap());
        let if_id = u32::from_le_bytes(ng[at + 8..at + 12].try_into().unwrap());
        if ty == 6 && if_id == 0 && i % 50 == 0 {
            ng[at + 8..at + 12].copy_from_slice(&4u32.to_le_bytes());
            moved += 1;
        }
    }
    assert!(moved > 50, "{moved} packets moved");
    let p = written("undescribed.pcapng", &ng);
    let files = [p];
    same_with(&files, &[1, 3], "packets on undescribed interfaces");
    let seq = timestamp_events(&files, 3, true);
    assert!(
        seq.iter().any(|l| l.contains("\"id\":\"4\"")),
        "events on interface 4"
    );
    assert!(
        seq == timestamp_events(&files, 3, false),
        "the timestamp events differ"
    );
}
