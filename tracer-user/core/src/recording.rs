//! The recording file: what `watchtrace record` writes and `watchtrace
//! replay` reads. Version 2, documented in docs/recording-format.md.
//!
//! ```text
//! magic    8 bytes  "WATCHTRC"
//! version  u32 LE   2
//! meta_len u32 LE   length of the JSON metadata that follows
//! meta     JSON     Metadata
//! frames   repeated: len u32 LE, then `len` bytes of one record as the
//!          kernel wrote it (RecordHeader first; a chunk without the unused
//!          room after its payload), or a record of the same layout made by
//!          userspace (e.g. a swept SockClose)
//! ```
//!
//! The file holds the plaintext of traced connections, Secrets included:
//! it is created 0600, and docs say so.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// First bytes of every recording.
pub const MAGIC: &[u8; 8] = b"WATCHTRC";
/// The format version this build writes and reads.
pub const VERSION: u32 = 2;
/// Largest frame a reader accepts: a chunk record is under 17 KiB, so
/// anything near this is corruption, not data.
pub const MAX_FRAME: u32 = 1 << 20;
/// Largest metadata block a reader accepts.
const MAX_META: u32 = 1 << 20;

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
    #[error("recording format version {found}, this build reads version {VERSION}")]
    Version { found: u32 },
    #[error("metadata: {0}")]
    Metadata(#[from] serde_json::Error),
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
        out.write_all(MAGIC)?;
        out.write_all(&VERSION.to_le_bytes())?;
        out.write_all(&(meta.len() as u32).to_le_bytes())?;
        out.write_all(&meta)?;
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
        self.out.write_all(&(record.len() as u32).to_le_bytes())?;
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
    position: u64,
    records: u64,
    buf: Vec<u8>,
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
        if version != VERSION {
            return Err(RecordingError::Version { found: version });
        }
        let meta_len = u32::from_le_bytes(head[12..16].try_into().expect("4 bytes"));
        if meta_len > MAX_META {
            return Err(RecordingError::FrameTooLarge {
                at: 12,
                len: meta_len,
            });
        }
        let mut meta = vec![0; meta_len as usize];
        input
            .read_exact(&mut meta)
            .map_err(|_| RecordingError::Truncated { at: 16, records: 0 })?;
        let meta = serde_json::from_slice(&meta)?;
        Ok(Self {
            input,
            meta,
            position: 16 + u64::from(meta_len),
            records: 0,
            buf: Vec::new(),
        })
    }

    pub fn metadata(&self) -> &Metadata {
        &self.meta
    }

    /// The next record's bytes, `None` at a clean end of file.
    pub fn next_record(&mut self) -> Result<Option<&[u8]>, RecordingError> {
        let mut len = [0u8; 4];
        match read_full(&mut self.input, &mut len)? {
            0 => return Ok(None),
            4 => {}
            _ => {
                return Err(RecordingError::Truncated {
                    at: self.position,
                    records: self.records,
                });
            }
        }
        let len = u32::from_le_bytes(len);
        if len > MAX_FRAME {
            return Err(RecordingError::FrameTooLarge {
                at: self.position,
                len,
            });
        }
        self.buf.resize(len as usize, 0);
        if read_full(&mut self.input, &mut self.buf)? != len as usize {
            return Err(RecordingError::Truncated {
                at: self.position,
                records: self.records,
            });
        }
        self.position += 4 + u64::from(len);
        self.records += 1;
        Ok(Some(&self.buf))
    }
}

/// Reads until `buf` is full or EOF; returns how much was read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let meta = Metadata {
            realtime_offset_ns: 42,
            hostname: "h".into(),
            ..Metadata::default()
        };
        let mut writer = Writer::new(Vec::new(), &meta).unwrap();
        writer.record(b"first").unwrap();
        writer.record(&[7u8; 100]).unwrap();
        writer.finish().unwrap()
    }

    #[test]
    fn round_trips_metadata_and_records() {
        let bytes = sample();
        let mut reader = Reader::new(&bytes[..]).unwrap();
        assert_eq!(reader.metadata().realtime_offset_ns, 42);
        assert_eq!(reader.next_record().unwrap(), Some(&b"first"[..]));
        assert_eq!(reader.next_record().unwrap().map(<[u8]>::len), Some(100));
        assert_eq!(reader.next_record().unwrap(), None);
    }

    #[test]
    fn a_truncated_tail_is_an_error_after_every_complete_record() {
        let bytes = sample();
        let cut = &bytes[..bytes.len() - 10];
        let mut reader = Reader::new(cut).unwrap();
        assert_eq!(reader.next_record().unwrap(), Some(&b"first"[..]));
        let err = reader.next_record().unwrap_err();
        assert!(
            matches!(err, RecordingError::Truncated { records: 1, .. }),
            "{err}"
        );
    }

    #[test]
    fn rejects_other_files_and_versions_and_absurd_frames() {
        assert!(matches!(
            Reader::new(&b"GIF89a.........."[..]),
            Err(RecordingError::BadMagic)
        ));
        assert!(matches!(
            Reader::new(&b"WAT"[..]),
            Err(RecordingError::BadMagic)
        ));
        let mut bytes = sample();
        bytes[8] = 9;
        assert!(matches!(
            Reader::new(&bytes[..]),
            Err(RecordingError::Version { found: 9 })
        ));
        let mut bytes = sample();
        let first_frame = bytes.len() - (4 + 5) - (4 + 100);
        bytes[first_frame..first_frame + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut reader = Reader::new(&bytes[..]).unwrap();
        assert!(matches!(
            reader.next_record(),
            Err(RecordingError::FrameTooLarge { .. })
        ));
    }
}
