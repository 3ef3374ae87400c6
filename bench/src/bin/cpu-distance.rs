//! How far apart two CPUs are, as the time a cache line takes to go from one to the other and
//! back: two threads, pinned to CPUs A and B, hand a counter to each other ROUNDS times. On a
//! virtual machine the host can move its vCPUs between cores that share a cache and cores that
//! do not, which changes this several-fold; a pipeline that hands packets between threads (as
//! `spanwatch read` does) slows with it, a one-thread tool does not. The throughput harness runs
//! this in every round so that its tables say which rounds ran far apart.
//!   usage: cpu-distance [A B [ROUNDS]]   (default 0 1 200000; prints nanoseconds a round trip)

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// The shared counter on a cache line of its own.
#[repr(align(128))]
struct Line(AtomicU64);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: u64| -> u64 {
        args.get(i).map_or(d, |a| {
            a.parse().unwrap_or_else(|_| {
                eprintln!("cpu-distance: {a}: expected a number");
                std::process::exit(2)
            })
        })
    };
    let (a, b, rounds) = (
        arg(0, 0) as usize,
        arg(1, 1) as usize,
        arg(2, 200_000).max(1),
    );
    let line = Line(AtomicU64::new(0));
    let far = std::thread::scope(|s| {
        s.spawn(|| {
            if !xdp::pin_this_thread(b) {
                eprintln!("cpu-distance: cannot run on CPU {b}");
                std::process::exit(2)
            }
            for i in 0..rounds {
                while line.0.load(Ordering::Acquire) != 2 * i + 1 {
                    std::hint::spin_loop();
                }
                line.0.store(2 * i + 2, Ordering::Release);
            }
        });
        if !xdp::pin_this_thread(a) {
            eprintln!("cpu-distance: cannot run on CPU {a}");
            std::process::exit(2)
        }
        let t0 = Instant::now();
        for i in 0..rounds {
            line.0.store(2 * i + 1, Ordering::Release);
            while line.0.load(Ordering::Acquire) != 2 * i + 2 {
                std::hint::spin_loop();
            }
        }
        t0.elapsed()
    });
    println!("{:.1}", far.as_nanos() as f64 / rounds as f64);
}
