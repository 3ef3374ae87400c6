//! HTTP/1.x (RFC 9112) on any TCP port: a flow is HTTP when the client opens with a request line
//! (or the server answers with a status line). Every request in the client's stream is counted,
//! pipelined ones included, by kind: ACME HTTP-01 challenges (RFC 8555 §8.3), OpenPGP HKP
//! lookups and submissions, OCSP over HTTP (RFC 6960 appendix A), other. Request heads are parsed
//! with `httparse`; bodies are skipped by Content-Length or chunked framing, never buffered.

use super::{Env, Next, Pkt, Protocol, Session, Verdict};
use crate::decode::L4;
use crate::stream::{Chunk, Reassembler};
use base64::Engine;
use metrics::{slot, HttpKind, Proto, StreamIssue};
use std::mem::MaybeUninit;

pub static PROTOCOL: Protocol = Protocol {
    proto: Proto::Http,
    l4: L4::Tcp,
    counts_itself: false,
    probe,
    start,
};

const MAX_HEAD: usize = 16 * 1024;

/// Whether `b` opens with an HTTP/1.x request line: `token SP request-target SP HTTP/1.x`
/// (RFC 9112 §3). Any method token counts (WebDAV, UPnP GENA's SUBSCRIBE and NOTIFY …).
pub fn looks_like_request(b: &[u8]) -> Verdict {
    let m = b
        .iter()
        .take_while(|c| c.is_ascii_uppercase() || **c == b'-' || **c == b'_')
        .count();
    if m == b.len() {
        return if (1..=16).contains(&m) {
            Verdict::Maybe
        } else {
            Verdict::No
        };
    }
    if !(3..=16).contains(&m) || b[m] != b' ' {
        return Verdict::No;
    }
    let rest = &b[m + 1..];
    let line_end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
    let line = &rest[..line_end];
    match memchr::memchr(b' ', line) {
        Some(sp) if line[sp + 1..].starts_with(b"HTTP/1.") => Verdict::Yes,
        Some(sp) if line_end == rest.len() && b"HTTP/1.".starts_with(&line[sp + 1..]) => {
            Verdict::Maybe
        }
        Some(_) => Verdict::No,
        None if line_end == rest.len() && rest.len() < 8192 => Verdict::Maybe,
        None => Verdict::No,
    }
}

/// Where the next request line starts in `b`, after lost bytes.
fn resync(b: &[u8]) -> Option<usize> {
    std::iter::once(0)
        .chain(
            b.iter()
                .enumerate()
                .filter(|(_, &c)| c == b'\n')
                .map(|(i, _)| i + 1),
        )
        .find(|&i| i < b.len() && looks_like_request(&b[i..]) == Verdict::Yes)
}

fn probe(p: &Pkt<'_>, _memo: &mut u8) -> Verdict {
    if p.from_client {
        looks_like_request(p.payload)
    } else if p.payload.starts_with(b"HTTP/1.") {
        Verdict::Yes
    } else {
        Verdict::No
    }
}

fn start(p: &Pkt<'_>, _env: &mut Env) -> Option<Box<dyn Session>> {
    Some(Box::new(Http {
        client: Reassembler::starting_at(p.starts[1]),
        parser: Parser::default(),
    }))
}

#[derive(Default)]
enum Body {
    #[default]
    None,
    Length(u64),
    /// Inside chunked framing: the size line being read.
    ChunkSize,
    ChunkData(u64),
    /// CRLF after a chunk's data.
    ChunkEnd(u8),
    Trailers,
}

struct Http {
    client: Reassembler,
    parser: Parser,
}

#[derive(Default)]
struct Parser {
    head: Vec<u8>,
    body: Body,
    line: Vec<u8>,
    broken: bool,
}

impl Session for Http {
    fn on_packet(&mut self, p: &Pkt<'_>, env: &mut Env) -> Next {
        if !p.from_client {
            return Next::Continue;
        }
        let parser = &mut self.parser;
        self.client.push(p.d.seq, false, p.payload, |c| match c {
            Chunk::Data(d) => parser.feed(d, env),
            Chunk::Gap => {
                env.c.inc(slot::stream_issue(StreamIssue::Gap));
                parser.head.clear();
                parser.body = Body::None;
                parser.broken = true;
            }
        });
        Next::Continue
    }
}

