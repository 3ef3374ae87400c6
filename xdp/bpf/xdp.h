// SPDX-License-Identifier: GPL-2.0 OR MIT
// What spanwatch's XDP programs take from include/uapi/linux/bpf.h, so that they build with
// clang alone (no libbpf or kernel headers): the types, the program context, the section macro,
// the actions and the helpers they call.
#ifndef SPANWATCH_XDP_H
#define SPANWATCH_XDP_H

typedef unsigned int __u32;
typedef unsigned long long __u64;

struct xdp_md {
	__u32 data;
	__u32 data_end;
	__u32 data_meta;
	__u32 ingress_ifindex;
	__u32 rx_queue_index;
	__u32 egress_ifindex;
};

#define SEC(name) __attribute__((section(name), used))
#define XDP_PASS 2
#define XDP_TX 3

// Helper numbers from include/uapi/linux/bpf.h.
static __u64 (*bpf_ktime_get_ns)(void) = (void *)5;

#endif
