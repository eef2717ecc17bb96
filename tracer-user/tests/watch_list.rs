//! A watch-list stream (KEP-3157: `sendInitialEvents=true`, initial events
//! then a BOOKMARK annotated `k8s.io/initial-events-end`) gives a
//! `watch_list_synced` line with the time from the request to that
//! bookmark and the initial events' count and bytes: in JSON, in CBOR,
//! and gzip-encoded (as since Kubernetes 1.37), where a gap stops the
//! inflating and the bytes after it are reported, not guessed.

#[path = "record_support.rs"]
mod records;
#[path = "http2_support.rs"]
mod support;

use support::{Enc, data, headers, preface, settings};
use watchtrace::{
    metrics,
    model::{Model, ModelConfig},
    pipeline::{OutputEvent, Pipeline, PipelineConfig},
    pipeline::{UndecodableLayer, UndecodableReason},
    watch::fixture::{ObjectSpec, encode_cbor_item, encode_json_line, gzip_flushed},
};

/// `bytes` the traced apiserver wrote (`egress`) or read, at `ts` (ns).
fn chunk(ts: u64, egress: bool, offset: u64, bytes: &[u8]) -> Vec<u8> {
    records::syscall_chunk(0xffff_8880_0000_3000, ts, egress, offset, bytes)
}

