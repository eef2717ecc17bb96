//! The captures the benchmark decodes: one HTTP/2 connection of a
//! kube-apiserver (the testbed's fake-apiserver, Go net/http2) streaming
//! watch events to one client on several streams at once.
//!
//! The bytes are made in-process by watchtrace's own encoders, shaped the
//! way the Go server writes them:
//!
//! * the server's opening SETTINGS (kube-apiserver's values), a connection
//!   WINDOW_UPDATE, and the ACK of the client's SETTINGS;
//! * per watch, a response HEADERS (`:status 200`, the watch content type)
//!   and then, per event, the handler's writes (protobuf: the 4-byte length
//!   and the body as two writes, as `framing.Write` does) through Go's 4 KiB
//!   `bufio.Writer`, flushed after each event; every handler write becomes
//!   DATA frames of at most 16 KiB (the client's SETTINGS_MAX_FRAME_SIZE);
//! * frames of different streams interleaved (Go's write scheduler rotates
//!   between streams with data), and an empty END_STREAM DATA frame per
//!   stream at the end.
//!
//! Objects are kube-like: Leases (~400 B), ConfigMaps (1-6 KiB), Pods
//! (3-12 KiB), and 1 % large objects (64-256 KiB), with a BOOKMARK every
//! 100 events. Gzip-encoded (`Content-Encoding: gzip`, as watch-list
//! streams are since Kubernetes 1.37), each stream is one gzip member
//! flushed after each event, as Go's `gzip.Writer` behind the handler.

use watchtrace::watch::{
    WireFormat,
    fixture::{ObjectSpec, encode_cbor_item, encode_json_line, encode_protobuf_frame},
};

use crate::support::{Enc, data, headers, preface, settings, settings_ack, window_update};

/// Largest DATA payload the client accepts (its SETTINGS_MAX_FRAME_SIZE).
pub(crate) const MAX_FRAME: usize = 16 * 1024;
/// The largest flow-control window (2^31 - 1).
pub(crate) const MAX_WINDOW: u32 = (1 << 31) - 1;
/// Size of the Go handler's buffered writer (http2 `handlerChunkWriteSize`).
const HANDLER_BUFFER: usize = 4 * 1024;

/// One watch of the capture.
pub(crate) struct Watch {
    pub(crate) stream: u32,
    pub(crate) path: String,
}

/// A generated connection.
pub(crate) struct Capture {
    pub(crate) watches: Vec<Watch>,
    /// What the client sends: preface, SETTINGS, WINDOW_UPDATE, the
    /// requests' HEADERS.
    pub(crate) client: Vec<u8>,
    /// The server's SETTINGS, WINDOW_UPDATE and SETTINGS ACK.
    pub(crate) server_preamble: Vec<u8>,
    /// The responses: HEADERS, then interleaved DATA, then END_STREAMs.
    pub(crate) server_body: Vec<u8>,
    /// Watch events in the body, and their framed bytes.
    pub(crate) events: u64,
    pub(crate) event_bytes: u64,
    /// Bytes in DATA frames: the events' bytes, or their gzip encoding.
    pub(crate) data_bytes: u64,
}

impl Capture {
    /// Every byte the server sent.
    pub(crate) fn server(&self) -> Vec<u8> {
        [&self.server_preamble[..], &self.server_body[..]].concat()
    }
}

/// A small deterministic generator (xorshift), so every run decodes the
/// same bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo) as u64) as usize
    }
}

/// The resources watched, by stream index.
const RESOURCES: [(&str, &str); 4] = [
    ("configmaps", "ConfigMap"),
    ("pods", "Pod"),
    ("leases", "Lease"),
    ("secrets", "Secret"),
];

