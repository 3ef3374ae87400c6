//! TLS (RFC 8446, RFC 5246) on any TCP port, and inside FTP after AUTH TLS. Records are followed
//! per direction across segments; handshake messages are reassembled across records (only the
//! hellos are kept, bounded; every other message is skipped by length). Counted: ClientHellos,
//! resumption as DESIGN.md §5 defines it (session id echo, ticket, TLS 1.3 `pre_shared_key`), and
//! stapled OCSP (a CertificateStatus message). Hello bodies are parsed with `tls-parser`.

use super::{Env, Next, Pkt, Protocol, Session, Verdict};
use crate::decode::L4;
use crate::stream::{Chunk, Reassembler};
use metrics::{slot, Proto, ResumeMethod, StreamIssue};
use tls_parser::TlsMessageHandshake;

pub static PROTOCOL: Protocol = Protocol {
    proto: Proto::Tls,
    l4: L4::Tcp,
    counts_itself: false,
    probe,
    start,
};

/// A TLS record header opening a handshake: type 22, version 3.x, a plausible length, then a
/// ClientHello (from the client) or ServerHello (from the server).
pub fn looks_like_tls(b: &[u8], from_client: bool) -> Verdict {
    if b.is_empty() {
        return Verdict::Maybe;
    }
    if b[0] != 22 {
        return Verdict::No;
    }
    if b.len() < 6 {
        return if b.len() < 2 || b[1] == 3 {
            Verdict::Maybe
        } else {
            Verdict::No
        };
    }
    let len = u16::from_be_bytes([b[3], b[4]]);
    let want = if from_client { 1 } else { 2 };
    if b[1] == 3 && b[2] <= 4 && (4..=18432).contains(&len) && b[5] == want {
        Verdict::Yes
    } else {
        Verdict::No
    }
}

fn probe(p: &Pkt<'_>, _memo: &mut u8) -> Verdict {
    looks_like_tls(p.payload, p.from_client)
}

fn start(p: &Pkt<'_>, _env: &mut Env) -> Option<Box<dyn Session>> {
    Some(Box::new(TlsSession {
        dirs: p.reassemblers(),
        tls: Tls::default(),
    }))
}

struct TlsSession {
    dirs: [Reassembler; 2],
    tls: Tls,
}

impl Session for TlsSession {
    fn on_packet(&mut self, p: &Pkt<'_>, env: &mut Env) -> Next {
        let i = p.from_client as usize;
        let tls = &mut self.tls;
        self.dirs[i].push(p.d.seq, false, p.payload, |c| match c {
            Chunk::Data(d) => tls.feed(p.from_client, d, env),
            Chunk::Gap => {
                env.c.inc(slot::stream_issue(StreamIssue::Gap));
                tls.lost(p.from_client);
            }
        });
        if self.tls.finished() {
            Next::Done
        } else {
            Next::Continue
        }
    }
    fn on_end(&mut self, _ts: i64, env: &mut Env) {
        self.tls.end(env);
    }
}

const MAX_HELLO: usize = 64 * 1024;

/// A ClientHello's legacy session id (RFC 5246 §7.4.1.2: at most 32 bytes), kept without allocating.
#[derive(Clone, Copy)]
struct SessionId {
    len: u8,
    bytes: [u8; 32],
}

impl SessionId {
    fn new(id: &[u8]) -> Option<Self> {
        if id.is_empty() || id.len() > 32 {
            return None;
        }
        let mut bytes = [0; 32];
        bytes[..id.len()].copy_from_slice(id);
        Some(SessionId {
            len: id.len() as u8,
            bytes,
        })
    }
    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

/// One direction's record and handshake-message cursor.
#[derive(Default)]
struct Dir {
    hdr: [u8; 5],
    hdr_len: u8,
    /// Bytes left in the current record, and its content type.
    rec_left: u16,
    rec_type: u8,
    /// Handshake message being assembled: header bytes, then (for hellos) the body.
    msg_hdr: [u8; 4],
    msg_hdr_len: u8,
    msg_left: u32,
    msg: Vec<u8>,
    keep: bool,
    /// After ChangeCipherSpec (or once lost), the handshake is encrypted or unknowable.
    encrypted: bool,
}

/// The TLS handshake state of one connection, fed with in-order bytes of each direction.
#[derive(Default)]
pub struct Tls {
    dirs: [Dir; 2],
    client_hellos: u8,
    ch_session_id: Option<SessionId>,
    ch_ticket: bool,
    server_hello: bool,
    tls13: bool,
    server_certificate: bool,
    server_ccs: bool,
    resumed: bool,
    stapled: bool,
}

impl Tls {
    /// True once nothing more can be learnt (both directions encrypted).
    pub fn finished(&self) -> bool {
        self.dirs[0].encrypted && self.dirs[1].encrypted
    }

