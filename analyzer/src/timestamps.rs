//! Capture timestamp checks, run on the reader/rx thread in arrival order, per timestamp source
//! (each file's pcapng interface, each live queue), before sharding reorders anything. Definitions
//! are DESIGN.md §5: a negative delta is a packet stamped earlier than the one read just before it;
//! impossible spacing is `0 ≤ Δ < (wire_len + 24) × 8 / link_speed` (preamble, FCS and inter-frame
//! gap are the 24 bytes). Deltas also feed the inter-arrival histogram.

use crate::decode::Decoded;
use hashbrown::HashMap;
use metrics::{slot, Counters, Source};
use serde_json::json;

/// Event budget per source: the first N anomalies of each kind are reported, the rest only counted.
pub const EVENTS_PER_SOURCE: u32 = 10;

#[derive(Clone, Copy, Default)]
struct Prev {
    ts: i64,
    number: u64,
    flow: Option<FlowId>,
    neg_events: u32,
    spacing_events: u32,
}

/// The five-tuple of a packet, for anomaly events.
#[derive(Clone, Copy, Debug, Default)]
pub struct FlowId {
    v6: bool,
    src: [u8; 16],
    dst: [u8; 16],
    sport: u16,
    dport: u16,
    proto: u8,
}

impl FlowId {
    pub fn of(d: &Decoded) -> FlowId {
        FlowId {
            v6: d.v6,
            src: d.src(),
            dst: d.dst(),
            sport: d.sport(),
            dport: d.dport(),
            proto: d.proto,
        }
    }
    fn json(&self) -> serde_json::Value {
        json!({
            "source": {"ip": crate::decode::ip(&self.src, self.v6).to_string(), "port": self.sport},
            "destination": {"ip": crate::decode::ip(&self.dst, self.v6).to_string(), "port": self.dport},
            "iana_number": self.proto,
        })
    }
}

/// One packet's place in its source: what the checks look at.
#[derive(Clone, Copy, Debug)]
pub struct Stamp {
    pub iface: u32,
    pub ts: i64,
    pub wire_len: u32,
    pub number: u64,
}

/// What one check found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anomaly {
    None,
    First,
    Negative,
    /// Zero delta: also impossible spacing, reported as such.
    Zero,
    Impossible,
}

/// The usual case of the spacing check, for the reader's per-packet loop: a positive delta no
/// shorter than the frame's wire time. Exact (the same answer as `TsChecker::impossible`): by
/// table for frames shorter than `TABLE_LEN` bytes, else in 64-bit arithmetic where neither
/// product can overflow, else in `impossible`'s 128-bit.
#[derive(Clone, Debug)]
pub struct Spacing {
    bps: u64,
    /// The largest delta whose product with `bps` fits in 64 bits.
    fast_max: u64,
    /// Per frame length below `TABLE_LEN`: the shortest possible delta (≥ 1 ns).
    min: Box<[i64]>,
}

/// Frame lengths the spacing table covers (every Ethernet frame short of jumbo frames).
const TABLE_LEN: usize = 2048;

impl Spacing {
    /// The check for a link of `link_bps` bits per second.
    pub fn new(link_bps: u64) -> Spacing {
        let bps = link_bps.max(1);
        // Δ · bps ≥ (len+24) · 8e9  ⇔  Δ ≥ ⌈(len+24) · 8e9 / bps⌉, for whole Δ.
        let min = (0..TABLE_LEN as u128)
            .map(|len| {
                let wire = (len + 24) * 8 * 1_000_000_000;
                i64::try_from(wire.div_ceil(bps as u128)).unwrap_or(i64::MAX)
            })
            .collect();
        Spacing {
            bps,
            fast_max: u64::MAX / bps,
            min,
        }
    }

    #[inline(always)]
    pub fn possible(&self, delta_ns: i64, wire_len: u32) -> bool {
        if let Some(&min) = self.min.get(wire_len as usize) {
            return delta_ns >= min;
        }
        if delta_ns <= 0 {
            return false;
        }
        // (2^30 + 24) · 8e9 < 2^64: the right side fits for any frame shorter than 1 GiB.
        if delta_ns as u64 <= self.fast_max && wire_len < 1 << 30 {
            delta_ns as u64 * self.bps >= (wire_len as u64 + 24) * 8 * 1_000_000_000
        } else {
            !TsChecker::impossible(self.bps, delta_ns, wire_len)
        }
    }
}

pub struct TsChecker {
    source: Source,
    link_bps: u64,
    spacing: Spacing,
    /// The latest packet's source and what is kept of it: a capture of one queue or one
    /// interface never touches `others`, the other sources seen.
    cur: Option<(u32, Prev)>,
    others: HashMap<u32, Prev>,
    /// Label for events: the file name or queue.
    pub origin: String,
}

impl TsChecker {
    pub fn new(source: Source, link_bps: u64) -> Self {
        TsChecker {
            source,
            link_bps: link_bps.max(1),
            spacing: Spacing::new(link_bps),
            cur: None,
            others: HashMap::new(),
            origin: String::new(),
        }
    }

