//! The table of the targets' TCP sockets, fed with socket records.

use std::net::IpAddr;

use foldhash::{HashMap, HashMapExt as _};

use tracer_common::record::{
    Retransmit, SockAnchor, SockRecv, SockSend, SockState, TcpAck, TcpSample,
};

use super::{
    acks::{AckTracker, Acked},
    stalls::{SocketStall, StallState},
};

const AF_INET: u16 = 2;
const TCP_CLOSE: i32 = 7;
/// Unacknowledged sends remembered per socket.
const PENDING_SENDS: usize = 4096;

/// What is known about one socket.
#[derive(Debug)]
pub struct SocketInfo {
    pub sock: u64,
    pub tgid: u32,
    /// The fd it was last used through (-1 if never seen in a syscall).
    pub fd: i32,
    pub local: Option<(IpAddr, u16)>,
    pub peer: Option<(IpAddr, u16)>,
    pub first_seen_ns: u64,
    pub last_seen_ns: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub retransmits: u64,
    /// Latest TCP sample (srtt, windows, cwnd).
    pub last_sample: Option<TcpSample>,
    /// Latest ACK number seen.
    pub last_ack: Option<u32>,
    /// `write_seq` after the latest send.
    pub write_seq: Option<u32>,
    stalls: StallState,
    acks: AckTracker,
}

impl SocketInfo {
    /// Bytes written but not yet acknowledged by the peer: the send queue
    /// plus what is in flight.
    pub fn unacked_bytes(&self) -> Option<u32> {
        let unacked = self.write_seq?.wrapping_sub(self.last_ack?);
        // An ack past the last send seen means sends went unseen (the
        // write_seq is stale): unknown, not four gigabytes.
        (unacked < 1 << 31).then_some(unacked)
    }

    /// Stall episodes open now, with their kind and start.
    pub fn open_stalls(&self) -> impl Iterator<Item = (super::StallKind, u64)> + '_ {
        self.stalls.open_since().into_iter().flatten()
    }
}

/// What happened to a socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SocketEvent {
    /// First record of a socket.
    Opened {
        sock: u64,
        tgid: u32,
        fd: i32,
        ts_ns: u64,
    },
    /// A stall episode ended.
    Stall {
        sock: u64,
        tgid: u32,
        fd: i32,
        stall: SocketStall,
    },
    /// A send was fully acknowledged.
    Acked { sock: u64, acked: Acked },
    /// The socket closed (or was evicted, or the capture ended).
    Closed { sock: u64, ts_ns: u64 },
}

/// Sockets by kernel address, at most `capacity`; when full, the socket
/// idle the longest is evicted and counted.
#[derive(Debug)]
pub struct Sockets {
    table: HashMap<u64, SocketInfo>,
    capacity: usize,
    evicted: u64,
    /// Sockets with a stall ended and waiting out its quiet period (in
    /// order: the output does not depend on a hash seed).
    settling: std::collections::BTreeSet<u64>,
}

impl Sockets {
    pub fn new(capacity: usize) -> Self {
        Self {
            table: HashMap::new(),
            capacity: capacity.max(1),
            evicted: 0,
            settling: std::collections::BTreeSet::new(),
        }
    }

    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    pub fn get(&self, sock: u64) -> Option<&SocketInfo> {
        self.table.get(&sock)
    }

    pub fn iter(&self) -> impl Iterator<Item = &SocketInfo> {
        self.table.values()
    }