    pub fn lost(&mut self, from_client: bool) {
        self.dirs[from_client as usize].encrypted = true;
    }

    pub fn feed(&mut self, from_client: bool, mut b: &[u8], env: &mut Env) {
        let i = from_client as usize;
        while !b.is_empty() && !self.dirs[i].encrypted {
            let d = &mut self.dirs[i];
            if d.rec_left == 0 {
                if !gather(&mut d.hdr, &mut d.hdr_len, &mut b) {
                    return;
                }
                d.hdr_len = 0;
                let (t, major, len) =
                    (d.hdr[0], d.hdr[1], u16::from_be_bytes([d.hdr[3], d.hdr[4]]));
                if !(20..=24).contains(&t) || major != 3 || len > 18432 {
                    // Not TLS records any more (or we lost sync): stop looking at this direction.
                    d.encrypted = true;
                    return;
                }
                d.rec_type = t;
                d.rec_left = len;
                if len == 0 {
                    continue;
                }
            }
            let k = (d.rec_left as usize).min(b.len());
            let (chunk, rest) = b.split_at(k);
            b = rest;
            d.rec_left -= k as u16;
            let record_done = d.rec_left == 0;
            match d.rec_type {
                22 => self.handshake_bytes(i, chunk, env),
                //= https://www.rfc-editor.org/rfc/rfc5246#section-7.1
                //# The ChangeCipherSpec message is sent ... to notify the receiving party that
                //# subsequent records will be protected under the newly negotiated CipherSpec
                20 if record_done => self.change_cipher_spec(from_client, env),
                23 => {
                    // Application data: the handshake is over for this direction.
                    self.dirs[i].encrypted = true;
                }
                _ => {}
            }
        }
    }

    fn change_cipher_spec(&mut self, from_client: bool, env: &mut Env) {
        if !from_client && !self.tls13 {
            self.server_ccs = true;
            //= DESIGN.md §5: the client offered a ticket and the server answered with
            //= ChangeCipherSpec without a Certificate.
            if self.server_hello && self.ch_ticket && !self.server_certificate && !self.resumed {
                self.resumed = true;
                env.c.inc(slot::tls_resumed(ResumeMethod::Ticket));
            }
        }
        // TLS 1.3 middlebox-compatibility CCS changes nothing; the record layer already is encrypted.
        if !self.tls13 {
            self.dirs[from_client as usize].encrypted = true;
        }
    }

    fn handshake_bytes(&mut self, i: usize, mut b: &[u8], env: &mut Env) {
        while !b.is_empty() {
            let d = &mut self.dirs[i];
            if d.msg_left == 0 && d.msg_hdr_len < 4 {
                if !gather(&mut d.msg_hdr, &mut d.msg_hdr_len, &mut b) {
                    return;
                }
                let t = d.msg_hdr[0];
                let len = u32::from_be_bytes([0, d.msg_hdr[1], d.msg_hdr[2], d.msg_hdr[3]]);
                d.msg_left = len;
                d.keep = matches!(t, 1 | 2) && (len as usize) <= MAX_HELLO;
                d.msg.clear();
                if len == 0 {
                    d.msg_hdr_len = 0;
                    self.message(i, t, &[], env);
                    continue;
                }
            }
            let d = &mut self.dirs[i];
            let k = (d.msg_left as usize).min(b.len());
            let (part, rest) = b.split_at(k);
            b = rest;
            // A message that lies whole in this chunk (the usual case) is read where it lies;
            // only one split across records or segments is gathered.
            let whole = d.msg.is_empty() && k as u32 == d.msg_left;
            if d.keep && !whole {
                if d.msg.is_empty() {
                    d.msg.reserve_exact(d.msg_left as usize);
                }
                d.msg.extend_from_slice(part);
            }
            d.msg_left -= k as u32;
            if d.msg_left == 0 {
                d.msg_hdr_len = 0;
                let t = d.msg_hdr[0];
                if whole {
                    self.message(i, t, part, env);
                } else {
                    let body = std::mem::take(&mut self.dirs[i].msg);
                    self.message(i, t, &body, env);
                    self.dirs[i].msg = body;
                }
            }
        }
    }

