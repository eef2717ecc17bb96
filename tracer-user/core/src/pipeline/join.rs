//! The ordered half of the pipeline: what joins connections to their
//! sockets and to each other, fed every record in order with what its
//! socket's decoding produced (see `decoding`). It numbers connections,
//! matches acks and sends to events, reads etcd revisions for every watch,
//! and attributes stalls.

use std::collections::BTreeSet;

use foldhash::{HashMap, HashMapExt as _};

use tracer_common::record::{ChunkSource, Direction};

use super::{
    TimelinePart,
    attribution::{Attribution, FdTarget},
    conn_table::ConnKey,
    decoding::{Batch, Decoded},
    kinds::StallCause,
    late_sources::{LateSourceStats, LateSources},
    output::{OutputEvent, Role},
    timeline::{TimelineConfig, TimelineStats, Timelines},
    window_stalls::WindowStalls,
};
use crate::{
    capture::{ConnId, Record, StreamId, unfixed},
    conn::{SocketEvent, Sockets, StallKind, anchor_key},
};

/// How often events past their ack deadline are looked for (on the
/// records' clock: a tick record comes about every 100 ms when nothing
/// else does).
const EXPIRE_PERIOD_NS: u64 = 100_000_000;
/// How often a busy connection's TCP state is reported.
const CONN_SAMPLE_PERIOD_NS: u64 = 1_000_000_000;

/// Counters of the join.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct JoinStats {
    pub(crate) evicted_connections: u64,
    /// Names (fds, TLS conns, anchors) the attribution index forgot.
    pub(crate) evicted_names: u64,
    /// Lost bytes of streams that are no connection (no `gap` line).
    pub(crate) lost_outside_connections: u64,
    pub(crate) tls_writes_unsent: u64,
    pub(crate) timeline: TimelineStats,
    pub(crate) late_sources: LateSourceStats,
    /// HTTP/2 window stall episodes too brief to be stalls.
    pub(crate) brief_window_stalls: u64,
}

/// The join.
pub(crate) struct Join {
    offset_ns: i128,
    sockets: Sockets,
    comms: HashMap<u32, String>,
    /// Which connection a record belongs to.
    index: Attribution,
    timelines: Timelines,
    last_expire_ns: u64,
    stats: JoinStats,
    scratch: Vec<OutputEvent>,
    /// `route`'s output, kept between calls: a fresh vector of events per
    /// record is a large allocation each time.
    routed: Vec<OutputEvent>,
    /// What an evicted connection still held (events waiting for their
    /// ack, stall reports settling): written with the record that evicted
    /// it, never dropped.
    released: Vec<OutputEvent>,
    /// Reused by [`Join::stall_starts`]: `(sock, kind, start)`.
    due_stall_starts: Vec<(u64, StallKind, u64)>,
    /// Outbound connections whose decoders hold bytes they could not
    /// decode yet, with the Unix time of the oldest: etcd events may hide
    /// there that watch events already written came from. Bounded by the
    /// connection table: an entry goes when its connection closes or is
    /// evicted, or decodes all it holds.
    undecoded: HashMap<u64, u64>,
    /// Watch events that wait for such a source.
    late: LateSources,
    /// HTTP/2 window stalls, gathered into one per fault.
    window_stalls: WindowStalls,
    /// Sockets with an announced socket stall going on: their peers may
    /// send nothing meanwhile, so no TCP sample reports their send queue
    /// (see [`Join::stalled_samples`]). Bounded by the socket table: an
    /// entry goes when its stall ends (a socket's close ends it) or its
    /// socket leaves the table. Ordered: the output does not depend on a
    /// hash seed.
    stalled: BTreeSet<u64>,
}

