//! The exposition against docs/metrics.md, a strict reading of the text
//! format, and the `prometheus-parse` crate.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use tracer_common::record::Direction;

use crate::{
    model::{CaptureFigures, ModelConfig, ProbeFigures},
    pipeline::{
        Ending, OutputEvent, ResourceVersionKind, Role, StallCause, StreamDelay, Timeline,
        TimelinePart,
    },
};

const MS: u64 = 1_000_000;
const S: u64 = 1_000 * MS;
const T0: u64 = 1_700_000_000 * S;

const DOC: &str = include_str!("../../../../docs/metrics.md");

/// `(name, type, label names)` of each row of the docs' table.
fn documented() -> BTreeMap<String, (String, BTreeSet<String>)> {
    DOC.lines()
        .filter(|l| l.starts_with("| `watchtrace_"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let name = cells[1].trim_matches('`').to_owned();
            let labels = cells[3]
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            (name, (cells[2].to_owned(), labels))
        })
        .collect()
}

/// A sample line read by the 0.0.4 grammar: name, labels (unescaped),
/// value. Panics on anything the format does not allow.
fn strict_sample(line: &str) -> (String, Vec<(String, String)>, f64) {
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    let name = &line[..name_end];
    assert!(
        !name.is_empty() && !name.starts_with(|c: char| c.is_ascii_digit()),
        "bad metric name in {line:?}"
    );
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices().peekable();
        loop {
            let start = chars.peek().expect("unterminated labels").0;
            let mut end = start;
            while let Some(&(i, c)) = chars.peek() {
                if c == '=' {
                    end = i;
                    break;
                }
                assert!(
                    c.is_ascii_alphanumeric() || c == '_',
                    "label name in {line:?}"
                );
                chars.next();
            }
            let label = &inner[start..end];
            assert!(!label.is_empty(), "empty label name in {line:?}");
            assert_eq!(chars.next().map(|c| c.1), Some('='));
            assert_eq!(chars.next().map(|c| c.1), Some('"'), "{line:?}");
            let mut value = String::new();
            loop {
                match chars.next().expect("unterminated value").1 {
                    '"' => break,
                    '\\' => match chars.next().expect("dangling escape").1 {
                        '\\' => value.push('\\'),
                        '"' => value.push('"'),
                        'n' => value.push('\n'),
                        c => panic!("bad escape \\{c} in {line:?}"),
                    },
                    '\n' => panic!("raw newline"),
                    c => value.push(c),
                }
            }
            labels.push((label.to_owned(), value));
            match chars.next().expect("unterminated labels") {
                (_, ',') => {}
                (i, '}') => {
                    rest = &inner[i + 1..];
                    break;
                }
                (_, c) => panic!("unexpected {c:?} in {line:?}"),
            }
        }
    }
    let value = rest.strip_prefix(' ').expect("one space before the value");
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}")),
    };
    (name.to_owned(), labels, value)
}

fn conn_open(ts: u64, conn: u64) -> OutputEvent {
    OutputEvent::ConnOpen {
        ts,
        conn,
        pid: 42,
        comm: "kube-apiserver".into(),
        fd: Some(7),
        local: None,
        peer: Some("10.0.0.2:40000".into()),
        tls: true,
        role: Role::Server,
        role_inferred: false,
    }
}

fn request(ts: u64, conn: u64, stream: u32, verb: &str, ua: &str) -> OutputEvent {
    OutputEvent::Request {
        ts,
        conn,
        stream,
        method: "GET".into(),
        path: "/api/v1/pods".into(),
        verb: verb.into(),
        resource: Some("pods".into()),
        namespace: None,
        name: None,
        watch: verb == "watch",
        resource_version: None,
        resource_version_kind: ResourceVersionKind::Absent,
        resource_version_match: None,
        allow_watch_bookmarks: false,
        send_initial_events: None,
        timeout_seconds: Some(300),
        label_selector: None,
        field_selector: None,
        shard_selector: None,
        shard_range: None,
        user_agent: Some(ua.into()),
        content_type: None,
        unknown_headers: 0,
    }
}

