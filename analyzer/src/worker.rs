//! One analysis worker: takes batches, keeps its own flow table, fragment reassembly and protocol
//! state, and counts into plain per-worker counters that it publishes once per batch. Shares
//! nothing with other workers (sharding by address pair makes that possible).

use crate::batch::{Batch, Pkt as BatchPkt};
use crate::decode::{tcp_flags, Decoded, L4};
use crate::flow::{
    Class, Exit, Flow, FlowKey, FlowTable, SentData, SessionKey, Sessions, MEMO_SLOTS,
};
use crate::frag::{FragResult, Reassembly};
use crate::prefault::{Ahead, Prefaulter};
use crate::protocols::{self, ftp, icmp, Config, Env, Next, Pkt, Shared, Verdict, PROTOCOLS};
use crate::timeline::{Collector, Timeline};
use metrics::events::EventSink;
use metrics::{slot, Counters, EvictReason, Proto, Source, StreamIssue};
use std::sync::Arc;

/// Payload packets a flow may show before it is given up as other_tcp / other_udp.
pub const MAX_PROBE_PACKETS: u16 = 10;
const NOT_REGISTERED: u8 = u8::MAX;
/// Packets whose index buckets are asked for together, a group ahead of their lookups (at the
/// flood's 60-200 ns a packet, a group covers several waits for memory).
const GROUP: usize = 16;

pub struct Worker {
    table: FlowTable,
    /// The sessions of the table's flows.
    sessions: Sessions,
    frag: Reassembly,
    frag_buf: Vec<u8>,
    /// The counters, events, settings and shared state the analyzers see (and so does the worker).
    env: Env,
    publish: Arc<metrics::Shared>,
    /// The latest clock seen (expiry runs only when it moves).
    now: i64,
    /// Counters over capture time (`read --report`), delivered to the collector at the end.
    timeline: Option<(Timeline, Collector)>,
    /// `SPANWATCH_DEBUG_FLOWS=1`: print each finished flow's 5-tuple and class to stderr (never payload).
    debug_flows: bool,
    /// Asks for the flow slab's pages to be mapped ahead of new flows (`prefault`).
    ahead: Ahead,
}

/// The class of a flow no analyzer claimed, by transport (a table: every new flow of a flood
/// asks, and so does its end); any other transport is other IP.
#[inline]
fn other_for(l4: L4) -> Proto {
    const OTHER: [Proto; 5] = {
        let mut t = [Proto::OtherIp; 5];
        t[L4::Tcp as usize] = Proto::OtherTcp;
        t[L4::Udp as usize] = Proto::OtherUdp;
        t[L4::Icmp as usize] = Proto::Icmp;
        t
    };
    OTHER.get(l4 as usize).copied().unwrap_or(Proto::OtherIp)
}

#[inline]
fn seq_ge(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) >= 0
}

impl Worker {
    pub fn new(
        max_flows: usize,
        publish: Arc<metrics::Shared>,
        events: EventSink,
        cfg: Arc<Config>,
        source: Source,
    ) -> Self {
        Worker {
            table: match source {
                Source::Pcap => FlowTable::for_files(max_flows),
                Source::Xdp => FlowTable::new(max_flows),
            },
            sessions: Sessions::with_capacity(max_flows.min(1 << 20)),
            frag: Reassembly::default(),
            frag_buf: Vec::new(),
            env: Env {
                c: Counters::new(),
                events,
                source,
                cfg,
                shared: Shared::default(),
                number_base: 0,
            },
            publish,
            now: i64::MIN,
            timeline: None,
            debug_flows: std::env::var_os("SPANWATCH_DEBUG_FLOWS").is_some(),
            ahead: Ahead::none(),
        }
    }

    /// Has the flow slab's pages, and the index's spare buckets, asked for through `pf`'s queue.
    pub fn with_prefault(mut self, pf: &Prefaulter) -> Self {
        self.ahead = pf.ahead();
        // A table for files starts with its index's pages not yet mapped (live: written).
        if self.env.source == Source::Pcap {
            let (addr, len) = self.table.index_span();
            self.ahead.map(addr, len);
        }
        self
    }

    /// Keeps a timeline of the collector's counters, delivered by `finish_all`.
    pub fn with_timeline(mut self, c: Option<Collector>) -> Self {
        self.timeline = c.map(|c| (c.timeline(), c));
        self
    }

    /// What the numbers of the packets given to `process_pkts` from now on count from: each
    /// packet's number in its source is `base + number`.
    pub fn set_number_base(&mut self, base: u64) {
        self.env.number_base = base;
    }

    pub fn counters(&self) -> &Counters {
        &self.env.c
    }

