//! The per-worker flow table: a slab of flows indexed (`FlowIndex`) by the hash computed on the
//! reader (never rehashed), and three intrusive LRU lists (TCP, other, closed)
//! ordered by last packet time to within 1/64 of their timeout (`REFRESH`), so expiry and
//! pressure eviction look only at list heads. The flows' sessions live apart, in a slab of their
//! own (`Sessions`), so a flow record owns nothing: it is written as plain bytes and a table is
//! dropped without a look at each record. A flow that leaves is ended where it lies and then
//! released (`oldest`, `expired`, `release`), not copied out.
//! Timeouts are in packet time (DESIGN.md §5): TCP 300 s, UDP and others 60 s, and a short linger
//! after FIN/RST so retransmissions still find their flow.

use crate::decode::{Decoded, L4};
use crate::flow_index::FlowIndex;
use crate::protocols::Session;
use metrics::Proto;

pub const TCP_TIMEOUT_NS: i64 = 300_000_000_000;
pub const UDP_TIMEOUT_NS: i64 = 60_000_000_000;
pub const CLOSED_LINGER_NS: i64 = 5_000_000_000;

const NIL: u32 = u32::MAX;
/// Analyzers a flow keeps a private probe byte for (the registry may hold at most this many).
pub const MEMO_SLOTS: usize = 16;
pub const LIST_TCP: u8 = 0;
pub const LIST_OTHER: u8 = 1;
pub const LIST_CLOSED: u8 = 2;
const TIMEOUTS: [i64; 3] = [TCP_TIMEOUT_NS, UDP_TIMEOUT_NS, CLOSED_LINGER_NS];
/// A flow's place in its list is kept in units of 2^POS_SHIFT ns (about a millisecond).
const POS_SHIFT: u32 = 20;
/// A packet moves its flow to the tail of its list only when the flow was put there more than
/// 1/64 of the list's timeout before (in position units). A flow with packets is then moved a
/// few dozen times per timeout rather than on every packet, whose neighbours' records each move
/// would write. The lists are ordered by these positions, so a flow can sit behind a flow whose
/// last packet came up to this much later: it leaves the table at most this late (1/64 of its
/// timeout), and a packet that finds it idle past its timeout ends it first (`idle_past`).
const REFRESH: [u32; 3] = [
    (TCP_TIMEOUT_NS >> 6 >> POS_SHIFT) as u32,
    (UDP_TIMEOUT_NS >> 6 >> POS_SHIFT) as u32,
    (CLOSED_LINGER_NS >> 6 >> POS_SHIFT) as u32,
];

/// A time in position units (wrapping: positions are only ever compared by their difference).
#[inline(always)]
fn pos_of(ts: i64) -> u32 {
    (ts >> POS_SHIFT) as u32
}

/// The canonical (direction-free) identity of a flow: endpoint addresses `a` and `b` (as the
/// decoder holds them, IPv4 in the first 4 bytes, read as numbers in the machine's byte order) and,
/// packed in one word, `a`'s port, `b`'s port, the IP protocol and the IP version: five machine
/// words to compare, which the flow table does on every lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FlowKey {
    a: [u64; 2],
    b: [u64; 2],
    rest: u64,
}

impl FlowKey {
    /// The key of a packet and whether the packet's source is endpoint `a` (made by the decoder,
    /// on the thread that reads the packet, and carried in `Decoded`).
    #[inline]
    pub fn of(d: &Decoded) -> (FlowKey, bool) {
        (d.key, d.src_is_a)
    }

    /// The key of the packet from `src`:`sport` to `dst`:`dport`, and whether `src` is `a`.
    #[inline(always)]
    pub fn new(
        src: &[u8; 16],
        dst: &[u8; 16],
        sport: u16,
        dport: u16,
        proto: u8,
        v6: bool,
    ) -> (FlowKey, bool) {
        let words = |x: &[u8; 16]| {
            let w = u128::from_ne_bytes(*x);
            [w as u64, (w >> 64) as u64]
        };
        let (s, t) = (words(src), words(dst));
        // Any fixed order of the two endpoints will do (it only picks which one is `a`): the
        // first address words (all of an IPv4 address), then the second, then the ports.
        let src_first = if s[0] != t[0] {
            s[0] < t[0]
        } else if s[1] != t[1] {
            s[1] < t[1]
        } else {
            sport <= dport
        };
        let (a, pa, b, pb) = if src_first {
            (s, sport, t, dport)
        } else {
            (t, dport, s, sport)
        };
        let rest = pa as u64 | (pb as u64) << 16 | (proto as u64) << 32 | (v6 as u64) << 40;
        (FlowKey { a, b, rest }, src_first)
    }
    /// Endpoint `a`'s address bytes.
    pub fn addr_a(&self) -> [u8; 16] {
        bytes(self.a)
    }
    pub fn addr_b(&self) -> [u8; 16] {
        bytes(self.b)
    }
    pub fn port_a(&self) -> u16 {
        self.rest as u16
    }
    pub fn port_b(&self) -> u16 {
        (self.rest >> 16) as u16
    }
    pub fn proto(&self) -> u8 {
        (self.rest >> 32) as u8
    }
    pub fn v6(&self) -> bool {
        (self.rest >> 40) & 1 != 0
    }
}

