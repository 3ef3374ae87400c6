//! FTP control connections (RFC 959) on any port, IPv4 and IPv6: cleartext logins, data channel
//! announcements (PASV, EPSV, PORT, EPRT — RFC 959 §4.1.2, RFC 2428), and FTPS (RFC 4217 AUTH TLS,
//! with a return to clear text after CCC). Data connections are matched to announcements through
//! the worker's expectation table; the shard hash uses the address pair, so a data connection
//! between the same two hosts always meets its control connection's worker.
//!
//! The password never leaves this module: a PASS line is recognised by its verb and its argument
//! is neither copied, stored, measured nor logged. The user name leaves only in the event log, in
//! clear with `--log-usernames`, otherwise as a keyed hash.

use super::{starts_with_ci, tls, Env, Next, Pkt, Protocol, Session, Verdict};
use crate::decode::{Decoded, L4};
use crate::stream::{Chunk, LineBuf, Reassembler};
use hashbrown::HashMap;
use metrics::{slot, DataMode, LoginOutcome, Proto, StreamIssue};
use serde_json::json;
use std::net::IpAddr;

pub static PROTOCOL: Protocol = Protocol {
    proto: Proto::Ftp,
    l4: L4::Tcp,
    counts_itself: true,
    probe,
    start,
};

/// Longest control line kept (RFC 959 sets no limit; real commands and replies are far shorter).
pub const MAX_LINE: usize = 2048;
const MAX_USER: usize = 256;

// Commands no other line protocol on the wire uses (RFC 959 §4.1, RFC 2389, RFC 2428, RFC 3659).
const FTP_VERBS: &[&[u8]] = &[
    b"FEAT", b"SYST", b"PASV", b"EPSV", b"PORT", b"EPRT", b"CWD", b"XCWD", b"PWD", b"XPWD",
    b"LIST", b"NLST", b"RETR", b"STOR", b"STOU", b"TYPE", b"MODE", b"STRU", b"SIZE", b"MDTM",
    b"MLSD", b"MLST", b"PBSZ", b"PROT", b"CCC", b"ACCT", b"REST", b"APPE", b"RNFR", b"RNTO",
    b"DELE", b"RMD", b"XRMD", b"MKD", b"XMKD", b"CDUP", b"SITE", b"ABOR", b"ALLO", b"CLNT",
];
const NOT_FTP: &[&[u8]] = &[
    b"EHLO",
    b"HELO",
    b"MAIL",
    b"RCPT",
    b"STARTTLS",
    b"CAPA",
    b"STLS",
    b"APOP",
    b"LOGIN",
];

/// The command word of a line. Commands are 3–4 letters (RFC 959 §5.3.1): only the first 9 bytes
/// are looked at, so a binary payload costs the probe next to nothing.
fn verb(line: &[u8]) -> &[u8] {
    let head = &line[..line.len().min(9)];
    let end = head
        .iter()
        .position(|&c| c == b' ' || c == b'\r' || c == b'\n')
        .unwrap_or(head.len());
    &line[..end]
}
fn is_verb(v: &[u8], set: &[u64]) -> bool {
    // Every listed verb is 3 to 8 letters: packed upper-case into a u64 it compares in one step.
    (3..=8).contains(&v.len()) && v.iter().all(u8::is_ascii_alphabetic) && set.contains(&pack(v))
}

/// A verb of up to 8 letters, upper-cased, as one number (only meaningful for letters).
const fn pack(v: &[u8]) -> u64 {
    let mut k = 0u64;
    let mut i = 0;
    while i < v.len() {
        k = (k << 8) | (v[i] & !0x20) as u64;
        i += 1;
    }
    k
}

const fn packed<const N: usize>(list: &[&[u8]]) -> [u64; N] {
    let mut out = [0u64; N];
    let mut i = 0;
    while i < N {
        out[i] = pack(list[i]);
        i += 1;
    }
    out
}
const FTP_VERB_KEYS: [u64; FTP_VERBS.len()] = packed(FTP_VERBS);
const NOT_FTP_KEYS: [u64; NOT_FTP.len()] = packed(NOT_FTP);
const LOGIN_KEYS: [u64; 3] = packed(&[b"USER", b"PASS", b"AUTH"]);