impl Join {
    /// `offset_ns`: Unix time minus the records' monotonic clock.
    pub(crate) fn new(
        max_sockets: usize,
        max_connections: usize,
        timeline: TimelineConfig,
        offset_ns: i128,
    ) -> Self {
        Self {
            offset_ns,
            sockets: Sockets::new(max_sockets),
            comms: HashMap::new(),
            index: Attribution::new(max_connections, max_sockets),
            timelines: Timelines::new(timeline),
            last_expire_ns: 0,
            stats: JoinStats::default(),
            scratch: Vec::new(),
            routed: Vec::new(),
            released: Vec::new(),
            due_stall_starts: Vec::new(),
            undecoded: HashMap::new(),
            late: LateSources::default(),
            window_stalls: WindowStalls::default(),
            stalled: BTreeSet::new(),
        }
    }

    pub(crate) fn stats(&self) -> JoinStats {
        JoinStats {
            timeline: self.timelines.stats(),
            evicted_names: self.index.stats().evicted_names,
            late_sources: self.late.stats(),
            brief_window_stalls: self.window_stalls.brief(),
            ..self.stats
        }
    }

    pub(crate) fn sockets(&self) -> &Sockets {
        &self.sockets
    }

    fn unix(&self, ns: u64) -> u64 {
        (i128::from(ns) + self.offset_ns).max(0) as u64
    }

    /// One record, with what its socket's decoding made of it (`decoded`,
    /// consumed); output goes to `emit`, except watch events that wait for
    /// a source still undecoded (see `late_sources`).
    pub(crate) fn on_record(
        &mut self,
        record: &Record<'_>,
        decoded: &mut Batch,
        emit: &mut impl FnMut(OutputEvent),
    ) {
        let horizon = self.source_horizon();
        if horizon.is_none() && self.late.is_empty() {
            // The steady state: nothing waits, nothing will.
            return self.join_record(record, decoded, emit);
        }
        let mut late = std::mem::take(&mut self.late);
        self.join_record(record, decoded, &mut |e| late.offer(e, horizon, emit));
        let now = self.unix(record.header().ts_ns);
        late.release(self.source_horizon(), now, emit);
        self.late = late;
    }

    /// The input ended: the watch events waiting for a late source go on,
    /// and window stalls that ended are final.
    pub(crate) fn finish(&mut self, emit: &mut impl FnMut(OutputEvent)) {
        self.window_stalls.flush(emit);
        self.late.flush(emit);
    }

    /// The Unix time of the oldest bytes an outbound connection holds
    /// undecoded, if any does.
    fn source_horizon(&self) -> Option<u64> {
        if self.undecoded.is_empty() {
            return None;
        }
        self.undecoded.values().copied().min()
    }

    /// A connection's undecoded bytes since `since` (Unix ns), or none.
    fn note_undecoded(&mut self, conn: u64, since: Option<u64>) {
        match since {
            Some(t) => {
                self.undecoded.insert(conn, t);
            }
            None if !self.undecoded.is_empty() => {
                self.undecoded.remove(&conn);
            }
            None => {}
        }
    }

