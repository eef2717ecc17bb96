//! HTTP/1.1 chunked transfer coding (RFC 9112 §7.1), decoded in place.
//!
//! Clients with HTTP/2 disabled (`DISABLE_HTTP2`) get watch bodies as
//! chunks: each server `Flush` becomes `<hex-size>[;ext]\r\n<data>\r\n`,
//! and the body ends with `0\r\n<trailers>\r\n`. The decoder is a byte state
//! machine, so input may be split anywhere; data is handed out as slices of
//! the input, never copied.
//!
//! Framing loss (a gap, a joined-mid-way body, or bytes that break the
//! grammar) switches to a resync matcher that looks for
//! `\r\n<hex>[;ext]\r\n` — the end of one chunk and the size line of the
//! next. In a JSON body `\r\n` never occurs inside data (JSON escapes
//! control characters), so this is exact; in a protobuf body binary data
//! could imitate it, and the watch decoder's own checks then catch the
//! garbage.

/// Longest size line accepted (digits, whitespace and extensions).
const MAX_SIZE_LINE: usize = 4096;
/// Longest trailer section accepted.
const MAX_TRAILERS: usize = 64 << 10;
/// Longest extension accepted while resynchronising (shorter than in
/// normal decoding, to keep false matches unlikely).
const MAX_RESYNC_EXT: usize = 256;

/// One output of [`ChunkedDecoder::push`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkItem<'a> {
    /// Body bytes.
    Data(&'a [u8]),
    /// Framing was found again after a loss; `skipped` body-or-framing
    /// bytes were discarded before it. The consumer should treat the body as
    /// having a gap there.
    Resynced { skipped: u64 },
    /// The last chunk and the trailers were read: the body is complete.
    End,
}

/// Counters of one chunked body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChunkStats {
    pub chunks: u64,
    pub data_bytes: u64,
    /// Size lines, CRLFs and trailers.
    pub framing_bytes: u64,
    /// Grammar violations (each starts a resync).
    pub errors: u64,
    pub resyncs: u64,
    pub skipped_bytes: u64,
    /// Bytes fed after the body ended (they belong to whatever follows on
    /// the connection, not to this body).
    pub bytes_after_end: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading the hex size; `digits` read so far.
    Size {
        value: u64,
        digits: u8,
    },
    /// After the digits: optional whitespace and `;extensions`.
    Ext,
    /// Saw `\r` ending the size line.
    SizeLf,
    Data {
        remaining: u64,
    },
    DataCr,
    DataLf,
    /// Trailer section; `line` = bytes in the current line.
    Trailer {
        line: usize,
    },
    TrailerLf {
        line: usize,
    },
    Done,
    Lost(Resync),
}

/// The resync matcher: `\r\n<hex>{1,16}[ \t]*[;ext]\r\n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Resync {
    Idle,
    Cr,
    /// After `\r\n` (or at a start): expecting the first hex digit.
    Lf,
    Hex {
        value: u64,
        digits: u8,
    },
    Ext {
        len: usize,
    },
    EndCr {
        value: u64,
    },
}

/// Decoder of one chunked body.
#[derive(Clone, Debug)]
pub struct ChunkedDecoder {
    state: State,
    value: u64,
    line: usize,
    trailers: usize,
    /// Bytes consumed while lost, and the length of the partial match (not
    /// skipped if it completes: it is framing).
    lost_bytes: u64,
    match_len: u64,
    stats: ChunkStats,
}

impl ChunkedDecoder {
    /// A body seen from its first byte.
    #[must_use]
    pub fn from_start() -> Self {
        Self::with_state(State::Size {
            value: 0,
            digits: 0,
        })
    }

    /// A body joined at an unknown offset: the first size line is found by
    /// content (offset 0 itself may be one).
    #[must_use]
    pub fn mid_stream() -> Self {
        Self::with_state(State::Lost(Resync::Lf))
    }

    fn with_state(state: State) -> Self {
        Self {
            state,
            value: 0,
            line: 0,
            trailers: 0,
            lost_bytes: 0,
            match_len: 0,
            stats: ChunkStats::default(),
        }
    }

    #[must_use]
    pub fn stats(&self) -> &ChunkStats {
        &self.stats
    }

    /// The terminating chunk has been read.
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Bytes were lost: look for the next size line by content.
    pub fn gap(&mut self) {
        if self.state != State::Done {
            self.state = State::Lost(Resync::Lf);
            self.match_len = 0;
        }
    }

