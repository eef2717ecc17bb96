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

/// Field offsets of a `syscalls:sys_enter_*` tracepoint that takes an fd.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyscallFdLayout {
    /// The `fd` argument (8 bytes wide in the record).
    pub fd: u32,
    pub _pad0: u32,
}

/// Placeholder for [`SyscallFdLayout`]; always overridden by the loader.
pub const SYSCALL_FD_LAYOUT_PLACEHOLDER: SyscallFdLayout = SyscallFdLayout { fd: 16, _pad0: 0 };

const _: () = assert!(size_of::<SyscallFdLayout>() == 8);

#[cfg(feature = "user")]
// SAFETY: repr(C), two u32 fields, no padding.
unsafe impl aya::Pod for SyscallFdLayout {}