    fn join_record(
        &mut self,
        record: &Record<'_>,
        decoded: &mut Batch,
        emit: &mut impl FnMut(OutputEvent),
    ) {
        let mut socket_events = Vec::new();
        let ts_ns = record.header().ts_ns;
        self.on_decoded(decoded, emit);
        match record {
            Record::Chunk(..) => {}
            Record::SockClose(c) => self.index.on_close(c.header.tgid, c.fd, c.tls_conn, c.sock),
            Record::TlsSent(r) => {
                let mut events = Vec::new();
                self.sockets
                    .on_written(r.sock, r.header.tgid, r.write_seq, ts_ns, &mut events);
                socket_events.extend(events);
                let key = ConnId {
                    tgid: r.header.tgid,
                    source: ChunkSource::GoTls as u8,
                    key: r.sock,
                };
                self.on_write_sent(key, ts_ns, r.write_seq, emit);
            }
            Record::TlsBind(b) => {
                self.index
                    .on_tls_bind(b.header.tgid, b.tls_conn, b.sock, b.fd);
                self.on_tls_bind(b, emit);
            }
            Record::ProcessInfo(p) => {
                self.comms.insert(p.header.tgid, unfixed(&p.comm));
            }
            // Only time passing: the expiry below.
            Record::Tick(_) => {}
            Record::SockSend(r) => {
                self.index.on_fd(r.header.tgid, r.fd, r.sock);
                self.sockets.on_send(r, &mut socket_events);
                self.stall_starts(Some(r.sock), ts_ns, emit);
            }
            Record::SockRecv(r) => {
                self.index.on_fd(r.header.tgid, r.fd, r.sock);
                self.sockets.on_recv(r, &mut socket_events);
            }
            Record::TcpSample(r) => {
                self.index.on_fd(r.header.tgid, r.fd, r.sock);
                self.sockets.on_sample(r, &mut socket_events);
                self.stall_starts(Some(r.sock), ts_ns, emit);
                self.on_tcp_ack(r.sock, r.ack_seq, ts_ns, Some(r), emit);
            }
            Record::TcpAck(r) => {
                self.sockets.on_ack(r, &mut socket_events);
                self.stall_starts(Some(r.sock), ts_ns, emit);
                self.on_tcp_ack(r.sock, r.ack_seq, ts_ns, None, emit);
            }
            Record::SockState(r) => self.sockets.on_state(r, &mut socket_events),
            Record::Retransmit(r) => self.sockets.on_retransmit(r, &mut socket_events),
            Record::SockAnchor(r) => {
                self.sockets.on_anchor(r, &mut socket_events);
                self.index
                    .on_anchor(r.header.tgid, r.fd, anchor_key(r.inode), r.state, r.sport);
            }
        }
        self.on_socket_events(socket_events, emit);
        self.released.drain(..).for_each(&mut *emit);
        if !self.window_stalls.is_empty() {
            let now = self.unix(ts_ns);
            self.window_stalls.poll(now, emit);
        }
        if ts_ns.saturating_sub(self.last_expire_ns) >= EXPIRE_PERIOD_NS {
            self.last_expire_ns = ts_ns;
            // Stalls that lasted, and whose quiet period passed, on
            // sockets gone silent.
            self.stall_starts(None, ts_ns, emit);
            self.stalled_samples(ts_ns, emit);
            let mut ended = Vec::new();
            self.sockets.poll_stalls(ts_ns, &mut ended);
            self.on_socket_events(ended, emit);
            let now = self.unix(ts_ns);
            self.timelines.expire(now, &mut self.scratch);
            self.emit_settled(emit);
        }
    }

    /// What a record's decoding produced, item by item with its events.
    fn on_decoded(&mut self, decoded: &mut Batch, emit: &mut impl FnMut(OutputEvent)) {
        let mut events = decoded.events.drain(..);
        for item in decoded.items.drain(..) {
            let produced = match item {
                Decoded::Data { events: n, .. }
                | Decoded::Gap { events: n, .. }
                | Decoded::End { events: n, .. } => n,
                Decoded::Start { .. } | Decoded::Ciphertext { .. } => 0,
            };
            self.scratch.extend(events.by_ref().take(produced));
            self.on_item(item, &decoded.resources, emit);
            // Events of a connection the table no longer holds.
            self.scratch.clear();
        }
    }

    /// What the socket table reported: its ended stalls are attributed.
    fn on_socket_events(&mut self, events: Vec<SocketEvent>, emit: &mut impl FnMut(OutputEvent)) {
        for event in events {
            if let SocketEvent::Stall {
                sock,
                tgid,
                fd,
                stall,
            } = event
            {
                self.on_socket_stall(sock, tgid, fd, &stall, emit);
            }
        }
    }

