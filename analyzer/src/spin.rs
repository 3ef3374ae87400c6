//! Waiting without sleeping, for the threads of the parallel file reader. A thread asleep on a
//! channel costs the thread that wakes it a system call and, on a virtual machine, an interrupt
//! to another processor: a worker handing a finished block back to a reader asleep on the buffer
//! pool spent 10-20 µs a block on it, about 5 ms of a 500 k-packet read's 50. So a thread that
//! runs out of work first spins a while, watching its channels, and sleeps only after that.
//!
//! It does so only while every runnable thread on the machine has a processor: a spinning thread
//! keeps its processor from looking idle, so the scheduler leaves a worker queued behind another
//! program's thread instead of moving it there (unchecked, a read took 2.2 times as long beside
//! a busy loop on one of two processors, and 1.2-1.3 times beside a program busy half the time).
//! Where the read has more threads than the processors it may use, nothing spins. Otherwise the
//! kernel's count of runnable threads (`/proc/loadavg`) is looked at every 2 ms, and once three
//! counts in a row exceed the processors, or a spinning thread finds it was preempted, spinning
//! stops for the rest of the read: a machine busy for that long is likely busy again. Live
//! capture never spins: it runs for days, mostly waiting. (The sequential reader does not either:
//! spinning there gained nothing measurable.)

use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long an idle thread spins before it sleeps. The next block or buffer is usually a block's
/// processing away (tens to hundreds of µs).
pub const SPIN: Duration = Duration::from_millis(1);

/// How often the machine's runnable threads are counted.
const LOOK_EVERY: Duration = Duration::from_millis(2);

/// Counts in a row that must find more runnable threads than processors to stop the spinning.
const OVER_COUNTS: u32 = 3;

/// A pause between two looks at the clock, 64 looks at the channels apart (a few µs), longer
/// than this means the thread was off its processor for another thread (on this VM, pauses of
/// 100-130 µs came without one: interrupts, the hypervisor).
const PREEMPTED: Duration = Duration::from_micros(500);

/// The spinning of one read's threads.
#[derive(Debug)]
pub struct Spin {
    budget: Duration,
    cpus: usize,
    start: Instant,
    /// When (ns from `start`) the runnable threads are next counted.
    next_look: AtomicU64,
    /// OVER_COUNTS counts in a row found more runnable threads than processors, or a spin was
    /// preempted: no more spinning.
    crowded: AtomicBool,
    /// Counts in a row, up to the last, that found more runnable threads than processors.
    over: AtomicU32,
}

impl Spin {
    /// Spins of `budget` at most, while the machine's runnable threads fit `cpus` processors.
    fn new(budget: Duration, cpus: usize) -> Spin {
        Spin {
            budget,
            cpus,
            start: Instant::now(),
            next_look: AtomicU64::new(0),
            crowded: AtomicBool::new(false),
            over: AtomicU32::new(0),
        }
    }

    /// No spinning.
    pub fn none() -> Spin {
        Spin::new(Duration::ZERO, 0)
    }

    /// For `threads` threads on `cpus` processors: none when they do not each have one.
    pub fn for_threads(threads: usize, cpus: usize) -> Spin {
        if threads <= cpus {
            Spin::new(SPIN, cpus)
        } else {
            Spin::none()
        }
    }

    /// For `threads` threads on the processors this process may run on; none where
    /// `SPANWATCH_SPIN=0` says so (callgrind's counts, which a spin makes vary: under valgrind
    /// the threads take turns).
    pub fn here(threads: usize) -> Spin {
        if !wanted(std::env::var_os("SPANWATCH_SPIN").as_deref()) {
            return Spin::none();
        }
        Spin::for_threads(
            threads,
            std::thread::available_parallelism().map_or(1, |c| c.get()),
        )
    }

    /// Whether a thread out of work spins now.
    fn on(&self) -> bool {
        if self.budget.is_zero() || self.crowded.load(Ordering::Relaxed) {
            return false;
        }
        let now = self.start.elapsed().as_nanos() as u64;
        let due = self.next_look.load(Ordering::Relaxed);
        if now >= due
            && self
                .next_look
                .compare_exchange(
                    due,
                    now + LOOK_EVERY.as_nanos() as u64,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            // One thread counts; the others go by its last count meanwhile.
            // OVER_COUNTS in a row: a kernel thread is often runnable for a moment.
            if room(runnable(), self.cpus) {
                self.over.store(0, Ordering::Relaxed);
            } else if self.over.fetch_add(1, Ordering::Relaxed) + 1 >= OVER_COUNTS {
                self.crowded.store(true, Ordering::Relaxed);
            }
        }
        !self.crowded.load(Ordering::Relaxed)
    }