    pub fn process(&mut self, b: &Batch) {
        self.process_pkts(b.pkts.iter(), &b.data, i64::MIN, b.now_ns);
        self.publish();
    }

    /// Processes `pkts`, whose payloads lie in `data`, in order. Each packet's clock is the larger
    /// of its own and `clock_floor` (the parallel reader knows only a block's own clock); `now_ns`
    /// is the producer's clock once the packets are read. The caller publishes the counters.
    pub fn process_pkts<'p>(
        &mut self,
        pkts: impl Iterator<Item = &'p BatchPkt>,
        data: &[u8],
        clock_floor: i64,
        now_ns: i64,
    ) {
        // In groups of GROUP: the index buckets a group's lookups start at are asked for before
        // the group ahead of it is processed, so they arrive while it is.
        let mut pkts = pkts.fuse();
        let mut cur = self.group(&mut pkts);
        while cur.1 > 0 {
            let next = self.group(&mut pkts);
            let group = cur.0[..cur.1].iter().flatten();
            // Two copies of the loop, so that the usual one asks nothing about a timeline.
            if self.timeline.is_some() {
                for p in group {
                    if let Some((t, _)) = &mut self.timeline {
                        t.tick(p.ts_ns, &self.env.c);
                    }
                    self.one(p, data, clock_floor);
                }
            } else {
                for p in group {
                    self.one(p, data, clock_floor);
                }
            }
            cur = next;
        }
        // The reader's clock moves a quiet worker's flows along too.
        self.advance(now_ns);
        let (base, used, reserved) = self.table.slab_span();
        self.ahead
            .keep(base, used, reserved, std::mem::size_of::<Flow>());
        if let Some((addr, len)) = self.table.index_spare() {
            self.ahead.map(addr, len);
        }
    }

    /// The next GROUP packets (fewer at the end), their index buckets asked for.
    #[inline(always)]
    fn group<'p>(
        &self,
        pkts: &mut impl Iterator<Item = &'p BatchPkt>,
    ) -> ([Option<&'p BatchPkt>; GROUP], usize) {
        let mut g = [None; GROUP];
        let mut n = 0;
        for (slot, p) in g.iter_mut().zip(pkts) {
            self.table.prefetch(p.d.flow);
            *slot = Some(p);
            n += 1;
        }
        self.table.prefetch_victims(n);
        (g, n)
    }

    #[inline(always)]
    fn one(&mut self, p: &BatchPkt, data: &[u8], clock_floor: i64) {
        // Packet time drives expiry, on the reader's clock (the latest time seen anywhere).
        self.advance(p.clock_ns.max(clock_floor));
        self.packet(p, p.payload_in(data));
    }

    /// Moves the worker's clock to `now` when that is later, and expires what is idle past its
    /// timeout then (a clock that stands still expires nothing more, even where a packet from
    /// the past made a flow that is already idle by it).
    #[inline(always)]
    fn advance(&mut self, now: i64) {
        if now > self.now {
            self.now = now;
            if now > self.table.due() {
                self.expire(now);
            }
        }
    }

    #[cold]
    fn expire(&mut self, now: i64) {
        while let Some((i, why)) = self.table.expired(now) {
            self.end_in_table(i, why);
        }
    }

    pub fn publish(&mut self) {
        self.env.c.set(slot::FLOWS_ACTIVE, self.table.len() as u64);
        self.publish.publish(&self.env.c);
    }

    /// Ends every flow (end of input) and publishes the final counts.
    pub fn finish_all(&mut self) {
        // Every flow ends here on a flood: the end-of-input case is inlined into the walk.
        let (table, mut ending) = self.table_and_ending();
        table.drain(|f| ending.end(f, Exit::EndOfInput));
        self.frag.finish();
        let lost = std::mem::take(&mut self.frag.timed_out);
        self.env
            .c
            .add(slot::stream_issue(StreamIssue::FragmentTimeout), lost);
        self.publish();
        if let Some((t, col)) = self.timeline.take() {
            col.deliver(t, &self.env.c);
        }
    }

    #[inline(always)]
    fn packet(&mut self, p: &BatchPkt, payload: &[u8]) {
        let d = &p.d;
        if d.tunnel_code != 0 {
            self.tunnel_packet(d);
        }
        match d.l4 {
            L4::Fragment => self.fragment(p, payload),
            L4::Icmp if d.is_icmp_error() => self.icmp_error(d, payload),
            _ => self.flow_packet(p.ts_ns, p.number, d, payload),
        }
    }

    /// Counts a packet that came in a tunnel (out of line: most captures have none).
    #[inline(never)]
    fn tunnel_packet(&mut self, d: &Decoded) {
        if let Some(t) = d.tunnel() {
            self.env.c.inc(slot::tunnel_packets(t));
        }
    }

    /// An IP fragment: held until its datagram is whole, which then goes the flow path.
    #[inline(never)]
    fn fragment(&mut self, p: &BatchPkt, payload: &[u8]) {
        let d = &p.d;
        self.env.c.inc(slot::ip_fragments(d.v6));
        let mut buf = std::mem::take(&mut self.frag_buf);
        match self.frag.add(p.ts_ns, d, payload, &mut buf) {
            FragResult::Complete => {
                self.env.c.inc(slot::ip_reassembled(d.v6));
                match reassembled(d, &buf) {
                    // A tunnel's datagram: the flow it carries is sharded by its own addresses,
                    // likely to another worker; counted, not opened (decode.rs).
                    Some((nd, range)) if crate::decode::is_tunnel(&nd, &buf[range.clone()]) => {
                        self.env
                            .c
                            .inc(slot::stream_issue(StreamIssue::TunnelFragmented));
                    }
                    Some((nd, range)) => self.flow_packet(p.ts_ns, p.number, &nd, &buf[range]),
                    None => {}
                }
            }
            FragResult::Dropped(why) => self.env.c.inc(slot::stream_issue(why)),
            FragResult::Pending => {}
        }
        let lost = std::mem::take(&mut self.frag.timed_out);
        self.env
            .c
            .add(slot::stream_issue(StreamIssue::FragmentTimeout), lost);
        self.frag_buf = buf;
    }

    #[inline(never)]
    fn icmp_error(&mut self, d: &Decoded, payload: &[u8]) {
        let Some((kind, q)) = icmp::quoted(d, payload) else {
            return;
        };
        let proto = match q {
            Some(q) => {
                let key = &q.key;
                let known =
                    self.table
                        .find(q.flow, key)
                        .and_then(|i| match self.table.get(i).class {
                            Class::Known(p) => Some(p),
                            Class::Unknown => None,
                        });
                known.unwrap_or_else(|| icmp::quoted_protocol(&q, payload))
            }
            None => Proto::OtherIp,
        };
        self.env.c.inc(slot::icmp_error(kind, proto));
    }

    #[inline(always)]
    fn flow_packet(&mut self, ts: i64, number: u64, d: &Decoded, payload: &[u8]) {
        let (key, src_is_a) = FlowKey::of(d);
        let syn_only =
            d.l4 == L4::Tcp && d.tcp_flags & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN;
        let mut idx = self.table.find(d.flow, &key);
        // A flow idle past its timeout is over (most are gone already, expired on the clock
        // before this packet), and a SYN on a closed flow's tuple is a new connection.
        if let Some(i) = idx {
            let closed_syn = syn_only && self.table.is_closed(i);
            if closed_syn || self.table.idle_past(i, ts) {
                self.end_flow(i, closed_syn);
                idx = None;
            }
        }
        let (i, new) = match idx {
            Some(i) => {
                self.table.touch(i, ts);
                (i, false)
            }
            None => (self.new_flow(key, src_is_a, d, ts), true),
        };

        let Worker {
            table,
            env,
            sessions,
            ..
        } = self;
        let f = table.get(i);
        if new {
            start_flow(f, d, ts, env, sessions);
        }
        let from_client = src_is_a == f.client_is_a;
        let mut closed = false;
        let dir = from_client as usize;
        let mut starts = [None, None];
        if d.l4 == L4::Tcp {
            let me = src_is_a as usize;
            if d.tcp_flags & tcp_flags::FIN != 0 {
                f.fin[me] = true;
            }
            if d.tcp_flags & tcp_flags::RST != 0 {
                f.rst = true;
            }
            closed = f.rst || (f.fin[0] && f.fin[1]);
            causality(f, d, me, ts, payload.len(), &mut env.c, env.source);
            if d.tcp_flags & tcp_flags::SYN != 0 {
                f.next_seq[dir] = Some(d.seq.wrapping_add(1));
            }
            starts = f.next_seq;
            if !payload.is_empty() {
                let end = d.seq.wrapping_add(payload.len() as u32);
                if f.next_seq[dir].is_none_or(|n| seq_ge(end, n)) {
                    f.next_seq[dir] = Some(end);
                }
            }
        }
        if !payload.is_empty() {
            let pk = Pkt {
                ts,
                number,
                d,
                payload,
                from_client,
                starts,
            };
            match f.class {
                Class::Unknown => classify(f, &pk, env, sessions),
                Class::Known(_) => {
                    if !f.session_done {
                        if let Some(k) = f.session {
                            let next = match sessions.get_mut(k) {
                                Some(s) => s.on_packet(&pk, env),
                                None => Next::Continue,
                            };
                            match next {
                                Next::Continue => {}
                                Next::Done => {
                                    f.session_done = true;
                                    end_done_session(env, sessions, f, k);
                                }
                                Next::Reject => {
                                    // A tentative analyzer gave the flow back: classify again,
                                    // with this packet, without it.
                                    sessions.remove(k);
                                    f.session = None;
                                    f.class = Class::Unknown;
                                    f.rejected |= 1 << f.proto_idx;
                                    let pk = Pkt {
                                        starts: f.next_seq,
                                        ..pk
                                    };
                                    classify(f, &pk, env, sessions);
                                }
                            }
                        }
                    }
                }
            }
        }
        if !payload.is_empty() {
            account_packets(f, &mut env.c, sessions);
        }
        if closed {
            table.mark_closed(i);
        }
    }

    /// Inlined (with the table insert) into the packet loop: on a flood every packet takes it.
    #[inline(always)]
    fn new_flow(&mut self, key: FlowKey, src_is_a: bool, d: &Decoded, ts: i64) -> u32 {
        if self.table.full() {
            self.evict_oldest();
        }
        // The client is whoever sent the SYN; a SYN-ACK names the other side; else the first sender.
        let synack = d.l4 == L4::Tcp
            && d.tcp_flags & (tcp_flags::SYN | tcp_flags::ACK) == (tcp_flags::SYN | tcp_flags::ACK);
        let client_is_a = if synack { !src_is_a } else { src_is_a };
        self.table.insert(&key, d.flow, d.l4, ts, client_is_a)
    }

    /// Ends flow `i` ahead of a packet for its tuple: closed (a SYN after FIN or RST) or idle.
    #[cold]
    #[inline(never)]
    fn end_flow(&mut self, i: u32, closed: bool) {
        let why = if closed || self.table.is_closed(i) {
            Exit::Closed
        } else {
            Exit::Timeout
        };
        self.end_in_table(i, why);
    }

    /// Makes room for a new flow: the one idle the longest ends (a full table under a flood:
    /// every packet; out of the packet loop's registers).
    #[inline(never)]
    fn evict_oldest(&mut self) {
        if let Some(i) = self.table.oldest() {
            self.end_in_table(i, Exit::Pressure);
        }
    }

    /// Ends flow `i` where it lies in the table, then takes it out.
    #[inline(never)]
    fn end_in_table(&mut self, i: u32, why: Exit) {
        let (table, mut ending) = self.table_and_ending();
        ending.end(table.get(i), why);
        table.release(i);
    }

    /// The flow table, and beside it what ending one of its records needs.
    #[inline(always)]
    fn table_and_ending(&mut self) -> (&mut FlowTable, Ending<'_>) {
        let Worker {
            table,
            env,
            sessions,
            debug_flows,
            ..
        } = self;
        let debug = *debug_flows;
        (
            table,
            Ending {
                env,
                sessions,
                debug,
            },
        )
    }
}

