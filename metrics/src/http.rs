//! The `/metrics` endpoint, served by `tiny_http` on its own thread. Each request renders a fresh
//! merged snapshot; nothing here touches the packet path.

use crate::counters::Hub;
use crate::expo::{render, Info};
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

/// A running endpoint; dropping it leaves the thread running until `stop`.
pub struct Server {
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
    pub addr: SocketAddr,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {reason}")]
pub struct ListenError {
    pub addr: String,
    pub reason: String,
}

impl Server {
    pub fn start(addr: &str, hub: Hub, info: Info) -> Result<Server, ListenError> {
        let server = tiny_http::Server::http(addr).map_err(|e| ListenError {
            addr: addr.to_string(),
            reason: e.to_string(),
        })?;
        let local = server.server_addr().to_ip().ok_or_else(|| ListenError {
            addr: addr.to_string(),
            reason: "not an IP socket".into(),
        })?;
        let server = Arc::new(server);
        let s2 = server.clone();
        let thread = std::thread::Builder::new()
            .name("metrics-http".into())
            .spawn(move || {
                for req in s2.incoming_requests() {
                    let path = req.url().split('?').next().unwrap_or("");
                    let resp = match (req.method(), path) {
                        (tiny_http::Method::Get, "/metrics") => {
                            let body = render(&hub.snapshot(), &info);
                            let ct = tiny_http::Header::from_bytes(
                                &b"Content-Type"[..],
                                &b"text/plain; version=0.0.4; charset=utf-8"[..],
                            )
                            .expect("static header");
                            tiny_http::Response::from_string(body).with_header(ct)
                        }
                        (tiny_http::Method::Get, "/") => {
                            tiny_http::Response::from_string("spanwatch: metrics at /metrics\n")
                        }
                        _ => tiny_http::Response::from_string("not found\n").with_status_code(404),
                    };
                    let _ = req.respond(resp);
                }
            })
            .map_err(|e| ListenError {
                addr: addr.to_string(),
                reason: e.to_string(),
            })?;
        Ok(Server {
            server,
            thread: Some(thread),
            addr: local,
        })
    }

    pub fn stop(mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters::Counters;
    use crate::schema::{slot, Source};
    use std::io::{Read, Write};

    fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn serves_merged_metrics_on_loopback() {
        let hub = Hub::new();
        let p = hub.register();
        let mut c = Counters::new();
        c.add(slot::packets(Source::Pcap), 42);
        p.publish(&c);
        let srv = Server::start("127.0.0.1:0", hub, Info::default()).unwrap();
        let body = get(srv.addr, "/metrics");
        assert!(body.starts_with("HTTP/1.1 200"), "{body}");
        assert!(
            body.contains("spanwatch_packets_total{source=\"pcap\"} 42"),
            "{body}"
        );
        assert!(get(srv.addr, "/nope").starts_with("HTTP/1.1 404"));
        srv.stop();
    }
}