fn watch_event(ts: u64, stream: u32, event_type: &str, span_ns: Option<u64>) -> OutputEvent {
    OutputEvent::WatchEvent {
        ts,
        conn: 1,
        stream,
        resource: "pods".into(),
        client: None,
        namespace: "default".into(),
        name: "p".into(),
        event_type: event_type.into(),
        object_kind: "Pod".into(),
        resource_version: "1".into(),
        error_code: (event_type == "ERROR").then_some(410),
        initial_events_end: false,
        bytes: 1000,
        t_first_byte: ts,
        t_last_byte: ts,
        direction: Direction::Egress,
        timeline: Timeline {
            t_source: span_ns.map(|s| ts - s),
            t_sent: Some(ts + MS),
            t_acked: None,
            apiserver_time_span_ns: span_ns,
            socket_queue_ns: Some(MS),
            wire_client_ns: span_ns.map(|_| 20 * MS),
            flow_control_wait_ns: 0,
            socket_buffer_wait_ns: 0,
            missing: if span_ns.is_some() {
                vec![TimelinePart::TAcked]
            } else {
                vec![TimelinePart::TSource, TimelinePart::TAcked]
            },
            replayed: false,
            unacked_after_ns: None,
            write: None,
        },
    }
}

/// `event` with the write that made its revision: committed 5 ms before
/// its first byte, requested 8 ms before, acked 30 ms after the request.
/// Its ack did not come within the deadline: written with what it had
/// waited (a delivery lower bound).
fn overdue(mut event: OutputEvent) -> OutputEvent {
    if let OutputEvent::WatchEvent { timeline, .. } = &mut event {
        timeline.unacked_after_ns = Some(1_200 * MS);
    }
    event
}

fn written(mut event: OutputEvent) -> OutputEvent {
    if let OutputEvent::WatchEvent {
        t_first_byte,
        timeline,
        ..
    } = &mut event
    {
        timeline.write = Some(crate::pipeline::WriteJoin {
            t_committed: *t_first_byte - 5 * MS,
            writer: "kubectl".into(),
            etcd_watch_delay_ns: Some(MS as i64),
            commit_to_send_ns: 5 * MS as i64,
            write_to_ack_ns: Some(30 * MS),
        });
    }
    event
}

/// A JSON LIST of configmaps answered on `stream` (the kubelet's): 10,000
/// bytes on the wire, in 1.5 s.
fn list_response(stream: u32, gzip: bool, decoded_bytes: Option<u64>) -> OutputEvent {
    OutputEvent::ListResponse {
        ts: T0 + 2 * S,
        conn: 1,
        stream,
        resource: Some("configmaps".into()),
        namespace: None,
        resource_version_kind: ResourceVersionKind::Zero,
        user_agent: Some("kubelet/v1.31".into()),
        status: Some(200),
        encoding: crate::pipeline::ListEncoding {
            format: Some(crate::watch::WireFormat::Json),
            gzip,
        },
        wire_bytes: 10_000,
        decoded_bytes,
        lost_bytes: 0,
        t_request: T0 + S / 2,
        t_first_byte: T0 + S,
        t_last_byte: T0 + 2 * S,
        first_byte_ns: S / 2,
        duration_ns: 3 * S / 2,
        complete: decoded_bytes.is_some(),
    }
}

/// `event` as a watch's initial state (a watch-list's initial event).
fn initial(mut event: OutputEvent) -> OutputEvent {
    if let OutputEvent::WatchEvent { timeline, .. } = &mut event {
        timeline.replayed = true;
        timeline.missing = vec![TimelinePart::TAcked];
    }
    event
}

/// `event` as the traced process received it (direction `in`).
fn received(mut event: OutputEvent) -> OutputEvent {
    if let OutputEvent::WatchEvent { direction, .. } = &mut event {
        *direction = Direction::Ingress;
    }
    event
}

