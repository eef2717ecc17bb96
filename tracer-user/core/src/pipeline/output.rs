//! What the pipeline reports: one JSON line per event (documented in
//! docs/events.md). Every line has `kind` and `ts` (Unix epoch ns). Only
//! metadata: no header values other than the user-agent and content type,
//! no object contents, no etcd values.

use serde::Serialize;
use tracer_common::record::Direction;

use super::kinds::{
    Ending, EtcdResult, ResourceVersionKind, StallCause, StallScope, TimelinePart,
    UndecodableLayer, UndecodableReason, serialize_direction, serialize_opt_direction,
};
use super::list_response::{ListEncoding, ListResponse};
use crate::{
    http2,
    watch::{ApiRequest, MetaString, ResourceTarget, ResourceVersion, ShardRange, Verb},
};

/// One output line.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OutputEvent {
    ConnOpen {
        ts: u64,
        conn: u64,
        pid: u32,
        comm: String,
        /// The socket fd, when known.
        fd: Option<i32>,
        /// Local and peer `ip:port`, when known.
        local: Option<String>,
        peer: Option<String>,
        /// Plaintext from Go crypto/tls (true) or from socket syscalls.
        tls: bool,
        /// This process's role on the connection, as far as it is known.
        role: Role,
        /// Joined mid-way: the role is inferred from evidence (whether the
        /// local port is one the process listens on), not seen.
        role_inferred: bool,
    },
    ConnClose {
        ts: u64,
        conn: u64,
        /// Bytes of plaintext captured each way.
        bytes_out: u64,
        bytes_in: u64,
    },
    Request {
        ts: u64,
        conn: u64,
        stream: u32,
        method: String,
        path: String,
        verb: String,
        resource: Option<String>,
        namespace: Option<String>,
        name: Option<String>,
        watch: bool,
        resource_version: Option<String>,
        resource_version_kind: ResourceVersionKind,
        resource_version_match: Option<String>,
        allow_watch_bookmarks: bool,
        send_initial_events: Option<bool>,
        timeout_seconds: Option<i64>,
        label_selector: Option<String>,
        field_selector: Option<String>,
        /// `shardSelector` verbatim, and its range when it has the
        /// `shardRange(field,'start','end')` form.
        shard_selector: Option<String>,
        shard_range: Option<ShardRange>,
        user_agent: Option<String>,
        content_type: Option<String>,
        /// Header fields that referred to HPACK entries from before attach.
        unknown_headers: usize,
    },
    WatchEvent {
        ts: u64,
        conn: u64,
        stream: u32,
        /// From the request when it was seen, else from the object's kind.
        resource: MetaString,
        /// The connection's client: the program in the user-agent of a
        /// request seen on it (`null` before one was).
        client: Option<MetaString>,
        namespace: MetaString,
        name: MetaString,
        event_type: MetaString,
        object_kind: MetaString,
        resource_version: MetaString,
        /// Status code of an ERROR event (410: too old resourceVersion).
        error_code: Option<i32>,
        initial_events_end: bool,
        bytes: u64,
        t_first_byte: u64,
        t_last_byte: u64,
        /// `out`: the traced process sent it (the apiserver side); `in`: it
        /// received it (a traced client).
        #[serde(serialize_with = "serialize_direction")]
        direction: Direction,
        /// The event's timeline (docs/events.md, "Timeline").
        #[serde(flatten)]
        timeline: Timeline,
    },
    StreamEnd {
        ts: u64,
        conn: u64,
        stream: u32,
        how: Ending,
        code: Option<u32>,
        /// Which side ended it.
        by: Option<Role>,
    },
    EtcdEvent {
        ts: u64,
        conn: u64,
        stream: u32,
        watch_id: i64,
        key: String,
        revision: i64,
        /// `PUT` or `DELETE`.
        event_type: String,
        value_len: u64,
        t_received: u64,
    },
    Gap {
        ts: u64,
        conn: u64,
        /// `out` (written by the traced process) or `in`.
        #[serde(serialize_with = "serialize_direction")]
        direction: Direction,
        offset: u64,
        len: u64,
    },
    SocketStall {
        ts: u64,
        conn: Option<u64>,
        pid: u32,
        fd: i32,
        /// `send_buffer_full` or `peer_zero_window`.
        cause: StallCause,
        start: u64,
        duration_ns: u64,
        /// Times the stall ended and began again within 250 ms (a window
        /// flapping open while the client's buffer drained): one fault,
        /// one stall.
        flaps: u32,
        /// The client on the connection: its user-agent's program name.
        client: Option<String>,
        peer: Option<String>,
        /// The streams whose events waited in this stall, and how long.
        held: Vec<StreamDelay>,
        /// The stream with the most bytes not yet acknowledged when the stall
        /// began: whose data filled the buffer.
        filled_by: Option<u32>,
    },
    WindowStall {
        ts: u64,
        conn: u64,
        scope: StallScope,
        stream: Option<u32>,
        /// The side whose sending the window held.
        sender: Role,
        start: u64,
        duration_ns: u64,
        /// Times the window was exhausted again within the quiet period
        /// after an end: one fault, counted on its one stall.
        flaps: u32,
        open_streams: Vec<u32>,
        /// The streams whose data waited in this stall, and how long (a
        /// stream-level stall holds only its own stream).
        held: Vec<StreamDelay>,
    },
    /// The addresses of a connection whose `conn_open` could not give them
    /// (accepted after attach: its socket's addresses come with its first
    /// TCP sample, after its first bytes).
    ConnAddress {
        ts: u64,
        conn: u64,
        local: String,
        peer: String,
    },
    /// A stall began (its `socket_stall` or `window_stall` line follows
    /// when it ends): lets a live view show it while it lasts.
    StallStart {
        ts: u64,
        conn: Option<u64>,
        cause: StallCause,
        stream: Option<u32>,
    },
    /// A connection's TCP state, at most once a second while it is busy.
    ConnSample {
        ts: u64,
        conn: u64,
        /// Plaintext bytes captured each way since the connection opened.
        bytes_out: u64,
        bytes_in: u64,
        /// Bytes sent but not yet acknowledged by the peer.
        unacked_bytes: Option<u32>,
        srtt_ns: Option<u64>,
        snd_wnd: Option<u32>,
        snd_cwnd: Option<u32>,
        rcv_wnd: Option<u32>,
    },
    /// SETTINGS a side of an HTTP/2 connection sent.
    Settings {
        ts: u64,
        conn: u64,
        sender: Role,
        max_concurrent_streams: Option<u32>,
        initial_window_size: Option<u32>,
    },
    HpackKnown {
        ts: u64,
        conn: u64,
        direction: http2::Flow,
    },
    /// A watch-list stream (`sendInitialEvents=true`) sent the BOOKMARK
    /// that ends its initial events.
    WatchListSynced {
        ts: u64,
        conn: u64,
        stream: u32,
        resource: String,
        /// Initial events before it, and their framed bytes.
        initial_events: u64,
        initial_bytes: u64,
        /// From the request to that bookmark's last byte.
        duration_ns: u64,
    },
    /// A mutating request (create, update, patch, delete) the traced
    /// apiserver served (docs/events.md, `write`).
    Write {
        /// Its response's end.
        ts: u64,
        conn: u64,
        stream: u32,
        method: String,
        verb: String,
        resource: Option<String>,
        namespace: Option<String>,
        /// From the path, else (a create) from the etcd key written.
        name: Option<String>,
        /// The writer: its user-agent's program.
        client: Option<String>,
        status: Option<u16>,
        /// Request HEADERS read; the etcd response with the new revision
        /// read; the response HEADERS written.
        t_request: u64,
        t_committed: Option<u64>,
        t_responded: Option<u64>,
        /// The object's new revision (resourceVersion).
        revision: Option<i64>,
        /// The etcd call that committed it: its round trip.
        etcd_rtt_ns: Option<u64>,
        /// etcd calls on its key while it was served, and those that
        /// failed their compare (optimistic-concurrency retries).
        etcd_calls: u32,
        etcd_conflicts: u32,
    },
    /// Every watcher a write's revision reached (docs/events.md,
    /// `write_fanout`): written once its events can no longer come.
    WriteFanout {
        ts: u64,
        revision: i64,
        resource: Option<String>,
        writer: String,
        t_committed: u64,
        /// Watch events of the revision served, and the latest ack among
        /// them (`None` if none was acked).
        watchers: u32,
        t_last_acked: Option<u64>,
        /// `t_last_acked - t_committed`.
        commit_to_last_ack_ns: Option<u64>,
        /// `t_source - t_committed` of its first watch event.
        etcd_watch_delay_ns: Option<i64>,
    },
    /// An etcd KV call of a traced process ended (docs/events.md,
    /// `etcd_request`): metadata only, never values.
    EtcdRequest {
        /// Its response read, else the stream's end.
        ts: u64,
        conn: u64,
        stream: u32,
        op: crate::etcd::KvOp,
        result: EtcdResult,
        /// The key (a Txn's compared key).
        key: Option<String>,
        /// A range of keys, not one.
        is_range: bool,
        /// A Txn's compare on the key's `mod_revision` (0: a create).
        compare_mod_revision: Option<i64>,
        /// The store's revision after the call: a write's new revision.
        revision: Option<i64>,
        /// A Txn's compare held.
        succeeded: Option<bool>,
        /// Key-values returned, a Range's count, keys deleted.
        kvs: u64,
        count: i64,
        deleted: i64,
        /// Bytes of the values written and read.
        value_bytes_sent: u64,
        value_bytes_received: u64,
        grpc_status: Option<u32>,
        /// Request HEADERS written; response message's last byte read; the
        /// round trip between them.
        t_request: u64,
        t_response: Option<u64>,
        rtt_ns: Option<u64>,
    },
    /// A LIST response ended (docs/events.md, `list_response`).
    ListResponse {
        /// Its last byte (the stream's end when that was not seen).
        ts: u64,
        conn: u64,
        stream: u32,
        resource: Option<String>,
        namespace: Option<String>,
        resource_version_kind: ResourceVersionKind,
        user_agent: Option<String>,
        /// The HTTP status, when the response HEADERS were read.
        status: Option<u16>,
        /// `json`, `protobuf`, `cbor` or `other`, `+gzip` when compressed.
        encoding: ListEncoding,
        /// Body bytes on the wire (compressed, when gzip), lost ones
        /// included.
        wire_bytes: u64,
        /// Body bytes decoded (inflated); `None` when not known (bytes
        /// lost, the response cut short, or not gzip though it said so).
        decoded_bytes: Option<u64>,
        /// Body bytes lost to gaps.
        lost_bytes: u64,
        /// The request was read, the response's first byte (its HEADERS)
        /// and last byte written.
        t_request: u64,
        t_first_byte: u64,
        t_last_byte: u64,
        /// `t_first_byte - t_request` and `t_last_byte - t_request`.
        first_byte_ns: u64,
        duration_ns: u64,
        /// Ended with END_STREAM and every byte was seen.
        complete: bool,
    },
    /// Bytes that could not be decoded: counted, never silent.
    Undecodable {
        ts: u64,
        /// `None` for a record that names no connection.
        conn: Option<u64>,
        /// The HTTP/2 stream, when the bytes were in one.
        stream: Option<u32>,
        layer: UndecodableLayer,
        reason: UndecodableReason,
        /// How many bytes.
        bytes: u64,
        /// The byte stream they were in (`out`: written by the traced
        /// process, `in`: read by it), and the offset in it where they were
        /// found (the end of the capture that showed them).
        #[serde(serialize_with = "serialize_opt_direction")]
        direction: Option<Direction>,
        stream_offset: Option<u64>,
    },
}