    fn entry(
        &mut self,
        sock: u64,
        tgid: u32,
        fd: i32,
        ts: u64,
        out: &mut Vec<SocketEvent>,
    ) -> &mut SocketInfo {
        if !self.table.contains_key(&sock) {
            if self.table.len() >= self.capacity
                && let Some(idle) = self
                    .table
                    .values()
                    .min_by_key(|s| s.last_seen_ns)
                    .map(|s| s.sock)
            {
                self.table.remove(&idle);
                self.evicted += 1;
                out.push(SocketEvent::Closed {
                    sock: idle,
                    ts_ns: ts,
                });
            }
            out.push(SocketEvent::Opened {
                sock,
                tgid,
                fd,
                ts_ns: ts,
            });
            self.table.insert(
                sock,
                SocketInfo {
                    sock,
                    tgid,
                    fd,
                    local: None,
                    peer: None,
                    first_seen_ns: ts,
                    last_seen_ns: ts,
                    bytes_sent: 0,
                    bytes_received: 0,
                    retransmits: 0,
                    last_sample: None,
                    last_ack: None,
                    write_seq: None,
                    stalls: StallState::default(),
                    acks: AckTracker::new(PENDING_SENDS),
                },
            );
        }
        let info = self.table.get_mut(&sock).expect("inserted above");
        info.last_seen_ns = ts;
        if fd >= 0 {
            info.fd = fd;
        }
        info
    }

    pub fn on_send(&mut self, r: &SockSend, out: &mut Vec<SocketEvent>) {
        let ts = r.header.ts_ns;
        let info = self.entry(r.sock, r.header.tgid, r.fd, ts, out);
        if r.ret > 0 {
            info.bytes_sent += r.ret as u64;
            info.write_seq = Some(r.write_seq);
            info.acks.on_send(r.write_seq, ts);
        }
        let (tgid, fd) = (info.tgid, info.fd);
        let mut ended = Vec::new();
        info.stalls.on_send(r.ret, ts, &mut ended);
        if info.stalls.settling() {
            self.settling.insert(r.sock);
        }
        out.extend(ended.into_iter().map(|stall| SocketEvent::Stall {
            sock: r.sock,
            tgid,
            fd,
            stall,
        }));
    }

    /// Stall episodes that have lasted [`super::MIN_STALL_NS`] as of `ts`
    /// and were not announced yet: on `sock`, or (`None`) on every socket
    /// with one. Each is `(sock, kind, start)`.
    pub fn due_stall_starts(
        &mut self,
        sock: Option<u64>,
        ts: u64,
        out: &mut Vec<(u64, super::StallKind, u64)>,
    ) {
        let mut announce = |sock: u64, info: &mut SocketInfo| {
            out.extend(
                info.stalls
                    .announce(ts)
                    .into_iter()
                    .flatten()
                    .map(|(kind, start)| (sock, kind, start)),
            );
        };
        match sock {
            // Every record of a socket comes here: no allocation.
            Some(sock) => {
                if let Some(info) = self.table.get_mut(&sock) {
                    announce(sock, info);
                }
            }
            None => {
                for &sock in &self.settling {
                    if let Some(info) = self.table.get_mut(&sock) {
                        announce(sock, info);
                    }
                }
            }
        }
    }

    /// Stalls whose quiet period is over as of `ts` (on the records'
    /// clock), on sockets that saw nothing since they ended.
    pub fn poll_stalls(&mut self, ts: u64, out: &mut Vec<SocketEvent>) {
        if self.settling.is_empty() {
            return;
        }
        let socks: Vec<u64> = self.settling.iter().copied().collect();
        for sock in socks {
            let Some(info) = self.table.get_mut(&sock) else {
                self.settling.remove(&sock);
                continue;
            };
            let mut ended = Vec::new();
            info.stalls.poll(ts, &mut ended);
            if !info.stalls.settling() {
                self.settling.remove(&sock);
            }
            let (tgid, fd) = (info.tgid, info.fd);
            out.extend(ended.into_iter().map(|stall| SocketEvent::Stall {
                sock,
                tgid,
                fd,
                stall,
            }));
        }
    }

    /// Bytes written through a socket reached the kernel without a send
    /// record of their own (a Go TLS Write's records, told by its chunk or
    /// its `TlsSent`): the socket's `write_seq` is now `write_seq`.
    pub fn on_written(
        &mut self,
        sock: u64,
        tgid: u32,
        write_seq: u32,
        ts: u64,
        out: &mut Vec<SocketEvent>,
    ) {
        let info = self.entry(sock, tgid, -1, ts, out);
        if let Some(before) = info.write_seq {
            info.bytes_sent += u64::from(write_seq.wrapping_sub(before));
        }
        info.write_seq = Some(write_seq);
        info.acks.on_send(write_seq, ts);
    }

