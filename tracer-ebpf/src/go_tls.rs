//! Uprobes on Go's `crypto/tls`. Go (>= 1.17, amd64) passes arguments and
//! results in registers: RAX, RBX, RCX, ... and keeps the current goroutine
//! `g` in R14 throughout Go code, including at every RET.

use aya_ebpf::{
    helpers::bpf_probe_read_user,
    macros::{map, uprobe},
    maps::HashMap,
    programs::ProbeContext,
};
use tracer_common::{
    counters::Counter,
    record::{ChunkSource, Direction, TlsReadArgs},
};

use crate::{
    chunk::{emit_chunks, stream_key},
    io::{TLS_FDS, fd_key},
    maps::{count, target_tgid},
};

/// Go TLS Reads in flight, from entry to a RET, keyed by goroutine.
#[map]
static TLS_READS: HashMap<ReadKey, TlsReadArgs> = HashMap::with_max_entries(0, 0);

/// A goroutine in a process. Go may move a goroutine between threads, but
/// not while it runs Go code between a function's entry and its RET without
/// the goroutine itself being the key, so the `g` pointer is the right key.
#[repr(C)]
#[derive(Clone, Copy)]
struct ReadKey {
    tgid: u32,
    _pad0: u32,
    goroutine: u64,
}

/// Entry of `crypto/tls.(*Conn).Write(b []byte)`: RAX = `*tls.Conn`,
/// RBX = `b.ptr`, RCX = `b.len`. The plaintext is captured here, the moment
/// it enters the TLS layer.
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
    let fd = conn_fd(conn).unwrap_or(-1);
    count(Counter::TlsWrites, 1);
    count(Counter::TlsWriteBytes, len);
    if fd >= 0 {
        let _ = TLS_FDS.insert(&fd_key(tgid, fd as i32), &1, 0);
        let key = stream_key(
            tgid,
            fd as i32,
            Direction::Egress as u8,
            ChunkSource::GoTls as u8,
        );
        emit_chunks(&key, tid, buf, len);
    }
    Ok(())
}

/// Entry of `crypto/tls.(*Conn).Read(b []byte) (int, error)`: saves the
/// buffer for the RET probes, which know how much was read.
#[uprobe]
fn go_tls_read(ctx: ProbeContext) -> u32 {
    match try_go_tls_read(&ctx) {
        Ok(()) | Err(_) => 0,
    }
}

fn try_go_tls_read(ctx: &ProbeContext) -> Result<(), i64> {
    let Some((tgid, _)) = target_tgid() else {
        return Ok(());
    };
    // SAFETY: the kernel passes a valid pt_regs to a uprobe program.
    let regs = unsafe { &*ctx.regs };
    let key = ReadKey {
        tgid,
        _pad0: 0,
        goroutine: regs.r14,
    };
    let args = TlsReadArgs {
        buf: regs.rbx,
        cap: regs.rcx,
        fd: conn_fd(regs.rax).unwrap_or(-1),
    };
    if args.fd >= 0 {
        // Before the syscalls this Read makes: they carry ciphertext.
        let _ = TLS_FDS.insert(&fd_key(tgid, args.fd as i32), &1, 0);
    }
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
    let key = ReadKey {
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
    let n = regs.rax as i64;
    if n <= 0 || args.fd < 0 {
        return Ok(());
    }
    let n = if (n as u64) > args.cap {
        args.cap
    } else {
        n as u64
    };
    let key = stream_key(
        tgid,
        args.fd as i32,
        Direction::Ingress as u8,
        ChunkSource::GoTls as u8,
    );
    emit_chunks(&key, tid, args.buf, n);
    Ok(())
}

/// The socket fd behind a `*tls.Conn`: `tls.Conn.conn` is a `net.Conn`
/// interface whose data word (at +8) points to a `net.TCPConn`, whose first
/// field is `*netFD`, whose `pfd.Sysfd` is at +16. A closed conn reads -1.
fn conn_fd(conn: u64) -> Result<i64, i64> {
    // SAFETY: bpf_probe_read_user validates every address and fails cleanly
    // on a bad pointer; nothing is dereferenced directly.
    unsafe {
        let tcp_conn: u64 = bpf_probe_read_user((conn + 8) as *const u64).map_err(i64::from)?;
        let net_fd: u64 = bpf_probe_read_user(tcp_conn as *const u64).map_err(i64::from)?;
        bpf_probe_read_user((net_fd + 16) as *const i64).map_err(i64::from)
    }
}
