//! watchtrace's side: the same server bytes through
//!
//! * `framing`: [`Http2Connection`] alone, a sink that counts DATA bytes;
//! * `events`: [`Http2Connection`] plus one [`WatchStreamDecoder`] per
//!   stream, chosen from the response's content type (behind an inflater
//!   for a gzip-encoded one), as `pipeline/connection.rs` does for a watch
//!   whose request it saw;
//! * `pipeline`: the whole [`Pipeline`], fed ring-buffer chunk records of
//!   at most 16 KiB (what the kernel delivers for a socket write), up to the
//!   `watch_event` output events.
//!
//! Each returns the bytes decoded and what it found, so the caller can check
//! that every event came out (and the work cannot be optimised away).

use std::collections::HashMap;

use tracer_common::record::{
    CHUNK_DATA_MAX, CHUNK_FLAG_CALL_START, CHUNK_FLAG_STREAM_START, ChunkHeader, ChunkSource,
    Direction as RecordDirection, RecordHeader, RecordKind,
};
use watchtrace::{
    capture::encode_chunk,
    http2::{Attach, Flow, Http2Config, Http2Connection, Http2Event},
    pipeline::{OutputEvent, Pipeline, PipelineConfig},
    watch::{DecoderConfig, WatchItem, WatchStreamDecoder, WireFormat, gzip::Gunzip},
};

use crate::capture::Capture;

/// Bytes per `on_bytes` call: one chunk record's payload.
const PIECE: usize = CHUNK_DATA_MAX;

/// What one pass found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) data_bytes: u64,
    pub(crate) events: u64,
    pub(crate) event_bytes: u64,
}

fn connection(capture: &Capture) -> Http2Connection {
    let mut conn = Http2Connection::new(Http2Config::default(), Attach::FromStart);
    conn.on_bytes(
        Flow::ClientToServer,
        0,
        &capture.client,
        &mut |_: Http2Event<'_>| {},
    );
    conn
}

/// HTTP/2 framing only.
pub(crate) fn framing(capture: &Capture, server: &[u8]) -> Found {
    let mut conn = connection(capture);
    let mut found = Found::default();
    let mut sink = |e: Http2Event<'_>| {
        if let Http2Event::Data { bytes, .. } = e {
            found.data_bytes += bytes.len() as u64;
        }
    };
    for (i, piece) in server.chunks(PIECE).enumerate() {
        conn.on_bytes(Flow::ServerToClient, i as u64, piece, &mut sink);
    }
    let stats = conn.stats();
    assert_eq!((stats.protocol_errors, stats.resyncs), (0, 0));
    found
}

/// HTTP/2 framing and watch events.
pub(crate) fn events(capture: &Capture, server: &[u8]) -> Found {
    let mut conn = connection(capture);
    let mut found = Found::default();
    let mut decoders: HashMap<u32, WatchStreamDecoder> = HashMap::new();
    let mut gunzips: HashMap<u32, Gunzip> = HashMap::new();
    let mut inflated = Vec::new();
    let mut items = Vec::with_capacity(64);
    let mut sink = |e: Http2Event<'_>| match e {
        Http2Event::Headers {
            dir: Flow::ServerToClient,
            stream,
            fields,
            ..
        } => {
            let format = fields
                .iter()
                .find(|f| f.name.known() == Some(b"content-type"))
                .and_then(|f| f.value.known())
                .and_then(|v| WireFormat::from_content_type(&String::from_utf8_lossy(v)));
            if let Some(format) = format {
                decoders.insert(
                    stream,
                    WatchStreamDecoder::from_start(format, DecoderConfig::default()),
                );
            }
            let gzip = fields.iter().any(|f| {
                f.name.known() == Some(b"content-encoding") && f.value.known() == Some(b"gzip")
            });
            if gzip {
                gunzips.insert(stream, Gunzip::default());
            }
        }
        Http2Event::Data {
            stream,
            bytes,
            ts_ns,
            ..
        } => {
            found.data_bytes += bytes.len() as u64;
            let body: &[u8] = match gunzips.get_mut(&stream) {
                Some(g) => {
                    g.push(&bytes, &mut inflated).expect("a whole gzip member");
                    &inflated
                }
                None => &bytes,
            };
            if let Some(d) = decoders.get_mut(&stream) {
                d.push(body, ts_ns, &mut items);
                for item in items.drain(..) {
                    if let WatchItem::Event(e) = item {
                        found.events += 1;
                        found.event_bytes += e.bytes;
                    }
                }
            }
        }
        _ => {}
    };
    for (i, piece) in server.chunks(PIECE).enumerate() {
        conn.on_bytes(Flow::ServerToClient, i as u64, piece, &mut sink);
    }
    found
}

/// One chunk record's bytes, as the kernel lays them out.
fn chunk_record(egress: bool, offset: u64, ts: u64, payload: &[u8]) -> Vec<u8> {
    let header = ChunkHeader {
        header: RecordHeader {
            ts_ns: ts,
            kind: RecordKind::Chunk as u16,
            _pad0: 0,
            tgid: 4242,
            tid: 4243,
            _pad1: 0,
        },
        fd: 7,
        direction: if egress {
            RecordDirection::Egress
        } else {
            RecordDirection::Ingress
        } as u8,
        source: ChunkSource::Syscall as u8,
        flags: if offset == 0 {
            CHUNK_FLAG_STREAM_START | CHUNK_FLAG_CALL_START
        } else {
            CHUNK_FLAG_CALL_START
        },
        offset,
        tls_conn: 0,
        sock: 0xffff_8880_0000_0700,
        len: 0,
        write_seq: 0,
    };
    encode_chunk(&header, payload)
}

/// The ring-buffer records of the capture as seen at the (traced) server:
/// the client's bytes read, then the server's written.
pub(crate) fn records(capture: &Capture, server: &[u8]) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let client = capture
        .client
        .chunks(CHUNK_DATA_MAX)
        .scan(0u64, |off, c| {
            let r = chunk_record(false, *off, 1, c);
            *off += c.len() as u64;
            Some(r)
        })
        .collect();
    let server = server
        .chunks(CHUNK_DATA_MAX)
        .enumerate()
        .map(|(i, c)| chunk_record(true, (i * CHUNK_DATA_MAX) as u64, 2 + i as u64, c))
        .collect();
    (client, server)
}

/// The whole pipeline on the records of [`records`].
pub(crate) fn pipeline(client: &[Vec<u8>], server: &[Vec<u8>]) -> Found {
    let mut pipeline = Pipeline::new(PipelineConfig::default(), 0);
    let mut found = Found::default();
    let mut emit = |e: OutputEvent| {
        if let OutputEvent::WatchEvent { bytes, .. } = e {
            found.events += 1;
            found.event_bytes += bytes;
        }
    };
    for r in client {
        pipeline.on_record(r, &mut emit);
    }
    for r in server {
        pipeline.on_record(r, &mut emit);
    }
    assert_eq!(pipeline.stats().undecodable_records, 0);
    found
}
