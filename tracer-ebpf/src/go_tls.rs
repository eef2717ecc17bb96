//! Uprobes on Go's `crypto/tls`: one trap per Write, one per decrypted
//! record, and none at a RET.
//!
//! Go (>= 1.17, amd64) passes arguments and results in registers (RAX, RBX,
//! RCX, RDI, RSI, ...) and keeps the current goroutine `g` in R14. A uprobe
//! is a trap; the kernel emulates a few instructions (push, jmp, jcc, call,
//! nop) and single-steps any other out of line, which takes a second trap:
//! measured on a Firecracker guest at ~0.5 µs per hit emulated against
//! ~6 µs single-stepped. A RET is never emulated, so nothing here sits on
//! one: userspace picks an emulated instruction for each probe (see
//! `symbols::record_site`).
//!
//! Streams are keyed by the `*tls.Conn`, not by an fd read through Go
//! structs: what `tls.Conn.conn` holds differs between programs (etcd wraps
//! its TCP conns, for one). The socket is learnt from the first send the
//! writing goroutine makes inside a Write on a conn not bound yet, or, for a
//! conn that only reads, from the receive before the goroutine decrypts a
//! record. A bound conn's stream state holds its socket and fd, so a Write
//! or a record costs one table lookup.

use aya_ebpf::{
    helpers::bpf_probe_read_user,
    macros::{map, uprobe},
    maps::LruHashMap,
    programs::ProbeContext,
};
use tracer_common::{
    counters::Counter,
    record::{ChunkSource, Direction, RecordKind, TlsBind},
};

use crate::{
    chunk::{emit_chunks, fresh_state, stream_key, stream_state},
    maps::{count, emit, header, target_tgid},
    tcp::bind_socket,
};

/// Goroutines inside a Write on a conn not bound yet: their next send binds
/// it. LRU: an entry whose Write sent nothing (it failed early) ages out, and
/// is overwritten by the goroutine's next unbound Write.
#[map]
static UNBOUND_WRITES: LruHashMap<GoroutineKey, u64> = LruHashMap::with_max_entries(0, 0);

/// Goroutines whose latest receive on a socket not bound yet began with a
/// TLS record: the conn whose record they decrypt next reads that socket.
#[map]
static RECV_CANDIDATES: LruHashMap<GoroutineKey, Candidate> = LruHashMap::with_max_entries(0, 0);

/// A goroutine in a process.
#[repr(C)]
#[derive(Clone, Copy)]
struct GoroutineKey {
    tgid: u32,
    _pad0: u32,
    goroutine: u64,
}

/// A socket a goroutine received a TLS record from.
#[repr(C)]
#[derive(Clone, Copy)]
struct Candidate {
    sock: u64,
    fd: i32,
    _pad0: u32,
}

/// The first bytes of a TLS application-data record (type 23, version 3.3:
/// TLS 1.2 and 1.3 both say 3.3 on the wire).
const TLS_APP_DATA: [u8; 3] = [0x17, 0x03, 0x03];
/// Go's `recordTypeApplicationData`.
const RECORD_TYPE_APPLICATION_DATA: u64 = 23;

/// After the stack check of `crypto/tls.(*Conn).Write(b []byte)` (a
/// `push rbp`, emulated): RAX = `*tls.Conn`, RBX = `b.ptr`, RCX = `b.len`.
/// The plaintext is captured here, the moment it enters the TLS layer.
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
    let key = stream_key(
        tgid,
        conn,
        Direction::Egress as u8,
        ChunkSource::GoTls as u8,
    );
    let Some(state) = stream_state(&key, &fresh_state(0, -1)) else {
        count(Counter::LostBytes, len);
        return Ok(());
    };
    // SAFETY: the pointer comes from a successful map lookup.
    if unsafe { (*state).bound } == 0 {
        // The sends come next, from this goroutine.
        let goroutine = GoroutineKey {
            tgid,
            _pad0: 0,
            goroutine: regs.r14,
        };
        let _ = UNBOUND_WRITES.insert(&goroutine, &conn, 0);
    }
    emit_chunks(&key, state, tid, buf, len);
    Ok(())
}

