//! Names of the maps and globals in the eBPF object, shared so that a rename on
//! one side is a compile error on the other.

/// Ring buffer carrying every [`crate::record`] to userspace. Its byte size is
/// set at load time (`--ringbuf-size`).
pub const EVENTS: &str = "EVENTS";
/// Per-CPU `u64` counters indexed by [`crate::counters::Counter`].
pub const COUNTERS: &str = "COUNTERS";
/// Hash map `u32 tgid -> u32 flags`: the processes being traced. Programs
/// return early for any other process, so untargeted processes pay one lookup.
pub const TARGET_TGIDS: &str = "TARGET_TGIDS";

/// Global holding [`crate::layout::SockSendLengthLayout`], read from tracefs.
pub const SOCK_SEND_LENGTH_LAYOUT: &str = "SOCK_SEND_LENGTH_LAYOUT";

/// Program names (the function names in `tracer-ebpf`).
pub mod programs {
    /// Tracepoint `sock:sock_send_length`.
    pub const SOCK_SEND_LENGTH: &str = "sock_send_length";
    /// Uprobe at the entry of Go's `crypto/tls.(*Conn).Write`.
    pub const GO_TLS_WRITE: &str = "go_tls_write";
}

/// Default number of entries of [`TARGET_TGIDS`].
pub const DEFAULT_MAX_TARGETS: u32 = 64;
/// Default byte size of [`EVENTS`]: 8 MiB. Must be a power of two multiple of
/// the page size.
pub const DEFAULT_RINGBUF_BYTES: u32 = 8 << 20;
