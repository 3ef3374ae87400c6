//! The offline pipeline: one reader thread decodes, checks timestamps and shards packets into
//! pooled batches; bounded crossbeam queues carry them to `workers` analysis threads; batches go
//! back to the pool once processed. Offline the reader waits on a full queue, so nothing is lost.

use crate::batch::Batch;
use crate::decode::decode;
use crate::hash::pick;
use crate::protocols::Config;
use crate::source::pcap::{PcapFile, ReadError};
use crate::timestamps::{Stamp, TsChecker};
use crate::worker::Worker;
use crossbeam_channel::{bounded, Receiver, Sender};
use metrics::events::EventSink;
use metrics::{slot, Counters, DropReason, Hub, Source};
use std::path::PathBuf;
use std::sync::Arc;

pub struct Options {
    pub workers: usize,
    pub link_bps: u64,
    pub max_flows: usize,
    pub cfg: Config,
    pub events: EventSink,
    pub hub: Hub,
}

/// What the reader learnt about each file.
#[derive(Debug, Clone, Default)]
pub struct FileReport {
    pub path: String,
    pub frames: u64,
    pub truncated_records: u64,
    pub corrupt: Option<(u64, String)>,
    pub first_ts: Option<i64>,
    pub last_ts: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub files: Vec<FileReport>,
}

impl Report {
    pub fn span(&self) -> Option<(i64, i64)> {
        let first = self.files.iter().filter_map(|f| f.first_ts).min()?;
        let last = self.files.iter().filter_map(|f| f.last_ts).max()?;
        Some((first, last))
    }
}

/// Opens every file first, so a bad argument fails before any work.
pub fn open_all(paths: &[PathBuf]) -> Result<Vec<PcapFile>, ReadError> {
    paths.iter().map(|p| PcapFile::open(p)).collect()
}

/// Reads `files` through the pipeline; counters land in `opts.hub`.
pub fn run(files: Vec<PcapFile>, opts: Options, progress: &(dyn Fn(u64) + Sync)) -> Report {
    let n = opts.workers.max(1);
    let per_worker_flows = (opts.max_flows / n).max(1);
    let cfg = Arc::new(opts.cfg);
    const QUEUE: usize = 8;
    let (pool_tx, pool_rx) = bounded::<Batch>(n * (QUEUE + 2));
    for _ in 0..n * (QUEUE + 2) {
        let _ = pool_tx.send(Batch::new());
    }
    let mut queues: Vec<Sender<Batch>> = Vec::with_capacity(n);
    let mut handles = Vec::with_capacity(n);
    for w in 0..n {
        let (tx, rx) = bounded::<Batch>(QUEUE);
        queues.push(tx);
        let pool = pool_tx.clone();
        let mut worker = Worker::new(
            per_worker_flows,
            opts.hub.register(),
            opts.events.clone(),
            cfg.clone(),
            Source::Pcap,
        );
        handles.push(
            std::thread::Builder::new()
                .name(format!("worker-{w}"))
                .spawn(move || worker_loop(&mut worker, rx, pool))
                .expect("spawn worker thread"),
        );
    }
    drop(pool_tx);
    let report = reader(
        files,
        &queues,
        &pool_rx,
        opts.link_bps,
        &opts.hub,
        &opts.events,
        progress,
    );
    drop(queues);
    for h in handles {
        let _ = h.join();
    }
    report
}

fn worker_loop(w: &mut Worker, rx: Receiver<Batch>, pool: Sender<Batch>) {
    while let Ok(mut b) = rx.recv() {
        w.process(&b);
        b.clear();
        let _ = pool.send(b);
    }
    w.finish_all();
}

fn reader(
    files: Vec<PcapFile>,
    queues: &[Sender<Batch>],
    pool: &Receiver<Batch>,
    link_bps: u64,
    hub: &Hub,
    events: &EventSink,
    progress: &(dyn Fn(u64) + Sync),
) -> Report {
    let n = queues.len();
    let publish = hub.register();
    let mut c = Counters::new();
    let mut ts = TsChecker::new(Source::Pcap, link_bps);
    let mut open: Vec<Option<Batch>> = (0..n).map(|_| None).collect();
    let mut now = i64::MIN;
    let mut report = Report::default();
    let mut done_bytes = 0u64;
    let mut since_publish = 0u32;
    for mut file in files {
        ts.reset(file.path());
        let mut fr = FileReport {
            path: file.path().to_string(),
            ..FileReport::default()
        };
        let mut number = 0u64;
        let base = done_bytes;
        let st = file.for_each(
            |frame| {
                number += 1;
                c.inc(slot::packets(Source::Pcap));
                c.add(slot::bytes(Source::Pcap), frame.wire_len as u64);
                fr.first_ts.get_or_insert(frame.ts_ns);
                fr.first_ts = fr.first_ts.map(|f| f.min(frame.ts_ns));
                fr.last_ts = Some(fr.last_ts.map_or(frame.ts_ns, |l| l.max(frame.ts_ns)));
                if frame.ts_ns > now {
                    now = frame.ts_ns;
                }
                let decoded = decode(frame.link, frame.data);
                let d = decoded.as_ref().ok().map(|(d, _)| d);
                ts.check(
                    Stamp {
                        iface: frame.iface,
                        ts: frame.ts_ns,
                        wire_len: frame.wire_len,
                        number,
                    },
                    d,
                    &mut c,
                    |e| {
                        if !events.send(e) {
                            c_events_dropped();
                        }
                    },
                );
                match decoded {
                    Err(e) => c.inc(slot::decode_error(e)),
                    Ok((d, payload)) => {
                        let w = pick(d.shard, n);
                        let b = open[w].get_or_insert_with(|| pool.recv().unwrap_or_default());
                        if b.is_full(payload.len()) {
                            let mut full = open[w].take().unwrap_or_default();
                            full.now_ns = now;
                            let _ = queues[w].send(full);
                            open[w] = Some(pool.recv().unwrap_or_default());
                        }
                        let b = open[w].as_mut().expect("batch present");
                        b.push(
                            frame.ts_ns,
                            now,
                            frame.wire_len,
                            number,
                            d,
                            &payload[..payload.len().min(Batch::DATA)],
                        );
                    }
                }
                since_publish += 1;
                if since_publish >= 8192 {
                    since_publish = 0;
                    publish.publish(&c);
                }
            },
            |bytes| progress(base + bytes),
        );
        done_bytes += st.bytes_read;
        if st.truncated_records > 0 {
            c.add(
                slot::capture_dropped(DropReason::TruncatedRecord, None),
                st.truncated_records,
            );
        }
        if st.corrupt.is_some() {
            c.inc(slot::capture_dropped(DropReason::CorruptRecord, None));
        }
        fr.frames = st.frames;
        fr.truncated_records = st.truncated_records;
        fr.corrupt = st.corrupt;
        report.files.push(fr);
    }
    // Every worker gets the final clock, even one with nothing left to do, so that what times out
    // at the end does not depend on how packets were sharded.
    for (w, b) in open.iter_mut().enumerate() {
        let mut b = b.take().unwrap_or_else(|| pool.recv().unwrap_or_default());
        b.now_ns = now;
        let _ = queues[w].send(b);
    }
    publish.publish(&c);
    report
}

// Events dropped on the reader only happen live (offline sinks block); nothing to count here.
fn c_events_dropped() {}