    /// Starts a new input (a new file): its sources begin afresh.
    pub fn reset(&mut self, origin: &str) {
        self.cur = None;
        self.others.clear();
        self.origin = origin.to_string();
    }

    /// True when `delta_ns` is shorter than the wire time of a frame of `wire_len` bytes.
    #[inline]
    pub fn impossible(link_bps: u64, delta_ns: i64, wire_len: u32) -> bool {
        // Δ < (len+24)·8/speed  ⇔  Δ_ns · speed < (len+24)·8·1e9, exact in integers.
        delta_ns >= 0
            && (delta_ns as u128) * (link_bps as u128) < (wire_len as u128 + 24) * 8 * 1_000_000_000
    }

    /// Checks one packet; `emit` receives anomaly events (already rate-limited).
    #[inline]
    pub fn check(
        &mut self,
        s: Stamp,
        d: Option<&Decoded>,
        c: &mut Counters,
        mut emit: impl FnMut(serde_json::Value),
    ) -> Anomaly {
        let Stamp {
            iface,
            ts,
            wire_len,
            number,
        } = s;
        let flow = d.map(FlowId::of);
        let (src, bps) = (self.source, self.link_bps);
        if !matches!(self.cur, Some((i, _)) if i == iface) {
            // Another source than the latest packet's: park that one, take this one's.
            if let Some((i, p)) = self.cur.take() {
                self.others.insert(i, p);
            }
            let Some(p) = self.others.remove(&iface) else {
                let p = Prev {
                    ts,
                    number,
                    flow,
                    ..Prev::default()
                };
                self.cur = Some((iface, p));
                return Anomaly::First;
            };
            self.cur = Some((iface, p));
        }
        let Some((_, p)) = self.cur.as_mut() else {
            return Anomaly::First;
        };
        let delta = ts.saturating_sub(p.ts);
        let origin = &self.origin;
        // The first EVENTS_PER_SOURCE anomalies of each kind become events; the rest are counted.
        let mut report = |action: &str, budget: &mut u32, p: &Prev| {
            if *budget < EVENTS_PER_SOURCE {
                *budget += 1;
                emit(self::event(
                    action, origin, iface, number, delta, ts, p.number, p.flow, flow,
                ));
            }
        };
        let (out, impossible) = if self.spacing.possible(delta, wire_len) {
            // The usual case, as `measure` would count it, without its 128-bit arithmetic.
            c.observe_ns(slot::iat_hist(src), delta as u64);
            (Anomaly::None, false)
        } else {
            measure(c, src, bps, delta, wire_len)
        };
        if out == Anomaly::Negative {
            let mut budget = p.neg_events;
            report("timestamp-negative-delta", &mut budget, p);
            p.neg_events = budget;
        } else if impossible {
            let mut budget = p.spacing_events;
            report("timestamp-impossible-spacing", &mut budget, p);
            p.spacing_events = budget;
        }
        p.ts = ts;
        p.number = number;
        p.flow = flow;
        out
    }
}

/// Counts one inter-arrival `delta` (the histograms and the negative, zero and impossible-spacing
/// counters) and says what it is: the anomaly, and whether the spacing is impossible at the link
/// speed (a zero delta is both). The sequential checker and the parallel reader share it.
#[inline]
pub fn measure(
    c: &mut Counters,
    src: Source,
    link_bps: u64,
    delta: i64,
    wire_len: u32,
) -> (Anomaly, bool) {
    if delta < 0 {
        c.inc(slot::ts_negative(src));
        c.observe_ns(slot::neg_hist(src), delta.unsigned_abs());
        return (Anomaly::Negative, false);
    }
    let mut out = Anomaly::None;
    c.observe_ns(slot::iat_hist(src), delta as u64);
    if delta == 0 {
        c.inc(slot::ts_zero(src));
        out = Anomaly::Zero;
    }
    let impossible = TsChecker::impossible(link_bps, delta, wire_len);
    if impossible {
        c.inc(slot::ts_impossible(src));
        if out == Anomaly::None {
            out = Anomaly::Impossible;
        }
    }
    (out, impossible)
}

/// The event for one anomaly (`prev_*`: the packet before it from the same source).
#[allow(clippy::too_many_arguments)]
pub(crate) fn event(
    action: &str,
    origin: &str,
    iface: u32,
    number: u64,
    delta: i64,
    ts: i64,
    prev_number: u64,
    prev_flow: Option<FlowId>,
    flow: Option<FlowId>,
) -> serde_json::Value {
    json!({
        "@timestamp": metrics::events::rfc3339(ts),
        "event": {"kind": "event", "category": ["network"], "type": ["info"], "action": action, "dataset": "spanwatch.timestamps"},
        "observer": {"ingress": {"interface": {"id": iface.to_string()}}},
        "spanwatch": {
            "capture": origin,
            "packet_number": number,
            "previous_packet_number": prev_number,
            "delta_seconds": delta as f64 * 1e-9,
            "flow": flow.map(|f| f.json()),
            "previous_flow": prev_flow.map(|f| f.json()),
        }
    })
}