/// What ending a flow record needs, borrowed from its worker beside the flow table.
struct Ending<'a> {
    env: &'a mut Env,
    sessions: &'a mut Sessions,
    debug: bool,
}

impl Ending<'_> {
    #[inline(always)]
    fn end(&mut self, f: &mut Flow, why: Exit) {
        end_flow_record(self.env, self.sessions, self.debug, f, why);
    }
}

/// Ends a flow: its session's end, its counts, the debug line.
#[inline(always)]
fn end_flow_record(
    env: &mut Env,
    sessions: &mut Sessions,
    debug_flows: bool,
    f: &mut Flow,
    why: Exit,
) {
    match why {
        Exit::Timeout => env.c.inc(slot::flows_evicted(EvictReason::Timeout)),
        Exit::Pressure => env.c.inc(slot::flows_evicted(EvictReason::Pressure)),
        Exit::Closed => env.c.inc(slot::flows_evicted(EvictReason::Closed)),
        Exit::EndOfInput => {}
    }
    if let Some(k) = f.session {
        end_session(env, sessions, f, k);
    }
    // Usually no packets are pending (a flow without payload, or a known protocol that
    // counted them as they came).
    let p = match f.class {
        Class::Unknown => {
            let p = other_for(f.l4);
            env.c.inc(slot::sessions(p, f.key.v6()));
            p
        }
        Class::Known(p) => p,
    };
    if f.pending_pkts != 0 {
        env.c.add(slot::protocol_packets(p), f.pending_pkts as u64);
    }
    if debug_flows {
        debug_flow_line(f, why);
    }
}

