//! The etcd Watch decoder on golden fixtures (encoded by `protoc` from
//! etcd's own rpc.proto) and on generated streams: split invariance,
//! joining at every offset, gaps, compressed and oversized messages.

use proptest::prelude::*;
use serde_json::{Value, json};
use watchtrace::etcd::{
    EtcdDecoderConfig, EtcdDropReason, EtcdEventType, EtcdItem, EtcdWatchDecoder, Flow, KeyRange,
    WatchFilter, WatchRequestInfo, WatchResponseInfo,
    fixture::{EventSpec, ResponseSpec, encode_grpc, encode_response},
    parse_registry_key,
};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/watch/etcd/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn response_json(r: &WatchResponseInfo, bytes: u64) -> Value {
    json!({
        "watch_id": r.watch_id,
        "revision": r.revision(),
        "created": r.created,
        "canceled": r.canceled,
        "progress_notify": r.is_progress_notify(),
        "compact_revision": r.compact_revision,
        "events": r.events.iter().map(|e| {
            let o = parse_registry_key(&e.kv.key).unwrap();
            json!({
                "type": match e.event_type {
                    EtcdEventType::Put => "PUT",
                    EtcdEventType::Delete => "DELETE",
                    EtcdEventType::Other(_) => "OTHER",
                },
                "key": e.kv.key,
                "create_revision": e.kv.create_revision,
                "mod_revision": e.kv.mod_revision,
                "version": e.kv.version,
                "value_len": e.kv.value_len,
                "prev_value_len": e.prev_kv.as_ref().map(|p| p.value_len),
                "object": [o.group, o.resource, o.namespace, o.name],
            })
        }).collect::<Vec<_>>(),
        "bytes": bytes,
    })
}

fn request_json(r: &WatchRequestInfo, bytes: u64) -> Value {
    match r {
        WatchRequestInfo::Create(c) => json!({
            "kind": "create",
            "key": c.key,
            "range": match c.range() {
                KeyRange::Single => "single",
                KeyRange::Prefix => "prefix",
                KeyRange::FromKey => "from_key",
                KeyRange::Range => "range",
            },
            "start_revision": c.start_revision,
            "progress_notify": c.progress_notify,
            "prev_kv": c.prev_kv,
            "filters": c.filters.iter().map(|f| match f {
                WatchFilter::NoPut => "NOPUT".to_owned(),
                WatchFilter::NoDelete => "NODELETE".to_owned(),
                WatchFilter::Other(n) => n.to_string(),
            }).collect::<Vec<_>>(),
            "watch_id": c.watch_id,
            "fragment": c.fragment,
            "bytes": bytes,
        }),
        WatchRequestInfo::Cancel { watch_id } => {
            json!({"kind": "cancel", "watch_id": watch_id, "bytes": bytes})
        }
        WatchRequestInfo::Progress => json!({"kind": "progress", "bytes": bytes}),
    }
}

fn messages(items: &[EtcdItem]) -> Vec<Value> {
    items
        .iter()
        .filter_map(|i| match i {
            EtcdItem::Response(f) => Some(response_json(&f.msg, f.bytes)),
            EtcdItem::Request(f) => Some(request_json(&f.msg, f.bytes)),
            _ => None,
        })
        .collect()
}

fn decode(dir: Flow, mid: bool, data: &[u8], split: usize) -> (Vec<EtcdItem>, EtcdWatchDecoder) {
    let cfg = EtcdDecoderConfig::default();
    let mut d = if mid {
        EtcdWatchDecoder::mid_stream(dir, cfg)
    } else {
        EtcdWatchDecoder::from_start(dir, cfg)
    };
    let mut out = Vec::new();
    for (i, c) in data.chunks(split.max(1)).enumerate() {
        d.push(c, i as u64, &mut out);
    }
    (out, d)
}

const FIXTURES: [(&str, Flow); 2] = [
    ("responses", Flow::ServerToClient),
    ("requests", Flow::ClientToServer),
];

