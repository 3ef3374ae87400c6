//! Symmetric flow hashing, computed once per packet on the reader/rx thread and carried with it.
//! Two hashes: `shard` over the unordered address pair (picks the worker, so every connection
//! between two hosts — an FTP control connection and its data connections, IP fragments, a BFD or
//! OSPF neighbour pair — meets on one worker), and `flow` over the unordered 5-tuple (the
//! flow-table key hash). Both are the same whichever direction a packet travels.

/// MurmurHash3's 64-bit finalizer: every input bit flips each output bit with probability ~1/2.
#[inline]
fn fmix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
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
    fmix(shard ^ (((lo as u64) << 40) | ((hi as u64) << 16) | proto as u64))
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
