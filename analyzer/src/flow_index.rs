//! The flow table's index: from a flow's hash (computed once, on the reader) to its slot in the
//! table's slab. An array of 64-byte buckets, each one cache line: seven cells, each a tag (the
//! top 32 bits of its flow's hash, the lowest of them set, so no tag is 0: 0 is an empty cell)
//! and a slot, and a count of the flows that overflowed past the bucket. A tag scaled to the
//! bucket count names the flow's home bucket. A lookup compares the seven tags of its home bucket
//! at once (two 128-bit compares) and goes on to the next bucket only when flows overflowed past
//! it, rare below the index's 3/4 fill; so its branches do not turn on where in a run a flow
//! lies. A flow is deleted by emptying its cell and counting down the overflows on its way, and
//! the index grows fourfold (up to room for its table's cap) from its own cells, without a look
//! at any flow record.
//! It is written here rather than taken from hashbrown because the worker fetches the buckets a
//! group of packets will probe while it processes the group before (`prefetch`), and hashbrown's
//! tables do not say where a hash's group lies. On a full table under a flood every packet's
//! lookup, and the eviction that makes room for it, is otherwise a wait for memory.

/// Cells a bucket has.
const CELLS: usize = 7;

/// A bucket: `tags[0]` counts the flows filed past it because it was full when they came;
/// `tags[j]` and `slots[j]`, j from 1 to 7, are its cells. Its masks give bit j for cell j.
#[derive(Clone, Copy, Default, bytemuck::Zeroable)]
#[repr(C, align(64))]
struct Bucket {
    tags: [u32; 8],
    slots: [u32; 8],
}

/// The mask bits of the cells (bit 0 is the count's).
const CELL_BITS: u32 = 0xfe;

impl Bucket {
    fn over(&self) -> u32 {
        self.tags[0]
    }

    /// Bits set where a cell holds `tag` (0: where it is empty).
    #[inline(always)]
    fn matching(&self, tag: u32) -> u32 {
        tags_eq(&self.tags, tag) & CELL_BITS
    }
}

/// Bit j set where `tags[j]` is `tag`: two 128-bit compares.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn tags_eq(tags: &[u32; 8], tag: u32) -> u32 {
    use safe_arch::{cast_to_m128_from_m128i, cmp_eq_mask_i32_m128i, m128i, move_mask_m128};
    let key = m128i::from([tag; 4]);
    let half = |k: usize| {
        let v = m128i::from([tags[k], tags[k + 1], tags[k + 2], tags[k + 3]]);
        move_mask_m128(cast_to_m128_from_m128i(cmp_eq_mask_i32_m128i(v, key))) as u32
    };
    half(0) | half(4) << 4
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn tags_eq(tags: &[u32; 8], tag: u32) -> u32 {
    tags_eq_plain(tags, tag)
}

/// `tags_eq` one tag at a time (other processors; the tests compare the two).
#[cfg(any(test, not(target_arch = "x86_64")))]
fn tags_eq_plain(tags: &[u32; 8], tag: u32) -> u32 {
    tags.iter()
        .enumerate()
        .fold(0, |m, (j, &t)| m | ((t == tag) as u32) << j)
}

/// The cell a mask bit stands for.
#[inline(always)]
fn cell(m: u32) -> usize {
    m.trailing_zeros() as usize & 7
}

pub struct FlowIndex {
    /// All zero when made: asked of the allocator as zeroed memory, which fresh pages from the
    /// system already are, so a large index is not written through before its first flow (the
    /// pages come in as flows are filed).
    buckets: Box<[Bucket]>,
    /// The bucket count less one (a power of two less one): a tag's low bits under it name
    /// its home bucket.
    mask: usize,
    /// Flows it holds before it grows (3/4 of its cells).
    room: usize,
    len: usize,
    /// The most flows it will be asked to hold (its table's cap): it grows no further than that.
    most: usize,
    /// The buckets it will grow into, made once 3/4 of its room is taken (`spare`), so that
    /// their pages can be mapped ahead of the growth rather than by it.
    spare: Option<Box<[Bucket]>>,
}

/// A hash's tag: its top 32 bits, with the highest of them set (an empty cell's is 0).
#[inline(always)]
fn tag(hash: u64) -> u32 {
    (hash >> 32) as u32 | 1 << 31
}

/// Buckets an index with room for `n` flows, that never holds more than `most`, has: a power of
/// two, at least 2, with `n` at most 3/4 of their cells.
fn bucket_count(n: usize, most: usize) -> usize {
    n.clamp(1, most.max(1))
        .saturating_mul(4)
        .div_ceil(3 * CELLS)
        .next_power_of_two()
        .max(2)
}

