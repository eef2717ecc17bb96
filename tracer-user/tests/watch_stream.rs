//! Properties of the watch-body decoders over generated streams: any split
//! gives the same events; a stream joined at any offset recovers every
//! event that starts after it and invents none; a gap loses only the events
//! it touches; sizes, times and losses are reported exactly.

use std::collections::BTreeMap;

use proptest::prelude::*;
use watchtrace::watch::{
    DecoderConfig, DropReason, EventType, Http1WatchDecoder, WatchEvent, WatchItem,
    WatchStreamDecoder, WireFormat,
    fixture::{
        ObjectSpec, encode_cbor_item, encode_json_line, encode_protobuf_frame, gzip_flushed,
    },
    gzip::Gunzip,
};

/// What a decoder must report for one spec (times aside).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Expect {
    event_type: EventType,
    kind: String,
    api_version: String,
    namespace: String,
    name: String,
    resource_version: String,
    error_code: Option<i32>,
    error_reason: Option<String>,
    initial_events_end: bool,
    bytes: u64,
}

impl Expect {
    fn of(s: &ObjectSpec, bytes: usize) -> Self {
        let status = s.kind == "Status";
        Self {
            event_type: EventType::from_wire(s.event_type.as_bytes()),
            kind: s.kind.clone(),
            api_version: s.api_version.clone(),
            namespace: if status {
                String::new()
            } else {
                s.namespace.clone()
            },
            name: if status {
                String::new()
            } else {
                s.name.clone()
            },
            resource_version: s.resource_version.clone(),
            error_code: status.then_some(s.status_code),
            error_reason: status.then(|| s.status_reason.clone()),
            initial_events_end: !status
                && s.annotations
                    .iter()
                    .any(|(k, v)| k == "k8s.io/initial-events-end" && v == "true"),
            bytes: bytes as u64,
        }
    }

    fn from_event(e: &WatchEvent) -> Self {
        Self {
            event_type: e.event_type.clone(),
            kind: e.object_kind.to_string(),
            api_version: e.api_version.to_string(),
            namespace: e.namespace.to_string(),
            name: e.name.to_string(),
            resource_version: e.resource_version.to_string(),
            error_code: e.error_code,
            error_reason: e.error_reason.clone(),
            initial_events_end: e.initial_events_end,
            bytes: e.bytes,
        }
    }
}

/// An encoded stream and where each event starts and ends.
struct Stream {
    bytes: Vec<u8>,
    spans: Vec<(usize, usize)>,
    expect: Vec<Expect>,
}

fn encode(specs: &[ObjectSpec], format: WireFormat) -> Stream {
    let mut bytes = Vec::new();
    let mut spans = Vec::new();
    let mut expect = Vec::new();
    for s in specs {
        let e = match format {
            WireFormat::Json => encode_json_line(s),
            WireFormat::Protobuf => encode_protobuf_frame(s),
            WireFormat::Cbor => encode_cbor_item(s),
        };
        spans.push((bytes.len(), bytes.len() + e.len()));
        expect.push(Expect::of(s, e.len()));
        bytes.extend_from_slice(&e);
    }
    Stream {
        bytes,
        spans,
        expect,
    }
}

/// Feeds `data` cut at `cuts` (sorted offsets), piece `i` stamped `base+i`.
fn feed(
    d: &mut WatchStreamDecoder,
    data: &[u8],
    cuts: &[usize],
    base: u64,
    out: &mut Vec<WatchItem>,
) {
    let mut prev = 0;
    for (i, &c) in cuts.iter().chain(std::iter::once(&data.len())).enumerate() {
        let c = c.min(data.len()).max(prev);
        d.push(&data[prev..c], base + i as u64, out);
        prev = c;
    }
}

fn events(items: &[WatchItem]) -> Vec<Expect> {
    items
        .iter()
        .filter_map(|i| match i {
            WatchItem::Event(e) => Some(Expect::from_event(e)),
            _ => None,
        })
        .collect()
}

fn name_strategy() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9.-]{0,30}[a-z0-9])?"
}