fn bytes(w: [u64; 2]) -> [u8; 16] {
    (w[0] as u128 | (w[1] as u128) << 64).to_ne_bytes()
}

/// Per-direction memory for the causality check: the latest unacknowledged data segment.
#[derive(Clone, Copy, Default, Debug)]
pub struct SentData {
    pub end_seq: u32,
    pub ts: i64,
    pub valid: bool,
}

/// Classification progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Class {
    #[default]
    Unknown,
    Known(Proto),
}

/// Where a flow's session lies in its worker's session slab (`Sessions`): the slab's key plus one,
/// so that a flow without one holds None in four bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionKey(std::num::NonZeroU32);

impl SessionKey {
    /// The slab's key.
    #[inline]
    fn slot(self) -> usize {
        self.0.get() as usize - 1
    }
}

/// A worker's sessions, apart from the flow records: a flow holds a `SessionKey`, so the records
/// own nothing and need no dropping, and the table copies them in and out as plain bytes.
#[derive(Default)]
pub struct Sessions(slab::Slab<Box<dyn Session>>);

impl Sessions {
    /// Room for `n` sessions up front (as the flow slab: reserved pages cost nothing until
    /// written, and the slab never grows, copying every session pointer, on the packet path).
    pub fn with_capacity(n: usize) -> Self {
        Sessions(slab::Slab::with_capacity(n))
    }
    /// Keeps `s`; None when the slab already holds u32::MAX - 1 sessions (never, with a flow
    /// table's cap below that), which the caller treats as a flow without a session.
    pub fn insert(&mut self, s: Box<dyn Session>) -> Option<SessionKey> {
        let entry = self.0.vacant_entry();
        let key = u32::try_from(entry.key() + 1)
            .ok()
            .and_then(std::num::NonZeroU32::new)?;
        entry.insert(s);
        Some(SessionKey(key))
    }
    #[inline]
    pub fn get(&self, k: SessionKey) -> Option<&dyn Session> {
        self.0.get(k.slot()).map(|s| &**s)
    }
    #[inline]
    pub fn get_mut(&mut self, k: SessionKey) -> Option<&mut Box<dyn Session>> {
        self.0.get_mut(k.slot())
    }
    pub fn remove(&mut self, k: SessionKey) -> Option<Box<dyn Session>> {
        self.0.try_remove(k.slot())
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[derive(Default, Clone, Copy)]
pub struct Flow {
    pub key: FlowKey,
    pub hash: u64,
    pub l4: L4,
    pub first_ts: i64,
    pub last_ts: i64,
    pub class: Class,
    /// Endpoint `a` opened the flow (sent the first packet, or the SYN).
    pub client_is_a: bool,
    /// Probes that said No (bit per registry index) and each probe's private byte.
    pub rejected: u32,
    pub memo: [u8; MEMO_SLOTS],
    pub payload_pkts: u16,
    /// Payload packets seen while the flow was unclassified (added to its protocol once known).
    pub pending_pkts: u32,
    /// FIN seen from a / from b; RST seen.
    pub fin: [bool; 2],
    pub rst: bool,
    /// Indexed by "sent by a" (0: by b, 1: by a).
    pub sent: [SentData; 2],
    /// The flow's session, in its worker's `Sessions`.
    pub session: Option<SessionKey>,
    /// Index in `PROTOCOLS` of the analyzer that classified the flow (NONE: classified otherwise).
    pub proto_idx: u8,
    /// Per direction ([server, client]): the sequence number of the next byte expected, from the
    /// SYN and the payload seen so far (where a session built now starts its reassembly).
    pub next_seq: [Option<u32>; 2],
    /// The session wants no more packets.
    pub session_done: bool,
    list: u8,
    prev: u32,
    next: u32,
    /// When the flow was last put at its list's tail (`pos_of`).
    pos: u32,
    live: bool,
}

/// Why a flow left the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Timeout,
    Pressure,
    Closed,
    EndOfInput,
}

pub struct FlowTable {
    slab: Vec<Flow>,
    free: Vec<u32>,
    index: FlowIndex,
    heads: [u32; 3],
    tails: [u32; 3],
    len: usize,
    cap: usize,
    /// A time no later than the earliest a list head can expire: a clock at or before it needs
    /// no look at the lists (`due`). It errs early, never late: a head's time only grows in
    /// place, and a flow that becomes a head lowers it to its own expiry (`new_head`), so taking
    /// a head out costs no look at the other lists. A look that finds nothing expired makes it
    /// exact again (`pop_expired`).
    due: i64,
}

/// Flows the index of a table reading files starts with room for: 16 Ki buckets, 1 MB, where a
/// capture's flows stay in cache; room for the cap (16 MB at 1 M flows) spreads them over
/// memory. Past 3/4 full the index grows fourfold, and near the cap takes room for it, refiled
/// from its own cells each time (a flood to 1 M flows refiles 430 K cells in two steps); live
/// capture gives it room for the cap up front instead, as a refiling stalls the packet path for
/// milliseconds.
pub const FIRST_INDEX: usize = 86_016;

impl FlowTable {
    /// A table for live capture: its index has room for the cap, its pages written now, at
    /// start, rather than faulted in on the packet path.
    pub fn new(cap: usize) -> Self {
        let mut t = Self::with_index(cap, usize::MAX);
        t.index.fault_in();
        t
    }

