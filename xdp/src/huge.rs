//! Huge pages under the process's large heap allocations: a global allocator that hands every
//! call to the allocator it wraps, and asks the kernel (`madvise(MADV_HUGEPAGE)`) to back each
//! allocation of `FROM` bytes or more with 2 MiB pages where it can. The flow tables are such
//! allocations: a slab written in order as flows come and an index read at random, one 4 KiB
//! page fault for every 24 new flows and a TLB miss on most lookups otherwise. Where transparent
//! huge pages are off (`never`) the advice is refused and changes nothing; where they are
//! `always` it is already the kernel's default. The binary turns it off where huge pages cost
//! more than they save (`worth_asking`). It lives here, beside the AF_XDP code, because
//! this is the crate that holds the project's `unsafe` code.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicBool, Ordering};

/// Allocations from this size up are advised (two huge pages: a smaller one may hold none whole).
const FROM: usize = 4 << 20;

/// The size of a huge page on x86-64 and arm64 with 4 KiB base pages.
const HUGE: usize = 2 << 20;

/// `A`, with the advice on its large allocations.
pub struct HugePages<A>(pub A);

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Gives the advice (the default) or not, for the allocations made from now on.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether huge pages are worth asking for here: not in a virtual machine whose balloon reports
/// free memory to its host (virtio balloon feature 5, free page reporting). There a huge page a
/// run frees goes back to the host within seconds, and the next run's first touch of it makes
/// the host back it anew, 4 KiB at a time: measured on such a VM (Firecracker), a 500 k-packet
/// SYN flood read 3x slower with the advice when runs were a second apart (247 against 76 ms),
/// and 2x faster when they followed one another. Small pages come from what the guest kernel
/// freed last and stay cheap. Elsewhere (bare metal, a VM without a reporting balloon) a huge
/// page costs about what zeroing it does, less than the 512 small faults it replaces.
pub fn worth_asking() -> bool {
    let Ok(dir) = std::fs::read_dir("/sys/bus/virtio/devices") else {
        return true;
    };
    !dir.flatten().any(|d| {
        let read = |f: &str| std::fs::read_to_string(d.path().join(f)).unwrap_or_default();
        reports_free_pages(&read("device"), &read("features"))
    })
}

/// A virtio device's id and negotiated features (sysfs `device`, and `features`: one character
/// per feature bit, bit 0 first) say it is a balloon that reports free pages.
fn reports_free_pages(device: &str, features: &str) -> bool {
    const BALLOON: &str = "0x0005";
    const F_REPORTING: usize = 5;
    device.trim() == BALLOON && features.as_bytes().get(F_REPORTING) == Some(&b'1')
}

/// `p`, an allocation of `size` bytes just made (null: none), advised when it is large enough.
fn advised(p: *mut u8, size: usize) -> *mut u8 {
    if !p.is_null() && size >= FROM && ENABLED.load(Ordering::Relaxed) {
        advise(p, size);
    }
    p
}