prop_compose! {
    fn object_spec()(
        t in prop::sample::select(vec!["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"]),
        kind in prop::sample::select(vec!["Pod", "Secret", "ConfigMap", "Lease"]),
        api in prop::sample::select(vec!["v1", "coordination.k8s.io/v1"]),
        ns in prop::option::of("[a-z0-9-]{1,20}"),
        name in name_strategy(),
        rv in 1u64..u64::MAX,
        labels in prop::collection::btree_map("[a-z]{1,10}", "[a-z0-9]{0,10}", 0..3),
        annotations in prop::collection::btree_map(
            prop::sample::select(vec!["k8s.io/initial-events-end", "a", "b/c", "k8s.io/initial-events-endx"]),
            prop::sample::select(vec!["true", "false", "", "{\"x\":\"\\n\"}"]),
            0..3,
        ),
        code in prop::sample::select(vec![410, 500, 504, -1]),
        payload in prop::collection::vec(any::<u8>(), 0..400),
    ) -> ObjectSpec {
        if t == "ERROR" {
            let mut s = ObjectSpec::status_error(code, "Expired");
            s.payload = payload;
            s.resource_version = if rv % 2 == 0 { String::new() } else { rv.to_string() };
            return s;
        }
        ObjectSpec {
            event_type: t.into(),
            kind: kind.into(),
            api_version: api.into(),
            namespace: ns.unwrap_or_default(),
            name,
            resource_version: rv.to_string(),
            labels: labels.into_iter().collect(),
            annotations: annotations
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect::<BTreeMap<_, _>>()
                .into_iter()
                .collect(),
            status_code: 0,
            status_reason: String::new(),
            payload,
        }
    }
}

fn format_strategy() -> impl Strategy<Value = WireFormat> {
    prop::sample::select(vec![
        WireFormat::Json,
        WireFormat::Protobuf,
        WireFormat::Cbor,
    ])
}

fn cuts_for(len: usize, raw: &[usize]) -> Vec<usize> {
    let mut c: Vec<usize> = raw.iter().map(|&x| x % (len + 1)).collect();
    c.sort_unstable();
    c
}

