//! Property: any stream of valid frames (DATA with and without padding,
//! HEADERS with CONTINUATIONs, SETTINGS and ACKs, PING, WINDOW_UPDATE,
//! RST_STREAM, PRIORITY, GOAWAY, extension frames), in both directions, fed
//! whole or split at arbitrary points, yields the same events once each DATA
//! frame's pieces are concatenated, and those events match what was
//! generated.

#[path = "http2_support.rs"]
mod support;

use proptest::{prelude::*, sample::Index};
use support::{
    C2S, Enc, S2C, canonical, data, data_padded, frame, goaway, headers_split, ping, preface, rst,
    settings, settings_ack, text, window_update,
};
use watchtrace::http2::{Attach, Flow, Http2Config, Http2Connection, Http2Error, Http2Event};

/// Static entries used by the generator, with what they decode to.
const STATIC: &[(usize, &str, &str)] = &[
    (2, ":method", "GET"),
    (3, ":method", "POST"),
    (4, ":path", "/"),
    (8, ":status", "200"),
    (13, ":status", "404"),
];
const NAMES: &[&str] = &["content-type", "x-a", "grpc-status", "accept", ""];
const VALUES: &[&str] = &[
    "",
    "0",
    "application/json",
    "application/vnd.kubernetes.protobuf",
];

#[derive(Clone, Debug)]
enum Field {
    Static(usize),
    Literal(&'static str, &'static str),
    /// Literal with incremental indexing (exercises table insertion).
    Insert(&'static str, &'static str),
}

#[derive(Clone, Debug)]
enum Spec {
    Data {
        stream: u32,
        payload: Vec<u8>,
        pad: Option<u8>,
        end_stream: bool,
    },
    Headers {
        stream: u32,
        fields: Vec<Field>,
        end_stream: bool,
        cuts: Vec<usize>,
    },
    Settings(Vec<(u16, u32)>),
    SettingsAck,
    Ping(bool, [u8; 8]),
    WindowUpdate(u32, u32),
    Rst(u32, u32),
    Priority(u32, u32, u8),
    Unknown(u8, Vec<u8>),
    GoAway(u32, u32, Vec<u8>),
}

fn field() -> impl Strategy<Value = Field> {
    prop_oneof![
        (0..STATIC.len()).prop_map(Field::Static),
        (prop::sample::select(NAMES), prop::sample::select(VALUES))
            .prop_map(|(n, v)| Field::Literal(n, v)),
        (prop::sample::select(NAMES), prop::sample::select(VALUES))
            .prop_map(|(n, v)| Field::Insert(n, v)),
    ]
}

fn stream() -> impl Strategy<Value = u32> {
    prop::sample::select(vec![1u32, 3, 5, 7, 9])
}

fn spec() -> impl Strategy<Value = Spec> {
    prop_oneof![
        4 => (
            stream(),
            prop::collection::vec(any::<u8>(), 0..400),
            prop::option::of(0u8..20),
            any::<bool>()
        )
            .prop_map(|(stream, payload, pad, end_stream)| Spec::Data {
                stream,
                payload,
                pad,
                end_stream
            }),
        3 => (
            stream(),
            prop::collection::vec(field(), 0..8),
            any::<bool>(),
            prop::collection::vec(0usize..200, 0..3)
        )
            .prop_map(|(stream, fields, end_stream, cuts)| Spec::Headers {
                stream,
                fields,
                end_stream,
                cuts
            }),
        1 => prop::collection::vec(
            prop::sample::select(vec![
                (1u16, 4096u32),
                (1, 8192),
                (3, 100),
                (4, 65_535),
                (4, 1 << 20),
                (5, 16_384),
                (5, 1 << 18),
                (6, 1 << 20),
                (0x99, 7),
            ]),
            0..4
        )
        .prop_map(Spec::Settings),
        1 => Just(Spec::SettingsAck),
        1 => (any::<bool>(), any::<[u8; 8]>()).prop_map(|(a, p)| Spec::Ping(a, p)),
        2 => (prop::sample::select(vec![0u32, 1, 3, 5]), 1u32..100_000)
            .prop_map(|(s, i)| Spec::WindowUpdate(s, i)),
        1 => (stream(), 0u32..14).prop_map(|(s, c)| Spec::Rst(s, c)),
        1 => (stream(), 0u32..12, any::<u8>())
            .prop_filter("no self-dependency", |(s, d, _)| s != d)
            .prop_map(|(s, d, w)| Spec::Priority(s, d, w)),
        1 => (10u8..=255, prop::collection::vec(any::<u8>(), 0..50))
            .prop_map(|(t, p)| Spec::Unknown(t, p)),
        1 => (0u32..20, 0u32..14, prop::collection::vec(any::<u8>(), 0..20))
            .prop_map(|(l, c, d)| Spec::GoAway(l, c, d)),
    ]
}

fn encode_fields(fields: &[Field]) -> Vec<u8> {
    let mut enc = Enc::default();
    for f in fields {
        enc = match *f {
            Field::Static(i) => enc.indexed(STATIC[i].0),
            Field::Literal(n, v) => enc.literal(n, v),
            Field::Insert(n, v) => enc.insert(n, v),
        };
    }
    enc.build()
}

