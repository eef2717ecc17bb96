//! Where the kernel programs find what they read, set at load time and
//! handed to them as read-only globals: kernel struct member offsets from
//! the kernel's BTF, and this architecture's syscall numbers.
//!
//! The programs attach to raw tracepoints, which pass the tracepoint's own
//! arguments (a socket, a packet) without building a trace record; the
//! arguments' order is checked against the kernel's BTF prototypes
//! (`btf_trace_<name>`), and the fields are read from the structs at these
//! offsets. Hard-coding them would tie the object to one kernel build.

/// Member offsets inside kernel structs, from kernel BTF.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelLayout {
    /// `sk_buff.head` (pointer).
    pub skb_head: u32,
    /// `sk_buff.transport_header` (u16 offset from `head`).
    pub skb_transport_header: u32,
    /// `sk_buff.len` (u32).
    pub skb_len: u32,
    /// `sock.__sk_common.skc_family` (u16).
    pub sk_family: u32,
    /// `sock.sk_protocol` (u16).
    pub sk_protocol: u32,
    /// `sock.__sk_common.skc_num` (u16, the local port in host order).
    pub sk_num: u32,
    /// `sock.__sk_common.skc_dport` (__be16).
    pub sk_dport: u32,
    /// `sock.__sk_common.skc_rcv_saddr` (__be32).
    pub sk_rcv_saddr: u32,
    /// `sock.__sk_common.skc_daddr` (__be32).
    pub sk_daddr: u32,
    /// `sock.__sk_common.skc_v6_rcv_saddr` (16 bytes).
    pub sk_v6_rcv_saddr: u32,
    /// `sock.__sk_common.skc_v6_daddr` (16 bytes).
    pub sk_v6_daddr: u32,
    /// `tcp_sock.write_seq` (u32): sequence number after the last byte
    /// queued by the application.
    pub tcp_write_seq: u32,
    /// `tcp_sock.snd_una`, `snd_nxt`, `snd_wnd`, `snd_cwnd`, `srtt_us`
    /// (in 1/8 µs), `rcv_wnd` (u32 each).
    pub tcp_snd_una: u32,
    pub tcp_snd_nxt: u32,
    pub tcp_snd_wnd: u32,
    pub tcp_snd_cwnd: u32,
    pub tcp_srtt_us: u32,
    pub tcp_rcv_wnd: u32,
}

/// Placeholder for [`KernelLayout`]; always overridden by the loader.
pub const KERNEL_LAYOUT_PLACEHOLDER: KernelLayout = KernelLayout {
    skb_head: 192,
    skb_transport_header: 182,
    skb_len: 112,
    sk_family: 16,
    sk_protocol: 514,
    sk_num: 14,
    sk_dport: 12,
    sk_rcv_saddr: 4,
    sk_daddr: 0,
    sk_v6_rcv_saddr: 72,
    sk_v6_daddr: 56,
    tcp_write_seq: 1576,
    tcp_snd_una: 1608,
    tcp_snd_nxt: 1560,
    tcp_snd_wnd: 1640,
    tcp_snd_cwnd: 1700,
    tcp_srtt_us: 1660,
    tcp_rcv_wnd: 1648,
};

const _: () = assert!(size_of::<KernelLayout>() == 72);

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
mod pod {
    // SAFETY: repr(C), u32 fields only, no padding.
    unsafe impl aya::Pod for super::KernelLayout {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::SyscallNumbers {}
}
