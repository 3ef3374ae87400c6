//! What the fuzz targets share: a synchronous copy of the pipeline's path for one frame (decode,
//! timestamp checks, batch, worker) and a generator that turns fuzz bytes into a conversation —
//! TCP segments both ways with gaps, retransmissions and FIN/RST, UDP datagrams, or raw IP — so
//! every protocol analyzer is reached through the same code a capture reaches it by.

use analyzer::batch::Batch;
use analyzer::decode::{decode, link};
use analyzer::protocols::Config;
use analyzer::source::Frame;
use analyzer::timestamps::{Stamp, TsChecker};
use analyzer::worker::Worker;
use etherparse::PacketBuilder;
use metrics::{Counters, Hub, Source};
use std::sync::Arc;

/// The reader thread's work and one worker, on one thread.
pub struct Pipeline {
    ts: TsChecker,
    c: Counters,
    batch: Batch,
    worker: Worker,
    number: u64,
    now: i64,
}

impl Default for Pipeline {
    fn default() -> Self {
        Self::new()
    }
}

impl Pipeline {
    pub fn new() -> Self {
        let hub = Hub::new();
        Pipeline {
            ts: TsChecker::new(Source::Pcap, 10_000_000_000),
            c: Counters::new(),
            batch: Batch::new(),
            // A small table, so pressure eviction runs too.
            worker: Worker::new(
                64,
                hub.register(),
                metrics::events::EventSink::disabled(),
                Arc::new(Config::default()),
                Source::Pcap,
            ),
            number: 0,
            now: i64::MIN,
        }
    }

    pub fn frame(&mut self, f: &Frame<'_>) {
        self.number += 1;
        self.now = self.now.max(f.ts_ns);
        let decoded = decode(f.link, f.data);
        let d = decoded.as_ref().ok().map(|(d, _)| d);
        let stamp = Stamp {
            iface: f.iface,
            ts: f.ts_ns,
            wire_len: f.wire_len,
            number: self.number,
        };
        self.ts.check(stamp, d, &mut self.c, |_| {});
        if let Ok((d, payload)) = decoded {
            let payload = &payload[..payload.len().min(Batch::DATA)];
            if self.batch.is_full(payload.len()) {
                self.flush();
            }
            self.batch
                .push(f.ts_ns, self.now, f.wire_len, self.number, d, payload);
        }
    }

    /// Hands the open batch to the worker.
    pub fn flush(&mut self) {
        self.batch.now_ns = self.now;
        self.worker.process(&self.batch);
        self.batch.clear();
    }

    /// End of input: every flow ends.
    pub fn finish(mut self) {
        self.flush();
        self.worker.finish_all();
    }

    /// An Ethernet frame stamped `ts_ns`.
    pub fn ethernet(&mut self, ts_ns: i64, data: &[u8]) {
        self.frame(&Frame {
            ts_ns,
            wire_len: data.len() as u32,
            link: link::ETHERNET,
            iface: 0,
            data,
        });
    }
}

/// Reads fuzz bytes as chunks: a control byte, a length byte, then up to that many payload bytes.
pub struct Chunks<'a>(pub &'a [u8]);

pub struct Chunk<'a> {
    pub ctl: u8,
    pub data: &'a [u8],
}

impl<'a> Iterator for Chunks<'a> {
    type Item = Chunk<'a>;
    fn next(&mut self) -> Option<Chunk<'a>> {
        let (&ctl, rest) = self.0.split_first()?;
        let (&len, rest) = rest.split_first().unwrap_or((&0, rest));
        let n = (len as usize).min(rest.len());
        let (data, rest) = rest.split_at(n);
        self.0 = rest;
        Some(Chunk { ctl, data })
    }
}

const CLIENT: [u8; 4] = [198, 18, 0, 1];
const SERVER: [u8; 4] = [198, 18, 0, 2];
const CLIENT6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const SERVER6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
const MAC_C: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC_S: [u8; 6] = [2, 0, 0, 0, 0, 2];

fn builder(from_client: bool, v6: bool) -> etherparse::PacketBuilderStep<etherparse::IpHeaders> {
    let (sm, dm) = if from_client {
        (MAC_C, MAC_S)
    } else {
        (MAC_S, MAC_C)
    };
    let eth = PacketBuilder::ethernet2(sm, dm);
    if v6 {
        let (s, d) = if from_client {
            (CLIENT6, SERVER6)
        } else {
            (SERVER6, CLIENT6)
        };
        eth.ipv6(s, d, 64)
    } else {
        let (s, d) = if from_client {
            (CLIENT, SERVER)
        } else {
            (SERVER, CLIENT)
        };
        eth.ipv4(s, d, 64)
    }
}