fn decoded(fields: &[Field]) -> Vec<(String, String)> {
    fields
        .iter()
        .map(|f| match *f {
            Field::Static(i) => (STATIC[i].1.to_owned(), STATIC[i].2.to_owned()),
            Field::Literal(n, v) | Field::Insert(n, v) => (n.to_owned(), v.to_owned()),
        })
        .collect()
}

fn bytes(s: &Spec) -> Vec<u8> {
    match s {
        Spec::Data {
            stream,
            payload,
            pad: None,
            end_stream,
        } => data(*stream, payload, *end_stream),
        Spec::Data {
            stream,
            payload,
            pad: Some(p),
            end_stream,
        } => data_padded(*stream, payload, *p, *end_stream),
        Spec::Headers {
            stream,
            fields,
            end_stream,
            cuts,
        } => headers_split(*stream, &encode_fields(fields), *end_stream, cuts),
        Spec::Settings(p) => settings(p),
        Spec::SettingsAck => settings_ack(),
        Spec::Ping(a, p) => ping(*a, *p),
        Spec::WindowUpdate(s, i) => window_update(*s, *i),
        Spec::Rst(s, c) => rst(*s, *c),
        Spec::Priority(s, d, w) => {
            let mut p = d.to_be_bytes().to_vec();
            p.push(*w);
            frame(2, 0, *s, &p)
        }
        Spec::Unknown(t, p) => frame(*t, 0, 1, p),
        Spec::GoAway(l, c, d) => goaway(*l, *c, d),
    }
}

/// Consecutive frames of one direction, fed as one run (cross-direction
/// order is preserved at run granularity; splitting happens within runs).
fn runs(frames: &[(bool, Spec)]) -> Vec<(Flow, Vec<u8>)> {
    let mut out: Vec<(Flow, Vec<u8>)> = vec![(C2S, preface())];
    for (server, s) in frames {
        let dir = if *server { S2C } else { C2S };
        match out.last_mut() {
            Some((d, b)) if *d == dir => b.extend(bytes(s)),
            _ => out.push((dir, bytes(s))),
        }
    }
    out
}

fn feed(runs: &[(Flow, Vec<u8>)], cuts: &[Index]) -> Vec<Http2Event<'static>> {
    let mut conn = Http2Connection::new(Http2Config::default(), Attach::FromStart);
    let mut events = Vec::new();
    for (i, (dir, b)) in runs.iter().enumerate() {
        let ts = i as u64 * 1000;
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(b.len() + 1)).collect();
        points.sort_unstable();
        let mut start = 0;
        for end in points.into_iter().chain([b.len()]) {
            conn.on_bytes(*dir, ts, &b[start..end], &mut events);
            start = end;
        }
    }
    events
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn split_points_do_not_change_events(
        frames in prop::collection::vec((any::<bool>(), spec()), 0..40),
        cuts in prop::collection::vec(any::<Index>(), 0..30),
    ) {
        let runs = runs(&frames);
        let whole = feed(&runs, &[]);
        let split = feed(&runs, &cuts);
        let (cw, cs) = (canonical(&whole), canonical(&split));
        prop_assert_eq!(&cw, &cs);

        // Nothing lost sync; the only errors are flow-control ones (the
        // generator does not respect windows).
        for e in &whole {
            match e {
                Http2Event::Resynced { .. } | Http2Event::Gap { .. } => {
                    prop_assert!(false, "unexpected {:?}", e);
                }
                Http2Event::ProtocolError { error, .. } => prop_assert!(
                    matches!(
                        error,
                        Http2Error::WindowExceeded { .. } | Http2Error::WindowOverflow { .. }
                    ),
                    "unexpected {:?}", error
                ),
                _ => {}
            }
        }

        // And what was decoded is what was generated.
        let mut want_data = Vec::new();
        let mut want_headers = Vec::new();
        for (server, s) in &frames {
            let dir = if *server { S2C } else { C2S };
            match s {
                Spec::Data { stream, payload, end_stream, .. } => {
                    want_data.push((dir, *stream, payload.clone(), *end_stream));
                }
                Spec::Headers { stream, fields, end_stream, .. } => {
                    want_headers.push((dir, *stream, decoded(fields), *end_stream));
                }
                _ => {}
            }
        }
        let mut got_data = Vec::new();
        let mut got_headers = Vec::new();
        let mut piece = Vec::new();
        for e in &split {
            match e {
                Http2Event::Data { dir, stream, bytes, frame_end, end_stream, .. } => {
                    piece.extend_from_slice(bytes);
                    if *frame_end {
                        got_data.push((*dir, *stream, std::mem::take(&mut piece), *end_stream));
                    }
                }
                Http2Event::Headers { dir, stream, fields, end_stream, .. } => {
                    let f = fields.iter().map(|f| (text(&f.name), text(&f.value))).collect();
                    got_headers.push((*dir, *stream, f, *end_stream));
                }
                _ => {}
            }
        }
        prop_assert_eq!(got_data, want_data);
        prop_assert_eq!(got_headers, want_headers);
    }
}