/// The bucket after `i` of `n` (a power of two), wrapping around.
#[inline(always)]
fn next(i: usize, n: usize) -> usize {
    (i + 1) & (n - 1)
}

impl FlowIndex {
    /// An index with room for `n` flows before it grows, that never holds more than `most`.
    pub fn new(n: usize, most: usize) -> Self {
        FlowIndex::in_buckets(bytemuck::zeroed_slice_box(bucket_count(n, most)), most)
    }

    /// An empty index in `buckets` (all zero; a power of two of them).
    fn in_buckets(buckets: Box<[Bucket]>, most: usize) -> Self {
        let n = buckets.len();
        FlowIndex {
            buckets,
            mask: n - 1,
            room: n * CELLS * 3 / 4,
            len: 0,
            most,
            spare: None,
        }
    }

    /// The room it grows to once full: four times its room, or room for `most` at once where the
    /// step after that would pass it.
    fn next_room(&self) -> usize {
        let next = 4 * self.room;
        let near = self.most > self.room && 2 * next >= self.most;
        if near {
            next.max(self.most)
        } else {
            next
        }
    }

    /// Once 3/4 of its room is taken, and where it will grow, makes the (empty) buckets it will
    /// grow into and returns their address and size, so that their pages can be mapped ahead
    /// (`prefault`); None otherwise, and once made. Until written or mapped they cost no memory.
    /// (Made at half its room, they were mapped for nothing on the realistic mix, whose 47 K
    /// flows in 500 K packets never grow the first index; floods gained as much either way.)
    #[inline(always)]
    pub fn spare(&mut self) -> Option<(usize, usize)> {
        if self.len < self.room / 4 * 3 || self.spare.is_some() || self.room >= self.most {
            return None;
        }
        self.make_spare()
    }

    #[cold]
    #[inline(never)]
    fn make_spare(&mut self) -> Option<(usize, usize)> {
        let b: Box<[Bucket]> =
            bytemuck::zeroed_slice_box(bucket_count(self.next_room(), self.most));
        let span = (b.as_ptr() as usize, std::mem::size_of_val(&*b));
        self.spare = Some(b);
        Some(span)
    }

    /// Its buckets' address and size.
    pub fn span(&self) -> (usize, usize) {
        (
            self.buckets.as_ptr() as usize,
            std::mem::size_of_val(&*self.buckets),
        )
    }

    /// Writes every bucket (empty, as it is), so its pages are in memory before the first
    /// lookup.
    pub fn fault_in(&mut self) {
        self.buckets.fill(Bucket::default());
    }

    /// An index with room for `n` flows before it grows (with no end: tests).
    #[cfg(test)]
    fn with_capacity(n: usize) -> Self {
        FlowIndex::new(n, usize::MAX)
    }