/// The stream's records: request, then the server's bytes in three sends
/// (initial events; the bookmark; a later event), gzip-encoded as one
/// member flushed after each when `gzipped`.
fn watch_list(content_type: &str, encode: fn(&ObjectSpec) -> Vec<u8>, gzipped: bool) {
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
    let mut block = Enc::default()
        .indexed(8)
        .literal("content-type", content_type);
    if gzipped {
        block = block.literal("content-encoding", "gzip");
    }
    head.extend(headers(1, &block.build(), false));
    let initial = [
        encode(&ObjectSpec::pod("ADDED", "ns-0", "a", "10")),
        encode(&ObjectSpec::pod("ADDED", "ns-0", "b", "11")),
    ];
    let mut bookmark = ObjectSpec::pod("BOOKMARK", "", "", "11");
    bookmark.annotations = vec![("k8s.io/initial-events-end".into(), "true".into())];
    let after = encode(&ObjectSpec::pod("MODIFIED", "ns-0", "a", "12"));
    let mut body = vec![initial.concat(), encode(&bookmark), after];
    if gzipped {
        body = gzip_flushed(&body);
    }
    let mut first = head.clone();
    first.extend(data(1, &body[0], false));
    let second = data(1, &body[1], false);
    let third = data(1, &body[2], false);
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
    if gzipped {
        // The same, with the bookmark's piece lost: the inflater cannot go
        // on, so the later piece is reported, and no sync is claimed.
        let mut pipeline = Pipeline::new(PipelineConfig::default(), 0);
        let mut cut = Vec::new();
        for (i, r) in records.iter().enumerate() {
            if i != 2 {
                pipeline.on_record(r, &mut |e| cut.push(e));
            }
        }
        let unread: Vec<_> = cut
            .iter()
            .filter_map(|e| match e {
                OutputEvent::Undecodable {
                    stream: Some(1),
                    layer: UndecodableLayer::Watch,
                    reason,
                    bytes,
                    ..
                } => Some((*reason, *bytes)),
                _ => None,
            })
            .collect();
        assert_eq!(
            unread,
            [(UndecodableReason::CutByGap, body[2].len() as u64)],
            "{content_type}"
        );
        assert!(cut.iter().any(|e| matches!(e, OutputEvent::Gap { .. })));
        assert!(
            !cut.iter()
                .any(|e| matches!(e, OutputEvent::WatchListSynced { .. })),
            "{content_type}"
        );
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
    watch_list("application/json", encode_json_line, false);
}

#[test]
fn a_cbor_watch_list_stream_reports_its_initial_sync() {
    watch_list("application/cbor-seq", encode_cbor_item, false);
}

#[test]
fn a_gzip_encoded_watch_list_stream_reports_its_initial_sync() {
    watch_list("application/json", encode_json_line, true);
    watch_list("application/cbor-seq", encode_cbor_item, true);
}

/// A gzip watch-list stream joined mid-member: no request or response
/// HEADERS seen, its DATA frames each end with deflate's sync-flush marker.
/// It cannot be inflated: every body byte seen is reported as
/// `joined_mid_gzip`, none as an event, and nothing is guessed.
#[test]
fn a_gzip_stream_joined_mid_member_is_reported_with_its_bytes() {
    const MS: u64 = 1_000_000;
    let events: Vec<Vec<u8>> = (0..8)
        .map(|i| {
            let rv = (100 + i).to_string();
            encode_json_line(&ObjectSpec::pod("ADDED", "ns-0", &format!("p{i}"), &rv))
        })
        .collect();
    let parts = gzip_flushed(&events);
    // Joined after the member's first two flushes: the capture begins at
    // a DATA frame boundary 5000 bytes into the connection.
    let mut offset = 5_000;
    let mut records = Vec::new();
    let mut body_bytes = 0;
    for (i, part) in parts.iter().enumerate().skip(2) {
        let frame = data(3, part, i == parts.len() - 1);
        records.push(chunk((1_000 + i as u64) * MS, true, offset, &frame));
        offset += frame.len() as u64;
        body_bytes += part.len() as u64;
    }
    let mut pipeline = Pipeline::new(PipelineConfig::default(), 0);
    let mut out = Vec::new();
    for r in &records {
        pipeline.on_record(r, &mut |e| out.push(e));
    }
    pipeline.flush(&mut |e| out.push(e));
    let reported: Vec<_> = out
        .iter()
        .filter_map(|e| match e {
            OutputEvent::Undecodable {
                stream: Some(3),
                layer: UndecodableLayer::Watch,
                reason,
                bytes,
                ..
            } => Some((*reason, *bytes)),
            _ => None,
        })
        .collect();
    assert!(
        reported
            .iter()
            .all(|(reason, _)| *reason == UndecodableReason::JoinedMidGzip),
        "{reported:?}"
    );
    let total: u64 = reported.iter().map(|(_, b)| b).sum();
    assert_eq!(
        total, body_bytes,
        "every body byte seen, once: {reported:?}"
    );
    assert!(
        !out.iter()
            .any(|e| matches!(e, OutputEvent::WatchEvent { .. })),
        "no event guessed"
    );
}

/// The same stream with a gzip member per flush (as Kubernetes 1.37 ends
/// a member at every flush): joined mid-member, the partial member is
/// reported as `joined_mid_gzip` and every event from the next member on
/// is decoded.
#[test]
fn a_stream_with_a_gzip_member_per_flush_is_decoded_from_the_next_member() {
    use std::io::Write as _;
    const MS: u64 = 1_000_000;
    let events: Vec<Vec<u8>> = (0..6)
        .map(|i| {
            let rv = (100 + i).to_string();
            encode_json_line(&ObjectSpec::pod("ADDED", "ns-0", &format!("p{i}"), &rv))
        })
        .collect();
    let members: Vec<Vec<u8>> = events
        .iter()
        .map(|e| {
            let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            g.write_all(e).unwrap();
            g.finish().unwrap()
        })
        .collect();
    // Joined 7 bytes into the second member.
    let mut pieces = vec![members[1][7..].to_vec()];
    pieces.extend(members[2..].iter().cloned());
    let mut offset = 9_000;
    let mut pipeline = Pipeline::new(PipelineConfig::default(), 0);
    let mut out = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        let frame = data(5, piece, false);
        let record = chunk((1_000 + i as u64) * MS, true, offset, &frame);
        offset += frame.len() as u64;
        pipeline.on_record(&record, &mut |e| out.push(e));
    }
    let names: Vec<String> = out
        .iter()
        .filter_map(|e| match e {
            OutputEvent::WatchEvent { name, .. } => Some(name.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(names, ["p2", "p3", "p4", "p5"]);
    let reported: Vec<_> = out
        .iter()
        .filter_map(|e| match e {
            OutputEvent::Undecodable { reason, bytes, .. } => Some((*reason, *bytes)),
            _ => None,
        })
        .collect();
    assert_eq!(
        reported,
        [(UndecodableReason::JoinedMidGzip, pieces[0].len() as u64)]
    );
}
