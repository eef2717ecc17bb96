//! The model fed hand-built event sequences.

use super::*;
use tracer_common::record::Direction;

use crate::pipeline::{Ending, ResourceVersionKind, Role, StallCause, StallScope, TimelinePart};

const MS: u64 = 1_000_000;
const S: u64 = 1_000 * MS;
/// A plausible Unix-epoch start, so nothing sits near zero.
const T0: u64 = 1_700_000_000 * S;

fn conn_open(ts: u64, conn: u64) -> OutputEvent {
    OutputEvent::ConnOpen {
        ts,
        conn,
        pid: 42,
        comm: "kube-apiserver".into(),
        fd: Some(7),
        local: Some("10.0.0.1:6443".into()),
        peer: Some(format!("10.0.0.2:{}", 40000 + conn)),
        tls: true,
        role: Role::Server,
        role_inferred: false,
    }
}

fn request(ts: u64, conn: u64, stream: u32, verb: &str, ua: Option<&str>) -> OutputEvent {
    OutputEvent::Request {
        ts,
        conn,
        stream,
        method: "GET".into(),
        path: "/api/v1/pods?watch=true".into(),
        verb: verb.into(),
        resource: Some("pods".into()),
        namespace: Some("default".into()),
        name: None,
        watch: verb == "watch",
        resource_version: Some("100".into()),
        resource_version_kind: ResourceVersionKind::Exact,
        resource_version_match: None,
        allow_watch_bookmarks: true,
        send_initial_events: None,
        timeout_seconds: None,
        label_selector: None,
        field_selector: None,
        shard_selector: None,
        shard_range: None,
        user_agent: ua.map(str::to_owned),
        content_type: None,
        unknown_headers: 0,
    }
}

fn watch_request(ts: u64, conn: u64, stream: u32, timeout_seconds: Option<i64>) -> OutputEvent {
    let mut r = request(
        ts,
        conn,
        stream,
        "watch",
        Some("kubelet/v1.31.0 (linux/amd64)"),
    );
    if let OutputEvent::Request {
        timeout_seconds: t, ..
    } = &mut r
    {
        *t = timeout_seconds;
    }
    r
}

fn watch_event(ts: u64, conn: u64, stream: u32, event_type: &str, bytes: u64) -> OutputEvent {
    OutputEvent::WatchEvent {
        ts,
        conn,
        stream,
        resource: "pods".into(),
        client: None,
        namespace: "default".into(),
        name: "p".into(),
        event_type: event_type.into(),
        object_kind: "Pod".into(),
        resource_version: format!("{ts}").into(),
        error_code: None,
        initial_events_end: false,
        bytes,
        t_first_byte: ts,
        t_last_byte: ts,
        direction: Direction::Egress,
        timeline: Timeline::default(),
    }
}

/// A watch event whose ApiserverTimeSpan was measured.
fn timed_event(ts: u64, conn: u64, stream: u32, span_ns: u64) -> OutputEvent {
    let mut e = watch_event(ts, conn, stream, "MODIFIED", 100);
    if let OutputEvent::WatchEvent { timeline, .. } = &mut e {
        timeline.t_source = Some(ts - span_ns);
        timeline.apiserver_time_span_ns = Some(span_ns);
        timeline.t_sent = Some(ts + MS);
        timeline.socket_queue_ns = Some(MS);
        timeline.t_acked = Some(ts + 3 * MS);
        timeline.wire_client_ns = Some(2 * MS);
    }
    e
}

fn stream_end(ts: u64, conn: u64, stream: u32, how: Ending, by: Option<Role>) -> OutputEvent {
    OutputEvent::StreamEnd {
        ts,
        conn,
        stream,
        how,
        code: None,
        by,
    }
}

fn model() -> Model {
    Model::new(ModelConfig::default())
}

fn feed(m: &mut Model, events: &[OutputEvent]) {
    for e in events {
        m.on_event(e);
    }
}

