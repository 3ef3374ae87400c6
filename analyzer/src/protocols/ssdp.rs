//! SSDP (UPnP Device Architecture 2.0 §1): HTTP over UDP, multicast to 239.255.255.250 /
//! ff02::c port 1900. Each datagram that holds a request (M-SEARCH, NOTIFY) is one HTTP request
//! (`http_requests_total{kind="other"}`), as tshark counts them.

use super::{Env, Next, Pkt, Protocol, Session, Verdict};
use crate::decode::L4;
use metrics::{slot, HttpKind, Proto};

pub static PROTOCOL: Protocol = Protocol {
    proto: Proto::Ssdp,
    l4: L4::Udp,
    counts_itself: false,
    probe,
    start,
};

fn is_request(b: &[u8]) -> bool {
    (b.starts_with(b"M-SEARCH * HTTP/1.")
        || b.starts_with(b"NOTIFY * HTTP/1.")
        || b.starts_with(b"SUBSCRIBE "))
        && b.len() > 18
}

/// Inlined into the classifier: every accepted start is upper-case ASCII, so most payloads are
/// settled by their first byte here and only the rest pay for a call.
#[inline]
fn probe(p: &Pkt<'_>, _memo: &mut u8) -> Verdict {
    if !matches!(p.payload.first(), Some(b'M' | b'N' | b'S' | b'H')) {
        return Verdict::No;
    }
    probe_text(p)
}

#[inline(never)]
fn probe_text(p: &Pkt<'_>) -> Verdict {
    let b = p.payload;
    if is_request(b) || (p.d.has_port(1900) && b.starts_with(b"HTTP/1.1 200")) {
        Verdict::Yes
    } else {
        Verdict::No
    }
}

fn start(_p: &Pkt<'_>, _e: &mut Env) -> Option<Box<dyn Session>> {
    Some(Box::new(Ssdp))
}

struct Ssdp;

impl Session for Ssdp {
    fn on_packet(&mut self, p: &Pkt<'_>, env: &mut Env) -> Next {
        if is_request(p.payload) {
            env.c.inc(slot::http_request(HttpKind::Other));
        }
        Next::Continue
    }
}
