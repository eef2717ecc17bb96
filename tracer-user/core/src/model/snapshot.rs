//! What the live view shows at one instant: plain data, computed by the
//! model from the event stream, rendered by `top`. Rates are over the last
//! 5 s (smoothed); "last minute" values are over a rolling 60 s window.

/// One refresh of the live view.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// Unix epoch ns of the newest event the model has seen.
    pub now: u64,
    pub totals: Totals,
    pub connections: Vec<ConnRow>,
    pub watches: Vec<WatchRow>,
    /// Newest first, bounded.
    pub stalls: Vec<StallRow>,
}

/// The header line.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Totals {
    pub events_per_s: f64,
    pub bytes_per_s: f64,
    pub connections: usize,
    pub watches: usize,
    /// P99 ApiserverTimeSpan over the last minute, when any event had one.
    pub apiserver_p99_ns: Option<u64>,
    /// Events with an ApiserverTimeSpan in the last minute.
    pub apiserver_events_last_min: u64,
    /// The reference objective: P99 over the last minute < 1 s.
    pub slo_met: Option<bool>,
    /// P99 delivery delay (`t_acked` − `t_source`, or − `t_first_byte`
    /// without a source time) of the served watch events of the last
    /// minute, and how many events it is over.
    pub delivery_p99: Option<Delay>,
    pub delivery_events_last_min: u64,
    /// The client whose P99 delivery delay over the last minute is the
    /// worst, with that P99.
    pub worst_client: Option<(String, Delay)>,
    /// Stalls that ended in the last minute (a count).
    pub stalls_last_min: u64,
    /// Their summed duration, ns.
    pub stall_ns_last_min: u64,
    /// Stalls going on now (a count).
    pub stalls_ongoing: usize,
    /// Bytes the capture lost (gaps) since start.
    pub lost_bytes: u64,
    pub lists_last_min: u64,
}

/// A P99 delivery delay over the last minute. `at_least`: some of its
/// events were not acknowledged within the ack deadline and count with how
/// long they had waited then, a lower bound: the true P99 may be higher.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Delay {
    pub ns: u64,
    pub at_least: bool,
}

/// A row of the connections tab.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConnRow {
    pub conn: u64,
    pub pid: u32,
    pub comm: String,
    pub peer: Option<String>,
    /// User-agent program name of the client (most recent request), if seen.
    pub client: Option<String>,
    pub tls: bool,
    /// Open HTTP/2 streams and, of them, watches.
    pub streams: usize,
    pub watches: usize,
    pub tx_bytes_per_s: f64,
    pub rx_bytes_per_s: f64,
    /// Bytes sent but not yet acknowledged (the send queue), when known.
    pub unacked_bytes: Option<u32>,
    pub srtt_ns: Option<u64>,
    /// Stall time on this connection over the last minute.
    pub stall_ns_last_min: u64,
    /// The cause of a stall going on now on it.
    pub stall_ongoing: Option<String>,
    /// The worst P99 delivery delay of its watches over the last minute.
    pub p99_delay: Option<Delay>,
    /// The server's SETTINGS_MAX_CONCURRENT_STREAMS (how many streams the
    /// client may open on it), when seen.
    pub max_concurrent_streams: Option<u32>,
}

/// A row of the watches tab.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WatchRow {
    pub conn: u64,
    pub stream: u32,
    pub resource: String,
    pub namespace: String,
    pub client: Option<String>,
    /// `absent`, `zero`, `exact`, or `unknown` (opened before attach).
    pub resource_version_kind: String,
    pub events_per_s: f64,
    pub bytes_per_s: f64,
    pub last_resource_version: String,
    /// P99 of the events' ApiserverTimeSpan over the last minute.
    pub p99_apiserver_ns: Option<u64>,
    /// P99 of the events' end-to-end delay (t_source or t_first_byte to
    /// t_acked) over the last minute.
    pub p99_delay: Option<Delay>,
    /// Who wrote its last event whose write the traced apiserver served,
    /// and that write's etcd commit to watch read (`etcd_watch_delay_ns`).
    pub last_writer: Option<String>,
    pub last_etcd_watch_delay_ns: Option<i64>,
}

/// A line of the stall log.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StallRow {
    /// When it ended (Unix epoch ns); for an ongoing stall, now.
    pub ts: u64,
    /// Still going on: `duration_ns` is how long so far, `held` and
    /// `filled_by` come when it ends.
    pub ongoing: bool,
    pub conn: Option<u64>,
    /// `send_buffer_full`, `peer_zero_window`, `connection_window`,
    /// `stream_window`.
    pub cause: String,
    pub stream: Option<u32>,
    pub duration_ns: u64,
    /// Times a socket stall ended and began again within its quiet period:
    /// one fault, so one stall with its flaps counted.
    pub flaps: u32,
    pub client: Option<String>,
    pub peer: Option<String>,
    /// Streams held and the delay each suffered.
    pub held: Vec<(u32, u64)>,
    pub filled_by: Option<u32>,
}
