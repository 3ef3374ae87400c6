//! Packet decode on the reader/rx thread: link layer (Ethernet with 802.1Q/QinQ, Linux cooked SLL
//! and SLL2, raw IP, BSD loopback) through IPv4/IPv6 (extension headers, fragments) to TCP, UDP,
//! ICMP and ICMPv6, through tunnels (IP in IP, GRE, and the remote-SPAN tunnels ERSPAN, VXLAN and
//! Geneve), with `etherparse` slices (no copy). The strict parser runs first; only a packet
//! it rejects (a snaplen-truncated frame, say) pays for the lax one. The result is a small `Copy`
//! struct plus the L4 payload slice; the flow hashes and the flow key are made here, once, on the
//! thread that reads the packet.

use crate::flow::FlowKey;
use crate::hash::{flow_hash, shard_hash};
use etherparse::{
    EtherType, IpNumber, Ipv6ExtensionSlice, LaxNetSlice, LaxSlicedPacket, NetSlice, SlicedPacket,
    TransportSlice,
};
use metrics::{DecodeError, Tunnel};

/// pcap LINKTYPE_* values this decoder accepts.
pub mod link {
    pub const NULL: u32 = 0;
    pub const ETHERNET: u32 = 1;
    pub const RAW: u32 = 101;
    pub const RAW_BSD1: u32 = 12;
    pub const RAW_BSD2: u32 = 14;
    pub const LOOP: u32 = 108;
    pub const LINUX_SLL: u32 = 113;
    pub const IPV4: u32 = 228;
    pub const IPV6: u32 = 229;
    pub const LINUX_SLL2: u32 = 276;

    pub fn supported(l: u32) -> bool {
        matches!(
            l,
            NULL | ETHERNET
                | RAW
                | RAW_BSD1
                | RAW_BSD2
                | LOOP
                | LINUX_SLL
                | IPV4
                | IPV6
                | LINUX_SLL2
        )
    }
}

/// What lies above IP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum L4 {
    Tcp,
    Udp,
    Icmp,
    /// An IP fragment; the payload is the fragment's bytes, reassembled on the worker.
    Fragment,
    /// Another IP protocol (OSPF, ESP, GRE …); the payload is the IP payload.
    #[default]
    OtherIp,
}

pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
}

/// The decoded headers of one packet. Addresses are 16 bytes; IPv4 uses the first 4.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    pub l4: L4,
    pub v6: bool,
    /// IP protocol number (for a fragment: of the fragmented payload).
    pub proto: u8,
    /// The flow's identity (addresses, TCP/UDP ports, protocol, IP version) with its endpoints
    /// in the table's order, made here once, and whether this packet's source is its endpoint
    /// `a`: the source and destination are read back from them (`src`, `sport`, …). Ports: for
    /// ICMP echo both hold the identifier, for other ICMP both are 0.
    pub key: FlowKey,
    pub src_is_a: bool,
    pub tcp_flags: u8,
    pub seq: u32,
    pub ack: u32,
    pub icmp_type: u8,
    pub icmp_code: u8,
    pub frag_id: u32,
    /// Fragment offset in bytes (at most 8 191 × 8).
    pub frag_off: u16,
    pub frag_more: bool,
    /// Worker selection hash (unordered address pair; for an ICMP error, that of the quoted packet).
    pub shard: u64,
    /// Flow-table hash (unordered 5-tuple).
    pub flow: u64,
    /// The tunnel this packet came in, opened (the outermost where tunnels nest): 0 for none, else
    /// its `Tunnel` + 1 (0 keeps a fresh record all zero bytes; read it with `tunnel()`).
    pub tunnel_code: u8,
}

impl Decoded {
    /// The tunnel this packet came in, opened, if it came in one.
    #[inline]
    pub fn tunnel(&self) -> Option<Tunnel> {
        (self.tunnel_code as usize)
            .checked_sub(1)
            .and_then(|i| Tunnel::ALL.get(i).copied())
    }

    fn set_tunnel(&mut self, t: Tunnel) {
        self.tunnel_code = t as u8 + 1;
    }

    /// The source address (IPv4 in the first 4 bytes).
    pub fn src(&self) -> [u8; 16] {
        if self.src_is_a {
            self.key.addr_a()
        } else {
            self.key.addr_b()
        }
    }
    /// The destination address.
    pub fn dst(&self) -> [u8; 16] {
        if self.src_is_a {
            self.key.addr_b()
        } else {
            self.key.addr_a()
        }
    }
    /// The source port (TCP, UDP; an ICMP echo's identifier; else 0).
    #[inline]
    pub fn sport(&self) -> u16 {
        if self.src_is_a {
            self.key.port_a()
        } else {
            self.key.port_b()
        }
    }
    /// The destination port.
    #[inline]
    pub fn dport(&self) -> u16 {
        if self.src_is_a {
            self.key.port_b()
        } else {
            self.key.port_a()
        }
    }
    /// Whether either end uses `port`.
    #[inline]
    pub fn has_port(&self, port: u16) -> bool {
        self.key.port_a() == port || self.key.port_b() == port
    }
    pub fn src_ip(&self) -> std::net::IpAddr {
        ip(&self.src(), self.v6)
    }
    pub fn dst_ip(&self) -> std::net::IpAddr {
        ip(&self.dst(), self.v6)
    }
    pub fn is_icmp_error(&self) -> bool {
        self.l4 == L4::Icmp && icmp_error_kind(self.v6, self.icmp_type).is_some()
    }
    /// Sets the packet's endpoints (its `proto` and `v6` already set): the flow key, and the
    /// worker and flow-table hashes.
    #[inline(always)]
    pub fn set_endpoints(&mut self, src: &[u8; 16], dst: &[u8; 16], sport: u16, dport: u16) {
        self.shard = shard_hash(src, dst);
        self.flow = flow_hash(self.shard, sport, dport, self.proto);
        (self.key, self.src_is_a) = FlowKey::new(src, dst, sport, dport, self.proto, self.v6);
    }
}

