//! The closed sets of values an output line's fields take, as types: the
//! stages after the pipeline match on them instead of comparing strings,
//! and serde spells them as the JSON lines always have (docs/events.md).

use serde::{Serialize, Serializer};
use tracer_common::record::Direction;

/// How a stream ended (`stream_end`'s `how`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// END_STREAM (both sides, as far as they are known).
    EndStream,
    RstStream,
    /// A GOAWAY whose last stream id is below it.
    Goaway,
    ConnectionClosed,
    /// Dropped from a bounded table.
    Evicted,
}

/// Why a connection or stream stopped sending (`socket_stall`'s and
/// `stall_start`'s `cause`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StallCause {
    /// The traced process's send buffer was full.
    SendBufferFull,
    /// The peer advertised a zero TCP window.
    PeerZeroWindow,
    /// The HTTP/2 connection window was exhausted.
    ConnectionWindow,
    /// An HTTP/2 stream window was exhausted.
    StreamWindow,
}

/// Which HTTP/2 window a `window_stall` exhausted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StallScope {
    Connection,
    Stream,
}

/// How an etcd KV call ended (`etcd_request`'s `result`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EtcdResult {
    Ok,
    /// A Txn whose compare failed: for kube-apiserver, a conflict (an
    /// update from a stale resourceVersion, a create of an existing name).
    Conflict,
    /// A non-zero `grpc-status`.
    Error,
    /// No response before the stream ended (reset, connection closed).
    Unanswered,
    /// A message could not be read (bytes lost, compressed, oversized,
    /// malformed).
    Undecodable,
}

impl EtcdResult {
    /// As the JSON lines and the `result` label spell it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Conflict => "conflict",
            Self::Error => "error",
            Self::Unanswered => "unanswered",
            Self::Undecodable => "undecodable",
        }
    }
}

/// What a request's `resourceVersion` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceVersionKind {
    /// Absent or empty: the most recent state (a quorum read).
    Absent,
    /// `0`: any state, from the watch cache.
    Zero,
    /// A given revision.
    Exact,
}

impl ResourceVersionKind {
    /// What `rv` asks for.
    #[must_use]
    pub fn of(rv: &crate::watch::ResourceVersion) -> Self {
        match rv {
            crate::watch::ResourceVersion::Absent => Self::Absent,
            crate::watch::ResourceVersion::Zero => Self::Zero,
            crate::watch::ResourceVersion::Exact(_) => Self::Exact,
        }
    }
}

/// An instant of a watch event's timeline that could not be measured
/// (`missing`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimelinePart {
    TSource,
    TSent,
    TAcked,
}

/// Where bytes could not be decoded (`undecodable`'s `layer`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UndecodableLayer {
    /// A ring-buffer record this build cannot read.
    Record,
    /// HTTP/2 framing: bytes skipped until frame boundaries were found.
    Http2,
    /// A header block whose fields are lost.
    Hpack,
    /// A watch stream (JSON, protobuf, CBOR) event.
    Watch,
    /// An etcd gRPC message.
    Etcd,
}

/// Why bytes could not be decoded (`undecodable`'s `reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UndecodableReason {
    /// Framed as a unit but not parsable as one.
    Malformed,
    /// Larger than the decoder's cap.
    Oversized,
    /// Cut by lost capture bytes (a `gap`).
    CutByGap,
    /// The stream ended inside it.
    Truncated,
    /// gRPC-compressed: not decoded.
    Compressed,
    /// A gzip body joined mid-member (its stream began before the
    /// capture): inflating needs the member's start, so nothing of it can
    /// be decoded. Told by deflate's sync-flush marker ending its writes.
    JoinedMidGzip,
    /// Skipped until a boundary was found again (after damage, not at a
    /// mid-way join).
    Skipped,
    /// The decoder resynced into its middle.
    StartMissing,
    /// Another frame interrupted it.
    Interrupted,
    /// A record shorter than its kind needs.
    Short,
    /// A record of a kind this build does not know.
    UnknownKind,
}

impl UndecodableLayer {
    /// As the JSON lines spell it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Record => "record",
            Self::Http2 => "http2",
            Self::Hpack => "hpack",
            Self::Watch => "watch",
            Self::Etcd => "etcd",
        }
    }
}

impl UndecodableReason {
    /// As the JSON lines spell it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Oversized => "oversized",
            Self::CutByGap => "cut_by_gap",
            Self::Truncated => "truncated",
            Self::Compressed => "compressed",
            Self::JoinedMidGzip => "joined_mid_gzip",
            Self::Skipped => "skipped",
            Self::StartMissing => "start_missing",
            Self::Interrupted => "interrupted",
            Self::Short => "short",
            Self::UnknownKind => "unknown_kind",
        }
    }
}

