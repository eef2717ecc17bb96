//! Names of the maps, globals and programs in the eBPF object, for the
//! loader. The kernel side names them by its Rust identifiers, so a rename
//! there must be mirrored here: the loader fails on a global or program it
//! cannot find, and every root test loads the object.

/// Ring buffer carrying every [`crate::record`] to userspace. Its byte size is
/// set at load time (`--ringbuf-size`).
pub const EVENTS: &str = "EVENTS";
/// Per-CPU `u64` counters indexed by [`crate::counters::Counter`].
pub const COUNTERS: &str = "COUNTERS";
/// Hash map `u32 tgid -> u32 flags`: the processes being traced. Programs
/// return early for any other process, so untargeted processes pay one lookup.
pub const TARGET_TGIDS: &str = "TARGET_TGIDS";

/// LRU hash `StreamKey -> StreamCursor`: next offset of each captured byte
/// stream.
pub const STREAM_OFFSETS: &str = "STREAM_OFFSETS";
/// Default capacity of [`STREAM_OFFSETS`] (two directions per connection).
pub const DEFAULT_MAX_STREAMS: u32 = 65536;

/// LRU hash `(tgid, *tls.Conn) -> (socket, fd)`: the socket each Go TLS
/// conn reads, for its decrypted records.
pub const CONN_SOCKS: &str = "CONN_SOCKS";
/// Hash `tgid -> TlsFrames`: where each target's Go TLS Write and
/// readRecordOrCCS are, for the frame walks from its sends and receives.
pub const TLS_FRAMES: &str = "TLS_FRAMES";
/// Default capacity of [`CONN_SOCKS`].
pub const DEFAULT_MAX_TLS_CONNS: u32 = 65536;

/// Global holding the [`crate::layout::SyscallNumbers`].
pub const SYSCALL_NUMBERS: &str = "SYSCALL_NUMBERS";
/// Global `u64`: pending bytes in [`EVENTS`] past which a record wakes the
/// consumer; below it records are submitted without a wakeup and the
/// consumer drains on its own timer.
pub const RING_WAKEUP_BYTES: &str = "RING_WAKEUP_BYTES";

/// LRU hash `u64 sock address -> SockOwner`: sockets of targets, so the
/// TCP tracepoints (which fire in softirq context, in any task) can tell
/// theirs apart.
pub const KNOWN_SOCKS: &str = "KNOWN_SOCKS";
/// Default capacity of [`KNOWN_SOCKS`].
pub const DEFAULT_MAX_SOCKS: u32 = 65536;
/// Global holding the [`crate::layout::KernelLayout`] (from BTF).
pub const KERNEL_LAYOUT: &str = "KERNEL_LAYOUT";

/// Default share of the ring's bytes pending before a record wakes the
/// consumer (see [`RING_WAKEUP_BYTES`]): a quarter.
pub const RING_WAKEUP_DIVISOR: u32 = 4;

/// Program names (the function names in `tracer-ebpf`).
pub mod programs {
    /// Raw tracepoint `sock_send_length`.
    pub const SOCK_SEND_LENGTH: &str = "sock_send_length";
    /// Uprobe in Go's `crypto/tls.(*Conn).readRecordOrCCS`, where a record
    /// has just been decrypted.
    pub const GO_TLS_RECORD: &str = "go_tls_record";
    /// Raw tracepoint `sock_recv_length`.
    pub const SOCK_RECV_LENGTH: &str = "sock_recv_length";
    /// Raw tracepoint `tcp_probe`.
    pub const TCP_PROBE: &str = "tcp_probe";
    /// Raw tracepoint `inet_sock_set_state`.
    pub const INET_SOCK_SET_STATE: &str = "inet_sock_set_state";
    /// Raw tracepoint `tcp_retransmit_skb`.
    pub const TCP_RETRANSMIT_SKB: &str = "tcp_retransmit_skb";
}

/// Default number of entries of [`TARGET_TGIDS`].
pub const DEFAULT_MAX_TARGETS: u32 = 64;
/// Default byte size of [`EVENTS`]: 8 MiB. Must be a power of two multiple of
/// the page size.
pub const DEFAULT_RINGBUF_BYTES: u32 = 8 << 20;
