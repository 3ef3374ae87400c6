//! Counters over capture time, for `spanwatch read --report`: how chosen counters (sessions per
//! protocol, logins, timestamp anomalies…) grew bin by bin of packet time. Each producer and worker
//! keeps its own `Timeline` and, per packet, only compares the packet's bin with the current one;
//! on a change it adds the growth of the tracked counters since the last change to the bin just
//! left. Bins start at 1 ms and double in width whenever there would be more than `MAX_BINS`, so
//! memory stays bounded however long the capture; timelines of different widths merge exactly
//! because every width is 1 ms × 2^k on bins aligned to the epoch.

use metrics::Counters;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Bins one timeline holds before its bins double in width.
pub const MAX_BINS: usize = 2048;
const BASE_NS: i64 = 1_000_000;

/// Growth of the tracked counters per bin of capture time.
#[derive(Debug, Clone)]
pub struct Timeline {
    slots: Arc<[usize]>,
    width_ns: i64,
    bins: BTreeMap<i64, Vec<u64>>,
    cur: Option<i64>,
    last: Vec<u64>,
    delta: Vec<u64>,
}

impl Timeline {
    pub fn new(slots: Arc<[usize]>) -> Self {
        let n = slots.len();
        Timeline {
            slots,
            width_ns: BASE_NS,
            bins: BTreeMap::new(),
            cur: None,
            last: vec![0; n],
            delta: vec![0; n],
        }
    }

    /// The width of one bin, in ns.
    pub fn width_ns(&self) -> i64 {
        self.width_ns
    }

    /// Bins by start time (ns since the epoch), each with one value per tracked slot.
    pub fn bins(&self) -> impl Iterator<Item = (i64, &[u64])> {
        self.bins
            .iter()
            .map(move |(k, v)| (k * self.width_ns, v.as_slice()))
    }

    /// Call before the counters change for a packet stamped `ts_ns`.
    #[inline]
    pub fn tick(&mut self, ts_ns: i64, c: &Counters) {
        let bin = ts_ns.div_euclid(self.width_ns);
        if self.cur != Some(bin) {
            self.flush(c);
            self.cur = Some(bin);
        }
    }

    /// Adds what the counters grew by since the last flush to the current bin.
    pub fn flush(&mut self, c: &Counters) {
        let Some(cur) = self.cur else {
            for (l, &s) in self.last.iter_mut().zip(self.slots.iter()) {
                *l = c.get(s);
            }
            return;
        };
        let mut grew = false;
        let delta = &mut self.delta;
        for ((d, l), &s) in delta
            .iter_mut()
            .zip(self.last.iter_mut())
            .zip(self.slots.iter())
        {
            let v = c.get(s);
            *d = v.saturating_sub(*l);
            grew |= *d > 0;
            *l = v;
        }
        if grew {
            let bin = self.bins.entry(cur).or_insert_with(|| vec![0; delta.len()]);
            for (b, d) in bin.iter_mut().zip(delta.iter()) {
                *b += d;
            }
            while self.bins.len() > MAX_BINS {
                self.widen();
            }
        }
    }

    fn widen(&mut self) {
        let old = std::mem::take(&mut self.bins);
        for (k, v) in old {
            add_into(&mut self.bins, k.div_euclid(2), &v);
        }
        self.width_ns *= 2;
        self.cur = self.cur.map(|c| c.div_euclid(2));
    }

    /// Merges `other` (same slots) into this timeline, at the wider of the two widths.
    pub fn merge(&mut self, other: &Timeline) {
        let width = self.width_ns.max(other.width_ns);
        while self.width_ns < width {
            self.widen();
        }
        let ratio = width / other.width_ns;
        for (k, v) in &other.bins {
            add_into(&mut self.bins, k.div_euclid(ratio), v);
        }
        while self.bins.len() > MAX_BINS {
            self.widen();
        }
    }
}

fn add_into(bins: &mut BTreeMap<i64, Vec<u64>>, k: i64, v: &[u64]) {
    let b = bins.entry(k).or_insert_with(|| vec![0; v.len()]);
    for (x, y) in b.iter_mut().zip(v) {
        *x += y;
    }
}

/// Where producers and workers leave their timelines when they finish (one lock per thread, at
/// the end).
#[derive(Clone)]
pub struct Collector {
    pub slots: Arc<[usize]>,
    done: Arc<Mutex<Vec<Timeline>>>,
}

impl Collector {
    pub fn new(slots: Vec<usize>) -> Self {
        Collector {
            slots: slots.into(),
            done: Arc::default(),
        }
    }
    pub fn timeline(&self) -> Timeline {
        Timeline::new(self.slots.clone())
    }
    pub fn deliver(&self, mut t: Timeline, c: &Counters) {
        t.flush(c);
        if let Ok(mut d) = self.done.lock() {
            d.push(t);
        }
    }
    /// Everything delivered, merged.
    pub fn merged(&self) -> Timeline {
        let mut all = self.timeline();
        if let Ok(d) = self.done.lock() {
            for t in d.iter() {
                all.merge(t);
            }
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics::slot;

    #[test]
    fn counts_land_in_their_packets_bins_and_merge_exactly() {
        let slots: Arc<[usize]> = vec![slot::FTP_BRUTEFORCE, slot::OCSP_STAPLED].into();
        let mut c = Counters::new();
        let mut t = Timeline::new(slots.clone());
        // 10 000 packets over 100 s, one count per packet on slot 0 and one every 10th on slot 1.
        for i in 0..10_000i64 {
            t.tick(i * 10_000_000, &c);
            c.inc(slot::FTP_BRUTEFORCE);
            if i % 10 == 0 {
                c.inc(slot::OCSP_STAPLED);
            }
        }
        t.flush(&c);
        assert!(t.bins.len() <= MAX_BINS);
        let total: Vec<u64> = (0..2).map(|i| t.bins().map(|(_, v)| v[i]).sum()).collect();
        assert_eq!(total, [10_000, 1_000]);
        // 100 s in ≤ 2048 bins: 1 ms doubled to 64 ms.
        assert_eq!(t.width_ns(), 64_000_000);
        // A second timeline at 1 ms width merges into the wider one without loss.
        let mut c2 = Counters::new();
        let mut t2 = Timeline::new(slots);
        t2.tick(5_000_000_000, &c2);
        c2.add(slot::FTP_BRUTEFORCE, 7);
        t2.flush(&c2);
        t.merge(&t2);
        let at: Vec<(i64, u64)> = t
            .bins()
            .filter(|(s, _)| *s <= 5_000_000_000 && 5_000_000_000 < s + 64_000_000)
            .map(|(s, v)| (s, v[0]))
            .collect();
        assert_eq!(at.len(), 1);
        let sum0: u64 = t.bins().map(|(_, v)| v[0]).sum();
        assert_eq!(sum0, 10_007);
    }

    #[test]
    fn negative_times_and_huge_jumps_stay_bounded() {
        let mut c = Counters::new();
        let mut t = Timeline::new(vec![slot::OCSP_STAPLED].into());
        for ts in [
            -5_000_000_000i64,
            0,
            1_450_000_000_000_000_000,
            3,
            i64::MAX / 2,
        ] {
            t.tick(ts, &c);
            c.inc(slot::OCSP_STAPLED);
        }
        t.flush(&c);
        assert!(t.bins.len() <= MAX_BINS);
        assert_eq!(t.bins().map(|(_, v)| v[0]).sum::<u64>(), 5);
    }
}
