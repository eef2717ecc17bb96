//! TCP state of the targets' sockets: ACK progress and window from
//! `tcp:tcp_probe`, state changes (and the end of the streams a socket
//! carried) from `sock:inet_sock_set_state`, retransmits from
//! `tcp:tcp_retransmit_skb`.
//!
//! These fire in softirq context, in whatever task is running, so they
//! cannot filter by tgid: they look the socket up in KNOWN_SOCKS, which the
//! send/receive tracepoints fill in the target's own context.

use aya_ebpf::{
    Global,
    helpers::bpf_probe_read_kernel,
    macros::{map, tracepoint},
    maps::LruHashMap,
    programs::TracePointContext,
};
use tracer_common::{
    counters::Counter,
    layout::{
        KERNEL_LAYOUT_PLACEHOLDER, KernelLayout, RETRANSMIT_LAYOUT_PLACEHOLDER, RetransmitLayout,
        SOCK_STATE_LAYOUT_PLACEHOLDER, SockStateLayout, TCP_PROBE_LAYOUT_PLACEHOLDER,
        TcpProbeLayout,
    },
    record::{
        ChunkSource, Direction, RecordKind, Retransmit, SOCK_KIND_UNKNOWN, SockClose, SockOwner,
        SockState, TCP_SAMPLE_PERIOD_NS, TcpAck, TcpSample,
    },
};

use crate::{
    chunk::{STREAM_OFFSETS, stream_key},
    go_tls::{CONN_SOCKS, ConnKey},
    maps::{count, emit, header},
};

#[unsafe(no_mangle)]
static KERNEL_LAYOUT: Global<KernelLayout> = Global::new(KERNEL_LAYOUT_PLACEHOLDER);
#[unsafe(no_mangle)]
static TCP_PROBE_LAYOUT: Global<TcpProbeLayout> = Global::new(TCP_PROBE_LAYOUT_PLACEHOLDER);
#[unsafe(no_mangle)]
static SOCK_STATE_LAYOUT: Global<SockStateLayout> = Global::new(SOCK_STATE_LAYOUT_PLACEHOLDER);
#[unsafe(no_mangle)]
static RETRANSMIT_LAYOUT: Global<RetransmitLayout> = Global::new(RETRANSMIT_LAYOUT_PLACEHOLDER);

/// Sockets of targets, by kernel address.
#[map]
static KNOWN_SOCKS: LruHashMap<u64, SockOwner> = LruHashMap::with_max_entries(0, 0);

const AF_INET: u16 = 2;
const TCP_SYN_SENT: i32 = 2;
const TCP_SYN_RECV: i32 = 3;
const TCP_CLOSE: i32 = 7;
/// The ACK bit in the TCP header's flags byte.
const TCP_FLAG_ACK: u8 = 0x10;

/// What the kernel keeps of `sock`, a socket of `tgid`, created if new and
/// `create`; notes the fd it was last used through. `None` if it is not
/// known (and not to be), or the table refuses it.
///
/// A send that fails on a socket already closed (reset by the peer) must
/// not create an entry: no state change would ever remove it, and a new
/// socket of another process reusing the address would be taken for this
/// process's.
#[inline(always)]
pub(crate) fn socket_owner(sock: u64, tgid: u32, fd: i32, create: bool) -> Option<*mut SockOwner> {
    let owner = SockOwner {
        tgid,
        fd,
        last_ack: 0,
        zero_window: 0,
        last_sample_ns: 0,
        conn: 0,
        kind: SOCK_KIND_UNKNOWN,
        blocked: 0,
        write_buf: 0,
        write_len: 0,
        write_frame: 0,
        plain_left: 0,
        rec_left: 0,
        overhead: 0,
        write_open: 0,
        _pad0: 0,
        walk_delta: 0,
    };
    if let Some(known) = KNOWN_SOCKS.get_ptr_mut(&sock) {
        // SAFETY: the pointer comes from a successful map lookup.
        unsafe {
            if (*known).tgid != tgid {
                // Another process's socket at this address never reported
                // its close: this is a new socket.
                *known = owner;
            } else if fd >= 0 {
                (*known).fd = fd;
            }
        }
        return Some(known);
    }
    if !create {
        return None;
    }
    KNOWN_SOCKS.insert(&sock, &owner, 0).ok()?;
    KNOWN_SOCKS.get_ptr_mut(&sock)
}

/// `tcp_sock.write_seq` of `sock`, 0 if unreadable.
#[inline(always)]
pub(crate) fn write_seq(sock: u64) -> u32 {
    let offset = KERNEL_LAYOUT.load().tcp_write_seq as u64;
    // SAFETY: bpf_probe_read_kernel checks the address.
    unsafe { bpf_probe_read_kernel((sock + offset) as *const u32) }.unwrap_or(0)
}

