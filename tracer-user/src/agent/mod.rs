//! The live agent's I/O edge: target discovery and attachment, and the
//! ring-buffer consumer. Everything after the raw record bytes is the pure
//! pipeline, fed identically from here or from a recording.

mod session;

pub use session::{Session, SessionOptions, until_stopped};