/// In `crypto/tls.(*Conn).readRecordOrCCS`, at the first emulated
/// instruction after `(*halfConn).decrypt(record) (data []byte, typ
/// recordType, err error)` returned: RAX = `data.ptr`, RBX = `data.len`,
/// DIL = `typ`, RSI = `err`'s type word (0: no error). Userspace checked
/// that nothing in between writes them. The conn is the method's receiver,
/// which Go keeps in its ABI spill slot at RBP+16 (also checked).
#[uprobe]
fn go_tls_record(ctx: ProbeContext) -> u32 {
    match try_go_tls_record(&ctx) {
        Ok(()) | Err(_) => 0,
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
    let key = stream_key(
        tgid,
        conn,
        Direction::Ingress as u8,
        ChunkSource::GoTls as u8,
    );
    let Some(mut state) = stream_state(&key, &fresh_state(0, -1)) else {
        count(Counter::LostBytes, len);
        return Ok(());
    };
    // SAFETY: the pointer comes from a successful map lookup.
    if unsafe { (*state).bound } == 0 {
        let goroutine = GoroutineKey {
            tgid,
            _pad0: 0,
            goroutine: regs.r14,
        };
        // SAFETY: the value is copied out.
        if let Some(candidate) = unsafe { RECV_CANDIDATES.get(&goroutine) }.copied() {
            let _ = RECV_CANDIDATES.remove(&goroutine);
            bind(tgid, tid, conn, candidate.sock, candidate.fd);
            // Binding may have touched the table: look the state up again.
            let Some(bound) = stream_state(&key, &fresh_state(0, -1)) else {
                count(Counter::LostBytes, len);
                return Ok(());
            };
            state = bound;
        }
    }
    emit_chunks(&key, state, tid, buf, len);
    Ok(())
}

/// Called by `sock_send_length` for a send by goroutine `goroutine` of
/// `tgid` on a socket not known to carry TLS: if the goroutine is inside a
/// Write on an unbound conn and the send starts a TLS application-data
/// record at `buf`, the conn uses this socket. Returns whether it bound.
#[inline(always)]
pub(crate) fn bind_on_send(
    tgid: u32,
    tid: u32,
    goroutine: u64,
    sock: u64,
    fd: i32,
    buf: u64,
) -> bool {
    let key = GoroutineKey {
        tgid,
        _pad0: 0,
        goroutine,
    };
    // SAFETY: the value is copied out.
    let Some(conn) = (unsafe { UNBOUND_WRITES.get(&key) }).copied() else {
        return false;
    };
    // The goroutine may send elsewhere after a Write that failed before
    // sending: only a TLS record is the Write's.
    // SAFETY: a checked read of user memory.
    let first: [u8; 3] = match unsafe { bpf_probe_read_user(buf as *const [u8; 3]) } {
        Ok(bytes) => bytes,
        Err(_) => return false,
    };
    if first != TLS_APP_DATA {
        return false;
    }
    let _ = UNBOUND_WRITES.remove(&key);
    bind(tgid, tid, conn, sock, fd);
    true
}

/// Called by `sock_recv_length` for a receive on a socket not bound yet
/// that began with a TLS record: the next record the goroutine decrypts is
/// this socket's.
#[inline(always)]
pub(crate) fn note_tls_recv(tgid: u32, goroutine: u64, sock: u64, fd: i32) {
    let key = GoroutineKey {
        tgid,
        _pad0: 0,
        goroutine,
    };
    let candidate = Candidate { sock, fd, _pad0: 0 };
    let _ = RECV_CANDIDATES.insert(&key, &candidate, 0);
}

/// Whether the user bytes at `buf` begin a TLS record: a content type
/// (change_cipher_spec, alert, handshake, application_data) and version
/// 3.1 to 3.4.
#[inline(always)]
pub(crate) fn starts_tls_record(buf: u64) -> bool {
    // SAFETY: a checked read of user memory.
    match unsafe { bpf_probe_read_user(buf as *const [u8; 3]) } {
        Ok([kind, 3, minor]) => (0x14..=0x17).contains(&kind) && (1..=4).contains(&minor),
        _ => false,
    }
}

/// Binds `conn` to `sock`: both of its streams learn the socket, the socket
/// learns it carries TLS, and userspace is told.
#[inline(always)]
fn bind(tgid: u32, tid: u32, conn: u64, sock: u64, fd: i32) {
    for direction in [Direction::Egress, Direction::Ingress] {
        let key = stream_key(tgid, conn, direction as u8, ChunkSource::GoTls as u8);
        if let Some(state) = stream_state(&key, &fresh_state(sock, fd)) {
            // SAFETY: the pointer comes from a successful map lookup.
            unsafe {
                (*state).sock = sock;
                (*state).fd = fd;
                (*state).bound = 1;
            }
        }
    }
    bind_socket(sock, tgid, fd, conn);
    emit(TlsBind {
        header: header(RecordKind::TlsBind, tgid, tid),
        conn,
        sock,
        fd,
        _pad0: 0,
    });
}