#[test]
fn golden_fixtures_at_every_split() {
    for (name, dir) in FIXTURES {
        let data = fixture(&format!("{name}.bin"));
        let want: Vec<Value> =
            serde_json::from_slice(&fixture(&format!("{name}.expected.json"))).unwrap();
        for split in 1..=data.len() {
            let (out, d) = decode(dir, false, &data, split);
            assert_eq!(messages(&out), want, "{name} split {split}");
            assert_eq!(out.len(), want.len());
            assert_eq!(d.stats().message_bytes, data.len() as u64);
            assert!(!format!("{out:?}").contains("hunter2"));
        }
    }
}

#[test]
fn golden_fixtures_joined_at_every_offset() {
    for (name, dir) in FIXTURES {
        let data = fixture(&format!("{name}.bin"));
        let want: Vec<Value> =
            serde_json::from_slice(&fixture(&format!("{name}.expected.json"))).unwrap();
        let mut starts = Vec::new();
        let mut at = 0;
        for w in &want {
            starts.push(at);
            at += w["bytes"].as_u64().unwrap() as usize;
        }
        for k in 0..data.len() {
            for split in [1, 7, data.len()] {
                let (out, _) = decode(dir, true, &data[k..], split);
                let first = starts.iter().position(|&a| a >= k).unwrap_or(want.len());
                assert_eq!(messages(&out), want[first..], "{name} k={k} split={split}");
                if first < want.len() {
                    assert_eq!(
                        out[0],
                        EtcdItem::Synced {
                            skipped_bytes: (starts[first] - k) as u64,
                            ts_ns: out
                                .iter()
                                .find_map(|i| match i {
                                    EtcdItem::Synced { ts_ns, .. } => Some(*ts_ns),
                                    _ => None,
                                })
                                .unwrap()
                        }
                    );
                }
            }
        }
    }
}

#[test]
fn compressed_messages_are_counted_and_skipped() {
    let a = encode_grpc(&encode_response(&resp(1, 10, 2)));
    let mut comp = encode_grpc(b"\x1f\x8b\x08\x00gzip-bytes");
    comp[0] = 1;
    let b = encode_grpc(&encode_response(&resp(1, 11, 1)));
    let data = [a.clone(), comp.clone(), b.clone()].concat();
    for split in 1..data.len() {
        let (out, d) = decode(Flow::ServerToClient, false, &data, split);
        let revs: Vec<i64> = out
            .iter()
            .filter_map(|i| match i {
                EtcdItem::Response(f) => Some(f.msg.revision()),
                _ => None,
            })
            .collect();
        assert_eq!(revs, [10, 11]);
        assert_eq!(d.stats().compressed_messages, 1);
        assert_eq!(d.stats().compressed_bytes, comp.len() as u64);
        assert!(out.iter().any(|i| matches!(
            i,
            EtcdItem::Dropped {
                reason: EtcdDropReason::Compressed,
                ..
            }
        )));
    }
}

#[test]
fn oversized_and_malformed_messages_resync() {
    let a = encode_grpc(&encode_response(&resp(1, 10, 1)));
    let big = encode_grpc(&encode_response(&ResponseSpec {
        events: vec![ev("/registry/configmaps/a/big", 11, vec![b'x'; 3000])],
        ..resp(1, 11, 0)
    }));
    let mut bad = encode_grpc(&encode_response(&resp(1, 12, 1)));
    bad[5] = 0x08; // header as a varint: not a WatchResponse
    let c = encode_grpc(&encode_response(&resp(1, 13, 1)));
    let data = [a, big, bad, c].concat();
    let cfg = EtcdDecoderConfig {
        max_message_bytes: 1000,
    };
    let mut d = EtcdWatchDecoder::from_start(Flow::ServerToClient, cfg);
    let mut out = Vec::new();
    for ch in data.chunks(11) {
        d.push(ch, 1, &mut out);
    }
    let revs: Vec<i64> = out
        .iter()
        .filter_map(|i| match i {
            EtcdItem::Response(f) => Some(f.msg.revision()),
            _ => None,
        })
        .collect();
    assert_eq!(revs, [10, 13]);
    assert_eq!(d.stats().oversized_messages, 1);
    assert!(d.stats().syncs >= 1);
}