#[test]
fn rates_are_over_the_last_five_seconds_of_event_time() {
    let mut m = model();
    feed(&mut m, &[conn_open(T0, 1), watch_request(T0, 1, 1, None)]);
    // 30 events, 100 ms apart, 500 bytes each: 10 per second for 3 s,
    // so 6 per second over the last 5 s. One second's rate jitters with
    // bursty sends; five seconds' does not.
    for i in 1..=30 {
        m.on_event(&watch_event(T0 + i * 100 * MS, 1, 1, "ADDED", 500));
    }
    let snap = m.snapshot();
    assert_eq!(snap.now, T0 + 3 * S);
    assert!(
        (snap.totals.events_per_s - 6.0).abs() < 1e-9,
        "{}",
        snap.totals.events_per_s
    );
    assert!((snap.totals.bytes_per_s - 3000.0).abs() < 1e-9);
    assert_eq!(snap.watches.len(), 1);
    let w = &snap.watches[0];
    assert!((w.events_per_s - 6.0).abs() < 1e-9);
    assert_eq!(w.client.as_deref(), Some("kubelet"));
    assert_eq!(w.resource_version_kind, "exact");
    assert_eq!(w.last_resource_version, format!("{}", T0 + 3 * S));
    // Five quiet seconds later (the live agent advances the clock): zero.
    m.advance(T0 + 8 * S);
    let snap = m.snapshot();
    assert_eq!(snap.totals.events_per_s, 0.0);
    assert_eq!(snap.watches[0].events_per_s, 0.0);
    // The counters keep everything.
    let events: u64 = m.families().watch_events.values().sum();
    assert_eq!(events, 30);
    assert_eq!(
        m.families().watch_event_bytes[&("pods".into(), "kubelet".into())],
        15_000
    );
}

#[test]
fn p99_apiserver_time_span_rolls_over_one_minute() {
    let mut m = model();
    feed(&mut m, &[conn_open(T0, 1), watch_request(T0, 1, 1, None)]);
    assert_eq!(m.snapshot().totals.apiserver_p99_ns, None);
    assert_eq!(m.snapshot().totals.slo_met, None);
    // 200 events over 20 s with spans 1..=200 ms, shuffled.
    for i in 0..200u64 {
        let span = ((i * 77) % 200 + 1) * MS;
        m.on_event(&timed_event(T0 + S + i * 100 * MS, 1, 1, span));
    }
    let snap = m.snapshot();
    // Nearest rank: the 198th smallest of 200.
    assert_eq!(snap.totals.apiserver_p99_ns, Some(198 * MS));
    assert_eq!(snap.totals.apiserver_events_last_min, 200);
    assert_eq!(snap.totals.slo_met, Some(true));
    assert_eq!(snap.watches[0].p99_apiserver_ns, Some(198 * MS));
    // Delay: from t_source to t_acked = span + 3 ms.
    assert_eq!(
        snap.watches[0].p99_delay,
        Some(Delay {
            ns: 201 * MS,
            at_least: false
        })
    );
    // A minute after the last of them, one slow event is the whole window.
    let late = T0 + S + 199 * 100 * MS + 60 * S;
    m.on_event(&timed_event(late, 1, 1, 1_500 * MS));
    let snap = m.snapshot();
    assert_eq!(snap.totals.apiserver_p99_ns, Some(1_500 * MS));
    assert_eq!(snap.totals.apiserver_events_last_min, 1);
    assert_eq!(snap.totals.slo_met, Some(false));
    // The histograms keep every observation: 201 in all, in seconds.
    let h = &m.families().apiserver_time_span["pods"];
    assert_eq!(h.count(), 201);
    let le_100ms = h.cumulative().find(|&(le, _)| le == 0.1).unwrap().1;
    assert_eq!(le_100ms, 100);
    assert_eq!(m.families().socket_queue["pods"].count(), 201);
    assert_eq!(m.families().wire_client["pods"].count(), 201);
}

