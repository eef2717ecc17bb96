//! Uprobes on Go's `crypto/tls`. Go (>= 1.17, amd64) passes arguments and
//! results in registers: RAX, RBX, RCX, ... and keeps the current goroutine
//! `g` in R14 throughout Go code, including at every RET.
//!
//! Streams are keyed by the `*tls.Conn`, not by an fd read through Go
//! structs: what `tls.Conn.conn` holds differs between programs (etcd wraps
//! its TCP conns, for one), so pointer chasing gives wrong fds. The fd is
//! learnt instead from the first socket syscall the thread makes inside the
//! call (see `io::bind_tls`).

use aya_ebpf::{
    macros::{map, uprobe},
    maps::HashMap,
    programs::ProbeContext,
};
use tracer_common::{
    counters::Counter,
    record::{ChunkSource, Direction, RecordKind, TlsReadArgs, TlsWriteDone},
};

use crate::{
    chunk::{emit_chunks, stream_key},
    io::{THREAD_TLS, bound_fd, clear_mark, thread_mark},
    maps::{count, emit, header, target_tgid},
};

/// Go TLS Reads in flight, from entry to a RET, keyed by goroutine.
#[map]
static TLS_READS: HashMap<GoroutineKey, TlsReadArgs> = HashMap::with_max_entries(0, 0);

/// Go TLS Writes in flight, from entry to a RET.
#[map]
static TLS_WRITES: HashMap<GoroutineKey, WriteCall> = HashMap::with_max_entries(0, 0);

/// A Go TLS Write in flight.
#[repr(C)]
#[derive(Clone, Copy)]
struct WriteCall {
    /// The `*tls.Conn`.
    conn: u64,
    /// The thread the call entered on, which holds its fd-binding mark.
    tid: u32,
    _pad0: u32,
}

/// Whether `goroutine` is inside a Go TLS Write (`write`) or Read on
/// `conn`: between the call's entry and its RET.
#[inline(always)]
pub(crate) fn in_call(tgid: u32, goroutine: u64, conn: u64, write: bool) -> bool {
    let key = GoroutineKey {
        tgid,
        _pad0: 0,
        goroutine,
    };
    // SAFETY: the values are copied out.
    unsafe {
        if write {
            TLS_WRITES.get(&key).map(|call| call.conn) == Some(conn)
        } else {
            TLS_READS.get(&key).map(|args| args.conn) == Some(conn)
        }
    }
}

/// A goroutine in a process. A goroutine may move between threads, but it
/// is the goroutine that reaches the RET, so its `g` is the right key.
#[repr(C)]
#[derive(Clone, Copy)]
struct GoroutineKey {
    tgid: u32,
    _pad0: u32,
    goroutine: u64,
}

/// After the stack check of `crypto/tls.(*Conn).Write(b []byte)`:
/// RAX = `*tls.Conn`, RBX = `b.ptr`, RCX = `b.len`. The plaintext is
/// captured here, the moment it enters the TLS layer.
#[uprobe]
fn go_tls_write(ctx: ProbeContext) -> u32 {
    match try_go_tls_write(&ctx) {
        Ok(()) | Err(_) => 0,
    }
}

fn try_go_tls_write(ctx: &ProbeContext) -> Result<(), i64> {
    let Some((tgid, tid)) = target_tgid() else {
        return Ok(());
    };
    // SAFETY: the kernel passes a valid pt_regs to a uprobe program.
    let regs = unsafe { &*ctx.regs };
    let (conn, buf, len) = (regs.rax, regs.rbx, regs.rcx);
    count(Counter::TlsWrites, 1);
    count(Counter::TlsWriteBytes, len);
    // The write syscalls come next, on this thread.
    let _ = THREAD_TLS.insert(&tid, &thread_mark(conn, true, regs.r14), 0);
    let call = GoroutineKey {
        tgid,
        _pad0: 0,
        goroutine: regs.r14,
    };
    let entry = WriteCall {
        conn,
        tid,
        _pad0: 0,
    };
    let _ = TLS_WRITES.insert(&call, &entry, 0);
    let key = stream_key(
        tgid,
        -1,
        conn,
        Direction::Egress as u8,
        ChunkSource::GoTls as u8,
    );
    emit_chunks(&key, tid, bound_fd(tgid, conn), buf, len);
    Ok(())
}

