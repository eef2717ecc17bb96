//! What the model keeps per HTTP/2 stream (watches and other requests).

use super::{delivery::DelayWindow, labels::Label, rolling::RollingSum, window::Window};

/// The resource-version kind of a watch whose request was not seen.
pub(crate) const RV_UNKNOWN: &str = "unknown";

#[derive(Clone, Debug)]
pub(crate) struct StreamFigures {
    /// When its request was seen (or its first event, without one).
    pub(crate) opened: u64,
    pub(crate) watch: bool,
    /// The request was seen (so its timeout is known).
    pub(crate) request_seen: bool,
    /// The request's `timeoutSeconds`.
    pub(crate) timeout_seconds: Option<i64>,
    /// Resource label (empty: not known).
    pub(crate) resource: Label,
    pub(crate) namespace: String,
    /// Client label.
    pub(crate) client: Label,
    /// `absent`, `zero`, `exact` or `unknown`.
    pub(crate) rv_kind: String,
    pub(crate) events: RollingSum,
    pub(crate) bytes: RollingSum,
    pub(crate) last_resource_version: String,
    /// The writer of its last event whose write was seen, and that
    /// write's etcd commit to watch read.
    pub(crate) last_writer: Option<String>,
    pub(crate) last_etcd_watch_delay_ns: Option<i64>,
    /// ApiserverTimeSpan of its events over the last minute.
    pub(crate) apiserver_ns: Window,
    /// End-to-end delay (source or first byte to ack) over the last minute.
    pub(crate) delay_ns: DelayWindow,
}

impl StreamFigures {
    pub(crate) fn new(opened: u64, client: Label, window_samples: usize) -> Self {
        Self {
            opened,
            watch: false,
            request_seen: false,
            timeout_seconds: None,
            resource: "".into(),
            namespace: String::new(),
            client,
            rv_kind: RV_UNKNOWN.to_owned(),
            events: RollingSum::smoothed_rate(),
            bytes: RollingSum::smoothed_rate(),
            last_resource_version: String::new(),
            last_writer: None,
            last_etcd_watch_delay_ns: None,
            apiserver_ns: Window::new(super::MINUTE_NS, window_samples),
            delay_ns: DelayWindow::new(window_samples),
        }
    }
}
