//! What [`Http2Connection`](super::Http2Connection) reports.

use std::borrow::Cow;

use super::{
    decoder::BlockLoss,
    error::Http2Error,
    flow::{StallEndCause, WindowScope},
    frame::PrioritySpec,
    hpack::{HeaderField, TableSizeBasis},
    stream::{SideState, StreamOrigin},
};

/// A direction of a connection, by HTTP/2 role (serialised
/// `client_to_server`, `server_to_client`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Flow {
    /// Bytes the client sends.
    ClientToServer,
    /// Bytes the server sends.
    ServerToClient,
}

impl Flow {
    /// The other direction.
    pub fn peer(self) -> Self {
        match self {
            Self::ClientToServer => Self::ServerToClient,
            Self::ServerToClient => Self::ClientToServer,
        }
    }

    /// Index for per-direction arrays.
    pub(crate) fn idx(self) -> usize {
        match self {
            Self::ClientToServer => 0,
            Self::ServerToClient => 1,
        }
    }

    /// The side that opens streams with this id (odd: client).
    pub fn initiator_of(stream: u32) -> Self {
        if stream & 1 == 1 {
            Self::ClientToServer
        } else {
            Self::ServerToClient
        }
    }
}

/// One SETTINGS parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Setting {
    pub id: u16,
    pub value: u32,
}

/// How a stream ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamEndCause {
    /// END_STREAM from both sides (or from one side, the other's state being
    /// unknown; see [`Http2Event::StreamEnd`]'s side states).
    Complete,
    /// RST_STREAM from `by`; `code` is `None` if the frame was partly lost.
    Reset { by: Flow, code: Option<u32> },
    /// `by` sent GOAWAY with a last stream id below this stream, which the
    /// other side had opened: it will not be processed.
    GoAway {
        by: Flow,
        last_stream: u32,
        code: u32,
    },
    /// Dropped from the bounded stream table.
    Evicted,
    /// [`Http2Connection::close`](super::Http2Connection::close).
    ConnectionClosed,
}

