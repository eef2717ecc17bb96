//! HTTP/2 reassembly from captured plaintext: frames, HPACK, streams, flow
//! control. Pure: no aya, tokio, clocks, files or threads; time comes with
//! the bytes.
//!
//! # API
//!
//! One [`Http2Connection`] per TCP connection, created with [`Attach`]
//! (`FromStart` if the capture saw the connection open, `MidStream`
//! otherwise) and an [`Http2Config`] of bounds. Feed it, in capture order:
//!
//! * [`Http2Connection::on_bytes`]`(dir, ts_ns, bytes, sink)`: a chunk of
//!   one direction's plaintext, split anywhere;
//! * [`Http2Connection::on_gap`]`(dir, ts_ns, lost, sink)`: `lost` bytes of
//!   that direction were not captured;
//! * [`Http2Connection::close`] when the connection goes away.
//!
//! [`Flow`] names HTTP/2 roles (`ClientToServer`, `ServerToClient`);
//! the caller knows which side of the socket is the client.
//!
//! Results go to an [`EventSink`], called synchronously with
//! [`Http2Event`]s: decoded headers, DATA pieces, settings, pings, GOAWAY,
//! RST_STREAM, WINDOW_UPDATE, window stalls, stream starts and ends, gaps,
//! resyncs, HPACK knowledge and protocol errors; with
//! [`Http2Config::frame_events`], also every frame header as read
//! ([`Http2Event::Frame`], for checking framing against another decoder).
//! Between calls the connection answers questions:
//! [`Http2Connection::can_send`], [`Http2Connection::window`],
//! [`Http2Connection::settings`], [`Http2Connection::stream`],
//! [`Http2Connection::stats`].
//!
//! # DATA ownership (the fast path)
//!
//! The pipeline's target is over 1 GB/s per core, and almost all bytes are
//! DATA. So DATA payload is never buffered or copied here:
//! [`Http2Event::Data`] borrows (`Cow::Borrowed`) the slice of the caller's
//! chunk that holds it, for the duration of the sink call, with that
//! chunk's `ts_ns`. A DATA frame split over chunks gives one piece per
//! chunk, so the layer above knows when each event's first and last byte
//! arrived. A sink closure rather than a returned `Vec` of events is what
//! makes borrowing possible (the bytes may also come from the resync
//! buffer). Per frame the cost is a 9-byte header parse, a few branches and
//! a stream lookup; per byte, nothing.
//!
//! Header blocks are assembled (HEADERS plus CONTINUATIONs, bounded) and
//! decoded at END_HEADERS; HPACK allocates per decoded name or value only.
//!
//! # Joining mid-connection
//!
//! This is the normal case: watch connections outlive the tracer's start.
//!
//! * **Frame boundaries** are found by `resync`: a position is accepted
//!   when a chain of three consecutive frame headers there all pass strict
//!   checks (known type, defined flags, reserved bit clear, stream-id and
//!   length rules, length within the frame size limit, small payload
//!   checks, odd stream ids), or a valid header's frame ends exactly where
//!   a chunk ended and no overlapping candidate is as strong. Lengths above
//!   16384 (until `SETTINGS_MAX_FRAME_SIZE` is known) and stream ids above
//!   2^24 count as weaker evidence. When two chains overlap and join, the
//!   decoder starts where they agree rather than risk a phantom frame.
//!   Frames larger than the scan buffer still sync, through checkpoints.
//!   The bytes skipped are reported ([`Http2Event::Resynced`]).
//! * **HPACK**: the dynamic table's older entries are unknown. References to
//!   them decode as [`hpack::FieldText::Unknown`], never invented. Entries
//!   inserted after attach keep exact indices (new entries take index 62
//!   and push older ones back), so they resolve at once. When entries seen
//!   since attach fill the table capacity, every older entry must have been
//!   evicted; once, in addition, no entry has an unknown name (a literal
//!   can name an unknown entry), every reference decodes:
//!   [`Http2Event::HpackFullyKnown`] says so, with the basis of the
//!   capacity used (a size update, the acknowledged SETTINGS limit, or the
//!   configured assumption of 4096, withdrawn if a reference proves it
//!   wrong).
//! * **Settings** are unknown until announced and acknowledged; an ACK that
//!   matches no SETTINGS we saw makes values unknown rather than wrong.
//! * **Flow-control windows** are unknown (`None`) and never stall. The
//!   connection windows stay unknown; a stream opened after attach gets
//!   known windows only if the initial window size is known.
//! * **Streams** first seen mid-stream are tracked as
//!   [`StreamOrigin::PreExisting`]; their half-close state is partly
//!   unknown ([`SideState::Unknown`]).
//!
//! # Gaps
//!
//! A gap that ends inside the frame it began in keeps frame boundaries: the
//! rest of the frame is skipped exactly. A DATA frame reports the lost
//! payload ([`Http2Event::DataLost`]); another frame is reported lost and
//! its effect forgotten (a lost header block makes the direction's HPACK
//! table unknown, a lost WINDOW_UPDATE that window). Any other gap, or a
//! framing error, loses the boundaries: the decoder resyncs, and everything
//! the lost bytes could have changed becomes unknown: that direction's
//! HPACK table, both directions' windows, settings possibly announced or
//! acknowledged in them.
//!
//! # Bounds
//!
//! Streams (cap, least-recently-active eviction, counted), remembered ended
//! stream ids (FIFO), header block buffer, control payload buffer, resync
//! buffer, HPACK table memory, queued SETTINGS: all capped by
//! [`Http2Config`], with eviction and loss reported and counted in
//! [`Http2Stats`] and the events.
//!
//! # Known limits
//!
//! * Resync is evidence, not proof: a payload could contain three chained
//!   plausible frame headers (or one whose length reaches exactly a chunk
//!   end with no rival). Over 1.4 million cut points of generated
//!   connections (`tests/http2_midstream.rs`, the ignored stress test) none
//!   was accepted, and 0.005% landed a few real frames late; real traffic
//!   may differ. After a false boundary, later framing errors resync again,
//!   but what was delivered in between would be wrong.
//! * Frames on even stream ids (server push) are not used as resync
//!   evidence, and a resync never starts on an empty frame: such frames
//!   around an attach point are skipped (and counted), even if real.
//! * The two directions are captured separately. SETTINGS ACK matching uses
//!   capture times, but if the caller feeds one direction far ahead of the
//!   other, window accounting can briefly see DATA beyond the window
//!   ([`Http2Error::WindowExceeded`]) or late updates.
//! * A stall is "window <= 0", whether or not the sender had anything to
//!   send.
//! * After a mid-connection attach the connection-level windows never
//!   become known (no absolute value is ever sent), so connection-level
//!   stalls are only detected on connections traced from the start.
//! * A HEADERS frame on a new stream id from its initiator is taken as the
//!   stream's opening (a pre-existing stream's client trailers would be
//!   misread as an opening; clients rarely send trailers).
//! * PRIORITY information is reported, not modelled.
//! * Throughput of this layer alone (tests/http2_throughput.rs, release):
//!   about 10 GB/s with 4 KiB DATA frames, far more with 16 KiB frames, since
//!   payload bytes are never touched here.

mod connection;
mod decoder;
mod error;
mod event;
mod flow;
pub mod frame;
pub mod hpack;
mod resync;
mod settings;
mod stream;

pub use self::{
    connection::{Attach, CanSend, Http2Config, Http2Connection, Http2Stats, StreamInfo},
    decoder::BlockLoss,
    error::Http2Error,
    event::{EventSink, Flow, Http2Event, Setting, StreamEndCause},
    flow::{StallEndCause, WindowScope},
    frame::PrioritySpec,
    hpack::{FieldText, HeaderField, TableSizeBasis},
    settings::SettingsValues,
    stream::{SideState, StreamOrigin},
};
