//! What can be wrong with the bytes of an HTTP/2 connection.
//!
//! A passive observer never closes the connection, so these are reported (as
//! [`Http2Event::ProtocolError`](super::Http2Event::ProtocolError)) and
//! counted, and decoding carries on: framing errors make the decoder resync,
//! others only lose the frame or header block concerned.

use thiserror::Error;

use super::hpack::HpackError;

/// A protocol violation seen on the wire (or a sign that we lost sync).
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum Http2Error {
    /// The client direction of a connection traced from its start did not
    /// begin with `PRI * HTTP/2.0...`.
    #[error("client connection preface mismatch at byte {offset}")]
    BadPreface { offset: usize },
    /// Payload longer than the receiver's `SETTINGS_MAX_FRAME_SIZE`.
    #[error("frame type {frame_type} of {len} bytes exceeds the {max}-byte frame size limit")]
    FrameTooLarge { frame_type: u8, len: u32, max: u32 },
    /// Stream id 0 where a stream is required, or the reverse.
    #[error("frame type {frame_type} is not allowed on stream {stream}")]
    BadStreamId { frame_type: u8, stream: u32 },
    /// A length the frame type does not allow (PING != 8, ...).
    #[error("frame type {frame_type} cannot be {len} bytes long")]
    BadLength { frame_type: u8, len: u32 },
    /// Undefined flags or the reserved bit (only an error while resyncing).
    #[error("frame type {frame_type} with undefined flags {flags:#04x} or the reserved bit")]
    Implausible { frame_type: u8, flags: u8 },
    /// The padding does not fit in the payload (the length was valid, so
    /// only this frame is lost).
    #[error("{pad} bytes of padding do not fit a {len}-byte payload")]
    BadPadding { pad: u8, len: u32 },
    /// A header block was open but the next frame was not its CONTINUATION.
    #[error(
        "expected CONTINUATION on stream {stream}, got frame type {frame_type} on stream {got_stream}"
    )]
    ExpectedContinuation {
        stream: u32,
        frame_type: u8,
        got_stream: u32,
    },
    /// CONTINUATION with no header block open.
    #[error("CONTINUATION on stream {stream} outside a header block")]
    UnexpectedContinuation { stream: u32 },
    /// A header block larger than the configured buffer; it is dropped and
    /// the HPACK table of that direction becomes unknown.
    #[error("header block on stream {stream} exceeds the {limit}-byte buffer")]
    HeaderBlockTooLarge { stream: u32, limit: usize },
    /// A SETTINGS payload larger than the configured control-frame buffer.
    #[error("frame type {frame_type} payload of {len} bytes exceeds the {limit}-byte buffer")]
    ControlTooLarge {
        frame_type: u8,
        len: u32,
        limit: usize,
    },
    /// The header block could not be decoded.
    #[error("HPACK decoding failed on stream {stream}")]
    Hpack {
        stream: u32,
        #[source]
        source: HpackError,
    },
    /// A setting value outside its allowed range.
    #[error("setting {id:#x} has invalid value {value}")]
    BadSetting { id: u16, value: u32 },
    /// WINDOW_UPDATE with increment 0.
    #[error("WINDOW_UPDATE with zero increment on stream {stream}")]
    ZeroIncrement { stream: u32 },
    /// A window grew past 2^31 - 1.
    #[error("flow-control window of stream {stream} overflowed to {window}")]
    WindowOverflow { stream: u32, window: i64 },
    /// DATA larger than the tracked window. Either the peer broke flow
    /// control or the two directions were fed out of order.
    #[error("{len}-byte DATA on stream {stream} exceeded the tracked window of {window}")]
    WindowExceeded { stream: u32, len: u32, window: i64 },
    /// A stream declared to depend on itself.
    #[error("stream {stream} depends on itself")]
    SelfDependency { stream: u32 },
}

impl Http2Error {
    /// Whether this error means the frame boundaries can no longer be
    /// trusted, so the decoder must resync.
    pub fn is_framing(&self) -> bool {
        matches!(
            self,
            Self::BadPreface { .. }
                | Self::FrameTooLarge { .. }
                | Self::BadStreamId { .. }
                | Self::BadLength { .. }
                | Self::Implausible { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Invariant: only errors about frame boundaries trigger a resync.
    #[test]
    fn framing_classification() {
        assert!(
            Http2Error::BadLength {
                frame_type: 6,
                len: 7
            }
            .is_framing()
        );
        assert!(!Http2Error::ZeroIncrement { stream: 1 }.is_framing());
        assert!(!Http2Error::BadPadding { pad: 9, len: 3 }.is_framing());
    }
}
