//! Decoding ring-buffer bytes into typed records. Pure: no aya here, so the
//! same code reads live records and recordings.

use thiserror::Error;
use tracer_common::record::{
    ChunkHeader, ProcessInfo, RecordHeader, RecordKind, Retransmit, SockAnchor, SockClose,
    SockRecv, SockSend, SockState, TcpAck, TcpSample, Tick, TlsBind, TlsSent,
};

/// A decoded kernel record. A chunk's payload is borrowed from the bytes
/// it was decoded from (the ring buffer or a recording): nothing is copied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record<'a> {
    SockSend(SockSend),
    /// A piece of a byte stream and its payload.
    Chunk(ChunkHeader, &'a [u8]),
    SockClose(SockClose),
    SockRecv(SockRecv),
    TcpSample(TcpSample),
    TcpAck(TcpAck),
    SockState(SockState),
    Retransmit(Retransmit),
    SockAnchor(SockAnchor),
    ProcessInfo(ProcessInfo),
    TlsBind(TlsBind),
    TlsSent(TlsSent),
    Tick(Tick),
}

impl Record<'_> {
    /// The record without a chunk's payload (an empty one instead): what
    /// is left owns its data.
    #[must_use]
    pub fn without_payload(&self) -> Record<'static> {
        match *self {
            Self::SockSend(r) => Record::SockSend(r),
            Self::Chunk(r, _) => Record::Chunk(r, &[]),
            Self::SockClose(r) => Record::SockClose(r),
            Self::SockRecv(r) => Record::SockRecv(r),
            Self::TcpSample(r) => Record::TcpSample(r),
            Self::TcpAck(r) => Record::TcpAck(r),
            Self::SockState(r) => Record::SockState(r),
            Self::Retransmit(r) => Record::Retransmit(r),
            Self::SockAnchor(r) => Record::SockAnchor(r),
            Self::ProcessInfo(r) => Record::ProcessInfo(r),
            Self::TlsBind(r) => Record::TlsBind(r),
            Self::TlsSent(r) => Record::TlsSent(r),
            Self::Tick(r) => Record::Tick(r),
        }
    }

    /// The common header.
    pub fn header(&self) -> &RecordHeader {
        match self {
            Self::SockSend(r) => &r.header,
            Self::Chunk(r, _) => &r.header,
            Self::SockClose(r) => &r.header,
            Self::SockRecv(r) => &r.header,
            Self::TcpSample(r) => &r.header,
            Self::TcpAck(r) => &r.header,
            Self::SockState(r) => &r.header,
            Self::Retransmit(r) => &r.header,
            Self::SockAnchor(r) => &r.header,
            Self::ProcessInfo(r) => &r.header,
            Self::TlsBind(r) => &r.header,
            Self::TlsSent(r) => &r.header,
            Self::Tick(r) => &r.header,
        }
    }
}

/// Bytes that are not a record this build understands.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than the header or the record needs.
    #[error("record of {len} bytes is shorter than the {needed} its kind needs")]
    Short { len: usize, needed: usize },
    /// A chunk whose header claims more payload than the record holds.
    #[error("chunk header says {said} payload bytes, record has room for {has}")]
    ChunkLength { said: u32, has: usize },
    /// A kind this build does not know (an object from another version).
    #[error("unknown record kind {kind}")]
    UnknownKind { kind: u16 },
    /// A stream offset no stream reaches (see [`MAX_STREAM_OFFSET`]):
    /// damage, which as a gap would claim petabytes lost.
    #[error("stream offset {offset} is past the {MAX_STREAM_OFFSET} any stream reaches")]
    ImplausibleOffset { offset: u64 },
}

/// The largest stream offset a record may carry: 2^48 bytes (256 TiB), more
/// than a connection carries in years at line rate. Every offset and gap
/// below it is exact in `u64` arithmetic; a record past it is undecodable.
pub const MAX_STREAM_OFFSET: u64 = 1 << 48;