/// The end of a flow's session (out of line: a flood's flows have none).
#[inline(never)]
fn end_session(env: &mut Env, sessions: &mut Sessions, f: &mut Flow, k: SessionKey) {
    if let Some(mut s) = sessions.remove(k) {
        s.on_end(f.last_ts, env);
        if counts_itself(f) && !s.counted() {
            // A tentative analyzer never confirmed its protocol.
            f.class = Class::Unknown;
        }
    }
}

/// A session that is done (it takes no more packets) ends now rather than with its flow: its
/// memory goes back for the next flows' sessions (a TLS session is done after the handshake,
/// most of a TLS flow's life before its end). Not a tentative analyzer's that has not yet
/// counted its session: its end makes the flow other, which must wait for the flow's end.
#[inline(never)]
fn end_done_session(env: &mut Env, sessions: &mut Sessions, f: &mut Flow, k: SessionKey) {
    if !tentative(f, sessions) {
        end_session(env, sessions, f, k);
        f.session = None;
    }
}

/// Whether the analyzer that classified `f` counts its own sessions (FTP, BFD, OSPF).
#[inline(always)]
fn counts_itself(f: &Flow) -> bool {
    PROTOCOLS
        .get(f.proto_idx as usize)
        .is_some_and(|p| p.counts_itself)
}

