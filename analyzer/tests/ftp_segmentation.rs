//! A cleartext FTP login must be found however the client's bytes are cut into TCP segments and
//! in whatever order the segments arrive: every split point, then random segmentations with
//! reordering and retransmission (proptest) — up to 9 segments, so that no more than the
//! reassembly buffer's 8 wait behind a hole (a longer wait is declared a gap: analyzer/src/stream.rs
//! tests that bound). Packets are real Ethernet/IPv4/TCP frames decoded by
//! the same code as a capture's.

use analyzer::batch::Batch;
use analyzer::decode::{decode, link};
use analyzer::protocols::Config;
use analyzer::worker::Worker;
use etherparse::PacketBuilder;
use metrics::{slot, Hub, LoginOutcome, Proto, Source};
use proptest::prelude::*;
use std::sync::Arc;

const CLIENT: [u8; 4] = [198, 18, 0, 1];
const SERVER: [u8; 4] = [198, 18, 0, 2];
const CPORT: u16 = 40000;
const SPORT: u16 = 2100; // not 21: recognised by content
const CISN: u32 = 1000;
const SISN: u32 = 5000;

struct Seg {
    from_client: bool,
    seq: u32,
    flags: u8, // 1 SYN, 2 ACK, 4 FIN
    data: Vec<u8>,
}

fn frame(s: &Seg) -> Vec<u8> {
    let (src, dst, sp, dp) = if s.from_client {
        (CLIENT, SERVER, CPORT, SPORT)
    } else {
        (SERVER, CLIENT, SPORT, CPORT)
    };
    let mut b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(src, dst, 64)
        .tcp(sp, dp, s.seq, 64240);
    if s.flags & 1 != 0 {
        b = b.syn();
    }
    if s.flags & 2 != 0 {
        b = b.ack(0);
    }
    if s.flags & 4 != 0 {
        b = b.fin();
    }
    let mut v = Vec::new();
    b.write(&mut v, &s.data).unwrap();
    v
}

/// Runs segments through a worker; returns (ftp sessions, accepted logins, rejected, unknown).
fn run(segs: &[Seg]) -> (u64, u64, u64, u64) {
    let hub = Hub::new();
    let mut w = Worker::new(
        1000,
        hub.register(),
        metrics::events::EventSink::disabled(),
        Arc::new(Config::default()),
        Source::Pcap,
    );
    let mut b = Batch::new();
    for (i, s) in segs.iter().enumerate() {
        let f = frame(s);
        let (d, payload) = decode(link::ETHERNET, &f).unwrap();
        let ts = 1_000_000_000 + i as i64 * 1000;
        b.push(ts, ts, f.len() as u32, i as u64 + 1, d, payload);
    }
    w.process(&b);
    w.finish_all();
    let c = hub.snapshot();
    (
        c.get(slot::sessions(Proto::Ftp, false)),
        c.get(slot::ftp_login(LoginOutcome::Accepted)),
        c.get(slot::ftp_login(LoginOutcome::Rejected)),
        c.get(slot::ftp_login(LoginOutcome::Unknown)),
    )
}

const GREETING: &[u8] = b"220 (vsFTPd 3.0.3)\r\n";
const COMMANDS: &[u8] = b"USER alice\r\nPASS not-a-real-one\r\n";
const REPLIES: &[u8] = b"331 Please specify the password.\r\n230 Login successful.\r\n";

/// Handshake, greeting, the client's commands cut at `cuts` and sent in `order`, then replies.
fn session(cuts: &[usize], order: &[usize], dup: Option<usize>) -> Vec<Seg> {
    let mut v = vec![
        Seg {
            from_client: true,
            seq: CISN,
            flags: 1,
            data: vec![],
        },
        Seg {
            from_client: false,
            seq: SISN,
            flags: 3,
            data: vec![],
        },
        Seg {
            from_client: true,
            seq: CISN + 1,
            flags: 2,
            data: vec![],
        },
        Seg {
            from_client: false,
            seq: SISN + 1,
            flags: 2,
            data: GREETING.to_vec(),
        },
    ];
    let mut bounds = vec![0];
    bounds.extend(
        cuts.iter()
            .copied()
            .filter(|&c| c > 0 && c < COMMANDS.len()),
    );
    bounds.push(COMMANDS.len());
    bounds.sort_unstable();
    bounds.dedup();
    let parts: Vec<(usize, usize)> = bounds.windows(2).map(|w| (w[0], w[1])).collect();
    let mut idx: Vec<usize> = order.iter().copied().filter(|&i| i < parts.len()).collect();
    for i in 0..parts.len() {
        if !idx.contains(&i) {
            idx.push(i);
        }
    }
    if let Some(d) = dup {
        idx.push(d % parts.len()); // a retransmission
    }
    for i in idx {
        let (a, b) = parts[i];
        v.push(Seg {
            from_client: true,
            seq: CISN + 1 + a as u32,
            flags: 2,
            data: COMMANDS[a..b].to_vec(),
        });
    }
    v.push(Seg {
        from_client: false,
        seq: SISN + 1 + GREETING.len() as u32,
        flags: 2,
        data: REPLIES.to_vec(),
    });
    v
}

#[test]
fn login_split_at_every_byte_boundary() {
    for k in 0..=COMMANDS.len() {
        assert_eq!(
            run(&session(&[k], &[0, 1], None)),
            (1, 1, 0, 0),
            "split at {k}"
        );
        // The two halves swapped: the later one waits in the out-of-order buffer.
        assert_eq!(
            run(&session(&[k], &[1, 0], None)),
            (1, 1, 0, 0),
            "split at {k}, reordered"
        );
    }
}

#[test]
fn rejected_login_and_no_reply() {
    let mut s = session(&[], &[], None);
    s.last_mut().unwrap().data = b"331 Password please.\r\n530 Login incorrect.\r\n".to_vec();
    assert_eq!(run(&s), (1, 0, 1, 0));
    s.pop();
    assert_eq!(run(&s), (1, 0, 0, 1));
}

proptest! {
    #[test]
    fn any_segmentation_and_order_finds_the_login(
        cuts in proptest::collection::vec(0usize..COMMANDS.len(), 0..9),
        order in proptest::collection::vec(0usize..13, 0..13),
        dup in proptest::option::of(0usize..13),
    ) {
        prop_assert_eq!(run(&session(&cuts, &order, dup)), (1, 1, 0, 0));
    }
}
