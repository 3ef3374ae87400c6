//! SMTP (RFC 5321), IMAP (RFC 9051) and POP3 (RFC 1939), recognised by their greetings and
//! commands, followed only as far as STARTTLS (RFC 3207, RFC 9051 §6.2.1) or STLS (RFC 2595 §4):
//! once the server accepts, the rest of the connection is TLS and goes to the TLS analyzer
//! (counted as a `tls` session too). Nothing else of the mail dialogue is kept.

use super::{starts_with_ci, tls, Env, Next, Pkt, Protocol, Session, Verdict};
use crate::decode::L4;
use crate::stream::{Chunk, LineBuf, Reassembler};
use metrics::{slot, Proto, StreamIssue};

pub static SMTP: Protocol = Protocol {
    proto: Proto::Smtp,
    l4: L4::Tcp,
    counts_itself: false,
    probe: probe_smtp,
    start: start_smtp,
};
pub static IMAP: Protocol = Protocol {
    proto: Proto::Imap,
    l4: L4::Tcp,
    counts_itself: false,
    probe: probe_imap,
    start: start_imap,
};
pub static POP3: Protocol = Protocol {
    proto: Proto::Pop3,
    l4: L4::Tcp,
    counts_itself: false,
    probe: probe_pop3,
    start: start_pop3,
};

const GREETED: u8 = 1;

fn first_line(b: &[u8]) -> &[u8] {
    &b[..memchr::memchr(b'\n', b).unwrap_or(b.len())]
}