fn reply_code(line: &[u8]) -> Option<(u16, bool)> {
    if line.len() < 3 || !line[..3].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let code =
        (line[0] - b'0') as u16 * 100 + (line[1] - b'0') as u16 * 10 + (line[2] - b'0') as u16;
    match line.get(3) {
        None | Some(b' ') | Some(b'\r') => Some((code, true)),
        Some(b'-') => Some((code, false)),
        _ => None,
    }
}

/// FTP is tried early and tentatively: a 220 greeting or an FTP command starts the analyzer, which
/// counts the session only once FTP is confirmed (a command only FTP uses, USER/PASS after a 220
/// greeting, or a greeting that names FTP) and gives the flow back at the first line that is not
/// FTP (an SMTP EHLO, a POP3 "+OK"). Starting early means no byte of the dialogue is missed.
fn probe(p: &Pkt<'_>, _memo: &mut u8) -> Verdict {
    let b = p.payload;
    if p.from_client {
        let v = verb(b);
        if is_verb(v, &NOT_FTP_KEYS) {
            return Verdict::No;
        }
        if is_verb(v, &FTP_VERB_KEYS) || is_verb(v, &LOGIN_KEYS) {
            return Verdict::Yes;
        }
        // A command split across segments (`US` + `ER alice`): wait for more.
        if !b.is_empty() && b.len() < 4 && b.iter().all(u8::is_ascii_alphabetic) {
            return Verdict::Maybe;
        }
        return Verdict::No;
    }
    match reply_code(b) {
        Some((220, _)) => Verdict::Yes,
        _ => Verdict::No,
    }
}

fn start(p: &Pkt<'_>, _env: &mut Env) -> Option<Box<dyn Session>> {
    let (client, server) = if p.from_client {
        ((p.d.src(), p.d.sport()), (p.d.dst(), p.d.dport()))
    } else {
        ((p.d.dst(), p.d.dport()), (p.d.src(), p.d.sport()))
    };
    Some(Box::new(Ftp {
        dirs: p.reassemblers(),
        inner: Inner {
            lines: [LineBuf::new(MAX_LINE), LineBuf::new(MAX_LINE)],
            v6: p.d.v6,
            client,
            server,
            counted: None,
            greeted_ftp: false,
            reject: false,
            in_multiline: false,
            user: None,
            login: None,
            pending: Pending::None,
            tls: None,
            reported_overlong: [0, 0],
        },
    }))
}

/// The command whose reply decides something.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pending {
    None,
    Pass,
    Pasv,
    Epsv,
    Auth,
}

/// A USER name, kept only for the event log.
struct User {
    name: Vec<u8>,
    anonymous: bool,
}

/// A PASS was seen; the outcome awaits the reply.
struct Login {
    ts: i64,
    number: u64,
    anonymous: bool,
    user: Vec<u8>,
}

struct Ftp {
    /// [server→client, client→server]
    dirs: [Reassembler; 2],
    inner: Inner,
}

struct Inner {
    lines: [LineBuf; 2],
    v6: bool,
    client: ([u8; 16], u16),
    server: ([u8; 16], u16),
    counted: Option<Proto>,
    /// The 220 greeting names FTP: enough to count the session even if the client says nothing.
    greeted_ftp: bool,
    /// Not FTP after all: the flow goes back to classification.
    reject: bool,
    /// Inside a multi-line reply (RFC 959 §4.2: "123-First line" … "123 Last line").
    in_multiline: bool,
    user: Option<User>,
    login: Option<Login>,
    pending: Pending,
    /// After AUTH TLS/SSL + 234: the TLS state, which notices a return to clear text.
    tls: Option<tls::Upgrade>,
    reported_overlong: [u32; 2],
}

impl Session for Ftp {
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
        if self.inner.reject {
            Next::Reject
        } else {
            Next::Continue
        }
    }

    fn on_end(&mut self, _ts: i64, env: &mut Env) {
        self.inner.finish_login(LoginOutcome::Unknown, None, env);
        if self.inner.greeted_ftp {
            self.inner.count(Proto::Ftp, env);
        }
    }

    fn counted(&self) -> bool {
        self.inner.counted.is_some()
    }
}

impl Inner {
    fn count(&mut self, p: Proto, env: &mut Env) {
        if self.counted.is_none() {
            self.counted = Some(p);
            env.session(p, self.v6);
            if p == Proto::Ftps {
                // DESIGN.md §5: an FTPS session also counts as a tls session.
                env.session(Proto::Tls, self.v6);
            }
        }
    }

