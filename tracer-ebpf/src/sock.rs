//! Socket sends and receives from the raw tracepoints `sock_send_length`
//! and `sock_recv_length` (`TP_PROTO(struct sock *sk, int ret, int flags)`),
//! which fire inside every send and receive on a socket with the result
//! (bytes, or a negative errno such as -EAGAIN). Raw: the kernel builds no
//! trace record for them, for any socket on the host.
//!
//! The syscall that made the call is read from the task's saved user
//! registers (number, fd, buffer, length), so no syscall tracepoint is
//! needed: attaching any of those puts every syscall of every task on the
//! host onto the kernel's slow path. Cleartext payload is copied here, from
//! the syscall's buffer.
//!
//! A socket carrying TLS (its first bytes are a TLS record) is not
//! captured as such: its ciphertext is useless. What a Go TLS conn writes
//! is captured here all the same, without a uprobe: Go's
//! `crypto/tls.(*Conn).Write` sends each record itself, so a send that
//! starts a record walks the frame-pointer chain up to the Write's frame
//! and copies the Write's plaintext `b` from it, once per Write (see
//! `tls_send`). A Write's end is the send that completes its last record.

use aya_ebpf::{
    Global,
    bindings::pt_regs,
    helpers::{bpf_probe_read_kernel, bpf_probe_read_user, generated::bpf_loop},
    macros::{map, raw_tracepoint},
    maps::HashMap,
    programs::RawTracePointContext,
};
use aya_log_ebpf::{debug, trace};
use tracer_common::{
    counters::Counter,
    layout::{SYSCALL_NUMBERS_PLACEHOLDER, SyscallNumbers},
    record::{
        ChunkSource, Direction, RecordKind, SOCK_KIND_CLEAR, SOCK_KIND_TLS, SOCK_KIND_UNKNOWN,
        SockOwner, SockRecv, SockSend, TlsFrames, TlsSent,
    },
};

use crate::{
    chunk::{emit_chunks, fresh_state, skip_bytes, stream_key, stream_state},
    go_tls::{bind, tls_record_type},
    maps::{count, emit, header, target_tgid, user_regs},
    tcp::{KERNEL_LAYOUT, socket_owner, write_seq},
};

/// Where each target's `crypto/tls.(*Conn).Write` and `readRecordOrCCS`
/// are (set by userspace when it attaches to the target).
#[map]
static TLS_FRAMES: HashMap<u32, TlsFrames> = HashMap::with_max_entries(0, 0);

/// Frames walked up from a socket call looking for a Go TLS function's:
/// the syscall is about ten calls below it in net/http2, more where conns
/// are wrapped.
const MAX_FRAMES: u32 = 24;
/// A TLS application-data record's content type.
const APPLICATION_DATA: u8 = 0x17;
/// TLS 1.3's bytes per record around its plaintext (5 header, 1 inner
/// type, 16 tag): assumed until a socket shows its own.
const TLS13_OVERHEAD: u64 = 22;
/// Plaintext no longer than this is one record whatever Go's record sizing
/// (its smallest is about 1200 bytes): such a Write shows the overhead.
const ONE_RECORD_MAX: u64 = 1000;

#[unsafe(no_mangle)]
static SYSCALL_NUMBERS: Global<SyscallNumbers> = Global::new(SYSCALL_NUMBERS_PLACEHOLDER);

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const IPPROTO_TCP: u16 = 6;
const EAGAIN: i32 = 11;

/// What both tracepoints give, with the socket's family and protocol.
struct SockLength {
    sock: u64,
    family: u16,
    protocol: u16,
    ret: i32,
}

/// The arguments, and the socket's family and protocol from the socket.
fn read_fields(ctx: &RawTracePointContext) -> Result<SockLength, i64> {
    let sock: u64 = ctx.arg(0);
    let ret: i32 = ctx.arg(1);
    let l = KERNEL_LAYOUT.load();
    // SAFETY: checked reads of kernel memory at offsets from kernel BTF.
    let (family, protocol) = unsafe {
        (
            bpf_probe_read_kernel((sock + u64::from(l.sk_family)) as *const u16)?,
            bpf_probe_read_kernel((sock + u64::from(l.sk_protocol)) as *const u16)?,
        )
    };
    Ok(SockLength {
        sock,
        family,
        protocol,
        ret,
    })
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
    /// The frame pointer (RBP) at the syscall.
    frame: u64,
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
        frame: regs.rbp,
    }
}

