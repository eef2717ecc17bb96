//! A LIST response gives a `list_response` line with its bytes on the wire
//! and decoded (a gzip body's size from its trailer), its encoding, and
//! when its first and last bytes were written; a body with lost bytes, or
//! cut short, says so and claims no decoded size. The model counts them in
//! the LIST families of `/metrics`.

#[path = "record_support.rs"]
mod records;
#[path = "http2_support.rs"]
mod support;

use support::{Enc, data, headers, preface, rst, settings};
use watchtrace::{
    metrics,
    model::{Model, ModelConfig},
    pipeline::OutputEvent,
    watch::fixture::{ObjectSpec, encode_cbor_item, encode_json_line, gzip_flushed},
};

const MS: u64 = 1_000_000;

/// `bytes` the traced apiserver wrote (`egress`) or read, at `ts` (ns).
fn chunk(ts: u64, egress: bool, offset: u64, bytes: &[u8]) -> Vec<u8> {
    records::syscall_chunk(0xffff_8880_0000_4000, ts, egress, offset, bytes)
}

/// A LIST body of `n` configmaps, as the items a watch would send (the
/// walker does not read LIST bodies: any bytes of the right size do).
fn body(n: usize, encode: fn(&ObjectSpec) -> Vec<u8>) -> Vec<u8> {
    (0..n)
        .flat_map(|i| {
            let rv = (100 + i).to_string();
            encode(&ObjectSpec::pod("ADDED", "ns-0", &format!("cm-{i}"), &rv))
        })
        .collect()
}

/// How the response goes wrong, if it does.
#[derive(Clone, Copy, PartialEq)]
enum Fault {
    None,
    /// The capture loses the middle third of the body.
    LoseMiddle,
    /// The server resets the stream before the body ends.
    Reset,
}

/// The records of one LIST at t=1 s answered 5 ms later (HEADERS), its
/// body written at 10, 20 and 30 ms after the request, as three pieces of
/// one DATA frame (or two, then a RST_STREAM); and what the pipeline made
/// of them.
fn list(
    status: &str,
    content_type: &str,
    gzip: bool,
    plain: &[u8],
    fault: Fault,
) -> Vec<OutputEvent> {
    let mut client = preface();
    client.extend(settings(&[]));
    let block = Enc::default()
        .indexed(2)
        .indexed(6)
        .literal(":authority", "10.0.0.1:6443")
        .literal(":path", "/api/v1/configmaps?limit=500&resourceVersion=0")
        .literal("user-agent", "kube-scheduler/v1.36.0 (linux/amd64)")
        .build();
    client.extend(headers(1, &block, true));
    let mut block = Enc::default()
        .literal_idx_name(8, status)
        .literal("content-type", content_type);
    if gzip {
        block = block.literal("content-encoding", "gzip");
    }
    let mut head = settings(&[]);
    head.extend(headers(1, &block.build(), false));
    let wire = if gzip {
        gzip_flushed(&[plain.to_vec()]).concat()
    } else {
        plain.to_vec()
    };
    let pieces: Vec<Vec<u8>> = if fault == Fault::Reset {
        // Two thirds of the body in a DATA frame, then RST_STREAM(CANCEL).
        let frame = data(1, &wire[..2 * wire.len() / 3], false);
        let a = frame.len() / 2;
        vec![frame[..a].to_vec(), frame[a..].to_vec(), rst(1, 8)]
    } else {
        let frame = data(1, &wire, true);
        let (a, b) = (frame.len() / 3, 2 * frame.len() / 3);
        vec![
            frame[..a].to_vec(),
            frame[a..b].to_vec(),
            frame[b..].to_vec(),
        ]
    };
    let mut records = vec![
        chunk(1_000 * MS, false, 0, &client),
        chunk(1_005 * MS, true, 0, &head),
    ];
    let mut offset = head.len() as u64;
    for (i, piece) in pieces.iter().enumerate() {
        if !(fault == Fault::LoseMiddle && i == 1) {
            records.push(chunk((1_010 + 10 * i as u64) * MS, true, offset, piece));
        }
        offset += piece.len() as u64;
    }
    records::run_pipeline(&records)
}

fn gzip_len(plain: &[u8]) -> u64 {
    gzip_flushed(&[plain.to_vec()]).concat().len() as u64
}

