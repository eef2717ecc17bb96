//! Connection-level behaviour, scenario by scenario: DATA timing, settings
//! taking effect at their ACK, flow-control windows and stalls, stream
//! lifecycle, gaps, mid-connection attach, and the bounds.

#[path = "http2_support.rs"]
mod support;

use std::borrow::Cow;

use support::{
    C2S, Enc, S2C, data, data_padded, frame, goaway, headers, headers_split, ping, preface,
    push_promise, rst, settings, settings_ack, text, window_update,
};
use watchtrace::http2::{
    Attach, BlockLoss, CanSend, FieldText, Flow, Http2Config, Http2Connection, Http2Error,
    Http2Event, SideState, StallEndCause, StreamEndCause, StreamOrigin, TableSizeBasis,
    WindowScope,
};

fn conn(attach: Attach) -> Http2Connection {
    Http2Connection::new(Http2Config::default(), attach)
}

/// A connection from the start with the preface and empty SETTINGS
/// exchanged (and acknowledged) at ts 1.
fn started() -> (Http2Connection, Vec<Http2Event<'static>>) {
    let mut c = conn(Attach::FromStart);
    let mut ev = Vec::new();
    let mut client = preface();
    client.extend(settings(&[]));
    c.on_bytes(C2S, 1, &client, &mut ev);
    let mut server = settings(&[]);
    server.extend(settings_ack());
    c.on_bytes(S2C, 1, &server, &mut ev);
    c.on_bytes(C2S, 1, &settings_ack(), &mut ev);
    (c, ev)
}

fn get_block() -> Vec<u8> {
    Enc::default()
        .indexed(2)
        .indexed(7)
        .literal_idx_name(4, "/api/v1/pods?watch=1")
        .literal_idx_name(1, "k8s")
        .build()
}

fn errors<'a>(ev: &'a [Http2Event<'static>]) -> Vec<&'a Http2Error> {
    ev.iter()
        .filter_map(|e| match e {
            Http2Event::ProtocolError { error, .. } => Some(error),
            _ => None,
        })
        .collect()
}

fn stream_ends(ev: &[Http2Event<'static>]) -> Vec<(u32, StreamEndCause, SideState, SideState)> {
    ev.iter()
        .filter_map(|e| match e {
            Http2Event::StreamEnd {
                stream,
                cause,
                client,
                server,
                ..
            } => Some((*stream, *cause, *client, *server)),
            _ => None,
        })
        .collect()
}

// DATA pieces carry the time of the chunk they arrived in; only the last
// piece of a frame is flagged; a request/response exchange ends the stream.
#[test]
fn data_pieces_keep_their_chunk_time_and_streams_complete() {
    let (mut c, _) = started();
    let mut ev = Vec::new();
    c.on_bytes(C2S, 4, &headers(1, &get_block(), true), &mut ev);
    let resp = Enc::default()
        .indexed(8)
        .literal_idx_name(31, "application/json")
        .build();
    c.on_bytes(S2C, 5, &headers(1, &resp, false), &mut ev);
    let d = data(1, b"hello world", false);
    c.on_bytes(S2C, 6, &d[..12], &mut ev);
    c.on_bytes(S2C, 7, &d[12..17], &mut ev);
    c.on_bytes(S2C, 8, &d[17..], &mut ev);
    c.on_bytes(S2C, 9, &data(1, b"", true), &mut ev);

    assert!(matches!(
        ev[0],
        Http2Event::StreamStart {
            stream: 1,
            origin: StreamOrigin::Opened,
            ts_ns: 4
        }
    ));
    let Http2Event::Headers {
        fields,
        end_stream: true,
        ..
    } = &ev[1]
    else {
        panic!("{:?}", ev[1]);
    };
    let fields: Vec<_> = fields
        .iter()
        .map(|f| (text(&f.name), text(&f.value)))
        .collect();
    assert_eq!(
        fields,
        [
            (":method".into(), "GET".into()),
            (":scheme".into(), "https".into()),
            (":path".into(), "/api/v1/pods?watch=1".into()),
            (":authority".into(), "k8s".into()),
        ]
    );
    let pieces: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            Http2Event::Data {
                bytes,
                frame_end,
                end_stream,
                ts_ns,
                ..
            } => Some((bytes.to_vec(), *frame_end, *end_stream, *ts_ns)),
            _ => None,
        })
        .collect();
    assert_eq!(
        pieces,
        [
            (b"hel".to_vec(), false, false, 6),
            (b"lo wo".to_vec(), false, false, 7),
            (b"rld".to_vec(), true, false, 8),
            (vec![], true, true, 9),
        ]
    );
    assert_eq!(
        stream_ends(&ev),
        [(
            1,
            StreamEndCause::Complete,
            SideState::Ended,
            SideState::Ended
        )]
    );
    assert!(errors(&ev).is_empty());
    assert_eq!(c.stats().data_bytes, 11);
}

