//! The parallel offline reader for libpcap captures and uncompressed pcapng ones, so that
//! reading a file scales with the workers. The reader thread only finds where blocks of whole
//! records begin and end, by hopping libpcap record headers in order (or walking pcapng blocks,
//! following sections and interfaces); reading the blocks (`pread`, 256 KiB each) and turning
//! them into work — decoding every frame, checking its timestamp against the one before (in
//! pcapng, the one before on its interface), sharding it by the address-pair hash — is done by
//! whichever thread is free (a worker with nothing to process, the reader waiting for a read):
//! any block, in any order. From three workers on, the thread that reads a libpcap block also
//! partitions it from where its records appear to start, while its bytes are in that thread's
//! cache; the reader takes that work when the guess proves right (and the block's first record
//! passes its timestamp check against the block before), and otherwise has the block partitioned
//! again. The thread that reads a pcapng block likewise walks its usual blocks from where they
//! appear to start, and the reader thread takes that walk where the real blocks meet it, rather
//! than walking them itself. Packets are numbered within their block, and the block carries the
//! number of its first. Every worker then takes its share of every block in file order, so each
//! flow's packets, the capture clock and the timestamp events arrive exactly as the sequential
//! pipeline delivers them, and the counts are the same (tests/parallel.rs compares the two). A
//! gzip libpcap capture is read as a stream by the reader thread instead. Buffers are pooled: a
//! block goes back to the pool when the last worker lets go of it.

use crate::batch::{Batch, Pkt};
use crate::decode::{decode, decode_into, Decoded};
use crate::hash::pick;
use crate::pipeline::{FileReport, Options, Report};
use crate::prefault::{Prefaulter, Shared};
use crate::source::pcap::{
    legacy_caplen, legacy_record, legacy_u32, ng_epb_len, ng_if_id, ng_packet, ng_step, ng_u32, Be,
    Iface, Le, Legacy, NgState, NgStep, Order, PcapFile, LEGACY_HEADER, MAX_RECORD, NG_EPB, NG_SPB,
};
use crate::source::Frame;
use crate::spin::Spin;
use crate::timeline::{Collector, Timeline};
use crate::timestamps::{self, measure, Anomaly, FlowId, Spacing, EVENTS_PER_SOURCE};
use crate::worker::Worker;
use crossbeam_channel::{bounded, select, Receiver, Sender, TryRecvError};
use metrics::events::EventSink;
use metrics::{slot, Counters, DropReason, LocalHist, Source};
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Packets between two publications of a thread's counters (a scrape during a read sees them
/// this fresh; the end of the read publishes everything).
const PUBLISH_EVERY: usize = 16 * 1024;

/// Bytes of file per block (a record larger than this gets a block of its own).
const BLOCK: usize = 256 * 1024;
/// A minimum-size Ethernet frame (60 bytes without its FCS) and its 16-byte record header.
const MIN_RECORD: usize = 76;

/// Offset and length of a frame within a block's data.
type Range = (u32, u32);

/// A timestamp anomaly found while partitioning, turned into an event (or not: the budget is
/// per file, so it is spent in file order) when the block is processed.
struct Cand {
    negative: bool,
    /// The record's place in its block (0 for the first; the block's `first_number` makes it
    /// the number in the file).
    number: u64,
    delta: i64,
    ts: i64,
    /// Its timestamp source (a pcapng interface's index in the file; 0 in a legacy file).
    iface: u32,
    /// The frame, as a range of `data`, and its link type.
    frame: Range,
    link: u32,
    /// The record before it from the same source: its number less the block's first (negative
    /// where it lies in an earlier block), its link type, and its frame: a range of `data`, or
    /// (`prev_before`) of `prev_frame`.
    prev_number: i64,
    prev_link: u32,
    prev: Range,
    prev_before: bool,
}

/// The mean record size (bytes, header included) from which a block's packets are copied into
/// one row per worker rather than listed by index. A worker then reads its records one after the
/// other instead of every n-th record of the block, which the processor's prefetcher can follow.
/// It pays where records are large and few (16-core machine, 8 M packets, medians of 5, same
/// run: the mix, 271 bytes a record, 16 workers 32.9 -> 40.0 Mpps, 8 workers 24.1 -> 29.5); with
/// small ones the copy costs more than it saves (floods, 70-76 bytes: 16 workers -5 % UDP,
/// -21 % SYN, as their partitioning time doubled).
const ROWS_FROM: u32 = 128;

/// The reusable buffers of one block.
#[derive(Default)]
struct Bufs {
    data: Vec<u8>,
    /// The block's packets in file order, decoded where they lie (unless `in_rows`: then only
    /// where each record is decoded before it is copied to its worker's row).
    pkts: Vec<Pkt>,
    /// With more than one worker, each worker's packets in file order, either as indices into
    /// `pkts` (`parts`) or, when `in_rows`, copied in a row (`rows`): see ROWS_FROM.
    parts: Vec<Vec<u32>>,
    rows: Vec<Vec<Pkt>>,
    in_rows: bool,
    cands: Vec<Cand>,
    /// The frame of the record before the block's first (for an event naming its flow); in a
    /// pcapng file, the frames of `ng_prevs`, one after the other.
    prev_frame: Vec<u8>,
    /// pcapng: for each interface with packets in the block, its last packet before the block
    /// (what its first packet in the block is checked against), and, while the block is
    /// partitioned, its latest packet.
    ng_prevs: Vec<IfPrev>,
    ng_cur: Vec<IfCur>,
    /// What the thread that read the block found partitioning it from its guessed first record
    /// (three workers or more; `spec_ok`: it did), for the reader to take if the guess was
    /// right. Boxed: buffers move through channels, and this need not move with them.
    spec: Box<Filled>,
    spec_ok: bool,
}

/// A block as read: whole records, not yet decoded.
struct RawBlock {
    seq: u64,
    file: usize,
    first_number: u64,
    /// The time of the record before the first (number `first_number - 1`; None at the start of
    /// a file).
    prev: Option<i64>,
    /// Where in `bufs.data` the block's records lie, and how many there are.
    range: Range,
    records: u64,
    bufs: Bufs,
    /// pcapng: the file's sections and interfaces where the block begins.
    ng: NgStart,
}

/// A pcapng file as it stands where a block begins: its section and interfaces, and the time of
/// the latest enhanced packet block (which a simple packet block inherits).
#[derive(Clone, Default)]
struct NgStart {
    state: Arc<NgState>,
    last_ts: i64,
    /// A section header within the block changes the byte order.
    mixed: bool,
}

/// A pcapng interface's last packet before a block: its index in the file, link type, time,
/// number in the file and frame (a range of the block's `prev_frame`).
#[derive(Clone, Copy)]
struct IfPrev {
    idx: u32,
    link: u32,
    ts: i64,
    number: u64,
    frame: Range,
}

/// A pcapng interface's latest packet while a block is partitioned: as `IfPrev`, numbered from
/// the block's first packet (negative before it), its frame in the block's data or (`before`) in
/// `prev_frame`; and the block's candidates for events on the interface so far.
#[derive(Clone, Copy)]
struct IfCur {
    idx: u32,
    link: u32,
    ts: i64,
    number: i64,
    frame: Range,
    before: bool,
    budget: Budget,
}

/// What the reader keeps of a pcapng file as it walks it: where it stands (`NgStart`), and each
/// interface's last packet so far with its frame.
#[derive(Default)]
struct NgRead {
    at: NgStart,
    prevs: Vec<(IfPrev, Vec<u8>)>,
}

/// The interface of the latest pcapng packet, kept while the next ones name the same (most
/// packets do): its number in its section (`u64::MAX` for a simple packet block's), index in the
/// file and description. Emptied where a section or an interface begins.
struct IfCache {
    key: u64,
    idx: u32,
    ifc: Iface,
}

impl Default for IfCache {
    fn default() -> IfCache {
        IfCache {
            key: NO_KEY,
            idx: 0,
            ifc: Iface::UNKNOWN,
        }
    }
}

impl IfCache {
    /// The interface a packet block of type `ty` naming `if_id` is on, in a file as `st` says.
    #[inline(always)]
    fn get(&mut self, st: &NgState, ty: u32, if_id: u32) -> (u32, &Iface) {
        let key = if ty == NG_SPB { u64::MAX } else { if_id as u64 };
        if key != self.key {
            (self.idx, self.ifc) = st.iface(ty, if_id);
            self.key = key;
        }
        (self.idx, &self.ifc)
    }
}

/// What the reader notes of a pcapng block's packets as it walks them, so that at the block's
/// end it finds each interface's last packet, and the latest enhanced packet block's time, without
/// working out every packet's time and frame.
struct NgHop {
    last: Vec<LastPkt>,
    /// The latest packet's interface: its key (as `IfCache`'s) and its place in `last`.
    key: u64,
    at: usize,
    /// The latest enhanced packet block whose time is still to be worked out (a simple packet
    /// block inherits it): where it starts, and its interface's place in `last`.
    epb: Option<(usize, usize)>,
}

/// An interface met in a pcapng block: its index in the file, description and byte order as its
/// latest packet found them, and that packet: where it starts, its block type, its number in the
/// block and (a simple packet block) the time it inherits.
struct LastPkt {
    idx: u32,
    ifc: Iface,
    be: bool,
    pos: usize,
    ty: u32,
    number: u64,
    spb_ts: i64,
}

impl Default for NgHop {
    fn default() -> NgHop {
        NgHop {
            last: Vec::new(),
            key: NO_KEY,
            at: 0,
            epb: None,
        }
    }
}

/// `NgHop::key` and `IfCache::key` before any packet, and after a section or interface block.
const NO_KEY: u64 = u64::MAX - 1;

impl NgHop {
    /// Ready for the next block.
    fn clear(&mut self) {
        self.last.clear();
        (self.key, self.at, self.epb) = (NO_KEY, 0, None);
    }

    /// The usual blocks from `pos` of `data` on, while they start before `end` (`ng_epb_len`;
    /// the block's first packet `number`): where the next block starts, and how many were met.
    #[inline(always)]
    fn epbs<O: Order>(
        &mut self,
        data: &[u8],
        mut pos: usize,
        end: usize,
        be: O,
        at: &mut NgStart,
        number: u64,
    ) -> (usize, u64) {
        let mut n = 0;
        // The latest packet, noted only once the interface changes or the run ends (it is the
        // last of its interface so far).
        let mut latest = None;
        while pos < end {
            let Some(len) = ng_epb_len(&data[pos..], be) else {
                break;
            };
            if ng_if_id(&data[pos..], NG_EPB, be) as u64 != self.key {
                if let Some((p, k)) = latest.take() {
                    self.note(data, p, NG_EPB, at, k);
                }
                self.packet(data, pos, NG_EPB, be, at, number + n);
            } else {
                latest = Some((pos, number + n));
            }
            n += 1;
            pos += len;
        }
        if let Some((p, k)) = latest {
            self.note(data, p, NG_EPB, at, k);
        }
        (pos, n)
    }

    /// The block's packets from `from` of `data` on as `g` (a reading thread's guess) found them,
    /// where the real ones meet it: the usual blocks up to where they meet walked here, the
    /// guessed ones from there taken. Where the next block starts and how many packets there
    /// were (the block's first at `from`); None where they do not meet.
    #[inline(never)]
    fn take_guess<O: Order>(
        &mut self,
        g: &NgGuess,
        data: &[u8],
        from: usize,
        own: usize,
        be: O,
        at: &mut NgStart,
    ) -> Option<(usize, u64)> {
        let (meet, i) = g.meet(data, from, own, be)?;
        let (_, before) = self.epbs(data, from, meet, be, at, 0);
        let n = g.take(i, self, data, be, at, before);
        Some((g.hop.end, before + n))
    }

    /// A packet block of type `ty` at `pos` of `data` (a section of byte order `be`, the file as
    /// `at` says), the block's packet `number`.
    #[inline(always)]
    fn packet<O: Order>(
        &mut self,
        data: &[u8],
        pos: usize,
        ty: u32,
        be: O,
        at: &mut NgStart,
        number: u64,
    ) {
        let if_id = ng_if_id(&data[pos..], ty, be);
        let be = be.big();
        let key = if ty == NG_SPB { u64::MAX } else { if_id as u64 };
        if key != self.key {
            let (idx, ifc) = at.state.iface(ty, if_id);
            self.at = match self.last.iter().position(|p| p.idx == idx) {
                Some(i) => i,
                None => {
                    self.last.push(LastPkt {
                        idx,
                        ifc,
                        be,
                        pos,
                        ty,
                        number,
                        spb_ts: 0,
                    });
                    self.last.len() - 1
                }
            };
            (self.last[self.at].ifc, self.last[self.at].be) = (ifc, be);
            self.key = key;
        }
        self.note(data, pos, ty, at, number);
    }

