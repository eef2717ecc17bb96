//! HTTP/2 frame headers ([RFC 9113 §4.1]) and the validity rules for each
//! frame type ([RFC 9113 §6]).
//!
//! The rules live here, once, because two callers need them with different
//! strictness: the streaming decoder (which, once in sync, only rejects what
//! the RFC makes a connection error) and the resync scanner (which hunts for a
//! frame boundary in arbitrary bytes and so also rejects what is merely
//! unusual, such as undefined flags or a set reserved bit).
//!
//! [RFC 9113 §4.1]: https://www.rfc-editor.org/rfc/rfc9113#section-4.1
//! [RFC 9113 §6]: https://www.rfc-editor.org/rfc/rfc9113#section-6

use super::error::Http2Error;

/// The client connection preface ([RFC 9113 §3.4]).
///
/// [RFC 9113 §3.4]: https://www.rfc-editor.org/rfc/rfc9113#section-3.4
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Length of every frame header.
pub const FRAME_HEADER_LEN: usize = 9;
/// `SETTINGS_MAX_FRAME_SIZE` until a peer says otherwise.
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 1 << 14;
/// The largest `SETTINGS_MAX_FRAME_SIZE` the protocol allows (2^24 - 1).
pub const MAX_FRAME_SIZE_LIMIT: u32 = (1 << 24) - 1;
/// Initial flow-control window of a connection, and of streams until
/// `SETTINGS_INITIAL_WINDOW_SIZE` changes it.
pub const DEFAULT_WINDOW: u32 = 65_535;
/// The largest flow-control window (2^31 - 1).
pub const MAX_WINDOW: i64 = (1 << 31) - 1;

/// Frame flags ([RFC 9113 §6]). The same bit means different things for
/// different types, hence the aliases.
pub mod flags {
    /// DATA, HEADERS: last frame the sender sends on this stream.
    pub const END_STREAM: u8 = 0x1;
    /// SETTINGS, PING: acknowledgement.
    pub const ACK: u8 = 0x1;
    /// HEADERS, PUSH_PROMISE, CONTINUATION: the header block ends here.
    pub const END_HEADERS: u8 = 0x4;
    /// DATA, HEADERS, PUSH_PROMISE: a pad-length byte and padding are present.
    pub const PADDED: u8 = 0x8;
    /// HEADERS: exclusive bit, stream dependency and weight are present.
    pub const PRIORITY: u8 = 0x20;
}

/// The frame types of RFC 9113. Other type codes are extensions, which a
/// receiver must skip.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameType {
    Data = 0,
    Headers = 1,
    Priority = 2,
    RstStream = 3,
    Settings = 4,
    PushPromise = 5,
    Ping = 6,
    GoAway = 7,
    WindowUpdate = 8,
    Continuation = 9,
}

impl FrameType {
    /// The known type for a type code, `None` for extension types.
    #[inline]
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => Self::Data,
            1 => Self::Headers,
            2 => Self::Priority,
            3 => Self::RstStream,
            4 => Self::Settings,
            5 => Self::PushPromise,
            6 => Self::Ping,
            7 => Self::GoAway,
            8 => Self::WindowUpdate,
            9 => Self::Continuation,
            _ => return None,
        })
    }

    /// Flags the RFC defines for this type. Receivers ignore others, but real
    /// senders never set them, which makes them useful evidence in resync.
    pub fn defined_flags(self) -> u8 {
        use flags::*;
        match self {
            Self::Data => END_STREAM | PADDED,
            Self::Headers => END_STREAM | END_HEADERS | PADDED | PRIORITY,
            Self::Settings | Self::Ping => ACK,
            Self::PushPromise => END_HEADERS | PADDED,
            Self::Continuation => END_HEADERS,
            Self::Priority | Self::RstStream | Self::GoAway | Self::WindowUpdate => 0,
        }
    }

    /// Whether frames of this type belong to a stream (id != 0), to the
    /// connection (id == 0), or either (WINDOW_UPDATE).
    fn stream_rule(self) -> StreamRule {
        match self {
            Self::Data
            | Self::Headers
            | Self::Priority
            | Self::RstStream
            | Self::PushPromise
            | Self::Continuation => StreamRule::NonZero,
            Self::Settings | Self::Ping | Self::GoAway => StreamRule::Zero,
            Self::WindowUpdate => StreamRule::Any,
        }
    }
}