/// A side of a connection by its HTTP role: the traced process's role on
/// it (`conn_open`), or the side that sent something.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Server,
    Client,
}

impl Role {
    /// As the JSON lines spell it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Server => "server",
            Self::Client => "client",
        }
    }

    /// The other side.
    #[must_use]
    pub fn other(self) -> Self {
        match self {
            Self::Server => Self::Client,
            Self::Client => Self::Server,
        }
    }

    /// The side that sends in `direction`.
    #[must_use]
    pub fn sender(direction: http2::Flow) -> Self {
        match direction {
            http2::Flow::ClientToServer => Self::Client,
            http2::Flow::ServerToClient => Self::Server,
        }
    }
}

/// Where a watch event's time went. Times are Unix epoch ns; a part that
/// could not be measured is `None` and named in `missing`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Timeline {
    /// The traced process read the etcd watch response carrying this
    /// event's revision (the apiserver's etcd connection must be traced).
    pub t_source: Option<u64>,
    /// The kernel accepted the event's last byte (the Go TLS Write that
    /// carried it returned, or the send syscall did).
    pub t_sent: Option<u64>,
    /// The peer's TCP ack covered the event's last byte.
    pub t_acked: Option<u64>,
    /// ApiserverTimeSpan: `t_first_byte - t_source`.
    pub apiserver_time_span_ns: Option<u64>,
    /// `t_sent - t_last_byte`: waiting to enter the socket.
    pub socket_queue_ns: Option<u64>,
    /// `t_acked - t_sent`: the kernel's queue, the wire and the client.
    pub wire_client_ns: Option<u64>,
    /// Time in `[t_source or t_first_byte, t_sent]` the event's stream was
    /// held by an HTTP/2 window stall (connection or stream level).
    pub flow_control_wait_ns: u64,
    /// Time in the same span its connection's send buffer was full.
    pub socket_buffer_wait_ns: u64,
    /// The parts that could not be measured.
    pub missing: Vec<TimelinePart>,
    /// The write that made this revision, when the traced apiserver served
    /// it (docs/events.md, "From write to watcher"); absent otherwise.
    #[serde(flatten)]
    pub write: Option<WriteJoin>,
    /// Its revision was read from etcd before its watch was opened: the
    /// watch cache replayed it (initial events, or a resumed
    /// resourceVersion). Its ApiserverTimeSpan would be its age, not a
    /// delivery delay, so it is not reported.
    pub replayed: bool,
    /// Written without `t_acked` because the client's ack did not come
    /// within `--ack-deadline`: how long it had waited then, from its
    /// source (or first byte). A lower bound of its delivery delay, so a
    /// client that stops reading counts as late before its acks return.
    pub unacked_after_ns: Option<u64>,
}