    /// A packet block of type `ty` at `pos`, the block's packet `number`, on the interface of
    /// the packet before it: now that interface's last.
    #[inline(always)]
    fn note(&mut self, data: &[u8], pos: usize, ty: u32, at: &mut NgStart, number: u64) {
        let spb_ts = if ty == NG_SPB {
            self.settle(data, at);
            at.last_ts
        } else {
            self.epb = Some((pos, self.at));
            0
        };
        let e = &mut self.last[self.at];
        (e.pos, e.ty, e.number, e.spb_ts) = (pos, ty, number, spb_ts);
    }

    /// Before a section or interface block: what the file says of interfaces may change.
    fn meta(&mut self, data: &[u8], at: &mut NgStart) {
        self.settle(data, at);
        self.key = NO_KEY;
    }

    /// Works out the time of the latest enhanced packet block, if still to do.
    fn settle(&mut self, data: &[u8], at: &mut NgStart) {
        if let Some((pos, i)) = self.epb.take() {
            at.last_ts = self.last[i].frame(data, pos, NG_EPB, 0).ts_ns;
        }
    }

    /// Each interface's last packet in the block (`data`).
    fn last_packets<'a>(&'a self, data: &'a [u8]) -> impl Iterator<Item = Seen> + 'a {
        self.last.iter().map(move |e| {
            let fr = e.frame(data, e.pos, e.ty, e.spb_ts);
            let off = fr.data.as_ptr() as usize - data.as_ptr() as usize;
            Seen {
                idx: e.idx,
                link: fr.link,
                ts: fr.ts_ns,
                number: e.number,
                frame: (off as u32, fr.data.len() as u32),
            }
        })
    }
}

impl LastPkt {
    /// The frame of the packet block of type `ty` at `pos` of `data`, on this interface.
    fn frame<'a>(&self, data: &'a [u8], pos: usize, ty: u32, last_ts: i64) -> Frame<'a> {
        let len = ng_u32(data, pos + 4, self.be) as usize;
        ng_packet(
            &data[pos..pos + len],
            ty,
            self.be,
            (self.idx, &self.ifc),
            last_ts,
        )
    }
}

/// A packet the reader met in a pcapng block: its interface, link, time, number in the block and
/// frame (a range of the block's data).
#[derive(Clone, Copy)]
struct Seen {
    idx: u32,
    link: u32,
    ts: i64,
    number: u64,
    frame: Range,
}

/// A partitioned block, shared by every worker; its buffers go back to the pool on drop.
struct Block {
    seq: u64,
    file: usize,
    /// The number of the block's first record in its file (packets and candidates are numbered
    /// from 0 within the block).
    first_number: u64,
    /// The latest capture time within the block.
    clock: i64,
    bufs: Bufs,
    recycle: Sender<Bufs>,
}

impl Drop for Block {
    fn drop(&mut self) {
        // The pool channel holds every buffer set there is: this send never blocks.
        let _ = self.recycle.send(std::mem::take(&mut self.bufs));
    }
}

/// What every thread of the parallel read shares.
struct Ctx {
    todo: Receiver<RawBlock>,
    /// Blocks to read with `pread` (any thread with nothing better to do takes one).
    reads: Receiver<ReadTask>,
    outs: Vec<Sender<Arc<Block>>>,
    recycle: Sender<Bufs>,
    /// Blocks in all (set when the reader is done, before `todo` closes).
    total: AtomicU64,
    files: Vec<FileCtx>,
    link_bps: u64,
    /// The spacing check at `link_bps` (its table built once per run).
    spacing: Spacing,
    events: EventSink,
    /// How a thread with nothing to do spins before it sleeps (the `spin` module).
    spin: Spin,
    /// The workers' requests to have their flow slabs mapped ahead, for whichever thread has
    /// nothing else to do.
    prefault: Shared,
}

impl Ctx {
    /// A block to read or to partition is waiting for whichever thread is free (what every idle
    /// thread's spin watches, beside its own channel).
    fn shared_work(&self) -> bool {
        self.blocks_waiting() || self.prefault.waiting()
    }

    /// A block to read or to partition is waiting.
    fn blocks_waiting(&self) -> bool {
        !self.reads.is_empty() || !self.todo.is_empty()
    }
}

struct FileCtx {
    origin: String,
    /// A pcapng file (else legacy: `link`, `big_endian` and `ns` say how to read it).
    ng: bool,
    link: u32,
    big_endian: bool,
    ns: bool,
    first_ts: AtomicI64,
    last_ts: AtomicI64,
}

/// A thread's counters for the reader-side work it does (packets, bytes, decode errors,
/// timestamps), published once per block.
struct Side {
    c: Counters,
    publish: Arc<metrics::Shared>,
    unpublished: u64,
    spent: Spent,
    /// `read --report`: what this thread counts (packets, bytes, timestamp checks), over capture
    /// time.
    timeline: Option<(Timeline, Collector)>,
}

impl Side {
    fn new(opts: &Options) -> Side {
        Side {
            c: Counters::new(),
            publish: opts.hub.register(),
            unpublished: 0,
            spent: Spent::new(),
            timeline: opts.timeline.clone().map(|c| (c.timeline(), c)),
        }
    }

    /// Publishes the counters and hands the timeline over: the thread is done.
    fn finish(&mut self) {
        self.publish.publish(&self.c);
        if let Some((t, col)) = self.timeline.take() {
            col.deliver(t, &self.c);
        }
    }
}

/// Where a thread's wall time went, for the scaling benchmark: with SPANWATCH_PROFILE_THREADS set,
/// each thread of a parallel read prints it to stderr as it ends. The clock is read per block
/// and per wait, never per packet (and not at all when the variable is unset).
struct Spent {
    start: Option<Instant>,
    partition: Duration,
    read: Duration,
    process: Duration,
    /// Mapping pages ahead of the workers (`Shared`).
    prefault: Duration,
    blocked: Duration,
    /// Blocks the reader hopped, and of those, how many the reading thread's guess covered.
    blocks: u64,
    guessed: u64,
    /// Blocks handed on as their reading thread partitioned them.
    filled: u64,
}

impl Spent {
    fn new() -> Spent {
        let on = std::env::var_os("SPANWATCH_PROFILE_THREADS").is_some();
        Spent {
            start: on.then(Instant::now),
            partition: Duration::ZERO,
            read: Duration::ZERO,
            process: Duration::ZERO,
            prefault: Duration::ZERO,
            blocked: Duration::ZERO,
            blocks: 0,
            guessed: 0,
            filled: 0,
        }
    }
    /// Now, when profiling.
    #[inline]
    fn now(&self) -> Option<Instant> {
        self.start.map(|_| Instant::now())
    }
    /// Time counted to a task (partitioning, reading, processing, mapping pages) so far.
    fn busy(&self) -> Duration {
        self.partition + self.read + self.process + self.prefault
    }
    /// Counts the time since `t0` as blocked, less the tasks done meanwhile (`busy0`: `busy()` at
    /// `t0`).
    fn waited(&mut self, t0: Option<Instant>, busy0: Duration) {
        if let Some(t0) = t0 {
            let tasks = self.busy() - busy0;
            self.blocked += t0.elapsed().saturating_sub(tasks);
        }
    }
    fn print(&self, name: &str) {
        let Some(start) = self.start else { return };
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let wall = start.elapsed();
        let other = wall.saturating_sub(self.busy() + self.blocked);
        eprintln!(
            "thread {name}: wall {:.1} ms, process {:.1}, partition {:.1}, read {:.1}, prefault {:.1}, blocked {:.1}, other {:.1}, page faults {}{}",
            ms(wall),
            ms(self.process),
            ms(self.partition),
            ms(self.read),
            ms(self.prefault),
            ms(self.blocked),
            ms(other),
            std::fs::read_to_string("/proc/thread-self/stat")
                .ok()
                .and_then(|s| minor_faults(&s))
                .map_or_else(|| "?".to_string(), |n| n.to_string()),
            if self.blocks > 0 {
                format!(
                    "; blocks hopped {}, by their reading thread {}, partitioned by it {}",
                    self.blocks, self.guessed, self.filled
                )
            } else {
                String::new()
            }
        );
    }
}

/// The minor page faults a thread has taken, from its `/proc/thread-self/stat` line (the tenth
/// field; the name, second, is in parentheses and may hold spaces).
fn minor_faults(stat: &str) -> Option<u64> {
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(7)?
        .parse()
        .ok()
}

/// Since `t0` (when profiling).
#[inline]
fn since(t0: Option<Instant>) -> Duration {
    t0.map_or(Duration::ZERO, |t| t.elapsed())
}

/// The files `run` can read in parallel: every one a legacy capture opened from a path.
pub(crate) fn inputs(files: &[PcapFile]) -> Option<Vec<Input>> {
    files
        .iter()
        .map(|f| {
            f.legacy()
                .map(Input::Legacy)
                .or_else(|| f.ng_plain().map(|(file, size)| Input::Ng(file, size)))
        })
        .collect()
}

/// A file as the parallel reader takes it.
pub(crate) enum Input {
    /// A legacy capture, positioned after its header.
    Legacy(Legacy),
    /// An uncompressed pcapng file, and its size.
    Ng(std::fs::File, u64),
}

/// Reads `files` (`inputs[i]` the same file as `files[i]`) through `opts.workers` workers.
pub(crate) fn run(
    files: &[PcapFile],
    inputs: Vec<Input>,
    opts: &Options,
    progress: &(dyn Fn(u64) + Sync),
) -> Report {
    let n = opts.workers.max(1);
    let pool = 3 * n + 3;
    let (todo_tx, todo_rx) = bounded::<RawBlock>(pool);
    let (reads_tx, reads_rx) = bounded::<ReadTask>(pool);
    let (done_tx, done_rx) = bounded::<ReadDone>(pool);
    let (recycle_tx, recycle_rx) = bounded::<Bufs>(pool);
    for _ in 0..pool {
        let _ = recycle_tx.send(Bufs {
            // Room for a block of minimum-size frames shared evenly, so a flood's blocks do not
            // grow (and copy) these on the packet path; pages are only touched as they fill.
            pkts: Vec::with_capacity(BLOCK / MIN_RECORD + 1),
            parts: (0..if n > 1 { n } else { 0 })
                .map(|_| Vec::with_capacity(BLOCK / MIN_RECORD / n + 64))
                .collect(),
            // A row holds records of ROWS_FROM bytes or more: fewer to a block.
            rows: (0..if n > 1 { n } else { 0 })
                .map(|_| Vec::with_capacity(BLOCK / ROWS_FROM as usize / n + 64))
                .collect(),
            ..Bufs::default()
        });
    }
    let mut outs = Vec::with_capacity(n);
    let mut ins = Vec::with_capacity(n);
    for _ in 0..n {
        let (tx, rx) = bounded::<Arc<Block>>(pool);
        outs.push(tx);
        ins.push(rx);
    }
    let (prefault, shared) = Prefaulter::new();
    // With one worker a thread of its own maps ahead, as before session 25: the read's two
    // threads are busy by turns, and the reader thread, mapping in its idle moments, left the
    // worker waiting for blocks (this VM, 500 k mix, 41 alternating runs: 41.8 ms against 32.6
    // with the thread). With more, whichever thread of the read is idle does: a thread of its
    // own would take a processor from a worker (bench/RESULTS.md, session 25).
    let (shared, mapper) = if n == 1 {
        (Shared::none(), shared.into_thread())
    } else {
        (shared, None)
    };
    let ctx = Arc::new(Ctx {
        todo: todo_rx,
        reads: reads_rx,
        outs,
        recycle: recycle_tx,
        total: AtomicU64::new(u64::MAX),
        files: files
            .iter()
            .zip(&inputs)
            .map(|(f, input)| {
                let (ng, link, big_endian, ns) = match input {
                    Input::Legacy(l) => (false, l.link, l.big_endian, l.ns),
                    Input::Ng(..) => (true, 0, false, false),
                };
                FileCtx {
                    origin: f.path().to_string(),
                    ng,
                    link,
                    big_endian,
                    ns,
                    first_ts: AtomicI64::new(i64::MAX),
                    last_ts: AtomicI64::new(i64::MIN),
                }
            })
            .collect(),
        link_bps: opts.link_bps.max(1),
        spacing: Spacing::new(opts.link_bps),
        events: opts.events.clone(),
        // The reading thread and the workers.
        spin: Spin::here(n + 1),
        prefault: shared,
    });
    let per_worker_flows = (opts.max_flows / n).max(1);
    let cfg = Arc::new(opts.cfg.clone());
    let handles: Vec<_> = ins
        .into_iter()
        .enumerate()
        .map(|(w, mine)| {
            let worker = Worker::new(
                per_worker_flows,
                opts.hub.register(),
                opts.events.clone(),
                cfg.clone(),
                Source::Pcap,
            )
            .with_timeline(opts.timeline.clone())
            .with_prefault(&prefault);
            let side = Side::new(opts);
            let ctx = ctx.clone();
            std::thread::Builder::new()
                .name(format!("worker-{w}"))
                .spawn(move || worker_loop(w, worker, side, &ctx, mine))
                .expect("spawn worker thread")
        })
        .collect();

    let mut r = Reader {
        ctx: &ctx,
        todo: todo_tx,
        recycle: recycle_rx,
        side: Side::new(opts),
        seq: 0,
        reads: reads_tx,
        done_tx,
        done_rx,
    };
    let mut report = Report::default();
    let mut done_bytes = 0u64;
    for (fi, input) in inputs.into_iter().enumerate() {
        let mut st = FileState {
            fi,
            fr: FileReport {
                path: ctx.files[fi].origin.clone(),
                ..FileReport::default()
            },
            prev: None,
            prev_frame: Vec::new(),
            ng: NgRead::default(),
        };
        let at = |b| progress(done_bytes + b);
        let bytes = match input {
            Input::Legacy(mut l) => match l.plain.take() {
                Some((file, size)) => r.read_at(&mut st, Arc::new(file), size, &at),
                None => r.read_stream(&mut st, &mut l, &at),
            },
            Input::Ng(file, size) => r.read_ng(&mut st, Arc::new(file), size, &at),
        };
        let (fr, bytes) = r.end_file(st, bytes, &at);
        done_bytes += bytes;
        report.files.push(fr);
    }
    let Reader {
        todo: todo_tx,
        mut side,
        seq,
        ..
    } = r;
    ctx.total.store(seq, Ordering::SeqCst);
    drop(todo_tx);
    // Help with what is left to partition, then wait for the workers.
    while let Ok(raw) = ctx.todo.recv() {
        partition(raw, &ctx, &mut side);
    }
    side.finish();
    side.spent.print("reader");
    for h in handles {
        let _ = h.join();
    }
    // The workers' ends of the queue are gone with them: the mapping thread ends.
    drop(prefault);
    if let Some(m) = mapper {
        let _ = m.join();
    }
    for (fr, f) in report.files.iter_mut().zip(&ctx.files) {
        if fr.frames > 0 {
            fr.first_ts = Some(f.first_ts.load(Ordering::SeqCst));
            fr.last_ts = Some(f.last_ts.load(Ordering::SeqCst));
        }
    }
    report
}