    /// Flows it holds before it grows (3/4 of its cells).
    pub fn capacity(&self) -> usize {
        self.room
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bucket a tag belongs to: its low bits (the bucket count is a power of two).
    #[inline(always)]
    fn home(&self, tag: u32) -> usize {
        tag as usize & self.mask
    }

    /// Asks the processor for the cache line of `hash`'s home bucket (a hint: it changes
    /// nothing).
    #[inline(always)]
    pub fn prefetch(&self, hash: u64) {
        if let Some(b) = self.buckets.get(self.home(tag(hash))) {
            prefetch(b);
        }
    }

    /// The slot of the flow with `hash` for which `eq` says yes (it is asked about each slot
    /// whose tag matches).
    #[inline(always)]
    pub fn find(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        let tag = tag(hash);
        let (mut i, buckets) = (self.home(tag), &self.buckets[..]);
        for _ in 0..buckets.len() {
            let Some(b) = buckets.get(i) else { break };
            let mut m = b.matching(tag);
            while m != 0 {
                let slot = b.slots[cell(m)];
                if eq(slot) {
                    return Some(slot);
                }
                m &= m - 1;
            }
            if b.over() == 0 {
                return None;
            }
            i = next(i, buckets.len());
        }
        None
    }

    /// Files `slot` under `hash` (the caller knows no cell holds this slot already). Past 3/4
    /// full, the index first grows: to four times its room, or to room for `most` at once where
    /// the step after that would pass it. Fourfold steps refile fewer cells on the way up (a
    /// flood to 1 M flows from the files' first index: 430 K cells in two steps, against 602 K
    /// in three doubling), at the price of an index 3/16 full just after a step.
    #[inline(always)]
    pub fn insert(&mut self, hash: u64, slot: u32) {
        if self.len >= self.room {
            self.grow_to(self.next_room());
        }
        self.put(tag(hash), slot);
        self.len += 1;
    }

    /// Files a cell in the first bucket with room from its home on, counting it past the full
    /// ones.
    #[inline(always)]
    fn put(&mut self, tag: u32, slot: u32) {
        let mut i = self.home(tag);
        let buckets = &mut self.buckets[..];
        let n = buckets.len();
        // At most 3/4 of the cells are taken: the walk meets room.
        for _ in 0..n {
            let Some(b) = buckets.get_mut(i) else { break };
            let e = b.matching(0);
            if e != 0 {
                (b.tags[cell(e)], b.slots[cell(e)]) = (tag, slot);
                return;
            }
            b.tags[0] += 1;
            i = next(i, n);
        }
    }

    /// Refiles every cell in an index with room for `n` flows: from the cells alone, as each
    /// one's tag names its home.
    #[cold]
    #[inline(never)]
    fn grow_to(&mut self, n: usize) {
        let count = bucket_count(n, self.most);
        let buckets = match self.spare.take() {
            Some(b) if b.len() == count => b,
            _ => bytemuck::zeroed_slice_box(count),
        };
        let old = std::mem::replace(self, FlowIndex::in_buckets(buckets, self.most));
        for b in &old.buckets {
            // The taken cells, from one compare of the bucket's tags.
            let mut m = !b.matching(0) & CELL_BITS;
            while m != 0 {
                let j = cell(m);
                self.put(b.tags[j], b.slots[j]);
                m &= m - 1;
            }
        }
        self.len = old.len;
    }

    /// Takes `slot`, filed under `hash`, out; false when it was not there.
    pub fn remove(&mut self, hash: u64, slot: u32) -> bool {
        let tag = tag(hash);
        let home = self.home(tag);
        let buckets = &mut self.buckets[..];
        let n = buckets.len();
        let mut i = home;
        for _ in 0..n {
            let Some(b) = buckets.get_mut(i) else { break };
            let mut m = b.matching(tag);
            while m != 0 && b.slots[cell(m)] != slot {
                m &= m - 1;
            }
            if m != 0 {
                b.tags[cell(m)] = 0;
                // The buckets it was counted past, from its home up to this one.
                let mut k = home;
                while k != i {
                    if let Some(b) = buckets.get_mut(k) {
                        b.tags[0] -= 1;
                    }
                    k = next(k, n);
                }
                self.len -= 1;
                return true;
            }
            if b.over() == 0 {
                return false;
            }
            i = next(i, n);
        }
        false
    }

    /// Every slot filed, with its tag (tests).
    #[cfg(test)]
    fn slots(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.buckets.iter().flat_map(|b| {
            (1..=CELLS)
                .filter(|&j| b.tags[j] != 0)
                .map(|j| (b.tags[j], b.slots[j]))
        })
    }
}

/// A hint to bring `x`'s cache line in; none on processors it has no instruction for.
#[inline(always)]
pub fn prefetch<T>(x: &T) {
    #[cfg(target_arch = "x86_64")]
    safe_arch::prefetch_t0(x);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// Hashes whose tags all have the last bucket of a two-bucket index as home, so a bucket
    /// overflows and the walk wraps around the index's end.
    fn crowded(n: u64) -> u64 {
        (n << 4 | 1) << 32 | n
    }

    #[test]
    fn finds_what_it_filed_across_a_full_bucket_and_not_what_it_removed() {
        let mut x = FlowIndex::with_capacity(8);
        assert_eq!(x.buckets.len(), 2);
        for s in 0..9 {
            x.insert(crowded(s as u64), s);
        }
        assert_eq!(x.len(), 9);
        // Seven in the home bucket, two overflowed past it into the first.
        assert_eq!((x.buckets[1].over(), x.buckets[0].over()), (2, 0));
        for s in 0..9 {
            assert_eq!(x.find(crowded(s as u64), |t| t == s), Some(s));
        }
        assert!(x.remove(crowded(8), 8));
        assert!(!x.remove(crowded(8), 8));
        assert_eq!(x.buckets[1].over(), 1);
        assert_eq!(x.find(crowded(8), |t| t == 8), None);
        for s in 0..8 {
            assert_eq!(x.find(crowded(s as u64), |t| t == s), Some(s), "slot {s}");
        }
        for s in 0..8 {
            assert!(x.remove(crowded(s as u64), s));
        }
        assert!(x.is_empty());
        assert!(x
            .buckets
            .iter()
            .all(|b| b.over() == 0 && b.matching(0) == CELL_BITS));
    }

    #[test]
    fn grows_past_three_quarters_full_and_keeps_every_slot() {
        let mut x = FlowIndex::with_capacity(1);
        assert_eq!(x.capacity(), 10);
        for s in 0..1000u32 {
            x.insert(crowded(s as u64 * 7919), s);
            assert!(x.len() <= x.capacity());
        }
        assert!(x.capacity() >= 1000);
        for s in 0..1000u32 {
            assert_eq!(x.find(crowded(s as u64 * 7919), |t| t == s), Some(s));
        }
        assert_eq!(x.slots().count(), 1000);
    }

    #[test]
    fn grows_fourfold_and_takes_room_for_its_most_in_one_step_near_the_end() {
        let hash = |s: u32| (s as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut x = FlowIndex::new(10, 300);
        let mut rooms = vec![x.capacity()];
        for s in 0..300u32 {
            x.insert(hash(s), s);
            if rooms.last() != Some(&x.capacity()) {
                rooms.push(x.capacity());
            }
        }
        // Room for 10, then four times that (8 buckets: 42), then straight to room for 300
        // (64 buckets: 336), as four times 42 would hold fewer than 300 and the step after it
        // pass 300.
        assert_eq!(rooms, [10, 42, 336]);
        assert_eq!(x.buckets.len(), 64);
        for s in 0..300u32 {
            assert_eq!(x.find(hash(s), |t| t == s), Some(s));
        }
    }

    #[test]
    fn makes_the_buckets_it_grows_into_at_three_quarters_of_its_room_and_grows_into_them() {
        let hash = |s: u32| (s as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut x = FlowIndex::new(100, 100_000);
        let room = x.capacity();
        let mut spare = None;
        for s in 0..room as u32 {
            if let Some(span) = x.spare() {
                assert!(spare.is_none(), "made once");
                assert_eq!(s as usize, room / 4 * 3, "at 3/4 of its room");
                spare = Some(span);
            }
            x.insert(hash(s), s);
        }
        let (addr, len) = spare.expect("made before the growth");
        assert_eq!(x.capacity(), room, "not grown yet");
        x.insert(hash(room as u32), room as u32);
        // Grown into those very buckets: 4 times the room, 64 bytes a bucket.
        assert_eq!(x.buckets.as_ptr() as usize, addr);
        assert_eq!(len, x.buckets.len() * 64);
        assert_eq!(x.capacity(), 4 * room);
        for s in 0..=room as u32 {
            assert_eq!(x.find(hash(s), |t| t == s), Some(s));
        }
        // Where it will not grow (room for its most already), none is made.
        let mut y = FlowIndex::new(1000, 1000);
        for s in 0..999u32 {
            y.insert(hash(s), s);
            assert_eq!(y.spare(), None);
        }
    }

    #[test]
    fn a_slot_is_asked_about_only_under_its_own_tag() {
        let mut x = FlowIndex::with_capacity(4);
        x.insert(7 << 32, 1);
        x.insert(7 << 32 | 0x10 << 32, 2);
        let mut asked = vec![];
        assert_eq!(
            x.find(7 << 32 | 0x10 << 32, |s| {
                asked.push(s);
                true
            }),
            Some(2)
        );
        assert_eq!(asked, [2]);
        // A tag of 0 matches no empty cell.
        assert_eq!(x.find(0, |_| true), None);
    }

    proptest! {
        /// The two-compare mask is the one-tag-at-a-time mask, wherever the tags match.
        #[test]
        fn tags_compare_alike(tags in proptest::array::uniform8(0u32..4), tag in 0u32..4) {
            prop_assert_eq!(tags_eq(&tags, tag), tags_eq_plain(&tags, tag));
        }
    }

    proptest! {
        /// Against a map: any mix of inserts and removes, in a small index whose buckets overflow.
        #[test]
        fn agrees_with_a_map(ops in proptest::collection::vec((any::<bool>(), 0u64..40), 1..300)) {
            let mut x = FlowIndex::with_capacity(4);
            let mut m: HashMap<u32, u64> = HashMap::new();
            for (add, n) in ops {
                let (h, s) = (crowded(n), n as u32);
                if add && !m.contains_key(&s) {
                    x.insert(h, s);
                    m.insert(s, h);
                } else if !add {
                    prop_assert_eq!(x.remove(h, s), m.remove(&s).is_some());
                }
                prop_assert_eq!(x.len(), m.len());
                for (&s, &h) in &m {
                    prop_assert_eq!(x.find(h, |t| t == s), Some(s));
                }
                for n in 0u64..40 {
                    if !m.contains_key(&(n as u32)) {
                        prop_assert_eq!(x.find(crowded(n), |t| t == n as u32), None);
                    }
                }
            }
        }
    }
}
