//! The NDJSON event log: credential alerts and timestamp anomalies, one JSON object per line with
//! Elastic Common Schema field names, so a SIEM can ingest the file as it is. Producers hand events
//! to a bounded channel; one writer thread writes them as JSON lines (file or stdout, reopened by
//! name on SIGHUP for log rotation) and, with `--syslog`, sends each to a collector as RFC 5424. Offline the producer
//! waits when the writer falls behind; live it drops and counts (`spanwatch_events_dropped_total`).
//! A password never reaches this module: the FTP analyzer keeps it in the worker.

use crate::{slot, Counters, Hub};
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TrySendError};
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
                // Full: the writer is behind. Disconnected: it stopped (a write failed, and said so).
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
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

/// Where events go: an NDJSON file (or "-" for stdout), a syslog collector, or both.
#[derive(Default, Clone)]
pub struct Outputs {
    pub file: Option<String>,
    pub syslog: Option<crate::syslog::Target>,
}

fn open(path: &PathBuf) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl EventWriter {
    /// Starts the writer; None when `out` names no output. `block`: producers wait instead of
    /// dropping. Events the collector did not take count in `spanwatch_events_dropped_total`
    /// (published through `hub`).
    pub fn start(
        out: &Outputs,
        block: bool,
        hub: &Hub,
    ) -> std::io::Result<Option<(EventWriter, EventSink)>> {
        if out.file.is_none() && out.syslog.is_none() {
            return Ok(None);
        }
        let target = match out.file.as_deref() {
            Some("-") => Some(Target::Stdout),
            Some(p) => Some(Target::File(PathBuf::from(p))),
            None => None,
        };
        // Open once here so a bad path or collector is reported before any packet is read.
        let first = match &target {
            Some(Target::File(p)) => Some(open(p)?),
            _ => None,
        };
        let syslog = match &out.syslog {
            Some(t) => Some(crate::syslog::Sender::new(t.clone())?),
            None => None,
        };
        let (tx, rx) = bounded::<Value>(4096);
        let reopen = Arc::new(AtomicBool::new(false));
        let w = Writer {
            target,
            file: None,
            syslog,
            reopen: reopen.clone(),
            counters: Counters::new(),
            publish: hub.register(),
        };
        let thread = std::thread::Builder::new()
            .name("events".into())
            .spawn(move || w.run(rx, first))?;
        Ok(Some((
            EventWriter {
                thread: Some(thread),
                reopen,
            },
            EventSink {
                tx: Some(tx),
                block,
            },
        )))
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

struct Writer {
    target: Option<Target>,
    file: Option<Box<dyn Write + Send>>,
    syslog: Option<crate::syslog::Sender>,
    reopen: Arc<AtomicBool>,
    counters: Counters,
    publish: Arc<crate::counters::Shared>,
}

impl Writer {
    fn run(mut self, rx: Receiver<Value>, first: Option<File>) -> std::io::Result<u64> {
        self.file = match (&self.target, first) {
            (Some(Target::File(_)), Some(f)) => Some(Box::new(BufWriter::new(f))),
            (Some(Target::Stdout), _) => Some(Box::new(BufWriter::new(std::io::stdout()))),
            _ => None,
        };
        let mut n = 0u64;
        let mut syslog_failures = 0u64;
        loop {
            // Wake now and then so a rotated file is let go even when no event comes.
            let ev = match rx.recv_timeout(std::time::Duration::from_millis(200)) {
                Ok(ev) => Some(ev),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            if self.reopen.swap(false, Ordering::Relaxed) {
                self.reopen_file();
            }
            let Some(ev) = ev else { continue };
            if let Some(out) = &mut self.file {
                serde_json::to_writer(&mut *out, &ev)?;
                out.write_all(b"\n")?;
                if rx.is_empty() {
                    out.flush()?;
                }
            }
            if let Some(s) = &mut self.syslog {
                if let Err(e) = s.send(&ev) {
                    syslog_failures += 1;
                    if syslog_failures <= 3 {
                        eprintln!("spanwatch: syslog: {e} (event counted in spanwatch_events_dropped_total)");
                    }
                    self.counters.inc(slot::EVENTS_DROPPED);
                    self.publish.publish(&self.counters);
                }
            }
            n += 1;
        }
        if let Some(out) = &mut self.file {
            out.flush()?;
        }
        Ok(n)
    }

    /// SIGHUP: close the file and open it again by name (after logrotate moved it). On failure
    /// the old file stays in use and the reason is printed.
    fn reopen_file(&mut self) {
        let Some(Target::File(p)) = &self.target else {
            return;
        };
        if let Some(out) = &mut self.file {
            let _ = out.flush();
        }
        match open(p) {
            Ok(f) => self.file = Some(Box::new(BufWriter::new(f))),
            Err(e) => eprintln!(
                "spanwatch: reopening {}: {e}; still writing to the old file",
                p.display()
            ),
        }
    }
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

    /// A writer to `e.ndjson` in a fresh directory named after `tag`.
    fn file_writer(tag: &str) -> (PathBuf, PathBuf, EventWriter, EventSink) {
        let dir = std::env::temp_dir().join(format!("spanwatch-{tag}-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let p = dir.join("e.ndjson");
        let out = Outputs {
            file: Some(p.to_str().unwrap().to_string()),
            syslog: None,
        };
        let (w, sink) = EventWriter::start(&out, true, &Hub::new())
            .unwrap()
            .unwrap();
        (dir, p, w, sink)
    }

    #[test]
    fn writes_one_line_per_event() {
        let (dir, p, w, sink) = file_writer("ev");
        sink.send(serde_json::json!({"a": 1}));
        sink.send(serde_json::json!({"b": 2}));
        drop(sink);
        assert_eq!(w.finish().unwrap(), 2);
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text, "{\"a\":1}\n{\"b\":2}\n");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sighup_flag_reopens_the_file_by_name() {
        let (dir, p, w, sink) = file_writer("rot");
        sink.send(serde_json::json!({"n": 1}));
        // Wait for the line, rotate as logrotate does, then signal.
        for _ in 0..100 {
            if std::fs::read_to_string(&p)
                .unwrap_or_default()
                .contains("n")
            {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        std::fs::rename(&p, dir.join("e.ndjson.1")).unwrap();
        w.reopen.store(true, Ordering::Relaxed);
        // The writer lets go of the old file within its 200 ms wake-up, with no event needed.
        for _ in 0..100 {
            if p.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(p.exists(), "not reopened without an event");
        sink.send(serde_json::json!({"n": 2}));
        drop(sink);
        assert_eq!(w.finish().unwrap(), 2);
        assert_eq!(
            std::fs::read_to_string(dir.join("e.ndjson.1")).unwrap(),
            "{\"n\":1}\n"
        );
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "{\"n\":2}\n");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
