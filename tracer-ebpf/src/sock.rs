//! Socket-level accounting from the `sock:sock_send_length` tracepoint.

use aya_ebpf::{Global, macros::tracepoint, programs::TracePointContext};
use tracer_common::{
    counters::Counter,
    layout::{SOCK_SEND_LENGTH_LAYOUT_PLACEHOLDER, SockSendLengthLayout},
    record::{RecordKind, SockSend},
};

use crate::maps::{count, emit, header, target_tgid};

/// Field offsets of `sock:sock_send_length`, set by the loader from tracefs.
#[unsafe(no_mangle)]
static SOCK_SEND_LENGTH_LAYOUT: Global<SockSendLengthLayout> =
    Global::new(SOCK_SEND_LENGTH_LAYOUT_PLACEHOLDER);

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const IPPROTO_TCP: u16 = 6;

#[tracepoint]
fn sock_send_length(ctx: TracePointContext) -> u32 {
    match try_sock_send_length(&ctx) {
        Ok(()) => 0,
        Err(_) => {
            count(Counter::ReadErrors, 1);
            0
        }
    }
}

fn try_sock_send_length(ctx: &TracePointContext) -> Result<(), i32> {
    let Some((tgid, tid)) = target_tgid() else {
        return Ok(());
    };
    let layout = SOCK_SEND_LENGTH_LAYOUT.load();
    // SAFETY: offsets come from the tracepoint's own format file; read_at
    // uses bpf_probe_read_kernel, which fails cleanly on a bad offset.
    let (sock, family, protocol, ret) = unsafe {
        (
            ctx.read_at::<u64>(layout.sk as usize)?,
            ctx.read_at::<u16>(layout.family as usize)?,
            ctx.read_at::<u16>(layout.protocol as usize)?,
            ctx.read_at::<i32>(layout.ret as usize)?,
        )
    };
    if protocol != IPPROTO_TCP || (family != AF_INET && family != AF_INET6) {
        return Ok(());
    }
    count(Counter::SockSends, 1);
    if ret > 0 {
        count(Counter::SockSendBytes, ret as u64);
    }
    emit(SockSend {
        header: header(RecordKind::SockSend, tgid, tid),
        sock,
        ret,
        family,
        protocol,
    });
    Ok(())
}
