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

/// LRU hash `StreamKey -> u64`: next offset of each captured byte stream.
pub const STREAM_OFFSETS: &str = "STREAM_OFFSETS";
/// Hash `GoroutineKey -> TlsReadArgs`: Go TLS Read calls in flight, from
/// entry to RET.
pub const TLS_READS: &str = "TLS_READS";
/// Hash `GoroutineKey -> (*tls.Conn, entry thread)`: Go TLS Write calls in
/// flight, from entry to RET (sized like [`TLS_READS`]).
pub const TLS_WRITES: &str = "TLS_WRITES";

/// Default capacity of [`STREAM_OFFSETS`] (two directions per connection).
pub const DEFAULT_MAX_STREAMS: u32 = 65536;
/// Default capacity of [`TLS_READS`].
pub const DEFAULT_MAX_INFLIGHT_READS: u32 = 16384;

/// Global holding [`crate::layout::SockSendLengthLayout`], read from tracefs.
pub const SOCK_SEND_LENGTH_LAYOUT: &str = "SOCK_SEND_LENGTH_LAYOUT";

/// Global holding the [`crate::layout::SockSendLengthLayout`] of
/// `sock:sock_recv_length`.
pub const SOCK_RECV_LENGTH_LAYOUT: &str = "SOCK_RECV_LENGTH_LAYOUT";
/// Global holding the [`crate::layout::SyscallFdLayout`] of `sys_enter_close`.
pub const CLOSE_LAYOUT: &str = "CLOSE_LAYOUT";
/// Global holding the [`crate::layout::SyscallIoLayout`].
pub const SYSCALL_IO_LAYOUT: &str = "SYSCALL_IO_LAYOUT";
/// Global holding the [`crate::layout::SyscallNumbers`].
pub const SYSCALL_NUMBERS: &str = "SYSCALL_NUMBERS";
/// Hash `u32 tid -> IoArgs`: socket-capable syscalls in flight.
pub const ACTIVE_IO: &str = "ACTIVE_IO";
/// LRU hash `(tgid, fd) -> *tls.Conn`: fds carrying Go TLS, whose syscall
/// payload (ciphertext) is not captured, and the conn bound to each.
pub const TLS_FDS: &str = "TLS_FDS";
/// LRU hash `(tgid, *tls.Conn) -> fd`: the binding the other way.
pub const CONN_FDS: &str = "CONN_FDS";
/// LRU hash `tid -> (*tls.Conn and direction, goroutine)`: a thread inside
/// a Go TLS Write or Read whose goroutine's first socket syscall will reveal
/// the conn's fd.
pub const THREAD_TLS: &str = "THREAD_TLS";
/// Default capacity of [`ACTIVE_IO`] (threads of targets in a syscall).
pub const DEFAULT_MAX_ACTIVE_IO: u32 = 16384;
/// Default capacity of [`TLS_FDS`].
pub const DEFAULT_MAX_TLS_FDS: u32 = 65536;

/// LRU hash `u64 sock address -> SockOwner`: sockets of targets, so the
/// TCP tracepoints (which fire in softirq context, in any task) can tell
/// theirs apart.
pub const KNOWN_SOCKS: &str = "KNOWN_SOCKS";
/// Default capacity of [`KNOWN_SOCKS`].
pub const DEFAULT_MAX_SOCKS: u32 = 65536;
/// Global holding the [`crate::layout::KernelLayout`] (from BTF).
pub const KERNEL_LAYOUT: &str = "KERNEL_LAYOUT";
/// Global holding the [`crate::layout::TcpProbeLayout`].
pub const TCP_PROBE_LAYOUT: &str = "TCP_PROBE_LAYOUT";
/// Global holding the [`crate::layout::SockStateLayout`].
pub const SOCK_STATE_LAYOUT: &str = "SOCK_STATE_LAYOUT";
/// Global holding the [`crate::layout::RetransmitLayout`].
pub const RETRANSMIT_LAYOUT: &str = "RETRANSMIT_LAYOUT";

/// Per-CPU scratch for building a chunk record before it is copied to the
/// ring with its exact size.
pub const CHUNK_SCRATCH: &str = "CHUNK_SCRATCH";

/// Program names (the function names in `tracer-ebpf`).
pub mod programs {
    /// Tracepoint `sock:sock_send_length`.
    pub const SOCK_SEND_LENGTH: &str = "sock_send_length";
    /// Uprobe at the entry of Go's `crypto/tls.(*Conn).Write`.
    pub const GO_TLS_WRITE: &str = "go_tls_write";
    /// Uprobe at the entry of Go's `crypto/tls.(*Conn).Read`.
    pub const GO_TLS_READ: &str = "go_tls_read";
    /// Uprobe at each RET of Go's `crypto/tls.(*Conn).Write`.
    pub const GO_TLS_WRITE_RET: &str = "go_tls_write_ret";
    /// Uprobe at each RET of Go's `crypto/tls.(*Conn).Read`.
    pub const GO_TLS_READ_RET: &str = "go_tls_read_ret";
    /// Tracepoint `syscalls:sys_enter_close`.
    pub const SYS_ENTER_CLOSE: &str = "sys_enter_close";
    /// Tracepoints `syscalls:sys_enter_{read,write,readv,writev,sendto,recvfrom}`.
    pub const SYS_ENTER_IO: &str = "sys_enter_io";
    /// Tracepoints `syscalls:sys_exit_{read,write,readv,writev,sendto,recvfrom}`.
    pub const SYS_EXIT_IO: &str = "sys_exit_io";
    /// Tracepoint `sock:sock_recv_length`.
    pub const SOCK_RECV_LENGTH: &str = "sock_recv_length";
    /// Tracepoint `tcp:tcp_probe`.
    pub const TCP_PROBE: &str = "tcp_probe";
    /// Tracepoint `sock:inet_sock_set_state`.
    pub const INET_SOCK_SET_STATE: &str = "inet_sock_set_state";
    /// Tracepoint `tcp:tcp_retransmit_skb`.
    pub const TCP_RETRANSMIT_SKB: &str = "tcp_retransmit_skb";
}

/// Default number of entries of [`TARGET_TGIDS`].
pub const DEFAULT_MAX_TARGETS: u32 = 64;
/// Default byte size of [`EVENTS`]: 8 MiB. Must be a power of two multiple of
/// the page size.
pub const DEFAULT_RINGBUF_BYTES: u32 = 8 << 20;
