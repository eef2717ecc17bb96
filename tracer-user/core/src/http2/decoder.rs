//! Streaming frame decoder for one direction of a connection.
//!
//! Bytes arrive in chunks split at arbitrary points, each with the time it
//! was captured. The decoder turns them into [`FrameEvent`]s passed to a
//! [`FrameVisitor`] as soon as they are known:
//!
//! * DATA payload is never buffered or copied: each chunk's share of a DATA
//!   frame is handed over as a slice of that chunk, with that chunk's time,
//!   so the layer above sees when each byte arrived.
//! * Other payloads are small and are used whole: if the frame lies within
//!   one chunk it is read in place, otherwise its bytes are buffered
//!   (bounded) until complete.
//! * A header block (HEADERS or PUSH_PROMISE plus CONTINUATIONs) is
//!   assembled, bounded by `max_header_block`, and delivered at
//!   END_HEADERS.
//!
//! Loss is an input ([`FrameDecoder::gap`]). A gap inside the current frame
//! keeps frame boundaries (we know how many bytes are missing); otherwise,
//! and after a framing error, the decoder resynchronises ([`super::resync`])
//! and reports the bytes it skipped.

use super::{
    error::Http2Error,
    frame::{
        self, DEFAULT_MAX_FRAME_SIZE, FRAME_HEADER_LEN, FrameHeader, FrameType,
        MAX_FRAME_SIZE_LIMIT, PREFACE, PrioritySpec, Strictness, be_u32, flags,
    },
    resync::{Limits, Resync, Step},
};

/// Frame-level events, borrowing from the input chunk or the decoder.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FrameEvent<'a> {
    /// The client connection preface was read.
    Preface {
        ts: u64,
    },
    /// A frame header passed its checks, before the frame's own events.
    /// Only when [`FrameDecoder::report_frames`] is set.
    Frame {
        header: FrameHeader,
        ts: u64,
    },
    /// A DATA frame header: flow control counts the whole payload now.
    DataStart {
        header: FrameHeader,
        ts: u64,
    },
    /// DATA bytes (padding excluded). Exactly one piece or loss per frame
    /// has `last` set (possibly with no bytes).
    DataPiece {
        stream: u32,
        bytes: &'a [u8],
        last: bool,
        end_stream: bool,
        ts: u64,
    },
    /// DATA payload bytes (possibly including padding) lost in a gap.
    DataLost {
        stream: u32,
        len: u64,
        last: bool,
        end_stream: bool,
        ts: u64,
    },
    /// The DATA frame (padding included) is complete.
    DataEnd {
        stream: u32,
        end_stream: bool,
        ts: u64,
    },
    /// A complete header block.
    Headers {
        stream: u32,
        block: &'a [u8],
        end_stream: bool,
        priority: Option<PrioritySpec>,
        first_ts: u64,
        ts: u64,
    },
    /// A complete PUSH_PROMISE header block.
    PushPromise {
        stream: u32,
        promised: u32,
        block: &'a [u8],
        first_ts: u64,
        ts: u64,
    },
    /// A header block that could not be delivered; its effect on the HPACK
    /// table is unknown.
    HeaderBlockLost {
        stream: u32,
        /// END_STREAM of its HEADERS frame, if that was seen.
        end_stream: Option<bool>,
        reason: BlockLoss,
        ts: u64,
    },
    Priority {
        stream: u32,
        spec: PrioritySpec,
        ts: u64,
    },
    RstStream {
        stream: u32,
        code: u32,
        ts: u64,
    },
    /// SETTINGS; `params` is the raw payload (6 bytes per parameter).
    Settings {
        ack: bool,
        params: &'a [u8],
        ts: u64,
    },
    Ping {
        ack: bool,
        payload: [u8; 8],
        ts: u64,
    },
    GoAway {
        last_stream: u32,
        code: u32,
        debug: &'a [u8],
        /// Debug data beyond the control-frame buffer was dropped.
        truncated: bool,
        ts: u64,
    },
    WindowUpdate {
        stream: u32,
        increment: u32,
        ts: u64,
    },
    /// An extension frame, skipped.
    Unknown {
        header: FrameHeader,
        ts: u64,
    },
    /// A control frame whose payload fell partly in a gap.
    FrameLost {
        header: FrameHeader,
        ts: u64,
    },
    /// Frame boundaries were lost (unstructured gap, framing error): what
    /// the lost bytes held is unknown until the resync.
    SyncLost {
        ts: u64,
    },
    /// In sync again after skipping `skipped` bytes of what was seen.
    Resynced {
        skipped: u64,
        ts: u64,
    },
    /// A protocol violation. Framing errors are followed by `SyncLost`.
    Error {
        error: Http2Error,
        ts: u64,
    },
}

/// Why a header block was lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockLoss {
    /// Larger than the configured buffer.
    TooLarge,
    /// Part of it fell in a gap or was skipped by a resync.
    Lost,
    /// The decoder resynced into the middle of it.
    StartMissing,
    /// A frame other than its CONTINUATION interrupted it.
    Interrupted,
}

/// What the decoder needs from its user.
pub(crate) trait FrameVisitor {
    /// The acknowledged `SETTINGS_MAX_FRAME_SIZE` for this direction, if
    /// known. Asked at each frame header: an ACK can change it mid-chunk.
    fn max_frame_size(&self) -> Option<u32>;
    fn event(&mut self, event: FrameEvent<'_>);
}

/// Where a decoder starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Start {
    /// Client side from the first byte: expect the preface.
    Preface,
    /// Server side from the first byte: frames.
    Frames,
    /// Anywhere: find a boundary first.
    Resync,
}