#[test]
fn forced_closes_are_server_ends_before_the_timeout() {
    let mut m = model();
    feed(
        &mut m,
        &[
            conn_open(T0, 1),
            // 1: ended by the server after 10 s of a 300 s watch: forced.
            watch_request(T0, 1, 1, Some(300)),
            // 3: ended by the server at its timeout: on time.
            watch_request(T0, 1, 3, Some(300)),
            // 5: the client cancelled: not forced.
            watch_request(T0, 1, 5, Some(300)),
            // 7: no timeout, ended by a server GOAWAY: forced.
            watch_request(T0, 1, 7, None),
            // 9: a server reset: forced.
            watch_request(T0, 1, 9, Some(600)),
            // 11: a list the server completed: not a watch.
            request(T0, 1, 11, "list", Some("kubectl/v1.31")),
            // 13: the connection closed under it: who closed it is unknown.
            watch_request(T0, 1, 13, Some(300)),
        ],
    );
    // 15: a watch from before attach (no request): its timeout is unknown.
    m.on_event(&watch_event(T0 + S, 1, 15, "ADDED", 10));
    feed(
        &mut m,
        &[
            stream_end(T0 + 10 * S, 1, 1, Ending::EndStream, None),
            stream_end(T0 + 300 * S, 1, 3, Ending::EndStream, None),
            stream_end(T0 + 20 * S, 1, 5, Ending::RstStream, Some(Role::Client)),
            stream_end(T0 + 30 * S, 1, 7, Ending::Goaway, Some(Role::Server)),
            stream_end(T0 + 30 * S, 1, 9, Ending::RstStream, Some(Role::Server)),
            stream_end(T0 + 30 * S, 1, 11, Ending::EndStream, None),
            stream_end(T0 + 30 * S, 1, 13, Ending::ConnectionClosed, None),
            stream_end(T0 + 30 * S, 1, 15, Ending::EndStream, None),
        ],
    );
    assert_eq!(
        m.families().forced_closes,
        BTreeMap::from([("kubelet".to_owned(), 3)])
    );
    assert!(m.snapshot().watches.is_empty());
    assert_eq!(m.families().goaways, 1);
}

#[test]
fn one_goaway_ending_many_streams_counts_once() {
    let mut m = model();
    m.on_event(&conn_open(T0, 1));
    for stream in [1, 3, 5] {
        m.on_event(&watch_request(T0, 1, stream, None));
    }
    for stream in [1, 3, 5] {
        m.on_event(&stream_end(
            T0 + S,
            1,
            stream,
            Ending::Goaway,
            Some(Role::Server),
        ));
    }
    m.on_event(&stream_end(
        T0 + 2 * S,
        1,
        7,
        Ending::Goaway,
        Some(Role::Server),
    ));
    assert_eq!(m.families().goaways, 2);
}

#[test]
fn clients_past_sixty_four_become_other() {
    let mut m = model();
    for i in 0..70u64 {
        m.on_event(&conn_open(T0 + i, i));
        m.on_event(&request(
            T0 + i,
            i,
            1,
            "watch",
            Some(&format!("prog{i}/v1")),
        ));
    }
    let requests = &m.families().requests;
    assert_eq!(requests.len(), 65, "64 programs and other");
    assert_eq!(requests[&("watch".into(), "exact".into(), OTHER.into())], 6);
    assert_eq!(
        requests[&("watch".into(), "exact".into(), "prog0".into())],
        1
    );
    assert_eq!(m.evictions()["client_labels"], 6);
    let by_client = m.connections_by_client();
    assert_eq!(by_client[OTHER], 6);
    assert_eq!(m.watch_streams_by_client()[OTHER], 6);
    // A connection with no request yet is `unknown`.
    m.on_event(&conn_open(T0 + S, 100));
    assert_eq!(m.connections_by_client()[UNKNOWN], 1);
}