#[raw_tracepoint(tracepoint = "sock_send_length")]
fn sock_send_length(ctx: RawTracePointContext) -> i32 {
    match try_sock_send_length(&ctx) {
        Ok(()) => 0,
        Err(e) => {
            debug!(&ctx, "sock_send_length: read error {}", e);
            count(Counter::ReadErrors, 1);
            0
        }
    }
}

fn try_sock_send_length(ctx: &RawTracePointContext) -> Result<(), i64> {
    let Some((tgid, tid)) = target_tgid() else {
        return Ok(());
    };
    let fields = read_fields(ctx)?;
    if !is_tcp(&fields) {
        return Ok(());
    }
    let Some(regs) = user_regs() else {
        return Err(-1);
    };
    let call = syscall_of(&regs);
    let ret = fields.ret;
    // Only a live socket is worth knowing: one that took bytes, or whose
    // buffer is full.
    let Some(owner) = socket_owner(fields.sock, tgid, call.fd, ret > 0 || ret == -EAGAIN) else {
        return Ok(());
    };
    count(Counter::SockSends, 1);
    // Every traced send, at trace level: off (the default), the verifier
    // drops this code, AYA_LOG_LEVEL being a constant of frozen .rodata.
    trace!(ctx, "send tgid {} fd {} ret {}", tgid, call.fd, ret);
    if ret > 0 {
        count(Counter::SockSendBytes, ret as u64);
    } else if ret == -EAGAIN {
        count(Counter::SendBufferFull, 1);
    }
    // SAFETY: the pointer comes from a successful map lookup; map values
    // stay valid for the program run.
    let o = unsafe { &mut *owner };
    if o.kind == SOCK_KIND_UNKNOWN && call.buf != 0 {
        o.kind = if tls_record_type(call.buf).is_some() {
            SOCK_KIND_TLS
        } else {
            SOCK_KIND_CLEAR
        };
    }
    let tls = o.kind == SOCK_KIND_TLS;
    // A TLS socket's sends are reported on their own only at the edges of
    // a full send buffer (stalls); its Writes' chunks carry the rest.
    let was_blocked = o.blocked != 0;
    o.blocked = u32::from(ret == -EAGAIN);
    if !tls || ret < 0 || (was_blocked && ret > 0) {
        emit(SockSend {
            header: header(RecordKind::SockSend, tgid, tid),
            sock: fields.sock,
            ret,
            family: fields.family,
            protocol: fields.protocol,
            fd: call.fd,
            write_seq: write_seq(fields.sock),
            requested: call.len as u32,
            _pad0: 0,
        });
    }
    if tls {
        tls_send(tgid, tid, fields.sock, o, &call, ret);
    } else if ret > 0 {
        cleartext(tgid, tid, &fields, &call, Direction::Egress);
    }
    Ok(())
}

