//! The recording file: what `watchtrace record` writes and `watchtrace
//! replay` reads. Version 3, documented in docs/recording-format.md.
//!
//! ```text
//! magic    8 bytes  "WATCHTRC"
//! version  u32 LE   3
//! meta_len u32 LE   length of the JSON metadata that follows
//! meta     JSON     Metadata
//! meta_crc u32 LE   CRC32C of everything above
//! frames   repeated: len u32 LE, seq u64 LE (0, 1, 2, ...), crc u32 LE
//!          (CRC32C of len, seq and the payload), then `len` bytes of one
//!          record as the kernel wrote it (RecordHeader first; a chunk
//!          without the unused room after its payload), or a record of the
//!          same layout made by userspace (e.g. a swept SockClose)
//! ```
//!
//! A frame that fails its checksum, or whose sequence number is not the
//! next, is reported as [`Damage`] and never delivered: damage is explicit,
//! never changed output. After a damaged frame the reader finds the next
//! whole one (a header whose sequence number is plausible and whose
//! checksum holds). Version 2 files (no checksums, no sequence numbers)
//! still read; [`Reader::verified`] says they cannot be checked.
//!
//! The file holds the plaintext of traced connections, Secrets included:
//! it is created 0600, and docs say so.

use std::{
    collections::VecDeque,
    io::{self, Read, Write},
};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// First bytes of every recording.
pub const MAGIC: &[u8; 8] = b"WATCHTRC";
/// The format version this build writes.
pub const VERSION: u32 = 3;
/// The older version this build still reads, unverified.
pub const UNVERIFIED_VERSION: u32 = 2;
/// Largest frame a reader accepts: a chunk record is under 17 KiB, so
/// anything near this is corruption, not data.
pub const MAX_FRAME: u32 = 1 << 20;
/// Largest metadata block a reader accepts.
const MAX_META: u32 = 1 << 20;
/// A version 3 frame's header: len, seq, crc.
const FRAME_HEADER: usize = 16;
/// How far past the expected sequence number a frame found after damage
/// may be: further is a chance match in the damaged bytes.
const MAX_SEQ_SKIP: u64 = 1 << 24;
/// Sequence numbers reported missing, remembered so that a late one is
/// told out of order rather than duplicated.
const MAX_MISSING_RANGES: usize = 1024;

/// Facts about the capture, needed to interpret its records.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// Unix time minus CLOCK_MONOTONIC when the capture started: add it to a
    /// record's `ts_ns` to get Unix nanoseconds.
    pub realtime_offset_ns: i128,
    pub hostname: String,
    pub kernel: String,
    pub watchtrace_version: String,
    pub ringbuf_bytes: u32,
    pub targets: Vec<TargetInfo>,
}

/// A traced process.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetInfo {
    pub pid: u32,
    pub comm: String,
    pub exe: Option<String>,
    pub go_version: Option<String>,
}

/// A recording could not be read.
#[derive(Debug, Error)]
pub enum RecordingError {
    #[error("not a watchtrace recording (bad magic)")]
    BadMagic,
    #[error(
        "recording format version {found}, this build reads versions {UNVERIFIED_VERSION} and {VERSION}"
    )]
    Version { found: u32 },
    #[error("metadata: {0}")]
    Metadata(#[from] serde_json::Error),
    #[error("the recording's header or metadata is damaged (checksum mismatch)")]
    MetadataDamaged,
    #[error(
        "frame at byte {at} claims {len} bytes, more than the {MAX_FRAME} allowed: corrupt file"
    )]
    FrameTooLarge { at: u64, len: u32 },
    #[error(
        "recording truncated at byte {at}: the last frame is incomplete ({records} complete records before it)"
    )]
    Truncated { at: u64, records: u64 },
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// What is wrong with part of a recording.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DamageKind {
    /// Bytes that are no whole frame (a checksum failed): skipped up to the
    /// next whole frame.
    Corrupt,
    /// Frames whose sequence numbers never came.
    Missing,
    /// A frame whose sequence number was delivered already.
    Duplicate,
    /// A frame that came after later ones (it was reported missing); not
    /// delivered, which would reorder its stream.
    OutOfOrder,
}

/// A damaged part of a recording, reported instead of delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Damage {
    pub what: DamageKind,
    /// Byte offset in the file.
    pub at: u64,
    /// Bytes skipped there.
    pub bytes: u64,
    /// Frames lost (their sequence numbers were never delivered).
    pub frames: u64,
}