/// The reader thread's side of a run.
struct Reader<'a> {
    ctx: &'a Ctx,
    todo: Sender<RawBlock>,
    recycle: Receiver<Bufs>,
    side: Side,
    seq: u64,
    reads: Sender<ReadTask>,
    done_tx: Sender<ReadDone>,
    done_rx: Receiver<ReadDone>,
}

/// What the reader knows of the file it is reading.
struct FileState {
    fi: usize,
    fr: FileReport,
    /// The last record handed on: its time, and its frame (for the next block's first timestamp
    /// check).
    prev: Option<i64>,
    prev_frame: Vec<u8>,
    /// A pcapng file: where the reader stands in it.
    ng: NgRead,
}

/// A block for a thread to read with `pread` (into `bufs.data`, from `off`, `len` bytes).
struct ReadTask {
    file: Arc<std::fs::File>,
    /// The file's index among the run's files.
    fi: usize,
    k: u64,
    off: u64,
    len: usize,
    /// Where the block's own bytes end (relative to `off`; the rest is slack), and the file's
    /// byte order (a pcapng file's: its section's as the block was asked for) and time unit:
    /// what the reading thread needs to hop the block's records.
    own: usize,
    big_endian: bool,
    ns: bool,
    /// Whether to hop the block's records from a guessed start (GUESS_FROM workers on).
    guess: bool,
    bufs: Bufs,
    done: Sender<ReadDone>,
}

/// Workers from which the reading threads hop their blocks' records: with one or two, the reader
/// thread keeps up hopping every block itself (with one worker it was busy 62 % of the time on
/// the 16-core machine, 8 M-packet mix), and the guess would be work done twice.
const GUESS_FROM: usize = 3;

/// A read block: its number in the file, buffers, how many bytes were read, and the records the
/// reading thread found in it by guessing where the first one starts.
type ReadDone = (u64, Bufs, std::io::Result<usize>, Option<Guess>);

/// What a reading thread found hopping its block from a guessed start.
#[derive(Clone, Copy, Debug)]
enum Guess {
    Legacy(Hop),
    Ng(NgGuess),
}

/// The records of a block hopped from a guessed start: the truth from the first of them that
/// the block's real records land on (`meet`), which the reader can tell once it knows where the
/// block before ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Hop {
    /// Where the first records hopped start (`path_len` of them, at most PATH).
    path: [u32; PATH],
    path_len: usize,
    /// Where the record after the last hopped one starts.
    end: usize,
    records: u64,
    /// Where the last hopped record starts.
    last: usize,
}

/// Record starts a guessed hop keeps, for the reader to find where the block's real records
/// meet the guessed ones (a guess that started inside a record often falls into step after a
/// record or two).
const PATH: usize = 8;

impl Hop {
    /// Hops the block's real records from `from` (where the block before ended) until one
    /// starts where a guessed record does: from there on the guess is the truth. Returns the
    /// block's records, where the last starts and where the next one starts; None when the two
    /// do not meet within PATH records.
    fn meet<const BIG_ENDIAN: bool>(
        &self,
        data: &[u8],
        from: usize,
        own: usize,
    ) -> Option<(u64, usize, usize)> {
        let (mut at, mut before) = (from, 0u64);
        for _ in 0..=PATH {
            if let Some(i) = self.path[..self.path_len]
                .iter()
                .position(|&q| q as usize == at)
            {
                return Some((before + self.records - i as u64, self.last, self.end));
            }
            at = hop_one::<BIG_ENDIAN>(data, at, own)?;
            before += 1;
        }
        None
    }
}

/// Hops the one record at `at` when it starts before `own`, lies whole in `data` and is no
/// larger than any record may be: where the next record starts.
#[inline(always)]
fn hop_one<const BIG_ENDIAN: bool>(data: &[u8], at: usize, own: usize) -> Option<usize> {
    if at >= own || data.len().checked_sub(at)? < 16 {
        return None;
    }
    let len = 16 + legacy_caplen(&data[at..], BIG_ENDIAN) as usize;
    (len <= MAX_RECORD && len <= data.len() - at).then_some(at + len)
}

/// Reads `len` bytes at `off` into the start of `bufs.data` (short only at the end of the file),
/// then, while the bytes are in this thread's cache, hops the block's records from where they
/// appear to start and partitions them from there. Any thread may run it: reading, hopping and
/// partitioning are what runs in parallel; the reader thread only checks that each guess meets
/// the end of the block before. The time goes to `side`'s reading and partitioning.
fn read_task(t: ReadTask, ctx: &Ctx, side: &mut Side) {
    let ReadTask {
        file,
        fi,
        k,
        off,
        len,
        own,
        big_endian,
        ns,
        guess,
        mut bufs,
        done,
    } = t;
    let t0 = side.spent.now();
    if bufs.data.is_empty() {
        // A new buffer: zeroed memory asked of the allocator, which fresh pages from the system
        // already are (no pass over them).
        bufs.data = vec![0; len.max(BLOCK + SLACK)];
    } else if bufs.data.len() < len {
        // Buffers keep their length between uses: only growth is zero-filled.
        bufs.data.resize(len, 0);
    }
    let r = pread_full(&file, &mut bufs.data[..len], off);
    let hop = match r {
        Ok(got) if guess => {
            let data = &bufs.data[..got];
            match (ctx.files[fi].ng, big_endian) {
                (false, true) => guess_hop::<true>(data, own, ns).map(Guess::Legacy),
                (false, false) => guess_hop::<false>(data, own, ns).map(Guess::Legacy),
                (true, true) => guess_ng(data, own, Be).map(Guess::Ng),
                (true, false) => guess_ng(data, own, Le).map(Guess::Ng),
            }
        }
        _ => None,
    };
    side.spent.read += since(t0);
    // While the block's bytes are in this thread's cache, partition its records from the
    // guessed first one: the reader takes the result if the guess meets where the block
    // before ended at its first record.
    bufs.spec_ok = false;
    // Not with a timeline: its records are counted one by one, in their block's place.
    if let Some(Guess::Legacy(h)) = hop.filter(|_| side.timeline.is_none()) {
        let t0 = side.spent.now();
        let f = &ctx.files[fi];
        let c = &mut side.c;
        let filled = match (big_endian, ns) {
            (false, false) => fill_ahead::<false, false>(&mut bufs, &h, f, ctx, c),
            (false, true) => fill_ahead::<false, true>(&mut bufs, &h, f, ctx, c),
            (true, false) => fill_ahead::<true, false>(&mut bufs, &h, f, ctx, c),
            (true, true) => fill_ahead::<true, true>(&mut bufs, &h, f, ctx, c),
        };
        if let Some(filled) = filled {
            *bufs.spec = filled;
            bufs.spec_ok = true;
        }
        side.spent.partition += since(t0);
    }
    let _ = done.send((k, bufs, r, hop));
}

/// The largest original length a guessed record header may claim (1 MiB: more than the largest
/// offloaded segment a host capture shows).
const MAX_WIRE: u32 = 1 << 20;

/// Records in a row that must look like legacy record headers before a guess is taken.
const SYNC_RECORDS: usize = 4;

/// Where the first record of a block's bytes (`data`, the block's own part ending at `own`)
/// appears to start, and the records hopped from there; None when no offset looks right.
/// Only a guess: a start within a record's payload can pass these checks, which is why the
/// reader compares it with where the block before really ended.
fn guess_hop<const BIG_ENDIAN: bool>(data: &[u8], own: usize, ns: bool) -> Option<Hop> {
    let frac_limit = if ns { 1_000_000_000 } else { 1_000_000 };
    let field = |b: &[u8], at: usize| legacy_u32(&b[at..], BIG_ENDIAN);
    // A record header at `o` that a capture could hold: its length, and its seconds.
    let header = |o: usize| -> Option<(usize, u32)> {
        let h = data.get(o..o + 16)?;
        let (sec, frac, caplen, orig) = (field(h, 0), field(h, 4), field(h, 8), field(h, 12));
        let len = 16 + caplen as usize;
        let ok = frac < frac_limit && caplen > 0 && caplen <= orig && orig <= MAX_WIRE;
        (ok && o + len <= data.len()).then_some((len, sec))
    };
    let plausible = |o: usize| -> bool {
        let (mut at, mut sec0) = (o, None);
        for _ in 0..SYNC_RECORDS {
            let Some((len, sec)) = header(at) else {
                return false;
            };
            // Neighbouring records of a capture lie within an hour of each other.
            if sec0.is_some_and(|s: u32| s.abs_diff(sec) > 3600) {
                return false;
            }
            sec0 = Some(sec);
            at += len;
        }
        true
    };
    // Most offsets fail on their time fraction or caplen: test those two before the rest.
    let quick =
        |o: usize| field(data, o + 4) < frac_limit && field(data, o + 8).wrapping_sub(1) < MAX_WIRE;
    let scan = own.min(data.len().saturating_sub(15));
    let start = if ns {
        (0..scan).find(|&o| quick(o) && plausible(o))?
    } else {
        // A microsecond fraction (< 2^20) has a zero most significant byte: only offsets with a
        // zero byte there can start a record, and memchr finds those a vector at a time.
        let msb = if BIG_ENDIAN { 4 } else { 7 };
        let hay = data.get(msb..msb + scan)?;
        memchr::memchr_iter(0, hay).find(|&o| quick(o) && plausible(o))?
    };
    let (mut path, mut path_len, mut at, mut last) = ([0u32; PATH], 0, start, start);
    while path_len < PATH {
        let Some(to) = hop_one::<BIG_ENDIAN>(data, at, own) else {
            break;
        };
        path[path_len] = at as u32;
        path_len += 1;
        last = at;
        at = to;
    }
    let (end, more, l) = hop_records::<BIG_ENDIAN>(data, at, own);
    let records = path_len as u64 + more;
    (records > 0).then_some(Hop {
        path,
        path_len,
        end,
        records,
        last: if more > 0 { l } else { last },
    })
}

/// Interfaces a pcapng guess follows: a packet on one more ends the guessed run there.
const NG_GUESS_IFACES: usize = 8;

