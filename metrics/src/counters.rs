//! Per-producer counters and their merge. A producer (a worker, the reader, an rx thread) owns a
//! plain `Counters` and adds to it with no atomics; now and then (once per batch) it publishes the
//! whole array into its `Shared` slot with relaxed stores. A scrape sums the published arrays.
//! Nothing here takes a lock on the packet path.

use crate::schema::{slot, HIST_SLOTS, IAT_BOUNDS_NS};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One producer's counters: a flat array indexed by `schema::slot`.
#[derive(Clone)]
pub struct Counters {
    v: Box<[u64]>,
}

impl Default for Counters {
    fn default() -> Self {
        Self::new()
    }
}

impl Counters {
    pub fn new() -> Self {
        Counters {
            v: vec![0; slot::TOTAL].into_boxed_slice(),
        }
    }
    #[inline]
    pub fn inc(&mut self, slot: usize) {
        self.v[slot] += 1;
    }
    #[inline]
    pub fn add(&mut self, slot: usize, n: u64) {
        self.v[slot] = self.v[slot].saturating_add(n);
    }
    #[inline]
    pub fn set(&mut self, slot: usize, n: u64) {
        self.v[slot] = n;
    }
    #[inline]
    pub fn get(&self, slot: usize) -> u64 {
        self.v[slot]
    }
    /// Records `ns` into the histogram whose block starts at `base` (see `slot::iat_hist`).
    #[inline]
    pub fn observe_ns(&mut self, base: usize, ns: u64) {
        self.v[base] += 1;
        self.v[base + 1] = self.v[base + 1].saturating_add(ns);
        // 28 bounds: a short linear scan beats a binary search on branch prediction here.
        let i = IAT_BOUNDS_NS
            .iter()
            .position(|&b| ns <= b)
            .unwrap_or(IAT_BOUNDS_NS.len());
        if i < IAT_BOUNDS_NS.len() {
            self.v[base + 2 + i] += 1;
        }
    }
    pub fn merge_from(&mut self, other: &Counters) {
        for (a, b) in self.v.iter_mut().zip(other.v.iter()) {
            *a = a.saturating_add(*b);
        }
    }
    pub fn as_slice(&self) -> &[u64] {
        &self.v
    }
}

/// A producer's published copy, readable from any thread.
pub struct Shared {
    v: Box<[AtomicU64]>,
}

impl Shared {
    fn new() -> Self {
        Shared {
            v: (0..slot::TOTAL).map(|_| AtomicU64::new(0)).collect(),
        }
    }
    /// Copies the producer's counters out. Values only grow, so a reader racing a publish sees
    /// each slot either before or after, never a decrease.
    pub fn publish(&self, c: &Counters) {
        for (a, &b) in self.v.iter().zip(c.v.iter()) {
            a.store(b, Ordering::Relaxed);
        }
    }
}

/// The set of producers; a scrape merges them.
#[derive(Clone, Default)]
pub struct Hub {
    producers: Arc<Mutex<Vec<Arc<Shared>>>>,
}

impl Hub {
    pub fn new() -> Self {
        Self::default()
    }
    /// Registers a producer (at thread start, not per packet).
    pub fn register(&self) -> Arc<Shared> {
        let s = Arc::new(Shared::new());
        self.producers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(s.clone());
        s
    }
    /// The sum of every producer's last publish.
    pub fn snapshot(&self) -> Counters {
        let mut out = Counters::new();
        let ps = self.producers.lock().unwrap_or_else(|e| e.into_inner());
        for p in ps.iter() {
            for (o, a) in out.v.iter_mut().zip(p.v.iter()) {
                *o = o.saturating_add(a.load(Ordering::Relaxed));
            }
        }
        out
    }
}

/// Number of histogram slots, re-exported for tests.
pub const HIST_LEN: usize = HIST_SLOTS;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Source;

    #[test]
    fn histogram_buckets_are_upper_inclusive() {
        let mut c = Counters::new();
        let b = slot::iat_hist(Source::Pcap);
        c.observe_ns(b, 10);
        c.observe_ns(b, 11);
        c.observe_ns(b, 20_000_000_000);
        assert_eq!(c.get(b), 3);
        assert_eq!(c.get(b + 2), 1); // <= 10 ns
        assert_eq!(c.get(b + 3), 1); // <= 20 ns
        let in_buckets: u64 = (0..IAT_BOUNDS_NS.len()).map(|i| c.get(b + 2 + i)).sum();
        assert_eq!(in_buckets, 2); // 20 s is above the top bound: only in +Inf
    }

    #[test]
    fn hub_sums_producers() {
        let hub = Hub::new();
        let (a, b) = (hub.register(), hub.register());
        let mut ca = Counters::new();
        let mut cb = Counters::new();
        ca.add(slot::packets(Source::Pcap), 5);
        cb.add(slot::packets(Source::Pcap), 7);
        a.publish(&ca);
        b.publish(&cb);
        assert_eq!(hub.snapshot().get(slot::packets(Source::Pcap)), 12);
    }
}