    /// A whole handshake message of type `t` arrived from direction `i` (1: client).
    fn message(&mut self, i: usize, t: u8, body: &[u8], env: &mut Env) {
        let from_client = i == 1;
        match (from_client, t) {
            (true, 1) if self.dirs[i].keep => self.client_hello(body, env),
            (false, 2) if self.dirs[i].keep => self.server_hello(body, env),
            (true, 1) => self.client_hello(&[], env),
            (false, 2) => self.server_hello(&[], env),
            (false, 11) => self.server_certificate = true,
            //= https://www.rfc-editor.org/rfc/rfc6066#section-8
            //# the server MUST send the "CertificateStatus" message immediately after the "Certificate" message
            (false, 22) if !self.stapled => {
                self.stapled = true;
                env.c.inc(slot::OCSP_STAPLED);
            }
            _ => {}
        }
    }

    fn client_hello(&mut self, body: &[u8], env: &mut Env) {
        env.c.inc(slot::TLS_HANDSHAKES);
        self.client_hellos = self.client_hellos.saturating_add(1);
        if let Ok((_, ch)) = tls_parser::parse_tls_handshake_client_hello(body) {
            self.ch_session_id = ch.session_id.and_then(SessionId::new);
            //= https://www.rfc-editor.org/rfc/rfc5077#section-3.1
            //# the client includes the ticket in the SessionTicket extension within the ClientHello
            self.ch_ticket =
                extensions(ch.ext.unwrap_or(&[])).any(|(t, v)| t == 35 && !v.is_empty());
        }
    }

    fn server_hello(&mut self, body: &[u8], env: &mut Env) {
        let Ok((_, hs)) = tls_parser::parse_tls_handshake_msg_server_hello(body) else {
            return;
        };
        let (random, session_id, ext) = match hs {
            TlsMessageHandshake::ServerHello(sh) => (sh.random, sh.session_id, sh.ext),
            _ => return,
        };
        //= https://www.rfc-editor.org/rfc/rfc8446#section-4.1.3
        //# For reasons of backward compatibility with middleboxes ... the HelloRetryRequest message
        //# uses the same structure as the ServerHello, but with Random set to the special value
        if random == HRR_RANDOM {
            // One session: a second ClientHello follows, possibly after a compatibility CCS.
            self.tls13 = true;
            return;
        }
        self.server_hello = true;
        let exts = || extensions(ext.unwrap_or(&[]));
        self.tls13 = exts().any(|(t, v)| t == 43 && v == [3, 4]);
        if self.resumed {
            return;
        }
        if self.tls13 {
            //= https://www.rfc-editor.org/rfc/rfc8446#section-4.2.11
            //# the server sends a "pre_shared_key" extension indicating the selected identity
            if exts().any(|(t, _)| t == 41) {
                self.resumed = true;
                env.c.inc(slot::tls_resumed(ResumeMethod::Psk));
            }
            return;
        }
        // TLS <= 1.2: the ServerHello echoes the non-empty session id the client offered.
        if let (Some(sid), Some(ch)) = (session_id.filter(|s| !s.is_empty()), &self.ch_session_id) {
            if sid == ch.as_slice() {
                self.resumed = true;
                let m = if self.ch_ticket {
                    ResumeMethod::Ticket
                } else {
                    ResumeMethod::SessionId
                };
                env.c.inc(slot::tls_resumed(m));
            }
        }
    }

