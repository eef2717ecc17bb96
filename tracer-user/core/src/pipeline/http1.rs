//! HTTP/1.1 connections: clients with HTTP/2 disabled (client-go's
//! `DISABLE_HTTP2`, curl `--http1.1`) watch over chunked responses.
//!
//! A connection is HTTP/1.1 when its first captured bytes, at stream offset
//! 0, are a request line (`GET /api/... HTTP/1.1`) or a status line. Its
//! requests are numbered from 1 in the order they were sent; that number is
//! the `stream` of the request's `request`, `watch_event` and `stream_end`
//! lines. Responses answer requests in order (RFC 9112 §9.3), so each
//! response is paired with the oldest request still waiting for one.
//!
//! Message bodies are delimited as RFC 9112 §6.3 says: none for HEAD and
//! for 1xx, 204 and 304 responses, else chunked, else `Content-Length`,
//! else (responses only) the connection's close. The body of a successful
//! watch response in JSON or protobuf goes to a watch decoder
//! ([`Http1WatchDecoder`] when chunked); other bodies are stepped over.
//!
//! Limits: a connection joined mid-way is not recognised as HTTP/1.1 (its
//! first bytes are not a start line; the caller's HTTP/2 path then finds
//! nothing in it). A gap inside a message head, a head longer than
//! [`MAX_HEAD`], or a `101 Switching Protocols` (WebSocket watches) stops
//! the decoding of that connection direction; a gap inside a body with a
//! known length or in chunked framing is stepped over.

use std::collections::VecDeque;

use crate::watch::{
    ApiRequest, ChunkedDecoder, DecoderConfig, Http1WatchDecoder, Verb, WatchItem,
    WatchStreamDecoder, WireFormat,
};

use super::{
    connection::resource_of_kind,
    kinds::Ending,
    output::{OutputEvent, Role},
};

/// Longest request or response head (start line and header fields) read;
/// Go's default `MaxHeaderBytes` is 1 MiB, but API requests are far below
/// this.
pub(crate) const MAX_HEAD: usize = 64 << 10;
/// Requests waiting for their response, kept (pipelining is rare: one is
/// the normal case). The oldest is dropped beyond this, counted.
const MAX_PENDING: usize = 64;

/// Methods whose request line marks an HTTP/1.1 connection.
const METHODS: [&[u8]; 7] = [
    b"GET", b"POST", b"PUT", b"PATCH", b"DELETE", b"HEAD", b"OPTIONS",
];

/// The traced process's role if `bytes`, the first of one direction at
/// stream offset `offset`, start an HTTP/1.x message; `egress`: the process
/// wrote them.
pub(crate) fn detect(egress: bool, offset: u64, bytes: &[u8]) -> Option<Role> {
    if offset != 0 {
        return None;
    }
    // A first piece shorter than a start line's first word counts if it
    // can only begin one (not the HTTP/2 preface, `PRI * HTTP/2.0`).
    let begins = |word: &[u8]| {
        bytes.starts_with(word) || (bytes.len() < word.len() && word.starts_with(bytes))
    };
    let preface = b"PRI ".starts_with(&bytes[..bytes.len().min(4)]);
    let request =
        !bytes.is_empty() && !preface && METHODS.iter().any(|m| begins(&[*m, b" "].concat()));
    let response = !bytes.is_empty() && begins(b"HTTP/1.");
    match (request, response, egress) {
        (true, _, true) | (_, true, false) => Some(Role::Client),
        (true, _, false) | (_, true, true) => Some(Role::Server),
        _ => None,
    }
}

/// A request waiting for its response.
struct Pending {
    stream: u32,
    head: bool,
    watch: bool,
    resource: Option<String>,
}

/// How the rest of a body is delimited and decoded.
enum Body {
    Length {
        remaining: u64,
        watch: Option<Box<WatchStreamDecoder>>,
    },
    Chunked(ChunkedDecoder),
    ChunkedWatch(Box<Http1WatchDecoder>),
    UntilClose(Option<Box<WatchStreamDecoder>>),
}

