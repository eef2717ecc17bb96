//! Socket sends and receives from `sock:sock_send_length` and
//! `sock:sock_recv_length`, which fire inside every send and receive on a
//! socket with the result (bytes, or a negative errno such as -EAGAIN).
//!
//! The syscall that made the call is read from the task's saved user
//! registers (number, fd, buffer, length), so no syscall tracepoint is
//! needed: attaching any of those puts every syscall of every task on the
//! host onto the kernel's slow path. Cleartext payload is copied here, from
//! the syscall's buffer; sockets that carry Go TLS are skipped (ciphertext:
//! the TLS probes deliver their plaintext).

use aya_ebpf::{Global, bindings::pt_regs, macros::tracepoint, programs::TracePointContext};
use tracer_common::{
    counters::Counter,
    layout::{
        SOCK_SEND_LENGTH_LAYOUT_PLACEHOLDER, SYSCALL_NUMBERS_PLACEHOLDER, SockSendLengthLayout,
        SyscallNumbers,
    },
    record::{ChunkSource, Direction, RecordKind, SockRecv, SockSend},
};

use crate::{
    chunk::{emit_chunks, fresh_state, skip_bytes, stream_key, stream_state},
    go_tls::{bind_on_send, note_tls_recv, starts_tls_record},
    maps::{count, emit, header, target_tgid, user_regs},
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

#[unsafe(no_mangle)]
static SYSCALL_NUMBERS: Global<SyscallNumbers> = Global::new(SYSCALL_NUMBERS_PLACEHOLDER);

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

/// The syscall a socket tracepoint fired inside, from the saved registers.
struct Syscall {
    /// Its fd argument, or -1 when the call is not a socket syscall (a
    /// kernel-internal send: sendfile, io_uring, ...).
    fd: i32,
    /// The flat buffer of read/write/recvfrom/sendto, else 0 (vectored).
    buf: u64,
    /// Its length argument (flat buffers), else 0.
    len: u64,
    /// Go's goroutine pointer (R14) at the syscall.
    goroutine: u64,
}

fn syscall_of(regs: &pt_regs) -> Syscall {
    let numbers = SYSCALL_NUMBERS.load();
    let nr = regs.orig_rax as u32;
    let flat =
        nr == numbers.write || nr == numbers.read || nr == numbers.sendto || nr == numbers.recvfrom;
    let vectored = nr == numbers.writev
        || nr == numbers.readv
        || nr == numbers.sendmsg
        || nr == numbers.recvmsg;
    Syscall {
        fd: if flat || vectored {
            regs.rdi as i32
        } else {
            -1
        },
        buf: if flat { regs.rsi } else { 0 },
        len: if flat { regs.rdx } else { 0 },
        goroutine: regs.r14,
    }
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
    let Some(regs) = user_regs() else {
        return Err(-1);
    };
    let call = syscall_of(&regs);
    let conn = remember_socket(fields.sock, tgid, call.fd);
    count(Counter::SockSends, 1);
    if fields.ret > 0 {
        count(Counter::SockSendBytes, fields.ret as u64);
    } else if fields.ret == -EAGAIN {
        count(Counter::SendBufferFull, 1);
    }
    let tls = conn != 0
        || (fields.ret > 0
            && call.buf != 0
            && bind_on_send(tgid, tid, call.goroutine, fields.sock, call.fd, call.buf));
    emit(SockSend {
        header: header(RecordKind::SockSend, tgid, tid),
        sock: fields.sock,
        ret: fields.ret,
        family: fields.family,
        protocol: fields.protocol,
        fd: call.fd,
        write_seq: write_seq(fields.sock),
        requested: call.len as u32,
        _pad0: 0,
    });
    // A TLS record leaving a socket no conn is bound to yet (a handshake,
    // or a conn joined mid-way) is ciphertext too.
    if !tls && fields.ret > 0 && !(call.buf != 0 && starts_tls_record(call.buf)) {
        cleartext(tgid, tid, &fields, &call, Direction::Egress);
    }
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
    // Reads that find nothing (-EAGAIN on a non-blocking socket, Go's
    // normal way to wait) are not worth a record.
    if !is_tcp(&fields) || fields.ret <= 0 {
        return Ok(());
    }
    count(Counter::SockRecvs, 1);
    count(Counter::SockRecvBytes, fields.ret as u64);
    let Some(regs) = user_regs() else {
        return Err(-1);
    };
    let call = syscall_of(&regs);
    if remember_socket(fields.sock, tgid, call.fd) != 0 {
        // Ciphertext: the plaintext comes from the TLS probes.
        return Ok(());
    }
    if call.buf != 0 && starts_tls_record(call.buf) {
        // Ciphertext of a conn not bound yet: the record the goroutine
        // decrypts next binds it (a conn that only reads has no Write to).
        note_tls_recv(tgid, call.goroutine, fields.sock, call.fd);
        return Ok(());
    }
    emit(SockRecv {
        header: header(RecordKind::SockRecv, tgid, tid),
        sock: fields.sock,
        ret: fields.ret,
        family: fields.family,
        protocol: fields.protocol,
        fd: call.fd,
        _pad0: 0,
    });
    cleartext(tgid, tid, &fields, &call, Direction::Ingress);
    Ok(())
}

/// The payload of a cleartext send or receive: `ret` bytes at the start of
/// the syscall's buffer. A vectored call's bytes are counted as a gap
/// (walking an iovec array is beyond what the verifier accepts here; Go's
/// net/http, HTTP/2 and gRPC use write(2) and read(2)).
#[inline(always)]
fn cleartext(tgid: u32, tid: u32, fields: &SockLength, call: &Syscall, direction: Direction) {
    let key = stream_key(
        tgid,
        fields.sock,
        direction as u8,
        ChunkSource::Syscall as u8,
    );
    let fresh = fresh_state(fields.sock, call.fd);
    let n = fields.ret as u64;
    if call.buf == 0 {
        count(Counter::VectoredSkippedBytes, n);
        skip_bytes(&key, &fresh, n);
        return;
    }
    let Some(state) = stream_state(&key, &fresh) else {
        count(Counter::LostBytes, n);
        return;
    };
    if call.fd >= 0 {
        // SAFETY: the pointer comes from a successful map lookup.
        unsafe { (*state).fd = call.fd };
    }
    emit_chunks(&key, state, tid, call.buf, n);
}
