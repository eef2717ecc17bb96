//! Typed records decoded from the bytes the kernel programs send.

mod record;
mod streams;

pub use record::{DecodeError, Record, decode, encode_fd_close};
pub use streams::{StreamEvent, StreamId, StreamStats, Streams};
