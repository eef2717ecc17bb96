//! Golden fixtures: streams encoded by independent encoders (k8s-pb for
//! protobuf, Go-shaped JSON), decoded whole, split byte by byte, joined at
//! every offset, and through HTTP/1.1 chunking. See fixtures/watch/README.md.

use serde_json::Value;
use watchtrace::watch::{
    DecoderConfig, Http1WatchDecoder, WatchEvent, WatchItem, WatchStreamDecoder, WireFormat,
};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/watch/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn expected(name: &str) -> Vec<Value> {
    serde_json::from_slice(&fixture(name)).unwrap()
}

fn as_json(e: &WatchEvent) -> Value {
    serde_json::json!({
        "type": e.event_type.as_str(),
        "kind": e.object_kind,
        "apiVersion": e.api_version,
        "namespace": e.namespace,
        "name": e.name,
        "resourceVersion": e.resource_version,
        "errorCode": e.error_code,
        "errorReason": e.error_reason,
        "initialEventsEnd": e.initial_events_end,
        "bytes": e.bytes,
    })
}

fn events(items: &[WatchItem]) -> Vec<Value> {
    items
        .iter()
        .filter_map(|i| match i {
            WatchItem::Event(e) => Some(as_json(e)),
            _ => None,
        })
        .collect()
}

const CASES: [(&str, &str, WireFormat); 2] = [
    (
        "protobuf_stream.bin",
        "protobuf_stream.expected.json",
        WireFormat::Protobuf,
    ),
    (
        "json_stream.jsonl",
        "json_stream.expected.json",
        WireFormat::Json,
    ),
];

#[test]
fn fixtures_decode_whole_and_byte_by_byte() {
    for (input, want, format) in CASES {
        let body = fixture(input);
        let want = expected(want);
        for split in [body.len(), 1, 3, 4096] {
            let mut d = WatchStreamDecoder::from_start(format, DecoderConfig::default());
            let mut out = Vec::new();
            for c in body.chunks(split) {
                d.push(c, 7, &mut out);
            }
            d.finish(8, &mut out);
            assert_eq!(events(&out), want, "{input} split {split}");
            assert_eq!(out.len(), want.len(), "{input}: no loss reported");
            let dump = format!("{out:?}");
            assert!(!dump.contains("hunter2") && !dump.contains("VE9QU0VDUkVU"));
        }
    }
}

#[test]
fn fixtures_joined_at_every_offset() {
    for (input, want, format) in CASES {
        let body = fixture(input);
        let want = expected(want);
        let sizes: Vec<usize> = want
            .iter()
            .map(|w| w["bytes"].as_u64().unwrap() as usize)
            .collect();
        let starts: Vec<usize> = sizes
            .iter()
            .scan(0, |acc, s| {
                let a = *acc;
                *acc += s;
                Some(a)
            })
            .collect();
        for k in 0..body.len() {
            for declared in [None, Some(format)] {
                let mut d = WatchStreamDecoder::mid_stream(declared, DecoderConfig::default());
                let mut out = Vec::new();
                for c in body[k..].chunks(97) {
                    d.push(c, 1, &mut out);
                }
                let got = events(&out);
                let first = starts.iter().position(|&a| a >= k).unwrap_or(want.len());
                assert_eq!(got, want[first..], "{input} k={k} {declared:?}");
            }
        }
    }
}

#[test]
fn fixtures_through_http1_chunking() {
    for (input, want, format) in CASES {
        let body = fixture(input);
        let mut chunked = Vec::new();
        for c in body.chunks(1000) {
            chunked.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
            chunked.extend_from_slice(c);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        let mut d = Http1WatchDecoder::from_start(format, DecoderConfig::default());
        let mut out = Vec::new();
        for c in chunked.chunks(13) {
            d.push(c, 1, &mut out);
        }
        assert!(d.is_done());
        assert_eq!(events(&out), expected(want), "{input}");
    }
}