/// Everything the HTTP/2 layer reports, in order. `dir` is the direction the
/// frame travelled in; times are the capture times given with the bytes.
///
/// DATA payload is borrowed from the caller's chunk (or the resync buffer)
/// for the duration of the [`EventSink::event`] call; use
/// [`Http2Event::into_owned`] to keep it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Http2Event<'a> {
    /// The client connection preface.
    Preface { ts_ns: u64 },
    /// A frame header, as read from the wire, before the frame's own
    /// events (only with [`Http2Config::frame_events`](super::Http2Config)).
    /// `len` is the payload length (padding included); `ts_ns` is when the
    /// header's first byte was captured.
    Frame {
        dir: Flow,
        stream: u32,
        frame_type: u8,
        flags: u8,
        len: u32,
        ts_ns: u64,
    },
    /// A stream started being tracked.
    StreamStart {
        stream: u32,
        origin: StreamOrigin,
        ts_ns: u64,
    },
    /// A decoded header block (HEADERS plus CONTINUATIONs).
    Headers {
        dir: Flow,
        stream: u32,
        fields: Vec<HeaderField>,
        end_stream: bool,
        priority: Option<PrioritySpec>,
        /// When the HEADERS frame's first byte was captured.
        first_ts_ns: u64,
        /// When the block's last byte was captured.
        ts_ns: u64,
    },
    /// A decoded PUSH_PROMISE header block.
    PushPromise {
        dir: Flow,
        stream: u32,
        promised: u32,
        fields: Vec<HeaderField>,
        first_ts_ns: u64,
        ts_ns: u64,
    },
    /// A header block that could not be decoded or assembled. The HPACK
    /// table of `dir` is unknown from here on.
    HeadersLost {
        dir: Flow,
        stream: u32,
        /// The HEADERS frame's END_STREAM, if its header was read.
        end_stream: Option<bool>,
        reason: BlockLoss,
        ts_ns: u64,
    },
    /// DATA payload bytes as they arrived (padding removed). Each DATA frame
    /// yields one or more pieces; exactly one piece or [`Self::DataLost`]
    /// per frame has `frame_end` set (possibly with no bytes), carrying the
    /// frame's END_STREAM.
    Data {
        dir: Flow,
        stream: u32,
        bytes: Cow<'a, [u8]>,
        frame_end: bool,
        end_stream: bool,
        ts_ns: u64,
    },
    /// DATA payload bytes not captured (a gap inside a DATA frame). `len`
    /// may include padding of a padded frame.
    DataLost {
        dir: Flow,
        stream: u32,
        len: u64,
        frame_end: bool,
        end_stream: bool,
        ts_ns: u64,
    },
    Priority {
        dir: Flow,
        stream: u32,
        spec: PrioritySpec,
        ts_ns: u64,
    },
    RstStream {
        dir: Flow,
        stream: u32,
        code: u32,
        ts_ns: u64,
    },
    /// SETTINGS announced by `dir` (in effect for the other side once it
    /// acknowledges).
    Settings {
        dir: Flow,
        params: Vec<Setting>,
        ts_ns: u64,
    },
    /// A SETTINGS acknowledgement sent by `dir`. `matched`: it matched a
    /// SETTINGS we saw, now in effect for `dir`.
    SettingsAck {
        dir: Flow,
        matched: bool,
        ts_ns: u64,
    },
    Ping {
        dir: Flow,
        ack: bool,
        payload: [u8; 8],
        ts_ns: u64,
    },
    GoAway {
        dir: Flow,
        last_stream: u32,
        code: u32,
        /// Debug data, truncated to the control-frame buffer.
        debug: Cow<'a, [u8]>,
        ts_ns: u64,
    },
    WindowUpdate {
        dir: Flow,
        stream: u32,
        increment: u32,
        ts_ns: u64,
    },
    /// `sender`'s window reached 0 or less.
    WindowStallStart {
        sender: Flow,
        scope: WindowScope,
        /// For a connection-level stall: the tracked streams on which
        /// `sender` had not ended its half, ascending.
        open_streams: Vec<u32>,
        ts_ns: u64,
    },
    /// `sender`'s window is positive again (or no longer tracked).
    WindowStallEnd {
        sender: Flow,
        scope: WindowScope,
        start_ts_ns: u64,
        cause: StallEndCause,
        ts_ns: u64,
    },
    /// A stream stopped being tracked.
    StreamEnd {
        stream: u32,
        origin: StreamOrigin,
        cause: StreamEndCause,
        /// The halves' states at the end.
        client: SideState,
        server: SideState,
        ts_ns: u64,
    },
    /// An extension frame, skipped.
    UnknownFrame {
        dir: Flow,
        frame_type: u8,
        len: u32,
        ts_ns: u64,
    },
    /// A non-DATA frame whose payload was partly lost in a gap (its effects
    /// are unknown; see the module docs).
    FrameLost {
        dir: Flow,
        frame_type: u8,
        stream: u32,
        ts_ns: u64,
    },
    /// `lost` bytes of `dir` were not captured. `kept_boundaries`: the gap
    /// ended within the frame it started in, so decoding continues exactly;
    /// otherwise the decoder resyncs.
    Gap {
        dir: Flow,
        lost: u64,
        kept_boundaries: bool,
        ts_ns: u64,
    },
    /// Frame boundaries found again after `skipped` bytes that were seen but
    /// could not be decoded (since joining, a gap, or a framing error).
    Resynced { dir: Flow, skipped: u64, ts_ns: u64 },
    /// The HPACK dynamic table of `dir` is fully known again (joined late or
    /// lost a header block before).
    HpackFullyKnown {
        dir: Flow,
        basis: TableSizeBasis,
        ts_ns: u64,
    },
    /// A protocol violation (or sign of lost sync); counted, decoding goes
    /// on (framing errors are followed by a resync).
    ProtocolError {
        dir: Flow,
        error: Http2Error,
        ts_ns: u64,
    },
}

