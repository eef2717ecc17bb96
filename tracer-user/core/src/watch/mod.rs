//! Kubernetes watch requests and watch-event streams (pure: no I/O, no
//! clocks; time is the caller's `ts_ns`).
//!
//! # What it does
//!
//! * [`ApiRequest::parse`] classifies a request from its method, `:path` and
//!   headers the way kube-apiserver's `RequestInfoFactory` does: WATCH (a
//!   collection GET whose first `watch` value is not `0`/`false`, or the
//!   legacy `/watch/` path), LIST, GET, ...; group, version, resource,
//!   subresource, namespace, name, and the list options (`resourceVersion`,
//!   `resourceVersionMatch`, `allowWatchBookmarks`, `sendInitialEvents`,
//!   `timeoutSeconds`, selectors, `limit`/`continue` presence).
//! * [`WatchStreamDecoder`] turns the response body of one watch (the
//!   concatenated DATA payloads of one HTTP/2 stream) into [`WatchEvent`]s:
//!   type, kind, apiVersion, namespace, name, resourceVersion, Status code
//!   and reason for ERROR, the `k8s.io/initial-events-end` bookmark flag,
//!   framed size, and first/last byte times. Both encodings the server uses
//!   are read: JSON lines and length-prefixed protobuf.
//! * [`Http1WatchDecoder`] puts a [`ChunkedDecoder`] in front of it for
//!   HTTP/1.1 (`DISABLE_HTTP2`) clients.
//!
//! # Design
//!
//! * JSON events are framed by newline (Go escapes control characters in
//!   strings, so a newline always ends an event). A line contained in one
//!   piece is read in place; only a line spanning pieces is buffered. Fields
//!   come from a targeted scanner that steps over values without building
//!   them and stops after `metadata`.
//! * Protobuf events are never buffered: a streaming walker follows the
//!   path WatchEvent → RawExtension → `k8s\0` Unknown → TypeMeta / object →
//!   ObjectMeta, skipping every other field by length, across pieces.
//! * Only metadata leaves: object contents (Secrets travel through
//!   watches), Status messages, annotation values other than the one
//!   bookmark flag are stepped over and never copied out.
//!
//! # Joining mid-stream, gaps, resync
//!
//! A decoder made with [`WatchStreamDecoder::mid_stream`] (the normal case:
//! watches are older than the tracer) or fed a [`WatchStreamDecoder::gap`]
//! looks for a boundary by content: after a newline for JSON (exact; the
//! very first line is accepted only if it is one complete JSON document),
//! or at a protobuf header matching the signature `len | 0A <len> <type>
//! 12 <len> 0A <len> k8s\0` with consistent lengths. Without a declared
//! format the bytes decide. Every discarded byte is reported: as
//! [`WatchItem::Synced`]`{skipped_bytes}` when the boundary is found, as
//! [`WatchItem::Dropped`] for an event cut by a gap, truncated by the end of
//! the stream, over the size cap or malformed. After a malformed event the
//! decoder resynchronises rather than trust a length that may be wrong.
//!
//! # Limits
//!
//! * CBOR (`application/cbor-seq`) and WebSocket watches are not decoded.
//! * Protobuf objects whose `runtime.Unknown.raw` is compressed or not
//!   `k8s\0`-prefixed yield events without kind or metadata.
//! * A protobuf content sync can be fooled by object content built to
//!   imitate a frame; the next frame then fails (counted in
//!   [`WatchStats::syncs_refuted`]) and the first event after a content sync
//!   is flagged [`WatchEvent::resynced`].
//! * The resource is not in the event; the caller maps kind to resource
//!   (or knows it from the request).

pub mod cbor;
mod chunked;
mod event;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixture;
pub mod gzip;
mod http1;
mod json;
mod json_scan;
mod protobuf;
mod query;
mod request;
mod stream;
mod sync;

pub use chunked::{ChunkItem, ChunkStats, ChunkedDecoder};
pub use event::{DropReason, EventType, MetaString, WatchEvent, WatchItem, WatchStats, WireFormat};
pub use http1::Http1WatchDecoder;
pub use request::{
    ApiRequest, ListOptions, ResourceTarget, ResourceVersion, ShardRange, Verb, qualified,
};
pub use stream::{DEFAULT_MAX_EVENT_BYTES, DecoderConfig, WatchStreamDecoder, decode_all};
