//! Protocol analyzers. Each protocol is one module here exposing a `Protocol`: a content probe
//! (ports are only hints) and, for protocols that need state, a `Session` built once the flow is
//! classified. Registering a protocol is one line in `PROTOCOLS` (16 at most). Probes run in that
//! order on the first payload packets of an unclassified flow; the first `Yes` wins.

pub mod bfd;
pub mod dns;
pub mod ftp;
pub mod http;
pub mod icmp;
pub mod mail;
pub mod ospf;
pub mod ssdp;
pub mod ssh;
pub mod tls;

use crate::decode::{Decoded, L4};
use metrics::events::EventSink;
use metrics::{slot, Counters, Proto, Source};
use std::sync::Arc;

/// The analyzers, in probe order (most specific first).
pub const PROTOCOLS: &[&Protocol] = &[
    &ftp::PROTOCOL,
    &tls::PROTOCOL,
    &http::PROTOCOL,
    &ssh::PROTOCOL,
    &mail::SMTP,
    &mail::IMAP,
    &mail::POP3,
    &dns::DNS_TCP,
    &bfd::PROTOCOL,
    &dns::MDNS,
    &dns::DNS_UDP,
    &ssdp::PROTOCOL,
    &ospf::PROTOCOL,
];

/// One packet as an analyzer sees it.
pub struct Pkt<'a> {
    pub ts: i64,
    /// Its number in its source, less `Env::number_base`.
    pub number: u64,
    pub d: &'a Decoded,
    pub payload: &'a [u8],
    /// Sent by the side that opened the flow (the client).
    pub from_client: bool,
    /// Where each direction's byte stream starts for a session built now ([server, client]): the
    /// sequence number after the SYN, or after the bytes the probes already consumed; None when
    /// the capture began mid-connection.
    pub starts: [Option<u32>; 2],
}

impl Pkt<'_> {
    /// Reassemblers for a new session's two directions ([server→client, client→server]).
    pub fn reassemblers(&self) -> [crate::stream::Reassembler; 2] {
        [
            crate::stream::Reassembler::starting_at(self.starts[0]),
            crate::stream::Reassembler::starting_at(self.starts[1]),
        ]
    }
}

/// Settings the analyzers need.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// Put FTP user names in events in clear (`--log-usernames`); otherwise a keyed hash.
    pub log_usernames: bool,
    /// Key for user-name pseudonyms.
    pub pseudonym_key: [u8; 32],
}

/// Per-worker state shared by every flow of the worker.
#[derive(Default)]
pub struct Shared {
    pub ftp: ftp::Expectations,
    pub ftp_bruteforce: ftp::BruteForce,
    pub bfd: bfd::Pairs,
    pub ospf: ospf::Neighbours,
}

/// What an analyzer may touch besides its own flow: the worker's counters, event sink, settings
/// and per-worker shared state, held together so that one pointer hands them to an analyzer.
pub struct Env {
    pub c: Counters,
    pub events: EventSink,
    pub source: Source,
    pub cfg: Arc<Config>,
    pub shared: Shared,
    /// What the packets' numbers count from: a packet's number in its source is
    /// `number_base + Pkt::number` (the parallel reader numbers a block's packets from 0).
    pub number_base: u64,
}

impl Env {
    pub fn session(&mut self, p: Proto, v6: bool) {
        self.c.inc(slot::sessions(p, v6));
    }
    pub fn event(&mut self, ev: serde_json::Value) {
        if !self.events.send(ev) {
            self.c.inc(slot::EVENTS_DROPPED);
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Yes,
    No,
    Maybe,
}

pub enum Next {
    Continue,
    /// Nothing more to learn from this flow: stop calling the session.
    Done,
    /// Not this protocol after all (a tentative start): classify the flow again from here.
    Reject,
}

pub trait Session: Send {
    /// Called for every later packet of the flow that carries payload.
    fn on_packet(&mut self, p: &Pkt<'_>, env: &mut Env) -> Next;
    /// Called once: when the flow ends (FIN/RST, timeout, eviction, end of input), or as soon as
    /// the session is done (`Next::Done`: it takes no more packets), whichever comes first.
    fn on_end(&mut self, _ts: i64, _env: &mut Env) {}
    /// For a protocol that counts its own sessions: whether it did (if not, the flow ends as other).
    fn counted(&self) -> bool {
        true
    }
}

pub struct Protocol {
    pub proto: Proto,
    pub l4: L4,
    /// The module counts its own sessions (FTP decides ftp vs ftps; BFD and OSPF count router pairs).
    pub counts_itself: bool,
    /// Looks at one payload packet; `memo` is this probe's private byte for this flow.
    pub probe: fn(&Pkt<'_>, &mut u8) -> Verdict,
    /// Builds the session for a classified flow (None: nothing to follow).
    pub start: fn(&Pkt<'_>, &mut Env) -> Option<Box<dyn Session>>,
}

pub fn no_session(_: &Pkt<'_>, _: &mut Env) -> Option<Box<dyn Session>> {
    None
}

/// Which protocol a payload looks like, for content that is not part of a flow (an ICMP quote).
pub fn classify_udp_payload(d: &Decoded, payload: &[u8]) -> Option<Proto> {
    let p = Pkt {
        ts: 0,
        number: 0,
        d,
        payload,
        from_client: true,
        starts: [None, None],
    };
    PROTOCOLS
        .iter()
        .filter(|pr| pr.l4 == L4::Udp)
        .find_map(|pr| {
            let mut memo = 0;
            ((pr.probe)(&p, &mut memo) == Verdict::Yes).then_some(pr.proto)
        })
}

/// Case-insensitive prefix test on bytes.
pub fn starts_with_ci(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}