enum Phase {
    /// Reading a head (bytes so far).
    Head(Vec<u8>),
    Body(Body),
    /// Framing lost for good.
    Lost,
}

/// One direction: requests (client to server) or responses.
struct Side {
    phase: Phase,
    /// For responses: the request whose response is being read.
    current: Option<Pending>,
}

impl Side {
    fn new() -> Self {
        Self {
            phase: Phase::Head(Vec::new()),
            current: None,
        }
    }
}

/// Counters of what could not be decoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Http1Stats {
    pub(crate) lost_directions: u64,
    pub(crate) dropped_pending: u64,
}

/// One HTTP/1.1 connection.
pub(crate) struct Http1Connection {
    conn: u64,
    offset_ns: i128,
    role: Role,
    requests: Side,
    responses: Side,
    pending: VecDeque<Pending>,
    next_stream: u32,
    items: Vec<WatchItem>,
    stats: Http1Stats,
}

impl Http1Connection {
    pub(crate) fn new(conn: u64, offset_ns: i128, role: Role) -> Self {
        Self {
            conn,
            offset_ns,
            role,
            requests: Side::new(),
            responses: Side::new(),
            pending: VecDeque::new(),
            next_stream: 1,
            items: Vec::new(),
            stats: Http1Stats::default(),
        }
    }

    #[cfg(test)]
    pub(crate) fn stats(&self) -> Http1Stats {
        self.stats
    }

    fn ts(&self, ns: u64) -> u64 {
        (i128::from(ns) + self.offset_ns).max(0) as u64
    }

    /// Whether bytes the process wrote (`egress`) or read are requests.
    fn is_request(&self, egress: bool) -> bool {
        egress == (self.role == Role::Client)
    }

    /// Captured bytes the process wrote (`egress`) or read.
    pub(crate) fn on_data(
        &mut self,
        egress: bool,
        ts: u64,
        mut bytes: &[u8],
        out: &mut Vec<OutputEvent>,
    ) {
        let request = self.is_request(egress);
        while !bytes.is_empty() {
            let side = if request {
                &mut self.requests
            } else {
                &mut self.responses
            };
            let used = match &mut side.phase {
                Phase::Lost => bytes.len(),
                Phase::Body(_) => self.on_body(request, bytes, ts, out),
                Phase::Head(buf) => match read_head(buf, bytes) {
                    None => {
                        if buf.len() > MAX_HEAD {
                            side.phase = Phase::Lost;
                            self.stats.lost_directions += 1;
                        }
                        bytes.len()
                    }
                    Some((used, head)) => {
                        side.phase = Phase::Head(Vec::new());
                        if request {
                            self.on_request_head(&head, ts, out);
                        } else {
                            self.on_response_head(&head, ts, out);
                        }
                        used
                    }
                },
            };
            bytes = &bytes[used..];
        }
    }

    /// `lost` bytes of one direction were not captured.
    pub(crate) fn on_gap(&mut self, egress: bool, ts: u64, lost: u64, out: &mut Vec<OutputEvent>) {
        let request = self.is_request(egress);
        let side = if request {
            &mut self.requests
        } else {
            &mut self.responses
        };
        self.items.clear();
        let mut ended = false;
        match &mut side.phase {
            Phase::Lost => {}
            Phase::Head(_) => {
                side.phase = Phase::Lost;
                self.stats.lost_directions += 1;
            }
            Phase::Body(body) => match body {
                Body::Length { remaining, watch } if lost <= *remaining => {
                    *remaining -= lost;
                    if let Some(w) = watch {
                        w.gap(lost, ts, &mut self.items);
                    }
                    ended = *remaining == 0;
                }
                Body::Length { .. } => {
                    side.phase = Phase::Lost;
                    self.stats.lost_directions += 1;
                }
                Body::Chunked(c) => c.gap(),
                Body::ChunkedWatch(w) => w.gap(lost, ts, &mut self.items),
                Body::UntilClose(Some(w)) => w.gap(lost, ts, &mut self.items),
                Body::UntilClose(None) => {}
            },
        }
        if !request {
            self.flush(out);
            if ended {
                self.end_response(ts, Ending::EndStream, out);
            }
        } else if ended {
            self.requests.phase = Phase::Head(Vec::new());
        }
    }