fn object(rng: &mut Rng, kind: &str, event: u64, rv: u64) -> ObjectSpec {
    let rv = rv.to_string();
    if event % 100 == 99 {
        let mut spec = ObjectSpec::pod("BOOKMARK", "", "", &rv);
        spec.kind = kind.to_owned();
        spec.labels.clear();
        spec.payload.clear();
        return spec;
    }
    let event_type = match rng.next() % 10 {
        0 => "ADDED",
        1 => "DELETED",
        _ => "MODIFIED",
    };
    let name = format!("{}-{:05}", kind.to_lowercase(), rng.next() % 5000);
    let namespace = format!("ns-{}", rng.next() % 20);
    let mut spec = ObjectSpec::pod(event_type, &namespace, &name, &rv);
    spec.kind = kind.to_owned();
    spec.annotations = vec![("deployment.kubernetes.io/revision".into(), "12".into())];
    // The encoders write the payload twice (managed fields and spec), so
    // these are about half the object sizes named in the module docs.
    let half = if rng.next().is_multiple_of(100) {
        rng.range(32 << 10, 128 << 10)
    } else {
        match kind {
            "Lease" => rng.range(100, 250),
            "Pod" => rng.range(1500, 6000),
            _ => rng.range(500, 3000),
        }
    };
    // Printable, so JSON carries it unescaped, like most object content.
    spec.payload = (0..half)
        .map(|i| b'a' + ((i as u64 * 7 + rng.0) % 26) as u8)
        .collect();
    spec
}

/// Go's `bufio.Writer` in front of the HTTP/2 stream: what reaches the
/// connection, as DATA frames.
struct HandlerWriter {
    stream: u32,
    buf: Vec<u8>,
    frames: Vec<Vec<u8>>,
}

impl HandlerWriter {
    fn write(&mut self, mut p: &[u8]) {
        while p.len() > HANDLER_BUFFER - self.buf.len() {
            if self.buf.is_empty() {
                // A large write with an empty buffer bypasses it.
                self.chunk(p);
                return;
            }
            let n = HANDLER_BUFFER - self.buf.len();
            self.buf.extend_from_slice(&p[..n]);
            p = &p[n..];
            self.flush();
        }
        self.buf.extend_from_slice(p);
    }

    fn flush(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        if !buf.is_empty() {
            self.chunk(&buf);
        }
    }

    fn chunk(&mut self, c: &[u8]) {
        for piece in c.chunks(MAX_FRAME) {
            self.frames.push(data(self.stream, piece, false));
        }
    }
}