#[test]
fn a_stream_without_a_request_is_an_unknown_watch() {
    let mut m = model();
    m.on_event(&conn_open(T0, 1));
    m.on_event(&watch_event(T0 + S, 1, 3, "MODIFIED", 200));
    let snap = m.snapshot();
    assert_eq!(snap.watches.len(), 1);
    assert_eq!(snap.watches[0].resource_version_kind, "unknown");
    assert_eq!(snap.watches[0].client, None);
    assert_eq!(snap.watches[0].resource, "pods");
    assert_eq!(
        m.families().watch_events[&("pods".into(), "MODIFIED", UNKNOWN.into())],
        1
    );
    // Once a request on the connection names its client, later unknown
    // streams on it carry that name: one connection, one program.
    m.on_event(&request(T0 + 2 * S, 1, 5, "list", Some("kube-proxy/v1")));
    m.on_event(&watch_event(T0 + 3 * S, 1, 7, "ADDED", 200));
    assert_eq!(
        m.families().watch_events[&("pods".into(), "ADDED", "kube-proxy".into())],
        1
    );
    assert_eq!(
        m.snapshot().connections[0].client.as_deref(),
        Some("kube-proxy")
    );
}

#[test]
fn full_tables_evict_and_count() {
    let mut m = Model::new(ModelConfig {
        max_connections: 2,
        max_streams: 3,
        max_stall_log: 2,
        ..ModelConfig::default()
    });
    feed(
        &mut m,
        &[
            conn_open(T0, 1),
            watch_request(T0, 1, 1, None),
            watch_request(T0, 1, 3, None),
            conn_open(T0 + S, 2),
            watch_request(T0 + S, 2, 1, None),
            // The streams table is full: the least recently touched goes.
            watch_request(T0 + 2 * S, 2, 3, None),
        ],
    );
    assert_eq!(m.evictions()["streams"], 1);
    let snap = m.snapshot();
    assert_eq!(snap.watches.len(), 3);
    assert!(!snap.watches.iter().any(|w| (w.conn, w.stream) == (1, 1)));
    // A third connection evicts connection 1 (the older) and its stream.
    m.on_event(&conn_open(T0 + 3 * S, 3));
    assert_eq!(m.evictions()["connections"], 1);
    assert_eq!(m.evictions()["streams"], 2);
    let snap = m.snapshot();
    assert_eq!(
        snap.connections.iter().map(|c| c.conn).collect::<Vec<_>>(),
        [2, 3]
    );
    assert!(snap.watches.iter().all(|w| w.conn == 2));
    // Three stalls in a log of two.
    for i in 0..3 {
        m.on_event(&OutputEvent::WindowStall {
            ts: T0 + (4 + i) * S,
            conn: 2,
            scope: StallScope::Stream,
            stream: Some(1),
            sender: Role::Server,
            start: T0 + (4 + i) * S - MS,
            duration_ns: MS,
            flaps: 0,
            open_streams: vec![],
            held: vec![],
        });
    }
    assert_eq!(m.evictions()["stall_log"], 1);
    assert_eq!(m.snapshot().stalls.len(), 2);
}

