//! What the watch-stream decoders emit: events (metadata only), explicit
//! losses and resynchronisations, and running counters.

use std::fmt;

/// How a watch response body is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WireFormat {
    /// `application/json`: one compact JSON object per event, then `\n`.
    Json,
    /// `application/vnd.kubernetes.protobuf;stream=watch`: a 4-byte
    /// big-endian length, then a `metav1.WatchEvent`.
    Protobuf,
    /// `application/cbor-seq` (RFC 8742): CBOR items back to back, each
    /// tagged self-described (see `watch::cbor`).
    Cbor,
}

impl WireFormat {
    /// The format of a watch response from its `content-type` header.
    ///
    /// `None` for anything else: the caller should not feed such a body,
    /// or feed it to a decoder that will then find no boundary and count
    /// every byte as skipped.
    #[must_use]
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let media = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "application/json" => Some(Self::Json),
            // The server always adds `;stream=watch` on a watch; a response
            // without it is a protobuf LIST or GET, which is not framed, but
            // the caller only feeds watch bodies here.
            "application/vnd.kubernetes.protobuf" => Some(Self::Protobuf),
            // A watch; a LIST answers `application/cbor` (one item).
            "application/cbor-seq" => Some(Self::Cbor),
            _ => None,
        }
    }
}

impl fmt::Display for WireFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Json => "json",
            Self::Protobuf => "protobuf",
            Self::Cbor => "cbor",
        })
    }
}

/// `metav1.WatchEvent.type`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
    Bookmark,
    Error,
    /// A type this crate does not know; kept verbatim (it is a short
    /// server-chosen word, not object content).
    Other(String),
}

impl EventType {
    /// Maps the wire string; unknown strings are kept as [`EventType::Other`].
    #[must_use]
    pub fn from_wire(s: &[u8]) -> Self {
        match s {
            b"ADDED" => Self::Added,
            b"MODIFIED" => Self::Modified,
            b"DELETED" => Self::Deleted,
            b"BOOKMARK" => Self::Bookmark,
            b"ERROR" => Self::Error,
            other => Self::Other(String::from_utf8_lossy(other).into_owned()),
        }
    }

    /// The wire spelling.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
            Self::Bookmark => "BOOKMARK",
            Self::Error => "ERROR",
            Self::Other(s) => s,
        }
    }

    /// The five types kube-apiserver sends. Content-based resynchronisation
    /// only accepts these, so that a stray match on an unknown word cannot
    /// start a bogus sync.
    pub(crate) const KNOWN: [&'static [u8]; 5] =
        [b"ADDED", b"MODIFIED", b"DELETED", b"BOOKMARK", b"ERROR"];
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A metadata string: kept inline up to 24 bytes (kinds, API versions,
/// namespaces, resourceVersions and most names), so an event's metadata
/// costs no allocation.
pub type MetaString = compact_str::CompactString;

/// One watch event, reduced to metadata.
///
/// Never holds object contents: watches carry Secrets. Every string here is
/// identity or type information (and, for ERROR events, the Status reason,
/// a fixed CamelCase word such as `Expired`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    pub event_type: EventType,
    /// `kind` of the embedded object (`Pod`, `Status`, ...); empty if absent.
    pub object_kind: MetaString,
    /// `apiVersion` of the embedded object (`v1`, `apps/v1`); empty if absent.
    pub api_version: MetaString,
    /// `metadata.namespace`; empty for cluster-scoped objects.
    pub namespace: MetaString,
    /// `metadata.name`; empty for BOOKMARK and ERROR events.
    pub name: MetaString,
    /// `metadata.resourceVersion` (decimal etcd revision as a string).
    pub resource_version: MetaString,
    /// For an ERROR event (a `Status` object): its `code`, e.g. 410.
    pub error_code: Option<i32>,
    /// For an ERROR event: the Status `reason` (`Expired`, `Gone`, ...).
    pub error_reason: Option<String>,
    /// A BOOKMARK carrying `k8s.io/initial-events-end: "true"`: the end of
    /// the initial events of a streaming list (WatchList).
    pub initial_events_end: bool,
    /// Size of the event as framed on the wire: for protobuf including the
    /// 4-byte length, for JSON including the trailing newline.
    pub bytes: u64,
    /// Caller timestamp of the piece holding the event's first byte.
    pub t_first_byte: u64,
    /// Caller timestamp of the piece holding the event's last byte.
    pub t_last_byte: u64,
    /// This is the first event after a boundary found by content (stream
    /// joined mid-way or after a gap). For protobuf such a boundary rests on
    /// a byte signature, so a consumer that must be certain can wait for the
    /// next event, which confirms it (see `WatchStats::syncs_refuted`).
    pub resynced: bool,
}

impl WatchEvent {
    /// `resource_version` as a number, when it is one (it always is for
    /// etcd-backed resources; aggregated servers may use other strings).
    #[must_use]
    pub fn resource_version_u64(&self) -> Option<u64> {
        self.resource_version.parse().ok()
    }
}

/// Metadata pulled out of one event by a format decoder, before framing
/// adds sizes and times.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct EventMeta {
    pub(crate) event_type: Option<EventType>,
    pub(crate) kind: MetaString,
    pub(crate) api_version: MetaString,
    pub(crate) namespace: MetaString,
    pub(crate) name: MetaString,
    pub(crate) resource_version: MetaString,
    pub(crate) error_code: Option<i32>,
    pub(crate) error_reason: Option<String>,
    pub(crate) initial_events_end: bool,
    /// Strings over [`MAX_FIELD_BYTES`], left empty.
    pub(crate) fields_too_long: u32,
}

