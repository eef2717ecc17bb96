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
    /// [`SockClose`].
    SockClose = 4,
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
    // 12 is retired (a record at each RET of a Go TLS Write: a RET cannot
    // be emulated, so its uprobe cost a second trap; the Write's sends say
    // when its bytes reached the kernel instead).
    /// [`TcpAck`].
    TcpAck = 13,
    /// [`TlsSent`].
    TlsSent = 14,
    /// [`Tick`] (made by userspace).
    Tick = 15,
}

impl RecordKind {
    /// The kind for a raw header value, or `None` for an unknown one.
    pub const fn from_raw(raw: u16) -> Option<Self> {
        match raw {
            1 => Some(Self::SockSend),
            3 => Some(Self::Chunk),
            4 => Some(Self::SockClose),
            5 => Some(Self::SockRecv),
            6 => Some(Self::TcpSample),
            7 => Some(Self::SockState),
            8 => Some(Self::Retransmit),
            9 => Some(Self::SockAnchor),
            10 => Some(Self::ProcessInfo),
            11 => Some(Self::TlsBind),
            13 => Some(Self::TcpAck),
            14 => Some(Self::TlsSent),
            15 => Some(Self::Tick),
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
    /// The fd of the syscall that sent (its first argument, from the saved
    /// user registers), or -1 when the send was not made by one of the
    /// socket syscalls.
    pub fd: i32,
    /// `tcp_sock.write_seq` after this send: the TCP sequence number just
    /// past the last byte the application has queued. With the stream
    /// offsets this maps any written byte to the sequence number the
    /// client's ACK will cover.
    pub write_seq: u32,
    /// Bytes the syscall asked to send (its length argument), 0 when not
    /// known: a send that took fewer (`ret < requested`) is partial, and the
    /// caller sends the rest next.
    pub requested: u32,
    pub _pad0: u32,
}

const _: () = assert!(size_of::<SockSend>() == 56);

/// A socket of a target as seen by `tcp:tcp_probe` (an incoming segment on
/// an established connection), in full: its addresses and TCP state. Sent
/// for a socket's first segment and then at most once per
/// [`TCP_SAMPLE_PERIOD_NS`] when its ACK advances or the peer's window opens
/// or closes; the other such segments send a [`TcpAck`].
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

/// Least time between two full [`TcpSample`]s of one socket.
pub const TCP_SAMPLE_PERIOD_NS: u64 = 1_000_000_000;

/// An incoming segment of a target's socket that advanced the ACK or
/// opened or closed the peer's window (`tcp:tcp_probe`): the compact form
/// of a [`TcpSample`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpAck {
    pub header: RecordHeader,
    pub sock: u64,
    /// The segment's acknowledgment number (host order).
    pub ack_seq: u32,
    /// The segment's raw window field; 0: the peer's buffer is full.
    pub window: u16,
    pub _pad0: u16,
}

const _: () = assert!(size_of::<TcpAck>() == 40);

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

/// The clock reached `header.ts_ns` (made by userspace about ten times a
/// second, and recorded): what waits for time rather than for a record (an
/// event's ack deadline) is decided on the records' own clock, so a quiet
/// capture behaves the same live and replayed.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tick {
    pub header: RecordHeader,
}

const _: () = assert!(size_of::<Tick>() == 24);

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
    /// When the last full [`TcpSample`] was sent.
    pub last_sample_ns: u64,
    /// The Go `*tls.Conn` bound to this socket (learnt from its reads), or
    /// 0.
    pub tls_conn: u64,
    /// A `SOCK_KIND_*` value: what the socket's payload is.
    pub kind: u32,
    /// Non-zero after a send failed (EAGAIN), until one succeeds.
    pub blocked: u32,
    /// The Go TLS Write being sent, identified by its buffer, length and
    /// frame; `write_open` while its records are not all sent.
    pub write_buf: u64,
    pub write_len: u64,
    pub write_frame: u64,
    /// Plaintext of the open Write not yet carried by a complete record.
    pub plain_left: u64,
    /// Bytes of the record being sent still to go (0: the next send starts
    /// a record).
    pub rec_left: u32,
    /// Bytes a TLS record adds to its plaintext (header, tag, inner type):
    /// learnt from the socket's first single-record Write; 0 until then.
    pub overhead: u32,
    pub write_open: u32,
    pub _pad0: u32,
    /// How far above a send's frame pointer the frame of the Write's callee
    /// was last found (0 unknown): one call path gives one distance, so
    /// most sends find the Write in one read instead of a walk.
    pub walk_delta: u64,
}