/// 128 cases by default; `PROPTEST_CASES` raises it for a longer soak.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// Any sequence of events, encoded and split anywhere, decodes to the
    /// same events with the same sizes and the right piece timestamps.
    #[test]
    fn splits_do_not_change_events(
        specs in prop::collection::vec(object_spec(), 0..12),
        format in format_strategy(),
        raw_cuts in prop::collection::vec(any::<usize>(), 0..40),
    ) {
        let s = encode(&specs, format);
        let cuts = cuts_for(s.bytes.len(), &raw_cuts);
        let mut d = WatchStreamDecoder::from_start(format, DecoderConfig::default());
        let mut out = Vec::new();
        feed(&mut d, &s.bytes, &cuts, 1000, &mut out);
        d.finish(9999, &mut out);
        prop_assert_eq!(events(&out), s.expect.clone());
        prop_assert!(out.iter().all(|i| matches!(i, WatchItem::Event(_))), "{:?}", out);
        // Times: the piece holding the first and the last byte.
        let piece_of = |off: usize| 1000 + cuts.iter().filter(|&&c| c <= off).count() as u64;
        let evs: Vec<&WatchEvent> = out.iter().filter_map(|i| match i {
            WatchItem::Event(e) => Some(e),
            _ => None,
        }).collect();
        for (e, &(a, b)) in evs.iter().zip(&s.spans) {
            prop_assert_eq!(e.t_first_byte, piece_of(a));
            prop_assert_eq!(e.t_last_byte, piece_of(b - 1));
            prop_assert!(!e.resynced);
        }
        let st = d.stats();
        prop_assert_eq!(st.events, specs.len() as u64);
        prop_assert_eq!(st.event_bytes, s.bytes.len() as u64);
        prop_assert_eq!(st.skipped_bytes, 0);
    }

    /// The body is never echoed: no payload byte string of 8+ bytes from
    /// the objects shows up in any output.
    #[test]
    fn object_content_never_leaves(
        mut specs in prop::collection::vec(object_spec(), 1..6),
        format in format_strategy(),
    ) {
        for s in &mut specs {
            s.payload = b"SECRET-PAYLOAD-\x00\x01-hunter2".to_vec();
        }
        let s = encode(&specs, format);
        let mut d = WatchStreamDecoder::mid_stream(None, DecoderConfig::default());
        let mut out = Vec::new();
        // Stop inside the last event, so that the decoder holds a part of
        // it: its `Debug` must not show that either.
        let (a, b) = s.spans[s.spans.len() - 1];
        d.push(&s.bytes[..(a + b) / 2], 1, &mut out);
        let dump = format!("{out:?} {d:?}");
        prop_assert!(!dump.contains("hunter2"));
        prop_assert!(!dump.contains("SECRET-PAYLOAD"));
    }

    /// Joined at offset K: every event starting at or after K is decoded,
    /// none other, and the skipped bytes are exactly those before the first.
    #[test]
    fn mid_stream_recovers_every_later_event(
        specs in prop::collection::vec(object_spec(), 1..8),
        format in format_strategy(),
        declare in any::<bool>(),
        k_frac in 0.0f64..1.0,
        raw_cuts in prop::collection::vec(any::<usize>(), 0..10),
    ) {
        // CBOR is found by content only when declared (see
        // `mid_stream_at_every_offset`).
        let declare = declare || format == WireFormat::Cbor;
        let s = encode(&specs, format);
        let k = ((s.bytes.len() as f64) * k_frac) as usize;
        check_mid_stream(&s, format, declare, k, &raw_cuts)?;
    }

    /// A gap of G bytes at P: events ending before P and starting after
    /// P+G are decoded; one cut event is reported; nothing is invented.
    #[test]
    fn gap_loses_only_what_it_touches(
        specs in prop::collection::vec(object_spec(), 1..10),
        format in format_strategy(),
        p_frac in 0.0f64..1.0,
        g in 0usize..600,
        raw_cuts in prop::collection::vec(any::<usize>(), 0..10),
    ) {
        let s = encode(&specs, format);
        let len = s.bytes.len();
        let p = ((len as f64) * p_frac) as usize;
        let q = (p + g).min(len);
        let mut d = WatchStreamDecoder::from_start(format, DecoderConfig::default());
        let mut out = Vec::new();
        feed(&mut d, &s.bytes[..p], &cuts_for(p, &raw_cuts), 0, &mut out);
        d.gap((q - p) as u64, 50, &mut out);
        feed(&mut d, &s.bytes[q..], &cuts_for(len - q, &raw_cuts), 100, &mut out);
        d.finish(200, &mut out);
        let want: Vec<Expect> = s
            .spans
            .iter()
            .zip(&s.expect)
            .filter(|((a, b), _)| *b <= p || *a >= q)
            .map(|(_, e)| e.clone())
            .collect();
        prop_assert_eq!(events(&out), want);
        let cut = s.spans.iter().filter(|(a, b)| *a < p && p < *b).count();
        let cut_items = out
            .iter()
            .filter(|i| matches!(i, WatchItem::Dropped { reason: DropReason::CutByGap, .. }))
            .count();
        prop_assert_eq!(cut_items, cut);
        let other_drops = out
            .iter()
            .filter(|i| matches!(i, WatchItem::Dropped { reason, .. } if *reason != DropReason::CutByGap))
            .count();
        prop_assert_eq!(other_drops, 0, "{:?}", out);
    }

    /// Whatever is fed (events, garbage, gaps, a mid-stream join), every
    /// byte ends up in exactly one counter: events, drops or skipped.
    #[test]
    fn every_byte_is_accounted_for(
        specs in prop::collection::vec(object_spec(), 0..8),
        format in format_strategy(),
        garbage in prop::collection::vec((any::<usize>(), prop::collection::vec(any::<u8>(), 1..50)), 0..4),
        k_frac in 0.0f64..1.0,
        declare in any::<bool>(),
        gaps in prop::collection::vec(any::<usize>(), 0..3),
        raw_cuts in prop::collection::vec(any::<usize>(), 0..20),
    ) {
        let mut bytes = encode(&specs, format).bytes;
        for (at, g) in garbage {
            let at = at % (bytes.len() + 1);
            bytes.splice(at..at, g);
        }
        let k = (bytes.len() as f64 * k_frac) as usize;
        let data = &bytes[k..];
        let mut d = WatchStreamDecoder::mid_stream(declare.then_some(format), DecoderConfig {
            max_event_bytes: 3000,
        });
        let mut out = Vec::new();
        let cuts = cuts_for(data.len(), &raw_cuts);
        let gap_at: Vec<usize> = gaps.iter().map(|g| g % (cuts.len() + 1)).collect();
        let mut prev = 0;
        for (i, c) in cuts.iter().copied().chain([data.len()]).enumerate() {
            if gap_at.contains(&i) {
                d.gap(10, i as u64, &mut out);
            }
            d.push(&data[prev..c], i as u64, &mut out);
            prev = c;
        }
        d.finish(99, &mut out);
        let st = d.stats();
        prop_assert_eq!(
            st.event_bytes + st.malformed_bytes + st.oversized_bytes + st.cut_bytes
                + st.truncated_bytes + st.skipped_bytes,
            data.len() as u64,
            "{:?}",
            st
        );
        let reported: u64 = out.iter().map(|i| match i {
            WatchItem::Event(e) => e.bytes,
            WatchItem::Dropped { bytes, .. } => *bytes,
            WatchItem::Synced { skipped_bytes, .. } => *skipped_bytes,
        }).sum();
        // Items report the same bytes, except skipped bytes after the
        // last boundary (counted at `finish`, with no item).
        prop_assert!(reported <= data.len() as u64);
    }

    /// HTTP/1.1: the same events through chunked framing, with arbitrary
    /// chunk sizes and arbitrary capture splits.
    #[test]
    fn chunked_bodies_decode_the_same(
        specs in prop::collection::vec(object_spec(), 0..8),
        format in format_strategy(),
        chunk_cuts in prop::collection::vec(any::<usize>(), 0..8),
        raw_cuts in prop::collection::vec(any::<usize>(), 0..20),
    ) {
        let s = encode(&specs, format);
        let mut body = Vec::new();
        let mut prev = 0;
        for c in cuts_for(s.bytes.len(), &chunk_cuts).into_iter().chain([s.bytes.len()]) {
            if c > prev {
                body.extend_from_slice(format!("{:X};ext=1\r\n", c - prev).as_bytes());
                body.extend_from_slice(&s.bytes[prev..c]);
                body.extend_from_slice(b"\r\n");
                prev = c;
            }
        }
        body.extend_from_slice(b"0\r\nTrailer: x\r\n\r\n");
        let mut d = Http1WatchDecoder::from_start(format, DecoderConfig::default());
        let mut out = Vec::new();
        let cuts = cuts_for(body.len(), &raw_cuts);
        let mut p = 0;
        for c in cuts.into_iter().chain([body.len()]) {
            d.push(&body[p..c.max(p)], 1, &mut out);
            p = c.max(p);
        }
        prop_assert!(d.is_done());
        prop_assert_eq!(events(&out), s.expect);
        prop_assert_eq!(out.len(), specs.len());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// gzip (Content-Encoding, flushed after each event as the apiserver
    /// does): the compressed body split anywhere inflates and decodes to
    /// the same events, and the inflater's totals are the body's sizes.
    #[test]
    fn gzip_bodies_split_anywhere_decode_the_same(
        specs in prop::collection::vec(object_spec(), 1..8),
        format in format_strategy(),
        raw_cuts in prop::collection::vec(any::<usize>(), 0..30),
    ) {
        let s = encode(&specs, format);
        let parts: Vec<Vec<u8>> = s.spans.iter().map(|&(a, b)| s.bytes[a..b].to_vec()).collect();
        let wire = gzip_flushed(&parts).concat();
        let cuts = cuts_for(wire.len(), &raw_cuts);
        let mut g = Gunzip::default();
        let mut d = WatchStreamDecoder::from_start(format, DecoderConfig::default());
        let (mut out, mut inflated) = (Vec::new(), Vec::new());
        let mut prev = 0;
        for c in cuts.into_iter().chain([wire.len()]) {
            g.push(&wire[prev..c.max(prev)], &mut inflated).unwrap();
            d.push(&inflated, 1, &mut out);
            prev = c.max(prev);
        }
        d.finish(2, &mut out);
        prop_assert_eq!(events(&out), s.expect);
        prop_assert_eq!(g.totals(), (wire.len() as u64, s.bytes.len() as u64));
    }
}

