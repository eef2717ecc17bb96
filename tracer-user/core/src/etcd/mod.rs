//! etcd v3 gRPC Watch messages (pure: no I/O, no clocks; time is the
//! caller's `ts_ns`).
//!
//! # What it does
//!
//! [`EtcdWatchDecoder`] decodes one direction of the `etcdserverpb.Watch/
//! Watch` bidirectional stream between kube-apiserver and etcd, fed the
//! concatenated DATA payloads of that HTTP/2 stream in pieces:
//!
//! * server to client: [`WatchResponseInfo`] — watch id, header (revision,
//!   cluster, member, raft term), created / canceled / progress-notify,
//!   compact revision, cancel reason, fragment, and each mvcc event's type,
//!   key, create/mod revision, version, lease, value length and prev_kv;
//! * client to server: [`WatchRequestInfo`] — create (key, range end and
//!   [`KeyRange`], start revision, filters, prev_kv, progress_notify, watch
//!   id, fragment), cancel, progress.
//!
//! Each message comes wrapped in [`Framed`] with its wire size (5-byte gRPC
//! prefix included) and first/last byte times. [`parse_registry_key`] maps
//! keys such as `/registry/pods/<ns>/<name>` back to resource, namespace
//! and name, so an etcd event (`mod_revision`) can be joined to the watch
//! event that carries it (`resourceVersion`).
//!
//! # Design
//!
//! gRPC messages are small next to watch bodies, so a message split across
//! pieces is reassembled (copied) and then decoded from one slice; a
//! message within one piece is decoded in place. Only metadata leaves:
//! values (the stored objects, Secrets among them) are reduced to their
//! length while decoding and never copied out.
//!
//! # Joining mid-stream, gaps, resync
//!
//! [`EtcdWatchDecoder::mid_stream`] (and any [`EtcdWatchDecoder::gap`])
//! looks for a message boundary by content: flag 0, a length within the
//! cap, and a body that starts like the expected message (for a response:
//! a ResponseHeader of varint fields with a revision, then a known field).
//! The candidate is confirmed only by parsing the whole message; bytes are
//! held until then, so a false candidate loses nothing (scanning resumes one
//! byte later). Discarded bytes are reported in [`EtcdItem::Synced`];
//! cut, truncated, oversized, malformed and compressed messages in
//! [`EtcdItem::Dropped`].
//!
//! # Limits
//!
//! * gRPC-compressed messages (flag 1) are counted and skipped, and never
//!   used as a resync point.
//! * Keys that are not UTF-8 are shown with replacement characters.
//! * Key layout is inferred (see [`parse_registry_key_with`] for the rules
//!   and how a caller that knows resource scopes can settle ambiguities).

mod decoder;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixture;
mod key;
mod kv;
mod request;
mod response;
mod wire;

/// Which way a gRPC stream flows: etcd's Watch streams are HTTP/2 streams,
/// requests client to server, responses server to client.
pub use crate::http2::Flow;
pub use decoder::{
    DEFAULT_MAX_MESSAGE_BYTES, EtcdDecoderConfig, EtcdDropReason, EtcdItem, EtcdStats,
    EtcdWatchDecoder, Framed,
};
pub use key::{
    DEFAULT_PREFIX, ObjectKey, Scope, parse_registry_key, parse_registry_key_with,
    registry_segments,
};
pub use kv::{
    KvOp, KvRequestInfo, KvResponseInfo, decode_kv_request, decode_kv_response, guess_kv_op,
};
pub use request::{KeyRange, WatchCreate, WatchFilter, WatchRequestInfo, decode_watch_request};
pub use response::{
    EtcdEvent, EtcdEventType, KeyValueMeta, ResponseHeader, WatchResponseInfo,
    decode_watch_response,
};
pub use wire::WireError;
