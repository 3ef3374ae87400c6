//! pcap and pcapng files (optionally gzip-compressed) read in a stream through `pcap-parser`:
//! microsecond and nanosecond pcap, pcapng with several sections and interfaces, `if_tsresol` and
//! `if_tsoffset`. The read buffer is fixed (256 KiB, grown only for a large block, to a fixed
//! ceiling), never sized by a field of the file. A truncated last record is counted, not fatal.

use super::Frame;
use pcap_parser::pcapng::Block;
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{create_reader, PcapBlockOwned, PcapError};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

const BUF: usize = 256 * 1024;
const MAX_BUF: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{path}: {reason}")]
    Open { path: String, reason: String },
    #[error("{path}: not a pcap or pcapng file")]
    NotCapture { path: String },
    #[error("{path}: empty file")]
    Empty { path: String },
}

/// How reading a file ended, beyond the frames it yielded.
#[derive(Debug, Default, Clone)]
pub struct FileStats {
    pub frames: u64,
    /// A record cut short at the end of the file.
    pub truncated_records: u64,
    /// Corrupt data that stopped the read early (offset, reason).
    pub corrupt: Option<(u64, String)>,
    /// Frames of a link type the decoder does not know.
    pub unsupported_link: u64,
    pub bytes_read: u64,
}

/// What a pcapng interface description says of its packets.
#[derive(Clone, Copy, Debug)]
pub struct Iface {
    link: u32,
    /// Units per second of the timestamps.
    res: u64,
    offset_s: i64,
    snaplen: u32,
}

impl Iface {
    /// An interface no description names: Ethernet, microseconds.
    pub const UNKNOWN: Iface = Iface {
        link: 1,
        res: 1_000_000,
        offset_s: 0,
        snaplen: 0,
    };

    /// A packet's time (`units` in the interface's unit) in ns since the epoch: the usual
    /// units (µs, ns, no offset) in 64-bit arithmetic, any other as `ng_ts`.
    #[inline(always)]
    fn ts(&self, units: u64) -> i64 {
        if self.offset_s == 0 {
            if self.res == 1_000_000_000 && units <= i64::MAX as u64 {
                return units as i64;
            }
            if self.res == 1_000_000 && units <= i64::MAX as u64 / 1000 {
                return units as i64 * 1000;
            }
        }
        ng_ts(units, self.res, self.offset_s)
    }
}

pub struct PcapFile {
    path: String,
    /// Where it was opened from (None for a capture handed over as a reader).
    fs_path: Option<std::path::PathBuf>,
    reader: Box<dyn PcapReaderIterator + Send>,
    /// Legacy pcap: link type and whether timestamps are in ns.
    legacy: Option<(u32, bool, u32)>,
    ng: NgState,
    /// A pcapng block has been read: the file is pcapng (its blocks are checked before the
    /// parser reads them, `ng_too_short`).
    pcapng: bool,
    /// The reader's buffer size: BUF, doubled for each record too large for it, up to MAX_BUF.
    buf_cap: usize,
    pub size: u64,
}

fn open_reader(path: &Path) -> Result<(Box<dyn Read + Send>, u64), std::io::Error> {
    let mut f = File::open(path)?;
    let meta = f.metadata()?;
    if meta.is_dir() {
        return Err(std::io::Error::other("is a directory"));
    }
    let mut magic = [0u8; 2];
    let n = f.read(&mut magic)?;
    drop(f);
    let f = File::open(path)?;
    if n == 2 && magic == [0x1f, 0x8b] {
        Ok((
            Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(f))),
            meta.len(),
        ))
    } else {
        Ok((Box::new(f), meta.len()))
    }
}

impl PcapFile {
    pub fn open(path: &Path) -> Result<PcapFile, ReadError> {
        let p = path.display().to_string();
        let (r, size) = open_reader(path).map_err(|e| ReadError::Open {
            path: p.clone(),
            reason: io_reason(&e),
        })?;
        let mut f = Self::from_reader(p, r, size)?;
        f.fs_path = Some(path.to_path_buf());
        Ok(f)
    }