fn ev(key: &str, rev: i64, value: Vec<u8>) -> EventSpec {
    EventSpec {
        delete: false,
        key: key.into(),
        create_revision: rev,
        mod_revision: rev,
        version: 1,
        value,
        lease: 0,
        prev_value: None,
    }
}

fn resp(watch_id: i64, revision: i64, events: usize) -> ResponseSpec {
    ResponseSpec {
        cluster_id: 0xcdf8_18c3_f0a5_7f32,
        member_id: 0x8e9e_05c5_2164_694d,
        revision,
        raft_term: 3,
        watch_id,
        events: (0..events)
            .map(|i| {
                ev(
                    &format!("/registry/pods/ns/p{i}"),
                    revision,
                    b"k8s\0v".to_vec(),
                )
            })
            .collect(),
        ..ResponseSpec::default()
    }
}

prop_compose! {
    fn event_spec()(
        delete in any::<bool>(),
        resource in prop::sample::select(vec!["pods", "secrets", "minions", "stable.example.com/crontabs"]),
        ns in "[a-z0-9-]{1,12}",
        name in "[a-z0-9.-]{1,20}",
        rev in 1i64..1_000_000_000,
        version in 0i64..100,
        value in prop::collection::vec(any::<u8>(), 0..200),
        prev in prop::option::of(prop::collection::vec(any::<u8>(), 0..50)),
        lease in prop::option::of(1i64..1_000_000),
    ) -> EventSpec {
        let key = if resource == "minions" {
            format!("/registry/minions/{name}")
        } else {
            format!("/registry/{resource}/{ns}/{name}")
        };
        EventSpec {
            delete,
            key,
            create_revision: rev / 2,
            mod_revision: rev,
            version,
            value,
            lease: lease.unwrap_or(0),
            prev_value: prev,
        }
    }
}

prop_compose! {
    fn response_spec()(
        revision in 1i64..i64::MAX,
        watch_id in 0i64..100,
        flags in 0u8..8,
        compact in prop::option::of(1i64..1000),
        events in prop::collection::vec(event_spec(), 0..5),
    ) -> ResponseSpec {
        ResponseSpec {
            cluster_id: 0x1234_5678_9abc_def0,
            member_id: 0x0fed_cba9_8765_4321,
            revision,
            raft_term: 5,
            watch_id,
            created: flags & 1 != 0,
            canceled: flags & 2 != 0,
            fragment: flags & 4 != 0,
            compact_revision: compact.unwrap_or(0),
            cancel_reason: if flags & 2 != 0 { "canceled".into() } else { String::new() },
            events,
        }
    }
}

fn expect(r: &ResponseSpec) -> Value {
    json!({
        "watch_id": r.watch_id,
        "revision": r.revision,
        "created": r.created,
        "canceled": r.canceled,
        "fragment": r.fragment,
        "compact_revision": r.compact_revision,
        "progress": r.events.is_empty() && !r.created && !r.canceled && r.compact_revision == 0,
        "events": r.events.iter().map(|e| json!([
            e.delete, e.key, e.mod_revision, e.create_revision, e.version,
            e.value.len(), e.lease, e.prev_value.as_ref().map(Vec::len),
        ])).collect::<Vec<_>>(),
    })
}

fn got(r: &WatchResponseInfo) -> Value {
    json!({
        "watch_id": r.watch_id,
        "revision": r.revision(),
        "created": r.created,
        "canceled": r.canceled,
        "fragment": r.fragment,
        "compact_revision": r.compact_revision,
        "progress": r.is_progress_notify(),
        "events": r.events.iter().map(|e| json!([
            e.event_type == EtcdEventType::Delete, e.kv.key, e.kv.mod_revision,
            e.kv.create_revision, e.kv.version, e.kv.value_len, e.kv.lease,
            e.prev_kv.as_ref().map(|p| p.value_len),
        ])).collect::<Vec<_>>(),
    })
}

