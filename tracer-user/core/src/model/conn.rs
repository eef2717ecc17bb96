//! What the model keeps per connection.

use super::{labels::Label, rolling::RollingSum};

#[derive(Clone, Debug)]
pub(crate) struct ConnState {
    pub(crate) pid: u32,
    pub(crate) comm: String,
    pub(crate) peer: Option<String>,
    pub(crate) tls: bool,
    /// Client label of the most recent request seen on it.
    pub(crate) client: Option<Label>,
    /// Plaintext bytes each way, from the deltas of `conn_sample`s.
    pub(crate) tx: RollingSum,
    pub(crate) rx: RollingSum,
    pub(crate) last_bytes_out: u64,
    pub(crate) last_bytes_in: u64,
    pub(crate) unacked_bytes: Option<u32>,
    pub(crate) srtt_ns: Option<u64>,
    /// Stall time (socket and window stalls) over the last minute.
    pub(crate) stall_ns: RollingSum,
    /// The server's SETTINGS_MAX_CONCURRENT_STREAMS.
    pub(crate) max_concurrent_streams: Option<u32>,
    /// When the last GOAWAY that ended streams was seen: the streams one
    /// GOAWAY ends share its timestamp, and count once.
    pub(crate) last_goaway_ts: Option<u64>,
}

impl ConnState {
    pub(crate) fn new() -> Self {
        Self {
            pid: 0,
            comm: String::new(),
            peer: None,
            tls: false,
            client: None,
            tx: RollingSum::smoothed_rate(),
            rx: RollingSum::smoothed_rate(),
            last_bytes_out: 0,
            last_bytes_in: 0,
            unacked_bytes: None,
            srtt_ns: None,
            stall_ns: RollingSum::per_minute(),
            max_concurrent_streams: None,
            last_goaway_ts: None,
        }
    }
}