    /// The file again from its start as a legacy (libpcap) capture, for the parallel reader:
    /// None for pcapng, the "modified" pcap variant, or a capture not opened from a path.
    pub fn legacy(&self) -> Option<Legacy> {
        let path = self.fs_path.as_deref()?;
        let (mut r, _) = open_reader(path).ok()?;
        let mut h = [0u8; 24];
        r.read_exact(&mut h).ok()?;
        let (_, hdr) = pcap_parser::parse_pcap_header(&h).ok()?;
        if hdr.is_modified_format() {
            return None;
        }
        // Not compressed: the parallel reader reads it by position instead.
        let mut magic = [0u8; 2];
        let plain = File::open(path)
            .and_then(|mut f| {
                f.read_exact(&mut magic)?;
                let size = f.metadata()?.len();
                Ok((f, size))
            })
            .ok()
            .filter(|_| magic != [0x1f, 0x8b]);
        Some(Legacy {
            plain,
            reader: r,
            link: hdr.network.0 as u32,
            ns: hdr.is_nanosecond_precision(),
            big_endian: hdr.is_bigendian(),
        })
    }

    /// The file itself and its size when it is an uncompressed pcapng file opened from a path,
    /// for the parallel reader (which reads it by position); None otherwise.
    pub fn ng_plain(&self) -> Option<(File, u64)> {
        let path = self.fs_path.as_deref()?;
        let mut f = File::open(path).ok()?;
        let mut magic = [0u8; 4];
        f.read_exact(&mut magic).ok()?;
        if magic != pcap_parser::SHB_MAGIC.to_le_bytes() {
            return None;
        }
        let size = f.metadata().ok()?.len();
        Some((f, size))
    }

