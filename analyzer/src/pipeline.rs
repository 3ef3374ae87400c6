//! The pipeline between a capture source and the workers. A `Producer` (one per reader or rx
//! thread) decodes each frame, checks its timestamp in arrival order, picks the worker by the
//! address-pair hash and fills pooled batches; bounded crossbeam queues carry the batches to the
//! `Workers`, which hand them back to the pool once processed. Offline the producer waits on a full
//! queue (nothing lost); live it drops the batch and counts every packet in it, so an rx thread
//! never blocks.

use crate::batch::Batch;
use crate::decode::{decode_into, Decoded};
use crate::hash::pick;
use crate::prefault::{Prefaulter, Shared};
use crate::protocols::Config;
use crate::source::pcap::{PcapFile, ReadError};
use crate::source::Frame;
use crate::timeline::{Collector, Timeline};
use crate::timestamps::{Stamp, TsChecker};
use crate::worker::Worker;
use crossbeam_channel::{bounded, select, Receiver, Sender, TryRecvError, TrySendError};
use metrics::events::EventSink;
use metrics::{slot, Counters, DropReason, Hub, Source};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

pub struct Options {
    pub workers: usize,
    pub link_bps: u64,
    pub max_flows: usize,
    pub cfg: Config,
    pub events: EventSink,
    pub hub: Hub,
    /// Keep counters over capture time for these slots (`read --report`).
    pub timeline: Option<Collector>,
    /// Read files with the sequential reader even where the parallel one applies (for comparing
    /// the two; `SPANWATCH_SEQUENTIAL_READ` sets it on the command line).
    pub sequential: bool,
}

/// Batches a worker queue holds: up to 16 384 packets, 16 ms at 1 Mpps — what a worker sharing its
/// core with the kernel's receive work falls behind by in a burst. With 16, a paced 980 kpps on
/// one receive core lost 2 224, 3 136 and 147 776 of 1 M frames to full queues in three runs;
/// with 64, 0, 0 and 256 (bench/scripts/loss-at-rate.sh). Peak RSS stayed ~110 MB (the UMEM
/// dominates): a batch's pages are only touched as packets fill them.
const QUEUE: usize = 64;

/// The analysis threads and the queues and batch pool that feed them.
pub struct Workers {
    queues: Vec<Sender<Batch>>,
    pool: Receiver<Batch>,
    handles: Vec<JoinHandle<()>>,
    /// The workers' queue of pages to map ahead (each worker serves it while idle, and so does
    /// a file's producer while it waits for room in a worker's queue).
    shared: Shared,
}

impl Workers {
    /// Starts `opts.workers` workers; `producers` is how many producers will share the pool.
    pub fn start(opts: &Options, source: Source, producers: usize) -> Workers {
        let n = opts.workers.max(1);
        let per_worker_flows = (opts.max_flows / n).max(1);
        let cfg = Arc::new(opts.cfg.clone());
        // Enough batches for every producer to hold one per worker, every queue to be full, and
        // every worker to hold one: the pool never runs dry, so an offline producer never waits on it.
        let batches = n * (producers.max(1) + QUEUE + 1) + 2;
        let (pool_tx, pool_rx) = bounded::<Batch>(batches);
        for _ in 0..batches {
            let _ = pool_tx.send(Batch::new());
        }
        let mut queues = Vec::with_capacity(n);
        let mut handles = Vec::with_capacity(n);
        let (prefault, shared) = Prefaulter::new();
        for w in 0..n {
            let (tx, rx) = bounded::<Batch>(QUEUE);
            queues.push(tx);
            let pool = pool_tx.clone();
            let mut worker = Worker::new(
                per_worker_flows,
                opts.hub.register(),
                opts.events.clone(),
                cfg.clone(),
                source,
            )
            .with_timeline(opts.timeline.clone())
            .with_prefault(&prefault);
            let slow = slow_worker_fault();
            let shared = shared.clone();
            handles.push(
                std::thread::Builder::new()
                    .name(format!("worker-{w}"))
                    .spawn(move || worker_loop(&mut worker, rx, pool, slow, &shared))
                    .expect("spawn worker thread"),
            );
        }
        Workers {
            queues,
            pool: pool_rx,
            handles,
            shared,
        }
    }