/// A send on a TLS socket. When it starts an application-data record (not
/// a retry of a partial one), the Write sending it is found by walking the
/// frames up from the syscall; the first time a Write is seen its
/// plaintext is captured. Records are counted against the Write's
/// plaintext (each adds the socket's TLS overhead) to know when its last
/// one has left: then it is reported sent, on its chunk when the capturing
/// send was also the last, else in a `TlsSent`.
///
/// A Write is the same as the open one when its buffer, length and frame
/// are, and the open one's records do not yet add up to its plaintext; an
/// http2 server writes from one buffer, so two Writes of equal length look
/// alike and only the count tells them apart.
#[inline(always)]
fn tls_send(tgid: u32, tid: u32, sock: u64, o: &mut SockOwner, call: &Syscall, ret: i32) {
    let mut capture = None;
    if o.rec_left == 0 && call.buf != 0 && tls_record_type(call.buf) == Some(APPLICATION_DATA) {
        if let Some(write) = write_frame(tgid, call.frame, &mut o.walk_delta) {
            let same = o.write_open != 0
                && write.buf == o.write_buf
                && write.len == o.write_len
                && write.frame == o.write_frame;
            if !same {
                if o.write_open != 0 {
                    // The open one's records never added up.
                    count(Counter::TlsWriteDesyncs, 1);
                }
                o.write_buf = write.buf;
                o.write_len = write.len;
                o.write_frame = write.frame;
                o.plain_left = write.len;
                o.write_open = 1;
                count(Counter::TlsWrites, 1);
                count(Counter::TlsWriteBytes, write.len);
                capture = Some(write);
            }
            if ret > 0 {
                let size = call.len;
                let first = o.plain_left == o.write_len;
                if o.overhead == 0 && first && o.write_len <= ONE_RECORD_MAX {
                    let extra = size.wrapping_sub(o.write_len);
                    if extra == 21 || extra == 22 || extra == 29 {
                        o.overhead = extra as u32;
                    }
                }
                let overhead = if o.overhead != 0 {
                    u64::from(o.overhead)
                } else {
                    TLS13_OVERHEAD
                };
                let body = size.saturating_sub(overhead);
                o.plain_left = o.plain_left.saturating_sub(body);
                o.rec_left = size as u32;
            }
        }
    }
    if ret > 0 {
        o.rec_left = o.rec_left.saturating_sub(ret as u32);
    }
    let done = ret > 0 && o.write_open != 0 && o.rec_left == 0 && o.plain_left == 0;
    let sent = if done {
        o.write_open = 0;
        (1 << 32) | u64::from(write_seq(sock))
    } else {
        0
    };
    match capture {
        Some(write) => {
            let key = stream_key(
                tgid,
                sock,
                Direction::Egress as u8,
                ChunkSource::GoTls as u8,
            );
            match stream_state(&key, &fresh_state(call.fd)) {
                Some(state) => {
                    emit_chunks(&key, state, tid, o.tls_conn, write.buf, write.len, sent)
                }
                None => count(Counter::LostBytes, write.len),
            }
        }
        None if done => {
            emit(TlsSent {
                header: header(RecordKind::TlsSent, tgid, tid),
                sock,
                write_seq: sent as u32,
                _pad0: 0,
            });
        }
        None => {}
    }
}

/// A Go TLS Write found on the stack: its `b` and its frame pointer.
#[derive(Clone, Copy)]
struct Write {
    buf: u64,
    len: u64,
    frame: u64,
}

/// State of the frame walk.
#[repr(C)]
struct Walk {
    /// The frame pointer to read next.
    frame: u64,
    /// The code looked for.
    start: u64,
    end: u64,
    /// Its function's frame pointer, once found.
    found: u64,
    /// The frame pointer of that function's callee (the frame holding a
    /// return address into the code).
    callee: u64,
}

/// Walks the frame-pointer chain up from `frame` (the syscall's RBP) to
/// the process's TLS Write, whose `b` Go keeps in its ABI spill slots at
/// `[rbp+24]` and `[rbp+32]` (userspace checked that Write spills it
/// there). `delta` caches where the Write's callee's frame was relative to
/// `frame`: tried first, it costs one read.
#[inline(always)]
fn write_frame(tgid: u32, frame: u64, delta: &mut u64) -> Option<Write> {
    // SAFETY: the value is copied out.
    let frames = unsafe { TLS_FRAMES.get(&tgid) }.copied()?;
    let found = caller_frame_in(frame, frames.write_start..frames.write_end, delta)?;
    // SAFETY: a checked read of the user stack.
    let b: [u64; 2] = unsafe { bpf_probe_read_user((found + 24) as *const [u64; 2]) }.ok()?;
    (b[1] > 0).then_some(Write {
        buf: b[0],
        len: b[1],
        frame: found,
    })
}

/// Walks the frame-pointer chain up from `frame` (the syscall's RBP) to
/// the process's `readRecordOrCCS` and returns its receiver: the conn whose
/// record this receive reads.
#[inline(always)]
fn read_conn(tgid: u32, frame: u64) -> Option<u64> {
    // SAFETY: the value is copied out.
    let frames = unsafe { TLS_FRAMES.get(&tgid) }.copied()?;
    let found = caller_frame_in(frame, frames.read_start..frames.read_end, &mut 0)?;
    // SAFETY: a checked read of the user stack.
    let conn: u64 = unsafe { bpf_probe_read_user((found + 16) as *const u64) }.ok()?;
    (conn != 0).then_some(conn)
}