/// Decodes one ring-buffer record.
pub fn decode(bytes: &[u8]) -> Result<Record<'_>, DecodeError> {
    // SAFETY: tracer-common's record types are repr(C) structs of integers
    // with explicit padding, valid for any bit pattern.
    let header: RecordHeader = unsafe { read(bytes) }?;
    match RecordKind::from_raw(header.kind) {
        // SAFETY: as above.
        Some(RecordKind::SockSend) => unsafe { read(bytes) }.map(Record::SockSend),
        // SAFETY: as above.
        Some(RecordKind::Chunk) => {
            // SAFETY: as above.
            let chunk: ChunkHeader = unsafe { read(bytes) }?;
            // The kernel reserves a chunk at one of a few sizes: the payload
            // is the header's `len` bytes, the rest of the record is room.
            let room = &bytes[size_of::<ChunkHeader>()..];
            let Some(payload) = room.get(..chunk.len as usize) else {
                return Err(DecodeError::ChunkLength {
                    said: chunk.len,
                    has: room.len(),
                });
            };
            if chunk.offset > MAX_STREAM_OFFSET {
                return Err(DecodeError::ImplausibleOffset {
                    offset: chunk.offset,
                });
            }
            Ok(Record::Chunk(chunk, payload))
        }
        Some(RecordKind::SockClose) => {
            // SAFETY: as above.
            let close: SockClose = unsafe { read(bytes) }?;
            // u64::MAX: no such stream.
            if let Some(&offset) = close
                .end_offsets
                .iter()
                .find(|&&o| o != u64::MAX && o > MAX_STREAM_OFFSET)
            {
                return Err(DecodeError::ImplausibleOffset { offset });
            }
            Ok(Record::SockClose(close))
        }
        // SAFETY: as above.
        Some(RecordKind::SockRecv) => unsafe { read(bytes) }.map(Record::SockRecv),
        // SAFETY: as above.
        Some(RecordKind::TcpSample) => unsafe { read(bytes) }.map(Record::TcpSample),
        // SAFETY: as above.
        Some(RecordKind::TcpAck) => unsafe { read(bytes) }.map(Record::TcpAck),
        // SAFETY: as above.
        Some(RecordKind::SockState) => unsafe { read(bytes) }.map(Record::SockState),
        // SAFETY: as above.
        Some(RecordKind::Retransmit) => unsafe { read(bytes) }.map(Record::Retransmit),
        // SAFETY: as above.
        Some(RecordKind::SockAnchor) => unsafe { read(bytes) }.map(Record::SockAnchor),
        // SAFETY: as above.
        Some(RecordKind::ProcessInfo) => unsafe { read(bytes) }.map(Record::ProcessInfo),
        // SAFETY: as above.
        Some(RecordKind::TlsBind) => unsafe { read(bytes) }.map(Record::TlsBind),
        // SAFETY: as above.
        Some(RecordKind::TlsSent) => unsafe { read(bytes) }.map(Record::TlsSent),
        // SAFETY: as above.
        Some(RecordKind::Tick) => unsafe { read(bytes) }.map(Record::Tick),
        None => Err(DecodeError::UnknownKind { kind: header.kind }),
    }
}

/// The bytes of a record that matter: a chunk without the unused room the
/// kernel reserved after its payload (what a recording keeps), any other
/// record whole.
pub fn trimmed(bytes: &[u8]) -> &[u8] {
    if let Ok(Record::Chunk(chunk, _)) = decode(bytes) {
        return &bytes[..size_of::<ChunkHeader>() + chunk.len as usize];
    }
    bytes
}

/// Copies a `T` out of the front of `bytes`.
///
/// # Safety
/// Every bit pattern of `size_of::<T>()` bytes must be a valid `T`.
unsafe fn read<T: Copy>(bytes: &[u8]) -> Result<T, DecodeError> {
    let needed = size_of::<T>();
    if bytes.len() < needed {
        return Err(DecodeError::Short {
            len: bytes.len(),
            needed,
        });
    }
    // SAFETY: `bytes` holds at least size_of::<T>() bytes, the caller vouches
    // that any bit pattern is a valid T, and read_unaligned copes with any
    // alignment.
    Ok(unsafe { bytes.as_ptr().cast::<T>().read_unaligned() })
}

/// The bytes of a record made in userspace (a swept stream's close, a
/// socket anchor), laid out exactly as the kernel lays out its own, so
/// recordings and the pipeline treat both alike.
pub fn encode<T: UserRecord>(record: &T) -> Vec<u8> {
    let size = size_of::<T>();
    let mut bytes = vec![0u8; size];
    // SAFETY: UserRecord types are repr(C) with explicit padding and no
    // implicit padding (asserted in tracer-common), so all `size` bytes are
    // initialised; the destination holds exactly `size` bytes.
    unsafe {
        std::ptr::copy_nonoverlapping((record as *const T).cast::<u8>(), bytes.as_mut_ptr(), size);
    }
    bytes
}

/// The bytes of a chunk record, header then payload, as the kernel lays
/// them out (for recordings synthesised by tests and tools).
pub fn encode_chunk(header: &ChunkHeader, payload: &[u8]) -> Vec<u8> {
    let header = ChunkHeader {
        len: payload.len() as u32,
        ..*header
    };
    let size = size_of::<ChunkHeader>();
    let mut bytes = vec![0u8; size];
    // SAFETY: ChunkHeader is repr(C) with explicit padding and no implicit
    // padding (asserted in tracer-common), so all `size` bytes are
    // initialised; the destination holds exactly `size` bytes.
    unsafe {
        std::ptr::copy_nonoverlapping((&raw const header).cast::<u8>(), bytes.as_mut_ptr(), size);
    }
    bytes.extend_from_slice(payload);
    bytes
}