    fn bytes(&mut self, p: &Pkt<'_>, i: usize, mut data: &[u8], env: &mut Env) {
        if let Some(tls) = self.tls.as_mut() {
            let n = tls.feed(i == 1, data, env);
            if n == data.len() {
                return;
            }
            data = &data[n..];
            if !looks_like_line(data) {
                return;
            }
            // Clear text again (after CCC, or a handshake the server refused in clear).
            self.tls = None;
            self.lines = [LineBuf::new(MAX_LINE), LineBuf::new(MAX_LINE)];
        }
        let mut lines = std::mem::replace(&mut self.lines[i], LineBuf::new(0));
        lines.feed(data, |l| {
            if i == 1 {
                self.command(p, l, env)
            } else {
                self.reply(p, l, env)
            }
        });
        if lines.overlong > self.reported_overlong[i] {
            env.c.add(
                slot::stream_issue(StreamIssue::OverlongLine),
                (lines.overlong - self.reported_overlong[i]) as u64,
            );
            self.reported_overlong[i] = lines.overlong;
        }
        self.lines[i] = lines;
    }

    fn command(&mut self, p: &Pkt<'_>, line: &[u8], env: &mut Env) {
        if self.reject {
            return;
        }
        env.c.inc(slot::FTP_LINES);
        let v = verb(line);
        if self.counted.is_none()
            && (is_verb(v, &NOT_FTP_KEYS)
                || !(3..=4).contains(&v.len())
                || !v.iter().all(u8::is_ascii_alphabetic))
        {
            self.reject = true;
            return;
        }
        let arg = line.get(v.len() + 1..).unwrap_or(b"");
        //= https://www.rfc-editor.org/rfc/rfc959#section-4.1.1
        //# USER NAME (USER) The argument field is a Telnet string identifying the user.
        if v.eq_ignore_ascii_case(b"USER") {
            self.count(Proto::Ftp, env);
            self.finish_login(LoginOutcome::Unknown, None, env);
            let name = &arg[..arg.len().min(MAX_USER)];
            let anonymous =
                name.eq_ignore_ascii_case(b"anonymous") || name.eq_ignore_ascii_case(b"ftp");
            self.user = Some(User {
                name: name.to_vec(),
                anonymous,
            });
            self.pending = Pending::None;
        } else if v.eq_ignore_ascii_case(b"PASS") {
            //# PASSWORD (PASS) The argument field is a Telnet string specifying the user's password.
            // Only the fact of a PASS is kept: `arg` is not looked at.
            self.count(Proto::Ftp, env);
            if self.user.is_some() {
                self.finish_login(LoginOutcome::Unknown, None, env);
            }
            if let Some(u) = &self.user {
                self.login = Some(Login {
                    ts: p.ts,
                    number: env.number_base + p.number,
                    anonymous: u.anonymous,
                    user: u.name.clone(),
                });
                self.pending = Pending::Pass;
            }
        } else if v.eq_ignore_ascii_case(b"AUTH") {
            //= https://www.rfc-editor.org/rfc/rfc4217#section-4
            //# AUTH TLS ... If the server is willing to accept the named security mechanism ... 234
            let a = arg.trim_ascii();
            if a.eq_ignore_ascii_case(b"TLS")
                || a.eq_ignore_ascii_case(b"SSL")
                || a.eq_ignore_ascii_case(b"TLS-C")
                || a.eq_ignore_ascii_case(b"TLS-P")
            {
                self.pending = Pending::Auth;
            }
        } else if v.eq_ignore_ascii_case(b"PASV") {
            self.count(Proto::Ftp, env);
            self.pending = Pending::Pasv;
        } else if v.eq_ignore_ascii_case(b"EPSV") {
            self.count(Proto::Ftp, env);
            if !starts_with_ci(arg, b"ALL") {
                self.pending = Pending::Epsv;
            }
        } else if v.eq_ignore_ascii_case(b"PORT") {
            //= https://www.rfc-editor.org/rfc/rfc959#section-4.1.2
            //# PORT h1,h2,h3,h4,p1,p2
            self.count(Proto::Ftp, env);
            if let Some((ip, port)) = parse_h_p(arg) {
                self.expect(ip, port, false, DataMode::Port, p.ts, env);
            }
        } else if v.eq_ignore_ascii_case(b"EPRT") {
            //= https://www.rfc-editor.org/rfc/rfc2428#section-2
            //# EPRT<space><d><net-prt><d><net-addr><d><tcp-port><d>
            self.count(Proto::Ftp, env);
            if let Some((ip, port)) = parse_eprt(arg) {
                self.expect(ip, port, false, DataMode::Eprt, p.ts, env);
            }
        } else if !v.is_empty() && !v.eq_ignore_ascii_case(b"FEAT") {
            self.count(Proto::Ftp, env);
        }
    }

