//! One traced connection: its HTTP/2 decoder and, per HTTP/2 stream, the
//! request and the decoder of its body (watch events or etcd watch
//! responses).

use std::collections::VecDeque;

use foldhash::{HashMap, HashMapExt as _};

use tracer_common::record::Direction;

use crate::{
    etcd::{self, EtcdDecoderConfig, EtcdDropReason, EtcdItem, EtcdWatchDecoder},
    http2::{
        Attach, BlockLoss, EventSink, Flow, HeaderField, Http2Config, Http2Connection, Http2Event,
        StreamEndCause, WindowScope,
    },
    watch::gzip::{Gunzip, GzipStop, SYNC_FLUSH_MARKER},
    watch::{
        ApiRequest, DecoderConfig, DropReason, EventType, MetaString, Verb, WatchEvent, WatchItem,
        WatchStreamDecoder, WireFormat,
    },
};

use super::{
    etcd_call::EtcdCall,
    http1::{self, Http1Connection},
    kinds::{Ending, StallCause, StallScope, UndecodableLayer, UndecodableReason},
    list_response::ListResponse,
    output::{OutputEvent, Role},
};

/// The gRPC method of etcd's watch.
const ETCD_WATCH_PATH: &str = "/etcdserverpb.Watch/Watch";
/// Bytes a stream without a known request is probed for its content before
/// giving up.
const PROBE_LIMIT: u64 = 1 << 20;
/// Pieces of a probed body ending with deflate's sync-flush marker that
/// make it a gzip body joined mid-member (one could be chance; an
/// apiserver's gzip watch ends every flushed write with it).
const MID_GZIP_FLUSHES: u32 = 2;
/// SETTINGS parameter ids (RFC 9113, 6.5.2).
const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 3;
const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 4;
/// KV calls kept waiting for a response after their stream seemed to end
/// (see `State::parked_calls`); the oldest is written unanswered beyond.
const MAX_PARKED_CALLS: usize = 256;
/// The HTTP/2 client preface.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How the body of one direction of a stream is decoded.
enum Body {
    Watch(Box<WatchStreamDecoder>),
    Etcd(Box<EtcdWatchDecoder>),
    /// No request seen (the stream predates the capture): try both until
    /// one recognises its content.
    Probe {
        watch: Box<WatchStreamDecoder>,
        etcd: Box<EtcdWatchDecoder>,
        seen: u64,
        /// Pieces that ended with deflate's sync-flush marker.
        sync_flushes: u32,
    },
    /// A gzip body joined mid-member: counted, never decoded.
    MidGzip,
    /// Not something watchtrace decodes (or probing gave up).
    Ignore,
}

#[derive(Default)]
struct StreamDecoding {
    request: Option<ApiRequest>,
    etcd_watch: bool,
    /// Decoder of the server-to-client body.
    response: Option<Body>,
    /// Decoder of the client-to-server body of a stream whose request was
    /// not seen: on a connection joined mid-way the roles are a guess, so
    /// both directions are probed for responses.
    reverse: Option<Body>,
    /// Its body decoder has found a boundary (an event, or one by content):
    /// bytes skipped after that are damage, not a mid-way join.
    synced: bool,
    /// The resource its request named (`ResourceTarget::qualified`).
    resource: Option<MetaString>,
    /// When its request's HEADERS were read (the records' clock).
    t_request: u64,
    /// A watch-list request (`sendInitialEvents=true`), until its initial
    /// events end.
    watch_list: Option<WatchList>,
    /// A LIST's response, counted until the stream ends.
    list: Option<Box<ListResponse>>,
    /// An etcd KV call (the traced process is etcd's client).
    etcd_call: Option<Box<EtcdCall>>,
    /// Which body carries the call's request (the `reverse` flag of its
    /// bytes): client to server when the request was seen; on a stream
    /// seen only mid-way, whichever body came first.
    kv_request_reverse: bool,
    /// Its content showed it is no KV call.
    kv_ruled_out: bool,
    /// A KV call restored after its stream was taken as ended: its
    /// `etcd_request` line is written when its response is read.
    kv_parked: bool,
    /// A mutating request's response: its status and when its HEADERS
    /// were written.
    mutation: Option<(Option<u16>, Option<u64>)>,
    /// The response is gzip-encoded: its bytes are inflated first.
    gzip: Option<Box<Gunzip>>,
    /// Compressed bytes that could not be inflated (after a gap, or not
    /// gzip) since the last `undecodable` line, and why.
    gzip_unread: (u64, Option<GzipStop>),
}

/// A watch-list stream's initial events so far.
#[derive(Clone, Copy, Debug, Default)]
struct WatchList {
    /// When its request was seen (the records' clock).
    requested_ns: u64,
    events: u64,
    bytes: u64,
}