/// The usual pcapng blocks (enhanced packet blocks without options, `ng_epb_len`) of a block's
/// bytes hopped from a guessed start, by the thread that read them: what the reader walks
/// otherwise, one block after the other, in file order.
#[derive(Clone, Copy, Debug)]
struct NgGuess {
    /// Where the first of them start, where the one after the last starts, how many there are
    /// (`last` unused).
    hop: Hop,
    /// The byte order they were read in (the section's as the block was asked for).
    big_endian: bool,
    /// Each interface's last packet among them: where it starts, its interface id (as the block
    /// says) and its number among them.
    lasts: [(u32, u32, u32); NG_GUESS_IFACES],
    n_lasts: usize,
}

/// Where a block's first usual pcapng block appears to start (4-byte aligned, as every block of
/// the file is, and followed by SYNC_RECORDS - 1 more), and the usual blocks from there while
/// they start before `own`; None where no offset looks right. Only a guess, as `guess_hop`'s.
fn guess_ng<O: Order>(data: &[u8], own: usize, be: O) -> Option<NgGuess> {
    let chain = |o: usize| {
        let mut at = o;
        for _ in 0..SYNC_RECORDS {
            match ng_epb_len(&data[at..], be) {
                Some(len) => at += len,
                None => return false,
            }
        }
        true
    };
    let start = (0..own.min(data.len())).step_by(4).find(|&o| chain(o))?;
    let mut g = NgGuess {
        hop: Hop {
            path: [0; PATH],
            path_len: 0,
            end: start,
            records: 0,
            last: 0,
        },
        big_endian: be.big(),
        lasts: [(0, 0, 0); NG_GUESS_IFACES],
        n_lasts: 0,
    };
    // The latest packet's interface: its place in `lasts`.
    let mut cur = usize::MAX;
    let h = &mut g.hop;
    while h.end < own {
        let Some(len) = ng_epb_len(&data[h.end..], be) else {
            break;
        };
        let if_id = ng_if_id(&data[h.end..], NG_EPB, be);
        if cur >= g.n_lasts || g.lasts[cur].1 != if_id {
            cur = match g.lasts[..g.n_lasts].iter().position(|l| l.1 == if_id) {
                Some(i) => i,
                None if g.n_lasts < NG_GUESS_IFACES => {
                    g.n_lasts += 1;
                    g.n_lasts - 1
                }
                None => break,
            };
        }
        g.lasts[cur] = (h.end as u32, if_id, h.records as u32);
        if h.path_len < PATH {
            h.path[h.path_len] = h.end as u32;
            h.path_len += 1;
        }
        h.records += 1;
        h.end += len;
    }
    (g.hop.records > 0).then_some(g)
}

impl NgGuess {
    /// Walks the block's real usual blocks from `from` (where the block before ended) until one
    /// starts where a guessed one does: where that is and which of the guessed it is. None when
    /// they do not meet within PATH blocks. (Unlike libpcap's, a guess that starts inside a
    /// payload never falls into step later: a block ending where a real one starts has the real
    /// block before's length as its trailing length, and so is that block.)
    fn meet<O: Order>(
        &self,
        data: &[u8],
        from: usize,
        own: usize,
        be: O,
    ) -> Option<(usize, usize)> {
        let path = &self.hop.path[..self.hop.path_len];
        let mut at = from;
        for _ in 0..=PATH {
            if let Some(i) = path.iter().position(|&q| q as usize == at) {
                return Some((at, i));
            }
            if at >= own {
                return None;
            }
            at += ng_epb_len(&data[at..], be)?;
        }
        None
    }

    /// The guessed blocks from the `i`th on, taken as the block's packets from `number` on:
    /// each interface's last of them noted in `hop`, as walking them would. Returns how many
    /// they are.
    fn take<O: Order>(
        &self,
        i: usize,
        hop: &mut NgHop,
        data: &[u8],
        be: O,
        at: &mut NgStart,
        number: u64,
    ) -> u64 {
        let mut lasts = self.lasts;
        let lasts = &mut lasts[..self.n_lasts];
        // In the order they lie: the latest packet is noted last, as a walk leaves it.
        lasts.sort_unstable_by_key(|l| l.0);
        for &(pos, _, n) in lasts.iter().filter(|l| l.2 as usize >= i) {
            hop.packet(
                data,
                pos as usize,
                NG_EPB,
                be,
                at,
                number + (n as usize - i) as u64,
            );
        }
        self.hop.records - i as u64
    }
}

/// Fills `buf` from `off` on; returns how much it filled (less only at the end of the file).
fn pread_full(file: &std::fs::File, buf: &mut [u8], off: u64) -> std::io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], off + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Hops the legacy records that lie whole in `data` from offset `rel` on, while they start
/// before `end`: returns where the next record starts, how many were hopped and where the last
/// of them starts. Stops at a record that is not whole in `data` or is larger than any record
/// may be (the caller looks at that one).
#[inline]
fn hop_records<const BIG_ENDIAN: bool>(
    data: &[u8],
    mut rel: usize,
    end: usize,
) -> (usize, u64, usize) {
    let (mut n, mut last) = (0u64, 0usize);
    while let Some(next) = hop_one::<BIG_ENDIAN>(data, rel, end) {
        last = rel;
        rel = next;
        n += 1;
    }
    (rel, n, last)
}

/// A block as its read finished: its buffers, how many bytes were read, the reading thread's hop.
type Ready = (Bufs, std::io::Result<usize>, Option<Guess>);

/// The reads of one plain file, in blocks of BLOCK bytes from `base` (and SLACK more).
struct Reads {
    file: Arc<std::fs::File>,
    fi: usize,
    size: u64,
    base: u64,
    blocks: u64,
    /// Blocks asked for so far, those finished and not yet taken, and those still being read.
    issued: u64,
    ready: BTreeMap<u64, Ready>,
    outstanding: usize,
    /// A pcapng file: the byte order of the section the reader has reached (what a block asked
    /// for now is guessed in).
    ng_be: Option<bool>,
}

impl Reads {
    fn new(file: Arc<std::fs::File>, fi: usize, size: u64, base: u64) -> Reads {
        Reads {
            file,
            fi,
            size,
            base,
            blocks: size.saturating_sub(base).div_ceil(BLOCK as u64),
            issued: 0,
            ready: BTreeMap::new(),
            outstanding: 0,
            ng_be: None,
        }
    }
}

/// Bytes read past a block's end, so that a record straddling the boundary is usually whole
/// without a second read.
const SLACK: usize = 64 * 1024;

