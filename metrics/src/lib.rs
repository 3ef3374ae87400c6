//! spanwatch metrics: the series contract (`schema`), per-producer counters merged on read
//! (`counters`), the Prometheus text exposition and `/metrics` endpoint (`expo`, `http`), and the
//! NDJSON event log (`events`) and its RFC 5424 syslog copy (`syslog`). This crate never sees a packet or a password: it holds numbers and
//! the events producers hand it.

pub mod counters;
pub mod events;
pub mod expo;
pub mod http;
pub mod schema;
pub mod syslog;

pub use counters::{Counters, Hub, LocalHist, Shared};
pub use schema::*;