// Exhausting a stream's and the connection's window starts stalls (the
// connection one naming the open streams); WINDOW_UPDATEs end them with
// their start time.
#[test]
fn window_stalls_start_at_zero_and_end_on_update() {
    let (mut c, _) = started();
    let mut ev = Vec::new();
    c.on_bytes(C2S, 2, &headers(1, &get_block(), true), &mut ev);
    c.on_bytes(C2S, 2, &headers(3, &get_block(), true), &mut ev);
    assert_eq!(c.can_send(S2C, 1), CanSend::Yes);
    let chunk = vec![0u8; 16_384];
    for ts in 3..6 {
        c.on_bytes(S2C, ts, &data(1, &chunk, false), &mut ev);
    }
    c.on_bytes(S2C, 6, &data(1, &chunk[..16_383], false), &mut ev);
    assert_eq!(c.window(S2C, WindowScope::Stream(1)), Some(0));
    assert_eq!(c.window(S2C, WindowScope::Connection), Some(0));
    assert_eq!(
        c.can_send(S2C, 1),
        CanSend::Blocked {
            connection: true,
            stream: true
        }
    );
    let starts: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            Http2Event::WindowStallStart {
                sender,
                scope,
                open_streams,
                ts_ns,
            } => Some((*sender, *scope, open_streams.clone(), *ts_ns)),
            _ => None,
        })
        .collect();
    assert_eq!(
        starts,
        [
            (S2C, WindowScope::Connection, vec![1, 3], 6),
            (S2C, WindowScope::Stream(1), vec![], 6),
        ]
    );
    ev.clear();
    c.on_bytes(C2S, 10, &window_update(1, 100), &mut ev);
    c.on_bytes(C2S, 11, &window_update(0, 1000), &mut ev);
    let ends: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            Http2Event::WindowStallEnd {
                sender,
                scope,
                start_ts_ns,
                cause,
                ts_ns,
            } => Some((*sender, *scope, *start_ts_ns, *cause, *ts_ns)),
            _ => None,
        })
        .collect();
    assert_eq!(
        ends,
        [
            (
                S2C,
                WindowScope::Stream(1),
                6,
                StallEndCause::WindowUpdate,
                10
            ),
            (
                S2C,
                WindowScope::Connection,
                6,
                StallEndCause::WindowUpdate,
                11
            ),
        ]
    );
    assert_eq!(c.can_send(S2C, 1), CanSend::Yes);
    assert_eq!(c.stats().window_stalls, 2);
}

// SETTINGS_INITIAL_WINDOW_SIZE applies to open streams when the sender
// acknowledges it, and can push a window below zero (a stall without DATA);
// an increase ends it with cause Settings.
#[test]
fn initial_window_change_is_retroactive_at_the_ack() {
    let (mut c, _) = started();
    let mut ev = Vec::new();
    c.on_bytes(C2S, 2, &headers(1, &get_block(), true), &mut ev);
    c.on_bytes(S2C, 3, &data(1, &[0; 200], false), &mut ev);
    c.on_bytes(C2S, 4, &settings(&[(4, 100)]), &mut ev);
    // Not in effect until the server acknowledges.
    assert_eq!(c.window(S2C, WindowScope::Stream(1)), Some(65_335));
    c.on_bytes(S2C, 5, &settings_ack(), &mut ev);
    assert_eq!(c.window(S2C, WindowScope::Stream(1)), Some(-100));
    assert_eq!(c.settings(C2S).initial_window_size, Some(100));
    assert!(ev.iter().any(|e| matches!(
        e,
        Http2Event::WindowStallStart {
            scope: WindowScope::Stream(1),
            ts_ns: 5,
            ..
        }
    )));
    // New streams start at the new size.
    c.on_bytes(C2S, 6, &headers(3, &get_block(), true), &mut ev);
    assert_eq!(c.window(S2C, WindowScope::Stream(3)), Some(100));
    c.on_bytes(C2S, 7, &settings(&[(4, 1000)]), &mut ev);
    c.on_bytes(S2C, 8, &settings_ack(), &mut ev);
    assert_eq!(c.window(S2C, WindowScope::Stream(1)), Some(800));
    assert!(ev.iter().any(|e| matches!(
        e,
        Http2Event::WindowStallEnd {
            scope: WindowScope::Stream(1),
            start_ts_ns: 5,
            cause: StallEndCause::Settings,
            ts_ns: 8,
            ..
        }
    )));
}

