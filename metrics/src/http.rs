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
