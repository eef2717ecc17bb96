//! One HTTP/2 connection: two frame decoders, two HPACK decoders, settings,
//! flow-control windows and the stream table, fed bytes and gaps per
//! direction and reporting [`Http2Event`]s.

use std::borrow::Cow;

use super::{
    decoder::{DecoderLimits, FrameDecoder, FrameEvent, FrameVisitor, Start},
    error::Http2Error,
    event::{EventSink, Flow, Http2Event, Setting, StreamEndCause},
    flow::{StallChange, StallEndCause, Window, WindowScope},
    frame::{DEFAULT_WINDOW, FrameHeader, FrameType, flags, setting_value_ok, settings_params},
    hpack::{self, HeaderField},
    settings::{AckOutcome, SettingsSide, SettingsValues},
    stream::{SideState, StreamEntry, StreamOrigin, StreamTable, Untracked},
};

/// Where in the connection decoding starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attach {
    /// At the first byte of both directions: the client's bytes start with
    /// the preface; settings, windows and HPACK tables start at their
    /// defaults and are known.
    FromStart,
    /// Anywhere: frame boundaries are found by resync, and settings,
    /// windows and HPACK tables are unknown until learned.
    MidStream,
}

/// Bounds and assumptions. Every table has a cap; see each field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Http2Config {
    /// Streams tracked at once; beyond it the least recently active one is
    /// evicted (and reported ended by eviction).
    pub max_streams: usize,
    /// Ended stream ids remembered, so late frames do not revive them.
    pub closed_memory: usize,
    /// Largest header block assembled (HEADERS plus CONTINUATIONs); larger
    /// blocks are dropped and reported.
    pub max_header_block: usize,
    /// Largest SETTINGS payload and GOAWAY debug data buffered.
    pub max_control_payload: usize,
    /// Bytes the resync scanner buffers at once.
    pub resync_window: usize,
    /// HPACK table bytes kept when the table capacity is unknown (or larger).
    pub hpack_retain_bytes: usize,
    /// HPACK table capacity assumed after a mid-connection attach until a
    /// size update or SETTINGS shows it (4096, what most peers use), to tell
    /// when the table is fully known; `None` waits for evidence.
    pub assumed_header_table_size: Option<u32>,
    /// Unacknowledged SETTINGS queued per side.
    pub max_pending_settings: usize,
    /// Also report every frame header ([`Http2Event::Frame`]), for tools
    /// that check framing frame by frame. Off by default: the pipeline does
    /// not need it and pays one branch per frame for it.
    pub frame_events: bool,
}

impl Default for Http2Config {
    fn default() -> Self {
        Self {
            max_streams: 4096,
            closed_memory: 1024,
            max_header_block: 256 * 1024,
            max_control_payload: 16 * 1024,
            resync_window: 64 * 1024,
            hpack_retain_bytes: hpack::DEFAULT_RETAIN_CAP,
            assumed_header_table_size: Some(4096),
            max_pending_settings: 16,
            frame_events: false,
        }
    }
}

/// Counters, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Http2Stats {
    /// Frames decoded (a header block with its CONTINUATIONs counts once).
    pub frames: u64,
    /// DATA payload bytes delivered.
    pub data_bytes: u64,
    /// Header blocks decoded.
    pub header_blocks: u64,
    /// Header blocks lost (too large, gap, resync, HPACK error).
    pub header_blocks_lost: u64,
    pub gaps: u64,
    pub lost_bytes: u64,
    /// Times frame boundaries were lost, and found again.
    pub sync_losses: u64,
    pub resyncs: u64,
    /// Bytes seen but skipped while resyncing.
    pub skipped_bytes: u64,
    pub protocol_errors: u64,
    pub unknown_frames: u64,
    /// SETTINGS ACKs that matched no SETTINGS we saw.
    pub unmatched_settings_acks: u64,
    pub window_stalls: u64,
    pub streams_started: u64,
    pub stream_evictions: u64,
}

/// Whether a sender may send DATA on a stream now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CanSend {
    /// Both its connection and stream windows are positive.
    Yes,
    /// A known window is 0 or less.
    Blocked { connection: bool, stream: bool },
    /// A window is unknown (and no known one blocks).
    Unknown,
}

/// A snapshot of a tracked stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamInfo {
    pub origin: StreamOrigin,
    pub client: SideState,
    pub server: SideState,
    /// Send windows (`None`: unknown).
    pub client_window: Option<i64>,
    pub server_window: Option<i64>,
}