pub fn ip(a: &[u8; 16], v6: bool) -> std::net::IpAddr {
    if v6 {
        std::net::IpAddr::V6((*a).into())
    } else {
        std::net::IpAddr::V4([a[0], a[1], a[2], a[3]].into())
    }
}

/// ICMP error types (RFC 792, RFC 4443 §3) by their label.
pub fn icmp_error_kind(v6: bool, t: u8) -> Option<metrics::IcmpError> {
    use metrics::IcmpError::*;
    if v6 {
        match t {
            1 => Some(DestUnreachable),
            2 => Some(PacketTooBig),
            3 => Some(TimeExceeded),
            4 => Some(ParameterProblem),
            137 => Some(Redirect),
            _ => None,
        }
    } else {
        match t {
            3 => Some(DestUnreachable),
            4 => Some(SourceQuench),
            5 => Some(Redirect),
            11 => Some(TimeExceeded),
            12 => Some(ParameterProblem),
            _ => None,
        }
    }
}

fn is_echo(v6: bool, t: u8) -> bool {
    if v6 {
        matches!(t, 128 | 129)
    } else {
        matches!(t, 0 | 8)
    }
}

struct Net<'a> {
    v6: bool,
    src: [u8; 16],
    dst: [u8; 16],
    proto: u8,
    frag: Option<(u32, u16, bool)>,
    payload: &'a [u8],
}

fn v4(a: [u8; 4]) -> [u8; 16] {
    let mut o = [0u8; 16];
    o[..4].copy_from_slice(&a);
    o
}

fn v6_frag<'a>(exts: impl IntoIterator<Item = Ipv6ExtensionSlice<'a>>) -> Option<(u32, u16, bool)> {
    exts.into_iter().find_map(|e| match e {
        Ipv6ExtensionSlice::Fragment(f) => Some((
            f.identification(),
            f.fragment_offset().value() * 8,
            f.more_fragments(),
        )),
        _ => None,
    })
}

/// The strict and lax slices of etherparse are different types with the same accessors: one body
/// serves both.
macro_rules! net_of {
    ($name:ident, $packet:ident, $net:ident) => {
        fn $name<'a>(p: &$packet<'a>) -> Option<Net<'a>> {
            match &p.net {
                Some($net::Ipv4(s)) => {
                    let h = s.header();
                    let pl = s.payload();
                    let frag = pl.fragmented.then(|| {
                        (
                            h.identification() as u32,
                            h.fragments_offset().value() * 8,
                            h.more_fragments(),
                        )
                    });
                    Some(Net {
                        v6: false,
                        src: v4(h.source()),
                        dst: v4(h.destination()),
                        proto: pl.ip_number.0,
                        frag,
                        payload: pl.payload,
                    })
                }
                Some($net::Ipv6(s)) => {
                    let h = s.header();
                    let pl = s.payload();
                    let frag = if pl.fragmented {
                        v6_frag(s.extensions().clone())
                    } else {
                        None
                    };
                    Some(Net {
                        v6: true,
                        src: h.source(),
                        dst: h.destination(),
                        proto: pl.ip_number.0,
                        frag,
                        payload: pl.payload,
                    })
                }
                _ => None,
            }
        }
    };
}
net_of!(from_strict, SlicedPacket, NetSlice);
net_of!(from_lax, LaxSlicedPacket, LaxNetSlice);