    /// A socket that existed before attach. It has no kernel address yet
    /// (the probes give one when it is used), so it is keyed by a value no
    /// kernel pointer takes: its inode in the low half, all-ones above.
    pub fn on_anchor(&mut self, r: &SockAnchor, out: &mut Vec<SocketEvent>) {
        let key = anchor_key(r.inode);
        let info = self.entry(key, r.header.tgid, r.fd, r.header.ts_ns, out);
        info.local = Some((address(r.family, &r.saddr), r.sport));
        info.peer = Some((address(r.family, &r.daddr), r.dport));
        info.bytes_sent = r.bytes_sent;
        info.bytes_received = r.bytes_received;
    }

    pub fn on_recv(&mut self, r: &SockRecv, out: &mut Vec<SocketEvent>) {
        let info = self.entry(r.sock, r.header.tgid, r.fd, r.header.ts_ns, out);
        if r.ret > 0 {
            info.bytes_received += r.ret as u64;
        }
    }

    pub fn on_sample(&mut self, r: &TcpSample, out: &mut Vec<SocketEvent>) {
        let ts = r.header.ts_ns;
        let info = self.entry(r.sock, r.header.tgid, r.fd, ts, out);
        if info.local.is_none() {
            info.local = Some((address(r.family, &r.saddr), r.sport));
            info.peer = Some((address(r.family, &r.daddr), r.dport));
        }
        info.last_sample = Some(*r);
        self.ack(r.sock, r.ack_seq, r.window, ts, out);
    }

    /// A segment that advanced the ACK or changed the window, in compact
    /// form (see [`TcpAck`]).
    pub fn on_ack(&mut self, r: &TcpAck, out: &mut Vec<SocketEvent>) {
        self.entry(r.sock, r.header.tgid, -1, r.header.ts_ns, out);
        self.ack(r.sock, r.ack_seq, r.window, r.header.ts_ns, out);
    }

    fn ack(&mut self, sock: u64, ack_seq: u32, window: u16, ts: u64, out: &mut Vec<SocketEvent>) {
        let Some(info) = self.table.get_mut(&sock) else {
            return;
        };
        info.last_ack = Some(ack_seq);
        let mut acked = Vec::new();
        info.acks.on_ack(ack_seq, ts, &mut acked);
        let (tgid, fd) = (info.tgid, info.fd);
        let mut ended = Vec::new();
        info.stalls.on_window(window, ts, &mut ended);
        if info.stalls.settling() {
            self.settling.insert(sock);
        }
        out.extend(
            acked
                .into_iter()
                .map(|acked| SocketEvent::Acked { sock, acked }),
        );
        out.extend(ended.into_iter().map(|stall| SocketEvent::Stall {
            sock,
            tgid,
            fd,
            stall,
        }));
    }

    pub fn on_retransmit(&mut self, r: &Retransmit, out: &mut Vec<SocketEvent>) {
        let info = self.entry(r.sock, r.header.tgid, -1, r.header.ts_ns, out);
        info.retransmits += 1;
    }

    pub fn on_state(&mut self, r: &SockState, out: &mut Vec<SocketEvent>) {
        if r.newstate == TCP_CLOSE {
            self.close(r.sock, r.header.ts_ns, out);
        }
    }

    /// Ends a socket: open stalls end now.
    pub fn close(&mut self, sock: u64, ts: u64, out: &mut Vec<SocketEvent>) {
        if let Some(mut info) = self.table.remove(&sock) {
            for stall in info.stalls.close(ts) {
                out.push(SocketEvent::Stall {
                    sock,
                    tgid: info.tgid,
                    fd: info.fd,
                    stall,
                });
            }
            out.push(SocketEvent::Closed { sock, ts_ns: ts });
        }
    }

    /// Ends every socket (end of capture).
    pub fn close_all(&mut self, ts: u64, out: &mut Vec<SocketEvent>) {
        let socks: Vec<u64> = self.table.keys().copied().collect();
        for sock in socks {
            self.close(sock, ts, out);
        }
    }
}

