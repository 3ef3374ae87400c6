//! OSPFv2 (RFC 2328) and OSPFv3 (RFC 5340), IP protocol 89: packets counted by version and type;
//! an adjacency is one `ospf` session, counted when each router's Hello lists the other (two-way,
//! RFC 2328 §10.5). Hellos go to multicast, so every OSPF packet is sent to one worker (the shard
//! hash of IP protocol 89 is fixed in `decode`) where the neighbour table lives.

use super::{Env, Next, Pkt, Protocol, Session, Verdict};
use crate::decode::L4;
use hashbrown::HashSet;
use metrics::{slot, OspfType, Proto};

pub static PROTOCOL: Protocol = Protocol {
    proto: Proto::Ospf,
    l4: L4::OtherIp,
    counts_itself: true,
    probe,
    start,
};

pub const IP_PROTO: u8 = 89;

/// (version 3?, type, router id, the neighbours a Hello lists).
pub fn parse(b: &[u8]) -> Option<(bool, OspfType, u32)> {
    //= https://www.rfc-editor.org/rfc/rfc2328#appendix-A.3.1
    //# Version # | Type | Packet length | Router ID | Area ID | Checksum | AuType | Authentication
    if b.len() < 16 {
        return None;
    }
    let v3 = match b[0] {
        2 => false,
        3 => true,
        _ => return None,
    };
    let t = match b[1] {
        1 => OspfType::Hello,
        2 => OspfType::DbDescription,
        3 => OspfType::LsRequest,
        4 => OspfType::LsUpdate,
        5 => OspfType::LsAck,
        _ => return None,
    };
    let len = u16::from_be_bytes([b[2], b[3]]) as usize;
    let hdr = if v3 { 16 } else { 24 };
    if len < hdr || len > b.len() {
        return None;
    }
    Some((v3, t, u32::from_be_bytes([b[4], b[5], b[6], b[7]])))
}

/// The neighbour router ids a Hello lists.
fn hello_neighbours(b: &[u8], v3: bool) -> impl Iterator<Item = u32> + '_ {
    // v2: 24-byte header + 20 bytes (mask, interval, options, priority, dead interval, DR, BDR).
    // v3 (RFC 5340 A.3.2): 16-byte header + 20 bytes (interface id, priority, options, intervals, DR, BDR).
    let start = if v3 { 36 } else { 44 };
    let len = (u16::from_be_bytes([b[2], b[3]]) as usize).min(b.len());
    b.get(start..len)
        .unwrap_or(&[])
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
}

fn probe(p: &Pkt<'_>, _memo: &mut u8) -> Verdict {
    if p.d.proto == IP_PROTO && parse(p.payload).is_some() {
        Verdict::Yes
    } else {
        Verdict::No
    }
}

fn start(_p: &Pkt<'_>, _env: &mut Env) -> Option<Box<dyn Session>> {
    Some(Box::new(OspfFlow))
}

struct OspfFlow;

impl Session for OspfFlow {
    fn on_packet(&mut self, p: &Pkt<'_>, env: &mut Env) -> Next {
        let Some((v3, t, rid)) = parse(p.payload) else {
            return Next::Continue;
        };
        env.c.inc(slot::ospf_packets(v3, t));
        if t == OspfType::Hello {
            let n = &mut env.shared.ospf;
            for nb in hello_neighbours(p.payload, v3) {
                if n.sees.len() < MAX_ENTRIES {
                    n.sees.insert((v3, rid, nb));
                }
                let key = (v3, rid.min(nb), rid.max(nb));
                if n.sees.contains(&(v3, nb, rid))
                    && !n.counted.contains(&key)
                    && n.counted.len() < MAX_ENTRIES
                {
                    n.counted.insert(key);
                    env.c.inc(slot::sessions(Proto::Ospf, p.d.v6));
                }
            }
        }
        Next::Continue
    }
}

const MAX_ENTRIES: usize = 65_536;

/// Who lists whom in Hellos, and the adjacencies already counted.
#[derive(Default)]
pub struct Neighbours {
    sees: HashSet<(bool, u32, u32)>,
    counted: HashSet<(bool, u32, u32)>,
}