/// Writes a recording to `W`.
#[derive(Debug)]
pub struct Writer<W: Write> {
    out: W,
    records: u64,
    bytes: u64,
}

impl<W: Write> Writer<W> {
    /// Writes the header and metadata.
    pub fn new(mut out: W, meta: &Metadata) -> Result<Self, RecordingError> {
        let meta = serde_json::to_vec(meta)?;
        let mut head = Vec::with_capacity(16 + meta.len());
        head.extend_from_slice(MAGIC);
        head.extend_from_slice(&VERSION.to_le_bytes());
        head.extend_from_slice(&(meta.len() as u32).to_le_bytes());
        head.extend_from_slice(&meta);
        out.write_all(&head)?;
        out.write_all(&crc32c::crc32c(&head).to_le_bytes())?;
        Ok(Self {
            out,
            records: 0,
            bytes: 0,
        })
    }

    /// Appends one record.
    pub fn record(&mut self, record: &[u8]) -> io::Result<()> {
        // A chunk's unused room is not kept.
        let record = crate::capture::trimmed(record);
        let mut head = [0u8; FRAME_HEADER];
        head[..4].copy_from_slice(&(record.len() as u32).to_le_bytes());
        head[4..12].copy_from_slice(&self.records.to_le_bytes());
        let crc = crc32c::crc32c_append(crc32c::crc32c(&head[..12]), record);
        head[12..].copy_from_slice(&crc.to_le_bytes());
        self.out.write_all(&head)?;
        self.out.write_all(record)?;
        self.records += 1;
        self.bytes += record.len() as u64;
        Ok(())
    }

    /// Records and record bytes written so far.
    pub fn totals(&self) -> (u64, u64) {
        (self.records, self.bytes)
    }