/// Table key of an anchored socket, until the probes name it.
pub(crate) fn anchor_key(inode: u32) -> u64 {
    0xffff_ffff_0000_0000 | u64::from(inode)
}

fn address(family: u16, raw: &[u8; 16]) -> IpAddr {
    if family == AF_INET {
        IpAddr::from([raw[0], raw[1], raw[2], raw[3]])
    } else {
        IpAddr::from(*raw)
    }
}

#[cfg(test)]
mod tests {
    use tracer_common::record::{RecordHeader, RecordKind};

    use super::*;
    use crate::conn::StallKind;

    fn header(kind: RecordKind, ts: u64) -> RecordHeader {
        RecordHeader {
            ts_ns: ts,
            kind: kind as u16,
            _pad0: 0,
            tgid: 9,
            tid: 9,
            _pad1: 0,
        }
    }

    fn send(ts: u64, ret: i32, write_seq: u32) -> SockSend {
        SockSend {
            header: header(RecordKind::SockSend, ts),
            sock: 0xabc,
            ret,
            family: 2,
            protocol: 6,
            fd: 7,
            write_seq,
            requested: 0,
            _pad0: 0,
        }
    }

    fn sample(ts: u64, ack: u32, window: u16) -> TcpSample {
        TcpSample {
            header: header(RecordKind::TcpSample, ts),
            sock: 0xabc,
            sock_cookie: 1,
            fd: 7,
            ack_seq: ack,
            window,
            family: 2,
            sport: 443,
            dport: 50000,
            snd_una: 0,
            snd_nxt: 0,
            snd_wnd: 0,
            snd_cwnd: 10,
            srtt_us: 50,
            rcv_wnd: 0,
            data_len: 0,
            _pad0: 0,
            saddr: [127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            daddr: [127, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        }
    }

    #[test]
    fn a_socket_accumulates_bytes_stalls_and_acks() {
        let mut sockets = Sockets::new(8);
        let mut out = Vec::new();
        const MS: u64 = 1_000_000;
        sockets.on_send(&send(10 * MS, 1000, 2000), &mut out);
        sockets.on_send(&send(20 * MS, -11, 0), &mut out);
        sockets.on_sample(&sample(25 * MS, 1500, 0), &mut out);
        sockets.on_sample(&sample(60 * MS, 2000, 100), &mut out);
        sockets.on_send(&send(70 * MS, 500, 2500), &mut out);
        // Over once their quiet period passed, the socket silent since.
        sockets.poll_stalls(70 * MS + crate::conn::QUIET_NS, &mut out);
        let info = sockets.get(0xabc).unwrap();
        assert_eq!(info.bytes_sent, 1500);
        assert_eq!(info.peer, Some(("127.0.0.2".parse().unwrap(), 50000)));
        assert_eq!(info.unacked_bytes(), Some(500));
        let stalls: Vec<_> = out
            .iter()
            .filter_map(|e| match e {
                SocketEvent::Stall { stall, .. } => {
                    Some((stall.kind, stall.start_ns, stall.end_ns))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            stalls,
            vec![
                (StallKind::SendBufferFull, 20 * MS, 70 * MS),
                (StallKind::PeerZeroWindow, 25 * MS, 60 * MS),
            ]
        );
        assert!(out.contains(&SocketEvent::Acked {
            sock: 0xabc,
            acked: Acked {
                end_seq: 2000,
                sent_ns: 10 * MS,
                acked_ns: 60 * MS
            }
        }));
    }

    #[test]
    fn the_table_is_bounded_and_counts_evictions() {
        let mut sockets = Sockets::new(1);
        let mut out = Vec::new();
        sockets.on_send(&send(1, 10, 10), &mut out);
        let mut other = send(2, 10, 10);
        other.sock = 0xdef;
        sockets.on_send(&other, &mut out);
        assert_eq!(sockets.evicted(), 1);
        assert!(out.contains(&SocketEvent::Closed {
            sock: 0xabc,
            ts_ns: 2
        }));
    }
}
