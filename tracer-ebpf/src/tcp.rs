//! TCP state of the targets' sockets, from raw tracepoints: ACK progress
//! and window from `tcp_probe` (`TP_PROTO(struct sock *sk, const struct
//! sk_buff *skb)`, every incoming segment of an established connection on
//! the host), state changes (and the end of the streams a socket carried)
//! from `inet_sock_set_state` (`sk, oldstate, newstate`), retransmits from
//! `tcp_retransmit_skb` (`sk, skb, ...`). Raw, the kernel builds no trace
//! record for any of these segments; the programs read what they need from
//! the socket and the packet, at offsets from kernel BTF.
//!
//! These fire in softirq context, in whatever task is running, so they
//! cannot filter by tgid: they look the socket up in KNOWN_SOCKS, which the
//! send/receive tracepoints fill in the target's own context.

use aya_ebpf::{
    Global,
    helpers::bpf_probe_read_kernel,
    macros::{map, raw_tracepoint},
    maps::LruHashMap,
    programs::RawTracePointContext,
};
use aya_log_ebpf::debug;
use tracer_common::{
    counters::Counter,
    layout::{KERNEL_LAYOUT_PLACEHOLDER, KernelLayout},
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

/// Kernel struct member offsets, set by the loader from kernel BTF.
#[unsafe(no_mangle)]
pub(crate) static KERNEL_LAYOUT: Global<KernelLayout> = Global::new(KERNEL_LAYOUT_PLACEHOLDER);

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
        tls_conn: 0,
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

#[raw_tracepoint(tracepoint = "tcp_probe")]
fn tcp_probe(ctx: RawTracePointContext) -> i32 {
    match try_tcp_probe(&ctx) {
        Ok(()) => 0,
        Err(e) => {
            debug!(&ctx, "tcp_probe: read error {}", e);
            count(Counter::ReadErrors, 1);
            0
        }
    }
}

/// A kernel value of type `T` at `base + offset`.
///
/// # Safety
/// Every bit pattern must be a valid `T`.
#[inline(always)]
unsafe fn kernel<T>(base: u64, offset: u32) -> Result<T, i64> {
    // SAFETY: bpf_probe_read_kernel checks the address; the caller vouches
    // for T.
    unsafe { bpf_probe_read_kernel((base + u64::from(offset)) as *const T) }.map_err(i64::from)
}

fn try_tcp_probe(ctx: &RawTracePointContext) -> Result<(), i64> {
    let sock: u64 = ctx.arg(0);
    let Some(owner) = KNOWN_SOCKS.get_ptr_mut(&sock) else {
        return Ok(());
    };
    let skb: u64 = ctx.arg(1);
    let k = KERNEL_LAYOUT.load();
    // The tracepoint fires before the segment is processed, so the socket's
    // snd_una lags; the segment's own ACK number is the fresh fact. Read it
    // from the TCP header at skb->head + skb->transport_header: bytes 8..16
    // hold the ACK number, the header length, the flags and the window.
    // SAFETY: checked reads of kernel memory; offsets from kernel BTF.
    let (ack_seq, header_len, flags, window) = unsafe {
        let head: u64 = kernel(skb, k.skb_head)?;
        let th_offset: u16 = kernel(skb, k.skb_transport_header)?;
        let th: [u8; 8] = kernel(head + u64::from(th_offset), 8)?;
        (
            u32::from_be_bytes([th[0], th[1], th[2], th[3]]),
            u32::from(th[4] >> 4) * 4,
            th[5],
            u16::from_be_bytes([th[6], th[7]]),
        )
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
        let family: u16 = kernel(sock, k.sk_family)?;
        let mut saddr = [0u8; 16];
        let mut daddr = [0u8; 16];
        if family == AF_INET {
            let s: [u8; 4] = kernel(sock, k.sk_rcv_saddr)?;
            let d: [u8; 4] = kernel(sock, k.sk_daddr)?;
            saddr[..4].copy_from_slice(&s);
            daddr[..4].copy_from_slice(&d);
        } else {
            saddr = kernel(sock, k.sk_v6_rcv_saddr)?;
            daddr = kernel(sock, k.sk_v6_daddr)?;
        }
        let skb_len: u32 = kernel(skb, k.skb_len)?;
        let srtt: u32 = kernel(sock, k.tcp_srtt_us)?;
        TcpSample {
            header: header(RecordKind::TcpSample, tgid, 0),
            sock,
            // Not read: only the tracepoint's record had it generated.
            sock_cookie: 0,
            fd,
            ack_seq,
            window,
            family,
            sport: kernel(sock, k.sk_num)?,
            dport: u16::from_be(kernel(sock, k.sk_dport)?),
            snd_una: kernel(sock, k.tcp_snd_una)?,
            snd_nxt: kernel(sock, k.tcp_snd_nxt)?,
            snd_wnd: kernel(sock, k.tcp_snd_wnd)?,
            snd_cwnd: kernel(sock, k.tcp_snd_cwnd)?,
            // Kept in 1/8 µs.
            srtt_us: srtt >> 3,
            rcv_wnd: kernel(sock, k.tcp_rcv_wnd)?,
            data_len: skb_len.saturating_sub(header_len) as u16,
            _pad0: 0,
            saddr,
            daddr,
        }
    };
    emit(sample);
    Ok(())
}

#[raw_tracepoint(tracepoint = "inet_sock_set_state")]
fn inet_sock_set_state(ctx: RawTracePointContext) -> i32 {
    match try_inet_sock_set_state(&ctx) {
        Ok(()) => 0,
        Err(e) => {
            debug!(&ctx, "inet_sock_set_state: read error {}", e);
            count(Counter::ReadErrors, 1);
            0
        }
    }
}

fn try_inet_sock_set_state(ctx: &RawTracePointContext) -> Result<(), i64> {
    let sock: u64 = ctx.arg(0);
    // SAFETY: the value is copied out.
    let Some(owner) = (unsafe { KNOWN_SOCKS.get(&sock) }).copied() else {
        return Ok(());
    };
    let (oldstate, newstate): (i32, i32) = (ctx.arg(1), ctx.arg(2));
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
    let (tgid, conn) = (owner.tgid, owner.tls_conn);
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
        tls_conn: conn,
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

#[raw_tracepoint(tracepoint = "tcp_retransmit_skb")]
fn tcp_retransmit_skb(ctx: RawTracePointContext) -> i32 {
    match try_tcp_retransmit_skb(&ctx) {
        Ok(()) => 0,
        Err(_) => {
            count(Counter::ReadErrors, 1);
            0
        }
    }
}

fn try_tcp_retransmit_skb(ctx: &RawTracePointContext) -> Result<(), i64> {
    let sock: u64 = ctx.arg(0);
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