    /// Once a second while a socket stall goes on, the stalled
    /// connection's send queue from its sends and its last ack (a
    /// `conn_sample` without the TCP figures only a sample has): a client
    /// that stopped reading acks nothing, and its queue would otherwise
    /// show what it was before the stall.
    fn stalled_samples(&mut self, ts_ns: u64, emit: &mut impl FnMut(OutputEvent)) {
        if self.stalled.is_empty() {
            return;
        }
        let ts = self.unix(ts_ns);
        let sockets = &self.sockets;
        self.stalled.retain(|&sock| sockets.get(sock).is_some());
        for &sock in &self.stalled {
            let Some(info) = self.sockets.get(sock) else {
                continue;
            };
            let Some(tracked) = self
                .index
                .conn_of_sock(info.tgid, sock)
                .and_then(|k| self.index.conns.get_mut(&k))
            else {
                continue;
            };
            if ts_ns.saturating_sub(tracked.last_sample_ns) < CONN_SAMPLE_PERIOD_NS {
                continue;
            }
            tracked.last_sample_ns = ts_ns;
            emit(OutputEvent::ConnSample {
                ts,
                conn: tracked.id,
                bytes_out: tracked.bytes_out,
                bytes_in: tracked.bytes_in,
                unacked_bytes: info.unacked_bytes(),
                srtt_ns: None,
                snd_wnd: None,
                snd_cwnd: None,
                rcv_wnd: None,
            });
        }
    }

    fn on_socket_stall(
        &mut self,
        sock: u64,
        tgid: u32,
        fd: i32,
        stall: &crate::conn::SocketStall,
        emit: &mut impl FnMut(OutputEvent),
    ) {
        // Still stalled if its other kind goes on.
        if self
            .sockets
            .get(sock)
            .is_none_or(|s| s.open_stalls().next().is_none())
        {
            self.stalled.remove(&sock);
        }
        let (start, end) = (self.unix(stall.start_ns), self.unix(stall.end_ns));
        let tracked = self
            .index
            .conn_of_sock(tgid, sock)
            .and_then(|k| self.index.conns.get(&k));
        let peer = self
            .sockets
            .get(sock)
            .and_then(|s| s.peer)
            .map(|(ip, port)| format!("{ip}:{port}"));
        let report = OutputEvent::SocketStall {
            ts: end,
            conn: tracked.map(|t| t.id),
            pid: tgid,
            fd,
            cause: match stall.kind {
                StallKind::SendBufferFull => StallCause::SendBufferFull,
                StallKind::PeerZeroWindow => StallCause::PeerZeroWindow,
            },
            start,
            duration_ns: stall.duration_ns(),
            flaps: stall.flaps,
            client: tracked.and_then(|t| t.client.as_deref().map(str::to_owned)),
            peer,
            held: Vec::new(),
            filled_by: None,
        };
        match tracked.map(|t| t.id) {
            // Reported once it has settled (see `timeline`).
            Some(conn) => {
                self.timelines
                    .on_socket_stall(conn, start, end, report, &mut self.scratch);
                self.emit_settled(emit);
            }
            None => emit(report),
        }
    }

    /// Writes what the timelines released.
    fn emit_settled(&mut self, emit: &mut impl FnMut(OutputEvent)) {
        self.scratch.drain(..).for_each(emit);
    }

    /// Acks for the connection's pending events, and (from a full sample)
    /// its TCP state once a second.
    fn on_tcp_ack(
        &mut self,
        sock: u64,
        ack_seq: u32,
        ts_ns: u64,
        sample: Option<&tracer_common::record::TcpSample>,
        emit: &mut impl FnMut(OutputEvent),
    ) {
        let Some(info) = self.sockets.get(sock) else {
            return;
        };
        let (tgid, unacked) = (info.tgid, info.unacked_bytes());
        let endpoints = info.local.zip(info.peer);
        let Some(key) = self.index.conn_of_sock(tgid, sock) else {
            return;
        };
        let ts = self.unix(ts_ns);
        let Some(tracked) = self.index.conns.get_mut(&key) else {
            return;
        };
        let conn = tracked.id;
        if !tracked.addressed
            && let Some(((lip, lport), (pip, pport))) = endpoints
        {
            tracked.addressed = true;
            emit(OutputEvent::ConnAddress {
                ts,
                conn,
                local: format!("{lip}:{lport}"),
                peer: format!("{pip}:{pport}"),
            });
        }
        let sample = sample
            .filter(|_| ts_ns.saturating_sub(tracked.last_sample_ns) >= CONN_SAMPLE_PERIOD_NS)
            .map(|r| {
                tracked.last_sample_ns = ts_ns;
                OutputEvent::ConnSample {
                    ts,
                    conn,
                    bytes_out: tracked.bytes_out,
                    bytes_in: tracked.bytes_in,
                    unacked_bytes: unacked,
                    srtt_ns: Some(u64::from(r.srtt_us) * 1_000),
                    snd_wnd: Some(r.snd_wnd),
                    snd_cwnd: Some(r.snd_cwnd),
                    rcv_wnd: Some(r.rcv_wnd),
                }
            });
        self.timelines.on_ack(conn, ack_seq, ts, &mut self.scratch);
        self.scratch.drain(..).for_each(&mut *emit);
        if let Some(sample) = sample {
            emit(sample);
        }
    }

