//! Page faults taken off the packet path. A worker writes each new flow's record to the next
//! slot of its flow slab, whose pages the kernel maps on their first write: one fault for every
//! 24 new flows, 1.4 µs each on this project's VMs, which under a flood of new flows was half of
//! a worker's time. After each batch a worker's `Ahead` asks, through a bounded queue, for the
//! slab's next `STEP` slots whenever fewer than that lie mapped ahead of the highest one in use
//! (never past what the slab reserved), and for the buckets its flow index will grow into once
//! they are made (`FlowIndex::spare`, at 3/4 of the index's room). The threads that feed and run
//! the workers map what it asks when they have nothing else to do (`Shared`), a chunk at a time
//! until other work comes (what remains of a request then goes back to the queue for whichever
//! thread idles next), so the mapping only takes a processor that would otherwise idle. The one
//! exception is a parallel file read with one worker, whose two threads are busy by turns: there
//! a thread of its own maps (`Shared::into_thread`). (Until session 25 one thread for every four
//! workers did it everywhere; with a thread on every processor already, it preempted them.) The
//! mapping itself is the binary's (`install`: the analyzer holds no `unsafe` code); without
//! one, or where the kernel refuses it, or where no thread is idle and the queue fills, a worker
//! takes its faults itself. Nothing waits: a full queue drops the request.

use crossbeam_channel::{bounded, never, Receiver, Sender};
use std::sync::OnceLock;

/// Maps the pages of `[addr, addr + len)` writable now, as a first write would, without changing
/// what they hold; false where that could not be done.
pub type Populate = fn(addr: usize, len: usize) -> bool;

static POPULATE: OnceLock<Populate> = OnceLock::new();

/// Gives the analyzer its way of mapping pages ahead of use (once; later calls change nothing).
/// Until then nothing is asked for.
pub fn install(p: Populate) {
    let _ = POPULATE.set(p);
}

/// Slab slots a request maps: 8 Ki (1.3 MiB of 168-byte records, 336 pages, about 0.5 ms of a
/// thread's time on this project's VMs, where a worker makes as many flows in a flood in 0.6 ms).
/// At most two steps lie mapped ahead of a worker's highest slot.
pub const STEP: usize = 8192;

/// Requests the queue holds: every worker's next one, several times over.
const QUEUE: usize = 256;

/// Bytes an idle thread maps at a time (8 pages of 4 KiB, about 11 µs on this project's VMs),
/// so its own next task waits no longer than that. Chunks end at multiples of it, so each holds
/// whole pages. (256 KiB chunks made an idle reader thread leave its worker without blocks on
/// this VM; 4 KiB ones, a call a page, slowed the UDP flood: bench/RESULTS.md, session 25.)
pub const CHUNK: usize = 32 << 10;

/// The workers' end of the queue: each worker's `Ahead` comes from it.
pub struct Prefaulter {
    tx: Option<Sender<(usize, usize)>>,
}

impl Prefaulter {
    /// The queue, with the installed mapping for `Shared` to serve; with none installed, each
    /// `Ahead` asks for nothing. On the 16-core device, 15 workers read the mix 21 % faster with
    /// the mapping done by idle threads than with threads of their own, the UDP flood 11 %, the
    /// SYN flood 6 % (bench/RESULTS.md, session 25).
    pub fn new() -> (Prefaulter, Shared) {
        match POPULATE.get() {
            Some(&p) => Prefaulter::with(p),
            None => (Prefaulter { tx: None }, Shared::none()),
        }
    }

    /// The queue, served with `populate`.
    pub fn with(populate: Populate) -> (Prefaulter, Shared) {
        let (tx, rx) = bounded(QUEUE);
        let shared = Shared {
            tx: Some(tx.clone()),
            rx,
            populate,
        };
        (Prefaulter { tx: Some(tx) }, shared)
    }

    /// A worker's end of the queue.
    pub fn ahead(&self) -> Ahead {
        Ahead {
            tx: self.tx.clone(),
            asked: 0,
        }
    }
}

/// The requests of the workers, served by the threads around them between tasks (each serving
/// thread holds a clone).
#[derive(Clone)]
pub struct Shared {
    /// For what remains of a request after a chunk; it also keeps the queue open for as long as
    /// a thread may wait on it (None: nothing is ever asked).
    tx: Option<Sender<(usize, usize)>>,
    rx: Receiver<(usize, usize)>,
    populate: Populate,
}

impl Shared {
    /// Nothing to serve (a read whose requests go to a thread of their own, `into_thread`).
    pub fn none() -> Shared {
        Shared {
            tx: None,
            rx: never(),
            populate: |_, _| true,
        }
    }

    /// Serves the requests on a thread of their own, each mapped whole, until every sender is
    /// gone; None where nothing is ever asked (no mapping installed).
    pub fn into_thread(self) -> Option<std::thread::JoinHandle<()>> {
        self.tx.as_ref()?;
        let own = Shared { tx: None, ..self };
        std::thread::Builder::new()
            .name("prefault".into())
            .spawn(move || {
                for req in own.rx.iter() {
                    own.take(req, || true);
                }
            })
            .ok()
    }

    /// The queue, for an idle thread's wait.
    pub fn requests(&self) -> &Receiver<(usize, usize)> {
        &self.rx
    }