    fn reply(&mut self, p: &Pkt<'_>, line: &[u8], env: &mut Env) {
        if self.reject {
            return;
        }
        env.c.inc(slot::FTP_LINES);
        let Some((code, last)) = reply_code(line) else {
            // Continuation lines of a multi-line reply need not start with a code; a first line must.
            if self.counted.is_none() && !self.in_multiline {
                self.reject = true;
            }
            return;
        };
        if code == 220 && line.windows(3).any(|w| w.eq_ignore_ascii_case(b"ftp")) {
            self.greeted_ftp = true;
        }
        self.in_multiline = !last;
        match (self.pending, code) {
            (Pending::Pasv, 227) => {
                //= https://www.rfc-editor.org/rfc/rfc959#section-4.2
                //# 227 Entering Passive Mode (h1,h2,h3,h4,p1,p2).
                let text = &line[4.min(line.len())..];
                let start = text
                    .iter()
                    .position(u8::is_ascii_digit)
                    .unwrap_or(text.len());
                if let Some((ip, port)) = parse_h_p(&text[start..]) {
                    self.expect(ip, port, true, DataMode::Pasv, p.ts, env);
                }
                self.pending = Pending::None;
            }
            (Pending::Epsv, 229) => {
                //= https://www.rfc-editor.org/rfc/rfc2428#section-3
                //# 229 Entering Extended Passive Mode (|||6446|)
                if let Some(port) = parse_epsv(line) {
                    let ip = crate::decode::ip(&self.server.0, self.v6);
                    self.expect(ip, port, true, DataMode::Epsv, p.ts, env);
                }
                self.pending = Pending::None;
            }
            (Pending::Pass, c) if last => {
                //= https://www.rfc-editor.org/rfc/rfc959#section-5.4
                //# PASS: 230, 202, 530, 500, 501, 503, 421, 332
                match c / 100 {
                    2 => self.finish_login(LoginOutcome::Accepted, Some(c), env),
                    4 | 5 => self.finish_login(LoginOutcome::Rejected, Some(c), env),
                    _ => {}
                }
                if c / 100 != 3 {
                    self.pending = Pending::None;
                }
            }
            (Pending::Auth, 234) => {
                self.pending = Pending::None;
                self.count(Proto::Ftps, env);
                self.tls = Some(tls::Upgrade::default());
                // Whatever the client sends from here is TLS; a partial line held so far is stale.
                self.lines[1] = LineBuf::new(MAX_LINE);
            }
            (_, _) if last && self.pending != Pending::None && code / 100 >= 4 => {
                self.pending = Pending::None;
            }
            _ => {}
        }
    }

    fn expect(
        &mut self,
        ip: IpAddr,
        port: u16,
        passive: bool,
        mode: DataMode,
        ts: i64,
        env: &mut Env,
    ) {
        // Passive: the client connects to the server's announced port. Active: the server connects
        // to the client's. The connection is expected at the address seen on the control
        // connection (behind NAT the announced address is a private one the wire never shows),
        // and also at the announced address when that differs (a third host, as in FXP).
        let (connector, observed) = if passive {
            (self.client.0, self.server.0)
        } else {
            (self.server.0, self.client.0)
        };
        env.shared
            .ftp
            .insert(observed, self.v6, port, connector, mode, ts);
        let announced = match ip {
            IpAddr::V4(a) => {
                let mut o = [0u8; 16];
                o[..4].copy_from_slice(&a.octets());
                (o, false)
            }
            IpAddr::V6(a) => (a.octets(), true),
        };
        if announced != (observed, self.v6) {
            env.shared
                .ftp
                .insert(announced.0, announced.1, port, connector, mode, ts);
        }
    }