    /// A capture from any reader (`name` is how it is reported); `size` feeds the progress bar.
    pub fn from_reader(
        p: String,
        r: Box<dyn Read + Send>,
        size: u64,
    ) -> Result<PcapFile, ReadError> {
        let reader = match create_reader(BUF, r) {
            Ok(r) => r,
            Err(PcapError::Eof) => return Err(ReadError::Empty { path: p }),
            Err(PcapError::ReadError) => {
                return Err(ReadError::Open {
                    path: p,
                    reason: "read error".into(),
                })
            }
            Err(_) => return Err(ReadError::NotCapture { path: p }),
        };
        Ok(PcapFile {
            path: p,
            reader,
            fs_path: None,
            legacy: None,
            ng: NgState::default(),
            pcapng: false,
            buf_cap: BUF,
            size,
        })
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// Reads every frame, calling `f` for each; `progress` gets bytes consumed now and then.
    pub fn for_each(
        &mut self,
        mut f: impl FnMut(Frame<'_>),
        mut progress: impl FnMut(u64),
    ) -> FileStats {
        let mut st = FileStats::default();
        let mut last_ts: i64 = 0;
        let mut since_progress = 0u32;
        loop {
            // A pcapng block pcap-parser would misread (`ng_too_short`), once the file has
            // shown itself pcapng (its first block, a section header, is the parser's to check):
            // a libpcap file's header and records are not blocks.
            if self.pcapng {
                if let Some(why) = ng_too_short(self.reader.data(), self.ng.big_endian) {
                    st.corrupt = Some((st.bytes_read, why));
                    break;
                }
            }
            match self.reader.next() {
                Ok((offset, block)) => {
                    self.pcapng |= matches!(block, PcapBlockOwned::NG(_));
                    match block {
                        PcapBlockOwned::LegacyHeader(h) => {
                            self.legacy =
                                Some((h.network.0 as u32, h.is_nanosecond_precision(), h.snaplen));
                        }
                        PcapBlockOwned::Legacy(b) => {
                            let (link, ns, snaplen) = self.legacy.unwrap_or((1, false, 0));
                            let ts = legacy_ts(b.ts_sec, b.ts_usec, ns);
                            last_ts = ts;
                            let data = clamp(b.data, b.caplen, snaplen);
                            st.frames += 1;
                            f(Frame {
                                ts_ns: ts,
                                wire_len: b.origlen.max(data.len() as u32),
                                link,
                                iface: 0,
                                data,
                            });
                        }
                        PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                            let units = ((epb.ts_high as u64) << 32) | epb.ts_low as u64;
                            let fr =
                                self.ng
                                    .epb(epb.if_id, units, epb.caplen, epb.origlen, epb.data);
                            last_ts = fr.ts_ns;
                            st.frames += 1;
                            f(fr);
                        }
                        PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                            st.frames += 1;
                            f(self.ng.spb(spb.origlen, spb.data, last_ts));
                        }
                        PcapBlockOwned::NG(b) => self.ng.meta(&b),
                    }
                    // No shift here: `refill` moves the (short) unread tail once per buffer,
                    // where `consume` would move half the buffer every time it passed the middle.
                    self.reader.consume_noshift(offset);
                    st.bytes_read += offset as u64;
                    since_progress += 1;
                    if since_progress >= 4096 {
                        since_progress = 0;
                        progress(st.bytes_read);
                    }
                }
                Err(PcapError::Eof) => break,
                Err(PcapError::Incomplete(_)) => {
                    if self.reader.reader_exhausted() {
                        // Bytes left that do not make a whole record: a cut-off capture.
                        if !self.reader.data().is_empty() {
                            st.truncated_records += 1;
                        }
                        break;
                    }
                    if let Err(e) = self.reader.refill() {
                        st.corrupt = Some((st.bytes_read, format!("read failed: {e:?}")));
                        break;
                    }
                }
                Err(PcapError::BufferTooSmall) => {
                    // Double the buffer itself: doubling the bytes it holds (fewer, late in a
                    // buffer) may not grow it, which read as a record larger than 16 MiB where
                    // the file ends first (a cut-off last record, as the parallel reader says).
                    let cap = self.buf_cap * 2;
                    if cap > MAX_BUF || !self.reader.grow(cap) {
                        st.corrupt = Some((st.bytes_read, "record larger than 16 MiB".into()));
                        break;
                    }
                    self.buf_cap = cap;
                    if self.reader.refill().is_err() {
                        st.corrupt = Some((st.bytes_read, "read failed".into()));
                        break;
                    }
                }
                Err(e) => {
                    match corrupt_reason(&e) {
                        Some(reason) => st.corrupt = Some((st.bytes_read, reason)),
                        None => st.truncated_records += 1,
                    }
                    break;
                }
            }
        }
        progress(st.bytes_read);
        st
    }
}

/// Why a block stopped a read, as the report says it: None where the file merely ends inside it
/// (a cut-off last record). Names the parser's complaint, never the file's bytes.
pub fn corrupt_reason(e: &PcapError<&[u8]>) -> Option<String> {
    Some(match e {
        PcapError::HeaderNotRecognized => "unrecognized block".to_string(),
        PcapError::UnexpectedEof => return None,
        PcapError::NomError(_, kind) | PcapError::OwnedNomError(_, kind) => {
            format!("corrupt block ({})", kind.description())
        }
        other => format!("corrupt block ({other:?})")
            .chars()
            .take(120)
            .collect(),
    })
}

/// What a pcapng file's blocks so far say about the packets after them: the section's byte order
/// and interfaces (link type, time unit and offset of each). Both readers turn packet blocks into
/// frames through it, so they agree on every frame's time, link and interface.
#[derive(Clone, Debug, Default)]
pub struct NgState {
    /// The current section's byte order (a section header block sets it).
    pub big_endian: bool,
    ifaces: Vec<Iface>,
    /// Index in `ifaces` where the current section's interfaces start.
    section_base: usize,
}

/// The block types a pcapng reader turns into frames (in the section's byte order).
pub const NG_EPB: u32 = pcap_parser::EPB_MAGIC;
pub const NG_SPB: u32 = pcap_parser::SPB_MAGIC;

