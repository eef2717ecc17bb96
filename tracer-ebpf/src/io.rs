//! Socket payload from syscalls, for cleartext connections (h2c, plain
//! etcd). The enter tracepoint saves the arguments per thread; the socket
//! tracepoints that fire inside the syscall mark it as a socket; the exit
//! tracepoint, knowing how many bytes moved, copies them.
//!
//! Fds that carry Go TLS are skipped: their syscall payload is ciphertext,
//! and the TLS uprobes already deliver the plaintext.

use aya_ebpf::{
    Global,
    bindings::pt_regs,
    helpers::{
        bpf_probe_read_kernel,
        generated::{bpf_get_current_task_btf, bpf_task_pt_regs},
    },
    macros::{map, tracepoint},
    maps::{HashMap, LruHashMap},
    programs::TracePointContext,
};
use tracer_common::{
    counters::Counter,
    layout::{
        SYSCALL_IO_LAYOUT_PLACEHOLDER, SYSCALL_NUMBERS_PLACEHOLDER, SyscallIoLayout, SyscallNumbers,
    },
    record::{ChunkSource, Direction, IoArgs, IoKind, RecordKind, TlsBind},
};

use crate::{
    chunk::{emit_chunks, skip_bytes, stream_key},
    go_tls,
    maps::{count, emit, header, target_tgid},
};

#[unsafe(no_mangle)]
static SYSCALL_IO_LAYOUT: Global<SyscallIoLayout> = Global::new(SYSCALL_IO_LAYOUT_PLACEHOLDER);

#[unsafe(no_mangle)]
static SYSCALL_NUMBERS: Global<SyscallNumbers> = Global::new(SYSCALL_NUMBERS_PLACEHOLDER);

/// Syscalls in flight, by thread id.
#[map]
pub(crate) static ACTIVE_IO: HashMap<u32, IoArgs> = HashMap::with_max_entries(0, 0);

/// Fds carrying Go TLS, by (tgid, fd), with the conn bound to each.
#[map]
pub(crate) static TLS_FDS: LruHashMap<u64, u64> = LruHashMap::with_max_entries(0, 0);

/// The fd bound to each Go TLS conn.
#[map]
static CONN_FDS: LruHashMap<ConnKey, i32> = LruHashMap::with_max_entries(0, 0);

/// Threads inside a Go TLS Write or Read, with the call (see `ThreadMark`).
/// LRU: a mark whose call never returns (its thread or process gone) ages
/// out instead of filling the table; evicting a live one only delays its
/// conn's binding to the conn's next call.
#[map]
pub(crate) static THREAD_TLS: LruHashMap<u32, ThreadMark> = LruHashMap::with_max_entries(0, 0);

/// A Go TLS call that has not made its first socket syscall yet.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct ThreadMark {
    /// The conn with the call's direction in its low bit (set for Write).
    /// Go heap pointers are 8-byte aligned, so the bit is free.
    conn_and_write: u64,
    /// The goroutine (`g`, R14) that made the call: a goroutine can park
    /// inside the call before its syscall (on the conn's lock, say) and
    /// leave the thread to others, whose syscalls are not the call's.
    goroutine: u64,
}

/// A `*tls.Conn` of a process.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct ConnKey {
    tgid: u32,
    _pad0: u32,
    conn: u64,
}

/// The THREAD_TLS value of a call on `conn` by `goroutine`.
#[inline(always)]
pub(crate) fn thread_mark(conn: u64, write: bool, goroutine: u64) -> ThreadMark {
    ThreadMark {
        conn_and_write: conn | u64::from(write),
        goroutine,
    }
}

/// At a call's RET: removes the fd-binding mark `goroutine` left on thread
/// `tid`, if it is still there (the call made no socket syscall; or it
/// entered on `tid` and returned on another thread, having moved while
/// parked). Another goroutine's mark on `tid` stays.
#[inline(always)]
pub(crate) fn clear_mark(tid: u32, goroutine: u64) {
    // SAFETY: only the goroutine is read, copied out.
    if unsafe { THREAD_TLS.get(&tid) }.is_some_and(|mark| mark.goroutine == goroutine) {
        let _ = THREAD_TLS.remove(&tid);
    }
}