    /// Decodes `input`, calling `sink` for each item in order.
    pub fn push<'a>(&mut self, input: &'a [u8], mut sink: impl FnMut(ChunkItem<'a>)) {
        let mut i = 0;
        while i < input.len() {
            if let State::Data { remaining } = self.state {
                let take = remaining.min((input.len() - i) as u64) as usize;
                sink(ChunkItem::Data(&input[i..i + take]));
                self.stats.data_bytes += take as u64;
                i += take;
                let left = remaining - take as u64;
                self.state = if left == 0 {
                    State::DataCr
                } else {
                    State::Data { remaining: left }
                };
                continue;
            }
            if self.state == State::Done {
                self.stats.bytes_after_end += (input.len() - i) as u64;
                return;
            }
            let b = input[i];
            i += 1;
            if let State::Lost(r) = self.state {
                self.lost_byte(r, b, &mut sink);
            } else {
                self.stats.framing_bytes += 1;
                if !self.framing_byte(b, &mut sink) {
                    self.stats.errors += 1;
                    self.stats.framing_bytes -= 1;
                    self.lost_bytes = 0;
                    self.match_len = 0;
                    // The offending byte may itself start a size line's
                    // preceding CRLF.
                    self.lost_byte(Resync::Idle, b, &mut sink);
                }
            }
        }
    }

