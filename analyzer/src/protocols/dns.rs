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

/// True when `b` is a DNS message: a sane header and a body that `simple-dns` parses, or, for
/// record types or options it does not know (SSHFP, TSIG, …), a question section that walks
/// cleanly (RFC 1035 §4.1.2) and counts that fit the length.
pub fn is_dns_message(b: &[u8]) -> bool {
    if b.len() < 12 {
        return false;
    }
    //= https://www.rfc-editor.org/rfc/rfc1035#section-4.1.1
    //# OPCODE 0 a standard query, 1 an inverse query, 2 a server status request; (RFC 1996: 4
    //# NOTIFY, RFC 2136: 5 UPDATE, RFC 8490: 6 DSO)
    let opcode = (b[2] >> 3) & 0x0f;
    if opcode > 6 || opcode == 3 {
        return false;
    }
    let qd = u16::from_be_bytes([b[4], b[5]]) as usize;
    let records = qd
        + [6, 8, 10]
            .iter()
            .map(|&i| u16::from_be_bytes([b[i], b[i + 1]]) as usize)
            .sum::<usize>();
    // Each question takes at least 5 bytes, each record at least 11.
    if qd > 64 || qd * 5 + (records - qd) * 11 > b.len() - 12 {
        return false;
    }
    // The walk is cheap and settles nearly every real message; the full parse (which allocates)
    // runs only where it does not.
    (qd >= 1 && questions_walk(&b[12..], qd)) || simple_dns::Packet::parse(b).is_ok()
}

fn questions_walk(mut b: &[u8], n: usize) -> bool {
    for _ in 0..n {
        let mut name_len = 0usize;
        loop {
            let Some(&l) = b.first() else { return false };
            match l {
                0 => {
                    b = &b[1..];
                    break;
                }
                1..=63 => {
                    name_len += l as usize + 1;
                    if name_len > 255 || b.len() < 1 + l as usize {
                        return false;
                    }
                    b = &b[1 + l as usize..];
                }
                0xc0..=0xff => {
                    if b.len() < 2 {
                        return false;
                    }
                    b = &b[2..];
                    break;
                }
                _ => return false,
            }
        }
        if b.len() < 4 {
            return false;
        }
        b = &b[4..];
    }
    true
}

fn probe_udp(p: &Pkt<'_>, _memo: &mut u8) -> Verdict {
    if p.d.has_port(53) && is_dns_message(p.payload) {
        Verdict::Yes
    } else {
        Verdict::No
    }
}

fn probe_mdns(p: &Pkt<'_>, _memo: &mut u8) -> Verdict {
    if p.d.has_port(5353) && is_dns_message(p.payload) {
        Verdict::Yes
    } else {
        Verdict::No
    }
}

fn probe_tcp(p: &Pkt<'_>, _memo: &mut u8) -> Verdict {
    if !p.d.has_port(53) {
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