/// Whether `f`'s session is a tentative analyzer's that has not yet counted itself: its packets
/// wait, and its end makes the flow other. Only a session can be tentative, and only one whose
/// analyzer counts its own sessions: the registry is not consulted for a flow without a session,
/// nor the session for an analyzer that does not count itself.
#[inline(always)]
fn tentative(f: &Flow, sessions: &Sessions) -> bool {
    f.session.is_some()
        && counts_itself(f)
        && f.session
            .and_then(|k| sessions.get(k))
            .is_some_and(|s| !s.counted())
}

/// `SPANWATCH_DEBUG_FLOWS`: a finished flow's 5-tuple and class on stderr (never payload).
#[cold]
#[inline(never)]
fn debug_flow_line(f: &Flow, why: Exit) {
    let k = &f.key;
    let class = match f.class {
        Class::Known(p) => p.as_str(),
        Class::Unknown => other_for(f.l4).as_str(),
    };
    eprintln!(
        "flow {} {}:{} {}:{} proto {} first {} last {} {:?} {}",
        class,
        crate::decode::ip(&k.addr_a(), k.v6()),
        k.port_a(),
        crate::decode::ip(&k.addr_b(), k.v6()),
        k.port_b(),
        k.proto(),
        f.first_ts,
        f.last_ts,
        why,
        f.payload_pkts
    );
}

/// A new flow's class where its first packet decides it without payload (ICMP, an expected FTP
/// data connection).
#[inline(always)]
fn start_flow(f: &mut Flow, d: &Decoded, ts: i64, env: &mut Env, sessions: &mut Sessions) {
    let (c, shared) = (&mut env.c, &mut env.shared);
    match d.l4 {
        L4::Icmp => {
            f.class = Class::Known(Proto::Icmp);
            f.proto_idx = NOT_REGISTERED;
            c.inc(slot::sessions(Proto::Icmp, d.v6));
        }
        L4::Tcp => {
            if let Some(mode) = shared.ftp.take(d, ts) {
                f.class = Class::Known(Proto::FtpData);
                f.proto_idx = NOT_REGISTERED;
                c.inc(slot::sessions(Proto::FtpData, d.v6));
                c.inc(slot::ftp_data(mode));
                f.session = sessions.insert(Box::new(ftp::DataSession::new(d.v6)));
            }
        }
        _ => {}
    }
}

/// For each transport (TCP, UDP, other IP), the registry's analyzers for it as a bit mask (bit i:
/// `PROTOCOLS[i]`), so a new flow is probed only by the analyzers of its own transport, in
/// registry order.
const BY_L4: [u32; 3] = {
    assert!(
        PROTOCOLS.len() <= MEMO_SLOTS,
        "one memo byte per analyzer in a flow (and one bit in a u32)"
    );
    let mut m = [0u32; 3];
    let mut i = 0;
    while i < PROTOCOLS.len() {
        let t = match PROTOCOLS[i].l4 {
            L4::Tcp => 0,
            L4::Udp => 1,
            _ => 2,
        };
        m[t] |= 1 << i;
        i += 1;
    }
    m
};