    /// A Go TLS connection's latest Write reached the kernel at `ts_ns`,
    /// the socket's `write_seq` then being `write_seq`.
    fn on_write_sent(
        &mut self,
        key: ConnKey,
        ts_ns: u64,
        write_seq: u32,
        emit: &mut impl FnMut(OutputEvent),
    ) {
        let Some(tracked) = self.index.conns.get_mut(&key) else {
            return;
        };
        tracked.write_unsent = false;
        let id = tracked.id;
        let t = self.unix(ts_ns);
        self.timelines
            .on_sent(id, t, Some(write_seq), &mut self.scratch);
        self.scratch.drain(..).for_each(emit);
    }

    /// A Go TLS conn's socket became known (from its reads): the
    /// connection learns its fd, and ciphertext captured from the socket
    /// before it was known to carry TLS (a connection joined mid-way) was
    /// not a connection of its own.
    fn on_tls_bind(
        &mut self,
        b: &tracer_common::record::TlsBind,
        emit: &mut impl FnMut(OutputEvent),
    ) {
        let tgid = b.header.tgid;
        let key = ConnId {
            tgid,
            source: ChunkSource::GoTls as u8,
            key: b.sock,
        };
        if let Some(tracked) = self.index.conns.get_mut(&key)
            && b.fd >= 0
        {
            tracked.fd = Some(b.fd);
        }
        let ghost_key = ConnId {
            tgid,
            source: ChunkSource::Syscall as u8,
            key: b.sock,
        };
        if let Some(ghost) = self.index.conns.remove(&ghost_key) {
            let now = self.unix(b.header.ts_ns);
            self.window_stalls.on_close(ghost.id, now, emit);
            self.timelines.on_close(ghost.id, &mut self.scratch);
            self.note_undecoded(ghost.id, None);
            self.scratch.clear();
            if ghost.bytes_out + ghost.bytes_in > 0 {
                emit(OutputEvent::ConnClose {
                    ts: self.unix(b.header.ts_ns),
                    conn: ghost.id,
                    bytes_out: ghost.bytes_out,
                    bytes_in: ghost.bytes_in,
                });
            }
        }
    }

    /// A `stall_start` for each stall episode that has lasted
    /// [`crate::conn::MIN_STALL_NS`] by `ts_ns`, on `sock` or (`None`) on
    /// any socket.
    fn stall_starts(&mut self, sock: Option<u64>, ts_ns: u64, emit: &mut impl FnMut(OutputEvent)) {
        let mut due = std::mem::take(&mut self.due_stall_starts);
        self.sockets.due_stall_starts(sock, ts_ns, &mut due);
        for (sock, kind, start) in due.drain(..) {
            let Some(info) = self.sockets.get(sock) else {
                continue;
            };
            let conn = self
                .index
                .conn_of_sock(info.tgid, sock)
                .and_then(|k| self.index.conns.get(&k))
                .map(|t| t.id);
            if let Some(conn) = conn {
                self.timelines.on_socket_stall_start(conn, self.unix(start));
            }
            self.stalled.insert(sock);
            emit(OutputEvent::StallStart {
                ts: self.unix(start),
                conn,
                cause: match kind {
                    StallKind::SendBufferFull => StallCause::SendBufferFull,
                    StallKind::PeerZeroWindow => StallCause::PeerZeroWindow,
                },
                stream: None,
            });
        }
        self.due_stall_starts = due;
    }

