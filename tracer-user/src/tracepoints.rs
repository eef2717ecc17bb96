//! The tracepoints watchtrace attaches, the fields each program reads, and
//! the layouts handed to the kernel programs (read from tracefs at load time).

use std::path::Path;

use tracer_common::{
    layout::{SockSendLengthLayout, SyscallFdLayout},
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

/// `syscalls:sys_enter_close`: ends an fd's captured streams.
pub const SYS_ENTER_CLOSE: TracepointUse = TracepointUse {
    category: "syscalls",
    name: "sys_enter_close",
    program: programs::SYS_ENTER_CLOSE,
    fields: &[("fd", 8)],
};

/// Every tracepoint the embedded object attaches.
pub const USED: &[TracepointUse] = &[SOCK_SEND_LENGTH, SYS_ENTER_CLOSE];

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
    pub close: SyscallFdLayout,
}

impl Layouts {
    /// Reads each format file and derives the layouts.
    pub fn read(root: &Path) -> Result<Self, TracefsError> {
        let parse_error = |tp: &TracepointUse| {
            let path = root.join("events").join(tp.category).join(tp.name).join("format");
            move |source| TracefsError::Parse { path, source }
        };
        let format = tracefs::read_format(root, SOCK_SEND_LENGTH.category, SOCK_SEND_LENGTH.name)?;
        let sock_send_length =
            sock_send_length_layout(&format).map_err(parse_error(&SOCK_SEND_LENGTH))?;
        let format = tracefs::read_format(root, SYS_ENTER_CLOSE.category, SYS_ENTER_CLOSE.name)?;
        let close = SyscallFdLayout {
            fd: format.offset_of("fd", 8).map_err(parse_error(&SYS_ENTER_CLOSE))?,
            _pad0: 0,
        };
        Ok(Self { sock_send_length, close })
    }
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