impl NgState {
    /// Takes in a block that is not a packet: a section header starts a new section (its byte
    /// order; interfaces numbered afresh), an interface description adds an interface.
    pub fn meta(&mut self, b: &Block<'_>) {
        match b {
            Block::SectionHeader(shb) => {
                self.big_endian = shb.big_endian();
                self.section_base = self.ifaces.len();
            }
            Block::InterfaceDescription(idb) => {
                self.ifaces.push(Iface {
                    link: idb.linktype.0 as u32,
                    res: ts_units(idb.if_tsresol).unwrap_or(1_000_000).max(1),
                    offset_s: idb.if_tsoffset,
                    snaplen: idb.snaplen,
                });
            }
            _ => {}
        }
    }

    /// The interface a packet block of type `ty` names (a simple packet block: the section's
    /// first), as its index in the file, and what is known of it.
    #[inline(always)]
    pub fn iface(&self, ty: u32, if_id: u32) -> (u32, Iface) {
        let idx = self.section_base + if ty == NG_SPB { 0 } else { if_id as usize };
        let ifc = self.ifaces.get(idx).copied().unwrap_or(Iface::UNKNOWN);
        (idx as u32, ifc)
    }

    /// The frame of an enhanced packet block (`units`: its 64-bit time in the interface's unit;
    /// `data`: its packet data, padding included).
    #[inline]
    pub fn epb<'a>(
        &self,
        if_id: u32,
        units: u64,
        caplen: u32,
        origlen: u32,
        data: &'a [u8],
    ) -> Frame<'a> {
        let (idx, ifc) = self.iface(NG_EPB, if_id);
        let data = clamp(data, caplen, ifc.snaplen);
        Frame {
            ts_ns: ifc.ts(units),
            wire_len: origlen.max(data.len() as u32),
            link: ifc.link,
            iface: idx,
            data,
        }
    }

    /// The frame of a simple packet block: the section's first interface, and no time of its
    /// own (it inherits `last_ts`, the packet's before it).
    #[inline]
    pub fn spb<'a>(&self, origlen: u32, data: &'a [u8], last_ts: i64) -> Frame<'a> {
        let (idx, ifc) = self.iface(NG_SPB, 0);
        let data = clamp(data, origlen, ifc.snaplen);
        Frame {
            ts_ns: last_ts,
            wire_len: origlen.max(data.len() as u32),
            link: ifc.link,
            iface: idx,
            data,
        }
    }
}

/// One pcapng block at the start of a buffer, as the sequential reader's parser reads it.
pub enum NgStep<'a> {
    /// A packet block (`ty`: enhanced or simple) of `len` bytes.
    Packet { ty: u32, len: usize },
    /// Any other block, parsed (a section header, an interface description, ...).
    Meta { len: usize, block: Block<'a> },
    /// The buffer holds too little of the block: at least this many bytes more are needed.
    Need(usize),
    /// The block stops the read: why (None: the file ends inside it).
    Stop(Option<String>),
}

/// A pcapng section's byte order: known where the code is compiled (`Le`, `Be`: a loop over a
/// section's blocks reads their fields without asking), or only at run time (`bool`: big-endian).
pub trait Order: Copy {
    fn big(self) -> bool;
    /// The order after a section header that says `big`: a compiled-in order stays (its caller
    /// knows no section changes it), a run-time one follows.
    fn then(self, big: bool) -> Self;
    /// The 32-bit field at `at` of a block (which holds it).
    #[inline(always)]
    fn u32(self, b: &[u8], at: usize) -> u32 {
        let f: [u8; 4] = b[at..at + 4].try_into().expect("a 4-byte slice");
        if self.big() {
            u32::from_be_bytes(f)
        } else {
            u32::from_le_bytes(f)
        }
    }
}

#[derive(Clone, Copy)]
pub struct Le;
#[derive(Clone, Copy)]
pub struct Be;

