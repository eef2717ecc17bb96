//! The model as metric families: every metric of docs/metrics.md, in its
//! order, with base units (seconds, bytes), as data ([`families`]) and as
//! Prometheus text format 0.0.4 ([`render`]). Pure: the agent's HTTP edge
//! encodes the families with a Prometheus client library.

mod text;

use std::collections::BTreeMap;

use self::text::Encoder;
pub use self::text::{Family, Kind, Sample, Value};
use crate::model::{Histogram, Model};

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const NS_PER_S: f64 = 1e9;

/// Every metric, rendered from the model's state now.
pub fn render(model: &Model) -> String {
    text::write(&families(model))
}

/// Every metric family, from the model's state now, in docs/metrics.md's
/// order.
pub fn families(model: &Model) -> Vec<Family> {
    let f = model.families();
    let mut e = Encoder::default();

    let name = "watchtrace_watch_events_total";
    e.family(name, Kind::Counter, "Watch events sent.");
    for ((resource, event_type, client), n) in &f.watch_events {
        e.sample_u64(
            name,
            &[
                ("resource", resource),
                ("event_type", event_type),
                ("client", client),
            ],
            *n,
        );
    }

    let name = "watchtrace_watch_events_received_total";
    e.family(
        name,
        Kind::Counter,
        "Watch events the traced processes received as a client (not in watchtrace_watch_events_total).",
    );
    for (resource, n) in &f.watch_events_received {
        e.sample_u64(name, &[("resource", resource)], *n);
    }

    let name = "watchtrace_watch_event_bytes_total";
    e.family(
        name,
        Kind::Counter,
        "Framed bytes of the watch events sent.",
    );
    for ((resource, client), n) in &f.watch_event_bytes {
        e.sample_u64(name, &[("resource", resource), ("client", client)], *n);
    }

    histograms(
        &mut e,
        "watchtrace_apiserver_time_span_seconds",
        "ApiserverTimeSpan: first byte of a watch event written minus the etcd response carrying it read.",
        &f.apiserver_time_span,
    );
    histograms(
        &mut e,
        "watchtrace_socket_queue_seconds",
        "A watch event's last byte written to the TLS layer or socket until the kernel accepted it.",
        &f.socket_queue,
    );
    histograms(
        &mut e,
        "watchtrace_watch_list_initial_seconds",
        "A watch-list stream (sendInitialEvents=true): its request until the bookmark ending its initial events.",
        &f.watch_list_initial,
    );
    histograms(
        &mut e,
        "watchtrace_wire_client_seconds",
        "The kernel accepted a watch event's last byte until the client's ack covered it.",
        &f.wire_client,
    );

    histograms(
        &mut e,
        "watchtrace_etcd_watch_delay_seconds",
        "A write the traced apiserver served: etcd's response committing it read until the etcd watch response carrying its revision read.",
        &f.etcd_watch_delay,
    );
    let name = "watchtrace_delivery_seconds";
    e.family(
        name,
        Kind::Histogram,
        "A served watch event's source (else its first byte) until the client's ack covered it, by client; an event not acknowledged within the ack deadline counts with what it had waited then (a lower bound).",
    );
    for (client, h) in model.delivery_by_client() {
        e.histogram(name, &[("client", client)], h);
    }
    histograms(
        &mut e,
        "watchtrace_write_to_ack_seconds",
        "A write's request read until a watcher's ack covered the watch event of its revision (each watcher).",
        &f.write_to_ack,
    );
    let name = "watchtrace_watch_fanout";
    e.family(
        name,
        Kind::Histogram,
        "Watch events served per write (the watchers its revision reached).",
    );
    e.histogram(name, &[], &f.watch_fanout);

    let name = "watchtrace_writes_total";
    e.family(
        name,
        Kind::Counter,
        "Mutating requests (create, update, patch, delete) the traced apiserver answered, by HTTP status (409: conflict).",
    );
    for ((resource, verb, client, code), n) in &f.writes {
        e.sample_u64(
            name,
            &[
                ("resource", resource),
                ("verb", verb),
                ("client", client),
                ("code", code),
            ],
            *n,
        );
    }

    let name = "watchtrace_initial_watch_events_total";
    e.family(
        name,
        Kind::Counter,
        "Watch events that were a watch's initial state (a watch-list's initial events, the cache replaying history to a resumed watch): replayed, with no ApiserverTimeSpan and not counted as incomplete.",
    );
    for (resource, n) in &f.initial_events {
        e.sample_u64(name, &[("resource", resource)], *n);
    }

    let name = "watchtrace_event_timeline_incomplete_total";
    e.family(
        name,
        Kind::Counter,
        "Watch events (initial events aside) with a timeline part that could not be measured (t_source, t_sent, t_acked).",
    );
    for ((resource, missing), n) in &f.timeline_incomplete {
        e.sample_u64(name, &[("resource", resource), ("missing", missing)], *n);
    }

    let name = "watchtrace_apiserver_time_span_p99_seconds";
    e.family(
        name,
        Kind::Gauge,
        "P99 ApiserverTimeSpan over the last minute (NaN without events); the reference objective is below 1 s.",
    );
    let p99 = model
        .apiserver_p99_ns()
        .map_or(f64::NAN, |ns| ns as f64 / NS_PER_S);
    e.sample(name, &[], p99);

    let name = "watchtrace_stalls_total";
    e.family(name, Kind::Counter, "Stalls ended, by cause.");
    for (cause, n) in &f.stalls {
        e.sample_u64(name, &[("cause", cause)], *n);
    }

    let name = "watchtrace_stall_seconds_total";
    e.family(name, Kind::Counter, "Total duration of the stalls ended.");
    for (cause, ns) in &f.stall_ns {
        e.sample(name, &[("cause", cause)], *ns as f64 / NS_PER_S);
    }

    let name = "watchtrace_stalls_ongoing";
    e.family(
        name,
        Kind::Gauge,
        "Stalls going on now, by cause (a stall is in watchtrace_stalls_total only once it ends).",
    );
    let ongoing = model.ongoing_stalls();
    for (cause, (n, _)) in &ongoing {
        e.sample_u64(name, &[("cause", cause)], *n);
    }

    let name = "watchtrace_stall_ongoing_seconds";
    e.family(
        name,
        Kind::Gauge,
        "Seconds so far of the stalls going on now, summed by cause.",
    );
    for (cause, (_, seconds)) in &ongoing {
        e.sample(name, &[("cause", cause)], *seconds);
    }

    let name = "watchtrace_stall_delay_seconds_total";
    e.family(
        name,
        Kind::Counter,
        "Delay the streams held by stalls suffered, by the held stream's client.",
    );
    for ((cause, client), ns) in &f.stall_delay_ns {
        e.sample(
            name,
            &[("cause", cause), ("client", client)],
            *ns as f64 / NS_PER_S,
        );
    }

    let name = "watchtrace_connections";
    e.family(name, Kind::Gauge, "Open connections with captured traffic.");
    for (client, n) in model.connections_by_client() {
        e.sample_u64(name, &[("client", &client)], n);
    }

    let name = "watchtrace_watch_streams";
    e.family(name, Kind::Gauge, "Open watch streams.");
    for (client, n) in model.watch_streams_by_client() {
        e.sample_u64(name, &[("client", &client)], n);
    }

    let name = "watchtrace_requests_total";
    e.family(
        name,
        Kind::Counter,
        "LIST and WATCH requests by resourceVersion kind (absent, zero, exact).",
    );
    for ((verb, kind, client), n) in &f.requests {
        e.sample_u64(
            name,
            &[
                ("verb", verb),
                ("resource_version_kind", kind),
                ("client", client),
            ],
            *n,
        );
    }

    let name = "watchtrace_list_responses_total";
    e.family(
        name,
        Kind::Counter,
        "LIST responses ended, by body encoding (json, protobuf, cbor; +gzip when compressed) and HTTP status.",
    );
    for ((resource, client, rv_kind, encoding, status), n) in &f.list_responses {
        let code = status.map_or_else(|| "unknown".to_owned(), |s| s.to_string());
        e.sample_u64(
            name,
            &[
                ("resource", resource),
                ("client", client),
                ("resource_version_kind", rv_kind),
                ("encoding", encoding),
                ("code", &code),
            ],
            *n,
        );
    }

    let name = "watchtrace_list_response_bytes_total";
    e.family(
        name,
        Kind::Counter,
        "LIST response body bytes on the wire (compressed, when gzip).",
    );
    for ((resource, encoding), n) in &f.list_bytes {
        e.sample_u64(name, &[("resource", resource), ("encoding", encoding)], *n);
    }

    let name = "watchtrace_list_response_decoded_bytes_total";
    e.family(
        name,
        Kind::Counter,
        "LIST response body bytes decoded (inflated), for the responses whose decoded size is known.",
    );
    for ((resource, encoding), n) in &f.list_decoded_bytes {
        e.sample_u64(name, &[("resource", resource), ("encoding", encoding)], *n);
    }

    histograms(
        &mut e,
        "watchtrace_list_duration_seconds",
        "A LIST: its request read until its response's last byte written.",
        &f.list_duration,
    );

    let name = "watchtrace_etcd_requests_total";
    e.family(
        name,
        Kind::Counter,
        "etcd KV calls the traced processes made (range, put, delete_range, txn), by result (ok, conflict, error, unanswered, undecodable).",
    );
    for ((op, result), n) in &f.etcd_requests {
        e.sample_u64(name, &[("op", op), ("result", result)], *n);
    }

    let name = "watchtrace_etcd_request_seconds";
    e.family(
        name,
        Kind::Histogram,
        "An etcd KV call: its request HEADERS written until its response read.",
    );
    for (op, h) in &f.etcd_request_seconds {
        e.histogram(name, &[("op", op)], h);
    }

    let name = "watchtrace_watch_errors_total";
    e.family(
        name,
        Kind::Counter,
        "ERROR watch events by Status code (410: too old resourceVersion).",
    );
    for ((resource, code), n) in &f.watch_errors {
        e.sample_u64(name, &[("resource", resource), ("code", code)], *n);
    }

    let name = "watchtrace_forced_closes_total";
    e.family(
        name,
        Kind::Counter,
        "Watch streams the server ended before the client's timeout.",
    );
    for (client, n) in &f.forced_closes {
        e.sample_u64(name, &[("client", client)], *n);
    }

    let name = "watchtrace_goaways_total";
    e.family(name, Kind::Counter, "GOAWAY frames that ended streams.");
    e.sample_u64(name, &[], f.goaways);

    let name = "watchtrace_bookmarks_total";
    e.family(name, Kind::Counter, "BOOKMARK watch events.");
    for (resource, n) in &f.bookmarks {
        e.sample_u64(name, &[("resource", resource)], *n);
    }

    let name = "watchtrace_capture_lost_bytes_total";
    e.family(
        name,
        Kind::Counter,
        "Bytes the kernel captured but could not deliver (gaps), by direction (out: written by the traced process).",
    );
    for (direction, n) in &f.lost_bytes {
        e.sample_u64(name, &[("direction", direction)], *n);
    }

    let name = "watchtrace_undecodable_total";
    e.family(
        name,
        Kind::Counter,
        "Captured bytes that could not be decoded (each also an `undecodable` event line), by layer and reason.",
    );
    for ((layer, reason), n) in &f.undecodable {
        e.sample_u64(
            name,
            &[("layer", layer.as_str()), ("reason", reason.as_str())],
            *n,
        );
    }
    let name = "watchtrace_undecodable_bytes_total";
    e.family(
        name,
        Kind::Counter,
        "The bytes of those undecodable units, by layer and reason.",
    );
    for ((layer, reason), n) in &f.undecodable_bytes {
        e.sample_u64(
            name,
            &[("layer", layer.as_str()), ("reason", reason.as_str())],
            *n,
        );
    }

    let capture = model.capture();
    let name = "watchtrace_ringbuf_drops_total";
    e.family(name, Kind::Counter, "Failed ring-buffer reservations.");
    e.sample_u64(name, &[], capture.ringbuf_drops);

    let name = "watchtrace_table_evictions_total";
    e.family(
        name,
        Kind::Counter,
        "Entries evicted from bounded tables (label sets: values folded into other).",
    );
    for (table, n) in model.evictions() {
        e.sample_u64(name, &[("table", table)], n);
    }

    let name = "watchtrace_probe_runs_total";
    e.family(
        name,
        Kind::Counter,
        "eBPF program runs (kernel BPF statistics).",
    );
    for p in &capture.programs {
        e.sample_u64(name, &[("program", &p.program)], p.runs);
    }

    let name = "watchtrace_probe_run_seconds_total";
    e.family(
        name,
        Kind::Counter,
        "Total run time of the eBPF programs (kernel BPF statistics).",
    );
    for p in &capture.programs {
        e.sample(name, &[("program", &p.program)], p.run_ns as f64 / NS_PER_S);
    }

    let name = "watchtrace_targets";
    e.family(name, Kind::Gauge, "Traced processes.");
    e.sample_u64(name, &[], capture.targets as u64);

    let name = "watchtrace_degraded";
    e.family(
        name,
        Kind::Gauge,
        "1 while the agent traces without something it was asked for, for lack of a privilege (reason: no_tls_probes, exe_unreadable, no_anchors).",
    );
    for reason in &capture.degraded {
        e.sample_u64(name, &[("reason", reason)], 1);
    }

    let name = "watchtrace_build_info";
    e.family(
        name,
        Kind::Gauge,
        "Always 1; the version and the source revision are labels.",
    );
    e.sample_u64(
        name,
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("revision", env!("WATCHTRACE_REVISION")),
        ],
        1,
    );

    e.finish()
}

/// A histogram family with one histogram per resource.
fn histograms<K: AsRef<str>>(
    e: &mut Encoder,
    name: &'static str,
    help: &'static str,
    by_resource: &BTreeMap<K, Histogram>,
) {
    e.family(name, Kind::Histogram, help);
    for (resource, h) in by_resource {
        e.histogram(name, &[("resource", resource.as_ref())], h);
    }
}

#[cfg(test)]
mod tests;