fn contains_ci(h: &[u8], n: &[u8]) -> bool {
    h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

fn probe_smtp(p: &Pkt<'_>, memo: &mut u8) -> Verdict {
    let b = p.payload;
    if p.from_client {
        //= https://www.rfc-editor.org/rfc/rfc5321#section-4.1.1.1
        //# ehlo = "EHLO" SP ( Domain / address-literal ) CRLF
        if starts_with_ci(b, b"EHLO ") || starts_with_ci(b, b"HELO ") {
            return Verdict::Yes;
        }
        return if *memo & GREETED != 0 {
            Verdict::Maybe
        } else {
            Verdict::No
        };
    }
    if b.starts_with(b"220") && matches!(b.get(3), Some(b' ') | Some(b'-')) {
        *memo |= GREETED;
        return if contains_ci(first_line(b), b"SMTP") {
            Verdict::Yes
        } else {
            Verdict::Maybe
        };
    }
    if *memo & GREETED != 0 {
        Verdict::Maybe
    } else {
        Verdict::No
    }
}

fn probe_imap(p: &Pkt<'_>, _memo: &mut u8) -> Verdict {
    //= https://www.rfc-editor.org/rfc/rfc9051#section-7.1.1
    //# S: * OK IMAP4rev2 server ready
    if !p.from_client && (p.payload.starts_with(b"* OK") || p.payload.starts_with(b"* PREAUTH")) {
        Verdict::Yes
    } else {
        Verdict::No
    }
}

fn probe_pop3(p: &Pkt<'_>, memo: &mut u8) -> Verdict {
    //= https://www.rfc-editor.org/rfc/rfc1939#section-4
    //# the POP3 server issues a one line greeting ... +OK POP3 server ready
    if !p.from_client {
        if p.payload.starts_with(b"+OK") {
            *memo |= GREETED;
            return if contains_ci(first_line(p.payload), b"POP") {
                Verdict::Yes
            } else {
                Verdict::Maybe
            };
        }
        return Verdict::No;
    }
    if starts_with_ci(p.payload, b"CAPA")
        || starts_with_ci(p.payload, b"STLS")
        || starts_with_ci(p.payload, b"APOP ")
    {
        return Verdict::Yes;
    }
    if *memo & GREETED != 0
        && (starts_with_ci(p.payload, b"USER ") || starts_with_ci(p.payload, b"AUTH"))
    {
        return Verdict::Yes;
    }
    Verdict::No
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Smtp,
    Imap,
    Pop3,
}

fn start_smtp(p: &Pkt<'_>, _e: &mut Env) -> Option<Box<dyn Session>> {
    Some(Box::new(Mail::new(Kind::Smtp, p)))
}
fn start_imap(p: &Pkt<'_>, _e: &mut Env) -> Option<Box<dyn Session>> {
    Some(Box::new(Mail::new(Kind::Imap, p)))
}
fn start_pop3(p: &Pkt<'_>, _e: &mut Env) -> Option<Box<dyn Session>> {
    Some(Box::new(Mail::new(Kind::Pop3, p)))
}

struct Mail {
    dirs: [Reassembler; 2],
    inner: Inner,
}

struct Inner {
    kind: Kind,
    lines: [LineBuf; 2],
    /// The IMAP tag of a pending STARTTLS, or true for SMTP/POP3.
    pending: Option<Vec<u8>>,
    tls: Option<tls::Upgrade>,
}

impl Mail {
    fn new(kind: Kind, p: &Pkt<'_>) -> Self {
        Mail {
            dirs: p.reassemblers(),
            inner: Inner {
                kind,
                lines: [LineBuf::new(1024), LineBuf::new(1024)],
                pending: None,
                tls: None,
            },
        }
    }
}

impl Session for Mail {
    fn on_packet(&mut self, p: &Pkt<'_>, env: &mut Env) -> Next {
        let i = p.from_client as usize;
        let inner = &mut self.inner;
        self.dirs[i].push(p.d.seq, false, p.payload, |c| match c {
            Chunk::Data(d) => inner.bytes(p, i, d, env),
            Chunk::Gap => {
                env.c.inc(slot::stream_issue(StreamIssue::Gap));
                inner.lines[i].reset();
            }
        });
        Next::Continue
    }
}

impl Inner {
    fn bytes(&mut self, p: &Pkt<'_>, i: usize, data: &[u8], env: &mut Env) {
        if let Some(t) = self.tls.as_mut() {
            t.feed(i == 1, data, env);
            return;
        }
        let mut lines = std::mem::replace(&mut self.lines[i], LineBuf::new(0));
        let mut upgraded = false;
        lines.feed(data, |l| {
            if upgraded {
                return;
            }
            if i == 1 {
                self.command(l);
            } else if self.reply(l) {
                upgraded = true;
            }
        });
        self.lines[i] = lines;
        if upgraded {
            env.session(Proto::Tls, p.d.v6);
            self.tls = Some(tls::Upgrade::default());
        }
    }

    fn command(&mut self, l: &[u8]) {
        match self.kind {
            Kind::Smtp if l.eq_ignore_ascii_case(b"STARTTLS") => self.pending = Some(Vec::new()),
            Kind::Pop3 if l.eq_ignore_ascii_case(b"STLS") => self.pending = Some(Vec::new()),
            Kind::Imap => {
                let mut parts = l.splitn(2, |&c| c == b' ');
                let tag = parts.next().unwrap_or(b"");
                if parts
                    .next()
                    .is_some_and(|c| c.eq_ignore_ascii_case(b"STARTTLS"))
                    && tag.len() <= 32
                {
                    self.pending = Some(tag.to_vec());
                }
            }
            _ => {}
        }
    }

    /// True when this reply accepts a pending STARTTLS.
    fn reply(&mut self, l: &[u8]) -> bool {
        let Some(tag) = &self.pending else {
            return false;
        };
        let ok = match self.kind {
            //= https://www.rfc-editor.org/rfc/rfc3207#section-4
            //# 220 Ready to start TLS
            Kind::Smtp => l.starts_with(b"220 "),
            Kind::Pop3 => l.starts_with(b"+OK"),
            Kind::Imap => {
                l.len() > tag.len() + 3
                    && l.starts_with(tag)
                    && starts_with_ci(&l[tag.len() + 1..], b"OK")
            }
        };
        let done = match self.kind {
            Kind::Smtp => l.len() >= 4 && l[3] == b' ',
            Kind::Pop3 => true,
            Kind::Imap => l.starts_with(tag),
        };
        if done {
            self.pending = None;
        }
        ok
    }
}