#[cfg_attr(not(feature = "stages"), inline(always))]
#[cfg_attr(feature = "stages", inline(never))]
fn classify(f: &mut Flow, pk: &Pkt<'_>, env: &mut Env, sessions: &mut Sessions) {
    f.payload_pkts = f.payload_pkts.saturating_add(1);
    let maybe = match f.l4 {
        L4::Tcp => probe_all::<0>(f, pk, env, sessions),
        L4::Udp => probe_all::<1>(f, pk, env, sessions),
        L4::OtherIp => probe_all::<2>(f, pk, env, sessions),
        _ => Some(false),
    };
    let Some(maybe) = maybe else { return };
    if !maybe || f.payload_pkts >= MAX_PROBE_PACKETS {
        f.class = Class::Known(other_for(f.l4));
        env.session(other_for(f.l4), pk.d.v6);
    }
}

/// Runs the probes of transport `T` (an index of `BY_L4`) that have not yet said no, in registry
/// order. None: one said yes and the flow is classified; else whether any said maybe.
///
/// The mask and every index are constants here, so each probe is a direct (usually inlined) call
/// rather than one through the registry's function pointer, and the other transports' probes
/// vanish: a new flow is probed by every analyzer of its transport, so this is on the flood path.
#[inline(always)]
fn probe_all<const T: usize>(
    f: &mut Flow,
    pk: &Pkt<'_>,
    env: &mut Env,
    sessions: &mut Sessions,
) -> Option<bool> {
    let mut maybe = false;
    let left = BY_L4[T] & !f.rejected;
    let mut no = 0; // the probes that said no, stored once
    macro_rules! probe_each {
        ($($i:literal)*) => {
            $(
                if let Some(pr) = PROTOCOLS.get($i).filter(|_| left & (1 << $i) != 0) {
                    match (pr.probe)(pk, &mut f.memo[$i]) {
                        Verdict::Yes => {
                            f.rejected |= no;
                            no = 0;
                            if start_session(f, pk, env, sessions, $i) {
                                return None;
                            }
                        }
                        Verdict::No => no |= 1 << $i,
                        Verdict::Maybe => maybe = true,
                    }
                }
            )*
        };
    }
    // Every index a flow's `memo` has room for (BY_L4 checks that the registry fits).
    probe_each!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
    f.rejected |= no;
    Some(maybe)
}

/// A probe said yes: the flow becomes `PROTOCOLS[bit]`'s, with its session. False when the
/// session gave up on its first packet (the probes after it are tried).
#[inline(never)]
fn start_session(
    f: &mut Flow,
    pk: &Pkt<'_>,
    env: &mut Env,
    sessions: &mut Sessions,
    bit: usize,
) -> bool {
    let pr = PROTOCOLS[bit];
    f.class = Class::Known(pr.proto);
    f.proto_idx = bit as u8;
    let mut s = (pr.start)(pk, env);
    match s.as_mut().map(|s| s.on_packet(pk, env)) {
        Some(Next::Reject) => {
            f.class = Class::Unknown;
            f.rejected |= 1 << bit;
            return false;
        }
        Some(Next::Done) => f.session_done = true,
        _ => {}
    }
    if !pr.counts_itself {
        env.session(pr.proto, pk.d.v6);
    }
    // Implicit FTPS (RFC 4217 §2: port 990) is TLS from the first byte.
    if pr.proto == Proto::Tls && pk.d.has_port(990) {
        env.session(Proto::Ftps, pk.d.v6);
    }
    f.session = s.and_then(|s| sessions.insert(s));
    if let Some(k) = f.session.filter(|_| f.session_done) {
        end_done_session(env, sessions, f, k);
    }
    true
}

/// Counts a payload packet: to its protocol once the protocol is certain, with any the flow
/// held pending; else pending (a tentative analyzer, one that may still give the flow back, keeps
/// them pending too).
#[inline(always)]
fn account_packets(f: &mut Flow, c: &mut Counters, sessions: &Sessions) {
    if let Class::Known(p) = f.class {
        if !tentative(f, sessions) {
            let n = std::mem::take(&mut f.pending_pkts) as u64 + 1;
            c.add(slot::protocol_packets(p), n);
            return;
        }
    }
    f.pending_pkts = f.pending_pkts.saturating_add(1);
}

/// An acknowledgement stamped before the data it acknowledges (DESIGN: causality per TCP flow).
fn causality(
    f: &mut Flow,
    d: &Decoded,
    me: usize,
    ts: i64,
    len: usize,
    c: &mut Counters,
    src: Source,
) {
    if d.tcp_flags & tcp_flags::ACK != 0 {
        let other = &mut f.sent[1 - me];
        if other.valid && seq_ge(d.ack, other.end_seq) {
            if other.ts > ts {
                c.inc(slot::ts_causality(src));
            }
            other.valid = false;
        }
    }
    if len > 0 {
        let syn = (d.tcp_flags & tcp_flags::SYN != 0) as u32;
        let end = d.seq.wrapping_add(syn).wrapping_add(len as u32);
        let mine = &mut f.sent[me];
        if !mine.valid || seq_ge(end, mine.end_seq) {
            *mine = SentData {
                end_seq: end,
                ts,
                valid: true,
            };
        }
    }
}

