//! Tracepoint field offsets, read from tracefs `format` files at load time and
//! handed to the kernel programs as read-only globals.
//!
//! Hard-coding offsets would tie the object to one kernel build; the format
//! files are the kernel's own statement of the layout.

/// Field offsets of `sock:sock_send_length`, in bytes from the start of the
/// tracepoint record.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockSendLengthLayout {
    /// `void *sk`: the socket, used as the connection's kernel identity.
    pub sk: u32,
    /// `__u16 family`.
    pub family: u32,
    /// `__u16 protocol`.
    pub protocol: u32,
    /// `int ret`: bytes sent, or a negative errno.
    pub ret: u32,
}

/// Offsets on Linux 6.18, used only as the object's placeholder value: the
/// loader always overrides them with what tracefs says.
pub const SOCK_SEND_LENGTH_LAYOUT_PLACEHOLDER: SockSendLengthLayout = SockSendLengthLayout {
    sk: 8,
    family: 16,
    protocol: 18,
    ret: 20,
};

const _: () = assert!(size_of::<SockSendLengthLayout>() == 16);

#[cfg(feature = "user")]
// SAFETY: repr(C), four u32 fields, no padding: every bit pattern is valid.
unsafe impl aya::Pod for SockSendLengthLayout {}

/// This architecture's numbers of the syscalls that send or receive on a
/// socket, from libc at build time of the userspace agent. The socket
/// tracepoints fire inside them; the syscall's number and arguments (fd,
/// buffer, length) are read from the task's saved user registers.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyscallNumbers {
    /// One flat buffer (payload captured).
    pub read: u32,
    pub write: u32,
    pub sendto: u32,
    pub recvfrom: u32,
    /// Scattered buffers (payload counted as a gap).
    pub readv: u32,
    pub writev: u32,
    pub sendmsg: u32,
    pub recvmsg: u32,
}

/// x86-64 numbers as a placeholder; always overridden by the loader.
pub const SYSCALL_NUMBERS_PLACEHOLDER: SyscallNumbers = SyscallNumbers {
    read: 0,
    write: 1,
    sendto: 44,
    recvfrom: 45,
    readv: 19,
    writev: 20,
    sendmsg: 46,
    recvmsg: 47,
};

const _: () = assert!(size_of::<SyscallNumbers>() == 32);

#[cfg(feature = "user")]
// SAFETY: repr(C), u32 fields only, no padding.
unsafe impl aya::Pod for SyscallNumbers {}

/// Offsets inside kernel structs, from kernel BTF at load time.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelLayout {
    /// `sk_buff.head` (pointer).
    pub skb_head: u32,
    /// `sk_buff.transport_header` (u16 offset from `head`).
    pub skb_transport_header: u32,
    /// `tcp_sock.write_seq` (u32): sequence number after the last byte
    /// queued by the application.
    pub tcp_write_seq: u32,
    pub _pad0: u32,
}

/// Placeholder for [`KernelLayout`]; always overridden by the loader.
pub const KERNEL_LAYOUT_PLACEHOLDER: KernelLayout = KernelLayout {
    skb_head: 192,
    skb_transport_header: 182,
    tcp_write_seq: 1576,
    _pad0: 0,
};

const _: () = assert!(size_of::<KernelLayout>() == 16);

/// Field offsets of `tcp:tcp_probe`, from tracefs.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpProbeLayout {
    pub saddr: u32,
    pub daddr: u32,
    pub sport: u32,
    pub dport: u32,
    pub family: u32,
    pub data_len: u32,
    pub snd_nxt: u32,
    pub snd_una: u32,
    pub snd_cwnd: u32,
    pub snd_wnd: u32,
    pub srtt: u32,
    pub rcv_wnd: u32,
    pub sock_cookie: u32,
    pub skbaddr: u32,
    pub skaddr: u32,
    pub _pad0: u32,
}

/// Placeholder for [`TcpProbeLayout`] (Linux 6.18); always overridden.
pub const TCP_PROBE_LAYOUT_PLACEHOLDER: TcpProbeLayout = TcpProbeLayout {
    saddr: 8,
    daddr: 36,
    sport: 64,
    dport: 66,
    family: 68,
    data_len: 76,
    snd_nxt: 80,
    snd_una: 84,
    snd_cwnd: 88,
    snd_wnd: 96,
    srtt: 100,
    rcv_wnd: 104,
    sock_cookie: 112,
    skbaddr: 120,
    skaddr: 128,
    _pad0: 0,
};

const _: () = assert!(size_of::<TcpProbeLayout>() == 64);

/// Field offsets of `sock:inet_sock_set_state`, from tracefs.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockStateLayout {
    pub skaddr: u32,
    pub oldstate: u32,
    pub newstate: u32,
    pub _pad0: u32,
}

/// Placeholder for [`SockStateLayout`]; always overridden.
pub const SOCK_STATE_LAYOUT_PLACEHOLDER: SockStateLayout = SockStateLayout {
    skaddr: 8,
    oldstate: 16,
    newstate: 20,
    _pad0: 0,
};

/// Field offsets of `tcp:tcp_retransmit_skb`, from tracefs.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetransmitLayout {
    pub skaddr: u32,
    pub _pad0: u32,
}

/// Placeholder for [`RetransmitLayout`]; always overridden.
pub const RETRANSMIT_LAYOUT_PLACEHOLDER: RetransmitLayout = RetransmitLayout {
    skaddr: 16,
    _pad0: 0,
};

#[cfg(feature = "user")]
mod tcp_pod {
    // SAFETY: repr(C), u32 fields only, no padding.
    unsafe impl aya::Pod for super::KernelLayout {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::TcpProbeLayout {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::SockStateLayout {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::RetransmitLayout {}
}