impl Http2Event<'_> {
    /// The event with borrowed bytes copied, to keep past the callback.
    pub fn into_owned(self) -> Http2Event<'static> {
        match self {
            Self::Data {
                dir,
                stream,
                bytes,
                frame_end,
                end_stream,
                ts_ns,
            } => Http2Event::Data {
                dir,
                stream,
                bytes: Cow::Owned(bytes.into_owned()),
                frame_end,
                end_stream,
                ts_ns,
            },
            Self::GoAway {
                dir,
                last_stream,
                code,
                debug,
                ts_ns,
            } => Http2Event::GoAway {
                dir,
                last_stream,
                code,
                debug: Cow::Owned(debug.into_owned()),
                ts_ns,
            },
            Self::Preface { ts_ns } => Http2Event::Preface { ts_ns },
            Self::Frame {
                dir,
                stream,
                frame_type,
                flags,
                len,
                ts_ns,
            } => Http2Event::Frame {
                dir,
                stream,
                frame_type,
                flags,
                len,
                ts_ns,
            },
            Self::StreamStart {
                stream,
                origin,
                ts_ns,
            } => Http2Event::StreamStart {
                stream,
                origin,
                ts_ns,
            },
            Self::Headers {
                dir,
                stream,
                fields,
                end_stream,
                priority,
                first_ts_ns,
                ts_ns,
            } => Http2Event::Headers {
                dir,
                stream,
                fields,
                end_stream,
                priority,
                first_ts_ns,
                ts_ns,
            },
            Self::PushPromise {
                dir,
                stream,
                promised,
                fields,
                first_ts_ns,
                ts_ns,
            } => Http2Event::PushPromise {
                dir,
                stream,
                promised,
                fields,
                first_ts_ns,
                ts_ns,
            },
            Self::HeadersLost {
                dir,
                stream,
                end_stream,
                reason,
                ts_ns,
            } => Http2Event::HeadersLost {
                dir,
                stream,
                end_stream,
                reason,
                ts_ns,
            },
            Self::DataLost {
                dir,
                stream,
                len,
                frame_end,
                end_stream,
                ts_ns,
            } => Http2Event::DataLost {
                dir,
                stream,
                len,
                frame_end,
                end_stream,
                ts_ns,
            },
            Self::Priority {
                dir,
                stream,
                spec,
                ts_ns,
            } => Http2Event::Priority {
                dir,
                stream,
                spec,
                ts_ns,
            },
            Self::RstStream {
                dir,
                stream,
                code,
                ts_ns,
            } => Http2Event::RstStream {
                dir,
                stream,
                code,
                ts_ns,
            },
            Self::Settings { dir, params, ts_ns } => Http2Event::Settings { dir, params, ts_ns },
            Self::SettingsAck {
                dir,
                matched,
                ts_ns,
            } => Http2Event::SettingsAck {
                dir,
                matched,
                ts_ns,
            },
            Self::Ping {
                dir,
                ack,
                payload,
                ts_ns,
            } => Http2Event::Ping {
                dir,
                ack,
                payload,
                ts_ns,
            },
            Self::WindowUpdate {
                dir,
                stream,
                increment,
                ts_ns,
            } => Http2Event::WindowUpdate {
                dir,
                stream,
                increment,
                ts_ns,
            },
            Self::WindowStallStart {
                sender,
                scope,
                open_streams,
                ts_ns,
            } => Http2Event::WindowStallStart {
                sender,
                scope,
                open_streams,
                ts_ns,
            },
            Self::WindowStallEnd {
                sender,
                scope,
                start_ts_ns,
                cause,
                ts_ns,
            } => Http2Event::WindowStallEnd {
                sender,
                scope,
                start_ts_ns,
                cause,
                ts_ns,
            },
            Self::StreamEnd {
                stream,
                origin,
                cause,
                client,
                server,
                ts_ns,
            } => Http2Event::StreamEnd {
                stream,
                origin,
                cause,
                client,
                server,
                ts_ns,
            },
            Self::UnknownFrame {
                dir,
                frame_type,
                len,
                ts_ns,
            } => Http2Event::UnknownFrame {
                dir,
                frame_type,
                len,
                ts_ns,
            },
            Self::FrameLost {
                dir,
                frame_type,
                stream,
                ts_ns,
            } => Http2Event::FrameLost {
                dir,
                frame_type,
                stream,
                ts_ns,
            },
            Self::Gap {
                dir,
                lost,
                kept_boundaries,
                ts_ns,
            } => Http2Event::Gap {
                dir,
                lost,
                kept_boundaries,
                ts_ns,
            },
            Self::Resynced {
                dir,
                skipped,
                ts_ns,
            } => Http2Event::Resynced {
                dir,
                skipped,
                ts_ns,
            },
            Self::HpackFullyKnown { dir, basis, ts_ns } => {
                Http2Event::HpackFullyKnown { dir, basis, ts_ns }
            }
            Self::ProtocolError { dir, error, ts_ns } => {
                Http2Event::ProtocolError { dir, error, ts_ns }
            }
        }
    }
}

/// Receives events. The HTTP/2 layer calls it synchronously, so DATA can be
/// handed over as a slice of the input chunk without copying.
///
/// Implemented for closures `FnMut(Http2Event<'_>)` and for
/// `Vec<Http2Event<'static>>` (which copies DATA; for tests and tools).
pub trait EventSink {
    fn event(&mut self, event: Http2Event<'_>);
}

impl<F: FnMut(Http2Event<'_>)> EventSink for F {
    fn event(&mut self, event: Http2Event<'_>) {
        self(event);
    }
}

impl EventSink for Vec<Http2Event<'static>> {
    fn event(&mut self, event: Http2Event<'_>) {
        self.push(event.into_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Invariant: into_owned keeps every field and detaches borrowed bytes.
    #[test]
    fn into_owned_copies_borrowed_bytes() {
        let buf = vec![1, 2, 3];
        let e = Http2Event::Data {
            dir: Flow::ServerToClient,
            stream: 1,
            bytes: Cow::Borrowed(&buf[1..]),
            frame_end: true,
            end_stream: false,
            ts_ns: 9,
        };
        let owned = e.clone().into_owned();
        drop(buf);
        assert!(matches!(
            owned,
            Http2Event::Data { bytes: Cow::Owned(ref b), ts_ns: 9, .. } if b == &[2, 3]
        ));
    }

    // Invariant: odd stream ids are client-initiated.
    #[test]
    fn initiator_by_parity() {
        assert_eq!(Flow::initiator_of(1), Flow::ClientToServer);
        assert_eq!(Flow::initiator_of(2), Flow::ServerToClient);
        assert_eq!(Flow::ClientToServer.peer(), Flow::ServerToClient);
    }
}