/// A connection of `streams` watches in `format` whose server side is about
/// `target` bytes.
pub(crate) fn generate(format: WireFormat, gzip: bool, streams: usize, target: usize) -> Capture {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let content_type = match format {
        WireFormat::Json => "application/json",
        WireFormat::Protobuf => "application/vnd.kubernetes.protobuf;stream=watch",
        WireFormat::Cbor => "application/cbor-seq",
    };
    let accept = match format {
        WireFormat::Json => "application/json",
        WireFormat::Protobuf => "application/vnd.kubernetes.protobuf;stream=watch",
        WireFormat::Cbor => "application/cbor",
    };
    let watches: Vec<Watch> = (0..streams)
        .map(|i| Watch {
            stream: 1 + 2 * i as u32,
            path: format!(
                "/api/v1/{}?allowWatchBookmarks=true&resourceVersion=1000&timeoutSeconds=452&watch=true",
                RESOURCES[i % RESOURCES.len()].0
            ),
        })
        .collect();

    // The client's opening. Its windows are the largest allowed, so the
    // replay needs no WINDOW_UPDATEs (a real client sends them as it reads;
    // the decoder does the same window accounting either way).
    let mut client = preface();
    client.extend(settings(&[(2, 0), (4, MAX_WINDOW), (6, 10 << 20)]));
    client.extend(window_update(0, MAX_WINDOW - 65_535));
    for w in &watches {
        let block = Enc::default()
            .indexed(2) // :method GET
            .indexed(6) // :scheme http
            .literal(":authority", "127.0.0.1:6443")
            .literal(":path", &w.path)
            .literal("accept", accept)
            .literal(
                "user-agent",
                "kube-controller-manager/v1.32.0 (linux/amd64)",
            )
            .build();
        client.extend(headers(w.stream, &block, true));
    }

    // kube-apiserver's SETTINGS (MaxConcurrentStreams 100, 256 KiB frame
    // and stream window), its connection window, and the ACK.
    let mut server_preamble = settings(&[(5, 256 << 10), (3, 100), (4, 256 << 10), (6, 1 << 20)]);
    server_preamble.extend(window_update(0, (256 << 10) * 100 - 65_535));
    server_preamble.extend(settings_ack());

    let mut server_body = Vec::with_capacity(target + target / 8);
    for w in &watches {
        let mut block = Enc::default()
            .indexed(8) // :status 200
            .literal("content-type", content_type)
            .literal("date", "Thu, 28 Nov 2025 08:00:00 GMT");
        if gzip {
            block = block.literal("content-encoding", "gzip");
        }
        server_body.extend(headers(w.stream, &block.build(), false));
    }
    let mut gzips: Vec<Option<flate2::write::GzEncoder<Vec<u8>>>> = watches
        .iter()
        .map(|_| {
            gzip.then(|| flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default()))
        })
        .collect();
    let mut data_bytes = 0u64;
    let mut writers: Vec<HandlerWriter> = watches
        .iter()
        .map(|w| HandlerWriter {
            stream: w.stream,
            buf: Vec::new(),
            frames: Vec::new(),
        })
        .collect();
    let (mut events, mut event_bytes, mut rv) = (0u64, 0u64, 1000u64);
    while (event_bytes as usize) < target {
        let i = rng.range(0, streams);
        rv += 1;
        let spec = object(&mut rng, RESOURCES[i % RESOURCES.len()].1, events, rv);
        let writer = &mut writers[i];
        // The handler's writes (protobuf: length, then body).
        let writes: Vec<Vec<u8>> = match format {
            WireFormat::Json => vec![encode_json_line(&spec)],
            WireFormat::Protobuf => {
                let frame = encode_protobuf_frame(&spec);
                vec![frame[..4].to_vec(), frame[4..].to_vec()]
            }
            WireFormat::Cbor => vec![encode_cbor_item(&spec)],
        };
        event_bytes += writes.iter().map(|w| w.len() as u64).sum::<u64>();
        match gzips[i].as_mut() {
            Some(gz) => {
                use std::io::Write as _;
                for w in &writes {
                    gz.write_all(w).expect("writing to a Vec");
                }
                gz.flush().expect("writing to a Vec");
                let compressed = std::mem::take(gz.get_mut());
                data_bytes += compressed.len() as u64;
                writer.write(&compressed);
            }
            None => {
                for w in &writes {
                    data_bytes += w.len() as u64;
                    writer.write(w);
                }
            }
        }
        writer.flush();
        events += 1;
    }
    // Each gzip member's trailer.
    for (writer, gz) in writers.iter_mut().zip(gzips) {
        if let Some(gz) = gz {
            let tail = gz.finish().expect("writing to a Vec");
            data_bytes += tail.len() as u64;
            writer.write(&tail);
            writer.flush();
        }
    }
    // Interleave the streams' frames, each stream's in order.
    let mut queues: Vec<std::collections::VecDeque<Vec<u8>>> =
        writers.into_iter().map(|w| w.frames.into()).collect();
    loop {
        let live: Vec<usize> = (0..queues.len())
            .filter(|&i| !queues[i].is_empty())
            .collect();
        if live.is_empty() {
            break;
        }
        let i = live[rng.range(0, live.len())];
        server_body.extend(queues[i].pop_front().expect("live queue"));
    }
    for w in &watches {
        server_body.extend(data(w.stream, &[], true));
    }
    Capture {
        watches,
        client,
        server_preamble,
        server_body,
        events,
        event_bytes,
        data_bytes,
    }
}