#[test]
fn stalls_are_counted_logged_and_their_delay_charged_to_the_held_client() {
    let mut m = model();
    feed(
        &mut m,
        &[
            conn_open(T0, 1),
            watch_request(T0, 1, 1, None),
            request(T0, 1, 3, "watch", Some("kube-scheduler/v1")),
            OutputEvent::SocketStall {
                ts: T0 + 2 * S,
                conn: Some(1),
                pid: 42,
                fd: 7,
                cause: StallCause::SendBufferFull,
                start: T0 + S,
                duration_ns: S,
                flaps: 14,
                client: Some("kube-scheduler".into()),
                peer: None,
                held: vec![
                    StreamDelay {
                        stream: 1,
                        resource: Some("pods".into()),
                        delay_ns: 800 * MS,
                    },
                    StreamDelay {
                        stream: 3,
                        resource: Some("pods".into()),
                        delay_ns: 600 * MS,
                    },
                ],
                filled_by: Some(3),
            },
            OutputEvent::WindowStall {
                ts: T0 + 3 * S,
                conn: 1,
                scope: StallScope::Connection,
                stream: None,
                sender: Role::Server,
                start: T0 + 3 * S - 200 * MS,
                duration_ns: 200 * MS,
                flaps: 0,
                open_streams: vec![1, 3],
                held: vec![StreamDelay {
                    stream: 1,
                    resource: Some("pods".into()),
                    delay_ns: 150 * MS,
                }],
            },
        ],
    );
    let f = m.families();
    assert_eq!(f.stalls["send_buffer_full"], 1);
    assert_eq!(f.stalls["connection_window"], 1);
    assert_eq!(f.stall_ns["send_buffer_full"], S);
    assert_eq!(
        f.stall_delay_ns[&("send_buffer_full".into(), "kubelet".into())],
        800 * MS
    );
    assert_eq!(
        f.stall_delay_ns[&("send_buffer_full".into(), "kube-scheduler".into())],
        600 * MS
    );
    assert_eq!(
        f.stall_delay_ns[&("connection_window".into(), "kubelet".into())],
        150 * MS
    );
    let snap = m.snapshot();
    assert_eq!(snap.totals.stalls_last_min, 2);
    assert_eq!(snap.totals.stall_ns_last_min, 1_200 * MS);
    assert_eq!(snap.connections[0].stall_ns_last_min, 1_200 * MS);
    let log: Vec<&str> = snap.stalls.iter().map(|r| r.cause.as_str()).collect();
    assert_eq!(log, ["connection_window", "send_buffer_full"]);
    let socket = &snap.stalls[1];
    assert_eq!(socket.held, [(1, 800 * MS), (3, 600 * MS)]);
    assert_eq!(socket.filled_by, Some(3));
    assert_eq!(socket.flaps, 14, "one fault: its flaps counted on it");
    assert_eq!(socket.client.as_deref(), Some("kube-scheduler"));
    assert_eq!(
        socket.peer.as_deref(),
        Some("10.0.0.2:40001"),
        "from the connection"
    );
    // A minute later they are out of the last-minute figures.
    m.advance(T0 + 64 * S);
    let snap = m.snapshot();
    assert_eq!(snap.totals.stalls_last_min, 0);
    assert_eq!(snap.connections[0].stall_ns_last_min, 0);
    assert_eq!(snap.stalls.len(), 2, "the log keeps them");
}

#[test]
fn errors_bookmarks_requests_and_lost_bytes() {
    let mut m = model();
    m.on_event(&conn_open(T0, 1));
    m.on_event(&request(T0, 1, 1, "list", Some("kubectl/v1")));
    m.on_event(&request(T0, 1, 3, "get", Some("kubectl/v1")));
    m.on_event(&watch_request(T0, 1, 5, None));
    m.on_event(&watch_event(T0 + S, 1, 5, "BOOKMARK", 50));
    let mut error = watch_event(T0 + S, 1, 5, "ERROR", 80);
    if let OutputEvent::WatchEvent { error_code, .. } = &mut error {
        *error_code = Some(410);
    }
    m.on_event(&error);
    m.on_event(&watch_event(T0 + S, 1, 5, "SOMETHING", 80));
    for (direction, len) in [
        (Direction::Egress, 100),
        (Direction::Ingress, 7),
        (Direction::Egress, 5),
    ] {
        m.on_event(&OutputEvent::Gap {
            ts: T0 + 2 * S,
            conn: 1,
            direction,
            offset: 0,
            len,
        });
    }
    let f = m.families();
    assert_eq!(f.bookmarks["pods"], 1);
    assert_eq!(f.watch_errors[&("pods".into(), "410".into())], 1);
    assert_eq!(f.watch_events[&("pods".into(), OTHER, "kubelet".into())], 1);
    assert_eq!(
        f.requests.keys().cloned().collect::<Vec<_>>(),
        [
            ("list".into(), "exact".into(), "kubectl".into()),
            ("watch".into(), "exact".into(), "kubelet".into()),
        ],
        "GET is neither a LIST nor a WATCH"
    );
    assert_eq!(f.lost_bytes["out"], 105);
    assert_eq!(f.lost_bytes["in"], 7);
    let snap = m.snapshot();
    assert_eq!(snap.totals.lost_bytes, 112);
    assert_eq!(snap.totals.lists_last_min, 1);
    assert_eq!(snap.totals.connections, 1);
    assert_eq!(snap.totals.watches, 1);
    assert_eq!(
        snap.connections[0].streams, 3,
        "list, get and watch are open"
    );
    assert_eq!(snap.connections[0].watches, 1);
}