/// Longest metadata string kept. Names are at most 253 bytes and annotation
/// keys 317; a longer value is not metadata we understand.
pub(crate) const MAX_FIELD_BYTES: usize = 1024;

impl EventMeta {
    /// Whether the object is a `metav1.Status` (an ERROR event's payload).
    pub(crate) fn is_status(&self) -> bool {
        self.kind == "Status" || (self.kind.is_empty() && self.event_type == Some(EventType::Error))
    }

    /// The event, if the bytes were a watch event (they named a type).
    pub(crate) fn into_event(
        self,
        bytes: u64,
        t_first_byte: u64,
        t_last_byte: u64,
        resynced: bool,
    ) -> Option<WatchEvent> {
        let is_status = self.is_status();
        Some(WatchEvent {
            event_type: self.event_type?,
            object_kind: self.kind,
            api_version: self.api_version,
            namespace: self.namespace,
            name: self.name,
            resource_version: self.resource_version,
            error_code: self.error_code.filter(|_| is_status),
            error_reason: self.error_reason.filter(|_| is_status),
            initial_events_end: self.initial_events_end,
            bytes,
            t_first_byte,
            t_last_byte,
            resynced,
        })
    }
}

/// Why bytes were discarded instead of producing an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The event was larger than the configured cap.
    Oversized,
    /// The bytes were framed as an event but did not parse as one.
    Malformed,
    /// A gap (lost capture bytes) cut the event.
    CutByGap,
    /// The stream ended in the middle of the event.
    Truncated,
}

/// One output of a stream decoder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchItem {
    Event(WatchEvent),
    /// A boundary was found by content: the stream was joined mid-way, or
    /// resumed after a gap or a malformed event. `skipped_bytes` were
    /// discarded before it (they belonged to events that cannot be decoded).
    Synced {
        format: WireFormat,
        skipped_bytes: u64,
        ts_ns: u64,
    },
    /// Bytes that were (or began) an event but produced none.
    Dropped {
        reason: DropReason,
        bytes: u64,
        ts_ns: u64,
    },
}

/// Running counters of one decoder; all byte counts are of body bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchStats {
    /// Events emitted.
    pub events: u64,
    /// Their framed bytes.
    pub event_bytes: u64,
    /// `gap()` calls, and the lost bytes they reported.
    pub gaps: u64,
    pub gap_bytes: u64,
    /// Boundaries found by content, and bytes discarded looking for them.
    pub syncs: u64,
    pub skipped_bytes: u64,
    /// Content syncs the following frame proved wrong (protobuf only; JSON
    /// boundaries are exact).
    pub syncs_refuted: u64,
    /// Events dropped, per reason, and their bytes (as far as seen).
    pub oversized_events: u64,
    pub oversized_bytes: u64,
    pub malformed_events: u64,
    pub malformed_bytes: u64,
    pub cut_events: u64,
    pub cut_bytes: u64,
    pub truncated_events: u64,
    pub truncated_bytes: u64,
    /// Metadata strings longer than the per-field cap; left empty.
    pub fields_too_long: u64,
}

impl WatchStats {
    pub(crate) fn count_drop(&mut self, reason: DropReason, bytes: u64) {
        let (events, total) = match reason {
            DropReason::Oversized => (&mut self.oversized_events, &mut self.oversized_bytes),
            DropReason::Malformed => (&mut self.malformed_events, &mut self.malformed_bytes),
            DropReason::CutByGap => (&mut self.cut_events, &mut self.cut_bytes),
            DropReason::Truncated => (&mut self.truncated_events, &mut self.truncated_bytes),
        };
        *events += 1;
        *total += bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_from_the_watch_handler() {
        assert_eq!(
            WireFormat::from_content_type("application/json"),
            Some(WireFormat::Json)
        );
        assert_eq!(
            WireFormat::from_content_type("application/vnd.kubernetes.protobuf;stream=watch"),
            Some(WireFormat::Protobuf)
        );
        assert_eq!(
            WireFormat::from_content_type("Application/JSON; charset=utf-8"),
            Some(WireFormat::Json)
        );
        // CBOR sequences are not decoded.
        assert_eq!(
            WireFormat::from_content_type("application/cbor-seq"),
            Some(WireFormat::Cbor)
        );
        assert_eq!(WireFormat::from_content_type("application/cbor"), None);
        assert_eq!(WireFormat::from_content_type(""), None);
    }

    #[test]
    fn event_types_round_trip() {
        for t in EventType::KNOWN {
            assert_eq!(EventType::from_wire(t).as_str().as_bytes(), t);
        }
        assert_eq!(
            EventType::from_wire(b"WEIRD"),
            EventType::Other("WEIRD".into())
        );
    }
}