#[tracepoint]
fn tcp_probe(ctx: TracePointContext) -> u32 {
    match try_tcp_probe(&ctx) {
        Ok(()) => 0,
        Err(_) => {
            count(Counter::ReadErrors, 1);
            0
        }
    }
}

fn try_tcp_probe(ctx: &TracePointContext) -> Result<(), i64> {
    let l = TCP_PROBE_LAYOUT.load();
    // SAFETY: offsets come from the tracepoint's format file; read_at fails
    // cleanly on a bad offset.
    let sock = unsafe { ctx.read_at::<u64>(l.skaddr as usize) }.map_err(i64::from)?;
    let Some(owner) = KNOWN_SOCKS.get_ptr_mut(&sock) else {
        return Ok(());
    };
    let k = KERNEL_LAYOUT.load();
    // The tracepoint fires before the segment is processed, so its snd_una
    // lags; the segment's own ACK number is the fresh fact. Read it from the
    // TCP header at skb->head + skb->transport_header.
    // SAFETY: every read goes through bpf_probe_read_kernel, which checks
    // the address; offsets come from kernel BTF.
    let (ack_seq, window, flags) = unsafe {
        let skb = ctx.read_at::<u64>(l.skbaddr as usize).map_err(i64::from)?;
        let head: u64 = bpf_probe_read_kernel((skb + k.skb_head as u64) as *const u64)?;
        let th_offset: u16 =
            bpf_probe_read_kernel((skb + k.skb_transport_header as u64) as *const u16)?;
        let th = head + th_offset as u64;
        let ack: u32 = bpf_probe_read_kernel((th + 8) as *const u32)?;
        let flags: u8 = bpf_probe_read_kernel((th + 13) as *const u8)?;
        let window: u16 = bpf_probe_read_kernel((th + 14) as *const u16)?;
        (u32::from_be(ack), u16::from_be(window), flags)
    };
    if flags & TCP_FLAG_ACK == 0 {
        return Ok(());
    }
    let zero = u32::from(window == 0);
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    let now = unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() };
    // SAFETY: the pointer comes from a successful map lookup.
    let (tgid, fd, full) = unsafe {
        if (*owner).last_ack == ack_seq && (*owner).zero_window == zero {
            return Ok(());
        }
        (*owner).last_ack = ack_seq;
        (*owner).zero_window = zero;
        let full = now.wrapping_sub((*owner).last_sample_ns) >= TCP_SAMPLE_PERIOD_NS;
        if full {
            (*owner).last_sample_ns = now;
        }
        ((*owner).tgid, (*owner).fd, full)
    };
    count(Counter::TcpSamples, 1);
    if !full {
        // What userspace needs of most segments: the ACK and the window.
        emit(TcpAck {
            header: header(RecordKind::TcpAck, tgid, 0),
            sock,
            ack_seq,
            window,
            _pad0: 0,
        });
        return Ok(());
    }
    // SAFETY: as for the reads above.
    let sample = unsafe {
        let family = ctx.read_at::<u16>(l.family as usize).map_err(i64::from)?;
        let mut saddr = [0u8; 16];
        let mut daddr = [0u8; 16];
        // sockaddr_in: address at +4; sockaddr_in6: at +8.
        if family == AF_INET {
            let s: [u8; 4] = ctx.read_at(l.saddr as usize + 4).map_err(i64::from)?;
            let d: [u8; 4] = ctx.read_at(l.daddr as usize + 4).map_err(i64::from)?;
            saddr[..4].copy_from_slice(&s);
            daddr[..4].copy_from_slice(&d);
        } else {
            saddr = ctx.read_at(l.saddr as usize + 8).map_err(i64::from)?;
            daddr = ctx.read_at(l.daddr as usize + 8).map_err(i64::from)?;
        }
        TcpSample {
            header: header(RecordKind::TcpSample, tgid, 0),
            sock,
            sock_cookie: ctx
                .read_at::<u64>(l.sock_cookie as usize)
                .map_err(i64::from)?,
            fd,
            ack_seq,
            window,
            family,
            sport: ctx.read_at::<u16>(l.sport as usize).map_err(i64::from)?,
            dport: ctx.read_at::<u16>(l.dport as usize).map_err(i64::from)?,
            snd_una: ctx.read_at::<u32>(l.snd_una as usize).map_err(i64::from)?,
            snd_nxt: ctx.read_at::<u32>(l.snd_nxt as usize).map_err(i64::from)?,
            snd_wnd: ctx.read_at::<u32>(l.snd_wnd as usize).map_err(i64::from)?,
            snd_cwnd: ctx.read_at::<u32>(l.snd_cwnd as usize).map_err(i64::from)?,
            srtt_us: ctx.read_at::<u32>(l.srtt as usize).map_err(i64::from)?,
            rcv_wnd: ctx.read_at::<u32>(l.rcv_wnd as usize).map_err(i64::from)?,
            data_len: ctx.read_at::<u16>(l.data_len as usize).map_err(i64::from)?,
            _pad0: 0,
            saddr,
            daddr,
        }
    };
    emit(sample);
    Ok(())
}