fn responses(items: &[EtcdItem]) -> Vec<Value> {
    items
        .iter()
        .filter_map(|i| match i {
            EtcdItem::Response(f) => Some(got(&f.msg)),
            _ => None,
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(128)
    ))]

    /// Split anywhere: the same responses, sizes and no loss.
    #[test]
    fn responses_survive_any_split(
        specs in prop::collection::vec(response_spec(), 0..8),
        raw_cuts in prop::collection::vec(any::<usize>(), 0..30),
    ) {
        let msgs: Vec<Vec<u8>> = specs.iter().map(|s| encode_grpc(&encode_response(s))).collect();
        let data = msgs.concat();
        let mut cuts: Vec<usize> = raw_cuts.iter().map(|c| c % (data.len() + 1)).collect();
        cuts.sort_unstable();
        let mut d = EtcdWatchDecoder::from_start(Flow::ServerToClient, EtcdDecoderConfig::default());
        let mut out = Vec::new();
        let mut p = 0;
        for c in cuts.into_iter().chain([data.len()]) {
            d.push(&data[p..c], c as u64, &mut out);
            p = c;
        }
        prop_assert_eq!(responses(&out), specs.iter().map(expect).collect::<Vec<_>>());
        let sizes: Vec<u64> = out.iter().filter_map(|i| match i {
            EtcdItem::Response(f) => Some(f.bytes),
            _ => None,
        }).collect();
        prop_assert_eq!(sizes, msgs.iter().map(|m| m.len() as u64).collect::<Vec<_>>());
        let dump = format!("{out:?}");
        prop_assert!(!dump.contains("SECRET"));
    }

    /// Joined at K: every message starting at or after K, nothing else.
    #[test]
    fn responses_mid_stream(
        specs in prop::collection::vec(response_spec(), 1..6),
        k_frac in 0.0f64..1.0,
        split in 1usize..64,
    ) {
        let msgs: Vec<Vec<u8>> = specs.iter().map(|s| encode_grpc(&encode_response(s))).collect();
        let data = msgs.concat();
        let k = (data.len() as f64 * k_frac) as usize;
        let (out, _) = decode(Flow::ServerToClient, true, &data[k..], split);
        let mut at = 0;
        let want: Vec<Value> = specs.iter().zip(&msgs).filter_map(|(s, m)| {
            let start = at;
            at += m.len();
            (start >= k).then(|| expect(s))
        }).collect();
        prop_assert_eq!(responses(&out), want);
    }

    /// A gap loses only the messages it touches.
    #[test]
    fn responses_gap(
        specs in prop::collection::vec(response_spec(), 1..8),
        p_frac in 0.0f64..1.0,
        g in 0usize..300,
        split in 1usize..64,
    ) {
        let msgs: Vec<Vec<u8>> = specs.iter().map(|s| encode_grpc(&encode_response(s))).collect();
        let data = msgs.concat();
        let p = (data.len() as f64 * p_frac) as usize;
        let q = (p + g).min(data.len());
        let mut d = EtcdWatchDecoder::from_start(Flow::ServerToClient, EtcdDecoderConfig::default());
        let mut out = Vec::new();
        for c in data[..p].chunks(split) {
            d.push(c, 1, &mut out);
        }
        d.gap((q - p) as u64, 2, &mut out);
        for c in data[q..].chunks(split) {
            d.push(c, 3, &mut out);
        }
        d.finish(4, &mut out);
        let mut at = 0;
        let want: Vec<Value> = specs.iter().zip(&msgs).filter_map(|(s, m)| {
            let (a, b) = (at, at + m.len());
            at = b;
            (b <= p || a >= q).then(|| expect(s))
        }).collect();
        prop_assert_eq!(responses(&out), want);
    }
}