/// Buffer bounds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DecoderLimits {
    pub(crate) max_header_block: usize,
    pub(crate) max_control_payload: usize,
    pub(crate) resync_window: usize,
}

/// Whether a gap kept frame boundaries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GapKind {
    /// The gap ended inside the frame it began in (or exactly at its end):
    /// boundaries are intact and only that frame is affected.
    WithinFrame,
    /// Boundaries lost; resynchronising.
    Unstructured,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BlockKind {
    Headers {
        end_stream: bool,
        priority: Option<PrioritySpec>,
    },
    PushPromise {
        promised: u32,
    },
    /// CONTINUATIONs of a block whose start we did not see.
    Orphan,
}

#[derive(Clone, Copy, Debug)]
struct OpenBlock {
    stream: u32,
    kind: BlockKind,
    first_ts: u64,
    /// Set once any part of the block is missing; the block will be
    /// reported lost at END_HEADERS.
    lost: Option<BlockLoss>,
}

impl OpenBlock {
    fn end_stream(&self) -> Option<bool> {
        self.kind.end_stream()
    }
}

impl BlockKind {
    fn end_stream(self) -> Option<bool> {
        match self {
            Self::Headers { end_stream, .. } => Some(end_stream),
            Self::PushPromise { .. } | Self::Orphan => None,
        }
    }
}

/// The block kind a HEADERS or PUSH_PROMISE header starts, before its
/// payload is read (priority and promised id unknown).
fn block_kind(h: &FrameHeader) -> BlockKind {
    match h.kind() {
        Some(FrameType::Headers) => BlockKind::Headers {
            end_stream: h.has(flags::END_STREAM),
            priority: None,
        },
        Some(FrameType::PushPromise) => BlockKind::PushPromise { promised: 0 },
        _ => BlockKind::Orphan,
    }
}

/// What to do when a skipped payload ends.
#[derive(Clone, Copy, Debug)]
enum AfterSkip {
    Nothing,
    /// The skipped frame was part of a header block.
    BlockFrame(FrameHeader),
    /// The skipped frame was DATA.
    Data {
        stream: u32,
        end_stream: bool,
    },
}

#[derive(Clone, Copy, Debug)]
enum State {
    Preface {
        matched: usize,
    },
    /// Reading a frame header; `hdr_have` bytes are in `hdr`.
    Header,
    /// DATA with PADDED: waiting for the pad-length byte.
    DataPad {
        header: FrameHeader,
    },
    Data {
        stream: u32,
        data_left: u32,
        pad_left: u32,
        end_stream: bool,
    },
    /// Buffering a non-DATA payload into `payload` until `want` bytes.
    Payload {
        header: FrameHeader,
        want: usize,
    },
    Skip {
        left: u32,
        then: AfterSkip,
    },
    Resync,
}

/// One direction's decoder.
#[derive(Debug)]
pub(crate) struct FrameDecoder {
    state: State,
    hdr: [u8; FRAME_HEADER_LEN],
    hdr_have: usize,
    /// Time of the chunk holding the current frame's first byte.
    frame_ts: u64,
    payload: Vec<u8>,
    block: Vec<u8>,
    open_block: Option<OpenBlock>,
    /// Just resynced: a CONTINUATION now is the tail of a lost block.
    after_resync: bool,
    resync: Resync,
    limits: DecoderLimits,
    /// Report every accepted frame header ([`FrameEvent::Frame`]): for
    /// tools that compare frame sequences; off in the pipeline.
    pub(crate) report_frames: bool,
}

/// Buffer capacity kept between frames (larger ones are released).
const RETAINED_BUFFER: usize = 16 * 1024;

/// Outcome of decoding in sync: all consumed, or resync needed from
/// `data[at..]` (the resync has already been seeded with earlier bytes).
type Run = Option<usize>;

impl FrameDecoder {
    pub(crate) fn new(start: Start, limits: DecoderLimits) -> Self {
        let mut d = Self {
            state: match start {
                Start::Preface => State::Preface { matched: 0 },
                Start::Frames => State::Header,
                Start::Resync => State::Resync,
            },
            hdr: [0; FRAME_HEADER_LEN],
            hdr_have: 0,
            frame_ts: 0,
            payload: Vec::new(),
            block: Vec::new(),
            open_block: None,
            after_resync: start == Start::Resync,
            resync: Resync::new(limits.resync_window),
            limits,
            report_frames: false,
        };
        d.resync.start(&[], 0, 0);
        d
    }

    /// Whether the decoder is hunting for a frame boundary.
    pub(crate) fn is_resyncing(&self) -> bool {
        matches!(self.state, State::Resync)
    }

    /// While hunting for a boundary, the time of the oldest bytes it holds
    /// undecoded (their frames will be decoded, late, once it is found).
    pub(crate) fn undecoded_since(&self) -> Option<u64> {
        self.is_resyncing()
            .then(|| self.resync.oldest_ts())
            .flatten()
    }

    /// Decodes a chunk.
    pub(crate) fn push<V: FrameVisitor>(&mut self, data: &[u8], ts: u64, v: &mut V) {
        if self.is_resyncing() {
            self.resync_feed(data, ts, v);
        } else if let Some(at) = self.run(data, ts, v) {
            self.resync_feed(&data[at..], ts, v);
        }
    }

    /// Whether a gap of `lost` bytes now would end inside (or exactly at
    /// the end of) the current frame, keeping frame boundaries.
    pub(crate) fn gap_keeps_boundaries(&self, lost: u64) -> bool {
        let left = match self.state {
            State::Data {
                data_left,
                pad_left,
                ..
            } => u64::from(data_left) + u64::from(pad_left),
            State::DataPad { header } => u64::from(header.len),
            State::Skip { left, .. } => u64::from(left),
            State::Payload { header, .. } => u64::from(header.len) - self.payload.len() as u64,
            State::Preface { .. } | State::Header | State::Resync => return lost == 0,
        };
        lost <= left
    }