#[test]
fn a_gzip_list_reports_its_wire_and_decoded_bytes_and_its_times() {
    let plain = body(400, encode_json_line);
    let line = records::the_line(
        &list("200", "application/json", true, &plain, Fault::None),
        "list_response",
    );
    let base = 1_000 * MS;
    assert_eq!(line["kind"], "list_response");
    assert_eq!(line["resource"], "configmaps");
    assert_eq!(line["resource_version_kind"], "zero");
    assert_eq!(line["status"], 200);
    assert_eq!(line["encoding"], "json+gzip");
    assert_eq!(line["wire_bytes"], gzip_len(&plain));
    assert_eq!(line["decoded_bytes"], plain.len() as u64);
    assert!(line["wire_bytes"].as_u64() < line["decoded_bytes"].as_u64());
    assert_eq!(line["lost_bytes"], 0);
    assert_eq!(line["t_request"], base);
    assert_eq!(line["t_first_byte"], base + 5 * MS);
    assert_eq!(line["t_last_byte"], base + 30 * MS);
    assert_eq!(line["first_byte_ns"], 5 * MS);
    assert_eq!(line["duration_ns"], 30 * MS);
    assert_eq!(line["complete"], true);
    assert_eq!(line["user_agent"], "kube-scheduler/v1.36.0 (linux/amd64)");
}

#[test]
fn an_uncompressed_cbor_list_is_its_own_decoded_size() {
    let plain = body(50, encode_cbor_item);
    let line = records::the_line(
        &list("200", "application/cbor", false, &plain, Fault::None),
        "list_response",
    );
    assert_eq!(line["encoding"], "cbor");
    assert_eq!(line["wire_bytes"], plain.len() as u64);
    assert_eq!(line["decoded_bytes"], plain.len() as u64);
}

#[test]
fn a_list_that_lost_bytes_counts_them_and_claims_no_decoded_size() {
    let plain = body(400, encode_json_line);
    let events = list("200", "application/json", true, &plain, Fault::LoseMiddle);
    let line = records::the_line(&events, "list_response");
    assert_eq!(line["wire_bytes"], gzip_len(&plain), "lost bytes included");
    assert!(line["lost_bytes"].as_u64().unwrap() > 0, "{line}");
    assert_eq!(line["decoded_bytes"], serde_json::Value::Null);
    assert_eq!(line["complete"], false);
    assert!(events.iter().any(|e| matches!(e, OutputEvent::Gap { .. })));
}

#[test]
fn a_list_reset_before_its_end_is_not_complete() {
    let plain = body(400, encode_json_line);
    let line = records::the_line(
        &list("200", "application/json", true, &plain, Fault::Reset),
        "list_response",
    );
    assert_eq!(line["complete"], false);
    assert_eq!(line["decoded_bytes"], serde_json::Value::Null);
    assert_eq!(line["t_last_byte"], 1_020 * MS, "its last body byte");
}

#[test]
fn lists_are_counted_by_client_encoding_and_status_in_metrics() {
    let plain = body(400, encode_json_line);
    let mut model = Model::new(ModelConfig::default());
    for (status, gzip) in [("200", true), ("200", true), ("429", false)] {
        let payload: &[u8] = if status == "200" { &plain } else { b"{}" };
        for e in list(status, "application/json", gzip, payload, Fault::None) {
            model.on_event(&e);
        }
    }
    let text = metrics::render(&model);
    let has = |sample: &str| assert!(text.contains(sample), "{sample}\n{text}");
    has(
        r#"watchtrace_list_responses_total{resource="configmaps",client="kube-scheduler",resource_version_kind="zero",encoding="json+gzip",code="200"} 2"#,
    );
    has(
        r#"watchtrace_list_responses_total{resource="configmaps",client="kube-scheduler",resource_version_kind="zero",encoding="json",code="429"} 1"#,
    );
    has(&format!(
        r#"watchtrace_list_response_bytes_total{{resource="configmaps",encoding="json+gzip"}} {}"#,
        2 * gzip_len(&plain)
    ));
    has(&format!(
        r#"watchtrace_list_response_decoded_bytes_total{{resource="configmaps",encoding="json+gzip"}} {}"#,
        2 * plain.len()
    ));
    has(r#"watchtrace_list_duration_seconds_count{resource="configmaps"} 3"#);
    has(
        r#"watchtrace_requests_total{verb="list",resource_version_kind="zero",client="kube-scheduler"} 3"#,
    );
}
