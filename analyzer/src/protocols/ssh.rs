//! SSH (RFC 4253 §4.2): a connection is SSH when either side opens with its identification
//! string `SSH-protoversion-softwareversion`. The banner is all spanwatch reads; the rest is
//! encrypted.

use super::{no_session, Pkt, Protocol, Verdict};
use crate::decode::L4;
use metrics::Proto;

pub static PROTOCOL: Protocol = Protocol {
    proto: Proto::Ssh,
    l4: L4::Tcp,
    counts_itself: false,
    probe,
    start: no_session,
};

fn probe(p: &Pkt<'_>, _memo: &mut u8) -> Verdict {
    let b = p.payload;
    //= https://www.rfc-editor.org/rfc/rfc4253#section-4.2
    //# SSH-protoversion-softwareversion SP comments CR LF
    if b.starts_with(b"SSH-1.") || b.starts_with(b"SSH-2.0-") || b.starts_with(b"SSH-1.99-") {
        return Verdict::Yes;
    }
    if b.len() < 8 && b"SSH-2.0-".starts_with(b) {
        return Verdict::Maybe;
    }
    Verdict::No
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Decoded;

    #[test]
    fn banners() {
        let d = Decoded::default();
        let mut m = 0;
        let p = |b: &'static [u8]| Pkt {
            ts: 0,
            number: 0,
            d: &d,
            payload: b,
            from_client: false,
            starts: [None, None],
        };
        assert_eq!(
            probe(&p(b"SSH-2.0-OpenSSH_9.2p1 Debian\r\n"), &mut m),
            Verdict::Yes
        );
        assert_eq!(probe(&p(b"SSH-"), &mut m), Verdict::Maybe);
        assert_eq!(probe(&p(b"220 ftp ready\r\n"), &mut m), Verdict::No);
    }
}
