//! Bytes that cannot be decoded are counted, never silent: an
//! `undecodable` line with the connection, stream and stream offset, and
//! `watchtrace_undecodable_total{layer,reason}`.

#[path = "record_support.rs"]
mod records;
#[path = "http2_support.rs"]
mod support;

use support::{Enc, data, headers, preface, settings};
use tracer_common::record::Direction;
use watchtrace::{
    metrics,
    model::{Model, ModelConfig},
    pipeline::{OutputEvent, Pipeline, PipelineConfig, UndecodableLayer, UndecodableReason},
};

const SOCK: u64 = 0xffff_8880_0000_2000;

/// `bytes` the traced apiserver wrote (`egress`) or read, at `ts` (ns).
fn chunk(ts: u64, egress: bool, offset: u64, bytes: &[u8]) -> Vec<u8> {
    records::syscall_chunk(SOCK, ts, egress, offset, bytes)
}

fn event_line(event_type: &str, name: &str, rv: u32) -> String {
    format!(
        r#"{{"{event_type}":"MODIFIED","object":{{"kind":"ConfigMap","apiVersion":"v1","metadata":{{"name":"{name}","namespace":"ns-0","resourceVersion":"{rv}"}},"data":{{"k":"v"}}}}}}"#
    ) + "\n"
}

#[test]
fn a_watch_event_with_one_changed_byte_is_counted_not_silently_lost() {
    // An h2c watch from its start; the second of three events has `type`
    // changed to `Xype`.
    let mut client = preface();
    client.extend(settings(&[]));
    let block = Enc::default()
        .indexed(2)
        .indexed(6)
        .literal(":authority", "10.0.0.1:6443")
        .literal(":path", "/api/v1/namespaces/ns-0/configmaps?watch=true")
        .literal("accept", "application/json")
        .build();
    client.extend(headers(1, &block, true));
    let mut server = settings(&[]);
    let block = Enc::default()
        .indexed(8)
        .literal("content-type", "application/json")
        .build();
    server.extend(headers(1, &block, false));
    let bad = event_line("Xype", "b", 11);
    let body = [
        event_line("type", "a", 10),
        bad.clone(),
        event_line("type", "c", 12),
    ]
    .concat();
    let before = server.len() as u64;
    server.extend(data(1, body.as_bytes(), false));
    let records = [
        chunk(1_000, false, 0, &client),
        chunk(2_000, true, 0, &server),
    ];

    let mut pipeline = Pipeline::new(PipelineConfig::default(), 0);
    let mut events = Vec::new();
    for r in &records {
        pipeline.on_record(r, &mut |e| events.push(e));
    }
    let names: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            OutputEvent::WatchEvent { name, .. } => Some(name.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(names, ["a", "c"]);
    let undecodable: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            OutputEvent::Undecodable {
                conn,
                stream,
                layer,
                reason,
                bytes,
                direction,
                stream_offset,
                ..
            } => Some((
                *conn,
                *stream,
                *layer,
                *reason,
                *bytes,
                *direction,
                *stream_offset,
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        undecodable,
        [(
            Some(1),
            Some(1),
            UndecodableLayer::Watch,
            UndecodableReason::Malformed,
            bad.len() as u64,
            Some(Direction::Egress),
            Some(before + 9 + body.len() as u64),
        )]
    );
    let json = serde_json::to_string(
        events
            .iter()
            .find(|e| matches!(e, OutputEvent::Undecodable { .. }))
            .unwrap(),
    )
    .unwrap();
    assert!(json.starts_with(r#"{"kind":"undecodable""#), "{json}");
    assert!(
        json.contains(r#""layer":"watch","reason":"malformed""#),
        "{json}"
    );
    assert!(json.contains(r#""direction":"out""#), "{json}");

    let mut model = Model::new(ModelConfig::default());
    for e in &events {
        model.on_event(e);
    }
    let text = metrics::render(&model);
    assert!(
        text.contains(r#"watchtrace_undecodable_total{layer="watch",reason="malformed"} 1"#),
        "{text}"
    );
}

#[test]
fn an_unreadable_record_is_an_undecodable_line_too() {
    let mut pipeline = Pipeline::new(PipelineConfig::default(), 0);
    let mut events = Vec::new();
    // A header of an unknown kind.
    let mut record = vec![0u8; 24];
    record[8] = 0xee;
    pipeline.on_record(&record, &mut |e| events.push(e));
    pipeline.on_record(&[1, 2, 3], &mut |e| events.push(e));
    let reasons: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            OutputEvent::Undecodable {
                conn: None,
                layer: UndecodableLayer::Record,
                reason,
                bytes,
                ..
            } => Some((*reason, *bytes)),
            _ => None,
        })
        .collect();
    assert_eq!(
        reasons,
        [
            (UndecodableReason::UnknownKind, 24),
            (UndecodableReason::Short, 3)
        ]
    );
    assert_eq!(pipeline.stats().undecodable_records, 2);
}

#[test]
fn a_chunk_offset_past_any_stream_is_undecodable_not_a_gap_of_petabytes() {
    let mut pipeline = Pipeline::new(PipelineConfig::default(), 0);
    let mut events = Vec::new();
    let records = [
        chunk(1_000, false, 0, &preface()),
        // A damaged offset near u64::MAX.
        chunk(2_000, false, u64::MAX - 10_000, b"xx"),
        chunk(3_000, false, preface().len() as u64, &settings(&[])),
    ];
    for r in &records {
        pipeline.on_record(r, &mut |e| events.push(e));
    }
    assert!(
        !events.iter().any(|e| matches!(e, OutputEvent::Gap { .. })),
        "{events:?}"
    );
    assert!(events.iter().any(|e| matches!(
        e,
        OutputEvent::Undecodable {
            layer: UndecodableLayer::Record,
            reason: UndecodableReason::Malformed,
            ..
        }
    )));
    assert_eq!(pipeline.stream_stats().gap_bytes, 0);
}
