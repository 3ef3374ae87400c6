//! The NDJSON event log: credential alerts and timestamp anomalies, one JSON object per line with
//! Elastic Common Schema field names, so a SIEM can ingest the file as it is. Producers hand events
//! to a bounded channel; one writer thread formats nothing but JSON lines. Offline the producer
//! waits when the writer falls behind; live it drops and counts (`spanwatch_events_dropped_total`).
//! A password never reaches this module: the FTP analyzer keeps it in the worker.

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use serde_json::Value;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Formats a packet time (ns since the Unix epoch) as RFC 3339 UTC with nanoseconds.
pub fn rfc3339(ts_ns: i64) -> String {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::from_unix_timestamp_nanos(ts_ns as i128)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_string())
}

/// What a producer holds: cheap to clone, one per worker.
#[derive(Clone)]
pub struct EventSink {
    tx: Option<Sender<Value>>,
    block: bool,
}

impl EventSink {
    /// A sink that discards everything (no `--events`).
    pub fn disabled() -> Self {
        EventSink {
            tx: None,
            block: false,
        }
    }
    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }
    /// Sends one event; returns false when it was dropped because the writer is behind.
    pub fn send(&self, ev: Value) -> bool {
        match &self.tx {
            None => true,
            Some(tx) if self.block => tx.send(ev).is_ok(),
            Some(tx) => match tx.try_send(ev) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => false,
                Err(TrySendError::Disconnected(_)) => true,
            },
        }
    }
}

enum Target {
    Stdout,
    File(PathBuf),
}

/// The writer thread and its reopen flag (set by SIGHUP for log rotation).
pub struct EventWriter {
    thread: Option<JoinHandle<std::io::Result<u64>>>,
    pub reopen: Arc<AtomicBool>,
}

fn open(path: &PathBuf) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl EventWriter {
    /// `path` is a file name or "-" for stdout. `block`: producers wait instead of dropping.
    pub fn start(path: &str, block: bool) -> std::io::Result<(EventWriter, EventSink)> {
        let target = if path == "-" {
            Target::Stdout
        } else {
            Target::File(PathBuf::from(path))
        };
        // Open once here so a bad path is reported before any packet is read.
        let first = match &target {
            Target::File(p) => Some(open(p)?),
            Target::Stdout => None,
        };
        let (tx, rx) = bounded::<Value>(4096);
        let reopen = Arc::new(AtomicBool::new(false));
        let r2 = reopen.clone();
        let thread = std::thread::Builder::new()
            .name("events".into())
            .spawn(move || run(rx, target, first, r2))?;
        Ok((
            EventWriter {
                thread: Some(thread),
                reopen,
            },
            EventSink {
                tx: Some(tx),
                block,
            },
        ))
    }

    /// Waits for every sink to be dropped and the queue to drain; returns events written.
    pub fn finish(mut self) -> std::io::Result<u64> {
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("event writer panicked"))),
            None => Ok(0),
        }
    }
}

fn run(
    rx: Receiver<Value>,
    target: Target,
    first: Option<File>,
    reopen: Arc<AtomicBool>,
) -> std::io::Result<u64> {
    let mut out: Box<dyn Write> = match (&target, first) {
        (Target::File(_), Some(f)) => Box::new(BufWriter::new(f)),
        _ => Box::new(BufWriter::new(std::io::stdout())),
    };
    let mut n = 0u64;
    while let Ok(ev) = rx.recv() {
        if reopen.swap(false, Ordering::Relaxed) {
            if let Target::File(p) = &target {
                out.flush()?;
                out = Box::new(BufWriter::new(open(p)?));
            }
        }
        serde_json::to_writer(&mut out, &ev)?;
        out.write_all(b"\n")?;
        n += 1;
        if rx.is_empty() {
            out.flush()?;
        }
    }
    out.flush()?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_has_nanoseconds_and_utc() {
        assert_eq!(
            rfc3339(1_500_000_000_123_456_789),
            "2017-07-14T02:40:00.123456789Z"
        );
        assert_eq!(rfc3339(-1_000_000_000), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn writes_one_line_per_event() {
        let dir = std::env::temp_dir().join(format!("spanwatch-ev-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let p = dir.join("e.ndjson");
        let (w, sink) = EventWriter::start(p.to_str().unwrap(), true).unwrap();
        sink.send(serde_json::json!({"a": 1}));
        sink.send(serde_json::json!({"b": 2}));
        drop(sink);
        assert_eq!(w.finish().unwrap(), 2);
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text, "{\"a\":1}\n{\"b\":2}\n");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