/// At each RET of `crypto/tls.(*Conn).Write`: the call is over and the
/// kernel holds its bytes. RAX = `n`.
#[uprobe]
fn go_tls_write_ret(ctx: ProbeContext) -> u32 {
    match try_go_tls_write_ret(&ctx) {
        Ok(()) | Err(_) => 0,
    }
}

fn try_go_tls_write_ret(ctx: &ProbeContext) -> Result<(), i64> {
    let Some((tgid, tid)) = target_tgid() else {
        return Ok(());
    };
    // SAFETY: the kernel passes a valid pt_regs to a uprobe program.
    let regs = unsafe { &*ctx.regs };
    clear_mark(tid, regs.r14);
    let call = GoroutineKey {
        tgid,
        _pad0: 0,
        goroutine: regs.r14,
    };
    // SAFETY: the value is copied out before the entry is removed.
    let Some(entry) = (unsafe { TLS_WRITES.get(&call) }).copied() else {
        return Ok(());
    };
    let _ = TLS_WRITES.remove(&call);
    clear_mark(entry.tid, regs.r14);
    emit(TlsWriteDone {
        header: header(RecordKind::TlsWriteDone, tgid, tid),
        conn: entry.conn,
        written: regs.rax as i64,
    });
    Ok(())
}

/// After the stack check of `crypto/tls.(*Conn).Read(b []byte) (int,
/// error)`: saves the buffer for the RET probes, which know how much was
/// read.
#[uprobe]
fn go_tls_read(ctx: ProbeContext) -> u32 {
    match try_go_tls_read(&ctx) {
        Ok(()) | Err(_) => 0,
    }
}

fn try_go_tls_read(ctx: &ProbeContext) -> Result<(), i64> {
    let Some((tgid, tid)) = target_tgid() else {
        return Ok(());
    };
    // SAFETY: the kernel passes a valid pt_regs to a uprobe program.
    let regs = unsafe { &*ctx.regs };
    let key = GoroutineKey {
        tgid,
        _pad0: 0,
        goroutine: regs.r14,
    };
    let args = TlsReadArgs {
        buf: regs.rbx,
        cap: regs.rcx,
        conn: regs.rax,
        tid,
        _pad0: 0,
    };
    // A read syscall follows unless the conn has buffered plaintext.
    let _ = THREAD_TLS.insert(&tid, &thread_mark(args.conn, false, regs.r14), 0);
    TLS_READS.insert(&key, &args, 0)?;
    Ok(())
}

/// At each RET of `crypto/tls.(*Conn).Read`: RAX = bytes read.
#[uprobe]
fn go_tls_read_ret(ctx: ProbeContext) -> u32 {
    match try_go_tls_read_ret(&ctx) {
        Ok(()) | Err(_) => 0,
    }
}

fn try_go_tls_read_ret(ctx: &ProbeContext) -> Result<(), i64> {
    let Some((tgid, tid)) = target_tgid() else {
        return Ok(());
    };
    // SAFETY: the kernel passes a valid pt_regs to a uprobe program.
    let regs = unsafe { &*ctx.regs };
    clear_mark(tid, regs.r14);
    let key = GoroutineKey {
        tgid,
        _pad0: 0,
        goroutine: regs.r14,
    };
    // SAFETY: the value is copied out before the entry is removed.
    let Some(args) = (unsafe { TLS_READS.get(&key) }).copied() else {
        count(Counter::TlsReadUnmatched, 1);
        return Ok(());
    };
    let _ = TLS_READS.remove(&key);
    clear_mark(args.tid, regs.r14);
    let n = regs.rax as i64;
    if n <= 0 {
        return Ok(());
    }
    let n = if (n as u64) > args.cap {
        args.cap
    } else {
        n as u64
    };
    let key = stream_key(
        tgid,
        -1,
        args.conn,
        Direction::Ingress as u8,
        ChunkSource::GoTls as u8,
    );
    emit_chunks(&key, tid, bound_fd(tgid, args.conn), args.buf, n);
    Ok(())
}