/// Fills `d` from the network and transport layers; returns the L4 payload.
fn finish<'a>(
    net: Net<'a>,
    transport: Option<&TransportSlice<'a>>,
    d: &mut Decoded,
) -> Result<&'a [u8], DecodeError> {
    d.v6 = net.v6;
    d.proto = net.proto;
    if let Some((id, off, more)) = net.frag {
        d.l4 = L4::Fragment;
        d.frag_id = id;
        d.frag_off = off;
        d.frag_more = more;
        // Fragments of one datagram must meet on one worker: shard and key by addresses only.
        d.set_endpoints(&net.src, &net.dst, 0, 0);
        return Ok(net.payload);
    }
    let (mut sport, mut dport) = (0, 0);
    let payload = match (net.proto, transport) {
        (6, Some(TransportSlice::Tcp(t))) => {
            d.l4 = L4::Tcp;
            sport = t.source_port();
            dport = t.destination_port();
            d.seq = t.sequence_number();
            d.ack = t.acknowledgment_number();
            use tcp_flags::*;
            d.tcp_flags = (t.fin() as u8 * FIN)
                | (t.syn() as u8 * SYN)
                | (t.rst() as u8 * RST)
                | (t.psh() as u8 * PSH)
                | (t.ack() as u8 * ACK);
            t.payload()
        }
        (17, Some(TransportSlice::Udp(u))) => {
            d.l4 = L4::Udp;
            sport = u.source_port();
            dport = u.destination_port();
            u.payload()
        }
        (1, Some(TransportSlice::Icmpv4(i))) => {
            d.l4 = L4::Icmp;
            d.icmp_type = i.type_u8();
            d.icmp_code = i.code_u8();
            (sport, dport) = icmp_ids(d, i.bytes5to8());
            i.payload()
        }
        (58, Some(TransportSlice::Icmpv6(i))) => {
            d.l4 = L4::Icmp;
            d.icmp_type = i.type_u8();
            d.icmp_code = i.code_u8();
            (sport, dport) = icmp_ids(d, i.bytes5to8());
            i.payload()
        }
        (6 | 17 | 1 | 58, _) => return Err(DecodeError::Truncated),
        _ => {
            d.l4 = L4::OtherIp;
            net.payload
        }
    };
    d.set_endpoints(&net.src, &net.dst, sport, dport);
    if d.proto == 89 {
        // OSPF Hellos go to multicast: every OSPF packet meets on one worker, where adjacencies are paired.
        d.shard = 0x0589_0589_0589_0589;
    }
    if d.is_icmp_error() {
        // Send the error to the worker that holds the flow it quotes.
        if let Some(q) = decode_quoted(payload) {
            d.shard = q.shard;
        }
    }
    Ok(payload)
}

/// The "ports" of an ICMP message: an echo's identifier for both, else 0.
fn icmp_ids(d: &Decoded, b5to8: [u8; 4]) -> (u16, u16) {
    if is_echo(d.v6, d.icmp_type) {
        let id = u16::from_be_bytes([b5to8[0], b5to8[1]]);
        (id, id)
    } else {
        (0, 0)
    }
}

/// How many tunnel layers (IP-in-IP, 6in4, GRE, ERSPAN, VXLAN, Geneve) are opened before giving
/// up.
const MAX_TUNNEL_DEPTH: u8 = 3;

/// The UDP ports of the mirror tunnels opened by their destination port: VXLAN (RFC 7348) and
/// Geneve (RFC 8926), as IANA assigns them (Zeek's and Suricata's defaults).
pub const VXLAN_PORT: u16 = 4789;
pub const GENEVE_PORT: u16 = 6081;

/// Decodes one captured frame of link type `link`. Tunnels are opened: the flow is the innermost
/// one, as tshark and Zeek see it. IP tunnels (IPv4/IPv6 in IP, protocol 4 and 41; GRE, RFC
/// 2784/2890, carrying IP) fall back to the outer packet where what they carry does not decode.
/// Mirror tunnels, which carry a whole frame from a remote SPAN port (GRE carrying Ethernet;
/// ERSPAN types I, II and III; VXLAN; Geneve), give the carried frame's result, errors included:
/// an ARP frame in ERSPAN is a packet that is not IP, as it would be on a local SPAN port. A
/// tunnel packet that was fragmented on its way is reassembled on the worker and counted there
/// (`tunnel_fragmented`), not opened: its fragments met on the worker of the outer addresses,
/// not on that of the flow it carries.
pub fn decode(link: u32, frame: &[u8]) -> Result<(Decoded, &[u8]), DecodeError> {
    decode_at(link, frame, 0)
}

/// `decode` into `d`, which must be `Decoded::default()` (the hot path: the common case is
/// written in place, with no copy of the result, inlined into its caller).
#[cfg_attr(not(feature = "stages"), inline(always))]
#[cfg_attr(feature = "stages", inline(never))]
pub fn decode_into<'a>(
    link: u32,
    frame: &'a [u8],
    d: &mut Decoded,
) -> Result<&'a [u8], DecodeError> {
    if let Some(p) = fast_into::<false>(link, frame, d) {
        return Ok(p);
    }
    decode_general_into(link, frame, d)
}

/// The general path of `decode_into`, kept out of its callers.
#[inline(never)]
fn decode_general_into<'a>(
    link: u32,
    frame: &'a [u8],
    d: &mut Decoded,
) -> Result<&'a [u8], DecodeError> {
    // A mirror tunnel over a packet of the fast path's kind, carrying one, is opened on the fast
    // path (here, out of the usual packet's way).
    *d = Decoded::default();
    if let Some(p) = fast_into::<true>(link, frame, d) {
        return Ok(p);
    }
    let (r, p) = decode_at(link, frame, 0)?;
    *d = r;
    Ok(p)
}

/// What a tunnel packet carries: a frame of link type `link`, and whether it is a mirror
/// tunnel's (whose result stands, errors included) or an IP tunnel's (which falls back).
struct Inner<'a> {
    link: u32,
    bytes: &'a [u8],
    mirror: bool,
    kind: Tunnel,
}