/// Everything but the frame decoders, which call into it.
#[derive(Debug)]
struct State {
    /// HPACK decoder for header blocks sent in each direction.
    hpack: [hpack::Decoder; 2],
    /// Settings announced by each direction's sender.
    settings: [SettingsSide; 2],
    /// Connection send window of each direction's sender.
    conn_window: [Window; 2],
    streams: StreamTable,
    stats: Http2Stats,
}

/// An HTTP/2 connection being reassembled. See the [module docs](super).
#[derive(Debug)]
pub struct Http2Connection {
    decoders: [FrameDecoder; 2],
    state: State,
}

impl Http2Connection {
    /// A connection observed from `attach`.
    pub fn new(cfg: Http2Config, attach: Attach) -> Self {
        let limits = DecoderLimits {
            max_header_block: cfg.max_header_block,
            max_control_payload: cfg.max_control_payload,
            resync_window: cfg.resync_window,
        };
        let mid = attach == Attach::MidStream;
        let (client_start, server_start) = if mid {
            (Start::Resync, Start::Resync)
        } else {
            (Start::Preface, Start::Frames)
        };
        let hpack = || {
            if mid {
                hpack::Decoder::mid_stream(cfg.hpack_retain_bytes, cfg.assumed_header_table_size)
            } else {
                hpack::Decoder::with_retain_cap(cfg.hpack_retain_bytes)
            }
        };
        let settings = || {
            if mid {
                SettingsSide::mid_stream(cfg.max_pending_settings)
            } else {
                SettingsSide::from_start(cfg.max_pending_settings)
            }
        };
        let window = || {
            if mid {
                Window::unknown()
            } else {
                Window::new(Some(i64::from(DEFAULT_WINDOW)), 0).0
            }
        };
        let decoder = |start| {
            let mut d = FrameDecoder::new(start, limits);
            d.report_frames = cfg.frame_events;
            d
        };
        Self {
            decoders: [decoder(client_start), decoder(server_start)],
            state: State {
                hpack: [hpack(), hpack()],
                settings: [settings(), settings()],
                conn_window: [window(), window()],
                streams: StreamTable::new(cfg.max_streams, cfg.closed_memory, mid),
                stats: Http2Stats::default(),
            },
        }
    }

    /// Decodes `bytes` captured at `ts_ns` in direction `dir`.
    pub fn on_bytes<S: EventSink>(&mut self, dir: Flow, ts_ns: u64, bytes: &[u8], sink: &mut S) {
        let Self { decoders, state } = self;
        let mut ctx = Ctx { dir, state, sink };
        decoders[dir.idx()].push(bytes, ts_ns, &mut ctx);
    }

    /// `lost` bytes of `dir` were not captured, at `ts_ns`.
    pub fn on_gap<S: EventSink>(&mut self, dir: Flow, ts_ns: u64, lost: u64, sink: &mut S) {
        let Self { decoders, state } = self;
        state.stats.gaps += 1;
        state.stats.lost_bytes += lost;
        let decoder = &mut decoders[dir.idx()];
        sink.event(Http2Event::Gap {
            dir,
            lost,
            kept_boundaries: decoder.gap_keeps_boundaries(lost),
            ts_ns,
        });
        let mut ctx = Ctx { dir, state, sink };
        decoder.gap(lost, ts_ns, &mut ctx);
    }

    /// The connection is gone: ends every tracked stream and stall.
    pub fn close<S: EventSink>(&mut self, ts_ns: u64, sink: &mut S) {
        let st = &mut self.state;
        for id in st.streams.ids() {
            st.end_stream(id, StreamEndCause::ConnectionClosed, ts_ns, sink);
        }
        for sender in [Flow::ClientToServer, Flow::ServerToClient] {
            let change = st.conn_window[sender.idx()].close(StallEndCause::ConnectionClosed);
            st.stall_event(sender, WindowScope::Connection, change, ts_ns, sink);
        }
    }