/// A model in which every metric family has at least one sample; the
/// client name carries characters that need escaping.
fn rich_model() -> Model {
    let mut m = Model::new(ModelConfig::default());
    let events = [
        conn_open(T0, 1),
        request(T0, 1, 1, "watch", "kube\"ctl\\x/v1.31"),
        request(T0, 1, 3, "list", "kubelet/v1.31"),
        request(T0, 1, 5, "watch", "kubelet/v1.31"),
        written(watch_event(T0 + S, 1, "ADDED", Some(2 * MS))),
        // Not counted as incomplete below, though its ack is missing.
        initial(watch_event(T0 + S, 1, "ADDED", None)),
        overdue(watch_event(T0 + S, 1, "MODIFIED", Some(700 * MS))),
        watch_event(T0 + S, 1, "MODIFIED", None),
        watch_event(T0 + S, 1, "BOOKMARK", None),
        watch_event(T0 + S, 5, "ERROR", None),
        // Read by the traced process as a client: only in its own family
        // (the kubelet byte and the incomplete-timeline counts below would
        // grow otherwise).
        received(watch_event(T0 + S, 5, "MODIFIED", None)),
        OutputEvent::Gap {
            ts: T0 + S,
            conn: 1,
            direction: Direction::Egress,
            offset: 0,
            len: 64,
        },
        OutputEvent::WatchListSynced {
            ts: T0 + S,
            conn: 1,
            stream: 1,
            resource: "pods".into(),
            initial_events: 3,
            initial_bytes: 900,
            duration_ns: 40 * MS,
        },
        OutputEvent::Undecodable {
            ts: T0 + S,
            conn: Some(1),
            stream: Some(1),
            layer: crate::pipeline::UndecodableLayer::Watch,
            reason: crate::pipeline::UndecodableReason::Malformed,
            bytes: 120,
            direction: Some(Direction::Egress),
            stream_offset: Some(4096),
        },
        list_response(3, true, Some(40_000)),
        OutputEvent::Write {
            ts: T0 + S,
            conn: 1,
            stream: 9,
            method: "PUT".into(),
            verb: "update".into(),
            resource: Some("pods".into()),
            namespace: Some("default".into()),
            name: Some("p".into()),
            client: Some("kubectl".into()),
            status: Some(409),
            t_request: T0 + S - 8 * MS,
            t_committed: None,
            t_responded: Some(T0 + S),
            revision: None,
            etcd_rtt_ns: None,
            etcd_calls: 1,
            etcd_conflicts: 1,
        },
        OutputEvent::WriteFanout {
            ts: T0 + 2 * S,
            revision: 1,
            resource: Some("pods".into()),
            writer: "kubectl".into(),
            t_committed: T0 + S - 5 * MS,
            watchers: 3,
            t_last_acked: Some(T0 + S + 22 * MS),
            commit_to_last_ack_ns: Some(27 * MS),
            etcd_watch_delay_ns: Some(MS as i64),
        },
        OutputEvent::EtcdRequest {
            ts: T0 + S,
            conn: 2,
            stream: 7,
            op: crate::etcd::KvOp::Txn,
            result: crate::pipeline::EtcdResult::Conflict,
            key: Some("/registry/configmaps/ns/a".into()),
            is_range: false,
            compare_mod_revision: Some(41),
            revision: Some(50),
            succeeded: None,
            kvs: 1,
            count: 1,
            deleted: 0,
            value_bytes_sent: 300,
            value_bytes_received: 290,
            grpc_status: Some(0),
            t_request: T0 + S - 3 * MS,
            t_response: Some(T0 + S),
            rtt_ns: Some(3 * MS),
        },
        // Cut short: its bytes count, its decoded size is not known.
        list_response(3, true, None),
        OutputEvent::SocketStall {
            ts: T0 + 2 * S,
            conn: Some(1),
            pid: 42,
            fd: 7,
            cause: StallCause::PeerZeroWindow,
            start: T0 + S + 500 * MS,
            duration_ns: 500 * MS,
            flaps: 0,
            client: None,
            peer: None,
            held: vec![StreamDelay {
                stream: 1,
                resource: Some("pods".into()),
                delay_ns: 250 * MS,
            }],
            filled_by: Some(1),
        },
        // Still going on at the last event, a second later.
        OutputEvent::StallStart {
            ts: T0 + 2 * S,
            conn: Some(1),
            cause: StallCause::ConnectionWindow,
            stream: None,
        },
        OutputEvent::StreamEnd {
            ts: T0 + 3 * S,
            conn: 1,
            stream: 5,
            how: Ending::Goaway,
            code: Some(0),
            by: Some(Role::Server),
        },
    ];
    for e in &events {
        m.on_event(e);
    }
    m.set_capture(CaptureFigures {
        ringbuf_drops: 3,
        programs: vec![ProbeFigures {
            program: "sock_send_length".into(),
            runs: 1000,
            run_ns: 250_000,
        }],
        targets: 1,
        degraded: vec!["no_tls_probes"],
    });
    m
}

