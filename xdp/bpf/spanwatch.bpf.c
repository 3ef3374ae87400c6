// SPDX-License-Identifier: GPL-2.0 OR MIT
// spanwatch's XDP program: stamp every frame with bpf_ktime_get_ns() in the 8 bytes of XDP
// metadata just before it, then redirect it to the AF_XDP socket of its RX queue (XSKMAP);
// frames of a queue with no socket pass to the stack. Self-contained: no libbpf headers (xdp.h).
#include "xdp.h"

#define __uint(name, val) int (*name)[val]
#define BPF_MAP_TYPE_XSKMAP 17

// Helper numbers from include/uapi/linux/bpf.h.
static long (*bpf_redirect_map)(void *map, __u64 key, __u64 flags) = (void *)51;
static long (*bpf_xdp_adjust_meta)(struct xdp_md *ctx, int delta) = (void *)54;

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 256);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} spanwatch_xsks SEC(".maps");

SEC("xdp")
int spanwatch_xsk(struct xdp_md *ctx)
{
	__u64 now = bpf_ktime_get_ns();
	if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(__u64)) == 0) {
		// The helper moved data_meta: reload the pointers and bounds-check before the store.
		void *data = (void *)(long)ctx->data;
		__u64 *meta = (void *)(long)ctx->data_meta;
		if ((void *)(meta + 1) <= data)
			*meta = now;
	}
	return bpf_redirect_map(&spanwatch_xsks, ctx->rx_queue_index, XDP_PASS);
}

char _license[] SEC("license") = "Dual MIT/GPL";