    /// The connection ended: bodies delimited by the close end normally,
    /// every other request still open ends as `connection_closed`.
    pub(crate) fn close(&mut self, ts: u64, out: &mut Vec<OutputEvent>) {
        self.items.clear();
        let how = match &mut self.responses.phase {
            Phase::Body(Body::UntilClose(watch)) => {
                if let Some(w) = watch {
                    w.finish(ts, &mut self.items);
                }
                Ending::EndStream
            }
            Phase::Body(Body::Length { watch: Some(w), .. }) => {
                w.finish(ts, &mut self.items);
                Ending::ConnectionClosed
            }
            Phase::Body(Body::ChunkedWatch(w)) => {
                w.finish(ts, &mut self.items);
                Ending::ConnectionClosed
            }
            _ => Ending::ConnectionClosed,
        };
        self.flush(out);
        if self.responses.current.is_some() {
            self.end_response(ts, how, out);
        }
        while let Some(p) = self.pending.pop_front() {
            out.push(self.stream_end(p.stream, ts, Ending::ConnectionClosed));
        }
    }

    fn on_request_head(&mut self, head: &Head, ts: u64, out: &mut Vec<OutputEvent>) {
        let Some((method, target)) = head.request_line() else {
            self.requests.phase = Phase::Lost;
            self.stats.lost_directions += 1;
            return;
        };
        let stream = self.next_stream;
        self.next_stream = self.next_stream.wrapping_add(1);
        let request = ApiRequest::parse(method, target, head.fields());
        out.push(self.request_event(stream, target, &request, ts));
        if self.pending.len() >= MAX_PENDING {
            self.pending.pop_front();
            self.stats.dropped_pending += 1;
        }
        self.pending.push_back(Pending {
            stream,
            head: method == "HEAD",
            watch: request.verb == Verb::Watch,
            resource: request.target.as_ref().map(|t| t.qualified()),
        });
        // A request body is stepped over.
        if let Some(body) = match head.framing() {
            Framing::Chunked => Some(Body::Chunked(ChunkedDecoder::from_start())),
            Framing::Length(n) if n > 0 => Some(Body::Length {
                remaining: n,
                watch: None,
            }),
            _ => None,
        } {
            self.requests.phase = Phase::Body(body);
        }
    }

    fn on_response_head(&mut self, head: &Head, ts: u64, out: &mut Vec<OutputEvent>) {
        let Some(status) = head.status() else {
            self.responses.phase = Phase::Lost;
            self.stats.lost_directions += 1;
            return;
        };
        if status == 101 {
            // The connection now speaks another protocol (WebSocket): the
            // request stays open until the connection closes.
            self.responses.phase = Phase::Lost;
            self.requests.phase = Phase::Lost;
            self.stats.lost_directions += 2;
            self.responses.current = self.pending.pop_front();
            return;
        }
        if (100..200).contains(&status) {
            return; // interim: the final response follows
        }
        let pending = self.pending.pop_front().unwrap_or_else(|| {
            // A response to a request not captured.
            let stream = self.next_stream;
            self.next_stream = self.next_stream.wrapping_add(1);
            Pending {
                stream,
                head: false,
                watch: false,
                resource: None,
            }
        });
        let no_body = pending.head || status == 204 || status == 304;
        let format = head
            .field("content-type")
            .and_then(WireFormat::from_content_type)
            .filter(|_| pending.watch && status == 200);
        let decoder = || {
            format.map(|f| Box::new(WatchStreamDecoder::from_start(f, DecoderConfig::default())))
        };
        let body = match head.framing() {
            _ if no_body => None,
            Framing::Chunked => Some(match format {
                Some(f) => Body::ChunkedWatch(Box::new(Http1WatchDecoder::from_start(
                    f,
                    DecoderConfig::default(),
                ))),
                None => Body::Chunked(ChunkedDecoder::from_start()),
            }),
            Framing::Length(0) => None,
            Framing::Length(n) => Some(Body::Length {
                remaining: n,
                watch: decoder(),
            }),
            Framing::None => Some(Body::UntilClose(decoder())),
        };
        self.responses.current = Some(pending);
        match body {
            Some(body) => self.responses.phase = Phase::Body(body),
            None => self.end_response(ts, Ending::EndStream, out),
        }
    }

