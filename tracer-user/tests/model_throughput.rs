//! Measurement (ignored; run by hand in release): how many watch events a
//! second the live model and the metrics rendering take, on one core.
//! `cargo test --release -p tracer-user --test model_throughput -- --ignored --nocapture`

use std::time::Instant;

use tracer_common::record::Direction;

use watchtrace::{
    metrics,
    model::{Model, ModelConfig},
    pipeline::{OutputEvent, ResourceVersionKind, Role, Timeline},
};

const S: u64 = 1_000_000_000;
const T0: u64 = 1_700_000_000 * S;

#[test]
#[ignore = "measurement: run by hand in release"]
fn model_throughput() {
    let mut model = Model::new(ModelConfig::default());
    // 100 connections x 10 watches, from 20 client programs.
    for conn in 0..100u64 {
        model.on_event(&OutputEvent::ConnOpen {
            ts: T0,
            conn,
            pid: 1,
            comm: "kube-apiserver".into(),
            fd: None,
            local: None,
            peer: None,
            tls: true,
            role: Role::Server,
            role_inferred: false,
        });
        for stream in 0..10u32 {
            model.on_event(&OutputEvent::Request {
                ts: T0,
                conn,
                stream: stream * 2 + 1,
                method: "GET".into(),
                path: "/api/v1/pods?watch=1".into(),
                verb: "watch".into(),
                resource: Some(format!("res{}", stream % 5)),
                namespace: None,
                name: None,
                watch: true,
                resource_version: None,
                resource_version_kind: ResourceVersionKind::Exact,
                resource_version_match: None,
                allow_watch_bookmarks: true,
                send_initial_events: None,
                timeout_seconds: Some(300),
                label_selector: None,
                field_selector: None,
                shard_selector: None,
                shard_range: None,
                user_agent: Some(format!("client{}/v1", conn % 20)),
                content_type: None,
                unknown_headers: 0,
            });
        }
    }
    // 1M events over 100 s of event time (10k/s), every one timed.
    let n = 1_000_000u64;
    let events: Vec<OutputEvent> = (0..n)
        .map(|i| {
            let ts = T0 + S + i * 100_000;
            OutputEvent::WatchEvent {
                ts,
                conn: i % 100,
                stream: ((i / 100) % 10) as u32 * 2 + 1,
                resource: format!("res{}", (i / 100) % 5).into(),
                client: None,
                namespace: "default".into(),
                name: "obj".into(),
                event_type: "MODIFIED".into(),
                object_kind: "Pod".into(),
                resource_version: i.to_string().into(),
                error_code: None,
                initial_events_end: false,
                bytes: 1200,
                t_first_byte: ts,
                t_last_byte: ts,
                direction: Direction::Egress,
                timeline: Timeline {
                    t_source: Some(ts - (i % 997) * 10_000),
                    t_sent: Some(ts + 1000),
                    t_acked: Some(ts + 50_000),
                    apiserver_time_span_ns: Some((i % 997) * 10_000),
                    socket_queue_ns: Some(1000),
                    wire_client_ns: Some(49_000),
                    flow_control_wait_ns: 0,
                    socket_buffer_wait_ns: 0,
                    missing: vec![],
                    replayed: false,
                    unacked_after_ns: None,
                    write: None,
                },
            }
        })
        .collect();
    let start = Instant::now();
    for e in &events {
        model.on_event(e);
    }
    let fed = start.elapsed();
    let start = Instant::now();
    let snapshot = model.snapshot();
    let snap = start.elapsed();
    let start = Instant::now();
    let text = metrics::render(&model);
    let render = start.elapsed();
    assert_eq!(snapshot.watches.len(), 1000);
    assert!(snapshot.totals.apiserver_p99_ns.is_some());
    println!(
        "model: {:.0} watch events/s ({:.0} ns each); snapshot of 1000 watches {:.1} ms; /metrics render {:.1} ms ({} bytes)",
        n as f64 / fed.as_secs_f64(),
        fed.as_nanos() as f64 / n as f64,
        snap.as_secs_f64() * 1e3,
        render.as_secs_f64() * 1e3,
        text.len()
    );
}
