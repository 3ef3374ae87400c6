//! Just enough TCP reassembly for the line and record protocols: per direction, bytes are handed
//! on in sequence order once; retransmissions and overlaps are trimmed; a few out-of-order segments
//! wait in a small bounded buffer; when that overflows the hole is declared a gap and the reader of
//! the stream is told. `LineBuf` cuts a stream into CRLF lines with a hard length limit. Neither
//! ever grows past its bound, whatever the traffic.

use std::fmt;

/// What a direction's consumer receives.
pub enum Chunk<'a> {
    Data(&'a [u8]),
    /// Bytes were lost (hole the buffer could not bridge): resynchronise.
    Gap,
}

const OOO_SEGMENTS: usize = 8;
const OOO_BYTES: usize = 32 * 1024;

#[derive(Default)]
pub struct Reassembler {
    next: Option<u32>,
    ooo: Vec<(u32, Vec<u8>)>,
    ooo_bytes: usize,
    pub gaps: u32,
}

impl fmt::Debug for Reassembler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never prints stream content (it may hold a password).
        write!(f, "Reassembler {{ buffered_segments: {} }}", self.ooo.len())
    }
}

#[inline]
fn diff(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

impl Reassembler {
    /// A direction whose next byte has sequence number `start` (None: wherever it is first seen).
    pub fn starting_at(start: Option<u32>) -> Self {
        Reassembler {
            next: start,
            ..Reassembler::default()
        }
    }

    /// Feeds one segment. `syn`/`fin` are the segment's flags (each takes one sequence number).
    pub fn push(&mut self, seq: u32, syn: bool, payload: &[u8], mut out: impl FnMut(Chunk<'_>)) {
        let seq = if syn { seq.wrapping_add(1) } else { seq };
        let next = match self.next {
            Some(n) => n,
            None => {
                // First sight of this direction: start here (the connection may predate the capture).
                self.next = Some(seq);
                seq
            }
        };
        if syn && diff(seq, next) != 0 && payload.is_empty() {
            return;
        }
        if payload.is_empty() {
            return;
        }
        let rel = diff(seq, next);
        if rel <= 0 {
            let skip = (-(rel as i64)) as usize;
            if skip >= payload.len() {
                return; // wholly retransmitted
            }
            out(Chunk::Data(&payload[skip..]));
            self.next = Some(next.wrapping_add((payload.len() - skip) as u32));
            if !self.ooo.is_empty() {
                self.drain(&mut out);
            }
            return;
        }
        // Ahead of what we have: a retransmission of a segment already held changes nothing
        // (even with the buffer full); anything else is held if there is room.
        if self.ooo.iter().any(|(s, _)| *s == seq) {
            return;
        }
        if self.ooo.len() < OOO_SEGMENTS && self.ooo_bytes + payload.len() <= OOO_BYTES {
            self.ooo_bytes += payload.len();
            self.ooo.push((seq, payload.to_vec()));
            return;
        }
        // No room: give up on the hole and resume at the earliest byte we hold.
        self.gaps += 1;
        out(Chunk::Gap);
        let earliest = self
            .ooo
            .iter()
            .map(|(s, _)| *s)
            .chain(std::iter::once(seq))
            .min_by(|a, b| diff(*a, *b).cmp(&0))
            .unwrap_or(seq);
        self.next = Some(earliest);
        if earliest == seq {
            out(Chunk::Data(payload));
            self.next = Some(seq.wrapping_add(payload.len() as u32));
        } else {
            self.ooo_bytes += payload.len();
            self.ooo.push((seq, payload.to_vec()));
        }
        self.drain(&mut out);
    }

    fn drain(&mut self, out: &mut impl FnMut(Chunk<'_>)) {
        loop {
            let Some(next) = self.next else { return };
            let Some(i) = self.ooo.iter().position(|(s, _)| diff(*s, next) <= 0) else {
                return;
            };
            let (s, data) = self.ooo.swap_remove(i);
            self.ooo_bytes -= data.len();
            let skip = (-(diff(s, next) as i64)) as usize;
            if skip < data.len() {
                out(Chunk::Data(&data[skip..]));
                self.next = Some(next.wrapping_add((data.len() - skip) as u32));
            }
        }
    }
}

/// Splits a byte stream into lines (LF-terminated, CR stripped), each at most `max` bytes.
pub struct LineBuf {
    buf: Vec<u8>,
    max: usize,
    discarding: bool,
    pub overlong: u32,
}

impl fmt::Debug for LineBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The buffer may hold a PASS line: never show it, nor its length.
        f.write_str("LineBuf { .. }")
    }
}

impl LineBuf {
    pub fn new(max: usize) -> Self {
        LineBuf {
            buf: Vec::new(),
            max,
            discarding: false,
            overlong: 0,
        }
    }

    /// Forgets a partial line (after a gap).
    pub fn reset(&mut self) {
        self.clear_buf();
        self.discarding = true;
    }

    fn clear_buf(&mut self) {
        // Overwrite before clearing so a partial PASS line does not linger in freed memory.
        self.buf.iter_mut().for_each(|b| *b = 0);
        self.buf.clear();
    }

    /// Feeds bytes; `f` gets each complete line. Over-long lines are counted and skipped.
    pub fn feed(&mut self, mut data: &[u8], mut f: impl FnMut(&[u8])) {
        while !data.is_empty() {
            match memchr::memchr(b'\n', data) {
                Some(i) => {
                    let part = &data[..i];
                    data = &data[i + 1..];
                    if self.discarding {
                        self.discarding = false;
                        self.clear_buf();
                        continue;
                    }
                    if self.buf.is_empty() {
                        if part.len() <= self.max {
                            f(strip_cr(part));
                        } else {
                            self.overlong += 1;
                        }
                    } else if self.buf.len() + part.len() <= self.max {
                        self.buf.extend_from_slice(part);
                        let line = std::mem::take(&mut self.buf);
                        f(strip_cr(&line));
                        self.buf = line;
                        self.clear_buf();
                    } else {
                        self.overlong += 1;
                        self.clear_buf();
                    }
                }
                None => {
                    if !self.discarding {
                        if self.buf.len() + data.len() <= self.max {
                            self.buf.extend_from_slice(data);
                        } else {
                            self.overlong += 1;
                            self.discarding = true;
                            self.clear_buf();
                        }
                    }
                    return;
                }
            }
        }
    }
}

fn strip_cr(l: &[u8]) -> &[u8] {
    l.strip_suffix(b"\r").unwrap_or(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(r: &mut Reassembler, segs: &[(u32, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (s, p) in segs {
            r.push(*s, false, p, |c| {
                if let Chunk::Data(d) = c {
                    out.extend_from_slice(d)
                }
            });
        }
        out
    }

    #[test]
    fn in_order_retransmit_and_overlap() {
        let mut r = Reassembler::default();
        let got = collect(
            &mut r,
            &[
                (100, b"USER"),
                (100, b"USER"),
                (102, b"ER al"),
                (107, b"ice\r\n"),
            ],
        );
        assert_eq!(got, b"USER alice\r\n");
    }

    #[test]
    fn out_of_order_is_buffered() {
        let mut r = Reassembler::default();
        let mut out = Vec::new();
        r.push(1, true, b"", |_| {});
        for (s, p) in [(2u32, &b"AB"[..]), (6, b"EF"), (4, b"CD")] {
            r.push(s, false, p, |c| {
                if let Chunk::Data(d) = c {
                    out.extend_from_slice(d)
                }
            });
        }
        assert_eq!(out, b"ABCDEF");
    }

    /// Pushes segments of one byte each at `seqs` (after a SYN at 0); returns the bytes handed on
    /// and the gaps declared.
    fn one_byte_segments(seqs: &[u32]) -> (Vec<u8>, u32) {
        let mut r = Reassembler::default();
        let mut out = Vec::new();
        r.push(0, true, b"", |_| {});
        for &s in seqs {
            r.push(s, false, &[b'a' + (s % 26) as u8], |c| {
                if let Chunk::Data(d) = c {
                    out.extend_from_slice(d)
                }
            });
        }
        (out, r.gaps)
    }

    #[test]
    fn a_full_buffer_takes_retransmissions_of_what_it_holds() {
        // Bytes 2 on held (a full buffer), byte 2 sent again, then the hole (byte 1) filled.
        let mut seqs: Vec<u32> = (2..2 + OOO_SEGMENTS as u32).collect();
        seqs.push(2);
        seqs.push(1);
        let (out, gaps) = one_byte_segments(&seqs);
        assert_eq!(gaps, 0);
        assert_eq!(out.len(), OOO_SEGMENTS + 1);
    }

    #[test]
    fn a_hole_with_more_segments_behind_it_than_the_buffer_holds_is_a_gap() {
        let mut seqs: Vec<u32> = (2..3 + OOO_SEGMENTS as u32).collect();
        seqs.push(1);
        let (out, gaps) = one_byte_segments(&seqs);
        assert_eq!(gaps, 1);
        // Resumed at the earliest byte held; the late byte 1 is behind it and dropped.
        assert_eq!(out.len(), OOO_SEGMENTS + 1);
    }

    #[test]
    fn sequence_wraps() {
        let mut r = Reassembler::default();
        let got = collect(&mut r, &[(u32::MAX - 1, b"ab"), (0, b"cd")]);
        assert_eq!(got, b"abcd");
    }

    #[test]
    fn lines_split_anywhere_and_bounded() {
        let mut lb = LineBuf::new(16);
        let mut lines = Vec::new();
        for part in [
            &b"US"[..],
            b"ER alice\r",
            b"\nPASS x\r\nTHIS LINE IS FAR TOO LONG",
            b" STILL\r\nNOOP\r\n",
        ] {
            lb.feed(part, |l| lines.push(l.to_vec()));
        }
        assert_eq!(
            lines,
            vec![b"USER alice".to_vec(), b"PASS x".to_vec(), b"NOOP".to_vec()]
        );
        assert_eq!(lb.overlong, 1);
    }
}
