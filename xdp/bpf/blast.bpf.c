// SPDX-License-Identifier: GPL-2.0 OR MIT
// The benchmark sender's program (xdp/src/blast.rs; never attached to an interface): run by
// BPF_PROG_TEST_RUN in live-frames mode, it answers XDP_TX for every test frame, which the kernel
// then transmits out of the device named in the test context. With `interval_ns` set it first
// waits (a bounded spin on the kernel clock) until the frame is due, so frames leave evenly
// spaced at 1/interval_ns per second rather than in bursts. Self-contained: no libbpf headers (xdp.h).
#include "xdp.h"

/// Longest wait per frame, in clock reads (~25 ns each): pacing works down to ~20 kpps.
#define MAX_SPIN 2048
/// A sender this far behind (descheduled) starts afresh rather than catching up in a burst.
#define MAX_LAG_NS 1000000ULL

// Set by the loader before the program loads (0: no pacing).
const volatile __u64 interval_ns = 0;
// When the next frame is due (the program runs on one CPU per test run: no race).
__u64 next_due = 0;

SEC("xdp")
int spanwatch_tx(struct xdp_md *ctx)
{
	__u64 interval = interval_ns;
	if (interval) {
		__u64 now = bpf_ktime_get_ns(), due = next_due;
		if (now > due + MAX_LAG_NS)
			due = now;
		for (int i = 0; i < MAX_SPIN && now < due; i++)
			now = bpf_ktime_get_ns();
		next_due = due + interval;
	}
	return XDP_TX;
}

char _license[] SEC("license") = "Dual MIT/GPL";