    pub fn end(&mut self, _env: &mut Env) {}
}

/// Walks TLS records in one direction; stops at the first byte that does not start a record.
#[derive(Default)]
pub struct RecordWalker {
    hdr: Vec<u8>,
    left: usize,
}

impl RecordWalker {
    /// How many leading bytes of `b` belong to TLS records.
    pub fn records(&mut self, b: &[u8]) -> usize {
        let mut i = 0;
        while i < b.len() {
            if self.left > 0 {
                let k = self.left.min(b.len() - i);
                self.left -= k;
                i += k;
                continue;
            }
            let k = (5 - self.hdr.len()).min(b.len() - i);
            let before = self.hdr.len();
            self.hdr.extend_from_slice(&b[i..i + k]);
            if !(20..=24).contains(&self.hdr[0]) || self.hdr.get(1).is_some_and(|&m| m != 3) {
                // Not a record: clear text from here (the header bytes held before were records).
                self.hdr.clear();
                return i.saturating_sub(before);
            }
            i += k;
            if self.hdr.len() == 5 {
                self.left = u16::from_be_bytes([self.hdr[3], self.hdr[4]]) as usize;
                self.hdr.clear();
            }
        }
        b.len()
    }
}

/// TLS that starts inside another protocol (FTP AUTH TLS, SMTP/IMAP/POP3 STARTTLS): records are
/// followed until a direction stops looking like TLS, which is where clear text resumes.
#[derive(Default)]
pub struct Upgrade {
    tls: Tls,
    walkers: [RecordWalker; 2],
}

impl Upgrade {
    /// Feeds in-order bytes of one direction; returns how many of them were TLS records.
    pub fn feed(&mut self, from_client: bool, data: &[u8], env: &mut Env) -> usize {
        let n = self.walkers[from_client as usize].records(data);
        self.tls.feed(from_client, &data[..n], env);
        n
    }
}

const HRR_RANDOM: [u8; 32] = [
    0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
    0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
];

/// Moves bytes from the front of `b` into the fixed-size header `hdr`, of which `have` bytes are
/// already there (a header split across segments); true once it is complete.
#[inline]
fn gather<const N: usize>(hdr: &mut [u8; N], have: &mut u8, b: &mut &[u8]) -> bool {
    if *have == 0 && b.len() >= N {
        // The usual case: the whole header is here.
        hdr.copy_from_slice(&b[..N]);
        *b = &b[N..];
        *have = N as u8;
        return true;
    }
    let k = (N - *have as usize).min(b.len());
    hdr[*have as usize..*have as usize + k].copy_from_slice(&b[..k]);
    *have += k as u8;
    *b = &b[k..];
    *have as usize == N
}

/// Iterates (type, data) over a raw extensions block.
fn extensions(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let t = u16::from_be_bytes([b[0], b[1]]);
        let l = u16::from_be_bytes([b[2], b[3]]) as usize;
        let v = b.get(4..4 + l)?;
        b = &b[4 + l..];
        Some((t, v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walker_finds_clear_text() {
        let mut w = RecordWalker::default();
        let mut b = vec![23, 3, 3, 0, 2, 0xaa, 0xbb];
        b.extend_from_slice(b"PASV\r\n");
        assert_eq!(w.records(&b), 7);
        let mut w = RecordWalker::default();
        assert_eq!(w.records(&[21, 3]), 2);
        assert_eq!(w.records(&[3, 0, 1, 9]), 4);
        assert_eq!(w.records(b"220 ok"), 0);
    }

    #[test]
    fn record_probe() {
        assert_eq!(
            looks_like_tls(&[22, 3, 1, 0, 200, 1, 0], true),
            Verdict::Yes
        );
        assert_eq!(
            looks_like_tls(&[22, 3, 3, 0, 90, 2, 0], false),
            Verdict::Yes
        );
        assert_eq!(looks_like_tls(b"GET / HTTP/1.1", true), Verdict::No);
        assert_eq!(looks_like_tls(&[22, 3], true), Verdict::Maybe);
    }

    #[test]
    fn extension_walk_is_bounded() {
        let raw = [0, 43, 0, 2, 3, 4, 0, 41, 0, 10, 1];
        let v: Vec<_> = extensions(&raw).collect();
        assert_eq!(v, vec![(43, &[3u8, 4][..])]);
    }
}
