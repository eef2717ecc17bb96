//! Helpers shared by the `http2_*` integration tests (included with
//! `#[path]`): frame builders, a minimal HPACK encoder (no Huffman), and a
//! canonical form of events for comparisons.
#![allow(dead_code, reason = "shared by several test crates; each uses part")]

use std::fmt::Write as _;

use watchtrace::http2::{
    Attach, EventSink, FieldText, Flow, Http2Config, Http2Connection, Http2Event,
    frame::{FrameHeader, PREFACE},
};

pub(crate) const C2S: Flow = Flow::ClientToServer;
pub(crate) const S2C: Flow = Flow::ServerToClient;

pub(crate) fn frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = FrameHeader {
        len: u32::try_from(payload.len()).unwrap(),
        frame_type: ty,
        flags,
        stream,
        reserved: false,
    }
    .encode()
    .to_vec();
    v.extend_from_slice(payload);
    v
}

pub(crate) fn data(stream: u32, payload: &[u8], end_stream: bool) -> Vec<u8> {
    frame(0, u8::from(end_stream), stream, payload)
}

pub(crate) fn data_padded(stream: u32, payload: &[u8], pad: u8, end_stream: bool) -> Vec<u8> {
    let mut p = vec![pad];
    p.extend_from_slice(payload);
    p.resize(p.len() + usize::from(pad), 0);
    frame(0, 0x8 | u8::from(end_stream), stream, &p)
}

pub(crate) fn headers(stream: u32, block: &[u8], end_stream: bool) -> Vec<u8> {
    frame(1, 0x4 | u8::from(end_stream), stream, block)
}

/// HEADERS + CONTINUATIONs, the block cut at `cuts` (offsets into it).
pub(crate) fn headers_split(
    stream: u32,
    block: &[u8],
    end_stream: bool,
    cuts: &[usize],
) -> Vec<u8> {
    let mut points: Vec<usize> = cuts.iter().map(|&c| c.min(block.len())).collect();
    points.sort_unstable();
    points.dedup();
    points.retain(|&c| c > 0 && c < block.len());
    let mut out = Vec::new();
    let mut start = 0;
    let n = points.len();
    for (i, end) in points.into_iter().chain([block.len()]).enumerate() {
        let last = i == n;
        let flags = if last { 0x4 } else { 0 };
        if i == 0 {
            out.extend(frame(
                1,
                flags | u8::from(end_stream),
                stream,
                &block[start..end],
            ));
        } else {
            out.extend(frame(9, flags, stream, &block[start..end]));
        }
        start = end;
    }
    out
}

pub(crate) fn settings(params: &[(u16, u32)]) -> Vec<u8> {
    let mut p = Vec::new();
    for &(id, v) in params {
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&v.to_be_bytes());
    }
    frame(4, 0, 0, &p)
}

pub(crate) fn settings_ack() -> Vec<u8> {
    frame(4, 1, 0, &[])
}

pub(crate) fn window_update(stream: u32, inc: u32) -> Vec<u8> {
    frame(8, 0, stream, &inc.to_be_bytes())
}

pub(crate) fn rst(stream: u32, code: u32) -> Vec<u8> {
    frame(3, 0, stream, &code.to_be_bytes())
}

pub(crate) fn ping(ack: bool, payload: [u8; 8]) -> Vec<u8> {
    frame(6, u8::from(ack), 0, &payload)
}

pub(crate) fn goaway(last: u32, code: u32, debug: &[u8]) -> Vec<u8> {
    let mut p = last.to_be_bytes().to_vec();
    p.extend_from_slice(&code.to_be_bytes());
    p.extend_from_slice(debug);
    frame(7, 0, 0, &p)
}

pub(crate) fn push_promise(stream: u32, promised: u32, block: &[u8]) -> Vec<u8> {
    let mut p = promised.to_be_bytes().to_vec();
    p.extend_from_slice(block);
    frame(5, 0x4, stream, &p)
}

/// A minimal HPACK encoder (RFC 7541), plain strings only.
#[derive(Default)]
pub(crate) struct Enc(pub Vec<u8>);

impl Enc {
    fn int(&mut self, first: u8, prefix: u8, mut v: usize) {
        let max = (1usize << prefix) - 1;
        if v < max {
            self.0.push(first | u8::try_from(v).unwrap());
            return;
        }
        self.0.push(first | u8::try_from(max).unwrap());
        v -= max;
        while v >= 128 {
            self.0.push(u8::try_from(v % 128).unwrap() | 0x80);
            v /= 128;
        }
        self.0.push(u8::try_from(v).unwrap());
    }