    fn finish_login(&mut self, outcome: LoginOutcome, code: Option<u16>, env: &mut Env) {
        let Some(login) = self.login.take() else {
            return;
        };
        env.c.inc(slot::ftp_login(outcome));
        let (c, s) = (self.client, self.server);
        let brute = outcome == LoginOutcome::Rejected
            && env.shared.ftp_bruteforce.rejected(c.0, s.0, login.ts);
        if brute {
            env.c.inc(slot::FTP_BRUTEFORCE);
        }
        if !env.events.enabled() {
            return;
        }
        if brute {
            let ev = json!({
                "@timestamp": metrics::events::rfc3339(login.ts),
                "event": {
                    "kind": "alert",
                    "category": ["authentication", "intrusion_detection"],
                    "type": ["info"],
                    "action": "ftp-bruteforce",
                    "dataset": "spanwatch.ftp",
                    "severity": 7,
                },
                "source": {"ip": crate::decode::ip(&c.0, self.v6).to_string()},
                "destination": {"ip": crate::decode::ip(&s.0, self.v6).to_string(), "port": s.1},
                "network": {"transport": "tcp", "protocol": "ftp"},
                "spanwatch": {
                    "rejected_logins": BRUTEFORCE_THRESHOLD,
                    "window_seconds": BRUTEFORCE_WINDOW_NS / 1_000_000_000,
                    "packet_number": login.number,
                }
            });
            env.event(ev);
        }
        let user = if env.cfg.log_usernames {
            json!({"name": String::from_utf8_lossy(&login.user)})
        } else {
            json!({"hash": pseudonym(&env.cfg.pseudonym_key, &login.user)})
        };
        let ecs_outcome = match outcome {
            LoginOutcome::Accepted => "success",
            LoginOutcome::Rejected => "failure",
            LoginOutcome::Unknown => "unknown",
        };
        let ev = json!({
            "@timestamp": metrics::events::rfc3339(login.ts),
            "event": {
                "kind": "alert",
                "category": ["authentication"],
                "type": ["start"],
                "action": "ftp-cleartext-login",
                "outcome": ecs_outcome,
                "dataset": "spanwatch.ftp",
                "severity": if outcome == LoginOutcome::Accepted { 8 } else { 5 },
            },
            "source": {"ip": crate::decode::ip(&c.0, self.v6).to_string(), "port": c.1},
            "destination": {"ip": crate::decode::ip(&s.0, self.v6).to_string(), "port": s.1},
            "network": {"transport": "tcp", "protocol": "ftp", "type": if self.v6 { "ipv6" } else { "ipv4" }},
            "user": user,
            "spanwatch": {
                "login_outcome": outcome.as_str(),
                "anonymous": login.anonymous,
                "reply_code": code,
                "packet_number": login.number,
            }
        });
        env.event(ev);
    }
}

fn looks_like_line(b: &[u8]) -> bool {
    let v = verb(b);
    (v.len() >= 3 && v.len() <= 4 && v.iter().all(u8::is_ascii_alphabetic))
        || reply_code(b).is_some()
}

/// Keyed hash of a user name: correlates repeats without revealing the name.
pub fn pseudonym(key: &[u8; 32], user: &[u8]) -> String {
    let h = blake3::keyed_hash(key, user);
    h.to_hex()[..32].to_string()
}

/// `h1,h2,h3,h4,p1,p2` (PORT argument, 227 reply).
pub fn parse_h_p(s: &[u8]) -> Option<(IpAddr, u16)> {
    let mut n = [0u16; 6];
    let mut it = s.split(|&c| c == b',');
    for v in n.iter_mut() {
        let part = it.next()?;
        let digits: &[u8] = part.trim_ascii();
        let end = digits
            .iter()
            .position(|c| !c.is_ascii_digit())
            .unwrap_or(digits.len());
        let x: u16 = std::str::from_utf8(&digits[..end]).ok()?.parse().ok()?;
        if x > 255 {
            return None;
        }
        *v = x;
    }
    let ip = IpAddr::V4([n[0] as u8, n[1] as u8, n[2] as u8, n[3] as u8].into());
    Some((ip, n[4] * 256 + n[5]))
}