#[tracepoint]
fn inet_sock_set_state(ctx: TracePointContext) -> u32 {
    match try_inet_sock_set_state(&ctx) {
        Ok(()) => 0,
        Err(_) => {
            count(Counter::ReadErrors, 1);
            0
        }
    }
}

fn try_inet_sock_set_state(ctx: &TracePointContext) -> Result<(), i32> {
    let l = SOCK_STATE_LAYOUT.load();
    // SAFETY: offsets from the format file; read_at fails cleanly.
    let sock = unsafe { ctx.read_at::<u64>(l.skaddr as usize)? };
    // SAFETY: the value is copied out.
    let Some(owner) = (unsafe { KNOWN_SOCKS.get(&sock) }).copied() else {
        return Ok(());
    };
    // SAFETY: as above.
    let (oldstate, newstate) = unsafe {
        (
            ctx.read_at::<i32>(l.oldstate as usize)?,
            ctx.read_at::<i32>(l.newstate as usize)?,
        )
    };
    if newstate == TCP_SYN_SENT || newstate == TCP_SYN_RECV {
        // A new connection at this address: what was known of it belonged
        // to an earlier socket (one a late send revived after its close).
        close_streams(sock, &owner);
        let _ = KNOWN_SOCKS.remove(&sock);
        return Ok(());
    }
    emit(SockState {
        header: header(RecordKind::SockState, owner.tgid, 0),
        sock,
        oldstate,
        newstate,
    });
    if newstate == TCP_CLOSE {
        close_streams(sock, &owner);
        let _ = KNOWN_SOCKS.remove(&sock);
    }
    Ok(())
}

/// The socket closed: reports the end offsets of the streams it carried
/// (Go TLS plaintext and its own syscall payload) and forgets them. Every
/// TCP socket reaches `TCP_CLOSE` promptly once the process closes it or
/// the peer resets it (`tcp_done`, also on entering TIME_WAIT).
#[inline(always)]
fn close_streams(sock: u64, owner: &SockOwner) {
    let (tgid, conn) = (owner.tgid, owner.conn);
    let keys = [
        stream_key(
            tgid,
            sock,
            Direction::Egress as u8,
            ChunkSource::GoTls as u8,
        ),
        stream_key(
            tgid,
            sock,
            Direction::Ingress as u8,
            ChunkSource::GoTls as u8,
        ),
        stream_key(
            tgid,
            sock,
            Direction::Egress as u8,
            ChunkSource::Syscall as u8,
        ),
        stream_key(
            tgid,
            sock,
            Direction::Ingress as u8,
            ChunkSource::Syscall as u8,
        ),
    ];
    if conn != 0 {
        let _ = CONN_SOCKS.remove(&ConnKey {
            tgid,
            _pad0: 0,
            conn,
        });
    }
    let mut end_offsets = [u64::MAX; 4];
    let mut any = false;
    // Zipped, not indexed: an index the compiler cannot prove in bounds
    // leaves a panic path, which the verifier rejects.
    for (key, end) in keys.iter().zip(end_offsets.iter_mut()) {
        // SAFETY: the value is copied out.
        if let Some(state) = unsafe { STREAM_OFFSETS.get(key) }.copied() {
            *end = state.next_offset;
            any = true;
        }
    }
    if !any {
        return;
    }
    let delivered = emit(SockClose {
        header: header(RecordKind::SockClose, tgid, 0),
        fd: owner.fd,
        _pad0: 0,
        conn,
        sock,
        end_offsets,
    });
    for (key, end) in keys.iter().zip(end_offsets.iter()) {
        if *end == u64::MAX {
            continue;
        }
        if delivered {
            let _ = STREAM_OFFSETS.remove(key);
        } else if let Some(state) = STREAM_OFFSETS.get_ptr_mut(key) {
            // SAFETY: the pointer comes from a successful map lookup.
            unsafe { (*state).closed = 1 };
        }
    }
}

#[tracepoint]
fn tcp_retransmit_skb(ctx: TracePointContext) -> u32 {
    match try_tcp_retransmit_skb(&ctx) {
        Ok(()) => 0,
        Err(_) => {
            count(Counter::ReadErrors, 1);
            0
        }
    }
}

fn try_tcp_retransmit_skb(ctx: &TracePointContext) -> Result<(), i32> {
    // SAFETY: offset from the format file; read_at fails cleanly.
    let sock = unsafe { ctx.read_at::<u64>(RETRANSMIT_LAYOUT.load().skaddr as usize)? };
    // SAFETY: the value is copied out.
    let Some(owner) = (unsafe { KNOWN_SOCKS.get(&sock) }).copied() else {
        return Ok(());
    };
    emit(Retransmit {
        header: header(RecordKind::Retransmit, owner.tgid, 0),
        sock,
    });
    Ok(())
}
