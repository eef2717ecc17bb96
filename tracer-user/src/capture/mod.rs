//! Typed records decoded from the bytes the kernel programs send.

mod record;

pub use record::{DecodeError, Record, decode};