    /// Feeds body bytes; returns how many belonged to the body.
    fn on_body(
        &mut self,
        request: bool,
        bytes: &[u8],
        ts: u64,
        out: &mut Vec<OutputEvent>,
    ) -> usize {
        let side = if request {
            &mut self.requests
        } else {
            &mut self.responses
        };
        let Phase::Body(body) = &mut side.phase else {
            unreachable!("called in a body")
        };
        self.items.clear();
        let (used, done) = match body {
            Body::Length { remaining, watch } => {
                let n = (*remaining).min(bytes.len() as u64);
                if let Some(w) = watch {
                    w.push(&bytes[..n as usize], ts, &mut self.items);
                }
                *remaining -= n;
                if *remaining == 0
                    && let Some(w) = watch
                {
                    w.finish(ts, &mut self.items);
                }
                (n as usize, *remaining == 0)
            }
            Body::Chunked(c) => {
                let before = c.stats().bytes_after_end;
                c.push(bytes, |_| {});
                let after = (c.stats().bytes_after_end - before) as usize;
                (bytes.len() - after, c.is_done())
            }
            Body::ChunkedWatch(w) => {
                let before = w.chunk_stats().bytes_after_end;
                w.push(bytes, ts, &mut self.items);
                let after = (w.chunk_stats().bytes_after_end - before) as usize;
                (bytes.len() - after, w.is_done())
            }
            Body::UntilClose(watch) => {
                if let Some(w) = watch {
                    w.push(bytes, ts, &mut self.items);
                }
                (bytes.len(), false)
            }
        };
        if done {
            side.phase = Phase::Head(Vec::new());
        }
        if !request {
            self.flush(out);
            if done {
                self.end_response(ts, Ending::EndStream, out);
            }
        }
        used
    }

    fn end_response(&mut self, ts: u64, how: Ending, out: &mut Vec<OutputEvent>) {
        if let Some(p) = self.responses.current.take() {
            out.push(self.stream_end(p.stream, ts, how));
        }
    }

    fn stream_end(&self, stream: u32, ts: u64, how: Ending) -> OutputEvent {
        OutputEvent::StreamEnd {
            ts: self.ts(ts),
            conn: self.conn,
            stream,
            how,
            code: None,
            by: None,
        }
    }

    /// The watch events decoded into `items`, as output lines.
    fn flush(&mut self, out: &mut Vec<OutputEvent>) {
        let Some(current) = self.responses.current.as_ref() else {
            self.items.clear();
            return;
        };
        for item in self.items.drain(..) {
            let WatchItem::Event(e) = item else { continue };
            let resource = current
                .resource
                .clone()
                .unwrap_or_else(|| resource_of_kind(&e.object_kind, &e.api_version));
            // Responses are the server's: sent when the process is it.
            out.push(OutputEvent::watch_event(
                self.conn,
                current.stream,
                resource.into(),
                e,
                self.offset_ns,
                self.role == Role::Server,
            ));
        }
    }

    fn request_event(&self, stream: u32, path: &str, request: &ApiRequest, ts: u64) -> OutputEvent {
        OutputEvent::request(self.ts(ts), self.conn, stream, path, request, 0)
    }
}