/// `|1|132.235.1.2|6275|` or `|2|1080::8:800:200C:417A|5282|` (any delimiter, RFC 2428 §2).
pub fn parse_eprt(s: &[u8]) -> Option<(IpAddr, u16)> {
    let s = std::str::from_utf8(s.trim_ascii()).ok()?;
    let d = s.chars().next()?;
    let parts: Vec<&str> = s.split(d).collect();
    if parts.len() < 5 {
        return None;
    }
    let ip: IpAddr = parts[2].parse().ok()?;
    match (parts[1], &ip) {
        ("1", IpAddr::V4(_)) | ("2", IpAddr::V6(_)) => {}
        _ => return None,
    }
    Some((ip, parts[3].parse().ok()?))
}

/// The port of a `229 ... (|||port|)` reply.
pub fn parse_epsv(line: &[u8]) -> Option<u16> {
    let s = std::str::from_utf8(line).ok()?;
    let open = s.find('(')?;
    let inner = &s[open + 1..open + 1 + s[open + 1..].find(')')?];
    let d = inner.chars().next()?;
    let parts: Vec<&str> = inner.split(d).collect();
    if parts.len() < 5 {
        return None;
    }
    parts[3].parse().ok()
}

/// Rejected logins from one client to one server that make a brute-force attempt: Zeek's
/// FTP::bruteforce_threshold and measurement interval (20 within 15 minutes).
pub const BRUTEFORCE_THRESHOLD: u32 = 20;
pub const BRUTEFORCE_WINDOW_NS: i64 = 15 * 60 * 1_000_000_000;
const BRUTEFORCE_PAIRS: usize = 4096;

/// Rejected-login counts per (client, server) address pair, per worker. The shard hash keeps every
/// connection between two hosts on one worker, so the counts are exact without sharing. Bounded:
/// at the cap, windows that ended are forgotten first, then the oldest window.
#[derive(Default)]
pub struct BruteForce {
    pairs: HashMap<([u8; 16], [u8; 16]), (i64, u32)>,
}

impl BruteForce {
    /// Counts one rejected login at `ts`; true exactly when the pair reaches the threshold within
    /// its window (once per window).
    pub fn rejected(&mut self, client: [u8; 16], server: [u8; 16], ts: i64) -> bool {
        if self.pairs.len() >= BRUTEFORCE_PAIRS && !self.pairs.contains_key(&(client, server)) {
            self.pairs
                .retain(|_, (start, _)| ts.saturating_sub(*start) < BRUTEFORCE_WINDOW_NS);
            if self.pairs.len() >= BRUTEFORCE_PAIRS {
                let oldest = self.pairs.iter().min_by_key(|(_, v)| v.0).map(|(k, _)| *k);
                if let Some(k) = oldest {
                    self.pairs.remove(&k);
                }
            }
        }
        let e = self.pairs.entry((client, server)).or_insert((ts, 0));
        if ts.saturating_sub(e.0) >= BRUTEFORCE_WINDOW_NS {
            *e = (ts, 0);
        }
        e.1 += 1;
        e.1 == BRUTEFORCE_THRESHOLD
    }
}

/// Announced data connections awaiting their connection, per worker.
#[derive(Default)]
pub struct Expectations {
    map: HashMap<([u8; 16], bool, u16), Expect>,
}

#[derive(Clone, Copy)]
struct Expect {
    /// Who should connect (kept for diagnostics; behind NAT it may show another address).
    #[allow(dead_code)]
    connector: [u8; 16],
    mode: DataMode,
    expires: i64,
}

/// RFC 959 gives no lifetime; the issue sets 5 minutes of packet time.
const EXPECT_TTL_NS: i64 = 300_000_000_000;
const MAX_EXPECTATIONS: usize = 4096;