#[test]
fn connection_samples_give_byte_rates_and_settings_the_stream_limit() {
    let mut m = model();
    m.on_event(&conn_open(T0, 1));
    // Over the last 5 s (the rates `top` shows are smoothed so).
    for i in 1..=8u64 {
        m.on_event(&OutputEvent::ConnSample {
            ts: T0 + i * S,
            conn: 1,
            bytes_out: i * 10_000,
            bytes_in: i * 100,
            unacked_bytes: Some(4096),
            srtt_ns: Some(250_000),
            snd_wnd: None,
            snd_cwnd: None,
            rcv_wnd: None,
        });
    }
    m.on_event(&OutputEvent::Settings {
        ts: T0 + 3 * S,
        conn: 1,
        sender: Role::Client,
        max_concurrent_streams: Some(7),
        initial_window_size: None,
    });
    m.on_event(&OutputEvent::Settings {
        ts: T0 + 3 * S,
        conn: 1,
        sender: Role::Server,
        max_concurrent_streams: Some(250),
        initial_window_size: Some(65_535),
    });
    let snap = m.snapshot();
    let c = &snap.connections[0];
    assert!(
        (c.tx_bytes_per_s - 10_000.0).abs() < 1e-9,
        "{}",
        c.tx_bytes_per_s
    );
    assert!((c.rx_bytes_per_s - 100.0).abs() < 1e-9);
    assert_eq!(c.unacked_bytes, Some(4096));
    assert_eq!(c.srtt_ns, Some(250_000));
    assert_eq!(c.max_concurrent_streams, Some(250));
    assert_eq!(
        (c.pid, c.comm.as_str(), c.tls),
        (42, "kube-apiserver", true)
    );
    // Closing the connection forgets it and its streams.
    m.on_event(&watch_request(T0 + 4 * S, 1, 1, None));
    m.on_event(&OutputEvent::ConnClose {
        ts: T0 + 9 * S,
        conn: 1,
        bytes_out: 80_000,
        bytes_in: 300,
    });
    let snap = m.snapshot();
    assert!(snap.connections.is_empty() && snap.watches.is_empty());
    assert_eq!(m.evictions().values().sum::<u64>(), 0);
}

#[test]
fn timeline_parts_not_measured_are_counted_by_name() {
    let mut m = model();
    let mut e = watch_event(T0, 1, 1, "ADDED", 10);
    if let OutputEvent::WatchEvent { timeline, .. } = &mut e {
        timeline.missing = vec![TimelinePart::TSource, TimelinePart::TAcked];
    }
    m.on_event(&e);
    m.on_event(&e);
    let f = m.families();
    assert_eq!(f.timeline_incomplete[&("pods".into(), "t_source")], 2);
    assert_eq!(f.timeline_incomplete[&("pods".into(), "t_acked")], 2);
    assert!(f.apiserver_time_span.is_empty());
}

/// A served watch event acknowledged `delay` after its source time.
fn delivered(ts: u64, conn: u64, stream: u32, delay: u64) -> OutputEvent {
    let mut e = watch_event(ts, conn, stream, "MODIFIED", 100);
    if let OutputEvent::WatchEvent { timeline, .. } = &mut e {
        timeline.t_source = Some(ts - MS);
        timeline.t_acked = Some(ts - MS + delay);
    }
    e
}