    /// `lost` bytes of this direction were not captured.
    pub(crate) fn gap<V: FrameVisitor>(&mut self, lost: u64, ts: u64, v: &mut V) -> GapKind {
        if lost == 0 {
            return GapKind::WithinFrame;
        }
        let left_in_frame = match self.state {
            State::Data {
                stream,
                data_left,
                pad_left,
                end_stream,
            } => {
                let frame_left = u64::from(data_left) + u64::from(pad_left);
                let n = lost.min(frame_left);
                let data_lost = n.min(u64::from(data_left));
                if data_left > 0 {
                    v.event(FrameEvent::DataLost {
                        stream,
                        len: n,
                        last: data_lost == u64::from(data_left),
                        end_stream,
                        ts,
                    });
                }
                // Fits: n <= frame_left, which came from two u32s.
                let data_lost = data_lost as u32;
                let pad_lost = (n - u64::from(data_lost)) as u32;
                self.state = State::Data {
                    stream,
                    data_left: data_left - data_lost,
                    pad_left: pad_left - pad_lost,
                    end_stream,
                };
                Some(frame_left)
            }
            State::DataPad { header } => {
                // The pad length is lost, so how the payload splits into
                // data and padding is unknown: report all of it as lost.
                let n = lost.min(u64::from(header.len));
                v.event(FrameEvent::DataLost {
                    stream: header.stream,
                    len: n,
                    last: true,
                    end_stream: header.has(flags::END_STREAM),
                    ts,
                });
                self.state = State::Skip {
                    // Fits: n <= header.len.
                    left: header.len - n as u32,
                    then: AfterSkip::Data {
                        stream: header.stream,
                        end_stream: header.has(flags::END_STREAM),
                    },
                };
                Some(u64::from(header.len))
            }
            State::Skip { left, then } => {
                let n = lost.min(u64::from(left));
                self.state = State::Skip {
                    left: left - n as u32,
                    then,
                };
                Some(u64::from(left))
            }
            State::Payload { header, .. } => {
                let left = u64::from(header.len) - self.payload.len() as u64;
                let then = self.lose_buffered_frame(header, ts, v);
                let n = lost.min(left);
                self.state = State::Skip {
                    // Fits: n <= left <= header.len.
                    left: (left - n) as u32,
                    then,
                };
                Some(left)
            }
            State::Preface { .. } | State::Header | State::Resync => None,
        };
        match left_in_frame {
            Some(left) if lost <= left => {
                // Finish the frame if the gap reached its end exactly.
                self.run(&[], ts, v);
                GapKind::WithinFrame
            }
            Some(_) => {
                self.run(&[], ts, v);
                self.lose_sync(ts, v);
                GapKind::Unstructured
            }
            None => {
                self.lose_sync(ts, v);
                GapKind::Unstructured
            }
        }
    }

    /// The frame being buffered will not complete: report it lost and say
    /// what to do when its remaining bytes have been skipped.
    fn lose_buffered_frame<V: FrameVisitor>(
        &mut self,
        header: FrameHeader,
        ts: u64,
        v: &mut V,
    ) -> AfterSkip {
        self.payload.clear();
        match header.kind() {
            Some(FrameType::Headers | FrameType::PushPromise | FrameType::Continuation) => {
                let b = self.open_block.get_or_insert(OpenBlock {
                    stream: header.stream,
                    kind: block_kind(&header),
                    first_ts: self.frame_ts,
                    lost: None,
                });
                b.lost.get_or_insert(BlockLoss::Lost);
                AfterSkip::BlockFrame(header)
            }
            _ => {
                v.event(FrameEvent::FrameLost { header, ts });
                AfterSkip::Nothing
            }
        }
    }

    /// Boundaries are lost (the bytes up to here are accounted for by the
    /// caller): report, drop any open header block, resync.
    fn lose_sync<V: FrameVisitor>(&mut self, ts: u64, v: &mut V) {
        if let Some(b) = self.open_block.take() {
            v.event(FrameEvent::HeaderBlockLost {
                stream: b.stream,
                end_stream: b.end_stream(),
                reason: BlockLoss::Lost,
                ts,
            });
        }
        // Bytes seen but never decoded count as skipped at the next resync.
        let seen = match self.state {
            State::Header => self.hdr_have as u64,
            State::Preface { matched } => matched as u64,
            State::Resync => self.resync.seen(),
            _ => 0,
        };
        v.event(FrameEvent::SyncLost { ts });
        self.resync.start(&[], seen, ts);
        self.hdr_have = 0;
        self.payload.clear();
        self.state = State::Resync;
        self.after_resync = true;
    }

    /// Framing error at the header in `self.hdr`: rescan from its second
    /// byte.
    fn framing_error<V: FrameVisitor>(&mut self, error: Http2Error, ts: u64, v: &mut V) {
        v.event(FrameEvent::Error { error, ts });
        if let Some(b) = self.open_block.take() {
            v.event(FrameEvent::HeaderBlockLost {
                stream: b.stream,
                end_stream: b.end_stream(),
                reason: BlockLoss::Lost,
                ts,
            });
        }
        v.event(FrameEvent::SyncLost { ts });
        self.resync.start(&self.hdr[1..], 1, ts);
        self.hdr_have = 0;
        self.state = State::Resync;
        self.after_resync = true;
    }