#[test]
fn exposition_has_exactly_the_documented_metrics_types_and_labels() {
    let doc = documented();
    assert_eq!(doc.len(), 43, "the docs' table");
    let text = render(&rich_model());
    let mut typed = BTreeMap::new();
    let mut sampled = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(typed.insert(name.to_owned(), kind.to_owned()).is_none());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap();
            assert!(doc.contains_key(name) && !help.is_empty(), "{line}");
            continue;
        }
        let (name, labels, _) = strict_sample(line);
        let (family, extra) = match doc.get(&name) {
            Some(_) => (name.clone(), None),
            None => {
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).map(|b| (b, *s)))
                    .unwrap_or_else(|| panic!("undocumented {name}"));
                assert_eq!(doc[base.0].0, "histogram", "{name}");
                (base.0.to_owned(), (base.1 == "_bucket").then_some("le"))
            }
        };
        let mut want = doc[&family].1.clone();
        want.extend(extra.map(str::to_owned));
        let got: BTreeSet<String> = labels.into_iter().map(|(k, _)| k).collect();
        assert_eq!(got, want, "labels of {line}");
        sampled.insert(family);
    }
    let documented_types: BTreeMap<String, String> = doc
        .iter()
        .map(|(n, (t, _))| (n.clone(), t.clone()))
        .collect();
    assert_eq!(typed, documented_types);
    let missing: Vec<_> = doc.keys().filter(|n| !sampled.contains(*n)).collect();
    assert!(missing.is_empty(), "no sample for {missing:?}");
}

