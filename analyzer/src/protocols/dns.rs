//! DNS (RFC 1035) over UDP and TCP port 53, and multicast DNS (RFC 6762) on UDP 5353 — multicast
//! to 224.0.0.251 / ff02::fb and unicast alike. The port is a hint; the payload must parse as a
//! DNS message (crate `simple-dns`) for the flow to count.

use super::{no_session, Pkt, Protocol, Verdict};
use crate::decode::L4;
use metrics::Proto;

pub static DNS_UDP: Protocol = Protocol {
    proto: Proto::Dns,
    l4: L4::Udp,
    counts_itself: false,
    probe: probe_udp,
    start: no_session,
};
pub static DNS_TCP: Protocol = Protocol {
    proto: Proto::Dns,
    l4: L4::Tcp,
    counts_itself: false,
    probe: probe_tcp,
    start: no_session,
};
//= https://www.rfc-editor.org/rfc/rfc6762#section-3
//# uses UDP port 5353 ... to the IPv4 address 224.0.0.251 or its IPv6 equivalent FF02::FB
pub static MDNS: Protocol = Protocol {
    proto: Proto::Mdns,
    l4: L4::Udp,
    counts_itself: false,
    probe: probe_mdns,
    start: no_session,
};

/// True when `b` is a DNS message: a sane header and a body that parses.
pub fn is_dns_message(b: &[u8]) -> bool {
    if b.len() < 12 {
        return false;
    }
    let opcode = (b[2] >> 3) & 0x0f;
    if opcode > 6 || opcode == 3 {
        return false;
    }
    simple_dns::Packet::parse(b).is_ok()
}

fn probe_udp(p: &Pkt<'_>, _memo: &mut u8) -> Verdict {
    if (p.d.sport == 53 || p.d.dport == 53) && is_dns_message(p.payload) {
        Verdict::Yes
    } else {
        Verdict::No
    }
}

fn probe_mdns(p: &Pkt<'_>, _memo: &mut u8) -> Verdict {
    if (p.d.sport == 5353 || p.d.dport == 5353) && is_dns_message(p.payload) {
        Verdict::Yes
    } else {
        Verdict::No
    }
}

fn probe_tcp(p: &Pkt<'_>, _memo: &mut u8) -> Verdict {
    if p.d.sport != 53 && p.d.dport != 53 {
        return Verdict::No;
    }
    //= https://www.rfc-editor.org/rfc/rfc1035#section-4.2.2
    //# The message is prefixed with a two byte length field
    let b = p.payload;
    if b.len() < 2 {
        return Verdict::Maybe;
    }
    let len = u16::from_be_bytes([b[0], b[1]]) as usize;
    if len < 12 {
        return Verdict::No;
    }
    match b.get(2..2 + len) {
        Some(msg) if is_dns_message(msg) => Verdict::Yes,
        Some(_) => Verdict::No,
        // Split over segments: judge by the header alone.
        None if b.len() >= 14 && ((b[4] >> 3) & 0x0f) <= 6 => Verdict::Yes,
        None => Verdict::Maybe,
    }
}