    /// Routes what a connection's decoder produced: watch events wait in
    /// the timelines, etcd events feed them, stalls get attributed.
    /// `sent_now`: the bytes just decoded are already in the kernel
    /// (cleartext egress), at this time and `write_seq`.
    fn route(
        &mut self,
        key: ConnKey,
        sent_now: Option<(u64, Option<u32>)>,
        resources: &[(u32, Option<String>)],
        emit: &mut impl FnMut(OutputEvent),
    ) {
        let mut produced = std::mem::take(&mut self.scratch);
        let mut ready = std::mem::take(&mut self.routed);
        for event in produced.drain(..) {
            let Some(tracked) = self.index.conns.get_mut(&key) else {
                emit(event);
                continue;
            };
            let conn = tracked.id;
            let mut event = event;
            if let OutputEvent::WatchEvent { client, .. } = &mut event {
                client.clone_from(&tracked.client);
            }
            match event {
                OutputEvent::WatchEvent {
                    direction: Direction::Egress,
                    ..
                } => {
                    self.timelines
                        .on_watch_event(conn, event, sent_now, &mut ready);
                }
                mut received @ OutputEvent::WatchEvent { .. } => {
                    // Received by a traced client: the apiserver's side of
                    // its timeline is not visible here.
                    if let OutputEvent::WatchEvent { timeline, .. } = &mut received {
                        timeline.missing = vec![
                            TimelinePart::TSource,
                            TimelinePart::TSent,
                            TimelinePart::TAcked,
                        ];
                    }
                    ready.push(received);
                }
                OutputEvent::EtcdEvent {
                    revision,
                    t_received,
                    ..
                } => {
                    self.timelines.on_etcd(revision, t_received);
                    ready.push(event);
                }
                OutputEvent::Request {
                    ref user_agent,
                    watch,
                    stream,
                    ts,
                    ..
                } => {
                    if let Some(ua) = user_agent {
                        tracked.client = Some(super::client_name(ua).into());
                    }
                    if watch {
                        self.timelines.on_stream_open(conn, stream, ts);
                    }
                    ready.push(event);
                }
                OutputEvent::StreamEnd { stream, .. } => {
                    self.timelines.on_stream_end(conn, stream);
                    ready.push(event);
                }
                mut stall @ OutputEvent::WindowStall { .. } => {
                    if let OutputEvent::WindowStall {
                        ts,
                        stream,
                        sender,
                        start,
                        ref open_streams,
                        ref mut held,
                        ..
                    } = stall
                        // Only the traced process's own sends are its delay.
                        && sender == tracked.role
                    {
                        *held =
                            self.timelines
                                .on_window_stall(conn, start, ts, stream, open_streams);
                        for d in held.iter_mut() {
                            d.resource = resources
                                .iter()
                                .find(|(s, _)| *s == d.stream)
                                .and_then(|(_, r)| r.clone());
                        }
                    }
                    ready.extend(self.window_stalls.on_end(stall));
                }
                start @ OutputEvent::StallStart { .. } => {
                    ready.extend(self.window_stalls.on_start(start));
                }
                other => ready.push(other),
            }
        }
        self.scratch = produced;
        ready.drain(..).for_each(emit);
        self.routed = ready;
    }