fn decode_at(link: u32, frame: &[u8], depth: u8) -> Result<(Decoded, &[u8]), DecodeError> {
    let r = decode_one(link, frame)?;
    if depth >= MAX_TUNNEL_DEPTH {
        return Ok(r);
    }
    let Some(i) = tunnel_inner(&r.0, r.1) else {
        return Ok(r);
    };
    let opened = decode_at(i.link, i.bytes, depth + 1).map(|(mut d, p)| {
        d.set_tunnel(i.kind);
        (d, p)
    });
    if i.mirror {
        opened
    } else {
        opened.or(Ok(r))
    }
}

/// What the tunnel packet `d`, with L4 payload `payload`, carries; None where it is no tunnel.
fn tunnel_inner<'a>(d: &Decoded, payload: &'a [u8]) -> Option<Inner<'a>> {
    match d.l4 {
        L4::OtherIp => match d.proto {
            4 | 41 => Some(Inner {
                link: link::RAW,
                bytes: payload,
                mirror: false,
                kind: Tunnel::IpInIp,
            }),
            47 => gre_payload(payload),
            _ => None,
        },
        L4::Udp => udp_tunnel_payload(d.dport(), payload),
        _ => None,
    }
}

/// Whether `decode` opens a packet like `d` with L4 payload `payload` as a tunnel (the worker
/// asks of a datagram it reassembled from fragments, which it does not open).
pub fn is_tunnel(d: &Decoded, payload: &[u8]) -> bool {
    tunnel_inner(d, payload).is_some()
}

/// The payload of a GRE packet (RFC 2784, RFC 2890 key and sequence) carrying IP, Ethernet, or
/// ERSPAN (type I and II: GRE protocol 0x88BE, type III: 0x22EB).
fn gre_payload(b: &[u8]) -> Option<Inner<'_>> {
    if b.len() < 4 || b[1] & 0x07 != 0 {
        return None; // only version 0
    }
    let mut off = 4;
    if b[0] & 0x80 != 0 {
        off += 4; // checksum + reserved
    }
    if b[0] & 0x20 != 0 {
        off += 4; // key
    }
    let seq = b[0] & 0x10 != 0;
    if seq {
        off += 4; // sequence number
    }
    let rest = b.get(off..)?;
    let (link, bytes, mirror, kind) = match u16::from_be_bytes([b[2], b[3]]) {
        0x0800 | 0x86dd => (link::RAW, rest, false, Tunnel::Gre),
        0x6558 => (link::ETHERNET, rest, true, Tunnel::Gre),
        // ERSPAN type I has no header of its own and GRE no sequence number; type II has both.
        0x88be if !seq => (link::ETHERNET, rest, true, Tunnel::Erspan),
        0x88be => (link::ETHERNET, erspan2(rest)?, true, Tunnel::Erspan),
        0x22eb => {
            let (link, bytes) = erspan3(rest)?;
            (link, bytes, true, Tunnel::Erspan)
        }
        _ => return None,
    };
    Some(Inner {
        link,
        bytes,
        mirror,
        kind,
    })
}

/// The frame after an ERSPAN type II header (8 bytes, version 1).
fn erspan2(b: &[u8]) -> Option<&[u8]> {
    (b.len() >= 8 && b[0] >> 4 == 1).then(|| &b[8..])
}

/// The frame after an ERSPAN type III header (12 bytes, version 2, and 8 more where its O bit
/// says a platform-specific subheader follows), with its link type: frame type 0 is Ethernet, 2
/// an IP packet.
fn erspan3(b: &[u8]) -> Option<(u32, &[u8])> {
    if b.len() < 12 || b[0] >> 4 != 2 {
        return None;
    }
    let link = match (b[10] >> 2) & 0x1f {
        0 => link::ETHERNET,
        2 => link::RAW,
        _ => return None,
    };
    let off = if b[11] & 0x01 != 0 { 20 } else { 12 };
    Some((link, b.get(off..)?))
}

/// The frame a UDP datagram to a mirror tunnel's port carries: VXLAN (RFC 7348: the I flag set
/// and the reserved bits clear, or the group-policy extension's G flag as well) or Geneve
/// (RFC 8926: version 0, carrying Ethernet or IP, after its options).
fn udp_tunnel_payload(dport: u16, b: &[u8]) -> Option<Inner<'_>> {
    let (link, bytes, kind) = match dport {
        VXLAN_PORT => {
            let plain = b.get(..4)? == [0x08, 0, 0, 0];
            if !(plain || b[0] == 0x88) || *b.get(7)? != 0 {
                return None;
            }
            (link::ETHERNET, b.get(8..)?, Tunnel::Vxlan)
        }
        GENEVE_PORT => {
            if b.len() < 8 || b[0] >> 6 != 0 {
                return None;
            }
            let link = match u16::from_be_bytes([b[2], b[3]]) {
                0x6558 => link::ETHERNET,
                0x0800 | 0x86dd => link::RAW,
                _ => return None,
            };
            (
                link,
                b.get(8 + (b[0] & 0x3f) as usize * 4..)?,
                Tunnel::Geneve,
            )
        }
        _ => return None,
    };
    Some(Inner {
        link,
        bytes,
        mirror: true,
        kind,
    })
}

