//! The counters and histograms `/metrics` exports, keyed by their label
//! values (already bounded by the model). Names and meanings are in
//! docs/metrics.md.

use std::collections::BTreeMap;

use super::{count_histogram::CountHistogram, histogram::Histogram, labels::Label};
use crate::pipeline::{UndecodableLayer, UndecodableReason};

/// `(resource, event_type, client)`.
pub type EventKey = (Label, &'static str, Label);
/// `(resource, client, resource_version_kind, encoding, status)`.
pub(crate) type ListKey = (Label, Label, &'static str, &'static str, Option<u16>);
/// `(verb, resource_version_kind, client)`.
pub type RequestKey = (String, String, String);

/// Everything counted since start.
#[derive(Clone, Debug, Default)]
pub struct Families {
    /// Events the traced processes sent (served).
    pub watch_events: BTreeMap<EventKey, u64>,
    /// Events they received as a client, by resource.
    pub watch_events_received: BTreeMap<Label, u64>,
    /// `(resource, client)`.
    pub watch_event_bytes: BTreeMap<(Label, Label), u64>,
    /// By resource.
    pub apiserver_time_span: BTreeMap<Label, Histogram>,
    pub socket_queue: BTreeMap<Label, Histogram>,
    pub wire_client: BTreeMap<Label, Histogram>,
    /// Watch-list streams: request to initial-events-end bookmark.
    pub watch_list_initial: BTreeMap<Label, Histogram>,
    /// LIST responses by `(resource, client, resource_version_kind,
    /// encoding, status)`.
    pub list_responses: BTreeMap<ListKey, u64>,
    /// LIST body bytes on the wire and decoded, by `(resource, encoding)`.
    pub list_bytes: BTreeMap<(Label, &'static str), u64>,
    pub list_decoded_bytes: BTreeMap<(Label, &'static str), u64>,
    /// LISTs: request to last byte, by resource.
    pub list_duration: BTreeMap<Label, Histogram>,
    /// etcd KV calls by `(op, result)`, and their round trips by op.
    pub etcd_requests: BTreeMap<(&'static str, &'static str), u64>,
    pub etcd_request_seconds: BTreeMap<&'static str, Histogram>,
    /// Writes the traced apiserver served, by `(resource, verb, client,
    /// status)`.
    pub writes: BTreeMap<(Label, String, Label, String), u64>,
    /// Watchers each write's revision reached.
    pub watch_fanout: CountHistogram,
    /// etcd commit to the apiserver reading its watch, per write, by
    /// resource.
    pub etcd_watch_delay: BTreeMap<Label, Histogram>,
    /// A write's request to each watcher's ack, by resource.
    pub write_to_ack: BTreeMap<Label, Histogram>,
    /// Initial events (a watch-list's, a cache replay's), by resource.
    pub initial_events: BTreeMap<Label, u64>,
    /// `(resource, missing)`.
    pub timeline_incomplete: BTreeMap<(Label, &'static str), u64>,
    /// By cause.
    pub stalls: BTreeMap<String, u64>,
    pub stall_ns: BTreeMap<String, u64>,
    /// `(cause, client)`.
    pub stall_delay_ns: BTreeMap<(String, String), u64>,
    pub requests: BTreeMap<RequestKey, u64>,
    /// `(resource, code)`.
    pub watch_errors: BTreeMap<(Label, Label), u64>,
    /// By client.
    pub forced_closes: BTreeMap<String, u64>,
    pub goaways: u64,
    /// By resource.
    pub bookmarks: BTreeMap<Label, u64>,
    /// By direction (`in`, `out`).
    pub lost_bytes: BTreeMap<String, u64>,
    /// `undecodable` lines by `(layer, reason)`, and their bytes.
    pub undecodable: BTreeMap<(UndecodableLayer, UndecodableReason), u64>,
    pub undecodable_bytes: BTreeMap<(UndecodableLayer, UndecodableReason), u64>,
}

impl Families {
    /// Empty, but with a zero for every label value known in advance (stall
    /// causes, loss directions): a dashboard shows 0, not "No data", until
    /// they first move.
    pub(crate) fn with_known_labels() -> Self {
        let mut f = Self::default();
        for cause in super::STALL_CAUSES {
            f.stalls.insert(cause.to_owned(), 0);
            f.stall_ns.insert(cause.to_owned(), 0);
        }
        for direction in ["in", "out"] {
            f.lost_bytes.insert(direction.to_owned(), 0);
        }
        f
    }
}

/// Adds `n` to `key`'s count.
pub(crate) fn add<K: Ord>(map: &mut BTreeMap<K, u64>, key: K, n: u64) {
    *map.entry(key).or_default() += n;
}
