//! Typed records decoded from the bytes the kernel programs send.

mod record;
mod streams;

pub use record::{
    DecodeError, MAX_STREAM_OFFSET, Record, UserRecord, decode, encode, encode_chunk, fixed,
    trimmed, unfixed,
};
pub use streams::{ConnId, Place, StreamEvent, StreamId, StreamStats, Streams};