/// Everything but the HTTP/2 decoder, so the decoder can borrow it as its
/// event sink.
struct State {
    conn: u64,
    offset_ns: i128,
    streams: HashMap<u32, StreamDecoding>,
    stall_starts: HashMap<(Flow, WindowScope), Vec<u32>>,
    out: Vec<OutputEvent>,
    /// The process's role (a copy of the connection's, for the sink).
    role: Role,
    /// The items being flushed were decoded from the client's bytes.
    flushing_reverse: bool,
    items: Vec<WatchItem>,
    etcd_items: Vec<EtcdItem>,
    /// The byte stream being decoded now and the offset of its end: where
    /// undecodable bytes are said to be found.
    at: (Direction, u64),
    /// Per HTTP/2 direction: frame boundaries were known (a resync after
    /// that skipped damage, not a mid-way join).
    framed: [bool; 2],
    /// What a gzip-encoded piece inflated to, kept between calls.
    inflated: Vec<u8>,
    /// KV calls whose stream ended before their response on a connection
    /// joined mid-way (the roles guessed wrong, the request's END_STREAM
    /// looks like the response's), by stream, oldest first: the response
    /// still comes on the same stream id (never reused).
    parked_calls: VecDeque<(u32, Box<EtcdCall>, bool)>,
    /// The last object kind and apiVersion an event's resource was derived
    /// from, and that resource (watches opened before attach: no request
    /// names it).
    kind_resource: (MetaString, MetaString, MetaString),
}

/// A connection being decoded.
pub(crate) struct Connection {
    http: Option<Http2Connection>,
    /// Set instead of `http` for an HTTP/1.1 connection (see `http1`).
    http1: Option<Box<Http1Connection>>,
    /// This process's role, decided from the first bytes.
    role: Role,
    /// Joined mid-way: `role` is a guess.
    role_guessed: bool,
    state: State,
    pub(crate) bytes_out: u64,
    pub(crate) bytes_in: u64,
}

impl Connection {
    pub(crate) fn new(conn: u64, offset_ns: i128) -> Self {
        Self {
            http: None,
            http1: None,
            role: Role::Server,
            role_guessed: false,
            state: State {
                conn,
                offset_ns,
                streams: HashMap::new(),
                stall_starts: HashMap::new(),
                out: Vec::new(),
                role: Role::Server,
                flushing_reverse: false,
                items: Vec::new(),
                etcd_items: Vec::new(),
                kind_resource: Default::default(),
                at: (Direction::Egress, 0),
                framed: [false; 2],
                inflated: Vec::new(),
                parked_calls: VecDeque::new(),
            },
            bytes_out: 0,
            bytes_in: 0,
        }
    }

    pub(crate) fn role(&self) -> Role {
        self.role
    }

    /// The role is a guess: the connection was joined mid-way, its first
    /// bytes said nothing of who opened it.
    pub(crate) fn role_guessed(&self) -> bool {
        self.role_guessed
    }

    /// The time (the records' clock) of the oldest bytes either direction
    /// holds undecoded while it looks for a frame boundary (after joining
    /// mid-way, or a gap): events of those bytes are still to come.
    pub(crate) fn undecoded_since(&self) -> Option<u64> {
        let http = self.http.as_ref()?;
        [Flow::ClientToServer, Flow::ServerToClient]
            .into_iter()
            .filter_map(|dir| http.undecoded_since(dir))
            .min()
    }

    /// The resource a stream's request named, when it was seen.
    pub(crate) fn resource_of(&self, stream: u32) -> Option<String> {
        let resource = self.state.streams.get(&stream)?.resource.as_ref()?;
        Some(resource.to_string())
    }

    /// The HTTP/2 direction of bytes the process wrote (`egress`) or read.
    fn direction(&self, egress: bool) -> Flow {
        match (self.role, egress) {
            (Role::Server, true) | (Role::Client, false) => Flow::ServerToClient,
            _ => Flow::ClientToServer,
        }
    }

    /// Plaintext the process wrote (`egress`) or read, starting at stream
    /// `offset`.
    pub(crate) fn on_data(
        &mut self,
        egress: bool,
        offset: u64,
        ts: u64,
        bytes: &[u8],
        out: &mut Vec<OutputEvent>,
    ) {
        if egress {
            self.bytes_out += bytes.len() as u64;
        } else {
            self.bytes_in += bytes.len() as u64;
        }
        self.state.at = (direction_of(egress), offset + bytes.len() as u64);
        if self.http.is_none() && self.http1.is_none() {
            if let Some(role) = http1::detect(egress, offset, bytes) {
                self.role = role;
                let h1 = Http1Connection::new(self.state.conn, self.state.offset_ns, role);
                self.http1 = Some(Box::new(h1));
            } else {
                self.http = Some(self.start(egress, offset, bytes));
            }
        }
        if let Some(h1) = self.http1.as_mut() {
            h1.on_data(egress, ts, bytes, out);
            return;
        }
        let dir = self.direction(egress);
        let http = self.http.as_mut().expect("set above");
        http.on_bytes(dir, ts, bytes, &mut self.state);
        out.append(&mut self.state.out);
    }

    /// Decides how the connection was joined from its first captured bytes:
    /// the client preface (or the server's opening SETTINGS) at offset 0
    /// means from the start; anything else is mid-way, the normal case.
    fn start(&mut self, egress: bool, offset: u64, bytes: &[u8]) -> Http2Connection {
        let n = bytes.len().min(PREFACE.len());
        let preface = offset == 0 && n > 0 && bytes[..n] == PREFACE[..n];
        // A server's first frame is SETTINGS on stream 0: type 4.
        let settings =
            offset == 0 && bytes.len() >= 9 && bytes[3] == 4 && bytes[5..9] == [0, 0, 0, 0];
        self.role = match (preface, egress) {
            (true, true) => Role::Client,
            _ => Role::Server,
        };
        self.state.role = self.role;
        let attach = if preface || (settings && egress) {
            Attach::FromStart
        } else {
            Attach::MidStream
        };
        self.role_guessed = attach == Attach::MidStream;
        Http2Connection::new(Http2Config::default(), attach)
    }