const _: () = assert!(size_of::<SockOwner>() == 96);

/// [`SockOwner::kind`]: nothing sent or received yet that says.
pub const SOCK_KIND_UNKNOWN: u32 = 0;
/// [`SockOwner::kind`]: TLS records; the plaintext comes from the Go TLS
/// probes and the socket's own payload is not captured.
pub const SOCK_KIND_TLS: u32 = 1;
/// [`SockOwner::kind`]: cleartext, captured from the syscalls.
pub const SOCK_KIND_CLEAR: u32 = 2;

/// Where a target's Go TLS functions are in its address space, for the
/// frame walks up from its socket calls: a frame whose return address falls
/// in a range belongs to a callee of that function, so the next saved frame
/// pointer is the function's.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsFrames {
    /// `crypto/tls.(*Conn).Write`: `b`'s pointer and length are in its ABI
    /// spill slots at +24 and +32.
    pub write_start: u64,
    pub write_end: u64,
    /// `crypto/tls.(*Conn).readRecordOrCCS`: its receiver (the conn) is in
    /// its ABI spill slot at +16.
    pub read_start: u64,
    pub read_end: u64,
}

const _: () = assert!(size_of::<TlsFrames>() == 32);

/// The last record of a Go TLS Write left for the socket: every byte the
/// Write carried is in the kernel (`t_sent`). A Write sent whole by the
/// send that captured it says so on its chunk instead
/// ([`CHUNK_FLAG_SENT`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsSent {
    pub header: RecordHeader,
    pub sock: u64,
    /// `tcp_sock.write_seq` after that send.
    pub write_seq: u32,
    pub _pad0: u32,
}

const _: () = assert!(size_of::<TlsSent>() == 40);

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
    /// Payload of a socket send or receive (cleartext connections: h2c,
    /// plain etcd), taken from the syscall's buffer.
    Syscall = 2,
}

/// Largest payload in one chunk record. Longer calls are split into several
/// chunks with consecutive offsets.
pub const CHUNK_DATA_MAX: usize = 16 * 1024;
/// Chunks per call before the rest is counted as lost (a truncation gap):
/// 1024 x 16 KiB = 16 MiB per call, beyond any socket buffer.
pub const CHUNKS_PER_CALL_MAX: usize = 1024;

/// Flag in [`ChunkHeader::flags`]: the first chunk delivered since the
/// kernel started counting this stream at offset 0 (first bytes seen, or its
/// table entry was evicted). Kept on every chunk until one is delivered, so
/// userspace always learns of the restart, and a first delivered chunk at
/// offset X means X bytes were lost before it.
pub const CHUNK_FLAG_STREAM_START: u16 = 1;
/// Flag in [`ChunkHeader::flags`]: the first chunk of one call (a Go TLS
/// `Write`, one decrypted TLS record, one send or receive).
pub const CHUNK_FLAG_CALL_START: u16 = 2;
/// Flag in [`ChunkHeader::flags`]: every byte of the call is in the kernel
/// at this chunk's time (a cleartext send; a Go TLS Write whose records the
/// capturing send sent whole), the socket's `write_seq` then being the
/// chunk's `write_seq`.
pub const CHUNK_FLAG_SENT: u16 = 4;