    /// Flushes and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Reads a recording from `R`, one record at a time.
#[derive(Debug)]
pub struct Reader<R: Read> {
    input: R,
    meta: Metadata,
    version: u32,
    /// Bytes read and not yet consumed: `buf[start..]`, which begin at file
    /// offset `position`.
    buf: Vec<u8>,
    start: usize,
    /// The current record's range in `buf`.
    current: (usize, usize),
    eof: bool,
    position: u64,
    records: u64,
    /// The sequence number the next frame should carry.
    next_seq: u64,
    /// Ranges `[from, to)` of sequence numbers reported missing.
    missing: VecDeque<(u64, u64)>,
    damage: Vec<Damage>,
}

impl<R: Read> Reader<R> {
    /// Reads and checks the header and metadata.
    pub fn new(mut input: R) -> Result<Self, RecordingError> {
        let mut head = [0u8; 16];
        input.read_exact(&mut head).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => RecordingError::BadMagic,
            _ => RecordingError::Io(e),
        })?;
        if &head[..8] != MAGIC {
            return Err(RecordingError::BadMagic);
        }
        let version = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes"));
        if version != VERSION && version != UNVERIFIED_VERSION {
            return Err(RecordingError::Version { found: version });
        }
        let meta_len = u32::from_le_bytes(head[12..16].try_into().expect("4 bytes"));
        if meta_len > MAX_META {
            return Err(match version {
                VERSION => RecordingError::MetadataDamaged,
                _ => RecordingError::FrameTooLarge {
                    at: 12,
                    len: meta_len,
                },
            });
        }
        let crc_len = if version == VERSION { 4 } else { 0 };
        let mut meta = vec![0; meta_len as usize + crc_len];
        input
            .read_exact(&mut meta)
            .map_err(|_| RecordingError::Truncated { at: 16, records: 0 })?;
        if version == VERSION {
            let (meta, crc) = meta.split_at(meta_len as usize);
            let want = u32::from_le_bytes(crc.try_into().expect("4 bytes"));
            if crc32c::crc32c_append(crc32c::crc32c(&head), meta) != want {
                return Err(RecordingError::MetadataDamaged);
            }
        }
        meta.truncate(meta_len as usize);
        let meta = serde_json::from_slice(&meta)?;
        Ok(Self {
            input,
            meta,
            version,
            buf: Vec::new(),
            start: 0,
            current: (0, 0),
            eof: false,
            position: 16 + u64::from(meta_len) + crc_len as u64,
            records: 0,
            next_seq: 0,
            missing: VecDeque::new(),
            damage: Vec::new(),
        })
    }

    pub fn metadata(&self) -> &Metadata {
        &self.meta
    }

    /// Whether the frames carry checksums and sequence numbers (version 3):
    /// a version 2 file's damage cannot be seen.
    pub fn verified(&self) -> bool {
        self.version == VERSION
    }

    /// Damage found since the last call, in file order.
    pub fn take_damage(&mut self) -> Vec<Damage> {
        std::mem::take(&mut self.damage)
    }

    /// Whether damage was found that [`Reader::take_damage`] has not taken.
    pub fn has_damage(&self) -> bool {
        !self.damage.is_empty()
    }

    /// The next record's bytes, `None` at a clean end of file. Damaged
    /// frames on the way are skipped and reported (see
    /// [`Reader::take_damage`]).
    pub fn next_record(&mut self) -> Result<Option<&[u8]>, RecordingError> {
        Ok(self.advance()?.then(|| self.record()))
    }

    /// Moves to the next record (`false` at a clean end of file), so that
    /// the damage found on the way can be taken before the record is.
    pub fn advance(&mut self) -> Result<bool, RecordingError> {
        let range = if self.version == VERSION {
            self.next_verified()?
        } else {
            self.next_unverified()?
        };
        self.current = range.unwrap_or((0, 0));
        Ok(range.is_some())
    }

    /// The record [`Reader::advance`] moved to.
    pub fn record(&self) -> &[u8] {
        &self.buf[self.current.0..self.current.1]
    }

    /// A version 2 frame: `len`, then the record.
    fn next_unverified(&mut self) -> Result<Option<(usize, usize)>, RecordingError> {
        if self.fill(4)? == 0 {
            return Ok(None);
        }
        if self.available() < 4 {
            return Err(self.truncated());
        }
        let len = self.u32_at(0);
        if len > MAX_FRAME {
            return Err(RecordingError::FrameTooLarge {
                at: self.position,
                len,
            });
        }
        let total = 4 + len as usize;
        if self.fill(total)? < total {
            return Err(self.truncated());
        }
        Ok(Some(self.consume(4, total)))
    }

    /// A version 3 frame, after skipping and reporting any damage.
    fn next_verified(&mut self) -> Result<Option<(usize, usize)>, RecordingError> {
        loop {
            if self.fill(FRAME_HEADER)? == 0 {
                return Ok(None);
            }
            let (len, seq) = match self.frame_at(0)? {
                Some(frame) => frame,
                None => {
                    // The expected header, its frame running past the end
                    // of the file, and nothing whole after it: the
                    // recorder stopped mid-write.
                    let (at, cut) = (self.position, self.cut_short()?);
                    if self.resync()?.is_none() && cut {
                        self.damage.pop();
                        return Err(RecordingError::Truncated {
                            at,
                            records: self.records,
                        });
                    }
                    continue;
                }
            };
            let total = FRAME_HEADER + len as usize;
            let at = self.position;
            if seq < self.next_seq {
                let late = self.take_missing(seq);
                self.damage.push(Damage {
                    what: if late {
                        DamageKind::OutOfOrder
                    } else {
                        DamageKind::Duplicate
                    },
                    at,
                    bytes: total as u64,
                    frames: 0,
                });
                self.skip(total);
                continue;
            }
            if seq > self.next_seq {
                self.report_missing(at, 0, seq);
            }
            self.next_seq = seq + 1;
            return Ok(Some(self.consume(FRAME_HEADER, total)));
        }
    }

    /// The frame at `offset` into the unconsumed bytes, if it is whole and
    /// plausible: its length and sequence number, its checksum holding.
    /// `None` for damage; an error only for a truncated last frame.
    fn frame_at(&mut self, offset: usize) -> Result<Option<(u32, u64)>, RecordingError> {
        if self.fill(offset + FRAME_HEADER)? < offset + FRAME_HEADER {
            return Ok(None);
        }
        let head = self.start + offset;
        let len = self.u32_at(offset);
        let seq = u64::from_le_bytes(self.buf[head + 4..head + 12].try_into().expect("8 bytes"));
        let plausible = len <= MAX_FRAME
            && (seq.wrapping_sub(self.next_seq) < MAX_SEQ_SKIP
                || self.next_seq.wrapping_sub(seq) <= MAX_SEQ_SKIP);
        if !plausible {
            return Ok(None);
        }
        let total = offset + FRAME_HEADER + len as usize;
        if self.fill(total)? < total {
            return Ok(None);
        }
        let head = self.start + offset;
        let crc = u32::from_le_bytes(self.buf[head + 12..head + 16].try_into().expect("4 bytes"));
        let payload = &self.buf[head + FRAME_HEADER..self.start + total];
        let sum = crc32c::crc32c_append(crc32c::crc32c(&self.buf[head..head + 12]), payload);
        Ok((sum == crc).then_some((len, seq)))
    }

    /// The frame at the front is damaged: skips to the next whole one (or
    /// the end), reporting what was skipped; returns the found frame's
    /// sequence number.
    fn resync(&mut self) -> Result<Option<u64>, RecordingError> {
        let at = self.position;
        let mut skipped = 0u64;
        let found = loop {
            self.skip(1);
            skipped += 1;
            if self.fill(FRAME_HEADER)? < FRAME_HEADER {
                let rest = self.available();
                self.skip(rest);
                skipped += rest as u64;
                break None;
            }
            if let Some((_, seq)) = self.frame_at(0)? {
                break Some(seq);
            }
        };
        // Frames lost in the damaged bytes: up to the found one's number
        // (at least the damaged one, at the end of the file).
        let lost = found.map_or(1, |seq| seq.saturating_sub(self.next_seq));
        self.damage_corrupt(at, skipped, lost);
        if let Some(seq) = found
            && seq > self.next_seq
        {
            self.remember_missing(self.next_seq, seq);
            self.next_seq = seq;
        }
        Ok(found)
    }

    /// The file ends inside the next frame, whose header is the one
    /// expected: the recorder stopped mid-write.
    fn cut_short(&mut self) -> Result<bool, RecordingError> {
        let available = self.fill(FRAME_HEADER)?;
        if available < FRAME_HEADER {
            return Ok(self.eof);
        }
        let len = self.u32_at(0);
        let head = self.start;
        let seq = u64::from_le_bytes(self.buf[head + 4..head + 12].try_into().expect("8 bytes"));
        let total = FRAME_HEADER + len as usize;
        Ok(seq == self.next_seq && len <= MAX_FRAME && self.fill(total)? < total)
    }

    fn damage_corrupt(&mut self, at: u64, bytes: u64, frames: u64) {
        self.damage.push(Damage {
            what: DamageKind::Corrupt,
            at,
            bytes,
            frames,
        });
    }

    /// Sequence numbers `[next_seq, seq)` never came.
    fn report_missing(&mut self, at: u64, bytes: u64, seq: u64) {
        self.damage.push(Damage {
            what: DamageKind::Missing,
            at,
            bytes,
            frames: seq - self.next_seq,
        });
        self.remember_missing(self.next_seq, seq);
    }

    fn remember_missing(&mut self, from: u64, to: u64) {
        if self.missing.len() >= MAX_MISSING_RANGES {
            self.missing.pop_front();
        }
        self.missing.push_back((from, to));
    }

    /// Whether `seq` was reported missing (it is forgotten so: a second
    /// copy is a duplicate).
    fn take_missing(&mut self, seq: u64) -> bool {
        let Some(i) = self
            .missing
            .iter()
            .position(|&(from, to)| (from..to).contains(&seq))
        else {
            return false;
        };
        let (from, to) = self.missing.remove(i).expect("found above");
        if from < seq {
            self.missing.push_back((from, seq));
        }
        if seq + 1 < to {
            self.missing.push_back((seq + 1, to));
        }
        true
    }

    fn available(&self) -> usize {
        self.buf.len() - self.start
    }

    fn u32_at(&self, offset: usize) -> u32 {
        let at = self.start + offset;
        u32::from_le_bytes(self.buf[at..at + 4].try_into().expect("4 bytes"))
    }

    /// Reads until `need` unconsumed bytes are buffered or the input ends;
    /// returns how many are.
    fn fill(&mut self, need: usize) -> Result<usize, RecordingError> {
        if self.available() >= need || self.eof {
            return Ok(self.available());
        }
        // Drop what was consumed before growing.
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let mut chunk = [0u8; 64 * 1024];
        while self.available() < need {
            let n = match self.input.read(&mut chunk) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            self.buf.extend_from_slice(&chunk[..n]);
        }
        Ok(self.available())
    }

    /// Consumes a frame of `total` bytes whose record starts `header` bytes
    /// in; returns the record's range in `buf`.
    fn consume(&mut self, header: usize, total: usize) -> (usize, usize) {
        let range = (self.start + header, self.start + total);
        self.skip(total);
        self.records += 1;
        range
    }

    fn skip(&mut self, n: usize) {
        self.start += n;
        self.position += n as u64;
    }

    fn truncated(&self) -> RecordingError {
        RecordingError::Truncated {
            at: self.position,
            records: self.records,
        }
    }
}

#[cfg(test)]
mod tests;
