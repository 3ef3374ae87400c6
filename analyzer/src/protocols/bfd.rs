//! BFD (RFC 5880 control packets over UDP 3784 single-hop per RFC 5881, 4784 multihop per RFC 5883;
//! echo on 3785). A BFD session is a pair of routers: it is counted once, when control packets
//! have been seen from both sides, however many UDP source ports they use (RFC 5881 §4 picks a new
//! source port per session). Every change of a sender's State field is counted by the new state.
//! Authentication sections (simple password, keyed MD5, keyed SHA1) are length-checked, not verified.

use super::{Env, Next, Pkt, Protocol, Session, Verdict};
use crate::decode::L4;
use hashbrown::HashMap;
use metrics::{slot, BfdState, Proto};

pub static PROTOCOL: Protocol = Protocol {
    proto: Proto::Bfd,
    l4: L4::Udp,
    counts_itself: true,
    probe,
    start,
};

pub const CONTROL_PORT: u16 = 3784;
pub const ECHO_PORT: u16 = 3785;
pub const MULTIHOP_PORT: u16 = 4784;

/// A parsed BFD control packet (the fields spanwatch uses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Control {
    pub state: u8,
    pub my_disc: u32,
    pub your_disc: u32,
}

//= https://www.rfc-editor.org/rfc/rfc5880#section-4.1
//# |Vers |  Diag   |Sta|P|F|C|A|D|M|  Detect Mult  |    Length     |
//# |                       My Discriminator                        |
//# |                      Your Discriminator                       |
pub fn parse_control(b: &[u8]) -> Option<Control> {
    if b.len() < 24 || b[0] >> 5 != 1 {
        return None;
    }
    let len = b[3] as usize;
    let auth = b[1] & 0x04 != 0;
    if len < 24 || len > b.len() || (auth && len < 26) || (!auth && len != 24 && len > 24 + 28) {
        return None;
    }
    if auth {
        //= https://www.rfc-editor.org/rfc/rfc5880#section-4.2
        //# Auth Type, Auth Len: 1 simple password (4..19 bytes of password), 2/3 keyed MD5, 4/5 keyed SHA1
        let (t, alen) = (b[24], b[25] as usize);
        let ok = match t {
            1 => (4..=19).contains(&alen.saturating_sub(3)),
            2 | 3 => alen == 24,
            4 | 5 => alen == 28,
            _ => false,
        };
        if !ok || 24 + alen != len {
            return None;
        }
    }
    let my_disc = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
    if my_disc == 0 {
        //# My Discriminator ... MUST be nonzero
        return None;
    }
    Some(Control {
        state: b[1] >> 6,
        my_disc,
        your_disc: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
    })
}

/// Inlined into the classifier: the port checks settle most flows without a call.
#[inline]
fn probe(p: &Pkt<'_>, _memo: &mut u8) -> Verdict {
    let d = p.d;
    // Most flows have neither port near BFD's: one test of both ports first.
    let near = |port: u16| port.wrapping_sub(CONTROL_PORT) <= MULTIHOP_PORT - CONTROL_PORT;
    if !near(d.key.port_a()) && !near(d.key.port_b()) {
        return Verdict::No;
    }
    if d.has_port(ECHO_PORT) {
        return Verdict::Yes;
    }
    if (d.has_port(CONTROL_PORT) || d.has_port(MULTIHOP_PORT)) && parse_control(p.payload).is_some()
    {
        return Verdict::Yes;
    }
    Verdict::No
}

fn start(p: &Pkt<'_>, _env: &mut Env) -> Option<Box<dyn Session>> {
    Some(Box::new(BfdFlow {
        echo: p.d.has_port(ECHO_PORT),
    }))
}

struct BfdFlow {
    echo: bool,
}

impl Session for BfdFlow {
    fn on_packet(&mut self, p: &Pkt<'_>, env: &mut Env) -> Next {
        if self.echo {
            //= https://www.rfc-editor.org/rfc/rfc5881#section-4
            //# BFD Echo packets MUST be transmitted in UDP packets with destination UDP port 3785
            env.c.inc(slot::BFD_ECHO);
            return Next::Continue;
        }
        if let Some(c) = parse_control(p.payload) {
            let v6 = p.d.v6;
            let (lo, hi, dir) = if p.d.src() <= p.d.dst() {
                (p.d.src(), p.d.dst(), 0)
            } else {
                (p.d.dst(), p.d.src(), 1)
            };
            env.shared.bfd.control(lo, hi, dir, v6, c, &mut env.c);
        }
        Next::Continue
    }
}

#[derive(Default, Clone, Copy)]
struct Pair {
    seen: [bool; 2],
    state: [Option<u8>; 2],
    counted: bool,
}

/// BFD router pairs of one worker (bounded).
#[derive(Default)]
pub struct Pairs {
    map: HashMap<([u8; 16], [u8; 16]), Pair>,
}

const MAX_PAIRS: usize = 16_384;

impl Pairs {
    fn control(
        &mut self,
        lo: [u8; 16],
        hi: [u8; 16],
        dir: usize,
        v6: bool,
        c: Control,
        counters: &mut metrics::Counters,
    ) {
        if self.map.len() >= MAX_PAIRS && !self.map.contains_key(&(lo, hi)) {
            return;
        }
        let pair = self.map.entry((lo, hi)).or_default();
        pair.seen[dir] = true;
        if let Some(prev) = pair.state[dir] {
            if prev != c.state {
                counters.inc(slot::bfd_state_change(BfdState::ALL[c.state as usize & 3]));
            }
        }
        pair.state[dir] = Some(c.state);
        if !pair.counted && pair.seen[0] && pair.seen[1] {
            pair.counted = true;
            counters.inc(slot::sessions(Proto::Bfd, v6));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_packets() {
        let mut b = [0u8; 24];
        b[0] = 0x20;
        b[1] = 3 << 6;
        b[2] = 3;
        b[3] = 24;
        b[7] = 1;
        assert_eq!(parse_control(&b).map(|c| c.state), Some(3));
        b[0] = 0x40; // version 2
        assert_eq!(parse_control(&b), None);
        // Simple password auth: 24 + (3 + 5) bytes.
        let mut a = vec![0u8; 32];
        a[0] = 0x20;
        a[1] = 0x04;
        a[3] = 32;
        a[7] = 9;
        a[24] = 1;
        a[25] = 8;
        assert!(parse_control(&a).is_some());
    }
}
