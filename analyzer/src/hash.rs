//! Symmetric flow hashing, computed once per packet on the reader/rx thread and carried with it.
//! Two hashes: `shard` over the unordered address pair (picks the worker, so every connection
//! between two hosts — an FTP control connection and its data connections, IP fragments, a BFD or
//! OSPF neighbour pair — meets on one worker), and `flow` over the unordered 5-tuple (the
//! flow-table key hash). Both are the same whichever direction a packet travels.

/// A folded multiplication (the product's two halves xored, as foldhash mixes): each output bit
/// depends on every input bit, in four instructions where a MurmurHash3 finalizer takes ten.
/// The input is first xored with a constant, so that no input maps to zero by itself.
#[inline]
fn fold_mix(x: u64) -> u64 {
    let m = ((x ^ 0x243f_6a88_85a3_08d3) as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (m as u64) ^ ((m >> 64) as u64)
}

/// An address folded to 64 bits (an IPv4 address sits in the first 4 bytes, the rest zero). The
/// fold is cheap and not itself well mixed: `shard_hash` mixes the pair.
#[inline]
fn addr_word(a: &[u8; 16]) -> u64 {
    let lo = u64::from_le_bytes(a[0..8].try_into().unwrap_or([0; 8]));
    let hi = u64::from_le_bytes(a[8..16].try_into().unwrap_or([0; 8]));
    lo ^ hi.rotate_left(29)
}

/// Hash of the unordered address pair. Two multiplications carry every input bit into the high
/// half, which is what `pick` reads; `flow_hash` mixes it fully before a table sees it.
#[inline]
pub fn shard_hash(a: &[u8; 16], b: &[u8; 16]) -> u64 {
    let (x, y) = (addr_word(a), addr_word(b));
    let (lo, hi) = if x <= y { (x, y) } else { (y, x) };
    (lo.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ hi).wrapping_mul(0xff51_afd7_ed55_8ccd)
}

/// Hash of the unordered 5-tuple, built on the pair hash.
#[inline]
pub fn flow_hash(shard: u64, pa: u16, pb: u16, proto: u8) -> u64 {
    let (lo, hi) = if pa <= pb { (pa, pb) } else { (pb, pa) };
    fold_mix(shard ^ (((lo as u64) << 40) | ((hi as u64) << 16) | proto as u64))
}

/// Maps a hash onto `n` workers without a division.
#[inline]
pub fn pick(h: u64, n: usize) -> usize {
    (((h >> 32) * n as u64) >> 32) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric() {
        let a = [1u8; 16];
        let mut b = [2u8; 16];
        b[15] = 9;
        assert_eq!(shard_hash(&a, &b), shard_hash(&b, &a));
        let s = shard_hash(&a, &b);
        assert_eq!(flow_hash(s, 1234, 80, 6), flow_hash(s, 80, 1234, 6));
        assert_ne!(flow_hash(s, 1234, 80, 6), flow_hash(s, 1234, 80, 17));
    }

    /// The flow-table hash spreads flows that differ only in a port over the bits a hash table
    /// reads: the low bits (the bucket) and the top 7 (the tag).
    #[test]
    fn flow_hash_spreads() {
        let s = shard_hash(&[1; 16], &[2; 16]);
        let n = 1 << 16;
        let (mut buckets, mut tags) = (vec![false; n], [0usize; 128]);
        for port in 0..n as u32 {
            let h = flow_hash(s, port as u16, 53, 17);
            buckets[h as usize & (n - 1)] = true;
            tags[(h >> 57) as usize] += 1;
        }
        // n keys thrown into n buckets at random fill 1 - 1/e of them (63.2 %); fewer would
        // mean keys that cluster.
        let filled = buckets.iter().filter(|&&b| b).count() as f64 / n as f64;
        assert!(filled > 0.62, "{filled}");
        let mean = n / 128;
        assert!(
            tags.iter()
                .all(|&t| t > mean * 8 / 10 && t < mean * 12 / 10),
            "{tags:?}"
        );
    }

    #[test]
    fn pick_spreads() {
        let mut counts = [0usize; 4];
        for i in 0..10_000u32 {
            let mut a = [0u8; 16];
            a[..4].copy_from_slice(&i.to_be_bytes());
            counts[pick(shard_hash(&a, &[7; 16]), 4)] += 1;
        }
        assert!(counts.iter().all(|&c| c > 2000), "{counts:?}");
    }
}