    /// Feeds bytes to the resync scanner and, once in sync, to the decoder.
    fn resync_feed<V: FrameVisitor>(&mut self, mut data: &[u8], ts: u64, v: &mut V) {
        loop {
            let n = self.resync.room().min(data.len());
            self.resync.extend(&data[..n], ts);
            data = &data[n..];
            let limits = Limits {
                max_frame_size: v.max_frame_size(),
            };
            match self.resync.step(data.is_empty(), limits) {
                Step::NeedMore => {
                    if data.is_empty() {
                        return;
                    }
                }
                Step::Found { at, skipped } => {
                    v.event(FrameEvent::Resynced { skipped, ts });
                    let buffered = self.resync.take_buffer();
                    self.state = State::Header;
                    self.hdr_have = 0;
                    self.after_resync = true;
                    // The buffered bytes as the chunks they came in: each
                    // frame keeps the time its bytes arrived (the first
                    // event after attaching is read before the boundary is
                    // confirmed, often a chunk or more later).
                    let mut lost_again = false;
                    for (piece, piece_ts) in buffered.pieces(at) {
                        if lost_again {
                            self.resync.extend(piece, piece_ts);
                        } else if let Some(err_at) = self.run(piece, piece_ts, v) {
                            // Out of sync again within the buffered bytes:
                            // the resync was seeded; add the rest of them.
                            self.resync.extend(&piece[err_at..], piece_ts);
                            lost_again = true;
                        }
                    }
                    if lost_again {
                        continue;
                    }
                    self.resync.recycle(buffered);
                    match self.run(data, ts, v) {
                        None => return,
                        Some(err_at) => data = &data[err_at..],
                    }
                }
            }
        }
    }

    /// Decodes in sync. Returns where resync must continue, if it must.
    fn run<V: FrameVisitor>(&mut self, data: &[u8], ts: u64, v: &mut V) -> Run {
        let mut pos = 0;
        loop {
            match self.state {
                State::Resync => return Some(pos),
                State::Preface { matched } => {
                    let n = (PREFACE.len() - matched).min(data.len() - pos);
                    if data[pos..pos + n] != PREFACE[matched..matched + n] {
                        let offset = matched
                            + data[pos..pos + n]
                                .iter()
                                .zip(&PREFACE[matched..])
                                .take_while(|(a, b)| a == b)
                                .count();
                        v.event(FrameEvent::Error {
                            error: Http2Error::BadPreface { offset },
                            ts,
                        });
                        v.event(FrameEvent::SyncLost { ts });
                        // Rescan everything from the first byte: the
                        // connection may have started before we did.
                        self.resync.start(&PREFACE[..matched], 0, ts);
                        self.state = State::Resync;
                        self.after_resync = true;
                        return Some(pos);
                    }
                    pos += n;
                    if matched + n == PREFACE.len() {
                        v.event(FrameEvent::Preface { ts });
                        self.state = State::Header;
                    } else {
                        self.state = State::Preface {
                            matched: matched + n,
                        };
                        return None;
                    }
                }
                State::Header => {
                    let header = if self.hdr_have == 0 && data.len() - pos >= FRAME_HEADER_LEN {
                        // Fast path: the whole header is in this chunk.
                        self.frame_ts = ts;
                        let mut h = [0; FRAME_HEADER_LEN];
                        h.copy_from_slice(&data[pos..pos + FRAME_HEADER_LEN]);
                        self.hdr = h;
                        pos += FRAME_HEADER_LEN;
                        FrameHeader::parse(&h)
                    } else {
                        if self.hdr_have == 0 {
                            self.frame_ts = ts;
                        }
                        let n = (FRAME_HEADER_LEN - self.hdr_have).min(data.len() - pos);
                        self.hdr[self.hdr_have..self.hdr_have + n]
                            .copy_from_slice(&data[pos..pos + n]);
                        self.hdr_have += n;
                        pos += n;
                        if self.hdr_have < FRAME_HEADER_LEN {
                            return None;
                        }
                        self.hdr_have = 0;
                        FrameHeader::parse(&self.hdr)
                    };
                    if let Err(error) = self.on_header(header, ts, v) {
                        self.framing_error(error, ts, v);
                        return Some(pos);
                    }
                    // on_header may have consumed the payload in place.
                    if let State::Payload { header, want } = self.state
                        && self.payload.is_empty()
                        && data.len() - pos >= want
                    {
                        // Fast path: the whole payload is in this chunk.
                        pos += want;
                        let payload = &data[pos - want..pos];
                        self.state = State::Header;
                        self.on_payload(header, payload, want, ts, v);
                    }
                }
                State::DataPad { header } => {
                    let &pad = data.get(pos)?;
                    pos += 1;
                    let end_stream = header.has(flags::END_STREAM);
                    if let Err(error) = frame::check_padding(&header, pad) {
                        // The length was valid, so boundaries hold: drop
                        // this frame's payload, keep going.
                        v.event(FrameEvent::Error { error, ts });
                        v.event(FrameEvent::DataPiece {
                            stream: header.stream,
                            bytes: &[],
                            last: true,
                            end_stream,
                            ts,
                        });
                        self.state = State::Skip {
                            left: header.len - 1,
                            then: AfterSkip::Data {
                                stream: header.stream,
                                end_stream,
                            },
                        };
                        continue;
                    }
                    let data_left = header.len - 1 - u32::from(pad);
                    if data_left == 0 {
                        v.event(FrameEvent::DataPiece {
                            stream: header.stream,
                            bytes: &[],
                            last: true,
                            end_stream,
                            ts,
                        });
                    }
                    self.state = State::Data {
                        stream: header.stream,
                        data_left,
                        pad_left: u32::from(pad),
                        end_stream,
                    };
                }
                State::Data {
                    stream,
                    mut data_left,
                    mut pad_left,
                    end_stream,
                } => {
                    let avail = data.len() - pos;
                    if data_left > 0 {
                        if avail == 0 {
                            return None;
                        }
                        let n = (data_left as usize).min(avail);
                        // Fits: n <= data_left.
                        data_left -= n as u32;
                        v.event(FrameEvent::DataPiece {
                            stream,
                            bytes: &data[pos..pos + n],
                            last: data_left == 0,
                            end_stream,
                            ts,
                        });
                        pos += n;
                    }
                    if data_left == 0 && pad_left > 0 {
                        let m = (pad_left as usize).min(data.len() - pos);
                        pad_left -= m as u32;
                        pos += m;
                    }
                    if data_left == 0 && pad_left == 0 {
                        v.event(FrameEvent::DataEnd {
                            stream,
                            end_stream,
                            ts,
                        });
                        self.state = State::Header;
                    } else {
                        self.state = State::Data {
                            stream,
                            data_left,
                            pad_left,
                            end_stream,
                        };
                        if pos == data.len() {
                            return None;
                        }
                    }
                }
                State::Payload { header, want } => {
                    let n = (want - self.payload.len()).min(data.len() - pos);
                    self.payload.extend_from_slice(&data[pos..pos + n]);
                    pos += n;
                    if self.payload.len() < want {
                        return None;
                    }
                    let payload = std::mem::take(&mut self.payload);
                    self.state = State::Header;
                    self.on_payload(header, &payload, want, ts, v);
                    self.payload = payload;
                    self.payload.clear();
                    self.payload.shrink_to(RETAINED_BUFFER);
                }
                State::Skip { left, then } => {
                    let n = (left as usize).min(data.len() - pos);
                    pos += n;
                    // Fits: n <= left.
                    let left = left - n as u32;
                    if left > 0 {
                        self.state = State::Skip { left, then };
                        return None;
                    }
                    self.state = State::Header;
                    self.after_skip(then, ts, v);
                }
            }
            if pos == data.len() && matches!(self.state, State::Header) && self.hdr_have == 0 {
                return None;
            }
        }
    }

