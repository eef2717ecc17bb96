//! Records sent from the kernel programs to userspace through the `EVENTS`
//! ring buffer. Each starts with a [`RecordHeader`]; `kind` says which struct
//! it is.

/// Discriminant of a record, in [`RecordHeader::kind`].
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// [`SockSend`].
    SockSend = 1,
    /// [`TlsWrite`].
    TlsWrite = 2,
}

impl RecordKind {
    /// The kind for a raw header value, or `None` for an unknown one.
    pub const fn from_raw(raw: u16) -> Option<Self> {
        match raw {
            1 => Some(Self::SockSend),
            2 => Some(Self::TlsWrite),
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
}

const _: () = assert!(size_of::<SockSend>() == 40);

/// Entry of Go's `crypto/tls.(*Conn).Write` in a target process.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsWrite {
    pub header: RecordHeader,
    /// The `*tls.Conn` (RAX under Go's register ABI).
    pub conn: u64,
    /// The goroutine (`g` in R14): keys in-flight calls.
    pub goroutine: u64,
    /// Plaintext length (RCX).
    pub len: u64,
    /// Socket fd behind the conn (`tls.Conn.conn -> netFD -> pfd.Sysfd`), or
    /// -1 when the chain could not be read or the conn is closed.
    pub fd: i64,
}

const _: () = assert!(size_of::<TlsWrite>() == 56);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: each type is repr(C) with explicit padding fields and only
    // integer members, so every bit pattern is a valid value.
    unsafe impl aya::Pod for super::RecordHeader {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::SockSend {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::TlsWrite {}
}
