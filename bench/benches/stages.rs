//! criterion benchmarks of the pipeline's stages on fixed inputs (frames from `gen`'s mix, seed 1):
//! decode, flow-table lookup and insert, FTP control lines, TLS handshakes, timestamp checks, and
//! the whole reader+worker path per packet. `cargo bench -p spanwatch-bench`; per-stage instruction
//! counts under callgrind are in bench/RESULTS.md (bench/scripts/callgrind-stages.sh).

use analyzer::batch::Batch;
use analyzer::decode::{decode, link, L4};
use analyzer::flow::{FlowKey, FlowTable};
use analyzer::protocols::Config;
use analyzer::timestamps::{Stamp, TsChecker};
use analyzer::worker::Worker;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use metrics::{Counters, Hub, Source};
use spanwatch_bench::gen::{write, Options, Scenario};
use std::sync::Arc;

/// The frames (with their timestamps) of a generated capture.
fn frames(scenario: Scenario, packets: u64) -> Vec<(i64, Vec<u8>)> {
    let mut buf = Vec::new();
    write(
        &Options {
            scenario,
            packets,
            seed: 1,
            ftp_login_at: None,
        },
        &mut buf,
    )
    .unwrap();
    let mut f = analyzer::source::pcap::PcapFile::from_reader(
        "gen".into(),
        Box::new(std::io::Cursor::new(buf)),
        0,
    )
    .unwrap();
    let mut out = Vec::new();
    f.for_each(|fr| out.push((fr.ts_ns, fr.data.to_vec())), |_| {});
    out
}

fn worker() -> Worker {
    Worker::new(
        1_000_000,
        Hub::new().register(),
        metrics::events::EventSink::disabled(),
        Arc::new(Config::default()),
        Source::Pcap,
    )
}

/// Decoded batches of the frames a port filter keeps.
fn batches(frames: &[(i64, Vec<u8>)], keep: impl Fn(u16, u16) -> bool) -> Vec<Batch> {
    let mut out = vec![Batch::new()];
    for (i, (ts, data)) in frames.iter().enumerate() {
        let Ok((d, payload)) = decode(link::ETHERNET, data) else {
            continue;
        };
        if !keep(d.sport(), d.dport()) {
            continue;
        }
        if out.last().unwrap().is_full(payload.len()) {
            out.push(Batch::new());
        }
        out.last_mut()
            .unwrap()
            .push(*ts, *ts, data.len() as u32, i as u64 + 1, d, payload);
    }
    out
}

fn bench(c: &mut Criterion) {
    let mix = frames(Scenario::Mix, 50_000);
    let n = mix.len() as u64;

    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(n));
    g.bench_function("mix", |b| {
        b.iter(|| {
            let mut ok = 0u32;
            for (_, f) in &mix {
                ok += decode(link::ETHERNET, f).is_ok() as u32;
            }
            ok
        })
    });
    g.finish();

    let keys: Vec<(FlowKey, u64, L4)> = frames(Scenario::UdpFlood, 100_000)
        .iter()
        .filter_map(|(_, f)| decode(link::ETHERNET, f).ok())
        .map(|(d, _)| (FlowKey::of(&d).0, d.flow, d.l4))
        .collect();
    let mut g = c.benchmark_group("flow_table");
    g.throughput(Throughput::Elements(keys.len() as u64));
    g.bench_function("insert_100k", |b| {
        b.iter_batched(
            || FlowTable::new(200_000),
            |mut t| {
                for (k, h, l4) in &keys {
                    t.insert(k, *h, *l4, 0, true);
                }
                t
            },
            BatchSize::LargeInput,
        )
    });
    let mut full = FlowTable::new(200_000);
    for (k, h, l4) in &keys {
        full.insert(k, *h, *l4, 0, true);
    }
    g.bench_function("lookup_hit_100k", |b| {
        b.iter(|| {
            keys.iter()
                .filter(|(k, h, _)| full.find(*h, k).is_some())
                .count()
        })
    });
    g.finish();

    // Whole protocol paths through a worker (flow table included), per packet.
    for (name, keep) in [
        (
            "ftp_control",
            (|s: u16, d: u16| s == 21 || d == 21) as fn(u16, u16) -> bool,
        ),
        ("tls_443", |s, d| s == 443 || d == 443),
        ("http_80", |s, d| s == 80 || d == 80),
        ("mix_all", |_, _| true),
    ] {
        let bs = batches(&mix, keep);
        let pk: usize = bs.iter().map(|b| b.pkts.len()).sum();
        let mut g = c.benchmark_group("worker");
        g.throughput(Throughput::Elements(pk as u64));
        g.bench_function(name, |b| {
            b.iter_batched(
                worker,
                |mut w| {
                    for bt in &bs {
                        w.process(bt);
                    }
                    w.finish_all();
                    w
                },
                BatchSize::LargeInput,
            )
        });
        g.finish();
    }

    let mut g = c.benchmark_group("timestamps");
    g.throughput(Throughput::Elements(n));
    g.bench_function("check_mix", |b| {
        b.iter_batched(
            || {
                (
                    TsChecker::new(Source::Pcap, 10_000_000_000),
                    Counters::new(),
                )
            },
            |(mut t, mut cnt)| {
                for (i, (ts, f)) in mix.iter().enumerate() {
                    let s = Stamp {
                        iface: 0,
                        ts: *ts,
                        wire_len: f.len() as u32,
                        number: i as u64,
                    };
                    t.check(s, None, &mut cnt, |_| {});
                }
                cnt
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