enum StreamRule {
    Zero,
    NonZero,
    Any,
}

/// A parsed 9-byte frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Payload length (24 bits).
    pub len: u32,
    /// Raw type code; see [`FrameHeader::kind`].
    pub frame_type: u8,
    pub flags: u8,
    /// Stream identifier, reserved bit cleared.
    pub stream: u32,
    /// The reserved bit in front of the stream id. Ignored on receipt, but
    /// never set by real senders.
    pub reserved: bool,
}

impl FrameHeader {
    /// Parses a header. Never fails: every 9-byte string is some header;
    /// whether it is a valid one depends on the type's rules (checked by
    /// the decoder and the resync scanner).
    #[inline]
    pub fn parse(b: &[u8; FRAME_HEADER_LEN]) -> Self {
        let sid = u32::from_be_bytes([b[5], b[6], b[7], b[8]]);
        Self {
            len: u32::from_be_bytes([0, b[0], b[1], b[2]]),
            frame_type: b[3],
            flags: b[4],
            stream: sid & 0x7fff_ffff,
            reserved: sid & 0x8000_0000 != 0,
        }
    }

    /// Parses the header at the front of `bytes`, if 9 bytes are there.
    #[inline]
    pub fn parse_prefix(bytes: &[u8]) -> Option<Self> {
        bytes.first_chunk::<FRAME_HEADER_LEN>().map(Self::parse)
    }

    /// The header's wire form (tests and fuzzers build frames with it).
    pub fn encode(&self) -> [u8; FRAME_HEADER_LEN] {
        let len = self.len.to_be_bytes();
        let sid = (self.stream | if self.reserved { 1 << 31 } else { 0 }).to_be_bytes();
        [
            len[1],
            len[2],
            len[3],
            self.frame_type,
            self.flags,
            sid[0],
            sid[1],
            sid[2],
            sid[3],
        ]
    }

    /// The known frame type, `None` for an extension type.
    #[inline]
    pub fn kind(&self) -> Option<FrameType> {
        FrameType::from_code(self.frame_type)
    }

    /// Whether `flag` is set.
    #[inline]
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// Bytes that precede the data or header-block fragment in the payload:
    /// the pad-length byte and, for HEADERS with PRIORITY, 5 priority bytes,
    /// and for PUSH_PROMISE the 4-byte promised stream id.
    pub fn prefix_len(&self) -> u32 {
        let pad = u32::from(self.has(flags::PADDED));
        match self.kind() {
            Some(FrameType::Data) => pad,
            Some(FrameType::Headers) => pad + if self.has(flags::PRIORITY) { 5 } else { 0 },
            Some(FrameType::PushPromise) => pad + 4,
            _ => 0,
        }
    }
}

/// How hard [`check`] looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Strictness {
    /// In sync: only what RFC 9113 makes a connection error (size and
    /// stream-id rules). Unknown flags and the reserved bit are ignored, as
    /// the RFC requires of receivers.
    Lenient,
    /// Hunting for a boundary: also undefined flags and the reserved bit.
    /// Extension types are rejected by the caller (they cannot be checked).
    Strict,
}

/// Checks a known-type header against the RFC's length and stream-id rules
/// and the frame size limit `max_len`.
pub(crate) fn check(
    h: &FrameHeader,
    kind: FrameType,
    max_len: u32,
    strictness: Strictness,
) -> Result<(), Http2Error> {
    if h.len > max_len {
        return Err(Http2Error::FrameTooLarge {
            frame_type: h.frame_type,
            len: h.len,
            max: max_len,
        });
    }
    if strictness == Strictness::Strict && (h.reserved || h.flags & !kind.defined_flags() != 0) {
        return Err(Http2Error::Implausible {
            frame_type: h.frame_type,
            flags: h.flags,
        });
    }
    let stream_ok = match kind.stream_rule() {
        StreamRule::Zero => h.stream == 0,
        StreamRule::NonZero => h.stream != 0,
        StreamRule::Any => true,
    };
    if !stream_ok {
        return Err(Http2Error::BadStreamId {
            frame_type: h.frame_type,
            stream: h.stream,
        });
    }
    let len_ok = match kind {
        FrameType::Priority => h.len == 5,
        FrameType::RstStream | FrameType::WindowUpdate => h.len == 4,
        FrameType::Ping => h.len == 8,
        FrameType::GoAway => h.len >= 8,
        FrameType::Settings if h.has(flags::ACK) => h.len == 0,
        FrameType::Settings => h.len.is_multiple_of(6),
        FrameType::Data | FrameType::Headers | FrameType::PushPromise => h.len >= h.prefix_len(),
        FrameType::Continuation => true,
    };
    if !len_ok {
        return Err(Http2Error::BadLength {
            frame_type: h.frame_type,
            len: h.len,
        });
    }
    Ok(())
}

