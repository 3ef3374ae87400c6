//! Per-producer counters and their merge. A producer (a worker, the reader, an rx thread) owns a
//! plain `Counters` and adds to it with no atomics; now and then (once per batch) it publishes the
//! whole array into its `Shared` slot with relaxed stores. A scrape sums the published arrays.
//! Nothing here takes a lock on the packet path.

use crate::schema::{slot, HIST_SLOTS, IAT_BOUNDS_NS};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One producer's counters: a flat array indexed by `schema::slot`. Its length is a constant, so
/// an increment of a constant slot compiles to one instruction with no bounds check.
#[derive(Clone)]
pub struct Counters {
    v: Box<[u64; slot::TOTAL]>,
}

impl Default for Counters {
    fn default() -> Self {
        Self::new()
    }
}

/// For each bit length of a value: the index of the first bound at or above the smallest value
/// of that length, and that bound (u64::MAX where there is none: every such value lies above all
/// the bounds, in the extra last bucket).
const FIRST_BOUND: [(u64, u64); 65] = {
    let mut t = [(0u64, 0u64); 65];
    let mut bits = 1;
    while bits < 65 {
        let low = 1u128 << (bits - 1);
        let mut i = 0;
        while i < IAT_BOUNDS_NS.len() && (IAT_BOUNDS_NS[i] as u128) < low {
            i += 1;
        }
        t[bits] = (
            i as u64,
            if i < IAT_BOUNDS_NS.len() {
                IAT_BOUNDS_NS[i]
            } else {
                u64::MAX
            },
        );
        bits += 1;
    }
    t[0] = (0, IAT_BOUNDS_NS[0]);
    t
};

/// The index of the first bound `ns` does not exceed (`IAT_BOUNDS_NS.len()`: above them all).
/// Consecutive bounds are at least a factor 2 apart, so values of one bit length straddle at
/// most one bound: a table lookup and one comparison.
#[inline]
fn bucket(ns: u64) -> usize {
    let (i, bound) = FIRST_BOUND[(64 - ns.leading_zeros()) as usize];
    (i + (ns > bound) as u64) as usize
}

/// `LocalHist`'s buckets: a power of two at least one more than the bounds, so that an index
/// masked to it needs no bounds check.
const LOCAL_BUCKETS: usize = (IAT_BOUNDS_NS.len() + 1).next_power_of_two();

/// Observations of one histogram gathered locally (a block of packets' worth) and added to the
/// counters in one go with `Counters::merge_hist`: the same result as one `observe_ns` each.
#[derive(Clone, Default)]
pub struct LocalHist {
    sum: u64,
    /// Only the first `IAT_BOUNDS_NS.len() + 1` are ever counted in.
    buckets: [u64; LOCAL_BUCKETS],
}

impl LocalHist {
    #[inline]
    pub fn observe(&mut self, ns: u64) {
        self.sum = self.sum.saturating_add(ns);
        // The extra last bucket (above every bound) is not a slot: only the count holds it. The
        // count is the buckets' sum, taken at the merge.
        self.buckets[bucket(ns) & (LOCAL_BUCKETS - 1)] += 1;
    }
}

impl Counters {
    pub fn new() -> Self {
        Counters {
            v: Box::new([0; slot::TOTAL]),
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
        let i = bucket(ns);
        if i < IAT_BOUNDS_NS.len() {
            self.v[base + 2 + i] += 1;
        }
    }
    /// Adds locally gathered observations to the histogram whose block starts at `base`.
    pub fn merge_hist(&mut self, base: usize, h: &LocalHist) {
        let count: u64 = h.buckets.iter().sum();
        if count == 0 {
            return;
        }
        self.v[base] += count;
        self.v[base + 1] = self.v[base + 1].saturating_add(h.sum);
        for (i, &n) in h.buckets[..IAT_BOUNDS_NS.len()].iter().enumerate() {
            self.v[base + 2 + i] += n;
        }
    }
    pub fn merge_from(&mut self, other: &Counters) {
        for (a, b) in self.v.iter_mut().zip(other.v.iter()) {
            *a = a.saturating_add(*b);
        }
    }
    pub fn as_slice(&self) -> &[u64] {
        &self.v[..]
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
    fn bucket_matches_a_scan_of_the_bounds() {
        let scan = |ns: u64| {
            IAT_BOUNDS_NS
                .iter()
                .position(|&b| ns <= b)
                .unwrap_or(IAT_BOUNDS_NS.len())
        };
        assert!(IAT_BOUNDS_NS.windows(2).all(|w| w[1] >= 2 * w[0]));
        let mut probes = vec![0, 1, u64::MAX, u64::MAX - 1];
        for &b in &IAT_BOUNDS_NS {
            probes.extend([b - 1, b, b + 1]);
        }
        for k in 0..64 {
            probes.extend([(1u64 << k) - 1, 1 << k, (1 << k) + 1]);
        }
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            probes.push(x >> (x % 64));
        }
        for ns in probes {
            assert_eq!(bucket(ns), scan(ns), "{ns}");
        }
    }

    #[test]
    fn local_histogram_merges_like_single_observations() {
        let b = slot::iat_hist(Source::Pcap);
        let (mut one, mut merged, mut local) =
            (Counters::new(), Counters::new(), LocalHist::default());
        merged.observe_ns(b, 7);
        one.observe_ns(b, 7);
        for ns in [
            0,
            10,
            11,
            999,
            1_000_000,
            20_000_000_000,
            u64::MAX,
            u64::MAX,
        ] {
            one.observe_ns(b, ns);
            local.observe(ns);
        }
        merged.merge_hist(b, &local);
        assert_eq!(one.as_slice(), merged.as_slice());
    }

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