    /// A producer feeding these workers. `queue`: the live queue it reads (None for files).
    pub fn producer(
        &self,
        opts: &Options,
        source: Source,
        queue: Option<usize>,
        block: bool,
    ) -> Producer {
        Producer {
            queues: self.queues.clone(),
            pool: self.pool.clone(),
            open: (0..self.queues.len()).map(|_| None).collect(),
            now: i64::MIN,
            c: Counters::new(),
            publish: opts.hub.register(),
            ts: TsChecker::new(source, opts.link_bps),
            events: opts.events.clone(),
            source,
            queue,
            block,
            prefault: self.shared.clone(),
            since_publish: 0,
            timeline: opts.timeline.clone().map(|c| (c.timeline(), c)),
        }
    }

    /// Waits for the workers to drain their queues and end every flow. Every producer must have
    /// been finished (dropped) first.
    pub fn finish(self) {
        drop(self.queues);
        for h in self.handles {
            let _ = h.join();
        }
    }
}

/// Fault injection for the backpressure test: `SPANWATCH_FAULT_SLOW_WORKER_US=N` makes every
/// worker sleep N µs per batch, as an overloaded core would.
fn slow_worker_fault() -> Option<std::time::Duration> {
    std::env::var("SPANWATCH_FAULT_SLOW_WORKER_US")
        .ok()?
        .parse()
        .ok()
        .map(std::time::Duration::from_micros)
}

/// A worker's thread: its batches as they come; while none waits, the workers' requests to have
/// pages mapped ahead (`prefault`), a chunk at a time.
fn worker_loop(
    w: &mut Worker,
    rx: Receiver<Batch>,
    pool: Sender<Batch>,
    slow: Option<std::time::Duration>,
    prefault: &Shared,
) {
    loop {
        let mut b = match rx.try_recv() {
            Ok(b) => b,
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {
                if prefault.serve(|| rx.is_empty()) {
                    continue;
                }
                select! {
                    recv(rx) -> b => match b {
                        Ok(b) => b,
                        Err(_) => break,
                    },
                    recv(prefault.requests()) -> r => {
                        if let Ok(r) = r {
                            prefault.take(r, || rx.is_empty());
                        }
                        continue;
                    }
                }
            }
        };
        if let Some(d) = slow {
            std::thread::sleep(d);
        }
        w.process(&b);
        b.clear();
        let _ = pool.send(b);
    }
    w.finish_all();
}

/// Turns frames into batches for the workers (one per reader or rx thread).
pub struct Producer {
    queues: Vec<Sender<Batch>>,
    pool: Receiver<Batch>,
    open: Vec<Option<Batch>>,
    /// The latest capture time seen (the clock workers expire flows by).
    now: i64,
    c: Counters,
    publish: Arc<metrics::Shared>,
    ts: TsChecker,
    events: EventSink,
    source: Source,
    queue: Option<usize>,
    block: bool,
    /// Pages to map ahead of the workers, while a blocking producer waits (`send`).
    prefault: Shared,
    since_publish: u32,
    timeline: Option<(Timeline, Collector)>,
}

impl Producer {
    /// Starts a new input (a file): its timestamp sources begin afresh.
    pub fn start_input(&mut self, origin: &str) {
        self.ts.reset(origin);
    }

    pub fn counters(&mut self) -> &mut Counters {
        &mut self.c
    }

    /// Takes in one frame; `number` is its place in its source (1-based).
    #[inline]
    pub fn frame(&mut self, frame: &Frame<'_>, number: u64) {
        let src = self.source;
        if let Some((t, _)) = &mut self.timeline {
            t.tick(frame.ts_ns, &self.c);
        }
        self.c.inc(slot::packets(src));
        self.c.add(slot::bytes(src), frame.wire_len as u64);
        if frame.ts_ns > self.now {
            self.now = frame.ts_ns;
        }
        // Decoded in place (the fast path inlined here), not returned by value and moved twice.
        let mut d = Decoded::default();
        let decoded = decode_into(frame.link, frame.data, &mut d);
        let events = &self.events;
        let c = &mut self.c;
        let mut dropped_events = 0;
        self.ts.check(
            Stamp {
                iface: frame.iface,
                ts: frame.ts_ns,
                wire_len: frame.wire_len,
                number,
            },
            decoded.is_ok().then_some(&d),
            c,
            |e| {
                if !events.send(e) {
                    dropped_events += 1;
                }
            },
        );
        self.c.add(slot::EVENTS_DROPPED, dropped_events);
        match decoded {
            Err(e) => self.c.inc(slot::decode_error(e)),
            Ok(payload) => {
                let payload = &payload[..payload.len().min(Batch::DATA)];
                let w = pick(d.shard, self.queues.len());
                if self.open[w]
                    .as_ref()
                    .is_none_or(|b| b.is_full(payload.len()))
                {
                    self.send(w);
                    if self.open[w].is_none() {
                        self.open[w] = self.take_batch();
                    }
                }
                match self.open[w].as_mut() {
                    Some(b) => b.push(frame.ts_ns, self.now, frame.wire_len, number, d, payload),
                    None => self
                        .c
                        .inc(slot::capture_dropped(DropReason::QueueFull, self.queue)),
                }
            }
        }
        self.since_publish += 1;
        if self.since_publish >= 8192 {
            self.since_publish = 0;
            self.publish.publish(&self.c);
        }
    }