fn check_mid_stream(
    s: &Stream,
    format: WireFormat,
    declare: bool,
    k: usize,
    raw_cuts: &[usize],
) -> Result<(), TestCaseError> {
    let data = &s.bytes[k..];
    let mut d = WatchStreamDecoder::mid_stream(declare.then_some(format), DecoderConfig::default());
    let mut out = Vec::new();
    feed(&mut d, data, &cuts_for(data.len(), raw_cuts), 0, &mut out);
    let want: Vec<Expect> = s
        .spans
        .iter()
        .zip(&s.expect)
        .filter(|((a, _), _)| *a >= k)
        .map(|(_, e)| e.clone())
        .collect();
    prop_assert_eq!(
        events(&out),
        want.clone(),
        "k={} format={} declared={}",
        k,
        format,
        declare
    );
    if let Some(first) = s.spans.iter().find(|(a, _)| *a >= k) {
        let synced: Vec<u64> = out
            .iter()
            .filter_map(|i| match i {
                WatchItem::Synced { skipped_bytes, .. } => Some(*skipped_bytes),
                _ => None,
            })
            .collect();
        prop_assert_eq!(synced, vec![(first.0 - k) as u64], "k={}", k);
        let first_event = out.iter().find_map(|i| match i {
            WatchItem::Event(e) => Some(e),
            _ => None,
        });
        prop_assert!(first_event.is_some_and(|e| e.resynced));
        prop_assert_eq!(d.format(), Some(format));
    }
    prop_assert!(
        out.iter().all(|i| !matches!(i, WatchItem::Dropped { .. })),
        "{:?}",
        out
    );
    Ok(())
}