impl Order for Le {
    #[inline(always)]
    fn big(self) -> bool {
        false
    }
    fn then(self, _: bool) -> Self {
        self
    }
}
impl Order for Be {
    #[inline(always)]
    fn big(self) -> bool {
        true
    }
    fn then(self, _: bool) -> Self {
        self
    }
}
impl Order for bool {
    #[inline(always)]
    fn big(self) -> bool {
        self
    }
    fn then(self, big: bool) -> Self {
        big
    }
}

/// The 32-bit field at `at` of a pcapng block, in byte order `o` (the block holds it).
#[inline(always)]
pub fn ng_u32(b: &[u8], at: usize, o: impl Order) -> u32 {
    o.u32(b, at)
}

/// The block at the start of `b` in a section of byte order `be`: the parser's verdict, found
/// without it for the usual block (an enhanced packet block without options, whole in `b`,
/// whose two lengths agree: what the parser accepts as such).
#[inline(always)]
pub fn ng_step<O: Order>(b: &[u8], be: O) -> NgStep<'_> {
    match ng_epb_len(b, be) {
        Some(len) => NgStep::Packet { ty: NG_EPB, len },
        None => ng_parse(b, be.big()),
    }
}

/// The length of the usual block at the start of `b` (`ng_step` without the parser): an enhanced
/// packet block without options, whole in `b`, whose two lengths agree. None: any other block.
#[inline(always)]
pub fn ng_epb_len<O: Order>(b: &[u8], be: O) -> Option<usize> {
    if b.len() < 32 || ng_u32(b, 0, be) != NG_EPB {
        return None;
    }
    let len = ng_u32(b, 4, be) as usize;
    if len < 32 || len > b.len() {
        return None;
    }
    let caplen = ng_u32(b, 20, be);
    (caplen < u32::MAX - 4
        && 32 + ((caplen as usize + 3) & !3) == len
        && ng_u32(b, len - 4, be) as usize == len)
        .then_some(len)
}

/// Why the pcapng block at the start of `b` (in a section of byte order `be`) cannot be handed
/// to pcap-parser: it states a total length below the 12 bytes of its own framing (its type, and
/// its length before and after). pcap-parser 0.17 takes those 12 from the stated length before
/// comparing that with its minimum for the type, which for a process information block is 4: a
/// stated length of 4 to 11 underflows there (a panic where overflow is checked, a demand for
/// 4 GiB more where it is not). A section header is left to the parser: its length is in its
/// own byte order.
pub fn ng_too_short(b: &[u8], be: bool) -> Option<String> {
    (b.len() >= 8 && ng_u32(b, 0, be) != pcap_parser::SHB_MAGIC && ng_u32(b, 4, be) < 12)
        .then(|| "corrupt block (total length below 12)".to_string())
}

/// `ng_step` by the parser.
#[inline(never)]
fn ng_parse(b: &[u8], be: bool) -> NgStep<'_> {
    if let Some(why) = ng_too_short(b, be) {
        return NgStep::Stop(Some(why));
    }
    let parsed = if be {
        pcap_parser::pcapng::parse_block_be(b)
    } else {
        pcap_parser::pcapng::parse_block_le(b)
    };
    use pcap_parser::nom::{Err, Needed};
    match parsed {
        Ok((rest, block)) => {
            let len = b.len() - rest.len();
            match block {
                Block::EnhancedPacket(_) => NgStep::Packet { ty: NG_EPB, len },
                Block::SimplePacket(_) => NgStep::Packet { ty: NG_SPB, len },
                block => NgStep::Meta { len, block },
            }
        }
        Err(Err::Incomplete(Needed::Size(n))) => NgStep::Need(n.get()),
        Err(Err::Incomplete(Needed::Unknown)) => NgStep::Need(1),
        Err(Err::Error(e)) | Err(Err::Failure(e)) => NgStep::Stop(corrupt_reason(&e)),
    }
}