#[test]
fn values_read_back_through_a_prometheus_parser() {
    let text = render(&rich_model());
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    // The lenient parser drops lines it cannot read: it must read them all.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(
            matches!(
                prometheus_parse::LineInfo::parse(line),
                prometheus_parse::LineInfo::Sample { .. }
            ),
            "{line}"
        );
    }
    let value = |metric: &str, labels: &[(&str, &str)]| -> f64 {
        let found: Vec<_> = scrape
            .samples
            .iter()
            .filter(|s| {
                s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
            })
            .collect();
        assert_eq!(found.len(), 1, "{metric} {labels:?}");
        match &found[0].value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            other => panic!("{metric}: {other:?}"),
        }
    };
    let events = |event_type| {
        value(
            "watchtrace_watch_events_total",
            &[("event_type", event_type), ("client", "kubelet")],
        )
    };
    assert_eq!(events("ERROR"), 1.0);
    assert!(
        !scrape.samples.iter().any(|s| {
            s.metric == "watchtrace_watch_events_total"
                && s.labels.get("event_type") == Some("MODIFIED")
                && s.labels.get("client") == Some("kubelet")
        }),
        "the received one is not counted as served"
    );
    assert_eq!(
        value(
            "watchtrace_watch_events_received_total",
            &[("resource", "pods")]
        ),
        1.0
    );
    assert_eq!(
        value(
            "watchtrace_watch_event_bytes_total",
            &[("client", "kubelet")]
        ),
        1000.0
    );
    assert_eq!(
        value(
            "watchtrace_requests_total",
            &[("verb", "list"), ("resource_version_kind", "absent")]
        ),
        1.0
    );
    assert_eq!(
        value("watchtrace_watch_errors_total", &[("code", "410")]),
        1.0
    );
    assert_eq!(
        value(
            "watchtrace_initial_watch_events_total",
            &[("resource", "pods")]
        ),
        1.0
    );
    assert_eq!(
        value(
            "watchtrace_etcd_requests_total",
            &[("op", "txn"), ("result", "conflict")]
        ),
        1.0
    );
    assert_eq!(
        value("watchtrace_etcd_request_seconds_sum", &[("op", "txn")]),
        0.003
    );
    assert_eq!(
        value(
            "watchtrace_writes_total",
            &[("verb", "update"), ("code", "409"), ("client", "kubectl")]
        ),
        1.0
    );
    assert_eq!(value("watchtrace_watch_fanout_sum", &[]), 3.0);
    assert_eq!(
        value(
            "watchtrace_etcd_watch_delay_seconds_sum",
            &[("resource", "pods")]
        ),
        0.001
    );
    assert_eq!(
        value(
            "watchtrace_write_to_ack_seconds_sum",
            &[("resource", "pods")]
        ),
        0.03
    );
    let list = [("resource", "configmaps"), ("encoding", "json+gzip")];
    let mut by_client = list.to_vec();
    by_client.extend([
        ("client", "kubelet"),
        ("resource_version_kind", "zero"),
        ("code", "200"),
    ]);
    assert_eq!(value("watchtrace_list_responses_total", &by_client), 2.0);
    assert_eq!(
        value("watchtrace_list_response_bytes_total", &list),
        20_000.0
    );
    assert_eq!(
        value("watchtrace_list_response_decoded_bytes_total", &list),
        40_000.0,
        "only the LIST whose decoded size is known"
    );
    assert_eq!(
        value(
            "watchtrace_list_duration_seconds_sum",
            &[("resource", "configmaps")]
        ),
        3.0
    );
    assert_eq!(value("watchtrace_bookmarks_total", &[]), 1.0);
    assert_eq!(value("watchtrace_goaways_total", &[]), 1.0);
    assert_eq!(
        value(
            "watchtrace_capture_lost_bytes_total",
            &[("direction", "out")]
        ),
        64.0
    );
    assert_eq!(
        value(
            "watchtrace_stall_seconds_total",
            &[("cause", "peer_zero_window")]
        ),
        0.5
    );
    assert_eq!(
        value("watchtrace_stalls_total", &[("cause", "send_buffer_full")]),
        0.0,
        "every cause from the start"
    );
    assert_eq!(
        value("watchtrace_stalls_ongoing", &[("cause", "stream_window")]),
        0.0
    );
    assert_eq!(
        value(
            "watchtrace_stalls_ongoing",
            &[("cause", "connection_window")]
        ),
        1.0
    );
    assert_eq!(
        value(
            "watchtrace_stall_ongoing_seconds",
            &[("cause", "connection_window")]
        ),
        1.0
    );
    assert_eq!(value("watchtrace_stall_delay_seconds_total", &[]), 0.25);
    assert_eq!(
        value("watchtrace_apiserver_time_span_p99_seconds", &[]),
        0.7
    );
    assert_eq!(value("watchtrace_ringbuf_drops_total", &[]), 3.0);
    assert_eq!(value("watchtrace_probe_runs_total", &[]), 1000.0);
    assert_eq!(value("watchtrace_probe_run_seconds_total", &[]), 0.00025);
    assert_eq!(value("watchtrace_targets", &[]), 1.0);
    assert_eq!(value("watchtrace_connections", &[]), 1.0);
    assert_eq!(
        value("watchtrace_watch_streams", &[]),
        1.0,
        "stream 5 ended"
    );
    assert_eq!(value("watchtrace_build_info", &[]), 1.0);
    let build = scrape
        .samples
        .iter()
        .find(|s| s.metric == "watchtrace_build_info")
        .unwrap();
    let revision = build.labels.get("revision").unwrap_or_default();
    assert!(!revision.is_empty(), "the build names its revision");
    assert_eq!(
        value(
            "watchtrace_event_timeline_incomplete_total",
            &[("missing", "t_source")]
        ),
        3.0
    );
    assert_eq!(
        value("watchtrace_apiserver_time_span_seconds_count", &[]),
        2.0
    );
    let histogram = scrape
        .samples
        .iter()
        .find(|s| s.metric == "watchtrace_apiserver_time_span_seconds")
        .expect("the histogram");
    let prometheus_parse::Value::Histogram(buckets) = &histogram.value else {
        panic!("{histogram:?}");
    };
    let le = |bound: f64| buckets.iter().find(|b| b.less_than == bound).unwrap().count;
    assert_eq!(le(0.001), 0.0);
    assert_eq!(le(0.0025), 1.0);
    assert_eq!(le(0.5), 1.0);
    assert_eq!(le(1.0), 2.0);
    assert_eq!(le(f64::INFINITY), 2.0);
}

#[test]
fn label_values_read_back_unescaped() {
    let text = render(&rich_model());
    let client = text
        .lines()
        .filter(|l| l.starts_with("watchtrace_requests_total{"))
        .flat_map(|l| strict_sample(l).1)
        .find(|(k, v)| k == "client" && v.starts_with("kube\""))
        .map(|(_, v)| v);
    assert_eq!(client.as_deref(), Some("kube\"ctl\\x"));
}

#[test]
fn without_events_the_p99_is_nan_and_families_are_still_described() {
    let text = render(&Model::new(ModelConfig::default()));
    assert!(text.contains("\nwatchtrace_apiserver_time_span_p99_seconds NaN\n"));
    for name in documented().keys() {
        assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
    }
}
