//! The unit of work between the reader (or an rx thread) and the workers: a batch of decoded
//! packets whose payload bytes live in one buffer. Batches are pooled: a worker hands each one back
//! once processed, so the steady state allocates nothing. Both capture sources (files, AF_XDP)
//! fill this one type.

use crate::decode::Decoded;

/// One packet as a worker sees it: its decoded headers and where its L4 payload lies in the batch.
#[derive(Clone, Copy, Debug)]
pub struct Pkt {
    /// Capture time, ns since the Unix epoch (may be negative or jump: it is what the capture says).
    pub ts_ns: i64,
    /// Original frame length on the wire.
    pub wire_len: u32,
    /// The producer's clock when it read this packet: the latest capture time seen so far in any
    /// source. Workers expire flows by it, so expiry does not depend on how packets were sharded.
    pub clock_ns: i64,
    /// Number of this packet in its source (1-based, like tshark's frame.number), less the
    /// worker's number base (`Worker::set_number_base`: the parallel reader numbers a block's
    /// packets from 0 and gives the number of its first).
    pub number: u64,
    pub payload_off: u32,
    pub payload_len: u32,
    pub d: Decoded,
}

impl Pkt {
    /// This packet's L4 payload within `data` (its batch's or block's bytes).
    #[inline]
    pub fn payload_in<'a>(&self, data: &'a [u8]) -> &'a [u8] {
        &data[self.payload_off as usize..(self.payload_off + self.payload_len) as usize]
    }
}

/// A batch of packets bound for one worker.
pub struct Batch {
    pub pkts: Vec<Pkt>,
    pub data: Vec<u8>,
    /// Latest capture time the producer has seen (drives idle timeouts on quiet workers).
    pub now_ns: i64,
}

impl Batch {
    pub const PKTS: usize = 256;
    pub const DATA: usize = 256 * 1024;

    pub fn new() -> Self {
        Batch {
            pkts: Vec::with_capacity(Self::PKTS),
            data: Vec::with_capacity(Self::DATA),
            now_ns: i64::MIN,
        }
    }
    pub fn clear(&mut self) {
        self.pkts.clear();
        self.data.clear();
        self.now_ns = i64::MIN;
    }
    /// True when the next packet of `len` payload bytes would not fit without growing.
    #[inline]
    pub fn is_full(&self, len: usize) -> bool {
        self.pkts.len() >= Self::PKTS || self.data.len() + len > self.data.capacity()
    }
    #[inline]
    pub fn push(
        &mut self,
        ts_ns: i64,
        clock_ns: i64,
        wire_len: u32,
        number: u64,
        d: Decoded,
        payload: &[u8],
    ) {
        let off = self.data.len();
        self.data.extend_from_slice(payload);
        self.pkts.push(Pkt {
            ts_ns,
            clock_ns,
            wire_len,
            number,
            payload_off: off as u32,
            payload_len: payload.len() as u32,
            d,
        });
    }
    #[inline]
    pub fn payload(&self, p: &Pkt) -> &[u8] {
        p.payload_in(&self.data)
    }
}

impl Default for Batch {
    fn default() -> Self {
        Self::new()
    }
}
