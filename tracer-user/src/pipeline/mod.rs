//! Everything after the capture, as one pure function of the record
//! stream: byte streams, sockets, HTTP/2, watch events and etcd watch
//! responses, turned into [`OutputEvent`]s. The live agent and `replay` feed
//! it the same records, so a recording reproduces a run exactly.

mod connection;
mod http1;
pub mod output;

use std::collections::HashMap;

use tracer_common::record::{ChunkSource, Direction};

use crate::{
    capture::{Record, StreamEvent, StreamId, Streams, decode, unfixed},
    conn::{SocketEvent, Sockets, StallKind},
};
use connection::Connection;
pub use connection::resource_of_kind;
pub use output::{OutputEvent, Role, StreamDelay, Timeline};

/// Bounds of the pipeline's tables.
#[derive(Clone, Copy, Debug)]
pub struct PipelineConfig {
    pub max_streams: usize,
    pub max_sockets: usize,
    pub max_connections: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            max_streams: 1 << 16,
            max_sockets: 1 << 16,
            max_connections: 1 << 15,
        }
    }
}

/// Counters of what the pipeline could not use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PipelineStats {
    pub records: u64,
    pub undecodable_records: u64,
    pub evicted_connections: u64,
}

/// A connection's identity: a Go TLS conn, or an fd (syscall payload).
type ConnKey = (u32, i32, u64);

struct Tracked {
    id: u64,
    pid: u32,
    connection: Connection,
    last_ns: u64,
}

/// The pipeline.
pub struct Pipeline {
    config: PipelineConfig,
    offset_ns: i128,
    streams: Streams,
    sockets: Sockets,
    comms: HashMap<u32, String>,
    tls_fds: HashMap<(u32, u64), i32>,
    conns: HashMap<ConnKey, Tracked>,
    next_id: u64,
    stats: PipelineStats,
    scratch: Vec<OutputEvent>,
}

impl Pipeline {
    /// `offset_ns`: Unix time minus the records' monotonic clock.
    pub fn new(config: PipelineConfig, offset_ns: i128) -> Self {
        Self {
            config,
            offset_ns,
            streams: Streams::new(config.max_streams),
            sockets: Sockets::new(config.max_sockets),
            comms: HashMap::new(),
            tls_fds: HashMap::new(),
            conns: HashMap::new(),
            next_id: 1,
            stats: PipelineStats::default(),
            scratch: Vec::new(),
        }
    }

    pub fn stats(&self) -> PipelineStats {
        self.stats
    }

    pub fn sockets(&self) -> &Sockets {
        &self.sockets
    }

    pub fn stream_stats(&self) -> crate::capture::StreamStats {
        self.streams.stats()
    }

    fn unix(&self, ns: u64) -> u64 {
        (i128::from(ns) + self.offset_ns).max(0) as u64
    }

    /// Feeds one record's bytes; output goes to `emit`.
    pub fn on_record(&mut self, bytes: &[u8], emit: &mut impl FnMut(OutputEvent)) {
        self.stats.records += 1;
        let Ok(record) = decode(bytes) else {
            self.stats.undecodable_records += 1;
            return;
        };
        let mut socket_events = Vec::new();
        match record {
            Record::Chunk(header, data) => {
                let mut events = Vec::new();
                self.streams.on_chunk(&header, &data, &mut events);
                for event in events {
                    self.on_stream_event(event, emit);
                }
            }
            Record::FdClose(close) => {
                let mut events = Vec::new();
                self.streams.on_close(&close, &mut events);
                for event in events {
                    self.on_stream_event(event, emit);
                }
            }
            Record::TlsBind(b) => {
                self.tls_fds.insert((b.header.tgid, b.conn), b.fd);
            }
            Record::ProcessInfo(p) => {
                self.comms.insert(p.header.tgid, unfixed(&p.comm));
            }
            Record::SockSend(r) => self.sockets.on_send(&r, &mut socket_events),
            Record::SockRecv(r) => self.sockets.on_recv(&r, &mut socket_events),
            Record::TcpSample(r) => self.sockets.on_sample(&r, &mut socket_events),
            Record::SockState(r) => self.sockets.on_state(&r, &mut socket_events),
            Record::Retransmit(r) => self.sockets.on_retransmit(&r, &mut socket_events),
            Record::SockAnchor(r) => self.sockets.on_anchor(&r, &mut socket_events),
        }
        for event in socket_events {
            if let SocketEvent::Stall {
                tgid, fd, stall, ..
            } = event
            {
                let conn = self.conn_of_fd(tgid, fd);
                emit(OutputEvent::SocketStall {
                    ts: self.unix(stall.end_ns),
                    conn,
                    pid: tgid,
                    fd,
                    cause: match stall.kind {
                        StallKind::SendBufferFull => "send_buffer_full",
                        StallKind::PeerZeroWindow => "peer_zero_window",
                    },
                    start: self.unix(stall.start_ns),
                    duration_ns: stall.duration_ns(),
                    client: None,
                    peer: None,
                    held: Vec::new(),
                    filled_by: None,
                });
            }
        }
    }

