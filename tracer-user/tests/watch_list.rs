//! A watch-list stream (KEP-3157: `sendInitialEvents=true`, initial events
//! then a BOOKMARK annotated `k8s.io/initial-events-end`) gives a
//! `watch_list_synced` line with the time from the request to that
//! bookmark and the initial events' count and bytes, in JSON and in CBOR.

#[path = "record_support.rs"]
mod records;
#[path = "http2_support.rs"]
mod support;

use support::{Enc, data, headers, preface, settings};
use watchtrace::{
    metrics,
    model::{Model, ModelConfig},
    pipeline::{OutputEvent, Pipeline, PipelineConfig},
    watch::fixture::{ObjectSpec, encode_cbor_item, encode_json_line},
};

/// `bytes` the traced apiserver wrote (`egress`) or read, at `ts` (ns).
fn chunk(ts: u64, egress: bool, offset: u64, bytes: &[u8]) -> Vec<u8> {
    records::syscall_chunk(0xffff_8880_0000_3000, ts, egress, offset, bytes)
}

fn watch_list(content_type: &str, encode: fn(&ObjectSpec) -> Vec<u8>) {
    const MS: u64 = 1_000_000;
    let mut client = preface();
    client.extend(settings(&[]));
    let block = Enc::default()
        .indexed(2)
        .indexed(6)
        .literal(":authority", "10.0.0.1:6443")
        .literal(
            ":path",
            "/api/v1/configmaps?allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&sendInitialEvents=true&watch=true",
        )
        .literal("user-agent", "kube-controller-manager/v1.36.0 (linux/amd64)")
        .build();
    client.extend(headers(1, &block, true));
    let mut head = settings(&[]);
    let block = Enc::default()
        .indexed(8)
        .literal("content-type", content_type)
        .build();
    head.extend(headers(1, &block, false));
    let initial = [
        encode(&ObjectSpec::pod("ADDED", "ns-0", "a", "10")),
        encode(&ObjectSpec::pod("ADDED", "ns-0", "b", "11")),
    ];
    let mut bookmark = ObjectSpec::pod("BOOKMARK", "", "", "11");
    bookmark.annotations = vec![("k8s.io/initial-events-end".into(), "true".into())];
    let after = encode(&ObjectSpec::pod("MODIFIED", "ns-0", "a", "12"));
    let mut first = head.clone();
    first.extend(data(1, &initial.concat(), false));
    let second = data(1, &encode(&bookmark), false);
    let third = data(1, &after, false);
    let mut offset = 0;
    let mut server = |ts: u64, bytes: &[u8]| {
        let record = chunk(ts, true, offset, bytes);
        offset += bytes.len() as u64;
        record
    };
    let records = [
        chunk(1_000 * MS, false, 0, &client),
        server(1_010 * MS, &first),
        server(1_042 * MS, &second),
        server(1_500 * MS, &third),
    ];
    let mut pipeline = Pipeline::new(PipelineConfig::default(), 0);
    let mut events = Vec::new();
    for r in &records {
        pipeline.on_record(r, &mut |e| events.push(e));
    }
    let synced: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            OutputEvent::WatchListSynced {
                stream,
                resource,
                initial_events,
                initial_bytes,
                duration_ns,
                ..
            } => Some((
                *stream,
                resource.clone(),
                *initial_events,
                *initial_bytes,
                *duration_ns,
            )),
            _ => None,
        })
        .collect();
    let bytes: u64 = initial.iter().map(|e| e.len() as u64).sum();
    assert_eq!(
        synced,
        [(1, "configmaps".to_owned(), 2, bytes, 42 * MS)],
        "{content_type}"
    );
    let mut model = Model::new(ModelConfig::default());
    for e in &events {
        model.on_event(e);
    }
    let text = metrics::render(&model);
    assert!(
        text.contains(r#"watchtrace_requests_total{verb="watchlist",resource_version_kind="absent",client="kube-controller-manager"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"watchtrace_watch_list_initial_seconds_count{resource="configmaps"} 1"#),
        "{text}"
    );
}

#[test]
fn a_json_watch_list_stream_reports_its_initial_sync() {
    watch_list("application/json", encode_json_line);
}

#[test]
fn a_cbor_watch_list_stream_reports_its_initial_sync() {
    watch_list("application/cbor-seq", encode_cbor_item);
}
