//! ICMP (RFC 792) and ICMPv6 (RFC 4443) errors, attributed to the protocol of the packet they
//! quote: the quoted flow's protocol when the flow table knows it, else the quoted payload's
//! content (a quoted BFD control packet is BFD even before the peer answers), else the quoted
//! transport. Informational ICMP (echo and the like) is an `icmp` session of its own.

use super::classify_udp_payload;
use crate::decode::{decode_quoted, icmp_error_kind, quoted_udp_payload, Decoded, L4};
use metrics::{IcmpError, Proto};

/// The error's type label and the quoted packet's flow (for a flow-table lookup).
pub fn quoted(d: &Decoded, payload: &[u8]) -> Option<(IcmpError, Option<Decoded>)> {
    let kind = icmp_error_kind(d.v6, d.icmp_type)?;
    Some((kind, decode_quoted(payload)))
}

/// The protocol of a quoted packet that is in no flow.
pub fn quoted_protocol(q: &Decoded, payload: &[u8]) -> Proto {
    match q.l4 {
        L4::Udp => quoted_udp_payload(payload)
            .and_then(|pl| classify_udp_payload(q, pl))
            .unwrap_or(Proto::OtherUdp),
        L4::Tcp => Proto::OtherTcp,
        _ if matches!(q.proto, 1 | 58) => Proto::Icmp,
        _ if q.proto == super::ospf::IP_PROTO => Proto::Ospf,
        _ => Proto::OtherIp,
    }
}