/// Checks the pad-length byte of a PADDED frame against its payload length:
/// the padding must fit after the prefix ([RFC 9113 §6.1]).
///
/// [RFC 9113 §6.1]: https://www.rfc-editor.org/rfc/rfc9113#section-6.1
pub(crate) fn check_padding(h: &FrameHeader, pad: u8) -> Result<(), Http2Error> {
    if u32::from(pad) + h.prefix_len() > h.len {
        Err(Http2Error::BadPadding { pad, len: h.len })
    } else {
        Ok(())
    }
}

/// Stream dependency and weight ([RFC 9113 §5.3.2], deprecated but still on
/// the wire).
///
/// [RFC 9113 §5.3.2]: https://www.rfc-editor.org/rfc/rfc9113#section-5.3.2
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrioritySpec {
    pub exclusive: bool,
    pub depends_on: u32,
    /// The weight byte as sent (weight - 1).
    pub weight: u8,
}

impl PrioritySpec {
    pub(crate) fn parse(b: &[u8; 5]) -> Self {
        let dep = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        Self {
            exclusive: dep & 0x8000_0000 != 0,
            depends_on: dep & 0x7fff_ffff,
            weight: b[4],
        }
    }
}

/// Reads a big-endian u32 at `at` (callers have checked the length).
#[inline]
pub(crate) fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Identifiers of the settings RFC 9113 defines (§6.5.2), plus the two later
/// RFCs' ones that real peers send.
pub mod setting {
    pub const HEADER_TABLE_SIZE: u16 = 0x1;
    pub const ENABLE_PUSH: u16 = 0x2;
    pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
    pub const MAX_FRAME_SIZE: u16 = 0x5;
    pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;
    /// RFC 8441 (extended CONNECT).
    pub const ENABLE_CONNECT_PROTOCOL: u16 = 0x8;
    /// RFC 9218.
    pub const NO_RFC7540_PRIORITIES: u16 = 0x9;
}

/// Whether a setting's value is one the RFC allows; `false` is a connection
/// error. Unknown identifiers are allowed (receivers must ignore them).
pub(crate) fn setting_value_ok(id: u16, value: u32) -> bool {
    match id {
        setting::ENABLE_PUSH
        | setting::ENABLE_CONNECT_PROTOCOL
        | setting::NO_RFC7540_PRIORITIES => value <= 1,
        setting::INITIAL_WINDOW_SIZE => i64::from(value) <= MAX_WINDOW,
        setting::MAX_FRAME_SIZE => (DEFAULT_MAX_FRAME_SIZE..=MAX_FRAME_SIZE_LIMIT).contains(&value),
        _ => true,
    }
}