    fn after_skip<V: FrameVisitor>(&mut self, then: AfterSkip, ts: u64, v: &mut V) {
        match then {
            AfterSkip::Nothing => {}
            AfterSkip::BlockFrame(h) => {
                if h.has(flags::END_HEADERS) {
                    self.close_block(ts, v);
                }
            }
            AfterSkip::Data { stream, end_stream } => v.event(FrameEvent::DataEnd {
                stream,
                end_stream,
                ts,
            }),
        }
    }

    /// Validates a header and sets the state for its payload.
    fn on_header<V: FrameVisitor>(
        &mut self,
        h: FrameHeader,
        ts: u64,
        v: &mut V,
    ) -> Result<(), Http2Error> {
        let orphan_ok = std::mem::take(&mut self.after_resync);
        let max = v.max_frame_size();
        let Some(kind) = h.kind() else {
            // Extension frames must be skipped, but an unknown type with an
            // implausible length is more likely a lost boundary.
            let limit = max.unwrap_or(DEFAULT_MAX_FRAME_SIZE);
            if h.len > limit {
                return Err(Http2Error::FrameTooLarge {
                    frame_type: h.frame_type,
                    len: h.len,
                    max: limit,
                });
            }
            self.frame_seen(h, v);
            self.interrupt_block(&h, ts, v);
            v.event(FrameEvent::Unknown { header: h, ts });
            self.skip(h.len, AfterSkip::Nothing);
            return Ok(());
        };
        frame::check(
            &h,
            kind,
            max.unwrap_or(MAX_FRAME_SIZE_LIMIT),
            Strictness::Lenient,
        )?;
        self.frame_seen(h, v);
        if kind == FrameType::Continuation {
            match self.open_block {
                Some(b) if b.stream == h.stream => {}
                _ => {
                    self.interrupt_block(&h, ts, v);
                    if orphan_ok {
                        // We resynced into the middle of a header block.
                        self.open_block = Some(OpenBlock {
                            stream: h.stream,
                            kind: BlockKind::Orphan,
                            first_ts: self.frame_ts,
                            lost: Some(BlockLoss::StartMissing),
                        });
                    } else {
                        v.event(FrameEvent::Error {
                            error: Http2Error::UnexpectedContinuation { stream: h.stream },
                            ts,
                        });
                        self.skip(h.len, AfterSkip::Nothing);
                        return Ok(());
                    }
                }
            }
        } else {
            self.interrupt_block(&h, ts, v);
        }
        match kind {
            FrameType::Data => {
                v.event(FrameEvent::DataStart { header: h, ts });
                let end_stream = h.has(flags::END_STREAM);
                if h.has(flags::PADDED) {
                    self.state = State::DataPad { header: h };
                } else {
                    if h.len == 0 {
                        v.event(FrameEvent::DataPiece {
                            stream: h.stream,
                            bytes: &[],
                            last: true,
                            end_stream,
                            ts,
                        });
                    }
                    self.state = State::Data {
                        stream: h.stream,
                        data_left: h.len,
                        pad_left: 0,
                        end_stream,
                    };
                }
            }
            FrameType::Headers | FrameType::PushPromise | FrameType::Continuation => {
                // For HEADERS and PUSH_PROMISE no block is open here
                // (interrupt_block closed any).
                let continuing = kind == FrameType::Continuation;
                let buffered = if continuing { self.block.len() } else { 0 };
                let overflow = buffered + h.len as usize > self.limits.max_header_block;
                let already_lost = continuing && self.open_block.is_some_and(|b| b.lost.is_some());
                if overflow || already_lost {
                    let b = self.open_block.get_or_insert(OpenBlock {
                        stream: h.stream,
                        kind: block_kind(&h),
                        first_ts: self.frame_ts,
                        lost: None,
                    });
                    b.lost.get_or_insert(BlockLoss::TooLarge);
                    self.skip(h.len, AfterSkip::BlockFrame(h));
                } else {
                    self.expect_payload(h, h.len as usize);
                }
            }
            FrameType::GoAway => {
                let want = (h.len as usize).min(self.limits.max_control_payload.max(8));
                self.expect_payload(h, want);
            }
            FrameType::Settings if h.len as usize > self.limits.max_control_payload => {
                v.event(FrameEvent::Error {
                    error: Http2Error::ControlTooLarge {
                        frame_type: h.frame_type,
                        len: h.len,
                        limit: self.limits.max_control_payload,
                    },
                    ts,
                });
                v.event(FrameEvent::FrameLost { header: h, ts });
                self.skip(h.len, AfterSkip::Nothing);
            }
            FrameType::Priority
            | FrameType::RstStream
            | FrameType::Settings
            | FrameType::Ping
            | FrameType::WindowUpdate => self.expect_payload(h, h.len as usize),
        }
        Ok(())
    }

