#!/usr/bin/env python3
"""Independent checks for spanwatch's timestamp metrics (DESIGN.md §5), in plain Python with its
own pcap reader and exact rational arithmetic, sharing no code with spanwatch.

  rewrite.py spacing IN OUT SEED   rewrite IN's timestamps (nanosecond pcap OUT) with deltas drawn
                                   around each frame's wire time at 1G and 10G, zeros and negative
                                   deltas; print the expected counts per link speed as JSON
  rewrite.py skew IN OUT ADDR MS   shift every packet sent from ADDR (IPv4/IPv6 text) by MS
                                   milliseconds: one capture point's clock is off
IN is a legacy pcap (µs or ns, either byte order); OUT is written in the same link type.
"""
import json
import random
import socket
import struct
import sys
from fractions import Fraction


def read_pcap(path):
    data = open(path, "rb").read()
    magic = data[:4]
    table = {b"\xd4\xc3\xb2\xa1": ("<", 1000), b"\xa1\xb2\xc3\xd4": (">", 1000),
             b"\x4d\x3c\xb2\xa1": ("<", 1), b"\xa1\xb2\x3c\x4d": (">", 1)}
    if magic not in table:
        raise SystemExit(f"{path}: not a legacy pcap")
    end, mult = table[magic]
    linktype = struct.unpack(end + "I", data[20:24])[0]
    off, pkts = 24, []
    while off + 16 <= len(data):
        sec, frac, incl, orig = struct.unpack(end + "IIII", data[off:off + 16])
        body = data[off + 16:off + 16 + incl]
        if len(body) < incl:
            break
        pkts.append([sec * 1_000_000_000 + frac * mult, orig, body])
        off += 16 + incl
    return linktype, pkts


def write_pcap_ns(path, linktype, pkts):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, linktype))
        for ts, orig, body in pkts:
            sec, ns = divmod(ts, 1_000_000_000)
            f.write(struct.pack("<IIII", sec, ns, len(body), orig))
            f.write(body)


def counts(pkts, speed):
    neg = zero = impossible = 0
    for prev, cur in zip(pkts, pkts[1:]):
        delta = Fraction(cur[0] - prev[0], 1_000_000_000)
        wire = Fraction((cur[1] + 24) * 8, speed)
        if delta < 0:
            neg += 1
        if delta == 0:
            zero += 1
        if 0 <= delta < wire:
            impossible += 1
    return {"negative": neg, "zero": zero, "impossible": impossible}


def spacing(src, dst, seed):
    rnd = random.Random(int(seed))
    linktype, pkts = read_pcap(src)
    t = 1_700_000_000_000_000_000
    for p in pkts:
        w1 = (p[1] + 24) * 8  # ns at 1 Gbit/s
        w10 = w1 / 10          # ns at 10 Gbit/s
        choice = rnd.random()
        if choice < 0.05:
            d = 0
        elif choice < 0.10:
            d = -rnd.randint(1, 50_000)
        elif choice < 0.40:
            d = round(w10 * rnd.uniform(0.5, 1.5))
        elif choice < 0.70:
            d = round(w1 * rnd.uniform(0.5, 1.5))
        else:
            d = rnd.randint(20_000, 5_000_000)
        t += d
        p[0] = t
    write_pcap_ns(dst, linktype, pkts)
    print(json.dumps({"1G": counts(pkts, 1_000_000_000), "10G": counts(pkts, 10_000_000_000)}))


def skew(src, dst, addr, ms):
    linktype, pkts = read_pcap(src)
    if linktype != 1:
        raise SystemExit("skew: Ethernet captures only")
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    want = socket.inet_pton(fam, addr)
    shifted = 0
    for p in pkts:
        b = p[2]
        et, off = struct.unpack(">H", b[12:14])[0], 14
        while et in (0x8100, 0x88A8):
            et, off = struct.unpack(">H", b[off + 2:off + 4])[0], off + 4
        src_addr = b[off + 12:off + 16] if et == 0x0800 else b[off + 8:off + 24] if et == 0x86DD else None
        if src_addr == want:
            p[0] += int(ms) * 1_000_000
            shifted += 1
    write_pcap_ns(dst, linktype, pkts)
    print(json.dumps({"shifted": shifted}))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "spacing":
        spacing(*sys.argv[2:])
    elif len(sys.argv) == 6 and sys.argv[1] == "skew":
        skew(*sys.argv[2:])
    else:
        raise SystemExit(__doc__)