#[test]
fn delivery_p99_is_given_overall_and_for_the_worst_client_by_name() {
    let mut m = model();
    feed(
        &mut m,
        &[
            conn_open(T0, 1),
            watch_request(T0, 1, 1, None),
            conn_open(T0, 2),
            request(T0, 2, 1, "watch", Some("kube-scheduler/v1.31.0")),
        ],
    );
    assert_eq!(m.snapshot().totals.delivery_p99, None);
    for i in 1..=100 {
        m.on_event(&delivered(T0 + i * MS, 1, 1, 2 * MS));
        m.on_event(&delivered(T0 + i * MS, 2, 1, 7_270 * MS));
    }
    // The initial state a watch replays is not a delivery.
    let mut replayed = delivered(T0 + 200 * MS, 1, 1, 60 * S);
    if let OutputEvent::WatchEvent { timeline, .. } = &mut replayed {
        timeline.replayed = true;
    }
    m.on_event(&replayed);
    let snap = m.snapshot();
    let t = &snap.totals;
    assert_eq!(t.delivery_events_last_min, 200);
    assert!(t.delivery_p99.unwrap().ns >= 7_000 * MS, "{t:?}");
    let (client, p99) = t.worst_client.clone().unwrap();
    assert_eq!(client, "kube-scheduler");
    assert!(p99.ns >= 7_000 * MS && !p99.at_least);
    // Per connection: its watches' worst P99.
    let conn = |id| snap.connections.iter().find(|c| c.conn == id).unwrap();
    assert!(conn(1).p99_delay.unwrap().ns < 10 * MS);
    assert!(conn(2).p99_delay.unwrap().ns >= 7_000 * MS);
    // A minute later, nothing is left in the window.
    m.advance(T0 + 2 * 60 * S);
    let t = m.snapshot().totals;
    assert_eq!((t.delivery_p99, t.delivery_events_last_min), (None, 0));
    assert_eq!(t.worst_client, None);
}

#[test]
fn a_connection_stalled_now_says_so_and_a_sample_without_tcp_figures_keeps_the_last() {
    let mut m = model();
    m.on_event(&conn_open(T0, 1));
    let sample = |ts, unacked| OutputEvent::ConnSample {
        ts,
        conn: 1,
        bytes_out: 0,
        bytes_in: 0,
        unacked_bytes: unacked,
        srtt_ns: unacked.map(|_| 250_000),
        snd_wnd: None,
        snd_cwnd: None,
        rcv_wnd: None,
    };
    m.on_event(&sample(T0 + S, Some(4096)));
    m.on_event(&sample(T0 + 2 * S, None));
    m.on_event(&OutputEvent::StallStart {
        ts: T0 + 2 * S,
        conn: Some(1),
        cause: StallCause::PeerZeroWindow,
        stream: None,
    });
    m.advance(T0 + 5 * S);
    let snap = m.snapshot();
    let c = &snap.connections[0];
    assert_eq!((c.unacked_bytes, c.srtt_ns), (Some(4096), Some(250_000)));
    assert_eq!(c.stall_ongoing.as_deref(), Some("peer_zero_window"));
    assert_eq!(c.stall_ns_last_min, 3 * S);
    assert_eq!(snap.totals.stalls_ongoing, 1);
}

#[test]
fn an_event_unacknowledged_past_the_deadline_counts_as_late_by_what_it_waited() {
    let mut m = model();
    feed(&mut m, &[conn_open(T0, 1), watch_request(T0, 1, 1, None)]);
    // A stopped client: no ack within the deadline, written after 1.2 s.
    for i in 1..=10 {
        let mut e = watch_event(T0 + i * MS, 1, 1, "MODIFIED", 100);
        if let OutputEvent::WatchEvent { timeline, .. } = &mut e {
            timeline.missing = vec![TimelinePart::TAcked];
            timeline.unacked_after_ns = Some(1_200 * MS);
        }
        m.on_event(&e);
    }
    // Acks that cannot be observed at all say nothing about delivery.
    let mut blind = watch_event(T0 + 20 * MS, 1, 1, "MODIFIED", 100);
    if let OutputEvent::WatchEvent { timeline, .. } = &mut blind {
        timeline.missing = vec![TimelinePart::TAcked];
    }
    m.on_event(&blind);
    let snap = m.snapshot();
    let t = snap.totals;
    assert_eq!(t.delivery_events_last_min, 10);
    // A lower bound: "at least", everywhere it shows.
    let at_least = Delay {
        ns: 1_200 * MS,
        at_least: true,
    };
    assert_eq!(t.delivery_p99, Some(at_least));
    assert_eq!(t.worst_client, Some(("kubelet".to_owned(), at_least)));
    assert_eq!(snap.watches[0].p99_delay, Some(at_least));
    assert_eq!(snap.connections[0].p99_delay, Some(at_least));
}
