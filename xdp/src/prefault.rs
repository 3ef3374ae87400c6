//! Page faults taken ahead of time: `populate_write` asks the kernel to map a range's pages
//! writable now (`madvise(MADV_POPULATE_WRITE)`, Linux 5.14), as a first write to each would,
//! without reading or writing them. The analyzer's idle threads call it on the part of each
//! worker's flow slab that the worker's next new flows will be written to, so that those faults
//! (one for every 24 new flows; 1.4 µs each on this project's VMs) are not taken on the packet
//! path. It lives here, beside the AF_XDP code, because this is the crate that holds the
//! project's `unsafe` code.

use std::sync::OnceLock;

/// The size of a page (`sysconf(_SC_PAGESIZE)`), 4 KiB where the system does not say.
fn page_size() -> usize {
    static PAGE: OnceLock<usize> = OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf reads a system constant; it takes no pointer and changes nothing.
        let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        usize::try_from(n)
            .ok()
            .filter(|n| n.is_power_of_two())
            .unwrap_or(4096)
    })
}

/// Asks for the whole pages within `[addr, addr + len)` to be mapped writable now. False where
/// the kernel refused (before Linux 5.14; a range not mapped, or not writable): nothing changed
/// then. True also when no whole page lies within the range.
pub fn populate_write(addr: usize, len: usize) -> bool {
    let page = page_size();
    let start = addr.next_multiple_of(page);
    let end = addr.saturating_add(len) & !(page - 1);
    if end <= start {
        return true;
    }
    // SAFETY: MADV_POPULATE_WRITE only maps pages: it neither reads nor writes their contents,
    // nor moves, frees or protects them, so no byte of the range (whoever owns it, whatever
    // another thread does with it meanwhile) changes; a range not mapped writable is refused
    // with an error and left as it was.
    let r = unsafe {
        libc::madvise(
            start as *mut libc::c_void,
            end - start,
            libc::MADV_POPULATE_WRITE,
        )
    };
    r == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_a_buffer_without_changing_it_and_refuses_what_is_not_mapped() {
        let page = page_size();
        let mut v = vec![7u8; 16 * page];
        v.truncate(page);
        v.shrink_to(16 * page);
        let (a, n) = (v.as_ptr() as usize, v.capacity());
        // Unaligned ends are rounded inward; the contents stay as they were.
        assert!(populate_write(a + 1, n - 1));
        assert!(v.iter().all(|&b| b == 7));
        assert!(populate_write(a, 0));
        // Page 0 is never mapped.
        assert!(!populate_write(0, 4 * page));
    }
}
