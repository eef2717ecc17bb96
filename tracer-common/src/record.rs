//! Records sent from the kernel programs to userspace through the `EVENTS`
//! ring buffer. Each starts with a [`RecordHeader`]; `kind` says which struct
//! it is.

/// Discriminant of a record, in [`RecordHeader::kind`].
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// [`SockSend`].
    SockSend = 1,
    // 2 is retired (an early per-Write record whose fd came from a struct
    // chase); never reuse it, so old recordings cannot be misread.
    /// [`ChunkHeader`] followed by `len` payload bytes.
    Chunk = 3,
    /// [`FdClose`].
    FdClose = 4,
    /// [`SockRecv`].
    SockRecv = 5,
    /// [`TcpSample`].
    TcpSample = 6,
    /// [`SockState`].
    SockState = 7,
    /// [`Retransmit`].
    Retransmit = 8,
    /// [`SockAnchor`] (made by userspace at attach).
    SockAnchor = 9,
    /// [`ProcessInfo`] (made by userspace at attach).
    ProcessInfo = 10,
    /// [`TlsBind`].
    TlsBind = 11,
    /// [`TlsWriteDone`].
    TlsWriteDone = 12,
}

impl RecordKind {
    /// The kind for a raw header value, or `None` for an unknown one.
    pub const fn from_raw(raw: u16) -> Option<Self> {
        match raw {
            1 => Some(Self::SockSend),
            3 => Some(Self::Chunk),
            4 => Some(Self::FdClose),
            5 => Some(Self::SockRecv),
            6 => Some(Self::TcpSample),
            7 => Some(Self::SockState),
            8 => Some(Self::Retransmit),
            9 => Some(Self::SockAnchor),
            10 => Some(Self::ProcessInfo),
            11 => Some(Self::TlsBind),
            12 => Some(Self::TlsWriteDone),
            _ => None,
        }
    }
}

/// Common prefix of every record.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// `bpf_ktime_get_ns()`: CLOCK_MONOTONIC nanoseconds. Converted to Unix
    /// time once, at the output edge.
    pub ts_ns: u64,
    /// A [`RecordKind`] value.
    pub kind: u16,
    pub _pad0: u16,
    /// Process id (kernel tgid).
    pub tgid: u32,
    /// Thread id (kernel pid).
    pub tid: u32,
    pub _pad1: u32,
}

const _: () = assert!(size_of::<RecordHeader>() == 24);

/// A send on a TCP socket by a target process (`sock:sock_send_length`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockSend {
    pub header: RecordHeader,
    /// Kernel address of the `struct sock`: stable while the socket lives,
    /// joins with `tcp:tcp_probe` and `sock:inet_sock_set_state`.
    pub sock: u64,
    /// Bytes sent, or a negative errno (`-EAGAIN` when the send buffer is full).
    pub ret: i32,
    pub family: u16,
    pub protocol: u16,
    /// The fd of the syscall that sent, or -1 when it was not one of the
    /// traced socket syscalls.
    pub fd: i32,
    /// `tcp_sock.write_seq` after this send: the TCP sequence number just
    /// past the last byte the application has queued. With the stream
    /// offsets this maps any written byte to the sequence number the
    /// client's ACK will cover.
    pub write_seq: u32,
}

const _: () = assert!(size_of::<SockSend>() == 48);

/// A socket of a target as seen by `tcp:tcp_probe` (an incoming segment on
/// an established connection), emitted when the segment's ACK advances or
/// the peer's window opens or closes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpSample {
    pub header: RecordHeader,
    pub sock: u64,
    pub sock_cookie: u64,
    /// The fd the owning process used for it (from the last send/receive).
    pub fd: i32,
    /// The segment's acknowledgment number (host order): every byte before
    /// it has reached the peer.
    pub ack_seq: u32,
    /// The segment's raw (unscaled) window field; 0 means the peer's
    /// receive buffer is full.
    pub window: u16,
    pub family: u16,
    pub sport: u16,
    pub dport: u16,
    pub snd_una: u32,
    pub snd_nxt: u32,
    pub snd_wnd: u32,
    pub snd_cwnd: u32,
    /// Smoothed RTT in microseconds (the tracepoint's srtt, which is
    /// already shifted to usec).
    pub srtt_us: u32,
    pub rcv_wnd: u32,
    /// Payload bytes in the segment.
    pub data_len: u16,
    pub _pad0: u16,
    /// Local and remote address (IPv4 in the first 4 bytes, or IPv6).
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
}

const _: () = assert!(size_of::<TcpSample>() == 120);

/// A TCP state change of a target's socket (`sock:inet_sock_set_state`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockState {
    pub header: RecordHeader,
    pub sock: u64,
    pub oldstate: i32,
    pub newstate: i32,
}

