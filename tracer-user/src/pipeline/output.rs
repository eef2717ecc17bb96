//! What the pipeline reports: one JSON line per event (documented in
//! docs/events.md). Every line has `kind` and `ts` (Unix epoch ns). Only
//! metadata: no header values other than the user-agent and content type,
//! no object contents, no etcd values.

use serde::Serialize;

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
        /// `absent`, `zero` or `exact`.
        resource_version_kind: &'static str,
        resource_version_match: Option<String>,
        allow_watch_bookmarks: bool,
        send_initial_events: Option<bool>,
        timeout_seconds: Option<i64>,
        label_selector: Option<String>,
        field_selector: Option<String>,
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
        resource: String,
        namespace: String,
        name: String,
        event_type: String,
        object_kind: String,
        resource_version: String,
        /// Status code of an ERROR event (410: too old resourceVersion).
        error_code: Option<i32>,
        initial_events_end: bool,
        bytes: u64,
        t_first_byte: u64,
        t_last_byte: u64,
    },
    StreamEnd {
        ts: u64,
        conn: u64,
        stream: u32,
        /// `end_stream`, `rst_stream`, `goaway`, `connection_closed`,
        /// `evicted`.
        how: &'static str,
        code: Option<u32>,
        /// Which side ended it: `client` or `server`.
        by: Option<&'static str>,
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
        direction: &'static str,
        offset: u64,
        len: u64,
    },
    SocketStall {
        ts: u64,
        conn: Option<u64>,
        pid: u32,
        fd: i32,
        /// `send_buffer_full` or `peer_zero_window`.
        cause: &'static str,
        start: u64,
        duration_ns: u64,
    },
    WindowStall {
        ts: u64,
        conn: u64,
        /// `connection` or `stream`.
        scope: &'static str,
        stream: Option<u32>,
        sender: &'static str,
        start: u64,
        duration_ns: u64,
        open_streams: Vec<u32>,
    },
    HpackKnown {
        ts: u64,
        conn: u64,
        direction: &'static str,
    },
}

/// The traced process's role on a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Server,
    Client,
}