    /// Spins until `ready` says there is something to take, for the budget at most (or not at
    /// all, where it should not: see the module's paragraph).
    #[inline]
    pub fn until(&self, mut ready: impl FnMut() -> bool) {
        if !self.on() {
            return;
        }
        let t0 = Instant::now();
        let mut last = Duration::ZERO;
        loop {
            // The clock is read once per 64 looks.
            for _ in 0..64 {
                if ready() {
                    return;
                }
                std::hint::spin_loop();
            }
            let now = t0.elapsed();
            if now - last > PREEMPTED {
                // Someone else wanted this processor.
                self.crowded.store(true, Ordering::Relaxed);
                return;
            }
            if now >= self.budget {
                return;
            }
            last = now;
        }
    }
}

/// Whether spinning is wanted, by `SPANWATCH_SPIN`'s value: only "0" says no.
fn wanted(var: Option<&std::ffi::OsStr>) -> bool {
    var.is_none_or(|v| v != "0")
}

/// Whether `runnable` threads (None: not known) each have one of `cpus` processors.
fn room(runnable: Option<usize>, cpus: usize) -> bool {
    runnable.is_some_and(|r| r <= cpus)
}

/// The machine's runnable threads now (the fourth field of `/proc/loadavg`, before its '/'),
/// this one among them; None where it cannot be read.
fn runnable() -> Option<usize> {
    let mut buf = [0u8; 128];
    let n = std::fs::File::open("/proc/loadavg")
        .and_then(|mut f| f.read(&mut buf))
        .ok()?;
    parse_runnable(std::str::from_utf8(&buf[..n]).ok()?)
}

fn parse_runnable(loadavg: &str) -> Option<usize> {
    let field = loadavg.split_ascii_whitespace().nth(3)?;
    field.split_once('/')?.0.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_runnable_count() {
        assert_eq!(parse_runnable("0.56 0.78 1.02 2/78 5301\n"), Some(2));
        assert_eq!(parse_runnable("0.56 0.78 1.02 17/1078 5301"), Some(17));
        assert_eq!(parse_runnable("0.56 0.78 1.02"), None);
        assert_eq!(parse_runnable("0.56 0.78 1.02 x/78 5301"), None);
    }

    #[test]
    fn spanwatch_spin_0_turns_spinning_off() {
        assert!(wanted(None));
        assert!(wanted(Some("1".as_ref())));
        assert!(!wanted(Some("0".as_ref())));
    }

    #[test]
    fn room_is_a_processor_for_every_runnable_thread() {
        assert!(room(Some(2), 2));
        assert!(room(Some(1), 16));
        assert!(!room(Some(3), 2));
        assert!(!room(None, 64));
    }

    #[test]
    fn threads_spin_only_where_each_has_a_processor() {
        assert!(Spin::for_threads(2, 2).budget == SPIN);
        assert!(Spin::for_threads(5, 16).budget == SPIN);
        assert!(!Spin::for_threads(3, 2).on());
        assert!(!Spin::for_threads(16, 4).on());
        assert!(!Spin::none().on());
    }

    /// A spin that has counted a machine with room (as one with a processor per thread would).
    fn roomy() -> Spin {
        let s = Spin::new(Duration::from_secs(10), usize::MAX);
        s.next_look.store(u64::MAX, Ordering::Relaxed);
        s
    }

    #[test]
    fn a_spin_ends_when_there_is_work_and_is_skipped_when_off() {
        let s = roomy();
        let mut looks = 0;
        s.until(|| {
            looks += 1;
            looks == 3
        });
        assert_eq!(looks, 3);
        assert!(s.on());
        let mut looks = 0;
        Spin::none().until(|| {
            looks += 1;
            true
        });
        assert_eq!(looks, 0);
    }

    #[test]
    fn counts_over_with_room_between_them_stop_nothing() {
        let mut s = Spin::new(Duration::from_secs(10), 0);
        for cpus in [0, 0, usize::MAX, 0, 0, usize::MAX, 0, 0] {
            s.cpus = cpus;
            s.next_look.store(0, Ordering::Relaxed);
            assert!(s.on());
        }
    }

    #[test]
    fn a_crowded_machine_stops_the_spinning_for_good() {
        let s = Spin::new(Duration::from_secs(10), 0);
        // Never fewer than one runnable thread (this one): no room on no processors. A count or
        // two over is not enough (a kernel thread runs for a moment); three in a row are.
        for _ in 1..OVER_COUNTS {
            s.next_look.store(0, Ordering::Relaxed);
            assert!(s.on());
            assert!(!s.crowded.load(Ordering::Relaxed));
        }
        s.next_look.store(0, Ordering::Relaxed);
        assert!(!s.on());
        assert!(s.crowded.load(Ordering::Relaxed));
        let s = roomy();
        let mut looks = 0;
        // The second look takes as long as a preemption would (the spin notices at its next
        // look at the clock, 64 looks on).
        s.until(|| {
            looks += 1;
            if looks == 2 {
                std::thread::sleep(Duration::from_millis(2));
            }
            false
        });
        assert_eq!(looks, 64);
        // Not even a count that finds room (a count is due, on a roomy machine) brings it back.
        s.next_look.store(0, Ordering::Relaxed);
        assert!(!s.on());
        let mut looks = 0;
        s.until(|| {
            looks += 1;
            false
        });
        assert_eq!(looks, 0);
    }
}