    /// Reports an accepted header, if asked to. The frame's time is that of
    /// its first byte.
    #[inline]
    fn frame_seen<V: FrameVisitor>(&self, header: FrameHeader, v: &mut V) {
        if self.report_frames {
            v.event(FrameEvent::Frame {
                header,
                ts: self.frame_ts,
            });
        }
    }

    fn expect_payload(&mut self, header: FrameHeader, want: usize) {
        self.payload.clear();
        self.state = State::Payload { header, want };
    }

    fn skip(&mut self, left: u32, then: AfterSkip) {
        self.state = State::Skip { left, then };
    }

    /// A header block is open but `h` is not its CONTINUATION.
    fn interrupt_block<V: FrameVisitor>(&mut self, h: &FrameHeader, ts: u64, v: &mut V) {
        if let Some(b) = self.open_block.take() {
            v.event(FrameEvent::Error {
                error: Http2Error::ExpectedContinuation {
                    stream: b.stream,
                    frame_type: h.frame_type,
                    got_stream: h.stream,
                },
                ts,
            });
            v.event(FrameEvent::HeaderBlockLost {
                stream: b.stream,
                end_stream: b.end_stream(),
                reason: BlockLoss::Interrupted,
                ts,
            });
        }
    }

    /// A complete non-DATA payload (`payload.len() == want`, which is
    /// `header.len` except for truncated GOAWAY debug data).
    fn on_payload<V: FrameVisitor>(
        &mut self,
        h: FrameHeader,
        payload: &[u8],
        want: usize,
        ts: u64,
        v: &mut V,
    ) {
        let truncated = (h.len as usize) > want;
        match h.kind() {
            Some(FrameType::Headers) => {
                let Some(fragment) = self.fragment(&h, payload, ts, v) else {
                    return;
                };
                let priority = h.has(flags::PRIORITY).then(|| {
                    let at = usize::from(h.has(flags::PADDED));
                    let mut p = [0; 5];
                    p.copy_from_slice(&payload[at..at + 5]);
                    PrioritySpec::parse(&p)
                });
                let kind = BlockKind::Headers {
                    end_stream: h.has(flags::END_STREAM),
                    priority,
                };
                self.block_fragment(&h, kind, fragment, ts, v);
            }
            Some(FrameType::PushPromise) => {
                let Some(fragment) = self.fragment(&h, payload, ts, v) else {
                    return;
                };
                let at = usize::from(h.has(flags::PADDED));
                let promised = be_u32(payload, at) & 0x7fff_ffff;
                self.block_fragment(&h, BlockKind::PushPromise { promised }, fragment, ts, v);
            }
            Some(FrameType::Continuation) => {
                let kind = self.open_block.map_or(BlockKind::Orphan, |b| b.kind);
                self.block_fragment(&h, kind, payload, ts, v);
            }
            Some(FrameType::Priority) => {
                let mut p = [0; 5];
                p.copy_from_slice(&payload[..5]);
                let spec = PrioritySpec::parse(&p);
                if spec.depends_on == h.stream {
                    v.event(FrameEvent::Error {
                        error: Http2Error::SelfDependency { stream: h.stream },
                        ts,
                    });
                }
                v.event(FrameEvent::Priority {
                    stream: h.stream,
                    spec,
                    ts,
                });
            }
            Some(FrameType::RstStream) => v.event(FrameEvent::RstStream {
                stream: h.stream,
                code: be_u32(payload, 0),
                ts,
            }),
            Some(FrameType::Settings) => v.event(FrameEvent::Settings {
                ack: h.has(flags::ACK),
                params: payload,
                ts,
            }),
            Some(FrameType::Ping) => {
                let mut p = [0; 8];
                p.copy_from_slice(&payload[..8]);
                v.event(FrameEvent::Ping {
                    ack: h.has(flags::ACK),
                    payload: p,
                    ts,
                });
            }
            Some(FrameType::GoAway) => {
                v.event(FrameEvent::GoAway {
                    last_stream: be_u32(payload, 0) & 0x7fff_ffff,
                    code: be_u32(payload, 4),
                    debug: &payload[8..],
                    truncated,
                    ts,
                });
                if truncated {
                    // Fits: want < h.len.
                    self.skip(h.len - want as u32, AfterSkip::Nothing);
                }
            }
            Some(FrameType::WindowUpdate) => v.event(FrameEvent::WindowUpdate {
                stream: h.stream,
                increment: be_u32(payload, 0) & 0x7fff_ffff,
                ts,
            }),
            Some(FrameType::Data) | None => {}
        }
    }