impl Reader<'_> {
    /// A free buffer set; while there is none, do other work instead of idling.
    fn take_bufs(&mut self) -> Bufs {
        take_bufs(self.ctx, &self.recycle, &mut self.side)
    }

    /// Takes the block of `records` records, the last at `last`, as the file's next: returns the
    /// time of the record before its first (None at the start of the file) and the number of
    /// its first.
    fn take_place(
        &mut self,
        st: &mut FileState,
        data: &[u8],
        records: u64,
        last: usize,
    ) -> (Option<i64>, u64) {
        let f = &self.ctx.files[st.fi];
        let (prev, first_number) = (st.prev, st.fr.frames + 1);
        st.fr.frames += records;
        // The block's last record is the next one's "previous".
        if let Some((ts, _, frame, _)) = legacy_record(&data[last..], f.big_endian, f.ns) {
            st.prev = Some(ts);
            st.prev_frame.clear();
            st.prev_frame.extend_from_slice(frame);
        }
        (prev, first_number)
    }

    /// Hands on a block its reading thread partitioned (`sp`), once its first record's time is
    /// checked against the record before it, which that thread could not see. A first record
    /// with an unusual delta (counted and perhaps reported with the rest of the file's, in
    /// order) sends the block to be partitioned again the usual way.
    fn emit_filled(&mut self, st: &mut FileState, mut bufs: Bufs, last: usize) {
        let ctx = self.ctx;
        let mut sp = std::mem::take(&mut *bufs.spec);
        let f = &ctx.files[st.fi];
        if let Some(prev) = st.prev {
            let first = legacy_record(&bufs.data[sp.range.0 as usize..], f.big_endian, f.ns);
            match first {
                Some((ts, wire_len, _, _)) if ctx.spacing.possible(ts - prev, wire_len) => {
                    sp.iat.observe((ts - prev) as u64);
                }
                _ => return self.emit(st, bufs, sp.range, sp.records, last),
            }
        }
        let (_, first_number) = self.take_place(st, &bufs.data, sp.records, last);
        self.side.spent.filled += 1;
        let seq = self.seq;
        self.seq += 1;
        hand_on(ctx, &mut self.side, seq, st.fi, first_number, &sp, bufs);
    }

    /// Hands on the records in `bufs.data[range]` (`records` of them, the last at `last`) to be
    /// partitioned.
    fn emit(
        &mut self,
        st: &mut FileState,
        mut bufs: Bufs,
        range: Range,
        records: u64,
        last: usize,
    ) {
        bufs.prev_frame.clear();
        bufs.prev_frame.extend_from_slice(&st.prev_frame);
        let (prev, first_number) = self.take_place(st, &bufs.data, records, last);
        let raw = RawBlock {
            seq: self.seq,
            file: st.fi,
            first_number,
            prev,
            range,
            records,
            bufs,
            ng: NgStart::default(),
        };
        self.seq += 1;
        let _ = self.todo.send(raw);
    }

    /// Counts how the file ended.
    fn end_file(&mut self, st: FileState, bytes: u64, progress: &dyn Fn(u64)) -> (FileReport, u64) {
        let c = &mut self.side.c;
        if st.fr.truncated_records > 0 {
            c.add(
                slot::capture_dropped(DropReason::TruncatedRecord, None),
                st.fr.truncated_records,
            );
        }
        if st.fr.corrupt.is_some() {
            c.inc(slot::capture_dropped(DropReason::CorruptRecord, None));
        }
        progress(bytes);
        (st.fr, bytes)
    }

    /// Reads a file that can only be read in order (gzip): one thread reads, blocks of whole
    /// records are found by hopping their headers, a partial last record carries over.
    fn read_stream(&mut self, st: &mut FileState, l: &mut Legacy, progress: &dyn Fn(u64)) -> u64 {
        let big_endian = self.ctx.files[st.fi].big_endian;
        let mut bytes = LEGACY_HEADER;
        let mut carry: Vec<u8> = Vec::new();
        let mut eof = false;
        while !eof {
            let mut bufs = self.take_bufs();
            let data = &mut bufs.data;
            data.clear();
            data.extend_from_slice(&carry);
            carry.clear();
            let mut want = BLOCK;
            // Read until the block holds at least one whole record (or the file ends).
            let (end, records, last) = loop {
                if data.len() < want {
                    let need = (want - data.len()) as u64;
                    match (&mut l.reader).take(need).read_to_end(data) {
                        Ok(got) if (got as u64) < need => eof = true,
                        Ok(_) => {}
                        Err(e) => {
                            st.fr.corrupt = Some((bytes, format!("read failed: {e}")));
                            eof = true;
                        }
                    }
                }
                let (end, records, next, last) = hop(data, big_endian);
                if records > 0 || eof {
                    break (end, records, last);
                }
                // One record larger than the block: grow it, up to the largest record there is.
                if next > MAX_RECORD {
                    break (0, 0, 0);
                }
                want = next.max(data.len() + 1);
            };
            if st.fr.corrupt.is_none() && end < data.len() {
                let (_, _, next, _) = hop(&data[end..], big_endian);
                if next > MAX_RECORD {
                    // Corrupt if the file goes on for the largest record there is, else a
                    // cut-off last record (as the sequential reader decides).
                    let have = (data.len() - end) as u64;
                    let more = std::io::copy(
                        &mut (&mut l.reader).take(MAX_RECORD as u64 - have.min(MAX_RECORD as u64)),
                        &mut std::io::sink(),
                    )
                    .unwrap_or(0);
                    too_large(st, bytes + end as u64, have + more);
                    eof = true;
                } else if eof {
                    // Bytes left that do not make a whole record: a cut-off capture.
                    st.fr.truncated_records += 1;
                } else {
                    carry.extend_from_slice(&data[end..]);
                }
            }
            bytes += end as u64;
            if records == 0 {
                let _ = self.ctx.recycle.send(bufs);
                continue;
            }
            self.emit(st, bufs, (0, end as u32), records, last);
            progress(bytes);
        }
        bytes
    }

    /// Reads a plain file: blocks of BLOCK bytes (and SLACK more) are read with `pread` by
    /// whichever threads are free, in parallel; this thread only hops the record headers of each
    /// block in order, to find where the block's records begin and end.
    #[inline(never)]
    fn read_at(
        &mut self,
        st: &mut FileState,
        file: Arc<std::fs::File>,
        size: u64,
        progress: &dyn Fn(u64),
    ) -> u64 {
        let big_endian = self.ctx.files[st.fi].big_endian;
        let mut rd = Reads::new(file.clone(), st.fi, size, LEGACY_HEADER);
        let block_start = |k: u64| LEGACY_HEADER + k * BLOCK as u64;
        // The next record starts here (file offset).
        let mut s = LEGACY_HEADER;
        let mut stop = false;
        for k in 0..rd.blocks {
            if stop {
                break;
            }
            let Some((mut bufs, mut got, guess)) = self.read_block(&mut rd, k, st, s) else {
                break;
            };
            let bstart = block_start(k);
            let bend = (bstart + BLOCK as u64).min(size);
            let first = s;
            let (mut records, mut last) = (0u64, 0usize);
            let end = (bend - bstart) as usize;
            // The reading thread's hop, where it started where the block before ended.
            self.side.spent.blocks += 1;
            let met = guess.and_then(|g| {
                let Guess::Legacy(h) = g else { return None };
                let data = &bufs.data[..got];
                let from = (s - bstart) as usize;
                if big_endian {
                    h.meet::<true>(data, from, end)
                } else {
                    h.meet::<false>(data, from, end)
                }
            });
            if let Some((n, l, to)) = met {
                self.side.spent.guessed += 1;
                last = l;
                records = n;
                s = bstart + to as u64;
            }
            while s < bend {
                // The usual case, first: records whose header and bytes are already read (what
                // was read never passes the end of the file).
                let rel = (s - bstart) as usize;
                let (to, n, l) = if big_endian {
                    hop_records::<true>(&bufs.data[..got], rel, end)
                } else {
                    hop_records::<false>(&bufs.data[..got], rel, end)
                };
                if n > 0 {
                    last = l;
                    records += n;
                    s = bstart + to as u64;
                    continue;
                }
                if size - s < 16 {
                    st.fr.truncated_records += 1; // a cut-off record header
                    stop = true;
                    break;
                }
                // A header or record past what was read: read the rest of it now.
                let need = |s: u64, n: u64| (s + n - bstart) as usize;
                if need(s, 16) > got {
                    let Some(g) = read_on(&file, &mut bufs, (bstart, got), need(s, 16), st, s)
                    else {
                        stop = true;
                        break;
                    };
                    got = g;
                }
                let rel = (s - bstart) as usize;
                let len = 16 + legacy_caplen(&bufs.data[rel..], big_endian) as u64;
                if len > MAX_RECORD as u64 {
                    too_large(st, s, size - s);
                    stop = true;
                    break;
                }
                if s + len > size {
                    st.fr.truncated_records += 1; // a cut-off last record
                    stop = true;
                    break;
                }
                if need(s, len) > got {
                    let Some(g) = read_on(&file, &mut bufs, (bstart, got), need(s, len), st, s)
                    else {
                        stop = true;
                        break;
                    };
                    got = g;
                }
                last = rel;
                s += len;
                records += 1;
            }
            let spec_ok = std::mem::take(&mut bufs.spec_ok);
            if records == 0 {
                let _ = self.ctx.recycle.send(bufs);
                continue;
            }
            let range = ((first - bstart) as u32, (s - bstart) as u32);
            // Whether the reading thread partitioned exactly these records.
            if spec_ok && bufs.spec.range == range && bufs.spec.records == records {
                self.emit_filled(st, bufs, last);
            } else {
                self.emit(st, bufs, range, records, last);
            }
            progress(s);
        }
        self.end_reads(rd);
        s
    }

    /// Reads a plain pcapng file: blocks of BLOCK bytes read with `pread` by whichever threads
    /// are free, in parallel; this thread walks the file's blocks in order, each one as the
    /// sequential reader's parser reads it, following sections and interfaces, and notes each
    /// interface's last packet in each block (the next block's first packet on that interface is
    /// checked against it). From GUESS_FROM workers on it takes the usual blocks as the thread
    /// that read them walked them, from where that walk meets the block before.
    fn read_ng(
        &mut self,
        st: &mut FileState,
        file: Arc<std::fs::File>,
        size: u64,
        progress: &dyn Fn(u64),
    ) -> u64 {
        let mut rd = Reads::new(file.clone(), st.fi, size, 0);
        // The next block starts here (file offset).
        let mut s = 0u64;
        let mut stop = false;
        let (mut seen, mut hop) = (Vec::new(), NgHop::default());
        for k in 0..rd.blocks {
            if stop {
                break;
            }
            let Some((mut bufs, mut got, guess)) = self.read_block(&mut rd, k, st, s) else {
                break;
            };
            let bstart = k * BLOCK as u64;
            let bend = (bstart + BLOCK as u64).min(size);
            let (first, mut start) = (s, st.ng.at.clone());
            start.mixed = false;
            let mut records = 0u64;
            hop.clear();
            self.side.spent.blocks += 1;
            // The reading thread's walk, where it meets the blocks from where the block before
            // ended, in this section's byte order.
            if let Some(Guess::Ng(g)) = guess {
                let at = &mut st.ng.at;
                let (data, from, end) = (
                    &bufs.data[..got],
                    (s - bstart) as usize,
                    (bend - bstart) as usize,
                );
                let be = at.state.big_endian;
                let took = match (g.big_endian == be, be) {
                    (false, _) => None,
                    (true, true) => hop.take_guess(&g, data, from, end, Be, at),
                    (true, false) => hop.take_guess(&g, data, from, end, Le, at),
                };
                if let Some((to, n)) = took {
                    self.side.spent.guessed += 1;
                    records = n;
                    s = bstart + to as u64;
                }
            }
            while s < bend {
                let rel = (s - bstart) as usize;
                let at = &mut st.ng.at;
                let be = at.state.big_endian;
                // The usual blocks, in a loop of their section's byte order.
                let (data, end) = (&bufs.data[..got], (bend - bstart) as usize);
                let (to, n) = if be {
                    hop.epbs(data, rel, end, Be, at, records)
                } else {
                    hop.epbs(data, rel, end, Le, at, records)
                };
                if n > 0 {
                    records += n;
                    s = bstart + to as u64;
                    continue;
                }
                let need = match ng_step(&bufs.data[rel..got], be) {
                    NgStep::Packet { ty, len } => {
                        hop.packet(&bufs.data, rel, ty, be, at, records);
                        records += 1;
                        s += len as u64;
                        continue;
                    }
                    NgStep::Meta { len, block } => {
                        hop.meta(&bufs.data, at);
                        Arc::make_mut(&mut at.state).meta(&block);
                        start.mixed |= at.state.big_endian != start.state.big_endian;
                        s += len as u64;
                        continue;
                    }
                    NgStep::Stop(why) => {
                        match why {
                            Some(reason) => st.fr.corrupt = Some((s, reason)),
                            None => st.fr.truncated_records += 1,
                        }
                        stop = true;
                        break;
                    }
                    NgStep::Need(n) => n,
                };
                // The block goes on past what was read: read more of it, as the sequential
                // reader grows its buffer, up to the largest block there is.
                let (have, left) = (got - rel, size - s);
                let total = have.saturating_add(need);
                if total >= MAX_RECORD {
                    too_large(st, s, left);
                    stop = true;
                    break;
                }
                if have as u64 >= left {
                    st.fr.truncated_records += 1; // a cut-off last block
                    stop = true;
                    break;
                }
                let want = rel + (total.max(2 * have) as u64).min(left) as usize;
                let Some(g) = read_on(&file, &mut bufs, (bstart, got), want, st, s) else {
                    stop = true;
                    break;
                };
                got = g;
            }
            hop.settle(&bufs.data, &mut st.ng.at);
            rd.ng_be = Some(st.ng.at.state.big_endian);
            if records == 0 {
                let _ = self.ctx.recycle.send(bufs);
                continue;
            }
            seen.clear();
            seen.extend(hop.last_packets(&bufs.data));
            let range = ((first - bstart) as u32, (s - bstart) as u32);
            self.emit_ng(st, bufs, range, records, start, &seen);
            progress(s);
        }
        self.end_reads(rd);
        s
    }

    /// Hands on the pcapng blocks in `bufs.data[range]` (`records` packets, `seen`: each
    /// interface's last of them; `start`: the file where they begin) to be partitioned, with
    /// the last packet before them of each interface they have packets on.
    fn emit_ng(
        &mut self,
        st: &mut FileState,
        mut bufs: Bufs,
        range: Range,
        records: u64,
        start: NgStart,
        seen: &[Seen],
    ) {
        bufs.prev_frame.clear();
        bufs.ng_prevs.clear();
        // The interfaces with packets in the block: what their first is checked against.
        let on = |p: &IfPrev| seen.iter().any(|x| x.idx == p.idx);
        for (p, frame) in st.ng.prevs.iter().filter(|(p, _)| on(p)) {
            let at = bufs.prev_frame.len() as u32;
            bufs.prev_frame.extend_from_slice(frame);
            bufs.ng_prevs.push(IfPrev {
                frame: (at, frame.len() as u32),
                ..*p
            });
        }
        let first_number = st.fr.frames + 1;
        st.fr.frames += records;
        for x in seen {
            let p = IfPrev {
                idx: x.idx,
                link: x.link,
                ts: x.ts,
                number: first_number + x.number,
                frame: (0, 0),
            };
            let bytes = slice(&bufs.data, x.frame);
            match st.ng.prevs.iter_mut().find(|(q, _)| q.idx == x.idx) {
                Some((q, frame)) => {
                    *q = p;
                    frame.clear();
                    frame.extend_from_slice(bytes);
                }
                None => st.ng.prevs.push((p, bytes.to_vec())),
            }
        }
        let raw = RawBlock {
            seq: self.seq,
            file: st.fi,
            first_number,
            prev: None,
            range,
            records,
            bufs,
            ng: start,
        };
        self.seq += 1;
        let _ = self.todo.send(raw);
    }

    /// Block `k` of `rd`'s file, read: its buffers, the bytes read and the reading thread's hop.
    /// None where the read failed (reported as where the next record, at `s`, should start).
    fn read_block(
        &mut self,
        rd: &mut Reads,
        k: u64,
        st: &mut FileState,
        s: u64,
    ) -> Option<(Bufs, usize, Option<Guess>)> {
        let (bufs, r, hop) = self.next_read(rd, k);
        match r {
            Ok(got) => Some((bufs, got, hop)),
            Err(e) => {
                st.fr.corrupt = Some((s, format!("read failed: {e}")));
                let _ = self.ctx.recycle.send(bufs);
                None
            }
        }
    }

    /// Block `k` of `rd`'s file once it is read, with reads of the blocks after it kept going
    /// ahead while there are buffers to spare.
    fn next_read(&mut self, rd: &mut Reads, k: u64) -> Ready {
        while rd.issued < rd.blocks && (rd.issued == k || !self.recycle.is_empty()) {
            let bufs = self.take_bufs();
            let off = rd.base + rd.issued * BLOCK as u64;
            let f = &self.ctx.files[rd.fi];
            let _ = self.reads.send(ReadTask {
                file: rd.file.clone(),
                fi: rd.fi,
                k: rd.issued,
                off,
                len: (BLOCK + SLACK).min((rd.size - off) as usize),
                own: BLOCK.min((rd.size - off) as usize),
                big_endian: rd.ng_be.unwrap_or(f.big_endian),
                ns: f.ns,
                guess: self.ctx.outs.len() >= GUESS_FROM,
                bufs,
                done: self.done_tx.clone(),
            });
            rd.issued += 1;
            rd.outstanding += 1;
        }
        loop {
            if let Some(b) = rd.ready.remove(&k) {
                return b;
            }
            let (j, b, r, h) = self.wait_read();
            rd.outstanding -= 1;
            rd.ready.insert(j, (b, r, h));
        }
    }

    /// Reading stopped (at the end, or early): takes back the blocks still being read.
    fn end_reads(&mut self, rd: Reads) {
        for (_, (b, _, _)) in rd.ready {
            let _ = self.ctx.recycle.send(b);
        }
        for _ in 0..rd.outstanding {
            let (_, b, _, _) = self.wait_read();
            let _ = self.ctx.recycle.send(b);
        }
    }

    /// The next finished read; meanwhile other work is done.
    fn wait_read(&mut self) -> ReadDone {
        loop {
            if let Ok(d) = self.done_rx.try_recv() {
                return d;
            }
            if let Ok(raw) = self.ctx.todo.try_recv() {
                partition(raw, self.ctx, &mut self.side);
                continue;
            }
            if let Ok(t) = self.ctx.reads.try_recv() {
                read_task(t, self.ctx, &mut self.side);
                continue;
            }
            let (ctx, done) = (self.ctx, &self.done_rx);
            let idle = || done.is_empty() && !ctx.blocks_waiting();
            if prefault(ctx, &mut self.side, None, idle) {
                continue;
            }
            let (t0, busy0) = (self.side.spent.now(), self.side.spent.busy());
            let ctx = self.ctx;
            ctx.spin
                .until(|| !self.done_rx.is_empty() || ctx.shared_work());
            select! {
                recv(self.done_rx) -> d => if let Ok(d) = d {
                    self.side.spent.waited(t0, busy0);
                    return d
                },
                recv(self.ctx.reads) -> t => if let Ok(t) = t { read_task(t, self.ctx, &mut self.side) },
                recv(self.ctx.todo) -> raw => if let Ok(raw) = raw {
                    partition(raw, self.ctx, &mut self.side)
                },
                recv(self.ctx.prefault.requests()) -> r => if let Ok(r) = r {
                    let done = &self.done_rx;
                    prefault(ctx, &mut self.side, Some(r), || done.is_empty() && !ctx.blocks_waiting());
                },
            }
            self.side.spent.waited(t0, busy0);
        }
    }
}