/// The interface number a packet block `blk` of type `ty` (byte order `be`) names within its
/// section (0 for a simple packet block, which names none).
#[inline(always)]
pub fn ng_if_id(blk: &[u8], ty: u32, be: impl Order) -> u32 {
    if ty == NG_EPB {
        ng_u32(blk, 8, be)
    } else {
        0
    }
}

/// The frame of a packet block `blk` of type `ty` that `ng_step` accepted, in byte order `be`,
/// on the interface of index `idx` that `ifc` describes (`last_ts`: the time a simple packet
/// block inherits). As `NgState::epb` and `NgState::spb` make it from the parser's fields.
#[inline(always)]
pub fn ng_packet<'a>(
    blk: &'a [u8],
    ty: u32,
    be: impl Order,
    (idx, ifc): (u32, &Iface),
    last_ts: i64,
) -> Frame<'a> {
    let body = &blk[..blk.len() - 4];
    let (ts_ns, orig, data) = if ty == NG_EPB {
        let units = (ng_u32(blk, 12, be) as u64) << 32 | ng_u32(blk, 16, be) as u64;
        let data = clamp(&body[28..], ng_u32(blk, 20, be), ifc.snaplen);
        (ifc.ts(units), ng_u32(blk, 24, be), data)
    } else {
        let orig = ng_u32(blk, 8, be);
        (last_ts, orig, clamp(&body[12..], orig, ifc.snaplen))
    };
    Frame {
        ts_ns,
        wire_len: orig.max(data.len() as u32),
        link: ifc.link,
        iface: idx,
        data,
    }
}

/// The units a second of an interface's times (its `if_tsresol`): 10^n, or 2^n where the top
/// bit is set; None where that does not fit in 64 bits. (pcap-parser's `build_ts_resolution`
/// refuses every power of two: it checks the exponent with the flag bit still in it.)
fn ts_units(tsresol: u8) -> Option<u64> {
    let n = (tsresol & 0x7f) as u32;
    if tsresol & 0x80 == 0 {
        10u64.checked_pow(n)
    } else {
        1u64.checked_shl(n)
    }
}