/// Records userspace makes itself (and generators of test and benchmark
/// traffic): types with explicit padding only, so every byte is set.
pub trait UserRecord: Copy {}
impl UserRecord for SockClose {}
impl UserRecord for SockSend {}
impl UserRecord for SockAnchor {}
impl UserRecord for ProcessInfo {}
impl UserRecord for TcpAck {}
impl UserRecord for TcpSample {}
impl UserRecord for TlsBind {}
impl UserRecord for Tick {}

/// A NUL-padded fixed-size field from a string (truncated to fit).
pub fn fixed<const N: usize>(text: &str) -> [u8; N] {
    let mut out = [0u8; N];
    let n = text.len().min(N);
    out[..n].copy_from_slice(&text.as_bytes()[..n]);
    out
}

/// The text of a NUL-padded fixed-size field.
pub fn unfixed(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of<T: Copy>(value: &T) -> Vec<u8> {
        // SAFETY: reading the object representation of a Copy repr(C) value
        // with no padding bytes (asserted in tracer-common).
        unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }
            .to_vec()
    }

    fn header(kind: RecordKind) -> RecordHeader {
        RecordHeader {
            ts_ns: 42,
            kind: kind as u16,
            _pad0: 0,
            tgid: 7,
            tid: 8,
            _pad1: 0,
        }
    }

    #[test]
    fn round_trips_each_kind() {
        let send = SockSend {
            header: header(RecordKind::SockSend),
            sock: 0xffff_8880_1234_5678,
            ret: -11,
            family: 2,
            protocol: 6,
            fd: 3,
            write_seq: 0,
            requested: 100,
            _pad0: 0,
        };
        assert_eq!(decode(&bytes_of(&send)), Ok(Record::SockSend(send)));
        let bind = TlsBind {
            header: header(RecordKind::TlsBind),
            tls_conn: 0xc000_1000,
            sock: 0xffff_8880_0000_0040,
            fd: 9,
            _pad0: 0,
        };
        let bytes = bytes_of(&bind);
        let decoded = decode(&bytes).unwrap();
        assert_eq!(decoded, Record::TlsBind(bind));
        assert_eq!(decoded.header().tgid, 7);
        let ack = TcpAck {
            header: header(RecordKind::TcpAck),
            sock: 0xffff_8880_0000_0040,
            ack_seq: 1234,
            window: 0,
            _pad0: 0,
        };
        assert_eq!(decode(&bytes_of(&ack)), Ok(Record::TcpAck(ack)));
        let close = SockClose {
            header: header(RecordKind::SockClose),
            fd: 9,
            _pad0: 0,
            tls_conn: 0xc000_1000,
            sock: 0xffff_8880_0000_0040,
            end_offsets: [10, 20, u64::MAX, u64::MAX],
        };
        assert_eq!(decode(&encode(&close)), Ok(Record::SockClose(close)));
        let sent = TlsSent {
            header: header(RecordKind::TlsSent),
            sock: 0xffff_8880_0000_0040,
            write_seq: 77,
            _pad0: 0,
        };
        assert_eq!(decode(&bytes_of(&sent)), Ok(Record::TlsSent(sent)));
    }

    #[test]
    fn an_encoded_chunk_decodes_to_its_header_and_payload() {
        let header = ChunkHeader {
            header: header(RecordKind::Chunk),
            fd: 9,
            direction: 1,
            source: 2,
            flags: 1,
            offset: 77,
            tls_conn: 0,
            sock: 0xffff_8880_0000_0040,
            len: 0,
            write_seq: 0,
        };
        let bytes = encode_chunk(&header, b"hello");
        let decoded = decode(&bytes).unwrap();
        assert_eq!(
            decoded,
            Record::Chunk(ChunkHeader { len: 5, ..header }, b"hello")
        );
    }

    #[test]
    fn rejects_short_and_unknown_records() {
        let send = SockSend {
            header: header(RecordKind::SockSend),
            sock: 1,
            ret: 1,
            family: 2,
            protocol: 6,
            fd: 3,
            write_seq: 0,
            requested: 1,
            _pad0: 0,
        };
        let bytes = bytes_of(&send);
        assert_eq!(
            decode(&bytes[..30]),
            Err(DecodeError::Short {
                len: 30,
                needed: 56
            })
        );
        assert_eq!(
            decode(&bytes[..10]),
            Err(DecodeError::Short {
                len: 10,
                needed: 24
            })
        );
        let mut unknown = bytes;
        unknown[8] = 0xee;
        assert_eq!(
            decode(&unknown),
            Err(DecodeError::UnknownKind { kind: 0xee })
        );
    }
}