/// Asks for huge pages under the whole 2 MiB pages within `[p, p + size)`.
fn advise(p: *mut u8, size: usize) {
    let start = (p as usize).next_multiple_of(HUGE);
    let end = (p as usize).saturating_add(size) & !(HUGE - 1);
    if end > start {
        // SAFETY: [start, end) lies within an allocation of `size` bytes at `p` that the caller
        // owns; MADV_HUGEPAGE only tells the kernel how to back those pages (it neither moves,
        // frees nor changes their contents), and an error leaves them as they were.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

// SAFETY: every method passes its call to `A` unchanged and returns what `A` returns; the advice
// given beside it touches no memory's contents or ownership, so `A`'s guarantees are this type's.
unsafe impl<A: GlobalAlloc> GlobalAlloc for HugePages<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller keeps `GlobalAlloc::alloc`'s contract, which is `A::alloc`'s.
        advised(unsafe { self.0.alloc(layout) }, layout.size())
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        advised(unsafe { self.0.alloc_zeroed(layout) }, layout.size())
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller keeps `GlobalAlloc::realloc`'s contract, which is `A::realloc`'s.
        advised(unsafe { self.0.realloc(ptr, layout, new_size) }, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller keeps `GlobalAlloc::dealloc`'s contract, which is `A::dealloc`'s.
        unsafe { self.0.dealloc(ptr, layout) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::System;

    /// The number after `key` on its line of a procfs file ("AnonHugePages:  2048 kB",
    /// "thp_fault_fallback 0").
    fn proc_number(path: &str, key: &str) -> Option<u64> {
        let s = std::fs::read_to_string(path).ok()?;
        let rest = s.lines().find_map(|l| l.strip_prefix(key))?;
        rest.split_whitespace().next()?.parse().ok()
    }

    /// The process's huge pages in use, in KiB.
    fn anon_huge_kib() -> Option<u64> {
        proc_number("/proc/self/smaps_rollup", "AnonHugePages:")
    }

    /// The kernel's count of huge page faults that fell back to small pages.
    fn thp_fallbacks() -> u64 {
        proc_number("/proc/vmstat", "thp_fault_fallback ").unwrap_or(0)
    }

    fn thp_mode() -> Option<String> {
        let s = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").ok()?;
        let start = s.find('[')? + 1;
        let end = s[start..].find(']')? + start;
        Some(s[start..end].to_string())
    }

    /// Allocates `size` bytes through `a`, writes one byte in every 4 KiB page, and returns by
    /// how much the process's huge pages grew meanwhile (KiB; None where it cannot be read).
    fn huge_growth(a: &HugePages<System>, size: usize) -> Option<u64> {
        let layout = Layout::from_size_align(size, 4096).expect("layout");
        // SAFETY (test): a layout of non-zero size.
        let p = unsafe { a.alloc(layout) };
        assert!(!p.is_null());
        // SAFETY (test): `p` holds `size` bytes, freshly allocated and used by nothing else.
        let block = unsafe { std::slice::from_raw_parts_mut(p, size) };
        let before = anon_huge_kib();
        for i in (0..size).step_by(4096) {
            block[i] = 1;
        }
        let after = anon_huge_kib();
        assert!(block.iter().step_by(4096).all(|&b| b == 1));
        // SAFETY (test): `p` came from `a.alloc` with this layout and is freed once.
        unsafe { a.dealloc(p, layout) };
        Some(after?.saturating_sub(before?))
    }

    #[test]
    fn a_balloon_that_reports_free_pages_is_told_from_other_devices() {
        // This development VM's balloon: statistics, deflate on OOM, free page reporting.
        let reporting = "0110010100000000000000000000000010000000";
        assert!(reports_free_pages("0x0005\n", reporting));
        // The same balloon without reporting, and a block device with bit 5 set.
        assert!(!reports_free_pages(
            "0x0005\n",
            "0110000100000000000000000000000010000000"
        ));
        assert!(!reports_free_pages("0x0002\n", reporting));
        assert!(!reports_free_pages("", ""));
    }

    #[test]
    fn large_allocations_are_backed_by_huge_pages_unless_turned_off() {
        let a = HugePages(System);
        let size = 64 << 20;
        let mode = thp_mode();
        if mode.as_deref() != Some("madvise") && mode.as_deref() != Some("always") {
            eprintln!("transparent huge pages {mode:?}: nothing to check");
            return;
        }
        let fallbacks = thp_fallbacks();
        let on = huge_growth(&a, size).expect("AnonHugePages");
        if on < 16 * 2048 && thp_fallbacks() > fallbacks {
            // Advised, but the kernel found no free 2 MiB blocks to give (fragmented memory).
            eprintln!("no huge pages to be had (thp_fault_fallback rose): nothing to check");
            return;
        }
        // Most of the 31 or 32 whole huge pages within it (none at all means no advice).
        assert!(on >= 16 * 2048, "advised: AnonHugePages grew {on} KiB");
        if mode.as_deref() == Some("madvise") {
            set_enabled(false);
            let off = huge_growth(&a, size);
            set_enabled(true);
            assert_eq!(off, Some(0), "not advised");
        }
    }
}