/// A pcapng time (`units` of `res` a second, `offset_s` seconds added) in ns since the epoch,
/// clamped to i64. The usual units (µs, ns) without a 128-bit division.
#[inline]
fn ng_ts(units: u64, res: u64, offset_s: i64) -> i64 {
    let ns = match res {
        1_000_000 => units as i128 * 1000,
        1_000_000_000 => units as i128,
        _ => (units as u128 * 1_000_000_000 / res as u128) as i128,
    } + offset_s as i128 * 1_000_000_000;
    ns.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// A legacy capture positioned after its 24-byte file header.
pub struct Legacy {
    /// The file itself and its size, when it is not compressed (readable at any position).
    pub plain: Option<(File, u64)>,
    pub reader: Box<dyn Read + Send>,
    pub link: u32,
    pub ns: bool,
    pub big_endian: bool,
}

/// Length of the file header of a legacy capture.
pub const LEGACY_HEADER: u64 = 24;
/// The largest record (header and data) either reader accepts; a larger one is corrupt data.
pub const MAX_RECORD: usize = MAX_BUF;

/// One legacy record at the start of `b` (parsed by pcap-parser): capture time in ns, wire length,
/// the captured bytes, and the record's length in the file. None while `b` holds less than a whole
/// record. Both readers turn records into frames here.
#[inline]
pub fn legacy_record(b: &[u8], big_endian: bool, ns: bool) -> Option<(i64, u32, &[u8], usize)> {
    let parsed = if big_endian {
        pcap_parser::parse_pcap_frame_be(b)
    } else {
        pcap_parser::parse_pcap_frame(b)
    };
    let (rest, r) = parsed.ok()?;
    let ts = legacy_ts(r.ts_sec, r.ts_usec, ns);
    let data = clamp(r.data, r.caplen, 0);
    Some((
        ts,
        r.origlen.max(data.len() as u32),
        data,
        b.len() - rest.len(),
    ))
}

/// A legacy record's time in ns since the epoch (`frac` is µs, or ns in a nanosecond capture).
#[inline]
fn legacy_ts(sec: u32, frac: u32, ns: bool) -> i64 {
    sec as i64 * 1_000_000_000 + if ns { frac as i64 } else { frac as i64 * 1000 }
}

/// The caplen field of the legacy record header at the start of `b` (which holds ≥ 16 bytes).
#[inline]
pub fn legacy_caplen(b: &[u8], big_endian: bool) -> u32 {
    legacy_u32(&b[8..], big_endian)
}

/// The 32-bit header field at the start of `b` (≥ 4 bytes), in the capture's byte order.
#[inline]
pub fn legacy_u32(b: &[u8], big_endian: bool) -> u32 {
    let f: [u8; 4] = b[..4].try_into().expect("a 4-byte slice");
    if big_endian {
        u32::from_be_bytes(f)
    } else {
        u32::from_le_bytes(f)
    }
}

/// The captured bytes of a record, never more than its caplen (pcapng pads to 32 bits).
fn clamp(data: &[u8], caplen: u32, _snaplen: u32) -> &[u8] {
    &data[..data.len().min(caplen as usize)]
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block that states a total length below the 12 bytes of its own framing stops the read
    /// as corrupt, whatever its type, in either byte order; one of 12 is read on (found by the
    /// fuzzer: a process information block of length 4 underflowed inside pcap-parser).
    #[test]
    fn a_block_shorter_than_its_framing_is_corrupt() {
        for ty in [pcap_parser::PIB_MAGIC, 1, 6, 0x4242_4242] {
            for len in [0u32, 4, 8, 11] {
                for be in [false, true] {
                    let mut b = Vec::new();
                    let w = |v: u32| if be { v.to_be_bytes() } else { v.to_le_bytes() };
                    b.extend(w(ty));
                    b.extend(w(len));
                    b.extend([0u8; 24]);
                    assert!(
                        matches!(ng_step(&b, be), NgStep::Stop(Some(_))),
                        "type {ty:#x} length {len} big-endian {be}"
                    );
                }
            }
        }
        let mut unknown = Vec::new();
        for v in [0x4242_4242u32, 12, 12] {
            unknown.extend(v.to_le_bytes());
        }
        assert!(matches!(
            ng_step(&unknown, false),
            NgStep::Meta { len: 12, .. }
        ));
    }

    /// A libpcap file whose header's first eight bytes, read as a pcapng block's type and
    /// length, would state a length below 12 (version 2.0: minor version 0) is read as libpcap,
    /// not stopped as a short block (found by fuzz parallel_read: the readers disagreed).
    #[test]
    fn a_libpcap_header_is_not_a_short_block() {
        let mut f = Vec::new();
        f.extend([0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 0, 0]);
        f.extend([0; 8]);
        f.extend(65535u32.to_le_bytes());
        f.extend(1u32.to_le_bytes());
        for v in [7u32, 0, 14, 14] {
            f.extend(v.to_le_bytes());
        }
        f.extend([0u8; 14]);
        let (frames, st) = read_whole(f);
        assert_eq!((frames, st.corrupt, st.truncated_records), (1, None, 0));
    }

    /// `file`'s frames and stats as the sequential reader reads it.
    fn read_whole(file: Vec<u8>) -> (u64, FileStats) {
        let size = file.len() as u64;
        let r = Box::new(std::io::Cursor::new(file));
        let mut p = PcapFile::from_reader("t".into(), r, size).unwrap();
        let mut frames = 0;
        let st = p.for_each(|_| frames += 1, |_| {});
        (frames, st)
    }

    /// The same block stops the sequential reader the same way, after the packet before it.
    #[test]
    fn a_block_shorter_than_its_framing_stops_the_sequential_reader() {
        for short in [4u32, 8] {
            let mut f = pcapng_ns_offset(5);
            let at = f.len() as u64;
            f.extend(pcap_parser::PIB_MAGIC.to_le_bytes());
            f.extend(short.to_le_bytes());
            f.extend([0u8; 24]);
            let (frames, st) = read_whole(f);
            assert_eq!(frames, 1);
            assert_eq!(
                st.corrupt,
                Some((at, "corrupt block (total length below 12)".to_string()))
            );
        }
    }

    fn le16(v: u16) -> [u8; 2] {
        v.to_le_bytes()
    }
    fn le32(v: u32) -> [u8; 4] {
        v.to_le_bytes()
    }

    /// A pcapng with one interface whose timestamps are in nanoseconds (if_tsresol = 9) offset by
    /// 1000 s (if_tsoffset), and one packet.
    fn pcapng_ns_offset(units: u64) -> Vec<u8> {
        let mut f = Vec::new();
        // Section header block.
        f.extend(le32(0x0A0D_0D0A));
        f.extend(le32(28));
        f.extend(le32(0x1A2B_3C4D));
        f.extend(le16(1));
        f.extend(le16(0));
        f.extend((-1i64).to_le_bytes());
        f.extend(le32(28));
        // Interface description block with if_tsresol and if_tsoffset.
        let mut idb = Vec::new();
        idb.extend(le16(1)); // Ethernet
        idb.extend(le16(0));
        idb.extend(le32(65535));
        idb.extend([9, 0, 1, 0, 9, 0, 0, 0]); // if_tsresol = 10^-9
        idb.extend([14, 0, 8, 0]);
        idb.extend(1000i64.to_le_bytes()); // if_tsoffset = 1000 s
        idb.extend([0, 0, 0, 0]);
        f.extend(le32(1));
        f.extend(le32(idb.len() as u32 + 12));
        f.extend(&idb);
        f.extend(le32(idb.len() as u32 + 12));
        // Enhanced packet block: a 14-byte Ethernet header (padded to 16).
        let data = [0u8; 14];
        let mut epb = Vec::new();
        epb.extend(le32(0));
        epb.extend(le32((units >> 32) as u32));
        epb.extend(le32(units as u32));
        epb.extend(le32(data.len() as u32));
        epb.extend(le32(60));
        epb.extend(data);
        epb.extend([0, 0]);
        f.extend(le32(6));
        f.extend(le32(epb.len() as u32 + 12));
        f.extend(&epb);
        f.extend(le32(epb.len() as u32 + 12));
        f
    }

    #[test]
    fn time_units_decimal_and_binary() {
        assert_eq!(ts_units(6), Some(1_000_000));
        assert_eq!(ts_units(9), Some(1_000_000_000));
        assert_eq!(ts_units(19), Some(10u64.pow(19)));
        assert_eq!(ts_units(20), None);
        // 2^-20 s, and the largest power of two there is.
        assert_eq!(ts_units(0x80 | 20), Some(1 << 20));
        assert_eq!(ts_units(0x80 | 63), Some(1 << 63));
        assert_eq!(ts_units(0x80 | 64), None);
        assert_eq!(ng_ts(3 << 20, 1 << 20, 0), 3_000_000_000);
    }

    #[test]
    fn pcapng_tsresol_and_tsoffset() {
        let path =
            std::env::temp_dir().join(format!("spanwatch-tsresol-{}.pcapng", std::process::id()));
        std::fs::write(&path, pcapng_ns_offset(1_234_567_891)).unwrap();
        let mut f = PcapFile::open(&path).unwrap();
        let mut got = Vec::new();
        let st = f.for_each(
            |fr| got.push((fr.ts_ns, fr.wire_len, fr.link, fr.data.len())),
            |_| {},
        );
        let _ = std::fs::remove_file(&path);
        assert_eq!(st.frames, 1);
        assert_eq!(st.truncated_records, 0);
        assert_eq!(got, vec![(1000 * 1_000_000_000 + 1_234_567_891, 60, 1, 14)]);
    }
}