/// A watch event's write: who wrote its revision and when etcd committed
/// it (all absent when the write was not seen).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WriteJoin {
    /// The etcd response carrying the revision was read (the write's
    /// `t_committed`).
    pub t_committed: u64,
    /// The writer's client (user-agent program).
    pub writer: String,
    /// `t_source - t_committed`: etcd's commit until the apiserver read
    /// its watch (negative when the watch was read first).
    pub etcd_watch_delay_ns: Option<i64>,
    /// `t_first_byte - t_committed`.
    pub commit_to_send_ns: i64,
    /// `t_acked - t_request` of the write: from the writer's request to
    /// this watcher's ack.
    pub write_to_ack_ns: Option<u64>,
}

/// A stream held up by a stall.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StreamDelay {
    pub stream: u32,
    pub resource: Option<String>,
    /// How long its data waited because of the stall.
    pub delay_ns: u64,
}

impl OutputEvent {
    /// When it happened (Unix ns): every line has `ts`.
    #[must_use]
    pub fn ts(&self) -> u64 {
        match self {
            OutputEvent::ConnOpen { ts, .. }
            | OutputEvent::ConnClose { ts, .. }
            | OutputEvent::Request { ts, .. }
            | OutputEvent::WatchEvent { ts, .. }
            | OutputEvent::StreamEnd { ts, .. }
            | OutputEvent::EtcdEvent { ts, .. }
            | OutputEvent::Gap { ts, .. }
            | OutputEvent::SocketStall { ts, .. }
            | OutputEvent::WindowStall { ts, .. }
            | OutputEvent::ConnSample { ts, .. }
            | OutputEvent::ConnAddress { ts, .. }
            | OutputEvent::StallStart { ts, .. }
            | OutputEvent::Settings { ts, .. }
            | OutputEvent::HpackKnown { ts, .. }
            | OutputEvent::WatchListSynced { ts, .. }
            | OutputEvent::ListResponse { ts, .. }
            | OutputEvent::EtcdRequest { ts, .. }
            | OutputEvent::Write { ts, .. }
            | OutputEvent::WriteFanout { ts, .. }
            | OutputEvent::Undecodable { ts, .. } => *ts,
        }
    }

