//! spanwatch analyzer: everything between a captured frame and a counter. Read in pipeline order:
//! `source` (files) → `decode` + `hash` + `timestamps` (reader thread) → `batch` (to workers) →
//! `worker` (`flow` table, `frag` and `stream` reassembly, `protocols/*`) → counters and events.
//! `pipeline` wires the threads for an offline read (`parallel`: the reader that scales with the
//! workers, for libpcap files); `timeline` keeps counters over capture time
//! for the report; `prefault` maps the workers' flow slabs ahead of them. This crate knows no
//! command line and never imports the `xdp` crate.

pub mod batch;
pub mod decode;
pub mod flow;
pub mod flow_index;
pub mod frag;
pub mod hash;
mod parallel;
pub mod pipeline;
pub mod prefault;
pub mod protocols;
pub mod source;
pub mod spin;
pub mod stream;
pub mod timeline;
pub mod timestamps;
pub mod worker;