/// The flow view of a reassembled datagram: its transport header parsed, the payload range.
fn reassembled(d: &Decoded, buf: &[u8]) -> Option<(Decoded, std::ops::Range<usize>)> {
    let mut nd = *d;
    let (src, dst) = (d.src(), d.dst());
    match d.proto {
        17 if buf.len() >= 8 => {
            nd.l4 = L4::Udp;
            let (sport, dport) = (
                u16::from_be_bytes([buf[0], buf[1]]),
                u16::from_be_bytes([buf[2], buf[3]]),
            );
            let ulen = (u16::from_be_bytes([buf[4], buf[5]]) as usize).clamp(8, buf.len());
            nd.set_endpoints(&src, &dst, sport, dport);
            Some((nd, 8..ulen))
        }
        6 => {
            let t = etherparse::TcpSlice::from_slice(buf).ok()?;
            nd.l4 = L4::Tcp;
            nd.seq = t.sequence_number();
            nd.ack = t.acknowledgment_number();
            let hl = t.header_slice().len();
            nd.set_endpoints(&src, &dst, t.source_port(), t.destination_port());
            Some((nd, hl..buf.len()))
        }
        _ => {
            nd.l4 = L4::OtherIp;
            nd.set_endpoints(&src, &dst, 0, 0);
            Some((nd, 0..buf.len()))
        }
    }
}

pub use protocols::Config as WorkerConfig;

#[cfg(test)]
mod tests {
    use super::*;
    use metrics::Hub;

    const S: i64 = 1_000_000_000;
    const MS: i64 = 1_000_000;

    /// A UDP packet from 198.18.0.`host`:`sport` to 198.18.1.1:9999 at `ts`, with payload.
    fn udp(b: &mut Batch, ts: i64, host: u8, sport: u16) {
        udp_to(b, ts, host, sport, 9999)
    }

    /// The same to port `dport`.
    fn udp_to(b: &mut Batch, ts: i64, host: u8, sport: u16, dport: u16) {
        let mut d = Decoded {
            l4: L4::Udp,
            proto: 17,
            ..Decoded::default()
        };
        let (mut src, mut dst) = ([0; 16], [0; 16]);
        src[..4].copy_from_slice(&[198, 18, 0, host]);
        dst[..4].copy_from_slice(&[198, 18, 1, 1]);
        d.set_endpoints(&src, &dst, sport, dport);
        let n = b.pkts.len() as u64 + 1;
        b.push(ts, ts, 60, n, d, b"not a known protocol");
    }

    /// A worker for files with room for 100 flows.
    fn worker() -> Worker {
        Worker::new(
            100,
            Hub::new().register(),
            EventSink::disabled(),
            Arc::new(Config::default()),
            Source::Pcap,
        )
    }

    fn run(pkts: &[(i64, u8)]) -> Worker {
        let mut w = worker();
        let mut b = Batch::new();
        for &(ts, host) in pkts {
            udp(&mut b, ts, host, 5000);
        }
        b.now_ns = pkts.last().map_or(0, |p| p.0);
        w.process(&b);
        w.finish_all();
        w
    }

    fn count(w: &Worker, slot: usize) -> u64 {
        w.counters().get(slot)
    }

    /// Idle past the UDP timeout is a new session, whether the flow already left the table on
    /// the clock or still sits behind a busier flow that was not moved (flow.rs, REFRESH).
    #[test]
    fn idle_udp_flow_is_a_new_session() {
        let other = slot::sessions(Proto::OtherUdp, false);
        let timeout = slot::flows_evicted(EvictReason::Timeout);
        // Flow 1 alone: expired on the clock before its next packet.
        let w = run(&[(0, 1), (61 * S, 1)]);
        assert_eq!((count(&w, other), count(&w, timeout)), (2, 1));
        // Flow 2 is put ahead of flow 1 and has a packet after it within REFRESH, so flow 1
        // stays in the table past its timeout: its next packet finds it idle.
        let w = run(&[
            (0, 2),
            (MS, 2),
            (2 * MS, 1),
            (500 * MS, 2),
            (60 * S + 200 * MS, 1),
        ]);
        assert_eq!((count(&w, other), count(&w, timeout)), (3, 1));
        // Within the timeout it is one session.
        let w = run(&[(0, 1), (59 * S, 1), (118 * S, 1)]);
        assert_eq!((count(&w, other), count(&w, timeout)), (1, 0));
    }