    /// Whether `sender` could send DATA on `stream` now.
    pub fn can_send(&self, sender: Flow, stream: u32) -> CanSend {
        let conn = self.state.conn_window[sender.idx()].value();
        let strm = self
            .state
            .streams
            .get(stream)
            .and_then(|e| e.window[sender.idx()].value());
        let blocked = |w: Option<i64>| w.is_some_and(|v| v <= 0);
        match (conn, strm) {
            (Some(c), Some(s)) if c > 0 && s > 0 => CanSend::Yes,
            _ if blocked(conn) || blocked(strm) => CanSend::Blocked {
                connection: blocked(conn),
                stream: blocked(strm),
            },
            _ => CanSend::Unknown,
        }
    }

    /// `sender`'s send window (`None`: unknown or untracked stream).
    pub fn window(&self, sender: Flow, scope: WindowScope) -> Option<i64> {
        match scope {
            WindowScope::Connection => self.state.conn_window[sender.idx()].value(),
            WindowScope::Stream(id) => self
                .state
                .streams
                .get(id)
                .and_then(|e| e.window[sender.idx()].value()),
        }
    }

    /// Settings announced by `announcer`, as in effect for its peer.
    pub fn settings(&self, announcer: Flow) -> SettingsValues {
        self.state.settings[announcer.idx()].values
    }

    /// A tracked stream.
    pub fn stream(&self, id: u32) -> Option<StreamInfo> {
        self.state.streams.get(id).map(|e| StreamInfo {
            origin: e.origin,
            client: e.side(Flow::ClientToServer),
            server: e.side(Flow::ServerToClient),
            client_window: e.window[0].value(),
            server_window: e.window[1].value(),
        })
    }

    /// Tracked stream ids, ascending.
    pub fn stream_ids(&self) -> Vec<u32> {
        self.state.streams.ids()
    }

    /// Whether the HPACK table of header blocks sent in `dir` is fully known.
    pub fn hpack_complete(&self, dir: Flow) -> bool {
        self.state.hpack[dir.idx()].is_complete()
    }

    /// HPACK table entries evicted (or forgotten) in `dir`.
    pub fn hpack_evictions(&self, dir: Flow) -> u64 {
        self.state.hpack[dir.idx()].evictions()
    }

    /// Whether `dir` is hunting for a frame boundary.
    pub fn is_resyncing(&self, dir: Flow) -> bool {
        self.decoders[dir.idx()].is_resyncing()
    }

    /// While `dir` hunts for a frame boundary, the time of the oldest bytes
    /// it holds undecoded: their events come once it is found, late.
    pub fn undecoded_since(&self, dir: Flow) -> Option<u64> {
        self.decoders[dir.idx()].undecoded_since()
    }

    pub fn stats(&self) -> Http2Stats {
        Http2Stats {
            stream_evictions: self.state.streams.evictions(),
            ..self.state.stats
        }
    }
}

/// The visitor a frame decoder calls: the connection state, seen from one
/// direction, plus the user's sink.
struct Ctx<'a, S> {
    dir: Flow,
    state: &'a mut State,
    sink: &'a mut S,
}

impl<S: EventSink> FrameVisitor for Ctx<'_, S> {
    fn max_frame_size(&self) -> Option<u32> {
        // Frames sent in `dir` are limited by what the peer announced.
        self.state.settings[self.dir.peer().idx()]
            .values
            .max_frame_size
    }

    fn event(&mut self, event: FrameEvent<'_>) {
        self.state.on_frame(self.dir, event, self.sink);
    }
}