/// The common case, decoded without building etherparse's whole `SlicedPacket`: Ethernet II
/// (untagged) or raw IP, IPv4 without options or fragmentation, TCP or UDP with complete headers
/// (UDP not to a mirror tunnel's port). Anything else returns None and takes the general path.
/// The result is the general path's, field for field (tests/decode_fast.rs compares them on every
/// corpus packet, and the `decode` fuzz target on arbitrary bytes).
#[inline]
fn decode_fast(link: u32, frame: &[u8]) -> Option<(Decoded, &[u8])> {
    let mut d = Decoded::default();
    fast_into::<false>(link, frame, &mut d).map(|p| (d, p))
}

/// `decode_fast` into `d`, which must be `Decoded::default()`; on None, `d` may be partly written.
/// With TUNNELS (`decode_into`, once the plain fast path declined), a mirror tunnel in GRE or UDP
/// over such a packet is opened here too where what it carries takes the fast path itself:
/// `decode`'s result, as the `decode` fuzz target and tests/tunnels.rs check.
#[inline(always)]
fn fast_into<'a, const TUNNELS: bool>(
    link: u32,
    frame: &'a [u8],
    d: &mut Decoded,
) -> Option<&'a [u8]> {
    let ip = match link {
        link::ETHERNET => {
            if frame.len() < 14 + 20 || frame[12] != 0x08 || frame[13] != 0x00 {
                return None;
            }
            &frame[14..]
        }
        link::RAW | link::IPV4 => frame,
        _ => return None,
    };
    // Version 4, IHL 5; total length within the capture (padding after it is cut off).
    if ip.len() < 20 || ip[0] != 0x45 {
        return None;
    }
    let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
    if total < 20 || total > ip.len() {
        return None;
    }
    // Not a fragment: MF clear and offset 0 (DF may be set).
    if (ip[6] & 0x3f) != 0 || ip[7] != 0 {
        return None;
    }
    let l4 = &ip[20..total];
    d.proto = ip[9];
    let (mut src, mut dst) = ([0; 16], [0; 16]);
    src[..4].copy_from_slice(&ip[12..16]);
    dst[..4].copy_from_slice(&ip[16..20]);
    let ports = |l4: &[u8]| {
        (
            u16::from_be_bytes([l4[0], l4[1]]),
            u16::from_be_bytes([l4[2], l4[3]]),
        )
    };
    let (payload, (sport, dport)) = match d.proto {
        6 => {
            if l4.len() < 20 {
                return None;
            }
            let off = (l4[12] >> 4) as usize * 4;
            if off < 20 || off > l4.len() {
                return None;
            }
            d.l4 = L4::Tcp;
            d.seq = u32::from_be_bytes([l4[4], l4[5], l4[6], l4[7]]);
            d.ack = u32::from_be_bytes([l4[8], l4[9], l4[10], l4[11]]);
            // FIN, SYN, RST, PSH, ACK sit at the same bits as in `tcp_flags`.
            d.tcp_flags = l4[13] & 0x1f;
            (&l4[off..], ports(l4))
        }
        17 => {
            if l4.len() < 8 {
                return None;
            }
            let len = u16::from_be_bytes([l4[4], l4[5]]) as usize;
            if len < 8 || len > l4.len() {
                return None;
            }
            let (sport, dport) = ports(l4);
            if matches!(dport, VXLAN_PORT | GENEVE_PORT) {
                return if TUNNELS {
                    fast_tunnel(udp_tunnel_payload(dport, &l4[8..len])?, d)
                } else {
                    None
                };
            }
            d.l4 = L4::Udp;
            (&l4[8..len], (sport, dport))
        }
        47 if TUNNELS => return fast_tunnel(gre_payload(l4)?, d),
        _ => return None,
    };
    d.set_endpoints(&src, &dst, sport, dport);
    Some(payload)
}

/// The general path only (for the comparison with the fast one).
#[doc(hidden)]
pub fn decode_general(link: u32, frame: &[u8]) -> Result<(Decoded, &[u8]), DecodeError> {
    decode_slow(link, frame)
}

/// The fast path only, where it applies.
#[doc(hidden)]
pub fn decode_fast_only(link: u32, frame: &[u8]) -> Option<(Decoded, &[u8])> {
    decode_fast(link, frame)
}

fn decode_one(link: u32, frame: &[u8]) -> Result<(Decoded, &[u8]), DecodeError> {
    match decode_fast(link, frame) {
        Some(r) => Ok(r),
        None => decode_slow(link, frame),
    }
}