/// The goroutine of the current thread's syscall: Go keeps `g` in R14, and
/// the kernel saved the user registers at syscall entry. `None` if they
/// cannot be read.
#[inline(always)]
fn syscall_goroutine() -> Option<u64> {
    // SAFETY: both helpers take and return kernel pointers the verifier
    // tracks (the current task and its saved user registers); the read is
    // a checked probe read.
    unsafe {
        let regs = bpf_task_pt_regs(bpf_get_current_task_btf()) as *const pt_regs;
        if regs.is_null() {
            return None;
        }
        bpf_probe_read_kernel(&(*regs).r14).ok()
    }
}

/// The TLS_FDS key of an fd.
#[inline(always)]
pub(crate) fn fd_key(tgid: u32, fd: i32) -> u64 {
    (u64::from(tgid) << 32) | u64::from(fd as u32)
}

/// The fd bound to a Go TLS conn, or -1 before its first syscall.
#[inline(always)]
pub(crate) fn bound_fd(tgid: u32, conn: u64) -> i32 {
    let key = ConnKey {
        tgid,
        _pad0: 0,
        conn,
    };
    // SAFETY: the value is copied out.
    unsafe { CONN_FDS.get(&key) }.copied().unwrap_or(-1)
}

/// Forgets the bindings of a closed fd; returns its conn, or 0.
#[inline(always)]
pub(crate) fn unbind_fd(tgid: u32, fd: i32) -> u64 {
    // SAFETY: the value is copied out.
    let Some(conn) = (unsafe { TLS_FDS.get(&fd_key(tgid, fd)) }).copied() else {
        return 0;
    };
    let _ = TLS_FDS.remove(&fd_key(tgid, fd));
    let _ = CONN_FDS.remove(&ConnKey {
        tgid,
        _pad0: 0,
        conn,
    });
    conn
}

/// Called by the socket tracepoints inside a syscall on `fd`: if this
/// thread's goroutine has just entered a Go TLS Write or Read, this syscall
/// is that call's, so `fd` is its conn's socket. The first syscall decides;
/// the thread's mark is consumed so later syscalls cannot rebind it.
#[inline(always)]
pub(crate) fn bind_tls(tgid: u32, tid: u32, fd: i32, sending: bool) {
    // SAFETY: the value is copied out before the entry is removed.
    let Some(mark) = (unsafe { THREAD_TLS.get(&tid) }).copied() else {
        return;
    };
    // Another goroutine's syscall on this thread: the marked call parked
    // before its own (and may make it on another thread, unmarked, which
    // only delays the bind to its next call). The mark stays for the
    // marked goroutine, should it resume here.
    if syscall_goroutine() != Some(mark.goroutine) {
        return;
    }
    // Its next socket syscall consumes the mark either way. A Write's first
    // syscall sends and a Read's receives; one the other way (a handshake
    // inside the call) binds nothing.
    let _ = THREAD_TLS.remove(&tid);
    let write = mark.conn_and_write & 1 == 1;
    if write != sending {
        return;
    }
    let conn = mark.conn_and_write & !1;
    // A mark left on a thread the goroutine moved away from outlives the
    // call (its RET ran elsewhere); the goroutine's later syscalls on this
    // thread are not the call's.
    if !go_tls::in_call(tgid, mark.goroutine, conn, write) {
        return;
    }
    if fd < 0 {
        return;
    }
    let key = ConnKey {
        tgid,
        _pad0: 0,
        conn,
    };
    // SAFETY: the value is copied out.
    if unsafe { CONN_FDS.get(&key) }.copied() == Some(fd) {
        return;
    }
    let _ = CONN_FDS.insert(&key, &fd, 0);
    let _ = TLS_FDS.insert(&fd_key(tgid, fd), &conn, 0);
    emit(TlsBind {
        header: header(RecordKind::TlsBind, tgid, tid),
        conn,
        fd,
        _pad0: 0,
    });
}