    /// The event as the other side would be named: for a connection whose
    /// decoder guessed the process's role wrong (joined mid-way).
    pub(crate) fn flip_roles(&mut self) {
        match self {
            Self::Settings { sender, .. } | Self::WindowStall { sender, .. } => {
                *sender = sender.other();
            }
            Self::StreamEnd { by: Some(by), .. } => *by = by.other(),
            Self::HpackKnown { direction, .. } => *direction = direction.peer(),
            _ => {}
        }
    }

    /// Names the connection the event belongs to. A connection's decoder
    /// runs apart from the table that numbers connections (possibly on
    /// another thread), so its events are numbered when they are joined.
    pub(crate) fn set_conn(&mut self, id: u64) {
        match self {
            Self::ConnOpen { conn, .. }
            | Self::ConnClose { conn, .. }
            | Self::Request { conn, .. }
            | Self::WatchEvent { conn, .. }
            | Self::StreamEnd { conn, .. }
            | Self::EtcdEvent { conn, .. }
            | Self::Gap { conn, .. }
            | Self::WindowStall { conn, .. }
            | Self::ConnAddress { conn, .. }
            | Self::ConnSample { conn, .. }
            | Self::Settings { conn, .. }
            | Self::HpackKnown { conn, .. }
            | Self::WatchListSynced { conn, .. }
            | Self::ListResponse { conn, .. }
            | Self::EtcdRequest { conn, .. }
            | Self::Write { conn, .. } => *conn = id,
            Self::WriteFanout { .. } => {}
            Self::SocketStall { conn, .. }
            | Self::StallStart { conn, .. }
            | Self::Undecodable { conn, .. } => *conn = Some(id),
        }
    }