/// A TCP conversation to `port`: the three-way handshake, then one segment per chunk. Control
/// byte: bit 0 direction (1: server to client), bit 1 leave a gap (the bytes are skipped, as a
/// lost segment), bit 2 send the chunk twice (retransmission), bit 3 send it before the previous
/// one (reordering), bits 4-5 FIN / RST after it, bit 6 IPv6 for the whole conversation (first
/// chunk), bit 7 a time step of 10 s (idle timeouts).
pub fn tcp_conversation(data: &[u8], port: u16) {
    let mut p = Pipeline::new();
    let v6 = data.first().is_some_and(|c| c & 0x40 != 0);
    let mut seq = [1000u32, 5000u32];
    let mut ts = 1_700_000_000_000_000_000i64;
    let mut out = Vec::with_capacity(2048);
    let mut seg =
        |p: &mut Pipeline, ts: i64, from_client: bool, s: u32, a: u32, flags: u8, pl: &[u8]| {
            let (sp, dp) = if from_client {
                (40000, port)
            } else {
                (port, 40000)
            };
            let mut b = builder(from_client, v6).tcp(sp, dp, s, 65535);
            if flags & 1 != 0 {
                b = b.syn();
            }
            if flags & 2 != 0 {
                b = b.ack(a);
            }
            if flags & 4 != 0 {
                b = b.fin();
            }
            if flags & 8 != 0 {
                b = b.rst();
            }
            out.clear();
            if b.write(&mut out, pl).is_ok() {
                p.ethernet(ts, &out);
            }
        };
    seg(&mut p, ts, true, seq[0] - 1, 0, 1, &[]);
    seg(&mut p, ts + 1000, false, seq[1] - 1, seq[0], 3, &[]);
    seg(&mut p, ts + 2000, true, seq[0], seq[1], 2, &[]);
    let mut pending: Option<(bool, u32, Vec<u8>)> = None;
    for c in Chunks(data) {
        ts += if c.ctl & 0x80 != 0 {
            10_000_000_000
        } else {
            50_000
        };
        let dir = (c.ctl & 1) as usize;
        let from_client = dir == 0;
        let s = seq[dir];
        seq[dir] = seq[dir].wrapping_add(c.data.len() as u32);
        if c.ctl & 2 != 0 {
            continue;
        }
        let ack = seq[1 - dir];
        if c.ctl & 8 != 0 && pending.is_none() {
            pending = Some((from_client, s, c.data.to_vec()));
            continue;
        }
        let times = if c.ctl & 4 != 0 { 2 } else { 1 };
        for _ in 0..times {
            seg(&mut p, ts, from_client, s, ack, 2, c.data);
        }
        if let Some((fc, ps, pd)) = pending.take() {
            seg(&mut p, ts, fc, ps, ack, 2, &pd);
        }
        match (c.ctl >> 4) & 3 {
            1 => seg(&mut p, ts, from_client, seq[dir], ack, 6, &[]),
            2 => seg(&mut p, ts, from_client, seq[dir], ack, 10, &[]),
            _ => {}
        }
    }
    p.finish();
}

/// UDP datagrams between two ports, one per chunk (control bit 0: direction, bit 6: IPv6).
pub fn udp_conversation(data: &[u8], port: u16) {
    let mut p = Pipeline::new();
    let mut ts = 1_700_000_000_000_000_000i64;
    let mut out = Vec::with_capacity(2048);
    for c in Chunks(data) {
        ts += 1_000_000;
        let from_client = c.ctl & 1 == 0;
        let (sp, dp) = if from_client {
            (port, port)
        } else {
            (port, 49152)
        };
        let b = builder(from_client, c.ctl & 0x40 != 0).udp(sp, dp);
        out.clear();
        if b.write(&mut out, c.data).is_ok() {
            p.ethernet(ts, &out);
        }
    }
    p.finish();
}

/// Raw IP packets with protocol number `proto`, one per chunk.
pub fn ip_conversation(data: &[u8], proto: u8) {
    let mut p = Pipeline::new();
    let mut ts = 1_700_000_000_000_000_000i64;
    let mut out = Vec::with_capacity(2048);
    for c in Chunks(data) {
        ts += 1_000_000;
        let b = builder(c.ctl & 1 == 0, c.ctl & 0x40 != 0);
        out.clear();
        if b.write(&mut out, etherparse::IpNumber(proto), c.data)
            .is_ok()
        {
            p.ethernet(ts, &out);
        }
    }
    p.finish();
}

/// IPv4 fragments of UDP datagrams, one per chunk: control bits 0-4 the fragment offset (in 8-byte
/// units, times 8), bit 5 more-fragments, bits 6-7 the identification.
pub fn ipv4_fragments(data: &[u8]) {
    let mut p = Pipeline::new();
    let mut ts = 1_700_000_000_000_000_000i64;
    let mut out = Vec::with_capacity(2048);
    for c in Chunks(data) {
        ts += 1_000_000;
        let Ok(mut ip) = etherparse::Ipv4Header::new(
            c.data.len() as u16,
            64,
            etherparse::IpNumber::UDP,
            CLIENT,
            SERVER,
        ) else {
            continue;
        };
        ip.identification = (c.ctl >> 6) as u16;
        ip.more_fragments = c.ctl & 0x20 != 0;
        ip.fragment_offset = etherparse::IpFragOffset::try_new((c.ctl & 0x1f) as u16 * 8)
            .unwrap_or(etherparse::IpFragOffset::ZERO);
        ip.header_checksum = ip.calc_header_checksum();
        out.clear();
        let eth = etherparse::Ethernet2Header {
            source: MAC_C,
            destination: MAC_S,
            ether_type: etherparse::EtherType::IPV4,
        };
        if eth.write(&mut out).is_ok() && ip.write(&mut out).is_ok() {
            out.extend_from_slice(c.data);
            p.ethernet(ts, &out);
        }
    }
    p.finish();
}