impl Expectations {
    fn insert(
        &mut self,
        listener: [u8; 16],
        v6: bool,
        port: u16,
        connector: [u8; 16],
        mode: DataMode,
        ts: i64,
    ) {
        if self.map.len() >= MAX_EXPECTATIONS {
            self.map.retain(|_, e| e.expires > ts);
            if self.map.len() >= MAX_EXPECTATIONS {
                // Still full: drop the one closest to expiry.
                if let Some(k) = self
                    .map
                    .iter()
                    .min_by_key(|(_, e)| e.expires)
                    .map(|(k, _)| *k)
                {
                    self.map.remove(&k);
                }
            }
        }
        self.map.insert(
            (listener, v6, port),
            Expect {
                connector,
                mode,
                expires: ts.saturating_add(EXPECT_TTL_NS),
            },
        );
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The announcement a new connection fulfils, if any (either end may be the listener).
    #[inline]
    pub fn take(&mut self, d: &Decoded, ts: i64) -> Option<DataMode> {
        // Asked for every new TCP flow; usually nothing is expected (a SYN flood: never).
        if self.map.is_empty() {
            return None;
        }
        self.take_expected(d, ts)
    }

    #[inline(never)]
    fn take_expected(&mut self, d: &Decoded, ts: i64) -> Option<DataMode> {
        for (listener, lport) in [(d.dst(), d.dport()), (d.src(), d.sport())] {
            let k = (listener, d.v6, lport);
            if let Some(e) = self.map.get(&k) {
                if e.expires >= ts {
                    let m = e.mode;
                    self.map.remove(&k);
                    return Some(m);
                }
            }
        }
        None
    }
}

/// A data connection: counted at its first packet; if it carries TLS (FTPS data), also a tls session.
pub struct DataSession {
    checked: bool,
    v6: bool,
}

impl DataSession {
    pub fn new(v6: bool) -> Self {
        DataSession { checked: false, v6 }
    }
}

impl Session for DataSession {
    fn on_packet(&mut self, p: &Pkt<'_>, env: &mut Env) -> Next {
        if !self.checked {
            self.checked = true;
            if tls::looks_like_tls(p.payload, p.from_client) == Verdict::Yes
                || tls::looks_like_tls(p.payload, !p.from_client) == Verdict::Yes
            {
                env.session(Proto::Tls, self.v6);
            }
        }
        Next::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bruteforce_fires_once_per_window_and_pair() {
        let mut b = BruteForce::default();
        let (c, s, other) = ([1; 16], [2; 16], [3; 16]);
        let sec = 1_000_000_000i64;
        let fired: Vec<bool> = (0..25).map(|i| b.rejected(c, s, i * sec)).collect();
        assert_eq!(fired.iter().filter(|f| **f).count(), 1);
        assert!(fired[BRUTEFORCE_THRESHOLD as usize - 1]);
        // Another server: its own count.
        assert!(!b.rejected(c, other, 30 * sec));
        // A new window starts after 15 minutes: 19 more do not fire, the 20th does.
        let t0 = BRUTEFORCE_WINDOW_NS + 1;
        assert!((0..19).all(|i| !b.rejected(c, s, t0 + i)));
        assert!(b.rejected(c, s, t0 + 19));
        // Spread over more than the window: never 20 within one.
        let mut slow = BruteForce::default();
        assert!((0..100).all(|i| !slow.rejected(c, s, i * 60 * sec)));
    }

    #[test]
    fn bruteforce_table_is_bounded() {
        let mut b = BruteForce::default();
        for i in 0..(3 * BRUTEFORCE_PAIRS as u32) {
            let mut c = [0u8; 16];
            c[..4].copy_from_slice(&i.to_be_bytes());
            b.rejected(c, [9; 16], i as i64);
        }
        assert!(b.pairs.len() <= BRUTEFORCE_PAIRS);
    }

    #[test]
    fn pasv_port_forms() {
        assert_eq!(
            parse_h_p(b"192,168,1,2,19,137"),
            Some(("192.168.1.2".parse().unwrap(), 19 * 256 + 137))
        );
        assert_eq!(parse_h_p(b"198,18,0,1,4,1).").map(|x| x.1), Some(1025));
        assert_eq!(parse_h_p(b"1,2,3"), None);
        assert_eq!(parse_h_p(b"300,2,3,4,5,6"), None);
        assert_eq!(
            parse_eprt(b"|1|132.235.1.2|6275|"),
            Some(("132.235.1.2".parse().unwrap(), 6275))
        );
        assert_eq!(
            parse_eprt(b"|2|1080::8:800:200C:417A|5282|"),
            Some(("1080::8:800:200c:417a".parse().unwrap(), 5282))
        );
        assert_eq!(parse_eprt(b"|2|1.2.3.4|5282|"), None);
        assert_eq!(
            parse_epsv(b"229 Entering Extended Passive Mode (|||6446|)"),
            Some(6446)
        );
        assert_eq!(parse_epsv(b"229 ok"), None);
    }

    #[test]
    fn replies() {
        assert_eq!(reply_code(b"230 Login successful."), Some((230, true)));
        assert_eq!(reply_code(b"230-Welcome"), Some((230, false)));
        assert_eq!(reply_code(b"23"), None);
        assert_eq!(reply_code(b"USER x"), None);
    }
}