    /// The `watch_event` line of a decoded event on `stream`, with times
    /// moved to Unix ns by `offset_ns`; its timeline is filled later.
    pub(crate) fn watch_event(
        conn: u64,
        stream: u32,
        resource: MetaString,
        e: crate::watch::WatchEvent,
        offset_ns: i128,
        sent: bool,
    ) -> Self {
        let unix = |ns: u64| (i128::from(ns) + offset_ns).max(0) as u64;
        OutputEvent::WatchEvent {
            ts: unix(e.t_last_byte),
            conn,
            stream,
            resource,
            client: None,
            namespace: e.namespace,
            name: e.name,
            event_type: MetaString::from(e.event_type.as_str()),
            object_kind: e.object_kind,
            resource_version: e.resource_version,
            error_code: e.error_code,
            initial_events_end: e.initial_events_end,
            bytes: e.bytes,
            t_first_byte: unix(e.t_first_byte),
            t_last_byte: unix(e.t_last_byte),
            direction: if sent {
                Direction::Egress
            } else {
                Direction::Ingress
            },
            timeline: Timeline::default(),
        }
    }

    /// A sent watch event of a pod on conn 1, its timeline still empty.
    #[cfg(test)]
    pub(crate) fn test_watch_event(
        stream: u32,
        rv: &str,
        t_first: u64,
        t_last: u64,
        bytes: u64,
    ) -> Self {
        OutputEvent::WatchEvent {
            ts: t_last,
            conn: 1,
            stream,
            resource: "pods".into(),
            client: None,
            namespace: "ns".into(),
            name: "p".into(),
            event_type: "MODIFIED".into(),
            object_kind: "Pod".into(),
            resource_version: rv.into(),
            error_code: None,
            initial_events_end: false,
            bytes,
            t_first_byte: t_first,
            t_last_byte: t_last,
            direction: Direction::Egress,
            timeline: Timeline::default(),
        }
    }

    /// An etcd watch event of a pod's key, read at `t`.
    #[cfg(test)]
    pub(crate) fn test_etcd_event(revision: i64, t: u64) -> Self {
        OutputEvent::EtcdEvent {
            ts: t,
            conn: 2,
            stream: 1,
            watch_id: 0,
            key: "/registry/pods/ns/p".into(),
            revision,
            event_type: "PUT".into(),
            value_len: 10,
            t_received: t,
        }
    }

