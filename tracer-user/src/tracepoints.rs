//! The raw tracepoints watchtrace attaches, the arguments each program
//! reads, and the kernel struct offsets handed to the programs, all checked
//! against the running kernel's BTF at load time.
//!
//! Raw tracepoints hand the programs the tracepoint's own arguments (the
//! socket, the packet) without the kernel first building a trace record;
//! on a send that saves the record's construction, which measured ~250 ns
//! per send (bench overhead, docs/architecture.md). The programs read the
//! few fields they need from the structs at offsets from BTF, so nothing
//! tied to one kernel build is baked into the object.

use tracer_common::{
    layout::{KernelLayout, SyscallNumbers},
    maps::programs,
};

use crate::btf::{ArgType, Btf, BtfError};

/// What a program needs of one tracepoint argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    /// A pointer to this kernel struct.
    Struct(&'static str),
    /// An integer of this many bytes.
    Int(u32),
}

impl Arg {
    fn matches(self, actual: &ArgType) -> bool {
        match (self, actual) {
            (Arg::Struct(want), ArgType::StructPtr(have)) => want == have,
            (Arg::Int(want), ArgType::Int(have)) => want == *have,
            _ => false,
        }
    }
}

impl std::fmt::Display for Arg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Arg::Struct(name) => write!(f, "struct {name} *"),
            Arg::Int(bytes) => write!(f, "int{}", bytes * 8),
        }
    }
}

/// A raw tracepoint a kernel program is attached to.
#[derive(Clone, Copy, Debug)]
pub struct TracepointUse {
    /// The tracefs category it is listed under (for messages only).
    pub category: &'static str,
    pub name: &'static str,
    /// The program attached to it.
    pub program: &'static str,
    /// The leading arguments the program reads, in order; later ones (a
    /// kernel may add some) are ignored.
    pub args: &'static [Arg],
}

/// `sock:sock_send_length(sk, ret, flags)`: every send on a socket.
pub const SOCK_SEND_LENGTH: TracepointUse = TracepointUse {
    category: "sock",
    name: "sock_send_length",
    program: programs::SOCK_SEND_LENGTH,
    args: &[Arg::Struct("sock"), Arg::Int(4)],
};

/// `sock:sock_recv_length(sk, ret, flags)`: every receive on a socket.
pub const SOCK_RECV_LENGTH: TracepointUse = TracepointUse {
    category: "sock",
    name: "sock_recv_length",
    program: programs::SOCK_RECV_LENGTH,
    args: &[Arg::Struct("sock"), Arg::Int(4)],
};

/// `tcp:tcp_probe(sk, skb)`: an incoming segment on an established
/// connection.
pub const TCP_PROBE: TracepointUse = TracepointUse {
    category: "tcp",
    name: "tcp_probe",
    program: programs::TCP_PROBE,
    args: &[Arg::Struct("sock"), Arg::Struct("sk_buff")],
};

/// `sock:inet_sock_set_state(sk, oldstate, newstate)`: TCP state changes.
pub const INET_SOCK_SET_STATE: TracepointUse = TracepointUse {
    category: "sock",
    name: "inet_sock_set_state",
    program: programs::INET_SOCK_SET_STATE,
    args: &[Arg::Struct("sock"), Arg::Int(4), Arg::Int(4)],
};

/// `tcp:tcp_retransmit_skb(sk, skb, ...)`: a retransmitted segment.
pub const TCP_RETRANSMIT_SKB: TracepointUse = TracepointUse {
    category: "tcp",
    name: "tcp_retransmit_skb",
    program: programs::TCP_RETRANSMIT_SKB,
    args: &[Arg::Struct("sock")],
};

/// Every tracepoint the embedded object attaches.
pub fn used() -> impl Iterator<Item = &'static TracepointUse> {
    [
        SOCK_SEND_LENGTH,
        SOCK_RECV_LENGTH,
        TCP_PROBE,
        INET_SOCK_SET_STATE,
        TCP_RETRANSMIT_SKB,
    ]
    .iter()
}

/// A tracepoint's prototype does not match what its program reads.
#[derive(Debug, thiserror::Error)]
pub enum PrototypeError {
    #[error(transparent)]
    Btf(#[from] BtfError),
    #[error(
        "raw tracepoint `{name}`: argument {index} is {actual:?}, the program reads it as `{expected}`"
    )]
    Mismatch {
        name: &'static str,
        index: usize,
        expected: Arg,
        actual: Option<ArgType>,
    },
}

/// Checks the kernel's prototype of `tp` against the arguments its program
/// reads.
pub fn check_prototype(btf: &Btf, tp: &TracepointUse) -> Result<(), PrototypeError> {
    let actual = btf.raw_tracepoint_args(tp.name)?;
    check_args(tp, &actual)
}