    pub(crate) fn on_gap(&mut self, egress: bool, ts: u64, lost: u64, out: &mut Vec<OutputEvent>) {
        let dir = self.direction(egress);
        // Which stream lost bytes is not known: no gzip body of that
        // direction can be inflated further (never guessed).
        if dir == Flow::ServerToClient {
            for state in self.state.streams.values_mut() {
                if let Some(gzip) = state.gzip.as_mut() {
                    gzip.gap();
                }
                if let Some(list) = state.list.as_mut() {
                    list.maybe_lost = true;
                }
            }
        }
        if let Some(http) = self.http.as_mut() {
            http.on_gap(dir, ts, lost, &mut self.state);
        }
        if let Some(h1) = self.http1.as_mut() {
            h1.on_gap(egress, ts, lost, out);
        }
        out.append(&mut self.state.out);
    }

    pub(crate) fn close(&mut self, ts: u64, out: &mut Vec<OutputEvent>) {
        if let Some(http) = self.http.as_mut() {
            http.close(ts, &mut self.state);
        }
        if let Some(h1) = self.http1.as_mut() {
            h1.close(ts, out);
        }
        out.append(&mut self.state.out);
    }
}

impl State {
    fn ts(&self, ns: u64) -> u64 {
        (i128::from(ns) + self.offset_ns).max(0) as u64
    }