    /// The `etcd_request` line of a KV call on `stream` that ended at `ts`
    /// (records' clock), with times moved to Unix ns by `offset_ns`.
    pub(crate) fn etcd_request(
        conn: u64,
        stream: u32,
        call: &super::etcd_call::EtcdCall,
        ts: u64,
        offset_ns: i128,
    ) -> Self {
        let unix = |ns: u64| (i128::from(ns) + offset_ns).max(0) as u64;
        let request = call.request();
        let response = call.response();
        let op = call.op.unwrap_or(crate::etcd::KvOp::Range);
        let result = if call.failure().is_some() {
            EtcdResult::Undecodable
        } else if call.grpc_status.is_some_and(|s| s != 0) {
            EtcdResult::Error
        } else if let Some(r) = response {
            if op == crate::etcd::KvOp::Txn && r.succeeded != Some(true) {
                EtcdResult::Conflict
            } else {
                EtcdResult::Ok
            }
        } else {
            EtcdResult::Unanswered
        };
        let t_response = call.t_response.map(unix);
        OutputEvent::EtcdRequest {
            ts: t_response.unwrap_or_else(|| unix(ts)),
            conn,
            stream,
            op,
            result,
            key: request.map(|r| r.key.clone()),
            is_range: request.is_some_and(|r| r.is_range),
            compare_mod_revision: request.and_then(|r| r.compare_mod_revision),
            revision: response.map(|r| r.revision),
            succeeded: response.and_then(|r| r.succeeded),
            kvs: response.map_or(0, |r| r.kvs),
            count: response.map_or(0, |r| r.count),
            deleted: response.map_or(0, |r| r.deleted),
            value_bytes_sent: request.map_or(0, |r| r.value_bytes),
            value_bytes_received: response.map_or(0, |r| r.value_bytes),
            grpc_status: call.grpc_status,
            t_request: unix(call.t_request),
            t_response,
            rtt_ns: call.t_response.map(|t| t.saturating_sub(call.t_request)),
        }
    }

    /// The `list_response` line of a LIST on `stream` whose response
    /// ended (with END_STREAM: `ended`), with times moved to Unix ns by
    /// `offset_ns`.
    pub(crate) fn list_response(
        conn: u64,
        stream: u32,
        request: &ApiRequest,
        list: &ListResponse,
        ended: bool,
        offset_ns: i128,
    ) -> Self {
        let unix = |ns: u64| (i128::from(ns) + offset_ns).max(0) as u64;
        let target = request.target.as_ref();
        let t_request = unix(list.t_request);
        let t_first_byte = unix(list.t_first_byte);
        let t_last_byte = unix(list.t_last_byte);
        OutputEvent::ListResponse {
            ts: t_last_byte,
            conn,
            stream,
            resource: target.map(ResourceTarget::qualified),
            namespace: target.and_then(|t| t.namespace.clone()),
            resource_version_kind: ResourceVersionKind::of(&request.options.resource_version),
            user_agent: request.user_agent.clone(),
            status: list.status,
            encoding: list.encoding,
            wire_bytes: list.wire_bytes,
            decoded_bytes: list.decoded_bytes(ended),
            lost_bytes: list.lost_bytes,
            t_request,
            t_first_byte,
            t_last_byte,
            first_byte_ns: t_first_byte.saturating_sub(t_request),
            duration_ns: t_last_byte.saturating_sub(t_request),
            complete: list.whole(ended),
        }
    }

    /// The `request` line of an API request on `stream` (HTTP/2 stream id
    /// or HTTP/1.1 request number); `ts` in Unix ns.
    pub(crate) fn request(
        ts: u64,
        conn: u64,
        stream: u32,
        path: &str,
        request: &ApiRequest,
        unknown_headers: usize,
    ) -> Self {
        let target = request.target.as_ref();
        let options = &request.options;
        let rv_kind = ResourceVersionKind::of(&options.resource_version);
        let rv = match &options.resource_version {
            ResourceVersion::Absent => None,
            ResourceVersion::Zero => Some("0".to_owned()),
            ResourceVersion::Exact(v) => Some(v.clone()),
        };
        OutputEvent::Request {
            ts,
            conn,
            stream,
            method: request.method.clone(),
            path: path.to_owned(),
            verb: format!("{:?}", request.verb).to_lowercase(),
            resource: target.map(ResourceTarget::qualified),
            namespace: target.and_then(|t| t.namespace.clone()),
            name: target.and_then(|t| t.name.clone()),
            watch: request.verb == Verb::Watch,
            resource_version: rv,
            resource_version_kind: rv_kind,
            resource_version_match: options.resource_version_match.clone(),
            allow_watch_bookmarks: options.allow_watch_bookmarks,
            send_initial_events: options.send_initial_events,
            timeout_seconds: options.timeout_seconds,
            label_selector: options.label_selector.clone(),
            field_selector: options.field_selector.clone(),
            shard_selector: options.shard_selector.clone(),
            shard_range: options
                .shard_selector
                .as_deref()
                .and_then(ShardRange::parse),
            user_agent: request.user_agent.clone(),
            content_type: request.content_type.clone(),
            unknown_headers,
        }
    }
}