impl State {
    #[expect(
        clippy::too_many_lines,
        reason = "one arm per frame event; splitting would only scatter it"
    )]
    fn on_frame<S: EventSink>(&mut self, dir: Flow, event: FrameEvent<'_>, sink: &mut S) {
        match event {
            FrameEvent::Preface { ts } => sink.event(Http2Event::Preface { ts_ns: ts }),
            FrameEvent::Frame { header, ts } => sink.event(Http2Event::Frame {
                dir,
                stream: header.stream,
                frame_type: header.frame_type,
                flags: header.flags,
                len: header.len,
                ts_ns: ts,
            }),
            FrameEvent::DataStart { header, ts } => self.data_start(dir, &header, ts, sink),
            FrameEvent::DataPiece {
                stream,
                bytes,
                last,
                end_stream,
                ts,
            } => {
                self.stats.data_bytes += bytes.len() as u64;
                sink.event(Http2Event::Data {
                    dir,
                    stream,
                    bytes: Cow::Borrowed(bytes),
                    frame_end: last,
                    end_stream,
                    ts_ns: ts,
                });
            }
            FrameEvent::DataLost {
                stream,
                len,
                last,
                end_stream,
                ts,
            } => sink.event(Http2Event::DataLost {
                dir,
                stream,
                len,
                frame_end: last,
                end_stream,
                ts_ns: ts,
            }),
            FrameEvent::DataEnd {
                stream,
                end_stream,
                ts,
            } => {
                if end_stream {
                    self.side_ended(dir, stream, ts, sink);
                }
            }
            FrameEvent::Headers {
                stream,
                block,
                end_stream,
                priority,
                first_ts,
                ts,
            } => {
                self.stats.frames += 1;
                let Some(fields) = self.decode_block(dir, stream, block, end_stream, ts, sink)
                else {
                    return;
                };
                self.headers_seen(dir, stream, first_ts, sink);
                sink.event(Http2Event::Headers {
                    dir,
                    stream,
                    fields,
                    end_stream,
                    priority,
                    first_ts_ns: first_ts,
                    ts_ns: ts,
                });
                if end_stream {
                    self.side_ended(dir, stream, ts, sink);
                }
            }
            FrameEvent::PushPromise {
                stream,
                promised,
                block,
                first_ts,
                ts,
            } => {
                self.stats.frames += 1;
                let Some(fields) = self.decode_block(dir, stream, block, false, ts, sink) else {
                    return;
                };
                self.touch(dir, stream, ts, sink);
                if promised != 0 && self.streams.get(promised).is_none() {
                    self.streams.note_opened(promised);
                    let mut side = [SideState::Open; 2];
                    // A pushed stream is half-closed for the client.
                    side[Flow::ClientToServer.idx()] = SideState::Ended;
                    self.start_stream(promised, StreamOrigin::Pushed, side, first_ts, sink);
                }
                sink.event(Http2Event::PushPromise {
                    dir,
                    stream,
                    promised,
                    fields,
                    first_ts_ns: first_ts,
                    ts_ns: ts,
                });
            }
            FrameEvent::HeaderBlockLost {
                stream,
                end_stream,
                reason,
                ts,
            } => {
                self.stats.header_blocks_lost += 1;
                self.hpack[dir.idx()].forget();
                sink.event(Http2Event::HeadersLost {
                    dir,
                    stream,
                    end_stream,
                    reason,
                    ts_ns: ts,
                });
                if end_stream == Some(true) {
                    self.side_ended(dir, stream, ts, sink);
                }
            }
            FrameEvent::Priority { stream, spec, ts } => {
                self.stats.frames += 1;
                sink.event(Http2Event::Priority {
                    dir,
                    stream,
                    spec,
                    ts_ns: ts,
                });
            }
            FrameEvent::RstStream { stream, code, ts } => {
                self.stats.frames += 1;
                sink.event(Http2Event::RstStream {
                    dir,
                    stream,
                    code,
                    ts_ns: ts,
                });
                self.end_stream(
                    stream,
                    StreamEndCause::Reset {
                        by: dir,
                        code: Some(code),
                    },
                    ts,
                    sink,
                );
            }
            FrameEvent::Settings { ack, params, ts } => {
                self.stats.frames += 1;
                if ack {
                    self.settings_ack(dir, ts, sink);
                } else {
                    self.settings(dir, params, ts, sink);
                }
            }
            FrameEvent::Ping { ack, payload, ts } => {
                self.stats.frames += 1;
                sink.event(Http2Event::Ping {
                    dir,
                    ack,
                    payload,
                    ts_ns: ts,
                });
            }
            FrameEvent::GoAway {
                last_stream,
                code,
                debug,
                truncated: _,
                ts,
            } => {
                self.stats.frames += 1;
                sink.event(Http2Event::GoAway {
                    dir,
                    last_stream,
                    code,
                    debug: Cow::Borrowed(debug),
                    ts_ns: ts,
                });
                // Streams the *other* side opened above `last_stream` will
                // not be processed by `dir`.
                let refused = self
                    .streams
                    .ids()
                    .into_iter()
                    .filter(|&id| id > last_stream && Flow::initiator_of(id) == dir.peer());
                for id in refused.collect::<Vec<_>>() {
                    let cause = StreamEndCause::GoAway {
                        by: dir,
                        last_stream,
                        code,
                    };
                    self.end_stream(id, cause, ts, sink);
                }
            }
            FrameEvent::WindowUpdate {
                stream,
                increment,
                ts,
            } => {
                self.stats.frames += 1;
                sink.event(Http2Event::WindowUpdate {
                    dir,
                    stream,
                    increment,
                    ts_ns: ts,
                });
                self.window_update(dir, stream, increment, ts, sink);
            }
            FrameEvent::Unknown { header, ts } => {
                self.stats.frames += 1;
                self.stats.unknown_frames += 1;
                sink.event(Http2Event::UnknownFrame {
                    dir,
                    frame_type: header.frame_type,
                    len: header.len,
                    ts_ns: ts,
                });
            }
            FrameEvent::FrameLost { header, ts } => self.frame_lost(dir, &header, ts, sink),
            FrameEvent::SyncLost { ts } => self.sync_lost(dir, ts, sink),
            FrameEvent::Resynced { skipped, ts } => {
                self.stats.resyncs += 1;
                self.stats.skipped_bytes += skipped;
                sink.event(Http2Event::Resynced {
                    dir,
                    skipped,
                    ts_ns: ts,
                });
            }
            FrameEvent::Error { error, ts } => self.error(dir, error, ts, sink),
        }
    }

    fn error<S: EventSink>(&mut self, dir: Flow, error: Http2Error, ts: u64, sink: &mut S) {
        self.stats.protocol_errors += 1;
        sink.event(Http2Event::ProtocolError {
            dir,
            error,
            ts_ns: ts,
        });
    }

    /// Decodes a header block; on failure reports it and forgets the table.
    fn decode_block<S: EventSink>(
        &mut self,
        dir: Flow,
        stream: u32,
        block: &[u8],
        end_stream: bool,
        ts: u64,
        sink: &mut S,
    ) -> Option<Vec<HeaderField>> {
        let hpack = &mut self.hpack[dir.idx()];
        let mut fields = Vec::new();
        match hpack.decode(block, &mut fields) {
            Ok(()) => {
                self.stats.header_blocks += 1;
                if let Some(basis) = hpack.take_became_complete() {
                    sink.event(Http2Event::HpackFullyKnown {
                        dir,
                        basis,
                        ts_ns: ts,
                    });
                }
                Some(fields)
            }
            Err(source) => {
                // The table may now differ from the encoder's.
                hpack.forget();
                self.error(dir, Http2Error::Hpack { stream, source }, ts, sink);
                self.stats.header_blocks_lost += 1;
                sink.event(Http2Event::HeadersLost {
                    dir,
                    stream,
                    end_stream: Some(end_stream),
                    reason: super::decoder::BlockLoss::Lost,
                    ts_ns: ts,
                });
                if end_stream {
                    self.headers_seen(dir, stream, ts, sink);
                    self.side_ended(dir, stream, ts, sink);
                }
                None
            }
        }
    }

    /// A HEADERS block from `dir` on `stream`: opens the stream if `dir`
    /// initiates it and it is new, else marks it active.
    fn headers_seen<S: EventSink>(&mut self, dir: Flow, stream: u32, ts: u64, sink: &mut S) {
        if self.streams.get(stream).is_none()
            && Flow::initiator_of(stream) == dir
            && self.streams.classify(stream) == Untracked::New
        {
            self.streams.note_opened(stream);
            // END_STREAM, if set, is applied after the Headers event.
            self.start_stream(stream, StreamOrigin::Opened, [SideState::Open; 2], ts, sink);
            return;
        }
        self.touch(dir, stream, ts, sink);
    }

    /// Activity from `dir` on `stream`: track it if its opening was missed,
    /// mark `dir`'s half open and the stream active.
    fn touch<S: EventSink>(&mut self, dir: Flow, stream: u32, ts: u64, sink: &mut S) {
        if stream == 0 {
            return;
        }
        if self.streams.get(stream).is_none() {
            match self.streams.classify(stream) {
                Untracked::Ended => return,
                Untracked::Unseen | Untracked::New => {
                    let mut side = [SideState::Unknown; 2];
                    side[dir.idx()] = SideState::Open;
                    self.start_stream(stream, StreamOrigin::PreExisting, side, ts, sink);
                }
            }
        }
        if let Some(e) = self.streams.get_mut(stream) {
            e.last_active_ts = ts;
            if e.side[dir.idx()] == SideState::Unknown {
                e.side[dir.idx()] = SideState::Open;
            }
        }
    }

    /// Starts tracking a stream, with send windows from the initial window
    /// sizes in effect (unknown for pre-existing streams).
    fn start_stream<S: EventSink>(
        &mut self,
        id: u32,
        origin: StreamOrigin,
        side: [SideState; 2],
        ts: u64,
        sink: &mut S,
    ) {
        let mut window = [Window::unknown(); 2];
        let mut changes = [None; 2];
        if origin != StreamOrigin::PreExisting {
            for sender in [Flow::ClientToServer, Flow::ServerToClient] {
                let initial = self.settings[sender.peer().idx()]
                    .values
                    .initial_window_size
                    .map(i64::from);
                let (w, change) = Window::new(initial, ts);
                window[sender.idx()] = w;
                changes[sender.idx()] = change;
            }
        }
        let evicted = self.streams.insert(StreamEntry {
            id,
            origin,
            side,
            window,
            last_active_ts: ts,
        });
        self.stats.streams_started += 1;
        if let Some(e) = evicted {
            self.ended(e, StreamEndCause::Evicted, ts, sink);
        }
        sink.event(Http2Event::StreamStart {
            stream: id,
            origin,
            ts_ns: ts,
        });
        for sender in [Flow::ClientToServer, Flow::ServerToClient] {
            self.stall_event(
                sender,
                WindowScope::Stream(id),
                changes[sender.idx()],
                ts,
                sink,
            );
        }
    }

    /// `dir` sent END_STREAM on `stream`.
    fn side_ended<S: EventSink>(&mut self, dir: Flow, stream: u32, ts: u64, sink: &mut S) {
        let Some(e) = self.streams.get_mut(stream) else {
            return;
        };
        e.side[dir.idx()] = SideState::Ended;
        if e.is_finished() {
            self.end_stream(stream, StreamEndCause::Complete, ts, sink);
        }
    }

    /// Stops tracking a stream, if tracked.
    fn end_stream<S: EventSink>(
        &mut self,
        stream: u32,
        cause: StreamEndCause,
        ts: u64,
        sink: &mut S,
    ) {
        if let Some(e) = self.streams.remove(stream) {
            self.ended(e, cause, ts, sink);
        }
    }

    /// Reports a stream that left the table.
    fn ended<S: EventSink>(
        &mut self,
        mut e: StreamEntry,
        cause: StreamEndCause,
        ts: u64,
        sink: &mut S,
    ) {
        for sender in [Flow::ClientToServer, Flow::ServerToClient] {
            let change = e.window[sender.idx()].close(StallEndCause::StreamClosed);
            self.stall_event(sender, WindowScope::Stream(e.id), change, ts, sink);
        }
        sink.event(Http2Event::StreamEnd {
            stream: e.id,
            origin: e.origin,
            cause,
            client: e.side(Flow::ClientToServer),
            server: e.side(Flow::ServerToClient),
            ts_ns: ts,
        });
    }

    fn stall_event<S: EventSink>(
        &mut self,
        sender: Flow,
        scope: WindowScope,
        change: Option<StallChange>,
        ts: u64,
        sink: &mut S,
    ) {
        match change {
            None => {}
            Some(StallChange::Started) => {
                self.stats.window_stalls += 1;
                let open_streams = match scope {
                    WindowScope::Connection => self
                        .streams
                        .ids()
                        .into_iter()
                        .filter(|&id| {
                            self.streams
                                .get(id)
                                .is_some_and(|e| e.side(sender) != SideState::Ended)
                        })
                        .collect(),
                    WindowScope::Stream(_) => Vec::new(),
                };
                sink.event(Http2Event::WindowStallStart {
                    sender,
                    scope,
                    open_streams,
                    ts_ns: ts,
                });
            }
            Some(StallChange::Ended { since, cause }) => sink.event(Http2Event::WindowStallEnd {
                sender,
                scope,
                start_ts_ns: since,
                cause,
                ts_ns: ts,
            }),
        }
    }

    /// A DATA frame header: track the stream, charge the windows.
    fn data_start<S: EventSink>(&mut self, dir: Flow, h: &FrameHeader, ts: u64, sink: &mut S) {
        self.stats.frames += 1;
        self.touch(dir, h.stream, ts, sink);
        // Flow control counts the whole payload, padding included (§6.1).
        let conn = self.conn_window[dir.idx()].consume(h.len, ts);
        self.stall_event(dir, WindowScope::Connection, conn.stall, ts, sink);
        let mut exceeded = conn.exceeded;
        if let Some(e) = self.streams.get_mut(h.stream) {
            let strm = e.window[dir.idx()].consume(h.len, ts);
            exceeded = exceeded.or(strm.exceeded);
            self.stall_event(dir, WindowScope::Stream(h.stream), strm.stall, ts, sink);
        }
        if let Some(window) = exceeded {
            let error = Http2Error::WindowExceeded {
                stream: h.stream,
                len: h.len,
                window,
            };
            self.error(dir, error, ts, sink);
        }
    }

    /// WINDOW_UPDATE sent by `dir` credits its peer's send window.
    fn window_update<S: EventSink>(
        &mut self,
        dir: Flow,
        stream: u32,
        increment: u32,
        ts: u64,
        sink: &mut S,
    ) {
        if increment == 0 {
            self.error(dir, Http2Error::ZeroIncrement { stream }, ts, sink);
            return;
        }
        let sender = dir.peer();
        let (change, overflow) = if stream == 0 {
            self.conn_window[sender.idx()].credit(
                i64::from(increment),
                ts,
                StallEndCause::WindowUpdate,
            )
        } else if let Some(e) = self.streams.get_mut(stream) {
            e.window[sender.idx()].credit(i64::from(increment), ts, StallEndCause::WindowUpdate)
        } else {
            return;
        };
        let scope = if stream == 0 {
            WindowScope::Connection
        } else {
            WindowScope::Stream(stream)
        };
        self.stall_event(sender, scope, change, ts, sink);
        if let Some(window) = overflow {
            self.error(dir, Http2Error::WindowOverflow { stream, window }, ts, sink);
        }
    }

    /// SETTINGS (not ACK) announced by `dir`.
    fn settings<S: EventSink>(&mut self, dir: Flow, payload: &[u8], ts: u64, sink: &mut S) {
        let mut params = Vec::with_capacity(payload.len() / 6);
        for (id, value) in settings_params(payload) {
            if setting_value_ok(id, value) {
                params.push((id, value));
            } else {
                self.error(dir, Http2Error::BadSetting { id, value }, ts, sink);
            }
        }
        sink.event(Http2Event::Settings {
            dir,
            params: params
                .iter()
                .map(|&(id, value)| Setting { id, value })
                .collect(),
            ts_ns: ts,
        });
        self.settings[dir.idx()].announce(params, ts);
    }

    /// `dir` acknowledged its peer's SETTINGS: they now govern `dir`.
    fn settings_ack<S: EventSink>(&mut self, dir: Flow, ts: u64, sink: &mut S) {
        let side = &mut self.settings[dir.peer().idx()];
        let before = side.values;
        let outcome = side.ack(ts);
        let after = side.values;
        let matched = outcome == AckOutcome::Matched;
        if !matched {
            self.stats.unmatched_settings_acks += 1;
        }
        sink.event(Http2Event::SettingsAck {
            dir,
            matched,
            ts_ns: ts,
        });
        self.apply_settings(dir, before, after, StallEndCause::Settings, ts, sink);
    }

    /// Applies a change of the settings governing `dir`'s sending.
    fn apply_settings<S: EventSink>(
        &mut self,
        dir: Flow,
        before: SettingsValues,
        after: SettingsValues,
        cause: StallEndCause,
        ts: u64,
        sink: &mut S,
    ) {
        if before.header_table_size != after.header_table_size {
            self.hpack[dir.idx()].set_size_limit(after.header_table_size);
        }
        if before.initial_window_size == after.initial_window_size {
            return;
        }
        // §6.9.2: the change applies to every open stream's window.
        let delta = before
            .initial_window_size
            .zip(after.initial_window_size)
            .map(|(b, a)| i64::from(a) - i64::from(b));
        let mut changes = Vec::new();
        for e in self.streams.entries_mut() {
            let w = &mut e.window[dir.idx()];
            let change = match delta {
                Some(d) => w.credit(d, ts, cause).0,
                None => w.forget(ts),
            };
            if change.is_some() {
                changes.push((e.id, change));
            }
        }
        changes.sort_unstable_by_key(|&(id, _)| id);
        for (id, change) in changes {
            self.stall_event(dir, WindowScope::Stream(id), change, ts, sink);
        }
    }

    /// A non-DATA frame from `dir` whose payload was partly lost.
    fn frame_lost<S: EventSink>(&mut self, dir: Flow, h: &FrameHeader, ts: u64, sink: &mut S) {
        self.stats.frames += 1;
        sink.event(Http2Event::FrameLost {
            dir,
            frame_type: h.frame_type,
            stream: h.stream,
            ts_ns: ts,
        });
        match h.kind() {
            Some(FrameType::Settings) if !h.has(flags::ACK) => {
                self.settings[dir.idx()].announce_lost(ts);
            }
            Some(FrameType::WindowUpdate) => {
                let sender = dir.peer();
                if h.stream == 0 {
                    let change = self.conn_window[sender.idx()].forget(ts);
                    self.stall_event(sender, WindowScope::Connection, change, ts, sink);
                } else if let Some(e) = self.streams.get_mut(h.stream) {
                    let change = e.window[sender.idx()].forget(ts);
                    self.stall_event(sender, WindowScope::Stream(h.stream), change, ts, sink);
                }
            }
            Some(FrameType::RstStream) => {
                let cause = StreamEndCause::Reset {
                    by: dir,
                    code: None,
                };
                self.end_stream(h.stream, cause, ts, sink);
            }
            _ => {}
        }
    }

    /// Bytes of `dir` whose frames are unknown were lost or skipped: forget
    /// whatever they could have changed.
    fn sync_lost<S: EventSink>(&mut self, dir: Flow, ts: u64, sink: &mut S) {
        self.stats.sync_losses += 1;
        let peer = dir.peer();
        self.hpack[dir.idx()].forget();
        // Lost SETTINGS from `dir`; lost ACKs of the peer's SETTINGS.
        self.settings[dir.idx()].mark_unseen();
        let side = &mut self.settings[peer.idx()];
        let before = side.values;
        side.acks_maybe_lost();
        let after = side.values;
        self.apply_settings(dir, before, after, StallEndCause::WindowUnknown, ts, sink);
        // Lost DATA from `dir`, lost WINDOW_UPDATEs for the peer.
        for sender in [dir, peer] {
            let change = self.conn_window[sender.idx()].forget(ts);
            self.stall_event(sender, WindowScope::Connection, change, ts, sink);
            let mut changes = Vec::new();
            for e in self.streams.entries_mut() {
                if let Some(c) = e.window[sender.idx()].forget(ts) {
                    changes.push((e.id, c));
                }
            }
            changes.sort_unstable_by_key(|&(id, _)| id);
            for (id, change) in changes {
                self.stall_event(sender, WindowScope::Stream(id), Some(change), ts, sink);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Invariant: from the start, preface and SETTINGS decode from raw bytes,
    // and a setting is in effect for the peer only after its ACK.
    #[test]
    fn preface_settings_and_ack_from_bytes() {
        let mut c = Http2Connection::new(Http2Config::default(), Attach::FromStart);
        let mut ev = Vec::new();
        let mut client = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        // SETTINGS: INITIAL_WINDOW_SIZE = 1000.
        client.extend_from_slice(&[0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0x03, 0xe8]);
        c.on_bytes(Flow::ClientToServer, 1, &client, &mut ev);
        assert_eq!(
            ev,
            [
                Http2Event::Preface { ts_ns: 1 },
                Http2Event::Settings {
                    dir: Flow::ClientToServer,
                    params: vec![Setting { id: 4, value: 1000 }],
                    ts_ns: 1
                }
            ]
        );
        assert_eq!(
            c.settings(Flow::ClientToServer).initial_window_size,
            Some(65_535)
        );
        c.on_bytes(
            Flow::ServerToClient,
            2,
            &[0, 0, 0, 4, 1, 0, 0, 0, 0],
            &mut ev,
        );
        assert_eq!(
            c.settings(Flow::ClientToServer).initial_window_size,
            Some(1000)
        );
    }

    // Invariant: joined mid-stream, nothing is assumed known.
    #[test]
    fn mid_stream_knows_nothing() {
        let c = Http2Connection::new(Http2Config::default(), Attach::MidStream);
        assert_eq!(c.settings(Flow::ServerToClient), SettingsValues::UNKNOWN);
        assert_eq!(
            c.window(Flow::ServerToClient, WindowScope::Connection),
            None
        );
        assert!(!c.hpack_complete(Flow::ClientToServer));
        assert!(c.is_resyncing(Flow::ClientToServer));
    }
}