    fn take_batch(&mut self) -> Option<Batch> {
        if self.block {
            return self.pool.recv().ok();
        }
        match self.pool.try_recv() {
            Ok(b) => Some(b),
            Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => None,
        }
    }

    /// Sends worker `w`'s open batch (if any), stamped with the current clock.
    fn send(&mut self, w: usize) {
        let Some(mut b) = self.open[w].take() else {
            return;
        };
        b.now_ns = self.now;
        if self.block {
            self.send_waiting(w, b);
            return;
        }
        match self.queues[w].try_send(b) {
            Ok(()) => {}
            Err(TrySendError::Full(mut b)) | Err(TrySendError::Disconnected(mut b)) => {
                // The worker is behind: these packets are lost, and counted.
                self.c.add(
                    slot::capture_dropped(DropReason::QueueFull, self.queue),
                    b.pkts.len() as u64,
                );
                b.clear();
                self.open[w] = Some(b);
            }
        }
    }

    /// Sends `b` to worker `w`, waiting while its queue is full; meanwhile maps pages ahead of
    /// the workers (with one worker, that is the producer's idle time: the worker is the slower).
    fn send_waiting(&mut self, w: usize, mut b: Batch) {
        loop {
            match self.queues[w].try_send(b) {
                Ok(()) | Err(TrySendError::Disconnected(_)) => return,
                Err(TrySendError::Full(back)) => b = back,
            }
            let queue = &self.queues[w];
            if self.prefault.serve(|| queue.is_full()) {
                continue;
            }
            select! {
                send(self.queues[w], b) -> _ => return,
                recv(self.prefault.requests()) -> r => if let Ok(r) = r {
                    self.prefault.take(r, || queue.is_full());
                },
            }
        }
    }

    /// Sends every non-empty open batch (live: when the ring runs dry, so quiet traffic is not held back).
    pub fn flush(&mut self) {
        for w in 0..self.open.len() {
            if self.open[w].as_ref().is_some_and(|b| !b.pkts.is_empty()) {
                self.send(w);
            }
        }
        self.publish.publish(&self.c);
    }

    /// Ends this producer: every worker gets its last batch and the final clock, even an empty
    /// one, so what times out at the end does not depend on how packets were sharded.
    pub fn finish(mut self) {
        for w in 0..self.open.len() {
            if self.open[w].is_none() {
                self.open[w] = self.take_batch();
            }
            if let Some(mut b) = self.open[w].take() {
                b.now_ns = self.now;
                let _ = self.queues[w].send(b);
            }
        }
        self.publish.publish(&self.c);
        if let Some((t, col)) = self.timeline.take() {
            col.deliver(t, &self.c);
        }
    }
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
/// libpcap files are read in parallel (`parallel`); pcapng takes the sequential reader (as does
/// a read with `opts.sequential`).
pub fn run(files: Vec<PcapFile>, opts: Options, progress: &(dyn Fn(u64) + Sync)) -> Report {
    if !opts.sequential {
        if let Some(inputs) = crate::parallel::inputs(&files) {
            return crate::parallel::run(&files, inputs, &opts, progress);
        }
    }
    let workers = Workers::start(&opts, Source::Pcap, 1);
    let mut p = workers.producer(&opts, Source::Pcap, None, true);
    let mut report = Report::default();
    let mut done_bytes = 0u64;
    for mut file in files {
        p.start_input(file.path());
        let mut fr = FileReport {
            path: file.path().to_string(),
            ..FileReport::default()
        };
        let mut number = 0u64;
        let base = done_bytes;
        let st = file.for_each(
            |frame| {
                number += 1;
                fr.first_ts = Some(fr.first_ts.map_or(frame.ts_ns, |f| f.min(frame.ts_ns)));
                fr.last_ts = Some(fr.last_ts.map_or(frame.ts_ns, |l| l.max(frame.ts_ns)));
                p.frame(&frame, number);
            },
            |bytes| progress(base + bytes),
        );
        done_bytes += st.bytes_read;
        let c = p.counters();
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
    p.finish();
    workers.finish();
    report
}