/// Reads on into `bufs.data` (the block read from `bstart`, `got` bytes of it so far) until it
/// holds `want` bytes: how many it holds then. None where the file no longer has them (it
/// shrank, or a read failed), reported in `st` as where the record at `s` should be.
fn read_on(
    file: &std::fs::File,
    bufs: &mut Bufs,
    (bstart, got): (u64, usize),
    want: usize,
    st: &mut FileState,
    s: u64,
) -> Option<usize> {
    if bufs.data.len() < want {
        bufs.data.resize(want, 0);
    }
    let got = got + pread_full(file, &mut bufs.data[got..want], bstart + got as u64).unwrap_or(0);
    if got < want {
        st.fr.corrupt = Some((s, "read failed: the file shrank".into()));
        return None;
    }
    Some(got)
}

/// A record claiming more than the largest record there is, at `at`, with `left` bytes of file
/// from it: corrupt data if the file goes on for the largest record, else a cut-off last record
/// (the sequential reader's verdict, whose buffer stops growing there).
fn too_large(st: &mut FileState, at: u64, left: u64) {
    if left >= MAX_RECORD as u64 {
        st.fr.corrupt = Some((at, "record larger than 16 MiB".into()));
    } else {
        st.fr.truncated_records += 1;
    }
}

/// Hops the record headers of `b`: (bytes of whole records, how many, the length of the first
/// record that is not whole — or 0 when `b` ends exactly —, where the last whole record starts).
#[inline]
fn hop(b: &[u8], big_endian: bool) -> (usize, u64, usize, usize) {
    let (mut pos, mut n, mut last) = (0usize, 0u64, 0usize);
    while b.len() - pos >= 16 {
        let len = 16 + legacy_caplen(&b[pos..], big_endian) as usize;
        if len > MAX_RECORD || b.len() - pos < len {
            return (pos, n, len, last);
        }
        last = pos;
        pos += len;
        n += 1;
    }
    let rest = b.len() - pos;
    (pos, n, if rest == 0 { 0 } else { 16 }, last)
}

/// A free buffer set; while there is none, partition what is waiting instead of idling.
fn take_bufs(ctx: &Ctx, recycle: &Receiver<Bufs>, side: &mut Side) -> Bufs {
    loop {
        if let Ok(b) = recycle.try_recv() {
            return b;
        }
        if let Ok(raw) = ctx.todo.try_recv() {
            partition(raw, ctx, side);
            continue;
        }
        if let Ok(t) = ctx.reads.try_recv() {
            read_task(t, ctx, side);
            continue;
        }
        let idle = || recycle.is_empty() && !ctx.blocks_waiting();
        if prefault(ctx, side, None, idle) {
            continue;
        }
        let (t0, busy0) = (side.spent.now(), side.spent.busy());
        ctx.spin.until(|| !recycle.is_empty() || ctx.shared_work());
        select! {
            recv(recycle) -> b => if let Ok(b) = b {
                side.spent.waited(t0, busy0);
                return b
            },
            recv(ctx.reads) -> t => if let Ok(t) = t { read_task(t, ctx, side) },
            recv(ctx.todo) -> raw => if let Ok(raw) = raw { partition(raw, ctx, side) },
            recv(ctx.prefault.requests()) -> r => if let Ok(r) = r {
                prefault(ctx, side, Some(r), idle);
            },
        }
        side.spent.waited(t0, busy0);
    }
}

/// Maps the workers' flow slabs ahead of them, from `req` (a request just taken from the
/// queue), else from the next in the queue, while `idle` says this thread still has nothing else
/// to do: false where there was nothing to map. For a thread with nothing else to do.
fn prefault(
    ctx: &Ctx,
    side: &mut Side,
    req: Option<(usize, usize)>,
    idle: impl FnMut() -> bool,
) -> bool {
    let t0 = side.spent.now();
    let served = match req {
        Some(r) => {
            ctx.prefault.take(r, idle);
            true
        }
        None => ctx.prefault.serve(idle),
    };
    side.spent.prefault += since(t0);
    served
}

/// Decodes, checks and shards every record of `raw`, then hands the block to every worker.
fn partition(raw: RawBlock, ctx: &Ctx, side: &mut Side) {
    // One loop per record format, each with its byte order and time unit fixed.
    let f = &ctx.files[raw.file];
    if f.ng {
        return partition_ng(raw, ctx, side);
    }
    match (f.big_endian, f.ns) {
        (false, false) => partition_as::<false, false>(raw, ctx, side),
        (false, true) => partition_as::<false, true>(raw, ctx, side),
        (true, false) => partition_as::<true, false>(raw, ctx, side),
        (true, true) => partition_as::<true, true>(raw, ctx, side),
    }
}

/// `partition` for a file of `BIG_ENDIAN` records with `NS` (nanosecond) times.
fn partition_as<const BIG_ENDIAN: bool, const NS: bool>(raw: RawBlock, ctx: &Ctx, side: &mut Side) {
    let t0 = side.spent.now();
    let RawBlock {
        seq,
        file,
        first_number,
        prev,
        range,
        records,
        mut bufs,
        ..
    } = raw;
    let f = &ctx.files[file];
    let filled = if side.timeline.is_some() {
        fill_counted::<BIG_ENDIAN, NS>(&mut bufs, range, records, prev, f, ctx, side)
    } else {
        fill::<BIG_ENDIAN, NS, false, false>(
            &mut bufs,
            range,
            records,
            prev,
            f,
            ctx,
            &mut side.c,
            None,
        )
    };
    if let Some(filled) = filled {
        hand_on(ctx, side, seq, file, first_number, &filled, bufs);
    }
    side.spent.partition += since(t0);
}

/// `partition` for a pcapng file.
fn partition_ng(raw: RawBlock, ctx: &Ctx, side: &mut Side) {
    let t0 = side.spent.now();
    let RawBlock {
        seq,
        file,
        first_number,
        range,
        records,
        mut bufs,
        ng,
        ..
    } = raw;
    let (b, c) = (&mut bufs, &mut side.c);
    // One loop per byte order where the block keeps one; with a timeline, one loop.
    let filled = match (side.timeline.as_mut(), ng.mixed, ng.state.big_endian) {
        (Some((t, _)), _, be) => {
            fill_counted_ng(b, range, records, first_number, &ng, ctx, c, t, be)
        }
        (None, false, false) => {
            fill_ng::<_, false>(b, range, records, first_number, &ng, ctx, c, None, Le)
        }
        (None, false, true) => {
            fill_ng::<_, false>(b, range, records, first_number, &ng, ctx, c, None, Be)
        }
        (None, true, be) => {
            fill_ng::<_, false>(b, range, records, first_number, &ng, ctx, c, None, be)
        }
    };
    debug_assert_eq!(
        filled.records, records,
        "the reader's packets and the partition's"
    );
    hand_on(ctx, side, seq, file, first_number, &filled, bufs);
    side.spent.partition += since(t0);
}

/// `fill_ng` with a timeline, out of line (as `fill_counted`).
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn fill_counted_ng(
    bufs: &mut Bufs,
    range: Range,
    records: u64,
    first_number: u64,
    start: &NgStart,
    ctx: &Ctx,
    c: &mut Counters,
    t: &mut Timeline,
    be: bool,
) -> Filled {
    fill_ng::<_, true>(
        bufs,
        range,
        records,
        first_number,
        start,
        ctx,
        c,
        Some(t),
        be,
    )
}

/// A block's buffers as partitioning fills them: its data, its packets, and the lists it files
/// them in (one of `parts` and `rows` is empty: see ROWS_FROM); for pcapng, each interface's
/// packet before the block and the latest while it is partitioned.
struct Lists<'a> {
    data: &'a [u8],
    pkts: &'a mut Vec<Pkt>,
    parts: &'a mut [Vec<u32>],
    rows: &'a mut [Vec<Pkt>],
    cands: &'a mut Vec<Cand>,
    ng_prevs: &'a [IfPrev],
    ng_cur: &'a mut Vec<IfCur>,
}

/// `bufs` emptied for partitioning the `records` records of `range`.
fn lists(bufs: &mut Bufs, range: Range, records: u64) -> Lists<'_> {
    bufs.pkts.clear();
    for p in &mut bufs.parts {
        p.clear();
    }
    for r in &mut bufs.rows {
        r.clear();
    }
    bufs.cands.clear();
    bufs.in_rows =
        !bufs.rows.is_empty() && (range.1 - range.0) as u64 >= ROWS_FROM as u64 * records;
    let (parts, rows) = if bufs.in_rows {
        (&mut bufs.parts[..0], &mut bufs.rows[..])
    } else {
        (&mut bufs.parts[..], &mut bufs.rows[..0])
    };
    Lists {
        data: &bufs.data,
        pkts: &mut bufs.pkts,
        parts,
        rows,
        cands: &mut bufs.cands,
        ng_prevs: &bufs.ng_prevs,
        ng_cur: &mut bufs.ng_cur,
    }
}

/// `fill` for a pcapng file: walks the blocks of `bufs.data[range]` from `start` (the sections
/// and interfaces where they begin), follows section headers and interface descriptions, and
/// decodes, checks (against the packet before on the same interface) and shards every packet.
/// `first_number`: the number of the block's first packet in the file. `TL` as in `fill`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn fill_ng<O: Order, const TL: bool>(
    bufs: &mut Bufs,
    range: Range,
    records: u64,
    first_number: u64,
    start: &NgStart,
    ctx: &Ctx,
    c: &mut Counters,
    mut timeline: Option<&mut Timeline>,
    mut be: O,
) -> Filled {
    let (bps, spacing) = (ctx.link_bps, &ctx.spacing);
    let Lists {
        data,
        pkts,
        parts,
        rows,
        cands,
        ng_prevs,
        ng_cur,
    } = lists(bufs, range, records);
    ng_cur.clear();
    ng_cur.extend(ng_prevs.iter().map(|p| IfCur {
        idx: p.idx,
        link: p.link,
        ts: p.ts,
        number: p.number as i64 - first_number as i64,
        frame: p.frame,
        before: true,
        budget: Budget::default(),
    }));
    let mut state = start.state.clone();
    let mut last_ts = start.last_ts;
    let base = data.as_ptr() as usize;
    let data = &data[..range.1 as usize];
    let (mut pos, mut number) = (range.0 as usize, 0u64);
    let (mut clock, mut first, mut bytes, mut iat) =
        (i64::MIN, i64::MAX, 0u64, LocalHist::default());
    // Where in `ng_cur` the latest packet's interface is.
    let mut cur = usize::MAX;
    let mut ifc = IfCache::default();
    while pos + 8 <= data.len() {
        let ty = ng_u32(data, pos, be);
        if ty != NG_EPB && ty != NG_SPB {
            // A section header, an interface, or a block of no interest: as the reader read it.
            match ng_step(&data[pos..], be) {
                NgStep::Meta { len, block } => {
                    Arc::make_mut(&mut state).meta(&block);
                    (ifc, be) = (IfCache::default(), be.then(state.big_endian));
                    pos += len;
                    continue;
                }
                _ => break,
            }
        }
        let len = ng_u32(data, pos + 4, be) as usize;
        let Some(blk) = data.get(pos..pos + len) else {
            break;
        };
        let i = ifc.get(&state, ty, ng_if_id(blk, ty, be));
        let fr = ng_packet(blk, ty, be, i, last_ts);
        if ty == NG_EPB {
            last_ts = fr.ts_ns;
        }
        let (ts, wire_len) = (fr.ts_ns, fr.wire_len);
        let frame_ref = (
            (fr.data.as_ptr() as usize - base) as u32,
            fr.data.len() as u32,
        );
        if TL {
            if let Some(t) = timeline.as_deref_mut() {
                t.tick(ts, c);
            }
            c.inc(slot::packets(Source::Pcap));
            c.add(slot::bytes(Source::Pcap), wire_len as u64);
        }
        bytes += wire_len as u64;
        clock = clock.max(ts);
        first = first.min(ts);
        // The packet before it on its interface.
        if ng_cur.get(cur).is_none_or(|p| p.idx != fr.iface) {
            cur = match ng_cur.iter().position(|p| p.idx == fr.iface) {
                Some(i) => i,
                None => {
                    ng_cur.push(IfCur {
                        idx: fr.iface,
                        link: fr.link,
                        ts,
                        number: number as i64,
                        frame: frame_ref,
                        before: false,
                        budget: Budget::default(),
                    });
                    // The interface's first packet: nothing to check it against.
                    ng_cur.len() - 1
                }
            };
        }
        let p = &mut ng_cur[cur];
        if p.number != number as i64 {
            let delta = ts.saturating_sub(p.ts);
            if spacing.possible(delta, wire_len) {
                if TL {
                    c.observe_ns(slot::iat_hist(Source::Pcap), delta as u64);
                } else {
                    iat.observe(delta as u64);
                }
            } else {
                let cand = Cand {
                    negative: false,
                    number,
                    delta,
                    ts,
                    iface: fr.iface,
                    frame: frame_ref,
                    link: fr.link,
                    prev_number: p.number,
                    prev_link: p.link,
                    prev: p.frame,
                    prev_before: p.before,
                };
                unusual_delta(c, cands, &mut p.budget, bps, delta, wire_len, cand);
            }
        }
        (p.link, p.ts, p.number, p.frame, p.before) =
            (fr.link, ts, number as i64, frame_ref, false);
        decode_record::<false>(
            fr.link, fr.data, ts, wire_len, clock, number, base, pkts, parts, rows, c,
        );
        number += 1;
        pos += len;
    }
    Filled {
        range,
        records: number,
        counted: TL,
        bytes,
        first,
        clock,
        iat,
    }
}