    /// A worker for files asks for its index to be mapped at once, and after its first batch
    /// for the two steps of its slab past the flow it wrote.
    #[test]
    fn a_worker_has_its_index_and_slab_mapped_ahead() {
        let (pf, shared) = Prefaulter::with(|_, _| true);
        let mut w = Worker::new(
            100_000,
            Hub::new().register(),
            EventSink::disabled(),
            Arc::new(Config::default()),
            Source::Pcap,
        )
        .with_prefault(&pf);
        let index = w.table.index_span();
        let mut b = Batch::new();
        udp(&mut b, 0, 1, 5000);
        w.process(&b);
        let (base, used, reserved) = w.table.slab_span();
        assert_eq!(used, std::mem::size_of::<Flow>());
        let step = crate::prefault::STEP * std::mem::size_of::<Flow>();
        assert_eq!(
            shared.requests().try_iter().collect::<Vec<_>>(),
            [index, (base + used, (used + 2 * step).min(reserved) - used)]
        );
    }

    /// A TCP segment with `payload` at `seq`, from 198.18.0.1:40000 to 198.18.1.1:443 (the
    /// client) or back.
    fn tcp(b: &mut Batch, ts: i64, from_client: bool, seq: u32, payload: &[u8]) {
        let mut d = Decoded {
            l4: L4::Tcp,
            proto: 6,
            tcp_flags: tcp_flags::ACK,
            seq,
            ..Decoded::default()
        };
        let (mut c, mut s) = ([0; 16], [0; 16]);
        c[..4].copy_from_slice(&[198, 18, 0, 1]);
        s[..4].copy_from_slice(&[198, 18, 1, 1]);
        if from_client {
            d.set_endpoints(&c, &s, 40000, 443);
        } else {
            d.set_endpoints(&s, &c, 443, 40000);
        }
        let n = b.pkts.len() as u64 + 1;
        b.push(ts, ts, 60 + payload.len() as u32, n, d, payload);
    }

    /// A session that is done gives its memory back at once, while its flow goes on; the counts
    /// are those of a session ended with its flow.
    #[test]
    fn a_done_session_ends_before_its_flow() {
        let mut w = worker();
        let mut b = Batch::new();
        // A ClientHello record (an empty hello), then application data each way: the
        // handshake is over in both directions, and the TLS session is done.
        tcp(&mut b, 0, true, 1000, &[22, 3, 1, 0, 4, 1, 0, 0, 0]);
        tcp(&mut b, MS, false, 5000, &[23, 3, 3, 0, 2, 0xaa, 0xbb]);
        b.now_ns = MS;
        w.process(&b);
        assert_eq!((w.table.len(), w.sessions.len()), (1, 1));
        let mut b = Batch::new();
        tcp(&mut b, 2 * MS, true, 1009, &[23, 3, 3, 0, 2, 0xcc, 0xdd]);
        tcp(&mut b, 3 * MS, false, 5007, &[23, 3, 3, 0, 1, 0xee]);
        b.now_ns = 3 * MS;
        w.process(&b);
        assert_eq!((w.table.len(), w.sessions.len()), (1, 0));
        w.finish_all();
        assert_eq!(count(&w, slot::sessions(Proto::Tls, false)), 1);
        assert_eq!(count(&w, slot::protocol_packets(Proto::Tls)), 4);
    }

    /// A flow's session lives in the worker's session slab exactly as long as the flow lives in
    /// the table: freed when the flow leaves under pressure, on its timeout, at the end of input.
    #[test]
    fn sessions_leave_with_their_flows() {
        let mut w = worker();
        // 150 BFD echo flows (each with a session) through a table of 100.
        let mut b = Batch::new();
        for host in 0..150u8 {
            udp_to(&mut b, host as i64 * MS, host, 5000, 3785);
        }
        b.now_ns = 149 * MS;
        w.process(&b);
        let pressure = slot::flows_evicted(EvictReason::Pressure);
        assert_eq!(count(&w, pressure), 50);
        assert_eq!((w.table.len(), w.sessions.len()), (100, 100));
        // A minute later one new flow: the 100 leave on their timeout, and their slots and
        // session keys go to new flows without mixing them up.
        let mut b = Batch::new();
        for host in 0..3u8 {
            udp_to(&mut b, 70 * S + host as i64, host, 6000, 3785);
        }
        b.now_ns = 70 * S + 2;
        w.process(&b);
        let timeout = slot::flows_evicted(EvictReason::Timeout);
        assert_eq!(count(&w, timeout), 100);
        assert_eq!((w.table.len(), w.sessions.len()), (3, 3));
        w.finish_all();
        assert!(w.sessions.is_empty());
        assert_eq!(count(&w, slot::BFD_ECHO), 153);
    }
}