    fn on_headers(&mut self, dir: Flow, stream: u32, fields: &[HeaderField], ts: u64) {
        let text = |name: &str| -> Option<String> {
            fields
                .iter()
                .find(|f| f.name.known() == Some(name.as_bytes()))
                .and_then(|f| f.value.known())
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        let unknown = fields.iter().filter(|f| !f.is_known()).count();
        let state = self.streams.entry(stream).or_default();
        match dir {
            Flow::ClientToServer => {
                let (Some(method), Some(path)) = (text(":method"), text(":path")) else {
                    return;
                };
                if path == ETCD_WATCH_PATH {
                    state.etcd_watch = true;
                    return;
                }
                if let Some(op) = etcd::KvOp::from_path(&path) {
                    state.etcd_call = Some(Box::new(EtcdCall::new(op, ts)));
                    state.kv_request_reverse = true;
                    return;
                }
                let headers: Vec<(String, String)> = ["user-agent", "accept", "content-type"]
                    .iter()
                    .filter_map(|h| text(h).map(|v| ((*h).to_owned(), v)))
                    .collect();
                let request = ApiRequest::parse(
                    &method,
                    &path,
                    headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                );
                self.out.push(OutputEvent::request(
                    (i128::from(ts) + self.offset_ns).max(0) as u64,
                    self.conn,
                    stream,
                    &path,
                    &request,
                    unknown,
                ));
                if request.verb == Verb::Watch && request.options.send_initial_events == Some(true)
                {
                    state.watch_list = Some(WatchList {
                        requested_ns: ts,
                        ..WatchList::default()
                    });
                }
                state.resource = request
                    .target
                    .as_ref()
                    .map(|t| MetaString::from(t.qualified()));
                state.t_request = ts;
                if matches!(
                    request.verb,
                    Verb::Create | Verb::Update | Verb::Patch | Verb::Delete
                ) {
                    state.mutation = Some((None, None));
                }
                state.request = Some(request);
            }
            Flow::ServerToClient => {
                if let Some(call) = state.etcd_call.as_mut() {
                    // In the trailers, or alone on an error (trailers-only).
                    if let Some(status) = text("grpc-status").and_then(|s| s.parse().ok()) {
                        call.grpc_status = Some(status);
                    }
                    return;
                }
                if state.response.is_some() {
                    return; // trailers
                }
                if let Some((status, t_responded)) = state.mutation.as_mut() {
                    *status = text(":status").and_then(|s| s.parse().ok());
                    *t_responded = Some(ts);
                }
                if state.etcd_watch {
                    let decoder = EtcdWatchDecoder::from_start(
                        Flow::ServerToClient,
                        EtcdDecoderConfig::default(),
                    );
                    state.response = Some(Body::Etcd(Box::new(decoder)));
                } else if state
                    .request
                    .as_ref()
                    .is_some_and(|r| r.verb == Verb::Watch)
                {
                    let format =
                        text("content-type").and_then(|c| WireFormat::from_content_type(&c));
                    let decoder = match format {
                        Some(format) => {
                            WatchStreamDecoder::from_start(format, DecoderConfig::default())
                        }
                        None => WatchStreamDecoder::mid_stream(None, DecoderConfig::default()),
                    };
                    state.response = Some(Body::Watch(Box::new(decoder)));
                    if text("content-encoding").is_some_and(|e| e.eq_ignore_ascii_case("gzip")) {
                        state.gzip = Some(Box::default());
                    }
                } else if let Some(request) = &state.request {
                    if request.verb == Verb::List {
                        let status = text(":status").and_then(|s| s.parse().ok());
                        let list = ListResponse::new(
                            state.t_request,
                            ts,
                            status,
                            text("content-type").as_deref(),
                            text("content-encoding").as_deref(),
                        );
                        state.list = Some(Box::new(list));
                    }
                    state.response = Some(Body::Ignore);
                }
            }
        }
    }

    /// Body bytes of `stream` from the server (`reverse`: from the client,
    /// probed only while the request is unknown).
    fn on_response_data(&mut self, stream: u32, bytes: &[u8], ts: u64, reverse: bool) {
        if let Some(i) = self.parked_calls.iter().position(|(s, ..)| *s == stream) {
            let (_, call, request_reverse) = self.parked_calls.remove(i).expect("found");
            let state = self.streams.entry(stream).or_default();
            state.etcd_call = Some(call);
            state.kv_request_reverse = request_reverse;
            state.kv_parked = true;
        }
        let state = self.streams.entry(stream).or_default();
        // A stream whose request is not known (its HEADERS were before the
        // capture, or name an HPACK entry from then, as every KV call of a
        // long-lived etcd connection does): a KV call if its content says
        // so, probed for watch content meanwhile.
        if state.etcd_call.is_none()
            && state.request.is_none()
            && !state.etcd_watch
            && !state.kv_ruled_out
        {
            state.kv_request_reverse = reverse;
            state.etcd_call = Some(Box::new(EtcdCall::guessing(ts)));
        }
        if let Some(call) = state.etcd_call.as_mut() {
            call.push(reverse != state.kv_request_reverse, bytes, ts);
            if call.op.is_some() {
                if state.kv_parked && call.t_response.is_some() {
                    let call = state.etcd_call.take().expect("matched above");
                    self.streams.remove(&stream);
                    let line =
                        OutputEvent::etcd_request(self.conn, stream, &call, ts, self.offset_ns);
                    self.out.push(line);
                }
                return;
            }
            if !call.is_kv() {
                state.etcd_call = None;
                state.kv_ruled_out = true;
            }
        }
        if reverse && (state.request.is_some() || state.etcd_watch) {
            return;
        }
        if !reverse && let Some(list) = state.list.as_mut() {
            list.push(bytes, ts);
            return;
        }
        if !reverse && state.request.is_none() && state.gzip.is_none() && gzip_member_starts(bytes)
        {
            self.start_gzip_member(stream, ts);
        }
        let state = self.streams.entry(stream).or_default();
        if !reverse && let Some(gzip) = state.gzip.as_mut() {
            let mut inflated = std::mem::take(&mut self.inflated);
            match gzip.push(bytes, &mut inflated) {
                Ok(()) => {
                    self.on_body(stream, &inflated, ts, reverse);
                }
                Err(stopped) => {
                    let first = state.gzip_unread.1.is_none();
                    state.gzip_unread = (state.gzip_unread.0 + stopped.unread, Some(stopped.why));
                    // What the bytes before the stop inflated to.
                    if !inflated.is_empty() {
                        self.on_body(stream, &inflated, ts, reverse);
                    }
                    // Said at once, then summed up at the stream's end.
                    if first {
                        self.report_gzip_unread(stream, ts);
                    }
                }
            }
            self.inflated = inflated;
            return;
        }
        self.on_body(stream, bytes, ts, reverse);
    }

    /// A gzip member begins the piece of `stream`, whose headers were not
    /// seen: an apiserver that ends a member at every flush (Kubernetes
    /// 1.37's watch-list streams) lets a stream joined mid-way be inflated
    /// from here. The bytes probed before are the end of a member whose
    /// start was missed.
    fn start_gzip_member(&mut self, stream: u32, ts: u64) {
        let Some(state) = self.streams.get_mut(&stream) else {
            return;
        };
        let before = match &state.response {
            None | Some(Body::MidGzip) => 0,
            Some(Body::Probe { seen, .. }) => *seen,
            // Already decoded as something else (an etcd stream, events).
            Some(_) => return,
        };
        state.gzip_unread.0 += before;
        if state.gzip_unread.0 > 0 {
            state.gzip_unread.1 = Some(GzipStop::JoinedMidMember);
        }
        state.gzip = Some(Box::default());
        state.response = Some(Body::Watch(Box::new(WatchStreamDecoder::mid_stream(
            None,
            DecoderConfig::default(),
        ))));
        self.report_gzip_unread(stream, ts);
        if let Some(state) = self.streams.get_mut(&stream) {
            state.gzip_unread.1 = None;
        }
    }

    /// An `undecodable` line for the gzip bytes of `stream` that could not
    /// be inflated, since the last one.
    fn report_gzip_unread(&mut self, stream: u32, ts: u64) {
        let Some(state) = self.streams.get_mut(&stream) else {
            return;
        };
        let bytes = std::mem::take(&mut state.gzip_unread.0);
        let stop = state.gzip_unread.1;
        if bytes == 0 {
            return;
        }
        let reason = match stop {
            Some(GzipStop::CutByGap) => UndecodableReason::CutByGap,
            Some(GzipStop::JoinedMidMember) => UndecodableReason::JoinedMidGzip,
            _ => UndecodableReason::Compressed,
        };
        self.undecodable(Some(stream), UndecodableLayer::Watch, reason, bytes, ts);
    }

    /// Body bytes (inflated, when the response was gzip-encoded).
    fn on_body(&mut self, stream: u32, bytes: &[u8], ts: u64, reverse: bool) {
        let state = self.streams.entry(stream).or_default();
        let slot = if reverse {
            &mut state.reverse
        } else {
            &mut state.response
        };
        let body = slot.get_or_insert_with(|| Body::Probe {
            watch: Box::new(WatchStreamDecoder::mid_stream(
                None,
                DecoderConfig::default(),
            )),
            etcd: Box::new(EtcdWatchDecoder::mid_stream(
                Flow::ServerToClient,
                EtcdDecoderConfig::default(),
            )),
            seen: 0,
            sync_flushes: 0,
        });
        self.items.clear();
        self.etcd_items.clear();
        match body {
            Body::Watch(decoder) => decoder.push(bytes, ts, &mut self.items),
            Body::Etcd(decoder) => decoder.push(bytes, ts, &mut self.etcd_items),
            Body::Probe {
                watch,
                etcd,
                seen,
                sync_flushes,
            } => {
                watch.push(bytes, ts, &mut self.items);
                etcd.push(bytes, ts, &mut self.etcd_items);
                *seen += bytes.len() as u64;
                *sync_flushes += u32::from(bytes.ends_with(&SYNC_FLUSH_MARKER));
                let watch_hit = self.items.iter().any(|i| matches!(i, WatchItem::Event(_)));
                let etcd_hit = self
                    .etcd_items
                    .iter()
                    .any(|i| matches!(i, EtcdItem::Response(_)));
                let taken = std::mem::replace(body, Body::Ignore);
                let Body::Probe {
                    watch,
                    etcd,
                    seen,
                    sync_flushes,
                } = taken
                else {
                    unreachable!("matched above")
                };
                *body = if watch_hit {
                    self.etcd_items.clear();
                    Body::Watch(watch)
                } else if etcd_hit {
                    self.items.clear();
                    Body::Etcd(etcd)
                } else if sync_flushes >= MID_GZIP_FLUSHES && !reverse {
                    // Every byte probed so far was of the member too.
                    self.items.clear();
                    self.etcd_items.clear();
                    state.gzip_unread = (seen, Some(GzipStop::JoinedMidMember));
                    Body::MidGzip
                } else if seen > PROBE_LIMIT {
                    Body::Ignore
                } else {
                    Body::Probe {
                        watch,
                        etcd,
                        seen,
                        sync_flushes,
                    }
                };
                if matches!(body, Body::MidGzip) {
                    self.report_gzip_unread(stream, ts);
                    return;
                }
            }
            Body::MidGzip => {
                state.gzip_unread.0 += bytes.len() as u64;
                return;
            }
            Body::Ignore => {}
        }
        self.flushing_reverse = reverse;
        self.flush_items(stream);
        self.flushing_reverse = false;
    }

    fn flush_items(&mut self, stream: u32) {
        // What the stream's state says, read once for the whole flush.
        let (resource_of_request, mut synced, mut watch_list) = match self.streams.get_mut(&stream)
        {
            Some(s) => (s.resource.clone(), s.synced, s.watch_list.take()),
            None => (None, false, None),
        };
        let sent = self.flushing_reverse == (self.role == Role::Client);
        let mut items = std::mem::take(&mut self.items);
        let seen = items.iter().map(Seen::from);
        self.report_undecodable(stream, UndecodableLayer::Watch, seen, &mut synced);
        for item in items.drain(..) {
            if let WatchItem::Event(e) = item {
                // Up to (and with) the bookmark ending them: the initial
                // state of a watch-list stream, not deliveries of changes.
                let initial = watch_list.is_some();
                let list_done = on_watch_list_event(&mut watch_list, &e);
                let resource = match &resource_of_request {
                    Some(resource) => resource.clone(),
                    None => {
                        let (kind, api_version, resource) = &mut self.kind_resource;
                        if *kind != e.object_kind || *api_version != e.api_version {
                            kind.clone_from(&e.object_kind);
                            api_version.clone_from(&e.api_version);
                            *resource = resource_of_kind(kind, api_version).into();
                        }
                        resource.clone()
                    }
                };
                let list_synced = list_done.map(|list| OutputEvent::WatchListSynced {
                    ts: self.ts(e.t_last_byte),
                    conn: self.conn,
                    stream,
                    resource: resource.to_string(),
                    initial_events: list.events,
                    initial_bytes: list.bytes,
                    duration_ns: e.t_last_byte.saturating_sub(list.requested_ns),
                });
                let mut event =
                    OutputEvent::watch_event(self.conn, stream, resource, e, self.offset_ns, sent);
                if let OutputEvent::WatchEvent { timeline, .. } = &mut event {
                    timeline.replayed = initial;
                }
                self.out.push(event);
                self.out.extend(list_synced);
            }
        }
        self.items = items;
        let mut etcd_items = std::mem::take(&mut self.etcd_items);
        let seen = etcd_items.iter().map(Seen::from);
        self.report_undecodable(stream, UndecodableLayer::Etcd, seen, &mut synced);
        for item in etcd_items.drain(..) {
            if let EtcdItem::Response(framed) = item {
                let t_received = (i128::from(framed.t_last_byte) + self.offset_ns).max(0) as u64;
                for event in &framed.msg.events {
                    self.out.push(OutputEvent::EtcdEvent {
                        ts: t_received,
                        conn: self.conn,
                        stream,
                        watch_id: framed.msg.watch_id,
                        key: event.kv.key.clone(),
                        revision: event.kv.mod_revision,
                        event_type: match event.event_type {
                            etcd::EtcdEventType::Put => "PUT".to_owned(),
                            etcd::EtcdEventType::Delete => "DELETE".to_owned(),
                            etcd::EtcdEventType::Other(n) => n.to_string(),
                        },
                        value_len: event.kv.value_len,
                        t_received,
                    });
                }
            }
        }
        self.etcd_items = etcd_items;
        if let Some(state) = self.streams.get_mut(&stream) {
            state.synced = synced;
            state.watch_list = watch_list;
        }
    }

    /// An `undecodable` line for each drop among a body decoder's items,
    /// and for bytes skipped to a boundary once `synced` (a mid-way join's
    /// first boundary skips a partial item, which is no damage).
    fn report_undecodable(
        &mut self,
        stream: u32,
        layer: UndecodableLayer,
        items: impl Iterator<Item = Seen>,
        synced: &mut bool,
    ) {
        for seen in items {
            let (reason, bytes, ts) = match seen {
                Seen::Decoded => {
                    *synced = true;
                    continue;
                }
                Seen::Boundary { skipped, ts } => {
                    if !std::mem::replace(synced, true) || skipped == 0 {
                        continue;
                    }
                    (UndecodableReason::Skipped, skipped, ts)
                }
                Seen::Dropped { reason, bytes, ts } => (reason, bytes, ts),
            };
            self.undecodable(Some(stream), layer, reason, bytes, ts);
        }
    }

    /// An `undecodable` line for bytes found where decoding is now.
    fn undecodable(
        &mut self,
        stream: Option<u32>,
        layer: UndecodableLayer,
        reason: UndecodableReason,
        bytes: u64,
        ts_ns: u64,
    ) {
        let (direction, offset) = self.at;
        self.out.push(OutputEvent::Undecodable {
            ts: self.ts(ts_ns),
            conn: Some(self.conn),
            stream,
            layer,
            reason,
            bytes,
            direction: Some(direction),
            stream_offset: Some(offset),
        });
    }

    fn on_stream_end(&mut self, stream: u32, cause: StreamEndCause, ts: u64) {
        self.report_gzip_unread(stream, ts);
        if let Some(mut state) = self.streams.remove(&stream) {
            if let Some(call) = state.etcd_call.take().filter(|c| c.op.is_some()) {
                let waiting = call.request().is_some()
                    && call.t_response.is_none()
                    && call.failure().is_none()
                    && matches!(cause, StreamEndCause::Complete)
                    && !state.kv_parked;
                if waiting {
                    // Ended by the request's END_STREAM, read as the
                    // response's: the response may still come.
                    if self.parked_calls.len() >= MAX_PARKED_CALLS
                        && let Some((old, call, _)) = self.parked_calls.pop_front()
                    {
                        let line =
                            OutputEvent::etcd_request(self.conn, old, &call, ts, self.offset_ns);
                        self.out.push(line);
                    }
                    self.parked_calls
                        .push_back((stream, call, state.kv_request_reverse));
                } else {
                    let line =
                        OutputEvent::etcd_request(self.conn, stream, &call, ts, self.offset_ns);
                    self.out.push(line);
                }
            }
            if let (Some((status, t_responded)), Some(request)) =
                (state.mutation.take(), state.request.as_ref())
            {
                let unix = |ns: u64| self.ts(ns);
                let target = request.target.as_ref();
                self.out.push(OutputEvent::Write {
                    ts: unix(ts),
                    conn: self.conn,
                    stream,
                    method: request.method.clone(),
                    verb: format!("{:?}", request.verb).to_lowercase(),
                    resource: target.map(crate::watch::ResourceTarget::qualified),
                    namespace: target.and_then(|t| t.namespace.clone()),
                    name: target.and_then(|t| t.name.clone()),
                    client: request.user_agent.as_deref().map(super::client_name),
                    status,
                    t_request: unix(state.t_request),
                    t_committed: None,
                    t_responded: t_responded.map(unix),
                    revision: None,
                    etcd_rtt_ns: None,
                    etcd_calls: 0,
                    etcd_conflicts: 0,
                });
            }
            if let (Some(list), Some(request)) = (state.list.take(), state.request.as_ref()) {
                let complete = matches!(cause, StreamEndCause::Complete);
                let line = OutputEvent::list_response(
                    self.conn,
                    stream,
                    request,
                    &list,
                    complete,
                    self.offset_ns,
                );
                self.out.push(line);
            }
            self.items.clear();
            self.etcd_items.clear();
            match state.response.as_mut() {
                Some(Body::Watch(d)) => d.finish(ts, &mut self.items),
                Some(Body::Etcd(d)) => d.finish(ts, &mut self.etcd_items),
                _ => {}
            }
            self.streams.insert(stream, state);
            self.flush_items(stream);
            self.streams.remove(&stream);
        }
        let (how, code, by) = match cause {
            StreamEndCause::Complete => (Ending::EndStream, None, None),
            StreamEndCause::Reset { by, code } => (Ending::RstStream, code, Some(Role::sender(by))),
            StreamEndCause::GoAway { by, code, .. } => {
                (Ending::Goaway, Some(code), Some(Role::sender(by)))
            }
            StreamEndCause::Evicted => (Ending::Evicted, None, None),
            StreamEndCause::ConnectionClosed => (Ending::ConnectionClosed, None, None),
        };
        self.out.push(OutputEvent::StreamEnd {
            ts: self.ts(ts),
            conn: self.conn,
            stream,
            how,
            code,
            by,
        });
    }
}

impl EventSink for State {
    fn event(&mut self, event: Http2Event<'_>) {
        match event {
            Http2Event::Headers {
                dir,
                stream,
                fields,
                ts_ns,
                ..
            } => self.on_headers(dir, stream, &fields, ts_ns),
            Http2Event::Data {
                dir,
                stream,
                bytes,
                ts_ns,
                ..
            } => {
                self.on_response_data(stream, &bytes, ts_ns, dir == Flow::ClientToServer);
            }
            Http2Event::DataLost {
                dir: Flow::ServerToClient,
                stream,
                len,
                ts_ns,
                ..
            } => {
                if let Some(state) = self.streams.get_mut(&stream) {
                    if let Some(call) = state.etcd_call.as_mut().filter(|c| c.op.is_some()) {
                        call.gap(state.kv_request_reverse);
                        return;
                    }
                    if let Some(list) = state.list.as_mut() {
                        list.gap(len, ts_ns);
                        return;
                    }
                    self.items.clear();
                    self.etcd_items.clear();
                    if let Some(gzip) = state.gzip.as_mut() {
                        gzip.gap();
                    }
                    match state.response.as_mut() {
                        Some(Body::Watch(d)) => d.gap(len, ts_ns, &mut self.items),
                        Some(Body::Etcd(d)) => d.gap(len, ts_ns, &mut self.etcd_items),
                        _ => {}
                    }
                    self.flush_items(stream);
                }
            }
            Http2Event::StreamEnd {
                stream,
                cause,
                ts_ns,
                ..
            } => self.on_stream_end(stream, cause, ts_ns),
            Http2Event::WindowStallStart {
                sender,
                scope,
                open_streams,
                ts_ns,
                ..
            } => {
                self.stall_starts.insert((sender, scope), open_streams);
                let (cause, stream) = match scope {
                    WindowScope::Connection => (StallCause::ConnectionWindow, None),
                    WindowScope::Stream(id) => (StallCause::StreamWindow, Some(id)),
                };
                self.out.push(OutputEvent::StallStart {
                    ts: self.ts(ts_ns),
                    conn: Some(self.conn),
                    cause,
                    stream,
                });
            }
            Http2Event::WindowStallEnd {
                sender,
                scope,
                start_ts_ns,
                ts_ns,
                ..
            } => {
                let open_streams = self
                    .stall_starts
                    .remove(&(sender, scope))
                    .unwrap_or_default();
                let (scope, stream) = match scope {
                    WindowScope::Connection => (StallScope::Connection, None),
                    WindowScope::Stream(id) => (StallScope::Stream, Some(id)),
                };
                self.out.push(OutputEvent::WindowStall {
                    ts: self.ts(ts_ns),
                    conn: self.conn,
                    scope,
                    stream,
                    sender: Role::sender(sender),
                    start: self.ts(start_ts_ns),
                    duration_ns: ts_ns.saturating_sub(start_ts_ns),
                    flaps: 0,
                    open_streams,
                    held: Vec::new(),
                });
            }
            Http2Event::Settings { dir, params, ts_ns } => {
                let value = |id: u16| params.iter().rev().find(|p| p.id == id).map(|p| p.value);
                self.out.push(OutputEvent::Settings {
                    ts: self.ts(ts_ns),
                    conn: self.conn,
                    sender: Role::sender(dir),
                    max_concurrent_streams: value(SETTINGS_MAX_CONCURRENT_STREAMS),
                    initial_window_size: value(SETTINGS_INITIAL_WINDOW_SIZE),
                });
            }
            Http2Event::Frame { dir, .. } => self.framed[dir.idx()] = true,
            Http2Event::Resynced {
                dir,
                skipped,
                ts_ns,
            } => {
                // The first boundary of a connection joined mid-way ends a
                // partial frame, not damage.
                let framed = std::mem::replace(&mut self.framed[dir.idx()], true);
                if framed && skipped > 0 {
                    self.undecodable(
                        None,
                        UndecodableLayer::Http2,
                        UndecodableReason::Skipped,
                        skipped,
                        ts_ns,
                    );
                }
            }
            // A block lost to a gap or a resync is counted there.
            Http2Event::HeadersLost {
                stream,
                reason: reason @ (BlockLoss::TooLarge | BlockLoss::Interrupted),
                ts_ns,
                ..
            } => {
                let reason = match reason {
                    BlockLoss::TooLarge => UndecodableReason::Oversized,
                    _ => UndecodableReason::Interrupted,
                };
                self.undecodable(Some(stream), UndecodableLayer::Hpack, reason, 0, ts_ns);
            }
            Http2Event::HpackFullyKnown { dir, ts_ns, .. } => {
                self.out.push(OutputEvent::HpackKnown {
                    ts: self.ts(ts_ns),
                    conn: self.conn,
                    direction: dir,
                });
            }
            _ => {}
        }
    }
}

/// The resource of a kind when the request was not seen, named as a
/// request names it (see [`ResourceTarget::qualified`]): the API's own
/// irregular plurals, else lower case plus "s", with the group of the
/// object's `apiVersion` (`coordination.k8s.io/v1`: `leases.coordination.k8s.io`).
///
/// [`ResourceTarget::qualified`]: crate::watch::ResourceTarget::qualified
pub fn resource_of_kind(kind: &str, api_version: &str) -> String {
    let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
    crate::watch::qualified(&plural_of_kind(kind), group)
}

fn plural_of_kind(kind: &str) -> String {
    match kind {
        "" => String::new(),
        "Endpoints" => "endpoints".into(),
        "EndpointSlice" => "endpointslices".into(),
        "NetworkPolicy" => "networkpolicies".into(),
        "PodSecurityPolicy" => "podsecuritypolicies".into(),
        "PriorityClass" => "priorityclasses".into(),
        "StorageClass" => "storageclasses".into(),
        "IngressClass" => "ingressclasses".into(),
        "RuntimeClass" => "runtimeclasses".into(),
        "Ingress" => "ingresses".into(),
        "Status" => String::new(),
        _ => format!("{}s", kind.to_lowercase()),
    }
}

/// A gzip member's header opens `bytes`: magic, deflate, no reserved
/// flag (RFC 1952); nothing else written by an apiserver begins so (a
/// protobuf frame would declare 500 MB, JSON is text).
fn gzip_member_starts(bytes: &[u8]) -> bool {
    bytes.len() >= 10 && bytes[..3] == [0x1f, 0x8b, 0x08] && bytes[3] & 0xe0 == 0
}

/// The byte stream of bytes the process wrote (`egress`) or read.
fn direction_of(egress: bool) -> Direction {
    if egress {
        Direction::Egress
    } else {
        Direction::Ingress
    }
}

/// What a body decoder's item says of the bytes it covered.
enum Seen {
    /// A whole item.
    Decoded,
    /// A boundary found by content, `skipped` bytes after the last.
    Boundary { skipped: u64, ts: u64 },
    /// Bytes that were (or began) an item but gave none.
    Dropped {
        reason: UndecodableReason,
        bytes: u64,
        ts: u64,
    },
}

impl From<&WatchItem> for Seen {
    fn from(item: &WatchItem) -> Self {
        match *item {
            WatchItem::Event(_) => Self::Decoded,
            WatchItem::Synced {
                skipped_bytes,
                ts_ns,
                ..
            } => Self::Boundary {
                skipped: skipped_bytes,
                ts: ts_ns,
            },
            WatchItem::Dropped {
                reason,
                bytes,
                ts_ns,
            } => Self::Dropped {
                reason: match reason {
                    DropReason::Oversized => UndecodableReason::Oversized,
                    DropReason::Malformed => UndecodableReason::Malformed,
                    DropReason::CutByGap => UndecodableReason::CutByGap,
                    DropReason::Truncated => UndecodableReason::Truncated,
                },
                bytes,
                ts: ts_ns,
            },
        }
    }
}

impl From<&EtcdItem> for Seen {
    fn from(item: &EtcdItem) -> Self {
        match *item {
            EtcdItem::Response(_) | EtcdItem::Request(_) => Self::Decoded,
            EtcdItem::Synced {
                skipped_bytes,
                ts_ns,
            } => Self::Boundary {
                skipped: skipped_bytes,
                ts: ts_ns,
            },
            EtcdItem::Dropped {
                reason,
                bytes,
                ts_ns,
            } => Self::Dropped {
                reason: match reason {
                    EtcdDropReason::Compressed => UndecodableReason::Compressed,
                    EtcdDropReason::Oversized => UndecodableReason::Oversized,
                    EtcdDropReason::Malformed => UndecodableReason::Malformed,
                    EtcdDropReason::CutByGap => UndecodableReason::CutByGap,
                    EtcdDropReason::Truncated => UndecodableReason::Truncated,
                },
                bytes,
                ts: ts_ns,
            },
        }
    }
}

/// Counts a watch-list stream's initial event; returns its figures (and
/// ends the count) when `event` is the BOOKMARK that ends them.
fn on_watch_list_event(list: &mut Option<WatchList>, event: &WatchEvent) -> Option<WatchList> {
    let counting = list.as_mut()?;
    if event.event_type == EventType::Bookmark {
        return if event.initial_events_end {
            list.take()
        } else {
            None
        };
    }
    counting.events += 1;
    counting.bytes += event.bytes;
    None
}