fn decode_slow(link: u32, frame: &[u8]) -> Result<(Decoded, &[u8]), DecodeError> {
    let mut d = Decoded::default();
    let strict = match link {
        link::ETHERNET => SlicedPacket::from_ethernet(frame),
        link::LINUX_SLL => SlicedPacket::from_linux_sll(frame),
        link::LINUX_SLL2 => match sll2_split(frame) {
            Some((et, rest)) => SlicedPacket::from_ether_type(et, rest),
            None => return Err(DecodeError::Truncated),
        },
        link::RAW | link::RAW_BSD1 | link::RAW_BSD2 | link::IPV4 | link::IPV6 => {
            SlicedPacket::from_ip(frame)
        }
        link::NULL | link::LOOP => match frame.get(4..) {
            Some(rest) => SlicedPacket::from_ip(rest),
            None => return Err(DecodeError::Truncated),
        },
        _ => return Err(DecodeError::UnsupportedLink),
    };
    if let Ok(p) = &strict {
        return match from_strict(p) {
            Some(net) => finish(net, p.transport.as_ref(), &mut d).map(|pl| (d, pl)),
            None => match pppoe_ip(link, frame) {
                Some(ip) => decode_one(link::RAW, ip),
                None => Err(DecodeError::NonIp),
            },
        };
    }
    // The strict parser refused: try the lax one (truncated captures keep what they have).
    let lax = match link {
        link::ETHERNET => LaxSlicedPacket::from_ethernet(frame).ok(),
        link::LINUX_SLL => frame.get(16..).map(|rest| {
            LaxSlicedPacket::from_ether_type(
                EtherType(u16::from_be_bytes([frame[14], frame[15]])),
                rest,
            )
        }),
        link::LINUX_SLL2 => {
            sll2_split(frame).map(|(et, rest)| LaxSlicedPacket::from_ether_type(et, rest))
        }
        link::NULL | link::LOOP => frame
            .get(4..)
            .and_then(|r| LaxSlicedPacket::from_ip(r).ok()),
        _ => LaxSlicedPacket::from_ip(frame).ok(),
    };
    match lax.as_ref().and_then(|p| from_lax(p).map(|n| (n, p))) {
        Some((net, p)) => finish(net, p.transport.as_ref(), &mut d).map(|pl| (d, pl)),
        None => match lax.map(|p| p.net.is_none() && p.stop_err.is_none()) {
            Some(true) => Err(DecodeError::NonIp),
            Some(false) => Err(DecodeError::Truncated),
            None => Err(DecodeError::Malformed),
        },
    }
}

/// The IP packet inside a PPPoE session frame (RFC 2516 §4, PPP protocol 0x0021 / 0x0057), after
/// Ethernet and any 802.1Q/802.1ad tags.
fn pppoe_ip(link: u32, frame: &[u8]) -> Option<&[u8]> {
    if link != link::ETHERNET {
        return None;
    }
    let mut off = 12;
    let mut et = u16::from_be_bytes([*frame.get(off)?, *frame.get(off + 1)?]);
    while matches!(et, 0x8100 | 0x88a8 | 0x9100) {
        off += 4;
        et = u16::from_be_bytes([*frame.get(off)?, *frame.get(off + 1)?]);
    }
    if et != 0x8864 {
        return None;
    }
    let pppoe = frame.get(off + 2..)?;
    if pppoe.len() < 8 || pppoe[0] != 0x11 || pppoe[1] != 0 {
        return None;
    }
    match u16::from_be_bytes([pppoe[6], pppoe[7]]) {
        0x0021 | 0x0057 => Some(&pppoe[8..]),
        _ => None,
    }
}

fn sll2_split(frame: &[u8]) -> Option<(EtherType, &[u8])> {
    // SLL2: protocol type (2), reserved (2), ifindex (4), arphrd (2), pkttype (1), addr len (1), addr (8).
    let rest = frame.get(20..)?;
    Some((EtherType(u16::from_be_bytes([frame[0], frame[1]])), rest))
}

/// The packet an ICMP error quotes (IP header and the start of its payload), decoded as far as it
/// goes. The result's src/dst are those of the quoted packet (the original sender first).
pub fn decode_quoted(bytes: &[u8]) -> Option<Decoded> {
    let p = LaxSlicedPacket::from_ip(bytes).ok()?;
    let net = from_lax(&p)?;
    let mut d = Decoded {
        v6: net.v6,
        proto: net.proto,
        ..Decoded::default()
    };
    d.l4 = L4::OtherIp;
    let (mut sport, mut dport) = (0, 0);
    // Ports sit in the first 4 bytes of a TCP or UDP header, which RFC 792 guarantees are quoted.
    if matches!(net.proto, 6 | 17) && net.frag.is_none_or(|f| f.1 == 0) && net.payload.len() >= 4 {
        d.l4 = if net.proto == 6 { L4::Tcp } else { L4::Udp };
        sport = u16::from_be_bytes([net.payload[0], net.payload[1]]);
        dport = u16::from_be_bytes([net.payload[2], net.payload[3]]);
    }
    d.set_endpoints(&net.src, &net.dst, sport, dport);
    Some(d)
}

/// What a mirror tunnel carries, on the fast path (one layer: a tunnel in the tunnel takes the
/// general path).
#[inline(never)]
fn fast_tunnel<'a>(inner: Inner<'a>, d: &mut Decoded) -> Option<&'a [u8]> {
    if !inner.mirror {
        return None;
    }
    let p = fast_into::<false>(inner.link, inner.bytes, d)?;
    d.set_tunnel(inner.kind);
    Some(p)
}