impl Ending {
    /// As the JSON lines spell it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EndStream => "end_stream",
            Self::RstStream => "rst_stream",
            Self::Goaway => "goaway",
            Self::ConnectionClosed => "connection_closed",
            Self::Evicted => "evicted",
        }
    }
}

impl StallCause {
    /// As the JSON lines and the metrics' `cause` label spell it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SendBufferFull => "send_buffer_full",
            Self::PeerZeroWindow => "peer_zero_window",
            Self::ConnectionWindow => "connection_window",
            Self::StreamWindow => "stream_window",
        }
    }
}

impl ResourceVersionKind {
    /// As the JSON lines and the metrics spell it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Absent => "absent",
            Self::Zero => "zero",
            Self::Exact => "exact",
        }
    }
}

impl TimelinePart {
    /// As the JSON lines and the metrics' `missing` label spell it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TSource => "t_source",
            Self::TSent => "t_sent",
            Self::TAcked => "t_acked",
        }
    }
}

/// A [`Direction`] as the JSON lines spell it: `out` (written by the
/// traced process) or `in` (read by it).
#[must_use]
pub fn direction_name(direction: Direction) -> &'static str {
    match direction {
        Direction::Egress => "out",
        Direction::Ingress => "in",
    }
}

/// Serialises a [`Direction`] field as [`direction_name`] spells it.
pub(crate) fn serialize_direction<S: Serializer>(
    direction: &Direction,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(direction_name(*direction))
}

/// An optional direction: its name, or `null`.
pub(crate) fn serialize_opt_direction<S: Serializer>(
    direction: &Option<Direction>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match direction {
        Some(d) => serializer.serialize_some(direction_name(*d)),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(value: &impl Serialize) -> String {
        serde_json::to_string(value).unwrap()
    }

    /// serde's spelling and `as_str` must agree: metrics use one, the JSON
    /// lines the other.
    #[test]
    fn serde_and_as_str_spell_every_value_alike() {
        for e in [
            Ending::EndStream,
            Ending::RstStream,
            Ending::Goaway,
            Ending::ConnectionClosed,
            Ending::Evicted,
        ] {
            assert_eq!(json(&e), format!("\"{}\"", e.as_str()));
        }
        for c in [
            StallCause::SendBufferFull,
            StallCause::PeerZeroWindow,
            StallCause::ConnectionWindow,
            StallCause::StreamWindow,
        ] {
            assert_eq!(json(&c), format!("\"{}\"", c.as_str()));
        }
        for k in [
            ResourceVersionKind::Absent,
            ResourceVersionKind::Zero,
            ResourceVersionKind::Exact,
        ] {
            assert_eq!(json(&k), format!("\"{}\"", k.as_str()));
        }
        for p in [
            TimelinePart::TSource,
            TimelinePart::TSent,
            TimelinePart::TAcked,
        ] {
            assert_eq!(json(&p), format!("\"{}\"", p.as_str()));
        }
        for l in [
            UndecodableLayer::Record,
            UndecodableLayer::Http2,
            UndecodableLayer::Hpack,
            UndecodableLayer::Watch,
            UndecodableLayer::Etcd,
        ] {
            assert_eq!(json(&l), format!("\"{}\"", l.as_str()));
        }
        for r in [
            UndecodableReason::Malformed,
            UndecodableReason::Oversized,
            UndecodableReason::CutByGap,
            UndecodableReason::Truncated,
            UndecodableReason::Compressed,
            UndecodableReason::JoinedMidGzip,
            UndecodableReason::Skipped,
            UndecodableReason::StartMissing,
            UndecodableReason::Interrupted,
            UndecodableReason::Short,
            UndecodableReason::UnknownKind,
        ] {
            assert_eq!(json(&r), format!("\"{}\"", r.as_str()));
        }
        // The fields typed without an `as_str` keep their old spelling too.
        assert_eq!(json(&StallScope::Connection), "\"connection\"");
        assert_eq!(json(&StallScope::Stream), "\"stream\"");
        assert_eq!(
            json(&crate::http2::Flow::ClientToServer),
            "\"client_to_server\""
        );
        assert_eq!(
            json(&crate::http2::Flow::ServerToClient),
            "\"server_to_client\""
        );
        for r in [super::super::Role::Server, super::super::Role::Client] {
            assert_eq!(json(&r), format!("\"{}\"", r.as_str()));
        }
    }
}
