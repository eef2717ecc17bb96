//! The tracepoints watchtrace attaches, the fields each program reads, and
//! the layouts handed to the kernel programs (read from tracefs at load time).

use std::path::Path;

use tracer_common::{
    layout::{
        RetransmitLayout, SockSendLengthLayout, SockStateLayout, SyscallNumbers, TcpProbeLayout,
    },
    maps::programs,
};

use crate::tracefs::{self, TracefsError, TracepointFormat};

/// A tracepoint a kernel program is attached to.
#[derive(Clone, Copy, Debug)]
pub struct TracepointUse {
    pub category: &'static str,
    pub name: &'static str,
    /// The program attached to it.
    pub program: &'static str,
    /// Fields the program reads, with the size it reads them as.
    pub fields: &'static [(&'static str, u32)],
}

/// `sock:sock_send_length`: every send on a socket, with its result.
pub const SOCK_SEND_LENGTH: TracepointUse = TracepointUse {
    category: "sock",
    name: "sock_send_length",
    program: programs::SOCK_SEND_LENGTH,
    fields: &[("sk", 8), ("family", 2), ("protocol", 2), ("ret", 4)],
};

/// `sock:sock_recv_length`: every receive on a socket, with its result.
pub const SOCK_RECV_LENGTH: TracepointUse = TracepointUse {
    category: "sock",
    name: "sock_recv_length",
    program: programs::SOCK_RECV_LENGTH,
    fields: &[("sk", 8), ("family", 2), ("protocol", 2), ("ret", 4)],
};

/// `tcp:tcp_probe`: an incoming segment on an established connection.
pub const TCP_PROBE: TracepointUse = TracepointUse {
    category: "tcp",
    name: "tcp_probe",
    program: programs::TCP_PROBE,
    fields: &[
        ("saddr", 28),
        ("daddr", 28),
        ("sport", 2),
        ("dport", 2),
        ("family", 2),
        ("data_len", 2),
        ("snd_nxt", 4),
        ("snd_una", 4),
        ("snd_cwnd", 4),
        ("snd_wnd", 4),
        ("srtt", 4),
        ("rcv_wnd", 4),
        ("sock_cookie", 8),
        ("skbaddr", 8),
        ("skaddr", 8),
    ],
};

/// `sock:inet_sock_set_state`: TCP state changes.
pub const INET_SOCK_SET_STATE: TracepointUse = TracepointUse {
    category: "sock",
    name: "inet_sock_set_state",
    program: programs::INET_SOCK_SET_STATE,
    fields: &[("skaddr", 8), ("oldstate", 4), ("newstate", 4)],
};