/// `fill` by the thread that read the block, from the first record it guessed (`h`), before the
/// block's place in the file is known.
fn fill_ahead<const BIG_ENDIAN: bool, const NS: bool>(
    bufs: &mut Bufs,
    h: &Hop,
    f: &FileCtx,
    ctx: &Ctx,
    c: &mut Counters,
) -> Option<Filled> {
    let range = (h.path[0], h.end as u32);
    fill::<BIG_ENDIAN, NS, true, false>(bufs, range, h.records, None, f, ctx, c, None)
}

/// `fill` with a timeline (`read --report`): out of line, so that the usual partition loop is
/// compiled as it would be without it.
#[inline(never)]
fn fill_counted<const BIG_ENDIAN: bool, const NS: bool>(
    bufs: &mut Bufs,
    range: Range,
    records: u64,
    prev: Option<i64>,
    f: &FileCtx,
    ctx: &Ctx,
    side: &mut Side,
) -> Option<Filled> {
    let t = side.timeline.as_mut().map(|(t, _)| t);
    fill::<BIG_ENDIAN, NS, false, true>(bufs, range, records, prev, f, ctx, &mut side.c, t)
}

/// What partitioning a block found besides its packets, counted when the block is handed on.
#[derive(Clone, Default)]
struct Filled {
    /// Where the partitioned records lie in the block's data, and how many there are (decode
    /// errors included).
    range: Range,
    records: u64,
    /// Whether their packets, bytes and inter-arrival times are counted already (record by
    /// record, for a timeline).
    counted: bool,
    /// Their bytes on the wire, earliest and latest time, and ordinary inter-arrival times.
    bytes: u64,
    first: i64,
    clock: i64,
    iat: LocalHist,
}

/// Decodes, checks and shards the records of `bufs.data[range]` (`records` of them; `prev`: the
/// time of the record before the first, None at the start of a file or where it is not known).
/// Packets and candidate events are numbered from 0 within the block. `SPEC`, partitioning
/// before the block's place in the file is known: gives up (None) at the first record that
/// would be counted apart from the block's tallies (a decode error, an unusual delta), leaving
/// the block to be partitioned again when its place is known; `c` is then never touched. `TL`
/// (`read --report`): every record is counted as it is met, after a tick of `timeline` at its
/// time, so that what it adds to the counters lands in its bin of capture time.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn fill<const BIG_ENDIAN: bool, const NS: bool, const SPEC: bool, const TL: bool>(
    bufs: &mut Bufs,
    range: Range,
    records: u64,
    prev: Option<i64>,
    f: &FileCtx,
    ctx: &Ctx,
    c: &mut Counters,
    mut timeline: Option<&mut Timeline>,
) -> Option<Filled> {
    let (bps, spacing) = (ctx.link_bps, &ctx.spacing);
    let Lists {
        data,
        pkts,
        parts,
        rows,
        cands,
        ..
    } = lists(bufs, range, records);
    let base = data.as_ptr() as usize;
    let (mut pos, mut number) = (range.0 as usize, 0u64);
    let data = &data[..range.1 as usize];
    // The previous record's time (NO_PREV before a file's first record) and its frame in this
    // block (None: the block's `prev_frame`); its number is always one less than this one's.
    let mut prev_ts = prev.unwrap_or(NO_PREV);
    let mut prev_ref: Option<Range> = None;
    let mut budget = Budget::default();
    let mut tally = Tally::new();
    while let Some((ts, wire_len, frame, len)) = legacy_record(&data[pos..], BIG_ENDIAN, NS) {
        let frame_ref = ((pos + 16) as u32, frame.len() as u32);
        tally.record::<TL>(ts, wire_len, c, &mut timeline);
        if prev_ts != NO_PREV {
            // A legacy record's time is in [0, 2^32 · 10^9): the difference cannot overflow.
            let delta = ts - prev_ts;
            if spacing.possible(delta, wire_len) {
                // The usual case: counted in the block's tally, nothing to report.
                tally.iat::<TL>(delta, c);
            } else if SPEC {
                return None;
            } else {
                let cand = legacy_cand(number, delta, ts, frame_ref, prev_ref, f.link);
                unusual_delta(c, cands, &mut budget, bps, delta, wire_len, cand);
            }
        }
        prev_ts = ts;
        prev_ref = Some(frame_ref);
        let clock = tally.clock;
        if !decode_record::<SPEC>(
            f.link, frame, ts, wire_len, clock, number, base, pkts, parts, rows, c,
        ) {
            return None;
        }
        number += 1;
        pos += len;
    }
    let before = (0, bufs.prev_frame.len() as u32);
    for cand in bufs.cands.iter_mut().filter(|c| c.prev_before) {
        cand.prev = before;
    }
    Some(tally.filled::<TL>(range, number))
}

/// What partitioning a block counts as it goes, added to the counters when the block is handed
/// on: the records' bytes on the wire, their earliest and latest time, and their ordinary
/// (positive, possible) inter-arrival times. With a timeline (`TL`) each record is counted as it
/// is met instead, after a tick of the timeline at its time, so that what it adds lands in its
/// bin of capture time.
struct Tally {
    bytes: u64,
    first: i64,
    clock: i64,
    iat: LocalHist,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            bytes: 0,
            first: i64::MAX,
            clock: i64::MIN,
            iat: LocalHist::default(),
        }
    }

    /// A record at `ts` of `wire_len` bytes on the wire.
    #[inline(always)]
    fn record<const TL: bool>(
        &mut self,
        ts: i64,
        wire_len: u32,
        c: &mut Counters,
        timeline: &mut Option<&mut Timeline>,
    ) {
        if TL {
            if let Some(t) = timeline.as_deref_mut() {
                t.tick(ts, c);
            }
            c.inc(slot::packets(Source::Pcap));
            c.add(slot::bytes(Source::Pcap), wire_len as u64);
        }
        self.bytes += wire_len as u64;
        self.clock = self.clock.max(ts);
        self.first = self.first.min(ts);
    }

    /// An ordinary inter-arrival time.
    #[inline(always)]
    fn iat<const TL: bool>(&mut self, delta: i64, c: &mut Counters) {
        if TL {
            c.observe_ns(slot::iat_hist(Source::Pcap), delta as u64);
        } else {
            self.iat.observe(delta as u64);
        }
    }

    /// The block's `records` records in `range`, tallied.
    fn filled<const TL: bool>(self, range: Range, records: u64) -> Filled {
        Filled {
            range,
            records,
            counted: TL,
            bytes: self.bytes,
            first: self.first,
            clock: self.clock,
            iat: self.iat,
        }
    }
}

/// Counts a partitioned block (`filled`, its records numbered from `first_number` on) and hands
/// it to every worker.
fn hand_on(
    ctx: &Ctx,
    side: &mut Side,
    seq: u64,
    file: usize,
    first_number: u64,
    filled: &Filled,
    bufs: Bufs,
) {
    let (c, src, f) = (&mut side.c, Source::Pcap, &ctx.files[file]);
    if !filled.counted {
        c.add(slot::packets(src), filled.records);
        c.add(slot::bytes(src), filled.bytes);
        c.merge_hist(slot::iat_hist(src), &filled.iat);
    }
    f.first_ts.fetch_min(filled.first, Ordering::Relaxed);
    f.last_ts.fetch_max(filled.clock, Ordering::Relaxed);
    side.unpublished += filled.records;
    if side.unpublished >= PUBLISH_EVERY as u64 {
        side.unpublished = 0;
        side.publish.publish(&side.c);
    }
    let block = Arc::new(Block {
        seq,
        file,
        first_number,
        clock: filled.clock,
        bufs,
        recycle: ctx.recycle.clone(),
    });
    for out in &ctx.outs {
        // Each queue holds at most every block there is: this never waits.
        let _ = out.send(block.clone());
    }
}

/// `prev_ts` before a file's first record (a legacy record's time is never negative).
const NO_PREV: i64 = i64::MIN;

/// The candidates for timestamp events a block may still take (or the events a file may), per
/// kind.
#[derive(Clone, Copy, Default)]
struct Budget {
    negatives: u32,
    spacings: u32,
}

/// The candidate event of the legacy record `number` (its frame, and the record before's: None
/// where that is the block's `prev_frame`). Out of line, as `unusual_delta`.
#[cold]
#[inline(never)]
fn legacy_cand(
    number: u64,
    delta: i64,
    ts: i64,
    frame: Range,
    prev: Option<Range>,
    link: u32,
) -> Cand {
    Cand {
        negative: false,
        number,
        delta,
        ts,
        iface: 0,
        frame,
        link,
        prev_number: number as i64 - 1,
        prev_link: link,
        // Before the block: the whole of `prev_frame`, set once the block is partitioned.
        prev: prev.unwrap_or_default(),
        prev_before: prev.is_none(),
    }
}

/// A negative, zero or impossibly short inter-arrival time: counted, and `cand` (the record,
/// its kind still to be found) kept as a candidate event while `budget` for its kind lasts.
/// Out of line: the partition loop keeps its registers.
#[cold]
#[inline(never)]
fn unusual_delta(
    c: &mut Counters,
    cands: &mut Vec<Cand>,
    budget: &mut Budget,
    bps: u64,
    delta: i64,
    wire_len: u32,
    mut cand: Cand,
) {
    let (a, impossible) = measure(c, Source::Pcap, bps, delta, wire_len);
    let negative = a == Anomaly::Negative;
    // At most a budget's worth per kind per source per block can become events.
    let room = if negative {
        &mut budget.negatives
    } else {
        &mut budget.spacings
    };
    if (negative || impossible) && *room < EVENTS_PER_SOURCE {
        *room += 1;
        cand.negative = negative;
        cands.push(cand);
    }
}

/// Decodes one record's frame at the end of `pkts` and files it with the worker its address pair
/// belongs to: by index (`parts`), or copied to that worker's row (`rows`), when one of the two is
/// not empty; with neither, one worker takes every packet (`base`: where the block's bytes start,
/// so the payload is kept as an offset). A frame that does not decode is counted, or with
/// `SPEC` (see `fill`) left uncounted: false.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn decode_record<const SPEC: bool>(
    link: u32,
    frame: &[u8],
    ts: i64,
    wire_len: u32,
    clock: i64,
    number: u64,
    base: usize,
    pkts: &mut Vec<Pkt>,
    parts: &mut [Vec<u32>],
    rows: &mut [Vec<Pkt>],
    c: &mut Counters,
) -> bool {
    let at = pkts.len();
    pkts.push(Pkt {
        ts_ns: ts,
        wire_len,
        clock_ns: clock,
        number,
        payload_off: 0,
        payload_len: 0,
        d: Decoded::default(),
    });
    let Some(p) = pkts.last_mut() else {
        return true;
    };
    match decode_into(link, frame, &mut p.d) {
        Err(e) => {
            pkts.truncate(at);
            if SPEC {
                return false;
            }
            c.inc(slot::decode_error(e));
        }
        Ok(payload) => {
            let payload = &payload[..payload.len().min(Batch::DATA)];
            p.payload_off = (payload.as_ptr() as usize).wrapping_sub(base) as u32;
            p.payload_len = payload.len() as u32;
            if !parts.is_empty() {
                parts[pick(p.d.shard, parts.len())].push(at as u32);
            } else if !rows.is_empty() {
                // Copied once to its worker's row, and this slot taken for the next record.
                // From slice to slice: `push(*p)` would stage the record on the stack first.
                rows[pick(p.d.shard, rows.len())].extend_from_slice(std::slice::from_ref(p));
                pkts.truncate(at);
            }
        }
    }
    true
}