// SETTINGS_MAX_FRAME_SIZE limits the peer only once it acknowledged it.
#[test]
fn max_frame_size_takes_effect_at_the_ack() {
    let big = data(1, &[7; 20_000], false);
    for acked in [true, false] {
        let (mut c, _) = started();
        let mut ev = Vec::new();
        c.on_bytes(C2S, 2, &headers(1, &get_block(), true), &mut ev);
        c.on_bytes(C2S, 2, &settings(&[(5, 1 << 20)]), &mut ev);
        if acked {
            c.on_bytes(S2C, 3, &settings_ack(), &mut ev);
        }
        c.on_bytes(S2C, 4, &big, &mut ev);
        let too_large = errors(&ev)
            .iter()
            .any(|e| matches!(e, Http2Error::FrameTooLarge { len: 20_000, .. }));
        assert_eq!(too_large, !acked);
    }
}

// Padding and the pad-length byte count against flow control.
#[test]
fn padding_counts_against_windows() {
    let (mut c, _) = started();
    let mut ev = Vec::new();
    c.on_bytes(C2S, 2, &headers(1, &get_block(), true), &mut ev);
    c.on_bytes(S2C, 3, &data_padded(1, b"0123456789", 5, false), &mut ev);
    assert_eq!(c.window(S2C, WindowScope::Stream(1)), Some(65_535 - 16));
    let bytes: Vec<u8> = ev
        .iter()
        .filter_map(|e| match e {
            Http2Event::Data { bytes, .. } => Some(bytes.to_vec()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(bytes, b"0123456789");
}

// GOAWAY ends the streams the other side opened above its last stream id;
// RST_STREAM ends one with its code.
#[test]
fn goaway_and_rst_end_streams() {
    let (mut c, _) = started();
    let mut ev = Vec::new();
    for id in [1, 3, 5, 7] {
        c.on_bytes(C2S, 2, &headers(id, &get_block(), false), &mut ev);
    }
    c.on_bytes(C2S, 3, &rst(7, 8), &mut ev);
    c.on_bytes(S2C, 4, &goaway(3, 0, b"bye"), &mut ev);
    assert_eq!(
        stream_ends(&ev),
        [
            (
                7,
                StreamEndCause::Reset {
                    by: C2S,
                    code: Some(8)
                },
                SideState::Open,
                SideState::Open
            ),
            (
                5,
                StreamEndCause::GoAway {
                    by: S2C,
                    last_stream: 3,
                    code: 0
                },
                SideState::Open,
                SideState::Open
            ),
        ]
    );
    assert_eq!(c.stream_ids(), [1, 3]);
    assert!(ev.iter().any(|e| matches!(
        e,
        Http2Event::GoAway { debug: Cow::Owned(d), last_stream: 3, .. } if d == b"bye"
    )));
}

// A gap inside a DATA frame keeps boundaries: the lost bytes are reported
// exactly, decoding continues, HPACK stays known.
#[test]
fn gap_inside_data_keeps_boundaries() {
    let (mut c, _) = started();
    let mut ev = Vec::new();
    c.on_bytes(C2S, 2, &headers(1, &get_block(), true), &mut ev);
    let d = data(1, &[1; 1000], false);
    c.on_bytes(S2C, 3, &d[..109], &mut ev);
    c.on_gap(S2C, 4, 500, &mut ev);
    let mut rest = d[609..].to_vec();
    rest.extend(data(1, b"after", true));
    c.on_bytes(S2C, 5, &rest, &mut ev);
    let got: Vec<String> = ev
        .iter()
        .filter_map(|e| match e {
            Http2Event::Data {
                bytes, frame_end, ..
            } => Some(format!("data {} {frame_end}", bytes.len())),
            Http2Event::DataLost { len, frame_end, .. } => Some(format!("lost {len} {frame_end}")),
            Http2Event::Gap {
                lost,
                kept_boundaries,
                ..
            } => Some(format!("gap {lost} {kept_boundaries}")),
            Http2Event::Resynced { .. } => Some("resynced".into()),
            _ => None,
        })
        .collect();
    assert_eq!(
        got,
        [
            "data 100 false",
            "gap 500 true",
            "lost 500 false",
            "data 400 true",
            "data 5 true"
        ]
    );
    assert!(c.hpack_complete(S2C));
    assert_eq!(c.window(S2C, WindowScope::Connection), Some(65_535 - 1005));
}

// A gap across frame boundaries loses sync: resync, and everything the lost
// bytes could have changed becomes unknown (HPACK table, windows).
#[test]
fn gap_across_frames_resyncs_and_forgets() {
    let (mut c, _) = started();
    let mut ev = Vec::new();
    c.on_bytes(C2S, 2, &headers(1, &get_block(), true), &mut ev);
    let mut s = data(1, &[1; 100], false);
    s.extend(data(1, &[2; 100], false));
    let mut after = Vec::new();
    for _ in 0..3 {
        after.extend(data(1, &[3; 50], false));
    }
    c.on_bytes(S2C, 3, &s[..50], &mut ev);
    c.on_gap(S2C, 4, 100, &mut ev);
    let mut rest = s[150..].to_vec();
    rest.extend(&after);
    c.on_bytes(S2C, 5, &rest, &mut ev);
    assert!(ev.iter().any(|e| matches!(
        e,
        Http2Event::Gap {
            kept_boundaries: false,
            lost: 100,
            ..
        }
    )));
    let skipped = ev.iter().find_map(|e| match e {
        Http2Event::Resynced { skipped, .. } => Some(*skipped),
        _ => None,
    });
    // The rest of the second DATA frame (68 bytes after the gap) was seen
    // but could not be decoded.
    assert_eq!(skipped, Some(68));
    assert!(!c.hpack_complete(S2C));
    assert_eq!(c.window(S2C, WindowScope::Connection), None);
    assert_eq!(c.window(C2S, WindowScope::Connection), None);
    assert_eq!(c.can_send(S2C, 1), CanSend::Unknown);
    let after_resync = ev
        .iter()
        .filter(|e| {
            matches!(
                e,
                Http2Event::Data {
                    frame_end: true,
                    ..
                }
            )
        })
        .count();
    // (The first frame's end was lost in the gap: a DataLost.)
    assert_eq!(after_resync, 3);
}

// A gap inside a header block loses that block (reported) and the HPACK
// table of that direction, but not the frame boundaries; later references
// to unknown entries decode as Unknown instead of failing.
#[test]
fn gap_inside_headers_forgets_hpack_only() {
    let (mut c, _) = started();
    let mut ev = Vec::new();
    let block = Enc::default().insert("x-a", "1").indexed(2).build();
    let h = headers(1, &block, false);
    c.on_bytes(C2S, 2, &h[..12], &mut ev);
    c.on_gap(C2S, 3, 2, &mut ev);
    c.on_bytes(C2S, 4, &h[14..], &mut ev);
    c.on_bytes(C2S, 5, &headers(3, &[0xbe, 0x82], true), &mut ev);
    assert!(ev.iter().any(|e| matches!(
        e,
        Http2Event::HeadersLost {
            stream: 1,
            reason: BlockLoss::Lost,
            end_stream: Some(false),
            ..
        }
    )));
    let fields = ev.iter().find_map(|e| match e {
        Http2Event::Headers {
            stream: 3, fields, ..
        } => Some(fields.clone()),
        _ => None,
    });
    let fields = fields.unwrap();
    assert_eq!(fields[0].name, FieldText::Unknown);
    assert_eq!(text(&fields[1].value), "GET");
    assert!(errors(&ev).is_empty(), "{ev:?}");
    assert!(!ev.iter().any(|e| matches!(e, Http2Event::Resynced { .. })));
}

// Joined mid-connection: windows unknown and never stall; a stream first
// seen through DATA is pre-existing; the server's END_STREAM ends it with
// the client half unknown; a size update makes HPACK fully known.
#[test]
fn frames_read_before_a_mid_stream_boundary_is_confirmed_keep_their_read_times() {
    // Joined mid-stream: the first read holds a stray tail, a whole DATA
    // frame and the start of the next header; the boundary is confirmed
    // only by the second read. (An etcd watch event read at 10 must not
    // be dated 20.)
    let mut c = conn(Attach::MidStream);
    let mut ev = Vec::new();
    let mut first = vec![9; 37];
    first.extend(data(5, &[1; 100], false));
    let next = data(5, &[2; 50], true);
    first.extend(&next[..4]);
    c.on_bytes(S2C, 10, &first, &mut ev);
    assert!(ev.is_empty(), "not yet in sync: {ev:?}");
    let mut second = next[4..].to_vec();
    second.extend(ping(false, [1; 8]));
    c.on_bytes(S2C, 20, &second, &mut ev);
    let pieces: Vec<(usize, u64)> = ev
        .iter()
        .filter_map(|e| match e {
            Http2Event::Data { bytes, ts_ns, .. } => Some((bytes.len(), *ts_ns)),
            _ => None,
        })
        .collect();
    // The second frame's payload came whole in the second read.
    assert_eq!(pieces, [(100, 10), (50, 20)]);
    assert!(
        ev.iter()
            .any(|e| matches!(e, Http2Event::Resynced { skipped: 37, .. }))
    );
}

#[test]
fn mid_stream_attach_is_explicit_about_unknowns() {
    let mut c = conn(Attach::MidStream);
    let mut ev = Vec::new();
    // Start in the middle of a DATA frame: a stray tail, then frames.
    let mut s = vec![9; 37];
    s.extend(data(5, &[1; 70_000 % 16_384], false));
    s.extend(ping(false, [1; 8]));
    s.extend(data(5, &[2; 100], true));
    c.on_bytes(S2C, 1, &s, &mut ev);
    assert!(matches!(
        ev[0],
        Http2Event::Resynced {
            skipped: 37,
            dir: Flow::ServerToClient,
            ..
        }
    ));
    assert_eq!(c.window(S2C, WindowScope::Connection), None);
    assert_eq!(c.can_send(S2C, 5), CanSend::Unknown);
    assert!(
        !ev.iter()
            .any(|e| matches!(e, Http2Event::WindowStallStart { .. }))
    );
    assert!(ev.iter().any(|e| matches!(
        e,
        Http2Event::StreamStart {
            stream: 5,
            origin: StreamOrigin::PreExisting,
            ..
        }
    )));
    assert_eq!(
        stream_ends(&ev),
        [(
            5,
            StreamEndCause::Complete,
            SideState::Unknown,
            SideState::Ended
        )]
    );
    // HPACK: an unknown reference, then a size update empties the table.
    ev.clear();
    let mut client = headers(7, &[0x82, 0xc0], true);
    client.extend(headers(
        9,
        &Enc::default().size_update(0).indexed(2).build(),
        true,
    ));
    c.on_bytes(C2S, 2, &client, &mut ev);
    assert!(ev.iter().any(|e| matches!(
        e,
        Http2Event::HpackFullyKnown {
            dir: Flow::ClientToServer,
            basis: TableSizeBasis::SizeUpdate,
            ..
        }
    )));
    let first = ev.iter().find_map(|e| match e {
        Http2Event::Headers {
            stream: 7, fields, ..
        } => Some(fields.clone()),
        _ => None,
    });
    assert_eq!(first.unwrap()[1].value, FieldText::Unknown);
    assert!(c.hpack_complete(C2S));
}

// The stream table is bounded: at the cap the least recently active stream
// is evicted and reported.
#[test]
fn stream_table_evicts_at_cap() {
    let cfg = Http2Config {
        max_streams: 2,
        ..Http2Config::default()
    };
    let mut c = Http2Connection::new(cfg, Attach::FromStart);
    let mut ev = Vec::new();
    c.on_bytes(C2S, 1, &preface(), &mut ev);
    c.on_bytes(C2S, 2, &headers(1, &get_block(), false), &mut ev);
    c.on_bytes(C2S, 3, &headers(3, &get_block(), false), &mut ev);
    c.on_bytes(C2S, 4, &data(1, b"x", false), &mut ev);
    c.on_bytes(C2S, 5, &headers(5, &get_block(), false), &mut ev);
    assert_eq!(
        stream_ends(&ev),
        [(3, StreamEndCause::Evicted, SideState::Open, SideState::Open)]
    );
    assert_eq!(c.stream_ids(), [1, 5]);
    assert_eq!(c.stats().stream_evictions, 1);
    // A late frame on the evicted stream does not revive it.
    c.on_bytes(C2S, 6, &data(3, b"y", false), &mut ev);
    assert_eq!(c.stream_ids(), [1, 5]);
}

// A header block over the buffer bound is dropped and reported; the HPACK
// table is forgotten, so a later reference to it is Unknown, not an error.
#[test]
fn oversized_header_block_is_dropped_and_reported() {
    let cfg = Http2Config {
        max_header_block: 64,
        ..Http2Config::default()
    };
    let mut c = Http2Connection::new(cfg, Attach::FromStart);
    let mut ev = Vec::new();
    c.on_bytes(C2S, 1, &preface(), &mut ev);
    let big = Enc::default().insert("x-big", &"v".repeat(80)).build();
    let cuts = [30];
    c.on_bytes(C2S, 2, &headers_split(1, &big, false, &cuts), &mut ev);
    c.on_bytes(C2S, 3, &headers(3, &[0xbe], true), &mut ev);
    assert!(
        matches!(
            errors(&ev)[..],
            [Http2Error::HeaderBlockTooLarge {
                stream: 1,
                limit: 64
            }]
        ),
        "{ev:#?}"
    );
    assert!(ev.iter().any(|e| matches!(
        e,
        Http2Event::HeadersLost {
            reason: BlockLoss::TooLarge,
            ..
        }
    )));
    assert!(ev.iter().any(|e| matches!(
        e,
        Http2Event::Headers { stream: 3, fields, .. } if fields[0].name == FieldText::Unknown
    )));
}

// A HEADERS block interrupted by another frame is lost and reported.
#[test]
fn interrupted_header_block() {
    let (mut c, _) = started();
    let mut ev = Vec::new();
    let block = get_block();
    let split = headers_split(1, &block, true, &[5]);
    let cont_at = 9 + 5;
    let mut s = split[..cont_at].to_vec();
    s.extend(ping(false, [0; 8]));
    s.extend(&split[cont_at..]);
    c.on_bytes(C2S, 2, &s, &mut ev);
    let errs = errors(&ev);
    assert!(matches!(
        errs[0],
        Http2Error::ExpectedContinuation {
            stream: 1,
            frame_type: 6,
            ..
        }
    ));
    assert!(matches!(
        errs[1],
        Http2Error::UnexpectedContinuation { stream: 1 }
    ));
    assert!(ev.iter().any(|e| matches!(
        e,
        Http2Event::HeadersLost {
            reason: BlockLoss::Interrupted,
            ..
        }
    )));
}

// PUSH_PROMISE opens a pushed stream, half-closed for the client.
#[test]
fn push_promise_opens_pushed_stream() {
    let (mut c, _) = started();
    let mut ev = Vec::new();
    c.on_bytes(C2S, 2, &headers(1, &get_block(), true), &mut ev);
    c.on_bytes(S2C, 3, &push_promise(1, 2, &[0x82, 0x84]), &mut ev);
    assert!(ev.iter().any(|e| matches!(
        e,
        Http2Event::StreamStart {
            stream: 2,
            origin: StreamOrigin::Pushed,
            ..
        }
    )));
    c.on_bytes(S2C, 4, &headers(2, &[0x88], false), &mut ev);
    c.on_bytes(S2C, 5, &data(2, b"pushed", true), &mut ev);
    assert!(stream_ends(&ev).contains(&(
        2,
        StreamEndCause::Complete,
        SideState::Ended,
        SideState::Ended
    )));
}

// From the start, the client direction must begin with the preface; if it
// does not, that is reported and the decoder finds frames anyway.
#[test]
fn bad_preface_is_reported_then_resynced() {
    let mut c = conn(Attach::FromStart);
    let mut ev = Vec::new();
    let mut s = settings(&[(4, 1000)]);
    for _ in 0..3 {
        s.extend(ping(false, [3; 8]));
    }
    c.on_bytes(C2S, 1, &s, &mut ev);
    assert!(matches!(
        errors(&ev)[..],
        [Http2Error::BadPreface { offset: 0 }]
    ));
    assert!(
        ev.iter()
            .any(|e| matches!(e, Http2Event::Resynced { skipped: 0, .. }))
    );
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, Http2Event::Ping { .. }))
            .count(),
        3
    );
}