    /// One item of a record's decoding; the events its decoder wrote for
    /// it are in `scratch`, not yet numbered.
    fn on_item(
        &mut self,
        item: Decoded,
        resources: &[(u32, Option<String>)],
        emit: &mut impl FnMut(OutputEvent),
    ) {
        match item {
            Decoded::Start { id, ts_ns } => {
                if !self.index.conns.contains(&id.conn) {
                    self.open(id, ts_ns);
                }
            }
            Decoded::Ciphertext { key, full } => {
                self.index.conns.remove(&key);
                if full {
                    self.stats.evicted_connections += 1;
                }
            }
            Decoded::Data {
                id,
                offset: _,
                ts_ns,
                len,
                fd,
                tls_conn,
                call_start,
                sent,
                role,
                role_guessed,
                undecoded_since,
                events: _,
            } => {
                let key = id.conn;
                let syscall = id.source() == Some(ChunkSource::Syscall);
                if tls_conn != 0 {
                    self.index.on_tls_bind(key.tgid, tls_conn, key.key, fd);
                } else {
                    self.index.on_fd(key.tgid, fd, key.key);
                }
                if !self.index.conns.contains(&key) {
                    self.open(id, ts_ns);
                }
                let egress = id.direction() == Some(Direction::Egress);
                let tracked = self.index.conns.get_mut(&key).expect("opened above");
                tracked.last_ns = ts_ns;
                if fd >= 0 {
                    tracked.fd = Some(fd);
                }
                if egress {
                    tracked.bytes_out += len;
                } else {
                    tracked.bytes_in += len;
                }
                let first = tracked.bytes_out + tracked.bytes_in == len;
                let (conn, pid) = (tracked.id, tracked.pid);
                let open = first.then(|| {
                    let open = self.conn_open(conn, pid, &id, ts_ns, role, role_guessed);
                    let tracked = self.index.conns.get_mut(&key).expect("opened above");
                    if let OutputEvent::ConnOpen { role: known, .. } = open {
                        tracked.role = known;
                        tracked.flip_roles = known != role;
                    }
                    open
                });
                self.number(&key);
                let tracked = self.index.conns.get_mut(&key).expect("opened above");
                if egress && !syscall && call_start {
                    // A Write begins: one before it never reported sent
                    // never will (the kernel's record count did not add up).
                    let unsent = std::mem::replace(&mut tracked.write_unsent, sent.is_none());
                    if unsent {
                        self.stats.tls_writes_unsent += 1;
                        let mut released = Vec::new();
                        self.timelines.on_unsent(conn, &mut released);
                        released.into_iter().for_each(&mut *emit);
                    }
                }
                if let Some(open) = open {
                    if let OutputEvent::ConnOpen { peer: Some(_), .. } = open
                        && let Some(t) = self.index.conns.get_mut(&key)
                    {
                        t.addressed = true;
                    }
                    emit(open);
                }
                // The call's bytes are all in the kernel now (a cleartext
                // send; a Go TLS Write whose records its capturing send
                // sent whole), at this write_seq.
                let sent_now = if syscall {
                    // Captured at its send: in the kernel already.
                    let seq = sent.or_else(|| self.sockets.get(key.key).and_then(|s| s.write_seq));
                    egress.then(|| (self.unix(ts_ns), seq))
                } else {
                    sent.filter(|_| egress)
                        .map(|seq| (self.unix(ts_ns), Some(seq)))
                };
                if egress && let Some(seq) = sent {
                    if !syscall {
                        let mut events = Vec::new();
                        self.sockets
                            .on_written(key.key, key.tgid, seq, ts_ns, &mut events);
                        self.on_socket_events(events, emit);
                    }
                    if let Some(t) = self.index.conns.get_mut(&key) {
                        t.write_unsent = false;
                    }
                }
                if undecoded_since.is_some() || !self.undecoded.is_empty() {
                    let outbound = self
                        .index
                        .conns
                        .get(&key)
                        .is_some_and(|t| t.role == Role::Client);
                    let since = undecoded_since.filter(|_| outbound).map(|t| self.unix(t));
                    self.note_undecoded(conn, since);
                }
                self.route(key, sent_now, resources, emit);
            }
            Decoded::Gap {
                id,
                offset,
                len,
                ts_ns,
                events: _,
            } => {
                let key = id.conn;
                let egress = id.direction() == Some(Direction::Egress);
                let Some(conn) = self.number(&key) else {
                    // Bytes of no connection (a TLS socket's ciphertext):
                    // counted, so the kernel's lost bytes still add up.
                    self.stats.lost_outside_connections += len;
                    return;
                };
                emit(OutputEvent::Gap {
                    ts: self.unix(ts_ns),
                    conn,
                    direction: if egress {
                        Direction::Egress
                    } else {
                        Direction::Ingress
                    },
                    offset,
                    len,
                });
                self.route(key, None, resources, emit);
            }
            Decoded::End { id, ts_ns, .. } => {
                let key = id.conn;
                // One direction's end is the connection's end: the kernel
                // ends both streams of an fd together.
                let Some(conn) = self.number(&key) else {
                    return;
                };
                self.route(key, None, resources, emit);
                let now = self.unix(ts_ns);
                self.window_stalls.on_close(conn, now, emit);
                self.timelines.on_close(conn, &mut self.scratch);
                self.note_undecoded(conn, None);
                self.emit_settled(emit);
                let tracked = self.index.conns.remove(&key).expect("present above");
                emit(OutputEvent::ConnClose {
                    ts: self.unix(ts_ns),
                    conn: tracked.id,
                    bytes_out: tracked.bytes_out,
                    bytes_in: tracked.bytes_in,
                });
            }
        }
    }