/// Splits a SETTINGS payload (a multiple of 6 bytes) into (id, value) pairs.
pub(crate) fn settings_params(payload: &[u8]) -> impl Iterator<Item = (u16, u32)> + '_ {
    payload
        .chunks_exact(6)
        .map(|p| (u16::from_be_bytes([p[0], p[1]]), be_u32(p, 2)))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Invariant: parse and encode are inverse, and the reserved bit is split
    // off the stream id rather than folded into it.
    #[test]
    fn header_round_trip_and_reserved_bit() {
        let b = [0x00, 0x40, 0x00, 0x00, 0x01, 0x80, 0x00, 0x00, 0x03];
        let h = FrameHeader::parse(&b);
        assert_eq!(
            h,
            FrameHeader {
                len: 0x4000,
                frame_type: 0,
                flags: flags::END_STREAM,
                stream: 3,
                reserved: true,
            }
        );
        assert_eq!(h.encode(), b);
        assert_eq!(h.kind(), Some(FrameType::Data));
    }

    // Invariant: connection-level types must use stream 0 and stream-level
    // types must not.
    #[test]
    fn stream_id_rules() {
        let settings = FrameHeader::parse(&[0, 0, 0, 4, 0, 0, 0, 0, 1]);
        assert!(matches!(
            check(&settings, FrameType::Settings, 16384, Strictness::Lenient),
            Err(Http2Error::BadStreamId { .. })
        ));
        let data = FrameHeader::parse(&[0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(check(&data, FrameType::Data, 16384, Strictness::Lenient).is_err());
        let wu = FrameHeader::parse(&[0, 0, 4, 8, 0, 0, 0, 0, 0]);
        assert!(check(&wu, FrameType::WindowUpdate, 16384, Strictness::Strict).is_ok());
    }

    // Invariant: fixed-size frames have exactly their size; a SETTINGS ACK is
    // empty; padded frames have room for the pad-length byte.
    #[test]
    fn length_rules() {
        let ping7 = FrameHeader::parse(&[0, 0, 7, 6, 0, 0, 0, 0, 0]);
        assert!(check(&ping7, FrameType::Ping, 16384, Strictness::Lenient).is_err());
        let ack6 = FrameHeader::parse(&[0, 0, 6, 4, 1, 0, 0, 0, 0]);
        assert!(check(&ack6, FrameType::Settings, 16384, Strictness::Lenient).is_err());
        let settings7 = FrameHeader::parse(&[0, 0, 7, 4, 0, 0, 0, 0, 0]);
        assert!(check(&settings7, FrameType::Settings, 16384, Strictness::Lenient).is_err());
        let padded_empty = FrameHeader::parse(&[0, 0, 0, 0, 8, 0, 0, 0, 1]);
        assert!(check(&padded_empty, FrameType::Data, 16384, Strictness::Lenient).is_err());
        let prio_headers = FrameHeader::parse(&[0, 0, 5, 1, 0x24, 0, 0, 0, 1]);
        assert!(
            check(
                &prio_headers,
                FrameType::Headers,
                16384,
                Strictness::Lenient
            )
            .is_ok()
        );
        let prio_padded = FrameHeader::parse(&[0, 0, 5, 1, 0x28, 0, 0, 0, 1]);
        assert!(check(&prio_padded, FrameType::Headers, 16384, Strictness::Lenient).is_err());
    }

    // Invariant: undefined flags and the reserved bit are ignored in sync
    // (RFC 9113 §4.1) but rejected when hunting for a boundary.
    #[test]
    fn strictness_only_affects_flags_and_reserved_bit() {
        let odd_flags = FrameHeader::parse(&[0, 0, 1, 0, 0x40, 0, 0, 0, 1]);
        assert!(check(&odd_flags, FrameType::Data, 16384, Strictness::Lenient).is_ok());
        assert!(check(&odd_flags, FrameType::Data, 16384, Strictness::Strict).is_err());
        let reserved = FrameHeader::parse(&[0, 0, 1, 0, 0, 0x80, 0, 0, 1]);
        assert!(check(&reserved, FrameType::Data, 16384, Strictness::Lenient).is_ok());
        assert!(check(&reserved, FrameType::Data, 16384, Strictness::Strict).is_err());
    }

    // Invariant: padding must fit in the payload after the pad-length byte
    // (and the priority fields).
    #[test]
    fn padding_fits() {
        let data = FrameHeader::parse(&[0, 0, 5, 0, 8, 0, 0, 0, 1]);
        assert!(check_padding(&data, 4).is_ok());
        assert!(check_padding(&data, 5).is_err());
        let headers = FrameHeader::parse(&[0, 0, 10, 1, 0x28, 0, 0, 0, 1]);
        assert!(check_padding(&headers, 4).is_ok());
        assert!(check_padding(&headers, 5).is_err());
    }

    // Invariant: setting values outside the RFC's ranges are rejected.
    #[test]
    fn setting_ranges() {
        assert!(setting_value_ok(setting::MAX_FRAME_SIZE, 16384));
        assert!(!setting_value_ok(setting::MAX_FRAME_SIZE, 16383));
        assert!(!setting_value_ok(setting::MAX_FRAME_SIZE, 1 << 24));
        assert!(!setting_value_ok(setting::INITIAL_WINDOW_SIZE, 1 << 31));
        assert!(!setting_value_ok(setting::ENABLE_PUSH, 2));
        assert!(setting_value_ok(0xff, 12345));
        let params: Vec<_> =
            settings_params(&[0, 4, 0, 0, 0xff, 0xff, 0, 5, 0, 0, 0x40, 0]).collect();
        assert_eq!(params, [(4, 65535), (5, 16384)]);
    }
}
