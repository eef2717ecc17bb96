//! Typed records decoded from the bytes the kernel programs send.

mod record;
mod streams;

pub use record::{DecodeError, Record, UserRecord, decode, encode, encode_chunk, fixed, unfixed};
pub use streams::{StreamEvent, StreamId, StreamStats, Streams};