    /// Numbers the events the connection's decoder wrote (in `scratch`),
    /// with its sides named right; returns the number, `None` if the
    /// connection is not tracked.
    fn number(&mut self, key: &ConnKey) -> Option<u64> {
        let tracked = self.index.conns.get(key)?;
        for event in &mut self.scratch {
            event.set_conn(tracked.id);
            if tracked.flip_roles {
                event.flip_roles();
            }
        }
        Some(tracked.id)
    }

    fn open(&mut self, id: StreamId, ts_ns: u64) {
        if let Some(evicted) = self.index.conns.open(id.conn, ts_ns) {
            let now = self.unix(ts_ns);
            let released = &mut self.released;
            self.window_stalls
                .on_close(evicted.id, now, &mut |e| released.push(e));
            self.timelines.on_close(evicted.id, &mut self.released);
            self.note_undecoded(evicted.id, None);
            self.stats.evicted_connections += 1;
        }
    }

    /// The `conn_open` line of a connection whose decoder says the process
    /// is `role` (`guessed`: joined mid-way, a guess, then the socket's
    /// local port decides: one the process listened on at attach means
    /// accepted).
    fn conn_open(
        &self,
        conn: u64,
        pid: u32,
        id: &StreamId,
        ts_ns: u64,
        role: Role,
        guessed: bool,
    ) -> OutputEvent {
        let tracked = self.index.conns.get(&id.conn);
        let socket = self.sockets.get(id.conn.key);
        let fd = tracked
            .and_then(|t| t.fd)
            .or_else(|| socket.map(|s| s.fd).filter(|&fd| fd >= 0));
        // A socket that existed before attach is known by its fd (from
        // sock_diag) until the probes name it: the first socket seen on
        // that fd adopted its addresses.
        let tgid = id.conn.tgid;
        let anchored = || {
            let anchor = self.index.adopted_anchor(id.conn.key).or_else(|| {
                match self.index.fd(tgid, fd?)? {
                    FdTarget::Anchor(anchor) => Some(anchor),
                    FdTarget::Socket(_) => None,
                }
            })?;
            self.sockets.get(anchor)
        };
        let socket = socket.filter(|s| s.local.is_some()).or_else(anchored);
        let role = match socket.and_then(|s| s.local) {
            Some((_, port)) if guessed => match self.index.accepted(tgid, port) {
                Some(true) => Role::Server,
                Some(false) => Role::Client,
                None => role,
            },
            _ => role,
        };
        OutputEvent::ConnOpen {
            ts: self.unix(ts_ns),
            conn,
            pid,
            comm: self.comms.get(&pid).cloned().unwrap_or_default(),
            fd,
            local: socket
                .and_then(|s| s.local)
                .map(|(ip, port)| format!("{ip}:{port}")),
            peer: socket
                .and_then(|s| s.peer)
                .map(|(ip, port)| format!("{ip}:{port}")),
            tls: id.source() == Some(ChunkSource::GoTls),
            role,
            role_inferred: guessed,
        }
    }
}