    /// The header-block fragment of a HEADERS or PUSH_PROMISE payload, with
    /// padding and the fixed fields removed; `None` (reported) if the
    /// padding does not fit.
    fn fragment<'p, V: FrameVisitor>(
        &mut self,
        h: &FrameHeader,
        payload: &'p [u8],
        ts: u64,
        v: &mut V,
    ) -> Option<&'p [u8]> {
        let pad = if h.has(flags::PADDED) { payload[0] } else { 0 };
        if let Err(error) = frame::check_padding(h, pad) {
            v.event(FrameEvent::Error { error, ts });
            let kind = block_kind(h);
            if h.has(flags::END_HEADERS) {
                v.event(FrameEvent::HeaderBlockLost {
                    stream: h.stream,
                    end_stream: kind.end_stream(),
                    reason: BlockLoss::Lost,
                    ts,
                });
            } else {
                // Its CONTINUATIONs follow; the loss is reported at the end.
                self.open_block = Some(OpenBlock {
                    stream: h.stream,
                    kind,
                    first_ts: self.frame_ts,
                    lost: Some(BlockLoss::Lost),
                });
            }
            return None;
        }
        let start = h.prefix_len() as usize;
        Some(&payload[start..payload.len() - usize::from(pad)])
    }

    /// Adds a fragment to the block being assembled, delivering the block at
    /// END_HEADERS.
    fn block_fragment<V: FrameVisitor>(
        &mut self,
        h: &FrameHeader,
        kind: BlockKind,
        fragment: &[u8],
        ts: u64,
        v: &mut V,
    ) {
        let end = h.has(flags::END_HEADERS);
        match self.open_block {
            None if end => {
                // The common case: a whole block in one frame, no copy.
                self.deliver(h.stream, kind, fragment, self.frame_ts, ts, v);
            }
            None => {
                self.block.clear();
                self.block.extend_from_slice(fragment);
                self.open_block = Some(OpenBlock {
                    stream: h.stream,
                    kind,
                    first_ts: self.frame_ts,
                    lost: None,
                });
            }
            Some(b) => {
                if b.lost.is_none() {
                    self.block.extend_from_slice(fragment);
                }
                if end {
                    self.close_block(ts, v);
                }
            }
        }
    }

    /// END_HEADERS of an open block: deliver it or report it lost.
    fn close_block<V: FrameVisitor>(&mut self, ts: u64, v: &mut V) {
        let Some(b) = self.open_block.take() else {
            return;
        };
        match b.lost {
            None => {
                let block = std::mem::take(&mut self.block);
                self.deliver(b.stream, b.kind, &block, b.first_ts, ts, v);
                self.block = block;
                self.block.clear();
                // A rare huge block should not pin its buffer per connection.
                self.block.shrink_to(RETAINED_BUFFER);
            }
            Some(reason) => {
                if reason == BlockLoss::TooLarge {
                    v.event(FrameEvent::Error {
                        error: Http2Error::HeaderBlockTooLarge {
                            stream: b.stream,
                            limit: self.limits.max_header_block,
                        },
                        ts,
                    });
                }
                v.event(FrameEvent::HeaderBlockLost {
                    stream: b.stream,
                    end_stream: b.end_stream(),
                    reason,
                    ts,
                });
            }
        }
    }

    fn deliver<V: FrameVisitor>(
        &self,
        stream: u32,
        kind: BlockKind,
        block: &[u8],
        first_ts: u64,
        ts: u64,
        v: &mut V,
    ) {
        match kind {
            BlockKind::Headers {
                end_stream,
                priority,
            } => v.event(FrameEvent::Headers {
                stream,
                block,
                end_stream,
                priority,
                first_ts,
                ts,
            }),
            BlockKind::PushPromise { promised } => v.event(FrameEvent::PushPromise {
                stream,
                promised,
                block,
                first_ts,
                ts,
            }),
            BlockKind::Orphan => v.event(FrameEvent::HeaderBlockLost {
                stream,
                end_stream: None,
                reason: BlockLoss::StartMissing,
                ts,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: DecoderLimits = DecoderLimits {
        max_header_block: 64,
        max_control_payload: 64,
        resync_window: 4096,
    };

    /// Records events as text (DATA pieces with their bytes and time).
    struct Rec {
        max: Option<u32>,
        events: Vec<String>,
    }

    impl FrameVisitor for Rec {
        fn max_frame_size(&self) -> Option<u32> {
            self.max
        }

        fn event(&mut self, event: FrameEvent<'_>) {
            self.events.push(format!("{event:?}"));
        }
    }

    fn decode(start: Start, chunks: &[&[u8]]) -> Vec<String> {
        let mut d = FrameDecoder::new(start, LIMITS);
        let mut rec = Rec {
            max: Some(16384),
            events: Vec::new(),
        };
        for (ts, c) in chunks.iter().enumerate() {
            d.push(c, ts as u64, &mut rec);
        }
        rec.events
    }

    /// HEADERS, stream 1, END_HEADERS, block [0x82].
    const HEADERS: [u8; 10] = [0, 0, 1, 1, 4, 0, 0, 0, 1, 0x82];

    // Invariant: a frame split at any byte decodes the same, and its header
    // block carries the time of its first and last byte.
    #[test]
    fn headers_split_anywhere() {
        for cut in 0..=HEADERS.len() {
            let ev = decode(Start::Frames, &[&HEADERS[..cut], &HEADERS[cut..]]);
            let first_ts = u64::from(cut == 0);
            let ts = u64::from(cut < HEADERS.len());
            assert_eq!(
                ev,
                [format!(
                    "Headers {{ stream: 1, block: [130], end_stream: false, priority: None, \
                     first_ts: {first_ts}, ts: {ts} }}"
                )],
                "cut {cut}"
            );
        }
    }

    // Invariant: DATA is delivered piece by piece as it arrives, with each
    // chunk's time, padding removed, exactly one piece marked last.
    #[test]
    fn padded_data_in_pieces() {
        // DATA, PADDED|END_STREAM, stream 3, pad 2, data "hey".
        let f = [0, 0, 6, 0, 9, 0, 0, 0, 3, 2, b'h', b'e', b'y', 0, 0];
        let ev = decode(Start::Frames, &[&f[..11], &f[11..14], &f[14..]]);
        assert_eq!(ev.len(), 4, "{ev:#?}");
        assert!(ev[0].starts_with("DataStart"));
        assert_eq!(
            ev[1],
            "DataPiece { stream: 3, bytes: [104], last: false, end_stream: true, ts: 0 }"
        );
        assert_eq!(
            ev[2],
            "DataPiece { stream: 3, bytes: [101, 121], last: true, end_stream: true, ts: 1 }"
        );
        assert_eq!(ev[3], "DataEnd { stream: 3, end_stream: true, ts: 2 }");
    }

    // Invariant: HEADERS + CONTINUATION assemble into one block, delivered
    // at END_HEADERS.
    #[test]
    fn continuation_assembles_block() {
        let h = [0, 0, 2, 1, 1, 0, 0, 0, 5, 0x82, 0x86];
        let c = [0, 0, 1, 9, 4, 0, 0, 0, 5, 0x84];
        let ev = decode(Start::Frames, &[&h, &c]);
        assert_eq!(
            ev,
            [
                "Headers { stream: 5, block: [130, 134, 132], end_stream: true, priority: None, \
              first_ts: 0, ts: 1 }"
            ]
        );
    }

    // Invariant: the client preface is consumed (even split), then frames.
    #[test]
    fn preface_then_frames() {
        let mut s = PREFACE.to_vec();
        s.extend_from_slice(&[0, 0, 0, 4, 1, 0, 0, 0, 0]);
        let ev = decode(Start::Preface, &[&s[..5], &s[5..]]);
        assert_eq!(
            ev,
            [
                "Preface { ts: 1 }",
                "Settings { ack: true, params: [], ts: 1 }"
            ]
        );
    }

    // Invariant: extension frames are skipped whole.
    #[test]
    fn unknown_type_is_skipped() {
        let mut s = vec![0, 0, 2, 0xfa, 0, 0, 0, 0, 1, 9, 9];
        s.extend_from_slice(&HEADERS);
        let ev = decode(Start::Frames, &[&s]);
        assert!(ev[0].starts_with("Unknown"));
        assert!(ev[1].starts_with("Headers"));
    }

    // Invariant: a framing error is reported, boundaries are lost and then
    // found again, with the skipped bytes counted.
    #[test]
    fn framing_error_resyncs() {
        // PING of length 7: a framing error. Then three valid frames.
        let mut s = vec![0, 0, 7, 6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7];
        for _ in 0..3 {
            s.extend_from_slice(&HEADERS);
        }
        let ev = decode(Start::Frames, &[&s]);
        assert!(ev[0].starts_with("Error { error: BadLength"), "{ev:#?}");
        assert_eq!(ev[1], "SyncLost { ts: 0 }");
        assert_eq!(ev[2], "Resynced { skipped: 16, ts: 0 }");
        assert_eq!(ev.len(), 6);
    }

    // Invariant: a gap inside a DATA frame keeps boundaries and reports the
    // lost bytes; a gap across frames needs a resync.
    #[test]
    fn gaps_inside_and_across_frames() {
        let mut d = FrameDecoder::new(Start::Frames, LIMITS);
        let mut rec = Rec {
            max: None,
            events: Vec::new(),
        };
        let f = [0, 0, 4, 0, 0, 0, 0, 0, 1, b'a', b'b', b'c', b'd'];
        d.push(&f[..10], 0, &mut rec);
        assert!(d.gap_keeps_boundaries(2));
        assert_eq!(d.gap(2, 1, &mut rec), GapKind::WithinFrame);
        d.push(&f[12..], 2, &mut rec);
        assert_eq!(
            rec.events[2],
            "DataLost { stream: 1, len: 2, last: false, end_stream: false, ts: 1 }"
        );
        assert_eq!(
            rec.events[3],
            "DataPiece { stream: 1, bytes: [100], last: true, end_stream: false, ts: 2 }"
        );
        assert!(!d.gap_keeps_boundaries(1));
        assert_eq!(d.gap(1, 3, &mut rec), GapKind::Unstructured);
        assert!(d.is_resyncing());
    }

    // Invariant: a header block over the bound is dropped and reported, and
    // the frames after it still decode.
    #[test]
    fn oversized_block_is_reported() {
        let mut s = vec![0, 0, 70, 1, 4, 0, 0, 0, 1];
        s.extend_from_slice(&[0x82; 70]);
        s.extend_from_slice(&HEADERS);
        let ev = decode(Start::Frames, &[&s]);
        assert!(
            ev[0].starts_with("Error { error: HeaderBlockTooLarge"),
            "{ev:#?}"
        );
        assert!(
            ev[1].starts_with(
                "HeaderBlockLost { stream: 1, end_stream: Some(false), reason: TooLarge"
            )
        );
        assert!(ev[2].starts_with("Headers"));
    }
}