// Extension frames are skipped and reported; an ACK matching no SETTINGS
// is counted.
#[test]
fn unknown_frames_and_unmatched_acks() {
    let (mut c, _) = started();
    let mut ev = Vec::new();
    let mut s = frame(0xee, 0, 0, b"ext");
    s.extend(settings_ack());
    s.extend(ping(true, [5; 8]));
    c.on_bytes(S2C, 2, &s, &mut ev);
    assert!(matches!(
        ev[0],
        Http2Event::UnknownFrame {
            frame_type: 0xee,
            len: 3,
            ..
        }
    ));
    assert!(matches!(
        ev[1],
        Http2Event::SettingsAck { matched: false, .. }
    ));
    assert!(matches!(ev[2], Http2Event::Ping { ack: true, .. }));
    assert_eq!(c.stats().unknown_frames, 1);
    assert_eq!(c.stats().unmatched_settings_acks, 1);
}

// close() ends every stream and stall.
#[test]
fn close_ends_everything() {
    let (mut c, _) = started();
    let mut ev = Vec::new();
    c.on_bytes(C2S, 2, &headers(1, &get_block(), false), &mut ev);
    c.on_bytes(C2S, 2, &headers(3, &get_block(), false), &mut ev);
    for _ in 0..4 {
        c.on_bytes(C2S, 3, &data(3, &[0; 16_384], false), &mut ev);
    }
    c.on_bytes(C2S, 3, &data(3, &[0; 16_383], false), &mut ev);
    ev.clear();
    c.close(9, &mut ev);
    let ends: Vec<_> = stream_ends(&ev).iter().map(|e| (e.0, e.1)).collect();
    assert_eq!(
        ends,
        [
            (1, StreamEndCause::ConnectionClosed),
            (3, StreamEndCause::ConnectionClosed)
        ]
    );
    let stall_ends: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            Http2Event::WindowStallEnd { scope, cause, .. } => Some((*scope, *cause)),
            _ => None,
        })
        .collect();
    assert_eq!(
        stall_ends,
        [
            (WindowScope::Stream(3), StallEndCause::StreamClosed),
            (WindowScope::Connection, StallEndCause::ConnectionClosed)
        ]
    );
    assert!(c.stream_ids().is_empty());
}