/// Every offset of one fixed stream, both formats, declared or not.
#[test]
fn mid_stream_at_every_offset() {
    let mut specs = vec![
        ObjectSpec::pod("ADDED", "default", "web-0", "100"),
        ObjectSpec::pod("MODIFIED", "default", "web-1", "101"),
        ObjectSpec::status_error(410, "Expired"),
    ];
    let mut bm = ObjectSpec::pod("BOOKMARK", "", "", "102");
    bm.annotations = vec![("k8s.io/initial-events-end".into(), "true".into())];
    specs.push(bm);
    specs.push(ObjectSpec::pod("DELETED", "kube-system", "x", "103"));
    for format in [WireFormat::Json, WireFormat::Protobuf, WireFormat::Cbor] {
        let s = encode(&specs, format);
        for k in 0..s.bytes.len() {
            // CBOR is found by content only when declared (a content type
            // was seen): an unknown body is probed for JSON and protobuf.
            for declare in [false, true]
                .into_iter()
                .filter(|d| *d || format != WireFormat::Cbor)
            {
                for cuts in [&[][..], &[1, 2, 3, 5, 8, 13, 21, 34][..]] {
                    check_mid_stream(&s, format, declare, k, cuts).unwrap();
                }
            }
        }
    }
}

#[test]
fn oversized_events_are_reported_and_skipped() {
    let small = ObjectSpec::pod("ADDED", "a", "small", "1");
    let mut big = ObjectSpec::pod("ADDED", "a", "big", "2");
    big.payload = vec![b'x'; 5000];
    let after = ObjectSpec::pod("ADDED", "a", "after", "3");
    for format in [WireFormat::Json, WireFormat::Protobuf, WireFormat::Cbor] {
        let s = encode(&[small.clone(), big.clone(), after.clone()], format);
        let cfg = DecoderConfig {
            max_event_bytes: 2000,
        };
        for split in [1, 7, 100, s.bytes.len()] {
            let mut d = WatchStreamDecoder::from_start(format, cfg);
            let mut out = Vec::new();
            for c in s.bytes.chunks(split) {
                d.push(c, 1, &mut out);
            }
            let names: Vec<String> = events(&out).into_iter().map(|e| e.name).collect();
            assert_eq!(names, ["small", "after"], "{format} {split}");
            let big_len = (s.spans[1].1 - s.spans[1].0) as u64;
            match format {
                WireFormat::Json => {
                    assert!(out.contains(&WatchItem::Dropped {
                        reason: DropReason::Oversized,
                        bytes: big_len,
                        ts_ns: 1
                    }));
                    assert_eq!(d.stats().oversized_bytes, big_len);
                }
                WireFormat::Protobuf => {
                    // The length is not trusted: 4 bytes dropped, the body
                    // skipped while resynchronising.
                    assert_eq!(d.stats().oversized_events, 1);
                    assert!(
                        out.contains(&WatchItem::Synced {
                            format,
                            skipped_bytes: big_len - 4,
                            ts_ns: 1
                        }),
                        "{out:?}"
                    );
                    assert_eq!(d.stats().skipped_bytes, big_len - 4);
                }
                WireFormat::Cbor => {
                    // An item's length is known only once it is whole: the
                    // bytes buffered up to the cap are dropped, the rest
                    // skipped to the next item's tag.
                    assert_eq!(d.stats().oversized_events, 1);
                    assert_eq!(
                        d.stats().oversized_bytes + d.stats().skipped_bytes,
                        big_len,
                        "{out:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn malformed_json_line_is_dropped_and_decoding_continues() {
    let a = encode_json_line(&ObjectSpec::pod("ADDED", "a", "one", "1"));
    let b = encode_json_line(&ObjectSpec::pod("ADDED", "a", "two", "2"));
    let mut body = a.clone();
    body.extend_from_slice(b"{\"not\":\"an event\"}\n");
    body.extend_from_slice(&b);
    let mut d = WatchStreamDecoder::from_start(WireFormat::Json, DecoderConfig::default());
    let mut out = Vec::new();
    d.push(&body, 1, &mut out);
    assert_eq!(
        events(&out)
            .iter()
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>(),
        ["one", "two"]
    );
    assert_eq!(d.stats().malformed_events, 1);
    assert_eq!(d.stats().malformed_bytes, 19);
}

#[test]
fn corrupted_protobuf_frame_resyncs_on_the_next() {
    let a = encode_protobuf_frame(&ObjectSpec::pod("ADDED", "a", "one", "1"));
    let b = encode_protobuf_frame(&ObjectSpec::pod("MODIFIED", "a", "two", "2"));
    let c = encode_protobuf_frame(&ObjectSpec::pod("DELETED", "a", "three", "3"));
    let mut body = a.clone();
    let mut bad = b.clone();
    // The `object` tag (after `0A 08 MODIFIED`) made wire type 7.
    assert_eq!(bad[4 + 10], 0x12);
    bad[4 + 10] = 0x0F;
    body.extend_from_slice(&bad);
    body.extend_from_slice(&c);
    let mut d = WatchStreamDecoder::from_start(WireFormat::Protobuf, DecoderConfig::default());
    let mut out = Vec::new();
    d.push(&body, 1, &mut out);
    let names: Vec<String> = events(&out).into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["one", "three"]);
    assert_eq!(d.stats().malformed_events, 1);
    assert_eq!(d.stats().syncs, 1);
    // Every byte is accounted for.
    let st = d.stats();
    assert_eq!(
        st.event_bytes + st.malformed_bytes + st.skipped_bytes,
        body.len() as u64
    );
}

#[test]
fn truncated_stream_reports_the_partial_event() {
    let a = encode_json_line(&ObjectSpec::pod("ADDED", "a", "one", "1"));
    let mut d = WatchStreamDecoder::from_start(WireFormat::Json, DecoderConfig::default());
    let mut out = Vec::new();
    d.push(&a[..a.len() - 1], 1, &mut out);
    d.finish(2, &mut out);
    assert_eq!(
        out,
        [WatchItem::Dropped {
            reason: DropReason::Truncated,
            bytes: a.len() as u64 - 1,
            ts_ns: 2
        }]
    );
}

#[test]
fn unknown_event_types_are_kept_verbatim() {
    let s = ObjectSpec::pod("RESTARTED", "a", "x", "9");
    for format in [WireFormat::Json, WireFormat::Protobuf, WireFormat::Cbor] {
        let body = match format {
            WireFormat::Json => encode_json_line(&s),
            WireFormat::Protobuf => encode_protobuf_frame(&s),
            WireFormat::Cbor => encode_cbor_item(&s),
        };
        let evs = watchtrace::watch::decode_all(&body, format, 3);
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].event_type, EventType::Other("RESTARTED".into()));
    }
}

#[test]
fn unsupported_bytes_are_all_skipped() {
    // A CBOR sequence (or anything else): no boundary is ever found.
    let body: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8 | 0x80).collect();
    let mut d = WatchStreamDecoder::mid_stream(None, DecoderConfig::default());
    let mut out = Vec::new();
    for c in body.chunks(100) {
        d.push(c, 1, &mut out);
    }
    d.finish(2, &mut out);
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(d.stats().skipped_bytes, body.len() as u64);
    assert_eq!(d.format(), None);
}