    fn string(&mut self, s: &[u8]) {
        self.int(0, 7, s.len());
        self.0.extend_from_slice(s);
    }

    /// Indexed field (static 1..=61, dynamic from 62).
    pub(crate) fn indexed(mut self, i: usize) -> Self {
        self.int(0x80, 7, i);
        self
    }

    /// Literal, new name, without indexing.
    pub(crate) fn literal(mut self, name: &str, value: &str) -> Self {
        self.0.push(0);
        self.string(name.as_bytes());
        self.string(value.as_bytes());
        self
    }

    /// Literal, indexed name, without indexing.
    pub(crate) fn literal_idx_name(mut self, i: usize, value: &str) -> Self {
        self.int(0, 4, i);
        self.string(value.as_bytes());
        self
    }

    /// Literal, new name, with incremental indexing.
    pub(crate) fn insert(mut self, name: &str, value: &str) -> Self {
        self.0.push(0x40);
        self.string(name.as_bytes());
        self.string(value.as_bytes());
        self
    }

    pub(crate) fn size_update(mut self, size: usize) -> Self {
        self.int(0x20, 5, size);
        self
    }

    pub(crate) fn build(self) -> Vec<u8> {
        self.0
    }
}

pub(crate) fn preface() -> Vec<u8> {
    PREFACE.to_vec()
}

/// Feeds `(dir, ts, bytes)` chunks to a new connection, collecting events.
pub(crate) fn run(
    attach: Attach,
    feeds: &[(Flow, u64, Vec<u8>)],
) -> (Http2Connection, Vec<Http2Event<'static>>) {
    let mut conn = Http2Connection::new(Http2Config::default(), attach);
    let mut events = Vec::new();
    for (dir, ts, bytes) in feeds {
        conn.on_bytes(*dir, *ts, bytes, &mut events);
    }
    (conn, events)
}

/// Feeds one direction's bytes in chunks cut at `cuts`.
pub(crate) fn feed_split(
    conn: &mut Http2Connection,
    dir: Flow,
    ts: u64,
    bytes: &[u8],
    cuts: &[usize],
    sink: &mut impl EventSink,
) {
    let mut points: Vec<usize> = cuts.iter().map(|&c| c.min(bytes.len())).collect();
    points.sort_unstable();
    let mut start = 0;
    for end in points.into_iter().chain([bytes.len()]) {
        conn.on_bytes(dir, ts, &bytes[start..end], sink);
        start = end;
    }
}

pub(crate) fn text(t: &FieldText) -> String {
    match t {
        FieldText::Known(b) => String::from_utf8_lossy(b).into_owned(),
        FieldText::Unknown => "<unknown>".to_owned(),
    }
}

/// Events with DATA pieces of one frame merged, as one line each.
pub(crate) fn canonical(events: &[Http2Event<'static>]) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending: Option<(Flow, u32, Vec<u8>)> = None;
    for e in events {
        if let Http2Event::Data {
            dir,
            stream,
            bytes,
            frame_end,
            end_stream,
            ts_ns,
        } = e
        {
            let p = pending.get_or_insert_with(|| (*dir, *stream, Vec::new()));
            assert_eq!(
                (p.0, p.1),
                (*dir, *stream),
                "DATA pieces of one frame interleaved"
            );
            p.2.extend_from_slice(bytes);
            if *frame_end {
                let (d, s, b) = pending.take().unwrap();
                out.push(format!(
                    "Data {d:?} {s} {b:?} end_stream={end_stream} ts={ts_ns}"
                ));
            }
            continue;
        }
        assert!(pending.is_none(), "DATA frame not finished before {e:?}");
        out.push(match e {
            Http2Event::Headers {
                dir,
                stream,
                fields,
                end_stream,
                priority,
                first_ts_ns,
                ts_ns,
            } => {
                let mut s = format!("Headers {dir:?} {stream} end_stream={end_stream} {priority:?} {first_ts_ns} {ts_ns}");
                for f in fields {
                    write!(s, " [{}: {}]", text(&f.name), text(&f.value)).unwrap();
                }
                s
            }
            other => format!("{other:?}"),
        });
    }
    assert!(pending.is_none(), "DATA frame not finished at the end");
    out
}
