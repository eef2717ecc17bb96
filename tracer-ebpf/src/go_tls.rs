//! Uprobes on Go's `crypto/tls`. Go (>= 1.17, amd64) passes arguments in
//! registers: RAX, RBX, RCX, ... and keeps the current goroutine `g` in R14.

use aya_ebpf::{helpers::bpf_probe_read_user, macros::uprobe, programs::ProbeContext};
use tracer_common::{
    counters::Counter,
    record::{RecordKind, TlsWrite},
};

use crate::maps::{count, emit, header, target_tgid};

/// Entry of `crypto/tls.(*Conn).Write(b []byte)`: RAX = `*tls.Conn`,
/// RBX = `b.ptr`, RCX = `b.len`.
#[uprobe]
fn go_tls_write(ctx: ProbeContext) -> u32 {
    match try_go_tls_write(&ctx) {
        Ok(()) => 0,
        Err(_) => 0,
    }
}

fn try_go_tls_write(ctx: &ProbeContext) -> Result<(), i64> {
    let Some((tgid, tid)) = target_tgid() else {
        return Ok(());
    };
    // SAFETY: the kernel passes a valid pt_regs to a uprobe program.
    let regs = unsafe { &*ctx.regs };
    let conn = regs.rax;
    let len = regs.rcx;
    count(Counter::TlsWrites, 1);
    count(Counter::TlsWriteBytes, len);
    emit(TlsWrite {
        header: header(RecordKind::TlsWrite, tgid, tid),
        conn,
        goroutine: regs.r14,
        len,
        fd: conn_fd(conn).unwrap_or(-1),
    });
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
