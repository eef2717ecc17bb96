//! Socket-level accounting from `sock:sock_send_length` and
//! `sock:sock_recv_length`, which fire inside every send and receive on a
//! socket with the result (bytes, or a negative errno such as -EAGAIN).

use aya_ebpf::{Global, macros::tracepoint, programs::TracePointContext};
use tracer_common::{
    counters::Counter,
    layout::{SOCK_SEND_LENGTH_LAYOUT_PLACEHOLDER, SockSendLengthLayout},
    record::{RecordKind, SockRecv, SockSend},
};

use crate::{
    io::{bind_tls, mark_socket},
    maps::{count, emit, header, target_tgid},
    tcp::{remember_socket, write_seq},
};

/// Field offsets of `sock:sock_send_length`, set by the loader from tracefs.
#[unsafe(no_mangle)]
static SOCK_SEND_LENGTH_LAYOUT: Global<SockSendLengthLayout> =
    Global::new(SOCK_SEND_LENGTH_LAYOUT_PLACEHOLDER);

/// Field offsets of `sock:sock_recv_length` (the same shape), from tracefs.
#[unsafe(no_mangle)]
static SOCK_RECV_LENGTH_LAYOUT: Global<SockSendLengthLayout> =
    Global::new(SOCK_SEND_LENGTH_LAYOUT_PLACEHOLDER);

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const IPPROTO_TCP: u16 = 6;
const EAGAIN: i32 = 11;

/// The fields both tracepoints share.
struct SockLength {
    sock: u64,
    family: u16,
    protocol: u16,
    ret: i32,
}

fn read_fields(ctx: &TracePointContext, layout: SockSendLengthLayout) -> Result<SockLength, i32> {
    // SAFETY: offsets come from the tracepoint's own format file; read_at
    // uses bpf_probe_read_kernel, which fails cleanly on a bad offset.
    unsafe {
        Ok(SockLength {
            sock: ctx.read_at::<u64>(layout.sk as usize)?,
            family: ctx.read_at::<u16>(layout.family as usize)?,
            protocol: ctx.read_at::<u16>(layout.protocol as usize)?,
            ret: ctx.read_at::<i32>(layout.ret as usize)?,
        })
    }
}

fn is_tcp(fields: &SockLength) -> bool {
    fields.protocol == IPPROTO_TCP && (fields.family == AF_INET || fields.family == AF_INET6)
}

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
    let fields = read_fields(ctx, SOCK_SEND_LENGTH_LAYOUT.load())?;
    if !is_tcp(&fields) {
        return Ok(());
    }
    let fd = mark_socket(tid);
    bind_tls(tgid, tid, fd, true);
    remember_socket(fields.sock, tgid, fd);
    count(Counter::SockSends, 1);
    if fields.ret > 0 {
        count(Counter::SockSendBytes, fields.ret as u64);
    } else if fields.ret == -EAGAIN {
        count(Counter::SendBufferFull, 1);
    }
    emit(SockSend {
        header: header(RecordKind::SockSend, tgid, tid),
        sock: fields.sock,
        ret: fields.ret,
        family: fields.family,
        protocol: fields.protocol,
        fd,
        write_seq: write_seq(fields.sock),
    });
    Ok(())
}

#[tracepoint]
fn sock_recv_length(ctx: TracePointContext) -> u32 {
    match try_sock_recv_length(&ctx) {
        Ok(()) => 0,
        Err(_) => {
            count(Counter::ReadErrors, 1);
            0
        }
    }
}

fn try_sock_recv_length(ctx: &TracePointContext) -> Result<(), i32> {
    let Some((tgid, tid)) = target_tgid() else {
        return Ok(());
    };
    let fields = read_fields(ctx, SOCK_RECV_LENGTH_LAYOUT.load())?;
    if !is_tcp(&fields) {
        return Ok(());
    }
    let fd = mark_socket(tid);
    // Before the result check: an EAGAIN read (nothing yet) still shows
    // which socket the TLS conn reads.
    bind_tls(tgid, tid, fd, false);
    remember_socket(fields.sock, tgid, fd);
    // Reads that find nothing (-EAGAIN on a non-blocking socket, Go's
    // normal way to wait) are not worth a record.
    if fields.ret <= 0 {
        return Ok(());
    }
    count(Counter::SockRecvs, 1);
    count(Counter::SockRecvBytes, fields.ret as u64);
    emit(SockRecv {
        header: header(RecordKind::SockRecv, tgid, tid),
        sock: fields.sock,
        ret: fields.ret,
        family: fields.family,
        protocol: fields.protocol,
        fd,
        _pad0: 0,
    });
    Ok(())
}