/// The frame pointer of the first function up the chain from `frame` whose
/// code is `code`. Each frame holds its caller's frame pointer at `[rbp]`
/// and the return address into its caller at `[rbp+8]`; a return address
/// in `code` means the next frame up is that function's. `delta` caches
/// where the callee's frame was relative to `frame` (0: unknown).
#[inline(always)]
fn caller_frame_in(frame: u64, code: core::ops::Range<u64>, delta: &mut u64) -> Option<u64> {
    if *delta != 0 {
        let callee = frame.wrapping_add(*delta);
        // SAFETY: a checked read of the user stack.
        if let Ok([caller_frame, ret]) = unsafe { bpf_probe_read_user(callee as *const [u64; 2]) }
            && code.contains(&ret)
        {
            return Some(caller_frame);
        }
    }
    let mut walk = Walk {
        frame,
        start: code.start,
        end: code.end,
        found: 0,
        callee: 0,
    };
    // SAFETY: walk_step has the callback signature bpf_loop expects, and
    // `walk` outlives the call.
    unsafe {
        bpf_loop(
            MAX_FRAMES,
            walk_step as *mut core::ffi::c_void,
            core::ptr::addr_of_mut!(walk).cast(),
            0,
        );
    }
    if walk.found == 0 {
        return None;
    }
    *delta = walk.callee.wrapping_sub(frame);
    Some(walk.found)
}

/// One frame of the walk. Returns 1 to stop.
#[inline(never)]
extern "C" fn walk_step(_index: u64, ctx: *mut core::ffi::c_void) -> i64 {
    // SAFETY: bpf_loop passes back the pointer caller_frame_in gave it.
    let walk = unsafe { &mut *ctx.cast::<Walk>() };
    if walk.frame == 0 {
        return 1;
    }
    // SAFETY: a checked read of the user stack.
    let Ok([caller_frame, ret]) = (unsafe { bpf_probe_read_user(walk.frame as *const [u64; 2]) })
    else {
        return 1;
    };
    if ret >= walk.start && ret < walk.end {
        walk.found = caller_frame;
        walk.callee = walk.frame;
        return 1;
    }
    walk.frame = caller_frame;
    0
}

#[raw_tracepoint(tracepoint = "sock_recv_length")]
fn sock_recv_length(ctx: RawTracePointContext) -> i32 {
    match try_sock_recv_length(&ctx) {
        Ok(()) => 0,
        Err(e) => {
            debug!(&ctx, "sock_recv_length: read error {}", e);
            count(Counter::ReadErrors, 1);
            0
        }
    }
}

fn try_sock_recv_length(ctx: &RawTracePointContext) -> Result<(), i64> {
    let Some((tgid, tid)) = target_tgid() else {
        return Ok(());
    };
    // Reads that find nothing (-EAGAIN on a non-blocking socket, Go's
    // normal way to wait) are not worth a record.
    let ret: i32 = ctx.arg(1);
    if ret <= 0 {
        return Ok(());
    }
    let fields = read_fields(ctx)?;
    if !is_tcp(&fields) {
        return Ok(());
    }
    count(Counter::SockRecvs, 1);
    count(Counter::SockRecvBytes, fields.ret as u64);
    let Some(regs) = user_regs() else {
        return Err(-1);
    };
    let call = syscall_of(&regs);
    let Some(owner) = socket_owner(fields.sock, tgid, call.fd, true) else {
        return Err(-1);
    };
    // SAFETY: the pointer comes from a successful map lookup.
    let o = unsafe { &mut *owner };
    if o.kind == SOCK_KIND_UNKNOWN && call.buf != 0 {
        o.kind = if tls_record_type(call.buf).is_some() {
            SOCK_KIND_TLS
        } else {
            SOCK_KIND_CLEAR
        };
    }
    if o.kind == SOCK_KIND_TLS {
        // Ciphertext: the plaintext comes from the record probe, keyed by
        // conn. Until this socket's conn is known, each receive looks for
        // the readRecordOrCCS it serves: whichever goroutine later
        // decrypts what it read, the conn is the same.
        if o.tls_conn == 0
            && let Some(conn) = read_conn(tgid, call.frame)
        {
            bind(tgid, tid, conn, fields.sock, call.fd, o);
        }
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
    let fresh = fresh_state(call.fd);
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
    // A cleartext send's bytes are in the kernel now.
    let sent = if direction == Direction::Egress {
        (1 << 32) | u64::from(write_seq(fields.sock))
    } else {
        0
    };
    emit_chunks(&key, state, tid, 0, call.buf, n, sent);
}