/// Value of the kernel's per-stream offset table.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamCursor {
    /// Offset of the next byte.
    pub next_offset: u64,
    /// Non-zero until a chunk of this stream has reached the ring.
    pub start_pending: u32,
    /// Non-zero once the socket was closed but the [`SockClose`] record
    /// could not be delivered (ring full): userspace sweeps such entries
    /// from the table and reports their end offsets itself.
    pub closed: u32,
    /// The fd of the stream's socket in the process, or -1.
    pub fd: i32,
    pub _pad0: u32,
}

const _: () = assert!(size_of::<StreamCursor>() == 24);

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
    /// The socket's fd in the traced process, or -1 when not known (a Go
    /// TLS conn before its first send bound it: see [`TlsBind`]).
    pub fd: i32,
    /// A [`Direction`] value.
    pub direction: u8,
    /// A [`ChunkSource`] value.
    pub source: u8,
    /// `CHUNK_FLAG_*` bits.
    pub flags: u16,
    /// Stream offset of the first payload byte.
    pub offset: u64,
    /// For Go TLS: the `*tls.Conn` bound to the socket, once known (from
    /// the conn's reads; see [`TlsBind`]), else 0. 0 for syscall payload.
    pub tls_conn: u64,
    /// The kernel socket (`struct sock` address), which identifies the
    /// stream with `direction` and `source`.
    pub sock: u64,
    /// Payload bytes following this header.
    pub len: u32,
    /// With [`CHUNK_FLAG_SENT`]: `tcp_sock.write_seq` once the call's bytes
    /// were sent.
    pub write_seq: u32,
}

const _: () = assert!(size_of::<ChunkHeader>() == 64);

/// A chunk record with room for `N` payload bytes, of which the header's
/// `len` are used (the kernel's scratch buffer holds one of `CHUNK_DATA_MAX`).
#[repr(C)]
pub struct ChunkRecord<const N: usize> {
    pub header: ChunkHeader,
    pub data: [u8; N],
}

/// A target's TCP socket that carried captured bytes closed
/// (`sock:inet_sock_set_state` to `TCP_CLOSE`), with the final offsets of
/// the streams it carried, so bytes lost at the very end are counted too.
/// Userspace also makes these for the streams of exited processes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockClose {
    pub header: RecordHeader,
    /// The fd the process last used for it, or -1.
    pub fd: i32,
    pub _pad0: u32,
    /// The Go `*tls.Conn` bound to the socket, or 0.
    pub tls_conn: u64,
    /// The socket, or 0 (a swept Go TLS conn never bound to one).
    pub sock: u64,
    /// End offset per [`Direction`] and [`ChunkSource`]:
    /// `[egress tls, ingress tls, egress syscall, ingress syscall]` (the TLS
    /// ones are the streams of `conn`, the syscall ones those of `sock`),
    /// `u64::MAX` where there was none.
    pub end_offsets: [u64; 4],
}

const _: () = assert!(size_of::<SockClose>() == 80);

/// The kernel learnt which socket a Go `*tls.Conn` reads: the receive its
/// goroutine made before decrypting the conn's first record seen (a TLS
/// record arriving). Both directions of a Go TLS connection are keyed by
/// its socket; this names the conn and its fd.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsBind {
    pub header: RecordHeader,
    pub tls_conn: u64,
    pub sock: u64,
    pub fd: i32,
    pub _pad0: u32,
}

const _: () = assert!(size_of::<TlsBind>() == 48);

/// Key of the kernel's per-stream offset table.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamKey {
    pub tgid: u32,
    pub _pad0: u32,
    /// The socket the stream is on.
    pub id: u64,
    pub direction: u8,
    pub source: u8,
    pub _pad1: [u8; 6],
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
    unsafe impl aya::Pod for super::SockClose {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::StreamKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::StreamCursor {}
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
    unsafe impl aya::Pod for super::Tick {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::TlsBind {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::TcpAck {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::SockOwner {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::TlsSent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::TlsFrames {}
}