/// `tcp:tcp_retransmit_skb`: a retransmitted segment.
pub const TCP_RETRANSMIT_SKB: TracepointUse = TracepointUse {
    category: "tcp",
    name: "tcp_retransmit_skb",
    program: programs::TCP_RETRANSMIT_SKB,
    fields: &[("skaddr", 8)],
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

/// Checks that `format` has every field `tp` reads, at the size it reads.
pub fn check_fields(
    tp: &TracepointUse,
    format: &TracepointFormat,
) -> Result<(), tracefs::FormatError> {
    for (field, size) in tp.fields {
        format.offset_of(field, *size)?;
    }
    Ok(())
}

/// The `sock:sock_send_length` layout from its format file.
pub fn sock_send_length_layout(
    format: &TracepointFormat,
) -> Result<SockSendLengthLayout, tracefs::FormatError> {
    Ok(SockSendLengthLayout {
        sk: format.offset_of("sk", 8)?,
        family: format.offset_of("family", 2)?,
        protocol: format.offset_of("protocol", 2)?,
        ret: format.offset_of("ret", 4)?,
    })
}

/// Every layout the kernel programs need, read from tracefs under `root`.
#[derive(Clone, Copy, Debug)]
pub struct Layouts {
    pub sock_send_length: SockSendLengthLayout,
    pub sock_recv_length: SockSendLengthLayout,
    pub tcp_probe: TcpProbeLayout,
    pub sock_state: SockStateLayout,
    pub retransmit: RetransmitLayout,
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

impl Layouts {
    /// Reads each format file and derives the layouts.
    pub fn read(root: &Path) -> Result<Self, TracefsError> {
        let parse_error = |tp: &TracepointUse| {
            let path = root
                .join("events")
                .join(tp.category)
                .join(tp.name)
                .join("format");
            move |source| TracefsError::Parse { path, source }
        };
        let format = tracefs::read_format(root, SOCK_SEND_LENGTH.category, SOCK_SEND_LENGTH.name)?;
        let sock_send_length =
            sock_send_length_layout(&format).map_err(parse_error(&SOCK_SEND_LENGTH))?;
        let format = tracefs::read_format(root, SOCK_RECV_LENGTH.category, SOCK_RECV_LENGTH.name)?;
        let sock_recv_length =
            sock_send_length_layout(&format).map_err(parse_error(&SOCK_RECV_LENGTH))?;
        let format = tracefs::read_format(root, TCP_PROBE.category, TCP_PROBE.name)?;
        let at = |name: &str, size: u32| {
            format
                .offset_of(name, size)
                .map_err(parse_error(&TCP_PROBE))
        };
        let tcp_probe = TcpProbeLayout {
            saddr: at("saddr", 28)?,
            daddr: at("daddr", 28)?,
            sport: at("sport", 2)?,
            dport: at("dport", 2)?,
            family: at("family", 2)?,
            data_len: at("data_len", 2)?,
            snd_nxt: at("snd_nxt", 4)?,
            snd_una: at("snd_una", 4)?,
            snd_cwnd: at("snd_cwnd", 4)?,
            snd_wnd: at("snd_wnd", 4)?,
            srtt: at("srtt", 4)?,
            rcv_wnd: at("rcv_wnd", 4)?,
            sock_cookie: at("sock_cookie", 8)?,
            skbaddr: at("skbaddr", 8)?,
            skaddr: at("skaddr", 8)?,
            _pad0: 0,
        };
        let tp = &INET_SOCK_SET_STATE;
        let format = tracefs::read_format(root, tp.category, tp.name)?;
        let at = |name: &str, size: u32| format.offset_of(name, size).map_err(parse_error(tp));
        let sock_state = SockStateLayout {
            skaddr: at("skaddr", 8)?,
            oldstate: at("oldstate", 4)?,
            newstate: at("newstate", 4)?,
            _pad0: 0,
        };
        let tp = &TCP_RETRANSMIT_SKB;
        let format = tracefs::read_format(root, tp.category, tp.name)?;
        let retransmit = RetransmitLayout {
            skaddr: format.offset_of("skaddr", 8).map_err(parse_error(tp))?,
            _pad0: 0,
        };
        Ok(Self {
            sock_send_length,
            sock_recv_length,
            tcp_probe,
            sock_state,
            retransmit,
        })
    }
}

/// Offsets inside kernel structs the programs read, from kernel BTF.
pub fn kernel_layout(
    btf: &crate::btf::Btf,
) -> Result<tracer_common::layout::KernelLayout, crate::btf::BtfError> {
    Ok(tracer_common::layout::KernelLayout {
        skb_head: btf.member_offset("sk_buff", "head")?,
        skb_transport_header: btf.member_offset("sk_buff", "transport_header")?,
        tcp_write_seq: btf.member_offset("tcp_sock", "write_seq")?,
        _pad0: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_follows_the_format_file_not_a_constant() {
        // A hypothetical kernel that moved `ret` must move the offset we use.
        let text = "name: sock_send_length\nID: 9\n\
            \tfield:void * sk;\toffset:16;\tsize:8;\tsigned:0;\n\
            \tfield:__u16 family;\toffset:24;\tsize:2;\tsigned:0;\n\
            \tfield:__u16 protocol;\toffset:26;\tsize:2;\tsigned:0;\n\
            \tfield:int ret;\toffset:32;\tsize:4;\tsigned:1;\n";
        let format = TracepointFormat::parse(text).unwrap();
        let layout = sock_send_length_layout(&format).unwrap();
        assert_eq!(
            layout,
            SockSendLengthLayout {
                sk: 16,
                family: 24,
                protocol: 26,
                ret: 32
            }
        );
        check_fields(&SOCK_SEND_LENGTH, &format).unwrap();
    }
}