/// The bytes of `v` at `(offset, length)` (none where they are not there).
fn slice(v: &[u8], (o, l): Range) -> &[u8] {
    v.get(o as usize..(o as usize + l as usize)).unwrap_or(&[])
}

/// The per-source budgets of timestamp events in the file being read, spent in file order by
/// worker 0.
#[derive(Default)]
struct TsEvents {
    file: Option<usize>,
    budgets: Vec<(u32, Budget)>,
}

impl TsEvents {
    fn emit(&mut self, b: &Block, ctx: &Ctx, c: &mut Counters) {
        if self.file != Some(b.file) {
            *self = TsEvents {
                file: Some(b.file),
                ..TsEvents::default()
            };
        }
        let f = &ctx.files[b.file];
        let flow_of =
            |link: u32, bytes: &[u8]| decode(link, bytes).ok().map(|(d, _)| FlowId::of(&d));
        for cand in &b.bufs.cands {
            let i = match self.budgets.iter().position(|(s, _)| *s == cand.iface) {
                Some(i) => i,
                None => {
                    self.budgets.push((cand.iface, Budget::default()));
                    self.budgets.len() - 1
                }
            };
            let budget = &mut self.budgets[i].1;
            let (budget, action) = if cand.negative {
                (&mut budget.negatives, "timestamp-negative-delta")
            } else {
                (&mut budget.spacings, "timestamp-impossible-spacing")
            };
            if *budget >= EVENTS_PER_SOURCE {
                continue;
            }
            *budget += 1;
            let prev_bytes = if cand.prev_before {
                slice(&b.bufs.prev_frame, cand.prev)
            } else {
                slice(&b.bufs.data, cand.prev)
            };
            let number = b.first_number + cand.number;
            let e = timestamps::event(
                action,
                &f.origin,
                cand.iface,
                number,
                cand.delta,
                cand.ts,
                (b.first_number as i64 + cand.prev_number) as u64,
                flow_of(cand.prev_link, prev_bytes),
                flow_of(cand.link, slice(&b.bufs.data, cand.frame)),
            );
            if !ctx.events.send(e) {
                c.inc(slot::EVENTS_DROPPED);
            }
        }
    }
}

/// A worker: partitions whatever is waiting while its next block is not there, and processes its
/// share of every block in file order.
fn worker_loop(
    w: usize,
    mut worker: Worker,
    mut side: Side,
    ctx: &Ctx,
    mine: Receiver<Arc<Block>>,
) {
    let mut pending: BTreeMap<u64, Arc<Block>> = BTreeMap::new();
    let mut next = 0u64;
    let mut clock = i64::MIN;
    let mut ts_events = TsEvents::default();
    let mut todo_open = true;
    let mut unpublished = 0usize;
    loop {
        while let Some(b) = pending.remove(&next) {
            if w == 0 {
                ts_events.emit(&b, ctx, &mut side.c);
            }
            let now = clock.max(b.clock);
            let t0 = side.spent.now();
            worker.set_number_base(b.first_number);
            let (pkts, data) = (&b.bufs.pkts, &b.bufs.data);
            let mine = match (b.bufs.in_rows, b.bufs.parts.get(w)) {
                (true, _) => {
                    let row = &b.bufs.rows[w];
                    worker.process_pkts(row.iter(), data, clock, now);
                    row.len()
                }
                (false, Some(part)) => {
                    worker.process_pkts(
                        part.iter().filter_map(|&i| pkts.get(i as usize)),
                        data,
                        clock,
                        now,
                    );
                    part.len()
                }
                (false, None) => {
                    worker.process_pkts(pkts.iter(), data, clock, now);
                    pkts.len()
                }
            };
            side.spent.process += since(t0);
            // Publishing copies every counter: once per PUBLISH_EVERY packets, not per block.
            unpublished += mine;
            if unpublished >= PUBLISH_EVERY {
                unpublished = 0;
                worker.publish();
            }
            clock = now;
            next += 1;
        }
        if !todo_open {
            if next >= ctx.total.load(Ordering::SeqCst) {
                break;
            }
            let t0 = side.spent.now();
            ctx.spin.until(|| !mine.is_empty());
            let got = mine.recv();
            side.spent.blocked += since(t0);
            match got {
                Ok(b) => {
                    pending.insert(b.seq, b);
                }
                Err(_) => break,
            }
            continue;
        }
        // Our own blocks first, then partitioning (oldest block first: it is what everyone waits
        // for), then reading; sleep only when there is nothing at all.
        if let Ok(b) = mine.try_recv() {
            pending.insert(b.seq, b);
            continue;
        }
        match ctx.todo.try_recv() {
            Ok(raw) => {
                partition(raw, ctx, &mut side);
                continue;
            }
            Err(TryRecvError::Disconnected) => {
                todo_open = false;
                continue;
            }
            Err(TryRecvError::Empty) => {}
        }
        if let Ok(t) = ctx.reads.try_recv() {
            read_task(t, ctx, &mut side);
            continue;
        }
        let idle = || mine.is_empty() && !ctx.blocks_waiting();
        if prefault(ctx, &mut side, None, idle) {
            continue;
        }
        let (t0, busy0) = (side.spent.now(), side.spent.busy());
        // Until the reading is over too: then `todo` closes, which a spin does not see.
        ctx.spin.until(|| {
            !mine.is_empty() || ctx.shared_work() || ctx.total.load(Ordering::Relaxed) != u64::MAX
        });
        select! {
            recv(ctx.reads) -> t => if let Ok(t) = t { read_task(t, ctx, &mut side) },
            recv(ctx.todo) -> raw => match raw {
                Ok(raw) => partition(raw, ctx, &mut side),
                Err(_) => todo_open = false,
            },
            recv(mine) -> b => if let Ok(b) = b {
                pending.insert(b.seq, b);
            },
            recv(ctx.prefault.requests()) -> r => if let Ok(r) = r {
                prefault(ctx, &mut side, Some(r), idle);
            },
        }
        side.spent.waited(t0, busy0);
    }
    let t0 = side.spent.now();
    worker.finish_all();
    side.spent.process += since(t0);
    side.finish();
    side.spent.print(&format!("worker-{w}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minor_faults_are_the_tenth_field_whatever_the_name() {
        let line = "26785 (cat) R 26781 26781 8418 0 -1 4194304 124 0 0 0 0 0 0 0 20 0 1 0";
        assert_eq!(minor_faults(line), Some(124));
        let odd = "7 (worker 0) x) S 1 1 1 0 -1 4194368 5591 3 0 0 3 1 0 0 20 0 1 0";
        assert_eq!(minor_faults(odd), Some(5591));
        assert_eq!(minor_faults("7 (cut"), None);
        // This thread's own line reads.
        let own = std::fs::read_to_string("/proc/thread-self/stat").expect("procfs");
        assert!(minor_faults(&own).is_some());
    }

    /// A little-endian legacy record: header and `payload`.
    fn record(out: &mut Vec<u8>, sec: u32, payload: &[u8]) {
        let len = payload.len() as u32;
        for w in [sec, 0, len, len] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(payload);
    }

    #[test]
    fn a_guess_that_starts_inside_a_record_meets_the_real_ones() {
        // The first record's payload holds, at byte 8, what looks like a 16-byte record ending
        // exactly where the second record starts.
        let mut b = Vec::new();
        let mut first = vec![0u8; 40];
        for (i, w) in [7u32, 0, 16, 16].iter().enumerate() {
            first[8 + 4 * i..12 + 4 * i].copy_from_slice(&w.to_le_bytes());
        }
        record(&mut b, 7, &first);
        for i in 0..20 {
            record(&mut b, 7, &vec![i as u8 + 1; 30 + i]);
        }
        // A block starting inside the first record's payload, before the fake header.
        let data = &b[20..];
        let own = data.len() - 100;
        let guess = guess_hop::<false>(data, own, false).expect("a guess");
        assert_eq!(guess.path[0], 4, "the fake header is taken first");
        let truth = hop_records::<false>(data, 36, own);
        let (records, last, end) = guess.meet::<false>(data, 36, own).expect("they meet");
        assert_eq!((end, records, last), truth);
        // A start the guessed records never reach: the reader hops the block itself.
        assert_eq!(guess.meet::<false>(data, 37, own), None);
    }

    #[test]
    fn no_guess_in_bytes_that_are_not_records() {
        let data = vec![0u8; 4096];
        assert_eq!(guess_hop::<false>(&data, 4096, false), None);
        let noise: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        assert_eq!(guess_hop::<true>(&noise, 4096, true), None);
    }

    /// A little-endian enhanced packet block without options on interface `if_id`.
    fn epb(out: &mut Vec<u8>, if_id: u32, ts: u64, payload: &[u8]) {
        let padded = (payload.len() + 3) & !3;
        let len = (32 + padded) as u32;
        let caplen = payload.len() as u32;
        for w in [
            NG_EPB,
            len,
            if_id,
            (ts >> 32) as u32,
            ts as u32,
            caplen,
            caplen,
        ] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(payload);
        out.resize(out.len() + padded - payload.len(), 0);
        out.extend_from_slice(&len.to_le_bytes());
    }

    /// What a walk of `hop` found: each interface's last packet (index, place, number), the
    /// latest packet's interface, and the latest enhanced packet block's place and interface.
    fn found(hop: &NgHop) -> Vec<(u64, usize, u64)> {
        let mut v: Vec<_> = hop
            .last
            .iter()
            .map(|e| (e.idx as u64, e.pos, e.number))
            .collect();
        v.sort_unstable();
        v.push((hop.key, 0, 0));
        if let Some((pos, i)) = hop.epb {
            v.push((hop.last[i].idx as u64, pos, 0));
        }
        v
    }

    #[test]
    fn a_pcapng_guess_takes_what_the_walk_finds() {
        // A packet whose payload holds six blocks that look real (and stop short of the next
        // real one), then 40 packets on three interfaces taking turns in runs.
        let mut b = Vec::new();
        let mut fake = Vec::new();
        for _ in 0..6 {
            epb(&mut fake, 9, 1, &[]);
        }
        fake.extend_from_slice(&[0xee; 6]);
        epb(&mut b, 0, 5, &fake);
        let real = b.len();
        for k in 0..40u32 {
            epb(
                &mut b,
                (k / 3) % 3,
                k as u64,
                &vec![k as u8; 20 + k as usize],
            );
        }
        let at = NgStart::default();

        // A block that starts inside the first packet, before its fake blocks: the guess takes
        // them, and the real blocks never meet it.
        let data = &b[12..];
        let own = data.len() - 100;
        let g = guess_ng(data, own, Le).expect("a guess");
        assert_eq!((g.hop.path[0], g.hop.records), (16, 6), "the fake blocks");
        assert_eq!(g.meet(data, real - 12, own, Le), None);
        let (mut hop, mut a) = (NgHop::default(), at.clone());
        assert_eq!(hop.take_guess(&g, data, real - 12, own, Le, &mut a), None);

        // A block that starts past them: the guess is the walk.
        let data = &b[real - 20..];
        let own = data.len() - 100;
        let g = guess_ng(data, own, Le).expect("a guess");
        assert_eq!(g.hop.path[0], 20);
        assert_eq!(g.n_lasts, 3);
        let (mut walked, mut a) = (NgHop::default(), at.clone());
        let (to, n) = walked.epbs(data, 20, own, Le, &mut a, 0);
        let (mut took, mut t) = (NgHop::default(), at.clone());
        assert_eq!(
            took.take_guess(&g, data, 20, own, Le, &mut t),
            Some((to, n))
        );
        assert!(n > 30 && n < 40, "{n} packets before the block's end");
        assert_eq!(found(&took), found(&walked));
        // Where the block before ended two packets in: the real blocks meet the guess there.
        let second = 20 + ng_epb_len(&data[20..], Le).unwrap();
        let third = second + ng_epb_len(&data[second..], Le).unwrap();
        let (mut walked, mut a) = (NgHop::default(), at.clone());
        let (to, n) = walked.epbs(data, third, own, Le, &mut a, 0);
        let (mut took, mut t) = (NgHop::default(), at.clone());
        assert_eq!(g.meet(data, third, own, Le), Some((third, 2)));
        assert_eq!(
            took.take_guess(&g, data, third, own, Le, &mut t),
            Some((to, n))
        );
        assert_eq!(found(&took), found(&walked));
        // In the other byte order nothing looks like a block.
        assert!(guess_ng(data, own, Be).is_none());
    }
}
