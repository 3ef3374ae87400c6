//! Bounded IP reassembly (RFC 791 §3.2, RFC 8200 §4.5) for the datagrams a protocol needs whole
//! (fragmented UDP such as large mDNS answers). Fragments of one datagram meet on one worker
//! because the shard hash uses addresses only. Limits: a fixed number of datagrams in progress,
//! 64 KiB each, 30 s of packet time; whatever falls outside is counted and dropped.

use crate::decode::Decoded;

const MAX_PENDING: usize = 64;
const MAX_DATAGRAM: usize = 65_535;
const TIMEOUT_NS: i64 = 30_000_000_000;

struct Pending {
    v6: bool,
    src: [u8; 16],
    dst: [u8; 16],
    id: u32,
    proto: u8,
    first_ts: i64,
    data: Vec<u8>,
    /// Byte ranges received, kept merged.
    have: Vec<(u32, u32)>,
    total: Option<u32>,
}

#[derive(Default)]
pub struct Reassembly {
    pending: Vec<Pending>,
    /// Datagrams given up incomplete (30 s passed, or the input ended) since the caller last
    /// took this count.
    pub timed_out: u64,
}

pub enum FragResult {
    /// Not complete yet (or dropped; `dropped` tells).
    Pending,
    /// The whole datagram payload (the L4 header and data); valid until the next call.
    Complete,
    Dropped(metrics::StreamIssue),
}

impl Reassembly {
    /// Adds a fragment; on completion the datagram's IP payload is in `out`.
    pub fn add(&mut self, ts: i64, d: &Decoded, payload: &[u8], out: &mut Vec<u8>) -> FragResult {
        let before = self.pending.len();
        self.pending.retain(|p| {
            ts.saturating_sub(p.first_ts) <= TIMEOUT_NS && ts >= p.first_ts - TIMEOUT_NS
        });
        self.timed_out += (before - self.pending.len()) as u64;
        let end = d.frag_off as usize + payload.len();
        if end > MAX_DATAGRAM {
            return FragResult::Dropped(metrics::StreamIssue::FragmentOverflow);
        }
        let i = match self.pending.iter().position(|p| {
            p.id == d.frag_id
                && p.src == d.src()
                && p.dst == d.dst()
                && p.proto == d.proto
                && p.v6 == d.v6
        }) {
            Some(i) => i,
            None => {
                if self.pending.len() >= MAX_PENDING {
                    return FragResult::Dropped(metrics::StreamIssue::FragmentOverflow);
                }
                self.pending.push(Pending {
                    v6: d.v6,
                    src: d.src(),
                    dst: d.dst(),
                    id: d.frag_id,
                    proto: d.proto,
                    first_ts: ts,
                    data: Vec::new(),
                    have: Vec::new(),
                    total: None,
                });
                self.pending.len() - 1
            }
        };
        let p = &mut self.pending[i];
        if p.data.len() < end {
            p.data.resize(end, 0);
        }
        p.data[d.frag_off as usize..end].copy_from_slice(payload);
        p.have.push((d.frag_off as u32, end as u32));
        p.have.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(p.have.len());
        for &(a, b) in &p.have {
            match merged.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        p.have = merged;
        if !d.frag_more {
            p.total = Some(end as u32);
        }
        if let Some(t) = p.total {
            if p.have.len() == 1 && p.have[0] == (0, t) {
                let p = self.pending.swap_remove(i);
                out.clear();
                out.extend_from_slice(&p.data[..t as usize]);
                return FragResult::Complete;
            }
        }
        FragResult::Pending
    }

    /// End of input: whatever is still incomplete is given up (and counted in `timed_out`).
    pub fn finish(&mut self) {
        self.timed_out += self.pending.len() as u64;
        self.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reassembles_out_of_order() {
        let mut r = Reassembly::default();
        let mut out = Vec::new();
        let mut d = Decoded {
            frag_id: 7,
            proto: 17,
            ..Decoded::default()
        };
        d.frag_off = 8;
        d.frag_more = false;
        assert!(matches!(
            r.add(0, &d, b"world!!!", &mut out),
            FragResult::Pending
        ));
        d.frag_off = 0;
        d.frag_more = true;
        assert!(matches!(
            r.add(1, &d, b"hello, w", &mut out),
            FragResult::Complete
        ));
        assert_eq!(out, b"hello, wworld!!!");
    }
}