/// Appends `bytes` to the head read so far; once the blank line ending it
/// is in, returns how many of `bytes` it took and the head.
fn read_head(buf: &mut Vec<u8>, bytes: &[u8]) -> Option<(usize, Head)> {
    // Empty lines before a start line are ignored (RFC 9112 §2.2).
    let mut skip = 0;
    if buf.is_empty() {
        skip = bytes
            .iter()
            .position(|&b| b != b'\r' && b != b'\n')
            .unwrap_or(bytes.len());
    }
    let prev = buf.len();
    buf.extend_from_slice(&bytes[skip..]);
    let from = prev.saturating_sub(3);
    let end = buf[from..]
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| from + p + 4);
    let Some(end) = end else {
        if buf.len() > MAX_HEAD {
            // Keep the caller's size check meaningful without holding more.
            buf.truncate(MAX_HEAD + 1);
        }
        return None;
    };
    let used = skip + end - prev;
    buf.truncate(end);
    Some((used, Head(String::from_utf8_lossy(buf).into_owned())))
}

/// How a message body is delimited.
enum Framing {
    Chunked,
    Length(u64),
    None,
}

/// A request or response head, as text.
struct Head(String);

impl Head {
    fn start_line(&self) -> &str {
        self.0.split("\r\n").next().unwrap_or_default()
    }

    /// Method and request target.
    fn request_line(&self) -> Option<(&str, &str)> {
        let mut parts = self.start_line().split(' ');
        let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
        version.starts_with("HTTP/1.").then_some((method, target))
    }

    fn status(&self) -> Option<u16> {
        let mut parts = self.start_line().split(' ');
        let version = parts.next()?;
        if !version.starts_with("HTTP/1.") {
            return None;
        }
        parts.next()?.parse().ok()
    }