const _: () = assert!(size_of::<SockState>() == 40);

/// A retransmitted segment of a target's socket (`tcp:tcp_retransmit_skb`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retransmit {
    pub header: RecordHeader,
    pub sock: u64,
}

const _: () = assert!(size_of::<Retransmit>() == 32);

/// A socket a target already had when watchtrace attached, from sock_diag
/// and /proc (made by userspace, recorded like kernel records): its identity
/// and its counters at that moment.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockAnchor {
    pub header: RecordHeader,
    pub fd: i32,
    pub family: u16,
    /// TCP state (1 = ESTABLISHED, 10 = LISTEN, ...).
    pub state: u8,
    pub _pad0: u8,
    pub sport: u16,
    pub dport: u16,
    pub inode: u32,
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    pub bytes_sent: u64,
    pub bytes_acked: u64,
    pub bytes_received: u64,
    /// Unacknowledged bytes in the send queue.
    pub send_queue: u32,
    pub rtt_us: u32,
}

const _: () = assert!(size_of::<SockAnchor>() == 104);

/// A process watchtrace started tracing (made by userspace, recorded so a
/// replay knows every target, including those that appeared later).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessInfo {
    pub header: RecordHeader,
    /// `/proc/PID/comm`, NUL-padded.
    pub comm: [u8; 16],
    /// The binary's Go version (e.g. `go1.19.8`), NUL-padded; empty if none.
    pub go_version: [u8; 16],
    /// `/proc/PID/exe`, NUL-padded (truncated beyond 255 bytes).
    pub exe: [u8; 256],
}

const _: () = assert!(size_of::<ProcessInfo>() == 312);

/// What the kernel keeps about a target's socket, keyed by its address.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockOwner {
    pub tgid: u32,
    pub fd: i32,
    /// Last ACK number reported, to report only progress.
    pub last_ack: u32,
    /// Non-zero while the peer advertises a zero window.
    pub zero_window: u32,
}

const _: () = assert!(size_of::<SockOwner>() == 16);

/// A receive on a TCP socket by a target process (`sock:sock_recv_length`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockRecv {
    pub header: RecordHeader,
    pub sock: u64,
    /// Bytes received, or a negative errno (`-EAGAIN`: nothing to read).
    pub ret: i32,
    pub family: u16,
    pub protocol: u16,
    pub fd: i32,
    /// Unused (kept so both socket records share one layout).
    pub _pad0: u32,
}

const _: () = assert!(size_of::<SockRecv>() == 48);

/// A socket-capable syscall in flight, from its enter to its exit
/// tracepoint (kernel-only bookkeeping, shared for the size assert).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoArgs {
    pub buf: u64,
    pub count: u64,
    pub fd: i32,
    /// An [`IoKind`] value.
    pub kind: u8,
    /// Set by the socket tracepoints that fire inside the syscall.
    pub is_socket: u8,
    pub _pad0: u16,
}

const _: () = assert!(size_of::<IoArgs>() == 24);

/// Which syscall an [`IoArgs`] is for.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoKind {
    Write = 1,
    Read = 2,
    /// writev: the payload is in an iovec array.
    WriteVec = 3,
    /// readv.
    ReadVec = 4,
}

/// Which way bytes moved, seen from the traced process.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Written by the traced process (for an apiserver: responses, events).
    Egress = 0,
    /// Read by the traced process (requests; etcd responses).
    Ingress = 1,
}

/// Where a chunk's bytes were taken from.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChunkSource {
    /// Plaintext at Go's `crypto/tls.(*Conn).Write` / `Read`.
    GoTls = 1,
    /// Payload of a socket syscall (cleartext connections: h2c, plain etcd).
    Syscall = 2,
}

/// Largest payload in one chunk record. Longer calls are split into several
/// chunks with consecutive offsets.
pub const CHUNK_DATA_MAX: usize = 16 * 1024;
/// Chunks per call before the rest is counted as lost (a truncation gap):
/// 1024 x 16 KiB = 16 MiB per call, beyond any socket buffer.
pub const CHUNKS_PER_CALL_MAX: usize = 1024;

/// Flag in [`ChunkHeader::flags`]: the first chunk delivered since the
/// kernel started counting this stream at offset 0 (first bytes seen, fd
/// reused, or its table entry was evicted). Kept on every chunk until one is
/// delivered, so userspace always learns of the restart, and a first
/// delivered chunk at offset X means X bytes were lost before it.
pub const CHUNK_FLAG_STREAM_START: u16 = 1;

