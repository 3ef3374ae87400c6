//! Capture sources that feed the pipeline. Files are read here (`pcap`); the live AF_XDP source
//! lives in the `xdp` crate and is wired in by the binary. A source yields raw frames with their
//! capture time, wire length, link type and the identity of the timestamp source they belong to.

pub mod pcap;

/// One captured frame, borrowed from the source's buffer.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    pub ts_ns: i64,
    pub wire_len: u32,
    pub link: u32,
    /// Timestamp source within the input (a pcapng interface; a live queue).
    pub iface: u32,
    pub data: &'a [u8],
}