    /// Header fields, names as sent.
    fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .split("\r\n")
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim(), v.trim()))
    }

    fn field(&self, name: &str) -> Option<&str> {
        self.fields()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    fn framing(&self) -> Framing {
        let chunked = self
            .fields()
            .filter(|(k, _)| k.eq_ignore_ascii_case("transfer-encoding"))
            .any(|(_, v)| v.to_ascii_lowercase().contains("chunked"));
        if chunked {
            return Framing::Chunked;
        }
        match self.field("content-length").map(str::parse) {
            Some(Ok(n)) => Framing::Length(n),
            _ => Framing::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        pipeline::connection::Connection,
        watch::fixture::{ObjectSpec, encode_cbor_item, encode_json_line, encode_protobuf_frame},
    };

    const WATCH_REQUEST: &[u8] = b"GET /api/v1/namespaces/ns-0/configmaps?allowWatchBookmarks=true&resourceVersion=41&watch=true HTTP/1.1\r\n\
        Host: 127.0.0.1:6443\r\n\
        User-Agent: watch-load/v0.0.0 (linux/amd64)\r\n\
        Accept: application/json\r\n\
        Accept-Encoding: gzip\r\n\r\n";

    fn chunk(out: &mut Vec<u8>, data: &[u8]) {
        out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }

    fn event(format: WireFormat, ty: &str, name: &str, rv: &str) -> Vec<u8> {
        let mut spec = ObjectSpec::pod(ty, "ns-0", name, rv);
        spec.kind = "ConfigMap".into();
        match format {
            WireFormat::Json => encode_json_line(&spec),
            WireFormat::Protobuf => encode_protobuf_frame(&spec),
            WireFormat::Cbor => encode_cbor_item(&spec),
        }
    }

    /// A watch response as Go's HTTP/1.1 server writes it: the head, one
    /// chunk per flush (protobuf: length and body in one flush, but the
    /// second event split over two chunks), the last chunk.
    fn watch_response(format: WireFormat, events: &[Vec<u8>]) -> Vec<u8> {
        let ct = match format {
            WireFormat::Json => "application/json",
            WireFormat::Protobuf => "application/vnd.kubernetes.protobuf;stream=watch",
            WireFormat::Cbor => "application/cbor-seq",
        };
        let mut r = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {ct}\r\nDate: Thu, 28 Nov 2025 08:00:00 GMT\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        .into_bytes();
        for (i, e) in events.iter().enumerate() {
            if i == 1 {
                chunk(&mut r, &e[..7]);
                chunk(&mut r, &e[7..]);
            } else {
                chunk(&mut r, e);
            }
        }
        r.extend_from_slice(b"0\r\n\r\n");
        r
    }

    /// Compact lines for comparison.
    fn lines(out: &[OutputEvent]) -> Vec<String> {
        out.iter()
            .map(|e| match e {
                OutputEvent::Request {
                    stream,
                    verb,
                    path,
                    resource,
                    user_agent,
                    ..
                } => format!("request {stream} {verb} {resource:?} {path} {user_agent:?}"),
                OutputEvent::WatchEvent {
                    stream,
                    resource,
                    event_type,
                    name,
                    resource_version,
                    bytes,
                    ..
                } => format!(
                    "event {stream} {resource} {event_type} {name} {resource_version} {bytes}"
                ),
                OutputEvent::StreamEnd { stream, how, .. } => {
                    format!("end {stream} {}", how.as_str())
                }
                other => format!("{other:?}"),
            })
            .collect()
    }

    /// Feeds (egress, bytes) in pieces of `split` bytes to a connection.
    fn run(feeds: &[(bool, &[u8])], split: usize, close: bool) -> Vec<OutputEvent> {
        let mut c = Connection::new(7, 0);
        let mut offsets = [0u64; 2];
        let mut out = Vec::new();
        for (egress, bytes) in feeds {
            for piece in bytes.chunks(split) {
                let off = &mut offsets[usize::from(*egress)];
                c.on_data(*egress, *off, 1, piece, &mut out);
                *off += piece.len() as u64;
            }
        }
        if close {
            c.close(2, &mut out);
        }
        out
    }

    // Invariant: a server's HTTP/1.1 watch (request read, chunked response
    // written) yields its request, every event with its framed size, and
    // its end, whatever the read/write boundaries; a second request on the
    // kept-alive connection is stream 2.
    #[test]
    fn watch_then_keep_alive_request_at_every_split() {
        for format in [WireFormat::Json, WireFormat::Protobuf] {
            let events = [
                event(format, "ADDED", "a", "42"),
                event(format, "MODIFIED", "b", "43"),
                event(format, "DELETED", "c", "44"),
            ];
            let response = watch_response(format, &events);
            let list =
                b"GET /api/v1/namespaces/ns-0/configmaps?limit=500 HTTP/1.1\r\nHost: x\r\n\r\n";
            let list_response =
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"items\":[]}";
            let feeds: [(bool, &[u8]); 4] = [
                (false, WATCH_REQUEST),
                (true, &response),
                (false, list),
                (true, &list_response[..list_response.len() - 1]),
            ];
            let n = |i: usize| events[i].len();
            let want = vec![
                "request 1 watch Some(\"configmaps\") /api/v1/namespaces/ns-0/configmaps?allowWatchBookmarks=true&resourceVersion=41&watch=true Some(\"watch-load/v0.0.0 (linux/amd64)\")".to_owned(),
                format!("event 1 configmaps ADDED a 42 {}", n(0)),
                format!("event 1 configmaps MODIFIED b 43 {}", n(1)),
                format!("event 1 configmaps DELETED c 44 {}", n(2)),
                "end 1 end_stream".to_owned(),
                "request 2 list Some(\"configmaps\") /api/v1/namespaces/ns-0/configmaps?limit=500 None".to_owned(),
                "end 2 end_stream".to_owned(),
            ];
            for split in [1, 2, 3, 5, 16, 100, 4096] {
                assert_eq!(
                    lines(&run(&feeds, split, false)),
                    want,
                    "{format} split {split}"
                );
            }
        }
    }

    // Invariant: the client side of the same exchange (request written,
    // response read) gives the same lines; the role is the client's.
    #[test]
    fn client_side_is_decoded_the_same() {
        let events = [event(WireFormat::Json, "ADDED", "a", "42")];
        let response = watch_response(WireFormat::Json, &events);
        let out = run(&[(true, WATCH_REQUEST), (false, &response)], 64, false);
        assert_eq!(lines(&out).len(), 3, "{out:?}");
        assert!(matches!(out[1], OutputEvent::WatchEvent { stream: 1, .. }));
        assert_eq!(detect(true, 0, WATCH_REQUEST), Some(Role::Client));
        assert_eq!(detect(false, 0, b"HTTP/1.1 200 OK\r\n"), Some(Role::Client));
        assert_eq!(detect(false, 0, WATCH_REQUEST), Some(Role::Server));
        // The HTTP/2 preface, a mid-stream join and non-HTTP are not HTTP/1.
        assert_eq!(detect(false, 0, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), None);
        assert_eq!(detect(false, 10, WATCH_REQUEST), None);
        assert_eq!(detect(false, 0, b"GETX / HTTP/1.1"), None);
        // A short first piece counts if it can only start HTTP/1.
        assert_eq!(detect(false, 0, b"GE"), Some(Role::Server));
        assert_eq!(detect(false, 0, b"P"), None);
        assert_eq!(detect(false, 0, b"PU"), Some(Role::Server));
    }

    // Invariant: a watch cut by the connection's close ends as
    // `connection_closed`, after the events that were complete; a request
    // never answered ends the same way.
    #[test]
    fn close_mid_watch() {
        let events = [
            event(WireFormat::Protobuf, "ADDED", "a", "42"),
            event(WireFormat::Protobuf, "ADDED", "b", "43"),
        ];
        let response = watch_response(WireFormat::Protobuf, &events);
        let cut = response.len() - 20;
        let out = run(
            &[(false, WATCH_REQUEST), (true, &response[..cut])],
            1000,
            true,
        );
        assert_eq!(
            lines(&out)[1..],
            [
                format!("event 1 configmaps ADDED a 42 {}", events[0].len()),
                "end 1 connection_closed".to_owned()
            ]
        );
        let out = run(&[(false, WATCH_REQUEST)], 1000, true);
        assert_eq!(lines(&out)[1..], ["end 1 connection_closed"]);
    }

    // Invariant: a gap inside the chunked body loses only the events it
    // touches; the chunk framing is found again and the body still ends.
    #[test]
    fn gap_in_a_chunked_watch() {
        let events: Vec<Vec<u8>> = (0..4)
            .map(|i| {
                event(
                    WireFormat::Json,
                    "MODIFIED",
                    &format!("o{i}"),
                    &format!("{}", 50 + i),
                )
            })
            .collect();
        let response = watch_response(WireFormat::Json, &events);
        let head_len = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        // Lose 10 bytes in the middle of the first event's chunk.
        let at = head_len + 30;
        let mut c = Connection::new(7, 0);
        let mut out = Vec::new();
        c.on_data(false, 0, 1, WATCH_REQUEST, &mut out);
        c.on_data(true, 0, 1, &response[..at], &mut out);
        c.on_gap(true, 1, 10, &mut out);
        c.on_data(true, (at + 10) as u64, 1, &response[at + 10..], &mut out);
        let got = lines(&out);
        assert_eq!(got.first().map(|l| &l[..9]), Some("request 1"));
        assert_eq!(got.last().map(String::as_str), Some("end 1 end_stream"));
        let names: Vec<&str> = got
            .iter()
            .filter(|l| l.starts_with("event"))
            .map(|l| l.split(' ').nth(4).unwrap())
            .collect();
        // o0 was cut; o1 is split over two chunks and lost with the framing
        // resync or kept; o2 and o3 always come out.
        assert!(names.ends_with(&["o2", "o3"]), "{got:?}");
        assert!(!names.contains(&"o0"), "{got:?}");
    }

    // Invariant: a head longer than the bound stops decoding that direction
    // (counted) instead of buffering without limit.
    #[test]
    fn oversized_head_is_dropped() {
        let mut h = Http1Connection::new(1, 0, Role::Server);
        let mut out = Vec::new();
        let mut big = b"GET /api/v1/pods?watch=true HTTP/1.1\r\nX-Pad: ".to_vec();
        big.resize(MAX_HEAD + 10, b'a');
        h.on_data(false, 1, &big, &mut out);
        h.on_data(false, 1, b"\r\n\r\n", &mut out);
        assert!(out.is_empty());
        assert_eq!(h.stats().lost_directions, 1);
    }
}