    /// A table for reading files: its index starts with room for FIRST_INDEX flows, its pages
    /// faulted in as flows are filed (by the worker, not by the thread that makes the table).
    pub fn for_files(cap: usize) -> Self {
        Self::with_index(cap, FIRST_INDEX)
    }

    fn with_index(cap: usize, first: usize) -> Self {
        let cap = cap.max(1);
        // Room for up to 1 M flows up front: a table growing under a flood would rehash its
        // index and move every flow record on the packet path. The slab's reserved pages cost no
        // memory until a flow is written there; the index's buckets (a 64-byte line for every 5 flows
        // of room) are written when made.
        let pre = cap.min(1 << 20);
        FlowTable {
            slab: Vec::with_capacity(pre),
            free: Vec::new(),
            index: FlowIndex::new(pre.min(first), cap),
            heads: [NIL; 3],
            due: i64::MAX,
            tails: [NIL; 3],
            len: 0,
            cap,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The slab's address, the bytes of its slots written so far (freed ones included) and the
    /// bytes it reserved: where `prefault` maps pages ahead of new flows.
    #[inline(always)]
    pub fn slab_span(&self) -> (usize, usize, usize) {
        let size = std::mem::size_of::<Flow>();
        (
            self.slab.as_ptr() as usize,
            self.slab.len() * size,
            self.slab.capacity() * size,
        )
    }

    /// The index's buckets: their address and size.
    pub fn index_span(&self) -> (usize, usize) {
        self.index.span()
    }

    /// Where the index has made the buckets it will grow into (once, 3/4 full): their address
    /// and size, for `prefault` to map ahead of the growth.
    #[inline(always)]
    pub fn index_spare(&mut self) -> Option<(usize, usize)> {
        self.index.spare()
    }

    pub fn get(&mut self, i: u32) -> &mut Flow {
        &mut self.slab[i as usize]
    }

    #[cfg_attr(not(feature = "stages"), inline)]
    #[cfg_attr(feature = "stages", inline(never))]
    pub fn find(&self, hash: u64, key: &FlowKey) -> Option<u32> {
        let slab = &self.slab;
        self.index.find(hash, |i| {
            slab.get(i as usize).is_some_and(|f| f.key == *key)
        })
    }

    /// Asks for the index bucket where a lookup of `hash` starts (a hint, taken a few
    /// packets ahead of the lookup).
    #[inline(always)]
    pub fn prefetch(&self, hash: u64) {
        self.index.prefetch(hash);
    }

    /// When `n` new flows could fill the table, asks for the index buckets of the `n` flows that
    /// pressure would end first (along the oldest flow's list: a flood's victims), which their
    /// eviction looks up by hash. A hint: the victims may turn out otherwise.
    #[inline(always)]
    pub fn prefetch_victims(&self, n: usize) {
        if self.len + n > self.cap {
            self.prefetch_list(n);
        }
    }

    #[inline(never)]
    fn prefetch_list(&self, n: usize) {
        let mut i = self.oldest().unwrap_or(NIL);
        for _ in 0..n {
            let Some(f) = self.slab.get(i as usize) else {
                return;
            };
            self.index.prefetch(f.hash);
            i = f.next;
        }
    }

    /// True when inserting would exceed the cap (the caller evicts first).
    pub fn full(&self) -> bool {
        self.len >= self.cap
    }

    #[cfg_attr(not(feature = "stages"), inline(always))]
    #[cfg_attr(feature = "stages", inline(never))]
    pub fn insert(&mut self, key: &FlowKey, hash: u64, l4: L4, ts: i64, client_is_a: bool) -> u32 {
        let list = if l4 == L4::Tcp { LIST_TCP } else { LIST_OTHER };
        let tail = self.tails[list as usize];
        // Linked behind the list's tail as it is written.
        let flow = Flow {
            key: *key,
            hash,
            l4,
            first_ts: ts,
            last_ts: ts,
            client_is_a,
            live: true,
            list,
            prev: tail,
            next: NIL,
            ..Flow::default()
        };
        // Written once, where it will live.
        let i = match self.free.pop() {
            Some(i) => {
                self.slab[i as usize] = flow;
                i
            }
            None => {
                self.slab.push(flow);
                (self.slab.len() - 1) as u32
            }
        };
        self.index.insert(hash, i);
        self.attach(i, list, tail);
        self.len += 1;
        i
    }

    /// Records a packet at `ts` on flow `i`, and moves the flow to the tail of its list when it
    /// was put there long enough ago (`REFRESH`).
    #[cfg_attr(not(feature = "stages"), inline(always))]
    #[cfg_attr(feature = "stages", inline(never))]
    pub fn touch(&mut self, i: u32, ts: i64) {
        let f = &mut self.slab[i as usize];
        if ts > f.last_ts {
            f.last_ts = ts;
        }
        // A new flow's position is 0, "long ago": its first later packet moves it (unless its
        // time lies within REFRESH of a wrap of the position, every 52 days, for a moment).
        let pos = pos_of(ts);
        if pos.wrapping_sub(f.pos) > REFRESH[f.list as usize] {
            f.pos = pos;
            self.move_to_tail(i);
        }
    }

    /// Moves flow `i` to the tail of its list.
    #[inline(never)]
    fn move_to_tail(&mut self, i: u32) {
        let f = &mut self.slab[i as usize];
        let (l, prev, next) = (f.list as usize, f.prev, f.next);
        let tail = self.tails[l];
        if tail == i {
            return;
        }
        // Moved from inside its list to the tail: it has a next, and the list a tail that is
        // another flow, so only the neighbours' links and the ends change.
        f.prev = tail;
        f.next = NIL;
        if prev == NIL {
            self.heads[l] = next;
            self.new_head(l, next);
        } else {
            self.slab[prev as usize].next = next;
        }
        self.slab[next as usize].prev = prev;
        self.slab[tail as usize].next = i;
        self.tails[l] = i;
    }

    /// Whether flow `i` has been idle past its timeout at `ts` (it may still be in the table:
    /// see `REFRESH`); such a flow is over, and a packet for its tuple starts a new one.
    #[inline(always)]
    pub fn idle_past(&self, i: u32, ts: i64) -> bool {
        let f = &self.slab[i as usize];
        // When ts is the later, their difference as u64 is exact whatever the two times.
        ts > f.last_ts && ts.wrapping_sub(f.last_ts) as u64 > TIMEOUTS[f.list as usize] as u64
    }

    /// Moves a flow to the closed list (after FIN from both sides, or RST).
    pub fn mark_closed(&mut self, i: u32) {
        if self.slab[i as usize].list != LIST_CLOSED {
            self.unlink(i);
            let f = &mut self.slab[i as usize];
            f.list = LIST_CLOSED;
            f.pos = pos_of(f.last_ts);
            self.link_tail(i, LIST_CLOSED);
        }
    }

    pub fn is_closed(&self, i: u32) -> bool {
        self.slab[i as usize].list == LIST_CLOSED
    }

    /// A clock up to this time expires nothing. The packet loop compares each packet's clock
    /// with it and calls nothing else when below.
    #[inline(always)]
    pub fn due(&self) -> i64 {
        self.due
    }

    /// Whether any flow can be idle past its timeout at `now`. When false, `pop_expired(now)`
    /// would return None.
    #[inline]
    pub fn may_expire(&self, now: i64) -> bool {
        now > self.due
    }

    /// When flow `i` of list `l` expires, as its list's head.
    #[inline(always)]
    fn expiry(&self, l: usize, i: u32) -> i64 {
        self.slab[i as usize].last_ts.saturating_add(TIMEOUTS[l])
    }

    /// Flow `head` has become the head of list `l` (a list that is now empty: NIL).
    #[inline(always)]
    fn new_head(&mut self, l: usize, head: u32) {
        if head != NIL {
            self.due = self.due.min(self.expiry(l, head));
        }
    }

    /// The earliest time a list head can expire (i64::MAX with no flows).
    fn exact_due(&self) -> i64 {
        (0..3)
            .filter(|&l| self.heads[l] != NIL)
            .map(|l| self.expiry(l, self.heads[l]))
            .min()
            .unwrap_or(i64::MAX)
    }

    /// Takes out the next flow idle past its timeout at `now`, if any. With none left, `due`
    /// is made exact again.
    pub fn pop_expired(&mut self, now: i64) -> Option<(Flow, Exit)> {
        self.expired(now).map(|(i, exit)| (self.remove(i), exit))
    }

    /// The next flow idle past its timeout at `now`, if any (for the caller to end where it
    /// lies, then `release`). With none left, `due` is made exact again.
    pub fn expired(&mut self, now: i64) -> Option<(u32, Exit)> {
        for list in [LIST_CLOSED, LIST_OTHER, LIST_TCP] {
            let h = self.heads[list as usize];
            if h != NIL
                && now.saturating_sub(self.slab[h as usize].last_ts) > TIMEOUTS[list as usize]
            {
                let exit = if list == LIST_CLOSED {
                    Exit::Closed
                } else {
                    Exit::Timeout
                };
                return Some((h, exit));
            }
        }
        self.due = self.exact_due();
        None
    }

    /// Takes out the flow idle the longest, to within `REFRESH` (for pressure eviction).
    pub fn pop_oldest(&mut self) -> Option<Flow> {
        self.oldest().map(|i| self.remove(i))
    }

    /// The flow idle the longest, to within `REFRESH` (for the caller to end where it lies, then
    /// `release`).
    pub fn oldest(&self) -> Option<u32> {
        // A closed flow goes first whatever its age; then the older of the other two heads.
        // Written out rather than looped: a full table under a flood asks once per packet.
        let closed = self.heads[LIST_CLOSED as usize];
        if closed != NIL {
            return Some(closed);
        }
        let (other, tcp) = (
            self.heads[LIST_OTHER as usize],
            self.heads[LIST_TCP as usize],
        );
        match (other != NIL, tcp != NIL) {
            (true, true) => {
                let older = self.slab[tcp as usize].last_ts < self.slab[other as usize].last_ts;
                Some(if older { tcp } else { other })
            }
            (true, false) => Some(other),
            (false, true) => Some(tcp),
            (false, false) => None,
        }
    }

    /// Takes out any flow.
    pub fn pop_any(&mut self) -> Option<Flow> {
        let h = self.heads.iter().copied().find(|&h| h != NIL)?;
        Some(self.remove(h))
    }

    /// Hands every flow to `f` (in slab order: one pass through memory, where the lists would
    /// hop about it) and leaves the table empty; cheaper than removing them one by one (end of
    /// input, when every flow ends at the same time and their order means nothing).
    pub fn drain(&mut self, mut f: impl FnMut(&mut Flow)) {
        for flow in self.slab.iter_mut().filter(|flow| flow.live) {
            f(flow);
        }
        // A fresh index rather than clearing this one: clearing writes every cell.
        self.index = FlowIndex::new(0, self.cap);
        self.slab.clear();
        self.free.clear();
        self.heads = [NIL; 3];
        self.tails = [NIL; 3];
        self.len = 0;
        self.due = i64::MAX;
    }

    /// Takes flow `i` out and hands back a copy of its record.
    pub fn remove(&mut self, i: u32) -> Flow {
        let f = self.slab[i as usize];
        self.release(i);
        f
    }

    /// Takes flow `i` out; its slot is free for the next new flow. Ending a flow where it lies
    /// and then releasing it copies no record (a full table under a flood does this per packet).
    pub fn release(&mut self, i: u32) {
        self.unlink(i);
        let hash = self.slab[i as usize].hash;
        self.index.remove(hash, i);
        self.slab[i as usize].live = false;
        self.free.push(i);
        self.len -= 1;
    }

    #[inline(always)]
    fn unlink(&mut self, i: u32) {
        let (list, prev, next) = {
            let f = &self.slab[i as usize];
            (f.list as usize, f.prev, f.next)
        };
        if prev == NIL {
            self.heads[list] = next;
            self.new_head(list, next);
        } else {
            self.slab[prev as usize].next = next;
        }
        if next == NIL {
            self.tails[list] = prev;
        } else {
            self.slab[next as usize].prev = prev;
        }
        let f = &mut self.slab[i as usize];
        f.prev = NIL;
        f.next = NIL;
    }

    fn link_tail(&mut self, i: u32, list: u8) {
        let tail = self.tails[list as usize];
        {
            let f = &mut self.slab[i as usize];
            f.list = list;
            f.prev = tail;
            f.next = NIL;
        }
        self.attach(i, list, tail);
    }

    /// Makes flow `i`, whose own links already say it follows `tail`, the tail of `list`.
    #[inline(always)]
    fn attach(&mut self, i: u32, list: u8, tail: u32) {
        let l = list as usize;
        if tail == NIL {
            self.heads[l] = i;
            self.new_head(l, i);
        } else {
            self.slab[tail as usize].next = i;
        }
        self.tails[l] = i;
    }

    /// Checks the table's invariants (tests).
    pub fn check(&self) -> Result<(), String> {
        let mut n = 0;
        for l in 0..3 {
            let mut i = self.heads[l];
            let mut prev = NIL;
            while i != NIL {
                let f = &self.slab[i as usize];
                if !f.live || f.list as usize != l || f.prev != prev {
                    return Err(format!("bad link at {i}"));
                }
                if self.find(f.hash, &f.key) != Some(i) {
                    return Err(format!("flow {i} not indexed"));
                }
                prev = i;
                i = f.next;
                n += 1;
            }
            if self.tails[l] != prev {
                return Err(format!("bad tail of list {l}"));
            }
        }
        if self.due > self.exact_due() {
            return Err(format!("due {} later than {}", self.due, self.exact_due()));
        }
        if n != self.len || self.index.len() != self.len {
            return Err(format!(
                "len {} lists {} index {}",
                self.len,
                n,
                self.index.len()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(n: u32) -> (FlowKey, u64) {
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&n.to_be_bytes());
        let mut d = Decoded {
            l4: L4::Udp,
            proto: 17,
            ..Decoded::default()
        };
        d.set_endpoints(&a, &[9; 16], 1, 2);
        let (k, _) = FlowKey::of(&d);
        (
            k,
            crate::hash::flow_hash(crate::hash::shard_hash(&a, &[9; 16]), 1, 2, 17),
        )
    }

    #[test]
    fn a_files_index_starts_small_and_grows() {
        let n = 3 * FIRST_INDEX as u32 + 1000;
        let mut t = FlowTable::for_files(1 << 20);
        assert_eq!(t.index.capacity(), FIRST_INDEX);
        for i in 0..n {
            let (k, h) = key(i);
            t.insert(&k, h, L4::Udp, i as i64, true);
        }
        assert_eq!(t.index.capacity(), 4 * FIRST_INDEX);
        assert_eq!(t.index.len(), n as usize);
        for i in 0..n {
            let (k, h) = key(i);
            assert_eq!(t.find(h, &k), Some(i), "flow {i}");
        }
        // Live capture reserves it all up front; a small cap never reserves more than it needs.
        assert!(FlowTable::new(1 << 20).index.capacity() >= 1 << 20);
        assert!(FlowTable::for_files(1000).index.capacity() < 2000);
    }

    #[test]
    fn key_is_direction_free_and_keeps_its_fields() {
        let src = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];
        let dst = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3];
        let packet = |src: [u8; 16], dst: [u8; 16], sport: u16, dport: u16, v6: bool| {
            let mut d = Decoded {
                l4: L4::Tcp,
                v6,
                proto: 6,
                ..Decoded::default()
            };
            d.set_endpoints(&src, &dst, sport, dport);
            d
        };
        let d = packet(src, dst, 40000, 21, true);
        let r = packet(dst, src, 21, 40000, true);
        // The decoded packet gives back the endpoints it was given, each way.
        assert_eq!(
            (d.src(), d.dst(), d.sport(), d.dport()),
            (src, dst, 40000, 21)
        );
        assert_eq!(
            (r.src(), r.dst(), r.sport(), r.dport()),
            (dst, src, 21, 40000)
        );
        assert!(d.has_port(21) && d.has_port(40000) && !d.has_port(20));
        let ((k, s), (kr, sr)) = (FlowKey::of(&d), FlowKey::of(&r));
        assert_eq!(k, kr);
        assert_ne!(s, sr);
        assert_eq!((k, s), FlowKey::new(&src, &dst, 40000, 21, 6, true));
        let (src_a, src_pa) = if s { (src, 40000) } else { (dst, 21) };
        assert_eq!((k.addr_a(), k.port_a()), (src_a, src_pa));
        let other = if s { (dst, 21) } else { (src, 40000) };
        assert_eq!((k.addr_b(), k.port_b()), other);
        assert_eq!((k.proto(), k.v6()), (6, true));
        // Same addresses, ports swapped: another flow, ordered by port.
        let same = packet(src, src, 40000, 21, true);
        let (ks, _) = FlowKey::of(&same);
        assert_ne!(ks, k);
        assert_eq!(ks.port_a(), 21);
        assert_eq!((same.sport(), same.dport()), (40000, 21));
        let v4 = packet(src, dst, 40000, 21, false);
        assert_ne!(FlowKey::of(&v4).0, k);
    }

    #[test]
    fn expiry_in_packet_time() {
        let mut t = FlowTable::new(10);
        let (k, h) = key(1);
        let i = t.insert(&k, h, L4::Udp, 0, true);
        assert_eq!(t.find(h, &k), Some(i));
        assert!(t.pop_expired(UDP_TIMEOUT_NS).is_none());
        let (f, why) = t.pop_expired(UDP_TIMEOUT_NS + 1).unwrap();
        assert_eq!((f.key, why), (k, Exit::Timeout));
        assert!(t.is_empty());
        t.check().unwrap();
    }

    #[test]
    fn idle_past_is_exact_at_any_time() {
        let (k, h) = key(1);
        let t_out = UDP_TIMEOUT_NS;
        for last in [i64::MIN, -1, 0, 1 << 40, i64::MAX - t_out - 1, i64::MAX] {
            let mut t = FlowTable::new(10);
            let i = t.insert(&k, h, L4::Udp, last, true);
            // Earlier times, the same time and up to the timeout itself: not idle.
            for ts in [
                i64::MIN,
                last.saturating_sub(t_out + 1),
                last,
                last.saturating_add(t_out),
            ] {
                assert!(!t.idle_past(i, ts), "{last} {ts}");
            }
            // Past the timeout, as far as i64 goes.
            if let Some(ts) = last.checked_add(t_out + 1) {
                assert!(t.idle_past(i, ts), "{last} {ts}");
                assert!(t.idle_past(i, i64::MAX), "{last}");
            }
        }
    }

    /// A flow whose list neighbour ahead of it had a packet since it was put there (and so was
    /// not moved) leaves at most REFRESH after its timeout; a packet finds it idle meanwhile.
    #[test]
    fn expiry_behind_an_unmoved_flow() {
        const MS: i64 = 1_000_000;
        let mut t = FlowTable::new(10);
        let ((ka, ha), (kb, hb)) = (key(1), key(2));
        let a = t.insert(&ka, ha, L4::Udp, 0, true);
        t.touch(a, MS); // its first later packet: moved (to where it already is)
        let b = t.insert(&kb, hb, L4::Udp, 2 * MS, true);
        t.touch(a, 500 * MS); // within REFRESH: not moved, still ahead of b
        t.check().unwrap();
        let due = 2 * MS + UDP_TIMEOUT_NS;
        let mut now = due - 10 * MS;
        let mut popped = Vec::new();
        while !t.is_empty() {
            if t.may_expire(now) {
                while let Some((f, why)) = t.pop_expired(now) {
                    assert_eq!(why, Exit::Timeout);
                    popped.push((f.key, now));
                }
            }
            if now == due + 200 * MS {
                // b is overdue, still behind a: a packet for it finds it idle.
                assert_eq!(t.find(hb, &kb), Some(b));
                assert!(t.idle_past(b, now));
                assert!(!t.idle_past(a, now));
            }
            now += MS;
        }
        let late = REFRESH[LIST_OTHER as usize] as i64 * (1 << POS_SHIFT);
        assert_eq!(popped[0].0, ka);
        assert_eq!(popped[1].0, kb);
        assert!(popped[1].1 > due && popped[1].1 <= due + late, "{popped:?}");
        // A flow with packets keeps moving behind the quiet ones.
        let mut t = FlowTable::new(10);
        let a = t.insert(&ka, ha, L4::Udp, 0, true);
        let _ = t.insert(&kb, hb, L4::Udp, MS, true);
        for k in 1..=3 {
            t.touch(a, k * late + 2 * MS);
        }
        let (f, _) = t.pop_expired(MS + UDP_TIMEOUT_NS + 1).unwrap();
        assert_eq!(f.key, kb);
        t.check().unwrap();
    }

    /// Pressure eviction takes a closed flow first, else the older of the UDP/other and TCP
    /// heads (the UDP/other one on a tie).
    #[test]
    fn the_oldest_is_closed_first_then_the_older_head() {
        let mut t = FlowTable::new(10);
        assert_eq!(t.oldest(), None);
        let ((ka, ha), (kb, hb), (kc, hc)) = (key(1), key(2), key(3));
        let udp = t.insert(&ka, ha, L4::Udp, 20, true);
        assert_eq!(t.oldest(), Some(udp));
        let tcp = t.insert(&kb, hb, L4::Tcp, 10, true);
        assert_eq!(t.oldest(), Some(tcp));
        t.touch(tcp, 20);
        assert_eq!(t.oldest(), Some(udp), "a tie goes to the UDP/other head");
        let c = t.insert(&kc, hc, L4::Tcp, 30, true);
        t.mark_closed(c);
        assert_eq!(t.oldest(), Some(c));
        t.release(c);
        t.release(udp);
        assert_eq!(t.oldest(), Some(tcp));
        t.check().unwrap();
    }

    /// Taking a head out leaves `due` early (no look at the other lists); the look that finds
    /// nothing more to expire makes it exact, so the next packets skip the lists again.
    #[test]
    fn due_is_early_after_a_head_leaves_and_exact_after_a_look() {
        const S: i64 = 1_000_000_000;
        let mut t = FlowTable::new(10);
        let ((ka, ha), (kb, hb)) = (key(1), key(2));
        t.insert(&ka, ha, L4::Udp, 0, true);
        t.insert(&kb, hb, L4::Udp, 10 * S, true);
        assert_eq!(t.due(), UDP_TIMEOUT_NS);
        assert!(t.pop_oldest().is_some_and(|f| f.key == ka));
        assert_eq!(t.due(), UDP_TIMEOUT_NS, "left early");
        assert!(t.may_expire(UDP_TIMEOUT_NS + 1));
        assert!(t.pop_expired(UDP_TIMEOUT_NS + 1).is_none());
        assert_eq!(t.due(), 10 * S + UDP_TIMEOUT_NS);
        assert!(!t.may_expire(UDP_TIMEOUT_NS + 2));
        t.check().unwrap();
    }

    proptest! {
        #[test]
        fn invariants_hold(ops in proptest::collection::vec((0u8..5, 0u32..64, 0i64..1_000_000_000_000), 1..400)) {
            let mut t = FlowTable::new(32);
            for (op, n, ts) in ops {
                let (k, h) = key(n);
                match op {
                    0 | 1 => match t.find(h, &k) {
                        Some(i) => t.touch(i, ts),
                        None => {
                            if t.full() { t.pop_oldest(); }
                            t.insert(&k, h, if n % 2 == 0 { L4::Tcp } else { L4::Udp }, ts, true);
                        }
                    },
                    2 => {
                        // The cached expiry never says "nothing due" when something is.
                        if !t.may_expire(ts) {
                            prop_assert!(t.pop_expired(ts).is_none());
                        }
                        while t.pop_expired(ts).is_some() {}
                    }
                    3 => if let Some(i) = t.find(h, &k) { t.mark_closed(i) },
                    _ => if let Some(i) = t.find(h, &k) { t.remove(i); },
                }
                prop_assert!(t.len() <= 32);
                prop_assert_eq!(t.check(), Ok(()));
            }
            let (before, mut drained) = (t.len(), 0);
            t.drain(|_| drained += 1);
            prop_assert_eq!(drained, before);
            prop_assert!(t.is_empty() && t.pop_any().is_none());
            prop_assert_eq!(t.check(), Ok(()));
        }
    }
}

#[cfg(test)]
mod size_tests {
    /// The record's size, which the bytes per idle flow in bench/RESULTS.md follow.
    #[test]
    fn flow_record_is_168_bytes() {
        assert_eq!(std::mem::size_of::<super::Flow>(), 168);
    }
}