fn check_args(tp: &TracepointUse, actual: &[ArgType]) -> Result<(), PrototypeError> {
    for (index, expected) in tp.args.iter().enumerate() {
        let have = actual.get(index);
        if !have.is_some_and(|have| expected.matches(have)) {
            return Err(PrototypeError::Mismatch {
                name: tp.name,
                index,
                expected: *expected,
                actual: have.cloned(),
            });
        }
    }
    Ok(())
}

/// This architecture's numbers of the syscalls that send and receive.
pub fn syscall_numbers() -> SyscallNumbers {
    SyscallNumbers {
        read: libc::SYS_read as u32,
        write: libc::SYS_write as u32,
        sendto: libc::SYS_sendto as u32,
        recvfrom: libc::SYS_recvfrom as u32,
        readv: libc::SYS_readv as u32,
        writev: libc::SYS_writev as u32,
        sendmsg: libc::SYS_sendmsg as u32,
        recvmsg: libc::SYS_recvmsg as u32,
    }
}

/// Offsets inside kernel structs the programs read, from kernel BTF.
pub fn kernel_layout(btf: &Btf) -> Result<KernelLayout, BtfError> {
    let common = |member: &str| btf.member_path_offset("sock", &["__sk_common", member]);
    Ok(KernelLayout {
        skb_head: btf.member_offset("sk_buff", "head")?,
        skb_transport_header: btf.member_offset("sk_buff", "transport_header")?,
        skb_len: btf.member_offset("sk_buff", "len")?,
        sk_family: common("skc_family")?,
        sk_protocol: btf.member_offset("sock", "sk_protocol")?,
        sk_num: common("skc_num")?,
        sk_dport: common("skc_dport")?,
        sk_rcv_saddr: common("skc_rcv_saddr")?,
        sk_daddr: common("skc_daddr")?,
        sk_v6_rcv_saddr: common("skc_v6_rcv_saddr")?,
        sk_v6_daddr: common("skc_v6_daddr")?,
        tcp_write_seq: btf.member_offset("tcp_sock", "write_seq")?,
        tcp_snd_una: btf.member_offset("tcp_sock", "snd_una")?,
        tcp_snd_nxt: btf.member_offset("tcp_sock", "snd_nxt")?,
        tcp_snd_wnd: btf.member_offset("tcp_sock", "snd_wnd")?,
        tcp_snd_cwnd: btf.member_offset("tcp_sock", "snd_cwnd")?,
        tcp_srtt_us: btf.member_offset("tcp_sock", "srtt_us")?,
        tcp_rcv_wnd: btf.member_offset("tcp_sock", "rcv_wnd")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prototype_with_extra_trailing_arguments_still_matches() {
        // 6.18's tcp_retransmit_skb gained a reason after skb.
        let actual = [
            ArgType::StructPtr("sock".into()),
            ArgType::StructPtr("sk_buff".into()),
            ArgType::Int(4),
        ];
        check_args(&TCP_RETRANSMIT_SKB, &actual).unwrap();
        check_args(&TCP_PROBE, &actual).unwrap();
    }

    #[test]
    fn a_prototype_that_moved_an_argument_is_refused_naming_it() {
        // A hypothetical kernel whose sock_send_length puts flags first.
        let actual = [ArgType::Int(4), ArgType::StructPtr("sock".into())];
        let err = check_args(&SOCK_SEND_LENGTH, &actual).unwrap_err();
        assert!(
            matches!(err, PrototypeError::Mismatch { index: 0, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("struct sock *"), "{err}");
        // Too few arguments is a mismatch too, not an out-of-bounds read.
        let err = check_args(&INET_SOCK_SET_STATE, &actual[1..]).unwrap_err();
        assert!(
            matches!(
                err,
                PrototypeError::Mismatch {
                    index: 1,
                    actual: None,
                    ..
                }
            ),
            "{err}"
        );
    }
}

#[cfg(all(test, target_os = "linux"))]
mod kernel_tests {
    use super::*;

    fn kernel_btf() -> Btf {
        let data = std::fs::read("/sys/kernel/btf/vmlinux").expect("kernel BTF");
        Btf::parse(&data).unwrap()
    }

    #[test]
    fn the_running_kernel_has_every_tracepoint_with_the_arguments_read() {
        let btf = kernel_btf();
        for tp in used() {
            check_prototype(&btf, tp).unwrap();
        }
    }

    #[test]
    fn the_kernel_layout_places_socket_fields_where_btf_says() {
        let btf = kernel_btf();
        let layout = kernel_layout(&btf).unwrap();
        // sock_common sits first in sock; the addresses and ports lead it.
        assert_eq!(
            layout.sk_family,
            btf.member_offset("sock_common", "skc_family").unwrap()
        );
        assert!(layout.sk_daddr < layout.sk_family);
        assert_eq!(layout.sk_num, layout.sk_dport + 2, "skc_dport then skc_num");
        assert!(layout.tcp_snd_una > layout.sk_protocol);
    }
}
