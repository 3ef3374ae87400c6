//! pcapng copies of libpcap captures (written with `pcap-file`), for the tests and benchmarks
//! of the pcapng readers: either as a capture tool writes them (one section, one interface,
//! microseconds), or in a layout that uses what the format allows and readers get wrong — several
//! interfaces with their own time units and offsets, packets interleaved across them, options on
//! packets, simple packet blocks (no time, no interface of their own), blocks of unknown type, an
//! interface declared mid-file, and a second section in the other byte order.

use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::section_header::SectionHeaderBlock;
use pcap_file::pcapng::blocks::simple_packet::SimplePacketBlock;
use pcap_file::pcapng::blocks::unknown::UnknownBlock;
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::{DataLink, Endianness, PcapResult, TsResolution};
use std::borrow::Cow;
use std::time::Duration;

/// How `to_pcapng` lays a capture out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// One little-endian section, one Ethernet interface in the capture's time unit
    /// (microseconds or nanoseconds).
    Plain,
    /// Everything below, by packet index `i` of `n`: three interfaces in the first section
    /// (microseconds; nanoseconds offset by 1000 s; 2^-20 s) taking packets in turn, a fourth
    /// (nanoseconds) declared at `n / 4` and taking every fourth packet from there; from `n / 2`
    /// a big-endian section with two interfaces (microseconds, nanoseconds) taking packets in
    /// turn; an option on every 97th packet; every 101st a simple packet block; an unknown block
    /// before every 499th.
    Rich,
}

/// A time unit an interface declares (`if_tsresol`), with an offset in seconds (`if_tsoffset`).
#[derive(Clone, Copy)]
struct Unit {
    tsresol: Option<u8>,
    offset_s: u64,
}

const MICRO: Unit = Unit {
    tsresol: None,
    offset_s: 0,
};
const NANO: Unit = Unit {
    tsresol: Some(9),
    offset_s: 0,
};
const NANO_OFFSET: Unit = Unit {
    tsresol: Some(9),
    offset_s: 1000,
};
/// 2^-20 s (the high bit: a power of two).
const BINARY: Unit = Unit {
    tsresol: Some(0x80 | 20),
    offset_s: 0,
};

impl Unit {
    /// `ns` since the epoch in this unit (less the offset), as the EPB's 64-bit field.
    fn units(self, ns: u128) -> u64 {
        let ns = ns.saturating_sub(self.offset_s as u128 * 1_000_000_000);
        let u = match self.tsresol {
            None => ns / 1000,
            Some(r) if r & 0x80 != 0 => (ns << (r & 0x7f)) / 1_000_000_000,
            Some(r) => ns * 10u128.pow(r as u32) / 1_000_000_000,
        };
        u as u64
    }

    fn idb(self) -> InterfaceDescriptionBlock<'static> {
        let mut options = Vec::new();
        if let Some(r) = self.tsresol {
            options.push(InterfaceDescriptionOption::IfTsResol(r));
        }
        if self.offset_s != 0 {
            options.push(InterfaceDescriptionOption::IfTsOffset(self.offset_s));
        }
        InterfaceDescriptionBlock {
            linktype: DataLink::ETHERNET,
            snaplen: 0xffff,
            options,
        }
    }
}

/// The libpcap capture `legacy` (Ethernet) as pcapng in `layout`.
pub fn to_pcapng(legacy: &[u8], layout: Layout) -> PcapResult<Vec<u8>> {
    let mut reader = PcapReader::new(legacy)?;
    let plain = match reader.header().ts_resolution {
        TsResolution::MicroSecond => MICRO,
        TsResolution::NanoSecond => NANO,
    };
    let mut packets = Vec::new();
    while let Some(p) = reader.next_packet() {
        let p = p?;
        packets.push((p.timestamp.as_nanos(), p.orig_len, p.data.into_owned()));
    }
    let n = packets.len() as u64;
    let section = |endianness| SectionHeaderBlock {
        endianness,
        ..SectionHeaderBlock::default()
    };
    let mut w = PcapNgWriter::with_section_header(Vec::new(), section(Endianness::Little))?;
    // The current section's interfaces, in order of their index there.
    let mut units: Vec<Unit> = match layout {
        Layout::Plain => vec![plain],
        Layout::Rich => vec![MICRO, NANO_OFFSET, BINARY],
    };
    for u in &units {
        w.write_pcapng_block(u.idb())?;
    }
    for (i, (ns, orig_len, data)) in (0u64..).zip(packets) {
        let rich = layout == Layout::Rich;
        if rich && i == n / 4 {
            units.push(NANO);
            w.write_pcapng_block(NANO.idb())?;
        }
        if rich && i == n / 2 {
            w.write_pcapng_block(section(Endianness::Big))?;
            units = vec![MICRO, NANO];
            for u in &units {
                w.write_pcapng_block(u.idb())?;
            }
        }
        if rich && i % 499 == 13 {
            w.write_pcapng_block(UnknownBlock::new(0x0bad, 20, &[0xee; 8]))?;
        }
        if rich && i % 101 == 7 {
            w.write_pcapng_block(SimplePacketBlock {
                original_len: orig_len,
                data: Cow::Owned(data),
            })?;
            continue;
        }
        let iface = match layout {
            Layout::Plain => 0,
            // Before the fourth interface: three in turn; then four; then the second section's two.
            Layout::Rich if i < n / 4 => i % 3,
            Layout::Rich if i < n / 2 => i % 4,
            Layout::Rich => i % 2,
        };
        let options = if rich && i % 97 == 5 {
            vec![EnhancedPacketOption::Flags(1)]
        } else {
            Vec::new()
        };
        w.write_pcapng_block(EnhancedPacketBlock {
            interface_id: iface as u32,
            timestamp: Duration::from_nanos(units[iface as usize].units(ns)),
            original_len: orig_len,
            data: Cow::Owned(data),
            options,
        })?;
    }
    Ok(w.into_inner())
}