#[tracepoint]
fn sys_enter_io(ctx: TracePointContext) -> u32 {
    match try_sys_enter_io(&ctx) {
        Ok(()) => 0,
        Err(_) => {
            count(Counter::ReadErrors, 1);
            0
        }
    }
}

fn try_sys_enter_io(ctx: &TracePointContext) -> Result<(), i32> {
    let Some((_, tid)) = target_tgid() else {
        return Ok(());
    };
    let layout = SYSCALL_IO_LAYOUT.load();
    let numbers = SYSCALL_NUMBERS.load();
    // SAFETY: offsets come from the tracepoints' format files (checked to
    // agree across all of them); read_at fails cleanly on a bad offset.
    let (nr, fd, buf, len) = unsafe {
        (
            ctx.read_at::<i32>(layout.nr as usize)? as u32,
            ctx.read_at::<u64>(layout.fd as usize)? as i32,
            ctx.read_at::<u64>(layout.buf as usize)?,
            ctx.read_at::<u64>(layout.count as usize)?,
        )
    };
    let kind = if nr == numbers.write || nr == numbers.sendto {
        IoKind::Write
    } else if nr == numbers.read || nr == numbers.recvfrom {
        IoKind::Read
    } else if nr == numbers.writev {
        IoKind::WriteVec
    } else if nr == numbers.readv {
        IoKind::ReadVec
    } else {
        return Ok(());
    };
    let args = IoArgs {
        buf,
        count: len,
        fd,
        kind: kind as u8,
        is_socket: 0,
        _pad0: 0,
    };
    ACTIVE_IO.insert(&tid, &args, 0).map_err(|e| e as i32)
}

#[tracepoint]
fn sys_exit_io(ctx: TracePointContext) -> u32 {
    match try_sys_exit_io(&ctx) {
        Ok(()) => 0,
        Err(_) => {
            count(Counter::ReadErrors, 1);
            0
        }
    }
}

fn try_sys_exit_io(ctx: &TracePointContext) -> Result<(), i32> {
    let Some((tgid, tid)) = target_tgid() else {
        return Ok(());
    };
    // SAFETY: the value is copied out before the entry is removed.
    let Some(args) = (unsafe { ACTIVE_IO.get(&tid) }).copied() else {
        return Ok(());
    };
    let _ = ACTIVE_IO.remove(&tid);
    if args.is_socket == 0 {
        return Ok(());
    }
    // SAFETY: as in try_sys_enter_io.
    let ret = unsafe { ctx.read_at::<i64>(SYSCALL_IO_LAYOUT.load().ret as usize)? };
    if ret <= 0 {
        return Ok(());
    }
    // SAFETY: only tested for presence.
    if unsafe { TLS_FDS.get(&fd_key(tgid, args.fd)) }.is_some() {
        return Ok(());
    }
    let n = ret as u64;
    let (direction, vectored) = match args.kind {
        k if k == IoKind::Write as u8 => (Direction::Egress, false),
        k if k == IoKind::Read as u8 => (Direction::Ingress, false),
        k if k == IoKind::WriteVec as u8 => (Direction::Egress, true),
        _ => (Direction::Ingress, true),
    };
    let key = stream_key(
        tgid,
        args.fd,
        0,
        direction as u8,
        ChunkSource::Syscall as u8,
    );
    if vectored {
        // Walking an iovec array inside the chunk loop is beyond what the
        // verifier accepts here; Go's net/http, HTTP/2 and gRPC write with
        // write(2). The bytes still advance the stream: a counted gap.
        count(Counter::VectoredSkippedBytes, n);
        skip_bytes(&key, n);
    } else {
        emit_chunks(&key, tid, args.fd, args.buf, n);
    }
    Ok(())
}

/// Marks the syscall in flight on this thread as socket I/O; returns its fd.
#[inline(always)]
pub(crate) fn mark_socket(tid: u32) -> i32 {
    match ACTIVE_IO.get_ptr_mut(&tid) {
        Some(args) => {
            // SAFETY: the pointer comes from a successful map lookup.
            unsafe {
                (*args).is_socket = 1;
                (*args).fd
            }
        }
        None => -1,
    }
}