impl Parser {
    fn feed(&mut self, mut b: &[u8], env: &mut Env) {
        while !b.is_empty() {
            match &mut self.body {
                Body::None => {
                    if self.broken {
                        // After a gap, wait for something that starts a request.
                        match resync(b) {
                            Some(i) => {
                                self.broken = false;
                                b = &b[i..];
                            }
                            None => return,
                        }
                    }
                    let room = MAX_HEAD.saturating_sub(self.head.len());
                    let take = b.len().min(room);
                    let before = self.head.len();
                    // A head that starts here is parsed where it lies (the usual case: a whole
                    // request in one segment); only one split across segments is gathered.
                    let in_place = before == 0;
                    if !in_place {
                        self.head.extend_from_slice(&b[..take]);
                    }
                    // httparse fills header slots as it goes: none needs clearing first.
                    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; 48];
                    let mut req = httparse::Request::new(&mut []);
                    let parsed = if in_place {
                        req.parse_with_uninit_headers(&b[..take], &mut headers)
                    } else {
                        req.parse_with_uninit_headers(&self.head, &mut headers)
                    };
                    match parsed {
                        Ok(httparse::Status::Complete(n)) => {
                            let kind = classify(&req);
                            env.c.inc(slot::http_request(kind));
                            self.body = body_of(&req);
                            let used = n - before;
                            self.head.clear();
                            b = &b[used.min(b.len())..];
                        }
                        Ok(httparse::Status::Partial) => {
                            if in_place {
                                self.head.extend_from_slice(&b[..take]);
                            }
                            if self.head.len() >= MAX_HEAD {
                                env.c.inc(slot::stream_issue(StreamIssue::OverlongLine));
                                self.head.clear();
                                self.broken = true;
                            }
                            return;
                        }
                        Err(_) => {
                            self.head.clear();
                            self.broken = true;
                            b = &b[take.min(b.len())..];
                        }
                    }
                }
                Body::Length(n) => {
                    let k = (*n).min(b.len() as u64);
                    *n -= k;
                    b = &b[k as usize..];
                    if *n == 0 {
                        self.body = Body::None;
                    }
                }
                Body::ChunkSize | Body::Trailers => {
                    let Some(i) = memchr::memchr(b'\n', b) else {
                        if self.line.len() + b.len() > 1024 {
                            self.broken = true;
                            self.body = Body::None;
                            self.line.clear();
                        } else {
                            self.line.extend_from_slice(b);
                        }
                        return;
                    };
                    self.line.extend_from_slice(&b[..i]);
                    b = &b[i + 1..];
                    let line = std::mem::take(&mut self.line);
                    let line = line.strip_suffix(b"\r").unwrap_or(&line);
                    if matches!(self.body, Body::Trailers) {
                        if line.is_empty() {
                            self.body = Body::None;
                        }
                        continue;
                    }
                    let hex = line.split(|&c| c == b';').next().unwrap_or(b"");
                    match std::str::from_utf8(hex)
                        .ok()
                        .and_then(|s| u64::from_str_radix(s.trim(), 16).ok())
                    {
                        Some(0) => self.body = Body::Trailers,
                        Some(n) => self.body = Body::ChunkData(n),
                        None => {
                            self.broken = true;
                            self.body = Body::None;
                        }
                    }
                }
                Body::ChunkData(n) => {
                    let k = (*n).min(b.len() as u64);
                    *n -= k;
                    b = &b[k as usize..];
                    if *n == 0 {
                        self.body = Body::ChunkEnd(2);
                    }
                }
                Body::ChunkEnd(k) => {
                    let skip = (*k as usize).min(b.len());
                    *k -= skip as u8;
                    b = &b[skip..];
                    if *k == 0 {
                        self.body = Body::ChunkSize;
                    }
                }
            }
        }
    }
}