/// Value of the kernel's per-stream offset table.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamState {
    /// Offset of the next byte.
    pub next_offset: u64,
    /// Non-zero until a chunk of this stream has reached the ring.
    pub start_pending: u32,
    /// Non-zero once the fd was closed but the [`FdClose`] record could not
    /// be delivered (ring full): userspace sweeps such entries from the
    /// table and reports their end offsets itself.
    pub closed: u32,
}

const _: () = assert!(size_of::<StreamState>() == 16);

/// A piece of one direction of one connection's byte stream.
///
/// `offset` counts every byte of the stream the kernel saw, captured or not:
/// a chunk whose offset is beyond the end of the previous one means the bytes
/// in between were lost (ring buffer full, or a call longer than
/// [`CHUNKS_PER_CALL_MAX`] chunks), and their exact number is the difference.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkHeader {
    pub header: RecordHeader,
    /// The socket's fd in the traced process, or -1 when not known yet
    /// (a Go TLS stream before its first syscall bound it: see [`TlsBind`]).
    pub fd: i32,
    /// A [`Direction`] value.
    pub direction: u8,
    /// A [`ChunkSource`] value.
    pub source: u8,
    /// `CHUNK_FLAG_*` bits.
    pub flags: u16,
    /// Stream offset of the first payload byte.
    pub offset: u64,
    /// For Go TLS: the `*tls.Conn`, which identifies the stream (stable for
    /// the connection's life; Go's heap does not move objects). 0 for
    /// syscall payload, whose stream is identified by the fd.
    pub conn: u64,
    /// Payload bytes following this header.
    pub len: u32,
    pub _pad0: u32,
}

const _: () = assert!(size_of::<ChunkHeader>() == 56);

/// A chunk record as laid out in the per-CPU scratch buffer and the ring.
#[repr(C)]
pub struct ChunkRecord {
    pub header: ChunkHeader,
    pub data: [u8; CHUNK_DATA_MAX],
}

/// A traced process closed an fd that carried captured bytes, with the final
/// stream offsets, so bytes lost at the very end are counted too.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdClose {
    pub header: RecordHeader,
    pub fd: i32,
    pub _pad0: u32,
    /// The Go `*tls.Conn` bound to the fd, or 0.
    pub conn: u64,
    /// End offset per [`Direction`] and [`ChunkSource`]:
    /// `[egress tls, ingress tls, egress syscall, ingress syscall]` (the TLS
    /// ones are the streams of `conn`), `u64::MAX` where there was none.
    pub end_offsets: [u64; 4],
}

const _: () = assert!(size_of::<FdClose>() == 72);

/// The kernel learnt which fd a Go `*tls.Conn` writes and reads through:
/// the first socket syscall a thread made after entering that conn's
/// `Write` or `Read`. Go TLS streams are keyed by conn; this joins them to
/// the socket (its records, its TCP state).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsBind {
    pub header: RecordHeader,
    pub conn: u64,
    pub fd: i32,
    pub _pad0: u32,
}

const _: () = assert!(size_of::<TlsBind>() == 40);

/// A Go `crypto/tls.(*Conn).Write` returned: its plaintext has been
/// encrypted and accepted by the kernel (Go loops until the socket took all
/// of it), so every byte the conn's Writes carried so far has been sent.
/// This is the moment a watch event leaves the apiserver for the socket.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsWriteDone {
    pub header: RecordHeader,
    pub conn: u64,
    /// The call's `n` result.
    pub written: i64,
}

const _: () = assert!(size_of::<TlsWriteDone>() == 40);

/// Key of the kernel's per-stream offset table.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamKey {
    pub tgid: u32,
    /// The fd for syscall streams; -1 for Go TLS streams.
    pub fd: i32,
    /// The `*tls.Conn` for Go TLS streams; 0 for syscall streams.
    pub conn: u64,
    pub direction: u8,
    pub source: u8,
    pub _pad0: [u8; 6],
}

const _: () = assert!(size_of::<StreamKey>() == 24);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: each type is repr(C) with explicit padding fields and only
    // integer members, so every bit pattern is a valid value.
    unsafe impl aya::Pod for super::RecordHeader {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::SockSend {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ChunkHeader {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::FdClose {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::StreamKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::StreamState {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::SockRecv {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::TcpSample {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::SockState {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::Retransmit {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::SockAnchor {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ProcessInfo {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::TlsBind {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::TlsWriteDone {}
}

/// Arguments of a Go TLS Read in flight, saved at entry for the RET probes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsReadArgs {
    pub buf: u64,
    pub cap: u64,
    /// The `*tls.Conn`.
    pub conn: u64,
    /// The thread the call entered on, which holds its fd-binding mark.
    pub tid: u32,
    pub _pad0: u32,
}

const _: () = assert!(size_of::<TlsReadArgs>() == 32);