/// Parses a link speed: "10G", "1G", "25G", "100M", "40Gbit", or a plain number of bit/s.
pub fn parse_link_speed(s: &str) -> Option<u64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t
        .trim_end_matches("bit/s")
        .trim_end_matches("bps")
        .trim_end_matches("bit");
    let (num, mul) = match t.chars().last()? {
        'k' => (&t[..t.len() - 1], 1e3),
        'm' => (&t[..t.len() - 1], 1e6),
        'g' => (&t[..t.len() - 1], 1e9),
        't' => (&t[..t.len() - 1], 1e12),
        _ => (t, 1.0),
    };
    let v: f64 = num.trim().parse().ok()?;
    let bps = v * mul;
    (1.0..1e15).contains(&bps).then_some(bps as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spacing_formula_matches_design() {
        // 64-byte frame at 10G: (64+24)*8/1e10 s = 70.4 ns.
        for bps in [
            1,
            7,
            1_000_000_000,
            10_000_000_000,
            400_000_000_000,
            u64::MAX,
        ] {
            let sp = Spacing::new(bps);
            for delta in [
                i64::MIN,
                -1,
                0,
                1,
                69,
                70,
                71,
                12_191,
                12_192,
                1 << 40,
                i64::MAX,
            ] {
                for len in [
                    0,
                    60,
                    64,
                    1500,
                    2047,
                    2048,
                    65_535,
                    (1 << 30) - 1,
                    1 << 30,
                    u32::MAX,
                ] {
                    assert_eq!(
                        sp.possible(delta, len),
                        delta > 0 && !TsChecker::impossible(bps, delta, len),
                        "{bps} {delta} {len}"
                    );
                }
            }
        }
        // Every frame length the table covers, at its threshold, on links of odd speeds.
        for bps in [
            1,
            3,
            999_999_937,
            10_000_000_000,
            25_000_000_000,
            u64::MAX / 3,
        ] {
            let sp = Spacing::new(bps);
            for len in 0..TABLE_LEN as u32 + 2 {
                let wire = (len as u128 + 24) * 8 * 1_000_000_000;
                let least = wire.div_ceil(bps as u128).min(i64::MAX as u128) as i64;
                for delta in [least - 1, least, least.saturating_add(1)] {
                    assert_eq!(
                        sp.possible(delta, len),
                        delta > 0 && !TsChecker::impossible(bps, delta, len),
                        "{bps} {delta} {len}"
                    );
                }
            }
        }
        assert!(TsChecker::impossible(10_000_000_000, 70, 64));
        assert!(!TsChecker::impossible(10_000_000_000, 71, 64));
        assert!(TsChecker::impossible(10_000_000_000, 0, 64));
        assert!(!TsChecker::impossible(10_000_000_000, -5, 64));
        // 1500 bytes at 1G: 12.192 µs.
        assert!(TsChecker::impossible(1_000_000_000, 12_191, 1500));
        assert!(!TsChecker::impossible(1_000_000_000, 12_192, 1500));
    }

    #[test]
    fn counts_negative_and_zero_per_source() {
        let mut t = TsChecker::new(Source::Pcap, 10_000_000_000);
        let mut c = Counters::new();
        let mut evs = Vec::new();
        // Each source's deltas are to its own previous packet, however they interleave.
        let seq = [
            (0, 1000),
            (1, 500),
            (0, 900),
            (0, 900),
            (1, 2_000_000),
            (2, 10),
            (0, 950),
            (1, 2_000_100),
        ];
        for (iface, ts) in seq {
            t.check(
                Stamp {
                    iface,
                    ts,
                    wire_len: 60,
                    number: 1,
                },
                None,
                &mut c,
                |e| evs.push(e),
            );
        }
        assert_eq!(c.get(slot::ts_negative(Source::Pcap)), 1);
        assert_eq!(c.get(slot::ts_zero(Source::Pcap)), 1);
        // The zero, and 50 ns after it: shorter than a 60-byte frame's 67.2 ns at 10 Gbit/s.
        assert_eq!(c.get(slot::ts_impossible(Source::Pcap)), 2);
        // Non-negative deltas: 0, 1 999 500, 50 and 100 ns.
        assert_eq!(c.get(slot::iat_hist(Source::Pcap)), 4);
        assert_eq!(evs.len(), 3); // the negative delta and the two impossible spacings
    }

    #[test]
    fn link_speeds() {
        assert_eq!(parse_link_speed("10G"), Some(10_000_000_000));
        assert_eq!(parse_link_speed("1g"), Some(1_000_000_000));
        assert_eq!(parse_link_speed("100M"), Some(100_000_000));
        assert_eq!(parse_link_speed("25Gbit"), Some(25_000_000_000));
        assert_eq!(parse_link_speed("fast"), None);
    }
}