fn header<'h>(req: &'h httparse::Request<'_, '_>, name: &str) -> Option<&'h [u8]> {
    req.headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

fn body_of(req: &httparse::Request<'_, '_>) -> Body {
    // One pass over the headers (the first of each name counts).
    let (mut te, mut cl) = (None, None);
    for h in req.headers.iter() {
        if te.is_none() && h.name.eq_ignore_ascii_case("transfer-encoding") {
            te = Some(h.value);
        } else if cl.is_none() && h.name.eq_ignore_ascii_case("content-length") {
            cl = Some(h.value);
        }
    }
    if te.is_some_and(|te| te.windows(7).any(|w| w.eq_ignore_ascii_case(b"chunked"))) {
        return Body::ChunkSize;
    }
    match cl
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
    {
        Some(n) if n > 0 => Body::Length(n),
        _ => Body::None,
    }
}

/// The kind of a request, from its method, target and content type.
pub fn classify(req: &httparse::Request<'_, '_>) -> HttpKind {
    let method = req.method.unwrap_or("");
    let path = req.path.unwrap_or("");
    // Absolute-form targets (proxies) carry scheme and host first; origin-form ones start with
    // the path (RFC 9112 §3.2), whose query may hold a "://" of its own.
    let absolute = if path.starts_with('/') {
        None
    } else {
        path.find("://")
    };
    let path = match absolute {
        Some(i) => path[i + 3..].find('/').map_or("/", |j| &path[i + 3 + j..]),
        None => path,
    };
    //= https://www.rfc-editor.org/rfc/rfc8555#section-8.3
    //# GET /.well-known/acme-challenge/LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0
    if let Some(token) = path.strip_prefix("/.well-known/acme-challenge/") {
        if method == "GET" && !token.is_empty() {
            return HttpKind::AcmeHttp01;
        }
    }
    // draft-shaw-openpgp-hkp: /pks/lookup (GET) and /pks/add (POST).
    let bare = path.split('?').next().unwrap_or(path);
    if bare == "/pks/lookup" || bare == "/pks/add" {
        return HttpKind::Hkp;
    }
    //= https://www.rfc-editor.org/rfc/rfc6960#appendix-A.1
    //# An OCSP request using the POST method is constructed as follows: The Content-Type header has
    //# the value "application/ocsp-request"
    if method == "POST" {
        if let Some(ct) = header(req, "content-type") {
            const OCSP: &[u8] = b"application/ocsp-request";
            if ct.len() >= OCSP.len() && ct[..OCSP.len()].eq_ignore_ascii_case(OCSP) {
                return HttpKind::Ocsp;
            }
        }
    }
    //# GET {url}/{url-encoding of base-64 encoding of the DER encoding of the OCSPRequest}
    if method == "GET" && is_ocsp_get(bare) {
        return HttpKind::Ocsp;
    }
    HttpKind::Other
}

fn is_ocsp_get(path: &str) -> bool {
    let last = path.rsplit('/').next().unwrap_or("");
    if last.len() < 40 {
        return false;
    }
    let decoded = percent_decode(last);
    let der = match base64::engine::general_purpose::STANDARD.decode(decoded.as_bytes()) {
        Ok(d) => d,
        Err(_) => match base64::engine::general_purpose::URL_SAFE.decode(decoded.as_bytes()) {
            Ok(d) => d,
            Err(_) => return false,
        },
    };
    is_ocsp_request_der(&der)
}