/// The `Frame` events of `ev`: (dir, type, flags, stream, len, ts).
fn frames(ev: &[Http2Event<'static>]) -> Vec<(Flow, u8, u8, u32, u32, u64)> {
    ev.iter()
        .filter_map(|e| match *e {
            Http2Event::Frame {
                dir,
                stream,
                frame_type,
                flags,
                len,
                ts_ns,
            } => Some((dir, frame_type, flags, stream, len, ts_ns)),
            _ => None,
        })
        .collect()
}

// With `frame_events`, every frame header is reported once, in wire order,
// before the frame's own events, with the time of its first byte, however
// the bytes are split: CONTINUATIONs, padding and extension frames
// included. Without it (the default, the pipeline's) none is.
#[test]
fn frame_events_report_every_header_in_wire_order() {
    let block = Enc::default()
        .indexed(2)
        .literal_idx_name(4, "/api/v1/pods?watch=1")
        .build();
    let mut client = preface();
    client.extend(settings(&[(4, 1 << 20)]));
    client.extend(headers_split(1, &block, false, &[3, 9]));
    client.extend(frame(0xfa, 0x3, 0, b"ext"));
    client.extend(window_update(0, 1000));
    let mut server = settings(&[]);
    server.extend(data_padded(1, b"hello", 4, false));
    server.extend(ping(false, [7; 8]));
    server.extend(data(1, b"", true));
    let expected_c2s = [
        (C2S, 4, 0, 0, 6),
        (C2S, 1, 0, 1, 3),
        (C2S, 9, 0, 1, 6),
        (C2S, 9, 4, 1, (block.len() - 9) as u32),
        (C2S, 0xfa, 3, 0, 3),
        (C2S, 8, 0, 0, 4),
    ];
    let expected_s2c = [
        (S2C, 4, 0, 0, 0),
        (S2C, 0, 8, 1, 10),
        (S2C, 6, 0, 0, 8),
        (S2C, 0, 1, 1, 0),
    ];
    let cfg = Http2Config {
        frame_events: true,
        ..Http2Config::default()
    };
    for cut in 0..client.len().min(server.len()) {
        let mut c = Http2Connection::new(cfg, Attach::FromStart);
        let mut ev = Vec::new();
        // The first piece at time 1, the rest at time 2.
        for (dir, bytes) in [(C2S, &client), (S2C, &server)] {
            c.on_bytes(dir, 1, &bytes[..cut], &mut ev);
            c.on_bytes(dir, 2, &bytes[cut..], &mut ev);
        }
        let got = frames(&ev);
        let mut expected = with_times(&expected_c2s, 24, cut);
        expected.extend(with_times(&expected_s2c, 0, cut));
        assert_eq!(got, expected, "cut at {cut}");
        // Each header comes before the frame's own event.
        let first_headers = ev
            .iter()
            .position(|e| matches!(e, Http2Event::Headers { .. }))
            .unwrap();
        let continuation_end = ev
            .iter()
            .position(|e| {
                matches!(
                    e,
                    Http2Event::Frame {
                        frame_type: 9,
                        flags: 4,
                        ..
                    }
                )
            })
            .unwrap();
        assert!(continuation_end < first_headers, "cut at {cut}");
        assert!(errors(&ev).is_empty(), "cut at {cut}: {:?}", errors(&ev));
    }
    let (_, ev) = run_default(&client, &server);
    assert!(frames(&ev).is_empty(), "off by default");
}

/// Frame headers with their times: the one starting at byte `cut` or
/// later of a stream cut there arrives at time 2, the others at time 1.
fn with_times(
    list: &[(Flow, u8, u8, u32, u32)],
    mut at: usize,
    cut: usize,
) -> Vec<(Flow, u8, u8, u32, u32, u64)> {
    list.iter()
        .map(|&(d, t, f, s, l)| {
            let ts = if at < cut { 1 } else { 2 };
            at += 9 + l as usize;
            (d, t, f, s, l, ts)
        })
        .collect()
}

fn run_default(client: &[u8], server: &[u8]) -> (Http2Connection, Vec<Http2Event<'static>>) {
    let mut c = conn(Attach::FromStart);
    let mut ev = Vec::new();
    c.on_bytes(C2S, 1, client, &mut ev);
    c.on_bytes(S2C, 1, server, &mut ev);
    (c, ev)
}

// A header that fails its checks is not a frame: it is not reported, and
// the frames after the resync are.
#[test]
fn frame_events_skip_rejected_headers() {
    let cfg = Http2Config {
        frame_events: true,
        ..Http2Config::default()
    };
    let mut c = Http2Connection::new(cfg, Attach::FromStart);
    let mut ev = Vec::new();
    let mut server = settings(&[]);
    // SETTINGS on a stream: a framing error.
    server.extend(frame(4, 0, 1, &[]));
    for i in 0..3 {
        server.extend(ping(false, [i; 8]));
    }
    c.on_bytes(S2C, 5, &server, &mut ev);
    let got: Vec<_> = frames(&ev).iter().map(|f| (f.1, f.3)).collect();
    assert_eq!(got, [(4, 0), (6, 0), (6, 0), (6, 0)]);
    assert!(!errors(&ev).is_empty());
}