    /// One byte of framing in normal decoding; false on a grammar error.
    fn framing_byte<'a>(&mut self, b: u8, sink: &mut impl FnMut(ChunkItem<'a>)) -> bool {
        self.state = match self.state {
            State::Size { value, digits } => {
                if let Some(d) = hex(b) {
                    if digits >= 16 {
                        return false;
                    }
                    State::Size {
                        value: value << 4 | u64::from(d),
                        digits: digits + 1,
                    }
                } else if digits == 0 {
                    return false;
                } else {
                    self.value = value;
                    self.line = digits as usize;
                    return self.ext_byte(b);
                }
            }
            State::Ext => return self.ext_byte(b),
            State::SizeLf => {
                if b != b'\n' {
                    return false;
                }
                self.size_line_done();
                return true;
            }
            State::DataCr => match b {
                b'\r' => State::DataLf,
                // Bare LF is tolerated: a passive observer should not be
                // stricter than the peer.
                b'\n' => State::Size {
                    value: 0,
                    digits: 0,
                },
                _ => return false,
            },
            State::DataLf => {
                if b != b'\n' {
                    return false;
                }
                State::Size {
                    value: 0,
                    digits: 0,
                }
            }
            State::Trailer { line } => {
                self.trailers += 1;
                if self.trailers > MAX_TRAILERS {
                    return false;
                }
                match b {
                    b'\r' => State::TrailerLf { line },
                    b'\n' => return self.trailer_line_done(line, sink),
                    _ => State::Trailer { line: line + 1 },
                }
            }
            State::TrailerLf { line } => {
                if b != b'\n' {
                    return false;
                }
                return self.trailer_line_done(line, sink);
            }
            State::Data { .. } | State::Done | State::Lost(_) => return false,
        };
        true
    }

    fn ext_byte(&mut self, b: u8) -> bool {
        self.line += 1;
        if self.line > MAX_SIZE_LINE {
            return false;
        }
        match b {
            b'\r' => self.state = State::SizeLf,
            b'\n' => self.size_line_done(),
            // Whitespace and `;name=value` extensions are ignored; the
            // grammar inside extensions is not checked.
            b' ' | b'\t' | b';' => self.state = State::Ext,
            _ if self.state == State::Ext => {}
            _ => return false,
        }
        true
    }

    fn size_line_done(&mut self) {
        self.stats.chunks += 1;
        self.state = if self.value == 0 {
            self.trailers = 0;
            State::Trailer { line: 0 }
        } else {
            State::Data {
                remaining: self.value,
            }
        };
    }

    fn trailer_line_done<'a>(&mut self, line: usize, sink: &mut impl FnMut(ChunkItem<'a>)) -> bool {
        if line == 0 {
            self.state = State::Done;
            sink(ChunkItem::End);
        } else {
            self.state = State::Trailer { line: 0 };
        }
        true
    }

    /// One byte while framing is lost.
    fn lost_byte<'a>(&mut self, r: Resync, b: u8, sink: &mut impl FnMut(ChunkItem<'a>)) {
        self.lost_bytes += 1;
        self.match_len += 1;
        let next = match (r, b) {
            (Resync::EndCr { value }, b'\n') => {
                // A whole size line: framing is back.
                let skipped = self.lost_bytes - self.match_len;
                self.stats.framing_bytes += self.match_len;
                self.stats.skipped_bytes += skipped;
                self.stats.resyncs += 1;
                self.lost_bytes = 0;
                self.match_len = 0;
                sink(ChunkItem::Resynced { skipped });
                self.value = value;
                self.size_line_done();
                return;
            }
            (Resync::Cr, b'\n') => Resync::Lf,
            (Resync::Lf, _) | (Resync::Hex { .. }, _) if hex(b).is_some() => {
                let (value, digits) = match r {
                    Resync::Hex { value, digits } => (value, digits),
                    _ => (0, 0),
                };
                if digits >= 16 {
                    Resync::Idle
                } else {
                    Resync::Hex {
                        value: value << 4 | u64::from(hex(b).unwrap_or_default()),
                        digits: digits + 1,
                    }
                }
            }
            (Resync::Hex { .. } | Resync::Ext { .. }, b' ' | b'\t' | b';') => Resync::Ext {
                len: match r {
                    Resync::Ext { len } => len + 1,
                    _ => 1,
                },
            },
            (Resync::Ext { len }, c) if c != b'\r' && c != b'\n' && len < MAX_RESYNC_EXT => {
                Resync::Ext { len: len + 1 }
            }
            (Resync::Hex { value, .. }, b'\r') => Resync::EndCr { value },
            // The size was kept in `self.value` when the digits ended.
            (Resync::Ext { .. }, b'\r') => Resync::EndCr { value: self.value },
            _ => Resync::Idle,
        };
        // Carry the size through extensions.
        if let Resync::Hex { value, .. } = next {
            self.value = value;
        }
        if next == Resync::Idle {
            // The byte may start a new match.
            self.match_len = 0;
            if b == b'\r' {
                self.match_len = 1;
                self.state = State::Lost(Resync::Cr);
                return;
            }
        }
        self.state = State::Lost(next);
    }
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::from_start()
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` split at every `split` bytes.
    fn run(d: &mut ChunkedDecoder, input: &[u8], split: usize) -> (Vec<u8>, Vec<u64>, bool) {
        let mut data = Vec::new();
        let mut resyncs = Vec::new();
        let mut end = false;
        for piece in input.chunks(split.max(1)) {
            d.push(piece, |item| match item {
                ChunkItem::Data(b) => data.extend_from_slice(b),
                ChunkItem::Resynced { skipped } => resyncs.push(skipped),
                ChunkItem::End => end = true,
            });
        }
        (data, resyncs, end)
    }

    const BODY: &[u8] =
        b"17\r\n{\"type\":\"ADDED\",\"x\":1}\n\r\n5;name=val\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n";

    #[test]
    fn decodes_at_every_split() {
        for split in 1..BODY.len() + 1 {
            let mut d = ChunkedDecoder::from_start();
            let (data, resyncs, end) = run(&mut d, BODY, split);
            assert_eq!(
                data, b"{\"type\":\"ADDED\",\"x\":1}\nhello",
                "split {split}"
            );
            assert!(resyncs.is_empty());
            assert!(end);
            assert_eq!(d.stats().chunks, 3);
            assert_eq!(d.stats().errors, 0);
            assert_eq!(
                d.stats().data_bytes + d.stats().framing_bytes,
                BODY.len() as u64
            );
        }
    }

    #[test]
    fn uppercase_hex_bare_lf_and_whitespace() {
        let mut d = ChunkedDecoder::from_start();
        let (data, _, end) = run(&mut d, b"A \r\n0123456789\n0\n\n", 3);
        assert_eq!(data, b"0123456789");
        assert!(end);
    }

    #[test]
    fn bytes_after_the_end_are_not_data() {
        let mut d = ChunkedDecoder::from_start();
        let (data, _, end) = run(&mut d, b"1\r\nx\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n", 100);
        assert_eq!(data, b"x");
        assert!(end);
        assert!(d.is_done());
        assert_eq!(d.stats().bytes_after_end, 17);
    }

    #[test]
    fn mid_stream_join_finds_next_size_line() {
        // Joined inside a chunk's data.
        let input = b"ta of an earlier chunk}\n\r\n3\r\nabc\r\n";
        let mut d = ChunkedDecoder::mid_stream();
        let (data, resyncs, _) = run(&mut d, input, 1);
        assert_eq!(data, b"abc");
        assert_eq!(resyncs, vec![24]);
        // Joined exactly at a size line.
        let mut d = ChunkedDecoder::mid_stream();
        let (data, resyncs, _) = run(&mut d, b"3\r\nabc\r\n2\r\nde\r\n", 2);
        assert_eq!(data, b"abcde");
        assert_eq!(resyncs, vec![0]);
    }

    #[test]
    fn grammar_error_resyncs() {
        let input = b"3\r\nabcXX\r\n2;e=1\r\nde\r\n";
        let mut d = ChunkedDecoder::from_start();
        let (data, resyncs, _) = run(&mut d, input, 4);
        assert_eq!(data, b"abcde");
        assert_eq!(d.stats().errors, 1);
        assert_eq!(resyncs, vec![2]);
    }

    #[test]
    fn gap_then_resync() {
        let mut d = ChunkedDecoder::from_start();
        let (data, _, _) = run(&mut d, b"5\r\nab", 100);
        assert_eq!(data, b"ab");
        d.gap();
        // The rest of the lost chunk: its data ends with an event's newline.
        let (data, resyncs, end) = run(&mut d, b"}\n\r\n2\r\nxy\r\n0\r\n\r\n", 100);
        assert_eq!(data, b"xy");
        assert_eq!(resyncs, vec![2]);
        assert!(end);
    }

    #[test]
    fn oversized_size_lines_are_errors() {
        let mut d = ChunkedDecoder::from_start();
        run(&mut d, b"11111111111111111\r\n", 100);
        assert_eq!(d.stats().errors, 1);
        let mut d = ChunkedDecoder::from_start();
        let mut long = b"1;".to_vec();
        long.extend(std::iter::repeat_n(b'x', MAX_SIZE_LINE + 1));
        run(&mut d, &long, 100);
        assert_eq!(d.stats().errors, 1);
    }
}