/// The L4 payload of a quoted packet, after its UDP header (for content checks on quoted UDP).
pub fn quoted_udp_payload(bytes: &[u8]) -> Option<&[u8]> {
    let p = LaxSlicedPacket::from_ip(bytes).ok()?;
    let net = from_lax(&p)?;
    if net.proto == IpNumber::UDP.0 {
        net.payload.get(8..)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn udp_frame(payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .single_vlan(etherparse::VlanId::try_new(10).unwrap())
            .ipv4([198, 18, 0, 1], [198, 18, 0, 2], 64)
            .udp(5353, 5353);
        let mut v = Vec::new();
        b.write(&mut v, payload).unwrap();
        v
    }

    #[test]
    fn vlan_udp() {
        let f = udp_frame(b"hello");
        let (d, pl) = decode(link::ETHERNET, &f).unwrap();
        assert_eq!(d.l4, L4::Udp);
        assert_eq!((d.sport(), d.dport()), (5353, 5353));
        assert_eq!(pl, b"hello");
        assert_eq!(d.src_ip().to_string(), "198.18.0.1");
    }

    #[test]
    fn truncated_frame_is_lax_decoded() {
        let b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv6(
                [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
                64,
            )
            .tcp(40000, 21, 1000, 65535);
        let mut v = Vec::new();
        b.write(&mut v, b"USER alice\r\n").unwrap();
        v.truncate(v.len() - 4);
        let (d, pl) = decode(link::ETHERNET, &v).unwrap();
        assert_eq!(d.l4, L4::Tcp);
        assert!(d.v6);
        assert_eq!(pl, b"USER ali");
    }

    /// The frame a remote SPAN port mirrors: an FTP command from 198.18.1.1 to 198.18.1.2.
    fn mirrored() -> Vec<u8> {
        let b = PacketBuilder::ethernet2([3; 6], [4; 6])
            .ipv4([198, 18, 1, 1], [198, 18, 1, 2], 64)
            .tcp(40000, 21, 7, 65535);
        let mut v = Vec::new();
        b.write(&mut v, b"USER alice\r\n").unwrap();
        v
    }

    /// `inner` as the payload of IP protocol `proto` from 198.18.9.1 to 198.18.9.2 (or
    /// 2001:db8::1 to 2001:db8::2), in Ethernet.
    fn outer_ip(v6: bool, proto: u8, inner: &[u8]) -> Vec<u8> {
        let e = PacketBuilder::ethernet2([1; 6], [2; 6]);
        let b = if v6 {
            let a = |x| [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, x];
            e.ipv6(a(1), a(2), 64)
        } else {
            e.ipv4([198, 18, 9, 1], [198, 18, 9, 2], 64)
        };
        let mut v = Vec::new();
        b.write(&mut v, IpNumber(proto), inner).unwrap();
        v
    }

    /// `inner` in UDP from port 50000 to `dport`, from 198.18.9.1 to 198.18.9.2.
    fn outer_udp(dport: u16, inner: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([198, 18, 9, 1], [198, 18, 9, 2], 64)
            .udp(50000, dport);
        let mut v = Vec::new();
        b.write(&mut v, inner).unwrap();
        v
    }

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    /// The mirrored FTP command, whatever carried it.
    fn assert_inner(frame: &[u8], what: &str) {
        let (d, pl) = decode(link::ETHERNET, frame).unwrap_or_else(|e| panic!("{what}: {e:?}"));
        // The hot path, which opens the usual tunnels itself, gives the same.
        let mut hot = Decoded::default();
        assert_eq!(
            decode_into(link::ETHERNET, frame, &mut hot),
            Ok(pl),
            "{what}"
        );
        assert_eq!(hot, d, "{what}");
        assert_eq!(d.l4, L4::Tcp, "{what}");
        assert_eq!(d.src_ip().to_string(), "198.18.1.1", "{what}");
        assert_eq!((d.sport(), d.dport(), d.seq), (40000, 21, 7), "{what}");
        assert_eq!(pl, b"USER alice\r\n", "{what}");
        assert!(d.tunnel().is_some(), "{what}");
    }

    #[test]
    fn mirror_tunnels_are_opened() {
        let m = mirrored();
        let ip_only = &m[14..];
        // GRE: flags (S = 0x10, K = 0x20), version, protocol; then the key and sequence words.
        let gre = |flags: u8, proto: u16| -> Vec<u8> {
            let mut g = vec![flags, 0, (proto >> 8) as u8, proto as u8];
            if flags & 0x20 != 0 {
                g.extend([0, 0, 0, 10]);
            }
            if flags & 0x10 != 0 {
                g.extend([0, 0, 0, 1]);
            }
            g
        };
        // ERSPAN II: version 1, VLAN 0, session 5; index 0.
        let erspan2 = [0x10, 0x00, 0x00, 0x05, 0, 0, 0, 0];
        // ERSPAN III: version 2, session 7, timestamp, SGT; frame type in bits 2-6 of byte 10;
        // the O bit (byte 11, bit 0) announces 8 bytes of platform subheader.
        let erspan3 = |ft: u8, o: bool| -> Vec<u8> {
            let mut h = vec![0x20, 0, 0, 7, 0, 0, 0, 1, 0, 0, ft << 2, o as u8];
            if o {
                h.extend([0x0a; 8]);
            }
            h
        };
        for v6 in [false, true] {
            let cases: [(&str, Vec<u8>); 6] = [
                ("gretap", cat(&[&gre(0x20, 0x6558), &m])),
                ("ERSPAN I", cat(&[&gre(0, 0x88be), &m])),
                ("ERSPAN II", cat(&[&gre(0x10, 0x88be), &erspan2, &m])),
                (
                    "ERSPAN III",
                    cat(&[&gre(0x10, 0x22eb), &erspan3(0, false), &m]),
                ),
                (
                    "ERSPAN III + subheader",
                    cat(&[&gre(0x10, 0x22eb), &erspan3(0, true), &m]),
                ),
                (
                    "ERSPAN III, IP frame",
                    cat(&[&gre(0x10, 0x22eb), &erspan3(2, false), ip_only]),
                ),
            ];
            for (what, gre_packet) in cases {
                let f = outer_ip(v6, 47, &gre_packet);
                assert_inner(&f, &format!("{what}, v6 {v6}"));
                // Over IPv4 the fast path opens it (over IPv6 the general path does).
                let mut d = Decoded::default();
                assert_eq!(
                    fast_into::<true>(link::ETHERNET, &f, &mut d).is_some(),
                    !v6,
                    "{what}"
                );
            }
        }
        let vxlan = |flags: u8| [flags, 0, 0, 0, 0, 0, 42, 0];
        assert_inner(&outer_udp(4789, &cat(&[&vxlan(0x08), &m])), "VXLAN");
        assert_inner(&outer_udp(4789, &cat(&[&vxlan(0x88), &m])), "VXLAN-GBP");
        // Geneve: version 0, options length in 4-byte words, protocol type; VNI.
        let geneve = |opt_words: u8, proto: u16| -> Vec<u8> {
            let mut h = vec![opt_words, 0, (proto >> 8) as u8, proto as u8, 0, 0, 42, 0];
            h.extend(vec![0xee; opt_words as usize * 4]);
            h
        };
        assert_inner(&outer_udp(6081, &cat(&[&geneve(0, 0x6558), &m])), "Geneve");
        assert_inner(
            &outer_udp(6081, &cat(&[&geneve(2, 0x0800), ip_only])),
            "Geneve, IP, options",
        );
        for f in [
            outer_udp(4789, &cat(&[&vxlan(0x08), &m])),
            outer_udp(6081, &cat(&[&geneve(2, 0x0800), ip_only])),
        ] {
            assert!(fast_into::<true>(link::ETHERNET, &f, &mut Decoded::default()).is_some());
        }
    }

    #[test]
    fn what_a_mirror_tunnel_carries_stands_errors_included() {
        let mut arp = vec![0xff; 6];
        arp.extend([4; 6]);
        arp.extend([0x08, 0x06]);
        arp.extend([0; 28]);
        let vx = outer_udp(4789, &cat(&[&[0x08, 0, 0, 0, 0, 0, 42, 0], &arp]));
        assert_eq!(decode(link::ETHERNET, &vx).err(), Some(DecodeError::NonIp));
        let es = outer_ip(false, 47, &cat(&[&[0, 0, 0x88, 0xbe], &arp]));
        assert_eq!(decode(link::ETHERNET, &es).err(), Some(DecodeError::NonIp));
        // An IP tunnel whose inner packet does not decode is the outer packet.
        let ipip = outer_ip(false, 4, &[0x45, 0, 0, 99]);
        let (d, _) = decode(link::ETHERNET, &ipip).unwrap();
        assert_eq!((d.l4, d.proto, d.tunnel()), (L4::OtherIp, 4, None));
    }

    #[test]
    fn udp_to_a_tunnel_port_that_is_no_tunnel_stays_udp() {
        let m = mirrored();
        for (what, f) in [
            (
                "flags 0",
                outer_udp(4789, &cat(&[&[0, 0, 0, 0, 0, 0, 42, 0], &m])),
            ),
            (
                "reserved set",
                outer_udp(4789, &cat(&[&[0x08, 1, 0, 0, 0, 0, 42, 0], &m])),
            ),
            (
                "last byte set",
                outer_udp(4789, &cat(&[&[0x08, 0, 0, 0, 0, 0, 42, 1], &m])),
            ),
            ("short", outer_udp(4789, &[0x08, 0, 0, 0])),
            (
                "Geneve version 1",
                outer_udp(6081, &cat(&[&[0x40, 0, 0x65, 0x58, 0, 0, 42, 0], &m])),
            ),
            (
                "Geneve, other protocol",
                outer_udp(6081, &cat(&[&[0, 0, 0x88, 0x47, 0, 0, 42, 0], &m])),
            ),
            (
                "another port",
                outer_udp(4790, &cat(&[&[0x08, 0, 0, 0, 0, 0, 42, 0], &m])),
            ),
        ] {
            let (d, _) = decode(link::ETHERNET, &f).unwrap();
            assert_eq!(d.tunnel(), None, "{what}");
            assert_eq!(
                (d.l4, d.src_ip().to_string()),
                (L4::Udp, "198.18.9.1".into()),
                "{what}"
            );
            assert_eq!(d.sport(), 50000, "{what}");
        }
        // And the fast path leaves the tunnel ports to the general one.
        assert!(decode_fast(link::ETHERNET, &outer_udp(4789, &m)).is_none());
        assert!(decode_fast(link::ETHERNET, &outer_udp(6081, &m)).is_none());
        assert!(decode_fast(link::ETHERNET, &outer_udp(4790, &m)).is_some());
    }

    #[test]
    fn garbage_never_panics() {
        for len in 0..80 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            for l in [
                link::ETHERNET,
                link::RAW,
                link::LINUX_SLL,
                link::LINUX_SLL2,
                link::NULL,
                999,
            ] {
                let _ = decode(l, &junk);
            }
        }
    }
}
