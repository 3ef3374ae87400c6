//! Events to a SIEM's syslog collector: RFC 5424 messages (formatted by the syslog_fmt crate) over
//! UDP (RFC 5426, one message per datagram) or TCP (RFC 6587 octet counting, reconnecting after a
//! failure). MSGID is the event's `event.action`, the structured data element
//! `[spanwatch@32473 …]` carries the fields a collector filters on, and MSG is the event's JSON.
//! 32473 is the enterprise number RFC 5612 sets aside for examples: replace it with your own
//! where a collector needs a registered one.

use serde_json::Value;
use std::io::Write;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::Duration;
use syslog_fmt::v5424::{Config, Formatter, Timestamp};
use syslog_fmt::{Facility, Severity};

/// Where to send: `udp://HOST:PORT` or `tcp://HOST:PORT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Udp(SocketAddr),
    Tcp(SocketAddr),
}

impl Target {
    pub fn parse(s: &str) -> Result<Target, String> {
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| format!("{s}: expected udp://HOST:PORT or tcp://HOST:PORT"))?;
        let addr = rest
            .to_socket_addrs()
            .map_err(|e| format!("{s}: {e}"))?
            .next()
            .ok_or_else(|| format!("{s}: no address"))?;
        match scheme {
            "udp" => Ok(Target::Udp(addr)),
            "tcp" => Ok(Target::Tcp(addr)),
            _ => Err(format!("{s}: expected udp:// or tcp://")),
        }
    }
}

enum Conn {
    Udp(UdpSocket),
    Tcp(Option<TcpStream>),
}

/// A connected (or, for TCP, reconnecting) syslog sender.
pub struct Sender {
    target: Target,
    conn: Conn,
    fmt: Formatter,
    buf: Vec<u8>,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty() && h.is_ascii() && !h.contains(' '))
        .unwrap_or_else(|| "-".into())
}

impl Sender {
    pub fn new(target: Target) -> std::io::Result<Sender> {
        let conn = match target {
            Target::Udp(a) => {
                let bind: SocketAddr = if a.is_ipv4() {
                    "0.0.0.0:0".parse().expect("literal")
                } else {
                    "[::]:0".parse().expect("literal")
                };
                let s = UdpSocket::bind(bind)?;
                s.connect(a)?;
                Conn::Udp(s)
            }
            // Connect now, so a wrong address shows at start; later failures reconnect.
            Target::Tcp(a) => Conn::Tcp(Some(TcpStream::connect_timeout(
                &a,
                Duration::from_secs(5),
            )?)),
        };
        let host = hostname();
        let pid = std::process::id().to_string();
        let fmt = Config {
            facility: Facility::Daemon,
            hostname: Some(&host),
            app_name: Some("spanwatch"),
            proc_id: Some(&pid),
        }
        .into_formatter();
        Ok(Sender {
            target,
            conn,
            fmt,
            buf: Vec::with_capacity(2048),
        })
    }

    /// Sends one event; an error means the event did not reach the collector.
    pub fn send(&mut self, ev: &Value) -> std::io::Result<()> {
        self.buf.clear();
        format(&self.fmt, &mut self.buf, ev)?;
        match &mut self.conn {
            Conn::Udp(s) => s.send(&self.buf).map(|_| ()),
            Conn::Tcp(stream) => {
                let Target::Tcp(addr) = self.target else {
                    unreachable!("a TCP connection has a TCP target")
                };
                if stream.is_none() {
                    *stream = Some(TcpStream::connect_timeout(&addr, Duration::from_secs(2))?);
                }
                let s = stream.as_mut().expect("connected above");
                let r = write!(s, "{} ", self.buf.len()).and_then(|_| s.write_all(&self.buf));
                if r.is_err() {
                    *stream = None;
                }
                r
            }
        }
    }
}

/// RFC 5424 §6.3.3: `"`, `\` and `]` are escaped in a PARAM-VALUE.
fn sd_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '"' | '\\' | ']') {
            o.push('\\');
        }
        o.push(c);
    }
    o
}

fn severity(ev: &Value) -> Severity {
    match ev["event"]["severity"].as_u64().unwrap_or(0) {
        8.. => Severity::Crit,
        7 => Severity::Err,
        5 | 6 => Severity::Warning,
        _ => Severity::Notice,
    }
}

/// One event as an RFC 5424 message (no trailing newline).
pub fn format(f: &Formatter, w: &mut Vec<u8>, ev: &Value) -> std::io::Result<()> {
    let action: String = ev["event"]["action"]
        .as_str()
        .unwrap_or("event")
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(32)
        .collect();
    let ts = ev["@timestamp"].as_str().map(str::to_string);
    let mut params: Vec<(&str, String)> = vec![("action", action.clone())];
    for (name, v) in [
        ("outcome", &ev["event"]["outcome"]),
        ("src", &ev["source"]["ip"]),
        ("dst", &ev["destination"]["ip"]),
        ("dport", &ev["destination"]["port"]),
        ("user_hash", &ev["user"]["hash"]),
    ] {
        match v {
            Value::String(s) => params.push((name, sd_escape(s))),
            Value::Number(n) => params.push((name, n.to_string())),
            _ => {}
        }
    }
    let msg = serde_json::to_string(ev).map_err(std::io::Error::other)?;
    let data = [(
        "spanwatch@32473",
        params
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect::<Vec<_>>(),
    )];
    f.write_with_data(
        w,
        severity(ev),
        ts.map_or(Timestamp::None, Timestamp::PreformattedString),
        msg,
        Some(action.as_str()),
        data,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc5424_with_structured_data() {
        let f = Config {
            facility: Facility::Daemon,
            hostname: Some("sensor1"),
            app_name: Some("spanwatch"),
            proc_id: Some("42"),
        }
        .into_formatter();
        let ev = serde_json::json!({
            "@timestamp": "2026-11-26T06:00:00.5Z",
            "event": {"action": "ftp-cleartext-login", "outcome": "success", "severity": 8},
            "source": {"ip": "198.18.0.1"},
            "destination": {"ip": "198.18.0.2", "port": 21},
            "user": {"hash": "ab\"c]"},
        });
        let mut w = Vec::new();
        format(&f, &mut w, &ev).unwrap();
        let s = String::from_utf8(w).unwrap();
        // PRI = daemon (3) * 8 + crit (2) = 26; MSG is UTF-8 with its BOM (RFC 5424 §6.4).
        assert!(
            s.starts_with(
                "<26>1 2026-11-26T06:00:00.5Z sensor1 spanwatch 42 ftp-cleartext-login \
                 [spanwatch@32473 action=\"ftp-cleartext-login\" outcome=\"success\" \
                 src=\"198.18.0.1\" dst=\"198.18.0.2\" dport=\"21\" user_hash=\"ab\\\"c\\]\"] \u{feff}{"
            ),
            "{s}"
        );
        assert!(s.ends_with('}'));
    }

    #[test]
    fn parses_targets() {
        assert_eq!(
            Target::parse("udp://127.0.0.1:514"),
            Ok(Target::Udp("127.0.0.1:514".parse().unwrap()))
        );
        assert!(Target::parse("tcp://[::1]:6514").is_ok());
        assert!(Target::parse("http://x:1").is_err());
        assert!(Target::parse("127.0.0.1:514").is_err());
    }
}