    /// Whether a request waits to be taken.
    pub fn waiting(&self) -> bool {
        !self.rx.is_empty()
    }

    /// Maps the next request in the queue, a chunk at a time while `idle` says this thread
    /// still has nothing else to do: false where none waits.
    pub fn serve(&self, idle: impl FnMut() -> bool) -> bool {
        match self.rx.try_recv() {
            Ok(req) => {
                self.take(req, idle);
                true
            }
            Err(_) => false,
        }
    }

    /// Maps `[addr, addr + len)` a chunk at a time (each up to the next multiple of `CHUNK`)
    /// while `idle` says this thread still has nothing else to do; what remains when it has is
    /// put back in the queue (dropped if the queue is full) for whichever thread idles next.
    pub fn take(&self, (mut addr, mut len): (usize, usize), mut idle: impl FnMut() -> bool) {
        while len > 0 {
            let n = len.min((addr / CHUNK + 1) * CHUNK - addr);
            (self.populate)(addr, n);
            (addr, len) = (addr + n, len - n);
            if len > 0 && !idle() {
                if let Some(tx) = &self.tx {
                    let _ = tx.try_send((addr, len));
                }
                return;
            }
        }
    }
}

/// A worker's requests to have pages mapped ahead, and how far into its slab it has asked for.
pub struct Ahead {
    tx: Option<Sender<(usize, usize)>>,
    /// Bytes from the slab's start asked for so far.
    asked: usize,
}

impl Ahead {
    /// Asks for nothing (tests, tools).
    pub fn none() -> Ahead {
        Ahead { tx: None, asked: 0 }
    }

    /// After a batch: the slab at `base` has `used` bytes of slots written and `reserved` bytes
    /// in all, of `slot`-byte slots. Asks for the next `STEP` slots when fewer lie asked for
    /// ahead of `used` (a compare, on most batches).
    #[inline(always)]
    pub fn keep(&mut self, base: usize, used: usize, reserved: usize, slot: usize) {
        if used + STEP * slot > self.asked {
            self.ask(base, used, reserved, slot);
        }
    }

    /// Asks for `[addr, addr + len)` at once (the buckets a flow index will grow into).
    pub fn map(&mut self, addr: usize, len: usize) {
        if let Some(tx) = &self.tx {
            let _ = tx.try_send((addr, len));
        }
    }

    #[inline(never)]
    fn ask(&mut self, base: usize, used: usize, reserved: usize, slot: usize) {
        let Some(tx) = &self.tx else { return };
        let from = self.asked.max(used);
        let to = (used + 2 * STEP * slot).min(reserved);
        if to > from {
            // A full queue drops the request: the worker then takes those faults itself.
            let _ = tx.try_send((base + from, to - from));
        }
        self.asked = self.asked.max(to);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    static SERVED: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());

    fn serve_record(addr: usize, len: usize) -> bool {
        SERVED.lock().unwrap().push((addr, len));
        true
    }

    #[test]
    fn an_idle_thread_maps_a_request_a_chunk_at_a_time_on_chunk_boundaries() {
        let (tx, rx) = bounded(4);
        let shared = Shared {
            tx: Some(tx.clone()),
            rx,
            populate: serve_record,
        };
        assert!(!shared.serve(|| true), "nothing asked");
        // From 1 KiB below a chunk boundary, 2.5 chunks: the first chunk ends at the boundary.
        let addr = 7 * CHUNK - 1024;
        tx.send((addr, 2 * CHUNK + CHUNK / 2)).unwrap();
        tx.send((1 << 30, 4096)).unwrap();
        assert!(shared.waiting());
        // Other work comes after the first request's second chunk: the rest of that request
        // goes behind the second, and is mapped whole by the next idle thread.
        let mut idle = [true, false].into_iter();
        assert!(shared.serve(|| idle.next().unwrap_or(true)));
        assert!(shared.serve(|| true));
        assert!(shared.serve(|| true));
        assert!(!shared.serve(|| true));
        assert_eq!(
            *SERVED.lock().unwrap(),
            [
                (addr, 1024),
                (7 * CHUNK, CHUNK),
                (1 << 30, 4096),
                (8 * CHUNK, CHUNK),
                (9 * CHUNK, CHUNK / 2 - 1024),
            ]
        );
    }

    #[test]
    fn asks_for_two_steps_ahead_of_the_slots_in_use_and_never_past_the_reservation() {
        let (pf, shared) = Prefaulter::with(|_, _| true);
        let mut a = pf.ahead();
        let (base, slot) = (1 << 20, 100);
        let reserved = 5 * STEP * slot;
        let step = STEP * slot;
        // Nothing written yet: two steps. Then nothing until less than a step lies ahead.
        a.keep(base, 0, reserved, slot);
        a.keep(base, step / 2, reserved, slot);
        a.keep(base, step, reserved, slot);
        // Past a step in use: up to two steps ahead of it, from where the last request ended.
        a.keep(base, step + slot, reserved, slot);
        // A jump (a batch of many new flows) asks from the slots in use on.
        a.keep(base, 4 * step, reserved, slot);
        a.keep(base, 5 * step, reserved, slot);
        assert_eq!(
            shared.requests().try_iter().collect::<Vec<_>>(),
            [
                (base, 2 * step),
                (base + 2 * step, step + slot),
                (base + 4 * step, step),
            ]
        );
    }
}