    /// The connection id of a process's fd, if one carries captured bytes.
    fn conn_of_fd(&self, tgid: u32, fd: i32) -> Option<u64> {
        self.conns.iter().find_map(|(key, t)| {
            let this_fd = if key.2 != 0 {
                self.tls_fds.get(&(key.0, key.2)).copied()
            } else {
                Some(key.1)
            };
            (key.0 == tgid && this_fd == Some(fd)).then_some(t.id)
        })
    }

    fn key(id: &StreamId) -> ConnKey {
        (id.tgid, id.fd, id.conn)
    }

    fn on_stream_event(&mut self, event: StreamEvent<'_>, emit: &mut impl FnMut(OutputEvent)) {
        match event {
            StreamEvent::Start { id, ts_ns } => {
                let key = Self::key(&id);
                if !self.conns.contains_key(&key) {
                    self.open(id, ts_ns);
                }
            }
            StreamEvent::Data {
                id,
                offset,
                ts_ns,
                bytes,
            } => {
                let key = Self::key(&id);
                if !self.conns.contains_key(&key) {
                    self.open(id, ts_ns);
                }
                let egress = id.direction() == Some(Direction::Egress);
                let tracked = self.conns.get_mut(&key).expect("opened above");
                tracked.last_ns = ts_ns;
                tracked
                    .connection
                    .on_data(egress, offset, ts_ns, bytes, &mut self.scratch);
                let role = tracked.connection.role();
                let (id_num, pid) = (tracked.id, tracked.pid);
                let first = tracked.connection.bytes_out + tracked.connection.bytes_in
                    == bytes.len() as u64;
                if first {
                    emit(self.conn_open(id_num, pid, &id, ts_ns, role));
                }
                self.scratch.drain(..).for_each(&mut *emit);
            }
            StreamEvent::Gap {
                id,
                offset,
                len,
                ts_ns,
            } => {
                let key = Self::key(&id);
                let egress = id.direction() == Some(Direction::Egress);
                let Some(tracked) = self.conns.get_mut(&key) else {
                    return;
                };
                tracked
                    .connection
                    .on_gap(egress, ts_ns, len, &mut self.scratch);
                let conn = tracked.id;
                emit(OutputEvent::Gap {
                    ts: self.unix(ts_ns),
                    conn,
                    direction: if egress { "out" } else { "in" },
                    offset,
                    len,
                });
                self.scratch.drain(..).for_each(&mut *emit);
            }
            StreamEvent::End { id, ts_ns, .. } => {
                let key = Self::key(&id);
                // One direction's end is the connection's end: the kernel
                // ends both streams of an fd together.
                let Some(mut tracked) = self.conns.remove(&key) else {
                    return;
                };
                tracked.connection.close(ts_ns, &mut self.scratch);
                self.scratch.drain(..).for_each(&mut *emit);
                emit(OutputEvent::ConnClose {
                    ts: self.unix(ts_ns),
                    conn: tracked.id,
                    bytes_out: tracked.connection.bytes_out,
                    bytes_in: tracked.connection.bytes_in,
                });
            }
        }
    }

    fn open(&mut self, id: StreamId, ts_ns: u64) {
        if self.conns.len() >= self.config.max_connections
            && let Some(idle) = self
                .conns
                .iter()
                .min_by_key(|(_, t)| t.last_ns)
                .map(|(k, _)| *k)
        {
            self.conns.remove(&idle);
            self.stats.evicted_connections += 1;
        }
        let tracked = Tracked {
            id: self.next_id,
            pid: id.tgid,
            connection: Connection::new(self.next_id, self.offset_ns),
            last_ns: ts_ns,
        };
        self.next_id += 1;
        self.conns.insert(Self::key(&id), tracked);
    }

    fn conn_open(&self, conn: u64, pid: u32, id: &StreamId, ts_ns: u64, role: Role) -> OutputEvent {
        let fd = if id.conn != 0 {
            self.tls_fds.get(&(id.tgid, id.conn)).copied()
        } else {
            Some(id.fd)
        };
        let socket = fd.and_then(|fd| {
            self.sockets
                .iter()
                .find(|s| s.tgid == id.tgid && s.fd == fd)
        });
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
        }
    }
}