/// OCSPRequest ::= SEQUENCE { tbsRequest SEQUENCE { ..., requestList SEQUENCE OF Request } }
/// where each Request opens with a CertID SEQUENCE { hashAlgorithm AlgorithmIdentifier, ... }.
fn is_ocsp_request_der(b: &[u8]) -> bool {
    fn seq(b: &[u8]) -> Option<(&[u8], &[u8])> {
        if b.first() != Some(&0x30) {
            return None;
        }
        let (len, hl) = match *b.get(1)? {
            l if l < 0x80 => (l as usize, 2),
            0x81 => (*b.get(2)? as usize, 3),
            0x82 => (u16::from_be_bytes([*b.get(2)?, *b.get(3)?]) as usize, 4),
            _ => return None,
        };
        let body = b.get(hl..hl + len)?;
        Some((body, &b[hl + len..]))
    }
    let Some((ocsp, rest)) = seq(b) else {
        return false;
    };
    if !rest.is_empty() {
        return false;
    }
    let Some((mut tbs, _)) = seq(ocsp) else {
        return false;
    };
    // Skip optional [0] version and [1] requestorName.
    while let Some(&t) = tbs.first() {
        if t == 0xa0 || t == 0xa1 {
            let l = *tbs.get(1).unwrap_or(&0xff) as usize;
            if l >= 0x80 || tbs.len() < 2 + l {
                return false;
            }
            tbs = &tbs[2 + l..];
        } else {
            break;
        }
    }
    let Some((list, _)) = seq(tbs) else {
        return false;
    };
    let Some((request, _)) = seq(list) else {
        return false;
    };
    let Some((cert_id, _)) = seq(request) else {
        return false;
    };
    let Some((alg, _)) = seq(cert_id) else {
        return false;
    };
    alg.first() == Some(&0x06)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(raw: &[u8]) -> HttpKind {
        let mut h = [httparse::EMPTY_HEADER; 16];
        let mut r = httparse::Request::new(&mut h);
        assert!(r.parse(raw).unwrap().is_complete());
        classify(&r)
    }

    #[test]
    fn kinds() {
        assert_eq!(kind(b"GET /.well-known/acme-challenge/LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0 HTTP/1.1\r\nHost: a\r\n\r\n"), HttpKind::AcmeHttp01);
        assert_eq!(
            kind(b"GET /pks/lookup?op=get&search=0x1234 HTTP/1.1\r\n\r\n"),
            HttpKind::Hkp
        );
        assert_eq!(
            kind(b"POST /pks/add HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
            HttpKind::Hkp
        );
        assert_eq!(kind(b"POST / HTTP/1.1\r\nContent-Type: application/ocsp-request\r\nContent-Length: 5\r\n\r\n"), HttpKind::Ocsp);
        // A real OCSP GET (zeek tls_ocsp_http_get): base64 of a DER OCSPRequest.
        assert_eq!(kind(b"GET /MFEwTzBNMEswSTAJBgUrDgMCGgUABBTIbh6b7eAyGVjXnn9TgpmAvOCK0gQUSpg%2BZBdsfkqzJ5ijfzBlY3BlSwcCEApemEYKE9knGCZ3jP7pVEA%3D HTTP/1.1\r\nHost: ocsp\r\n\r\n"), HttpKind::Ocsp);
        assert_eq!(kind(b"GET /index.html HTTP/1.1\r\n\r\n"), HttpKind::Other);
        // Absolute form (to a proxy), and an origin-form query that holds a URL.
        assert_eq!(
            kind(b"GET http://h.example/pks/lookup?op=get HTTP/1.1\r\n\r\n"),
            HttpKind::Hkp
        );
        assert_eq!(
            kind(b"GET /pks/lookup?op=get&r=http://x/y HTTP/1.1\r\n\r\n"),
            HttpKind::Hkp
        );
    }

    #[test]
    fn request_lines() {
        assert_eq!(looks_like_request(b"GET / HTTP/1.1\r\n"), Verdict::Yes);
        assert_eq!(looks_like_request(b"GE"), Verdict::Maybe);
        assert_eq!(
            looks_like_request(b"SUBSCRIBE /evt HTTP/1.1\r\n"),
            Verdict::Yes
        );
        assert_eq!(looks_like_request(b"GET /x HT"), Verdict::Maybe);
        assert_eq!(
            looks_like_request(b"OPTIONS rtsp://h/ RTSP/1.0\r\n"),
            Verdict::No
        );
        assert_eq!(looks_like_request(b"USER x\r\n"), Verdict::No);
    }
}
