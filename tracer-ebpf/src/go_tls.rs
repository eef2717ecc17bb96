//! Go's `crypto/tls` plaintext, at one trap per decrypted record and none
//! per Write.
//!
//! Go (>= 1.17, amd64) passes arguments and results in registers (RAX, RBX,
//! RCX, RDI, RSI, ...), keeps the current goroutine `g` in R14, and keeps a
//! frame pointer chain in RBP. A uprobe is a trap; the kernel emulates a few
//! instructions (push, jmp, jcc, call, nop) and single-steps any other out
//! of line, which takes a second trap: measured on a Firecracker guest at
//! ~0.5 µs per hit emulated against ~6 µs single-stepped. So:
//!
//! - what a conn writes is not probed at all: `crypto/tls.(*Conn).Write`
//!   hands each record to the socket itself, so the send tracepoint walks
//!   the frame chain to the Write's frame and reads its `b` there (see
//!   `sock::tls_send`);
//! - what it reads is taken once per record, where
//!   `readRecordOrCCS` has just decrypted it (`go_tls_record`), on an
//!   emulated instruction userspace picked (`symbols::record_site`).
//!
//! Both directions are keyed by the socket. A record's conn (the method's
//! receiver) is joined to its socket by a receive on the socket made under
//! `readRecordOrCCS`: the receive tracepoint walks up to that frame while
//! the socket's conn is not known (`sock::read_conn`). A goroutine may
//! decrypt bytes another one received (Go's http2 server reads the client
//! preface in a goroutine of its own, from bytes the handshake read), so
//! the goroutine is no key.

use aya_ebpf::{
    helpers::bpf_probe_read_user,
    macros::{map, uprobe},
    maps::LruHashMap,
    programs::ProbeContext,
};
use aya_log_ebpf::debug;
use tracer_common::{
    counters::Counter,
    record::{ChunkSource, Direction, RecordKind, SockOwner, TlsBind},
};

use crate::{
    chunk::{emit_chunks, fresh_state, stream_key, stream_state},
    maps::{count, emit, header, target_tgid},
};

/// The socket each Go TLS conn reads, by (tgid, conn).
#[map]
pub(crate) static CONN_SOCKS: LruHashMap<ConnKey, BoundSocket> = LruHashMap::with_max_entries(0, 0);

/// A `*tls.Conn` of a process.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct ConnKey {
    pub(crate) tgid: u32,
    pub(crate) _pad0: u32,
    pub(crate) conn: u64,
}

/// A socket and the fd it was used through.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct BoundSocket {
    sock: u64,
    fd: i32,
    _pad0: u32,
}

/// Go's `recordTypeApplicationData`.
const RECORD_TYPE_APPLICATION_DATA: u64 = 23;

/// In `crypto/tls.(*Conn).readRecordOrCCS`, at the first emulated
/// instruction after `(*halfConn).decrypt(record) (data []byte, typ
/// recordType, err error)` returned: RAX = `data.ptr`, RBX = `data.len`,
/// DIL = `typ`, RSI = `err`'s type word (0: no error). Userspace checked
/// that nothing in between writes them. The conn is the method's receiver,
/// which Go keeps in its ABI spill slot at RBP+16 (also checked).
#[uprobe]
fn go_tls_record(ctx: ProbeContext) -> u32 {
    match try_go_tls_record(&ctx) {
        Ok(()) => 0,
        Err(e) => {
            debug!(&ctx, "go_tls_record: read error {}", e);
            0
        }
    }
}

fn try_go_tls_record(ctx: &ProbeContext) -> Result<(), i64> {
    let Some((tgid, tid)) = target_tgid() else {
        return Ok(());
    };
    // SAFETY: the kernel passes a valid pt_regs to a uprobe program.
    let regs = unsafe { &*ctx.regs };
    if regs.rsi != 0 || regs.rdi & 0xff != RECORD_TYPE_APPLICATION_DATA {
        return Ok(());
    }
    let (buf, len) = (regs.rax, regs.rbx);
    if len == 0 {
        return Ok(());
    }
    // SAFETY: a checked read of the user stack.
    let conn: u64 = unsafe { bpf_probe_read_user((regs.rbp + 16) as *const u64) }?;
    count(Counter::TlsRecords, 1);
    count(Counter::TlsRecordBytes, len);
    let key = ConnKey {
        tgid,
        _pad0: 0,
        conn,
    };
    // SAFETY: the value is copied out.
    let Some(socket) = (unsafe { CONN_SOCKS.get(&key) }).copied() else {
        // Read from buffers filled before attach: no socket to file it
        // under.
        count(Counter::TlsUnboundBytes, len);
        return Ok(());
    };
    let stream = stream_key(
        tgid,
        socket.sock,
        Direction::Ingress as u8,
        ChunkSource::GoTls as u8,
    );
    let Some(state) = stream_state(&stream, &fresh_state(socket.fd)) else {
        count(Counter::LostBytes, len);
        return Ok(());
    };
    emit_chunks(&stream, state, tid, conn, buf, len, 0);
    Ok(())
}

/// Whether the user bytes at `buf` begin a TLS record: a content type
/// (change_cipher_spec, alert, handshake, application_data) and version
/// 3.1 to 3.4. Returns the content type.
#[inline(always)]
pub(crate) fn tls_record_type(buf: u64) -> Option<u8> {
    // SAFETY: a checked read of user memory.
    match unsafe { bpf_probe_read_user(buf as *const [u8; 3]) } {
        Ok([kind, 3, minor]) if (0x14..=0x17).contains(&kind) && (1..=4).contains(&minor) => {
            Some(kind)
        }
        _ => None,
    }
}

/// Joins `conn` to `sock` (whose owner entry is `owner`), read through
/// `fd` by a receive under the conn's `readRecordOrCCS` (see
/// `sock::read_conn`), and says so.
#[inline(always)]
pub(crate) fn bind(tgid: u32, tid: u32, conn: u64, sock: u64, fd: i32, owner: &mut SockOwner) {
    let key = ConnKey {
        tgid,
        _pad0: 0,
        conn,
    };
    let _ = CONN_SOCKS.insert(&key, &BoundSocket { sock, fd, _pad0: 0 }, 0);
    owner.tls_conn = conn;
    emit(TlsBind {
        header: header(RecordKind::TlsBind, tgid, tid),
        tls_conn: conn,
        sock,
        fd,
        _pad0: 0,
    });
}
