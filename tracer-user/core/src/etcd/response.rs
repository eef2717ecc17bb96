//! `etcdserverpb.WatchResponse`, reduced to metadata: keys, revisions and
//! value sizes. Values (the stored objects, Secrets among them) are never
//! copied; only their length is kept.

use super::wire::{Reader, WireError};

/// `etcdserverpb.ResponseHeader`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResponseHeader {
    pub cluster_id: u64,
    pub member_id: u64,
    /// For a progress notification, the revision the watch has reached:
    /// every later event has a higher one.
    pub revision: i64,
    pub raft_term: u64,
}

/// `mvccpb.Event.EventType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EtcdEventType {
    /// 0, also when the field is absent (proto3 default).
    Put,
    Delete,
    Other(i32),
}

/// `mvccpb.KeyValue` without its value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyValueMeta {
    /// The key (Kubernetes keys are ASCII; other bytes are replaced).
    pub key: String,
    pub create_revision: i64,
    /// Equals the Kubernetes `resourceVersion` of the object version.
    pub mod_revision: i64,
    /// 1 on creation, +1 per update; 0 for a DELETE's kv.
    pub version: i64,
    /// Length of the value; the value itself is not kept.
    pub value_len: u64,
    pub lease: i64,
}

/// `mvccpb.Event`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdEvent {
    pub event_type: EtcdEventType,
    pub kv: KeyValueMeta,
    /// Present when the watch asked for `prev_kv` (kube-apiserver does).
    pub prev_kv: Option<KeyValueMeta>,
}

impl EtcdEvent {
    /// A PUT creating the key (`kv.version == 1`).
    #[must_use]
    pub fn is_create(&self) -> bool {
        self.event_type == EtcdEventType::Put && self.kv.version == 1
    }
}

/// `etcdserverpb.WatchResponse`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchResponseInfo {
    /// `None` if the message had no header (etcd always sends one).
    pub header: Option<ResponseHeader>,
    pub watch_id: i64,
    pub created: bool,
    pub canceled: bool,
    /// Set when the requested start revision was compacted.
    pub compact_revision: i64,
    /// etcd's reason text for a cancel (a fixed server message).
    pub cancel_reason: String,
    pub fragment: bool,
    pub events: Vec<EtcdEvent>,
}

impl WatchResponseInfo {
    /// The header revision, 0 without a header.
    #[must_use]
    pub fn revision(&self) -> i64 {
        self.header.map_or(0, |h| h.revision)
    }

    /// A progress notification, as clientv3's `IsProgressNotify`: no
    /// events, not created, not canceled, no compaction, and a revision.
    /// kube-apiserver turns these into bookmarks.
    #[must_use]
    pub fn is_progress_notify(&self) -> bool {
        self.events.is_empty()
            && !self.created
            && !self.canceled
            && self.compact_revision == 0
            && self.revision() != 0
    }
}

pub(crate) fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Decodes one WatchResponse. Unknown fields are skipped; a known field
/// with the wrong wire type is an error (it is not a WatchResponse).
pub fn decode_watch_response(msg: &[u8]) -> Result<WatchResponseInfo, WireError> {
    let mut out = WatchResponseInfo::default();
    let mut r = Reader::new(msg);
    while let Some((f, v)) = r.field()? {
        match f {
            1 => out.header = Some(decode_header(v.bytes(f)?)?),
            2 => out.watch_id = v.int(f)?,
            3 => out.created = v.bool(f)?,
            4 => out.canceled = v.bool(f)?,
            5 => out.compact_revision = v.int(f)?,
            6 => out.cancel_reason = lossy(v.bytes(f)?),
            7 => out.fragment = v.bool(f)?,
            11 => out.events.push(decode_event(v.bytes(f)?)?),
            _ => {}
        }
    }
    Ok(out)
}

pub(crate) fn decode_header(b: &[u8]) -> Result<ResponseHeader, WireError> {
    let mut h = ResponseHeader::default();
    let mut r = Reader::new(b);
    while let Some((f, v)) = r.field()? {
        match f {
            1 => h.cluster_id = v.uint(f)?,
            2 => h.member_id = v.uint(f)?,
            3 => h.revision = v.int(f)?,
            4 => h.raft_term = v.uint(f)?,
            _ => {}
        }
    }
    Ok(h)
}

fn decode_event(b: &[u8]) -> Result<EtcdEvent, WireError> {
    let mut event_type = EtcdEventType::Put;
    let mut kv = KeyValueMeta::default();
    let mut prev_kv = None;
    let mut r = Reader::new(b);
    while let Some((f, v)) = r.field()? {
        match f {
            1 => {
                event_type = match v.int(f)? {
                    0 => EtcdEventType::Put,
                    1 => EtcdEventType::Delete,
                    other => EtcdEventType::Other(other as i32),
                }
            }
            2 => kv = decode_kv(v.bytes(f)?)?,
            3 => prev_kv = Some(decode_kv(v.bytes(f)?)?),
            _ => {}
        }
    }
    Ok(EtcdEvent {
        event_type,
        kv,
        prev_kv,
    })
}

pub(crate) fn decode_kv(b: &[u8]) -> Result<KeyValueMeta, WireError> {
    let mut kv = KeyValueMeta::default();
    let mut r = Reader::new(b);
    while let Some((f, v)) = r.field()? {
        match f {
            1 => kv.key = lossy(v.bytes(f)?),
            2 => kv.create_revision = v.int(f)?,
            3 => kv.mod_revision = v.int(f)?,
            4 => kv.version = v.int(f)?,
            // Only the length leaves: the value is the stored object.
            5 => kv.value_len = v.bytes(f)?.len() as u64,
            6 => kv.lease = v.int(f)?,
            _ => {}
        }
    }
    Ok(kv)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::fixture::ProtoWriter;

    #[test]
    fn byte_literal_put_with_prev_kv() {
        // header{cluster 1, member 2, rev 9, term 3}, watch_id 0,
        // events[{kv{key "/registry/pods/a/b", create 5, mod 9, version 2,
        // value "SECRET", lease 0}, prev_kv{key, mod 5, value "OLD"}}]
        let mut w = ProtoWriter::new();
        w.message(1, |h| {
            h.varint(1, 1).varint(2, 2).varint(3, 9).varint(4, 3);
        })
        .message(11, |e| {
            e.message(2, |kv| {
                kv.string(1, "/registry/pods/a/b")
                    .varint(2, 5)
                    .varint(3, 9)
                    .varint(4, 2)
                    .bytes(5, b"SECRET");
            })
            .message(3, |kv| {
                kv.string(1, "/registry/pods/a/b")
                    .varint(2, 5)
                    .varint(3, 5)
                    .varint(4, 1)
                    .bytes(5, b"OLD");
            });
        });
        let r = decode_watch_response(&w.buf).unwrap();
        assert_eq!(
            r.header,
            Some(ResponseHeader {
                cluster_id: 1,
                member_id: 2,
                revision: 9,
                raft_term: 3
            })
        );
        assert_eq!(r.events.len(), 1);
        let e = &r.events[0];
        assert_eq!(e.event_type, EtcdEventType::Put);
        assert_eq!(e.kv.key, "/registry/pods/a/b");
        assert_eq!(
            (e.kv.create_revision, e.kv.mod_revision, e.kv.version),
            (5, 9, 2)
        );
        assert_eq!(e.kv.value_len, 6);
        assert_eq!(e.prev_kv.as_ref().unwrap().value_len, 3);
        assert!(!e.is_create());
        assert!(!r.is_progress_notify());
        assert!(!format!("{r:?}").contains("SECRET"));
    }

    #[test]
    fn delete_and_progress_and_created() {
        let mut w = ProtoWriter::new();
        w.message(1, |h| {
            h.varint(3, 100);
        })
        .varint(2, 7)
        .message(11, |e| {
            e.varint(1, 1).message(2, |kv| {
                kv.string(1, "/registry/minions/n1").varint(3, 100);
            });
        });
        let r = decode_watch_response(&w.buf).unwrap();
        assert_eq!(r.watch_id, 7);
        assert_eq!(r.events[0].event_type, EtcdEventType::Delete);
        assert_eq!(r.events[0].prev_kv, None);

        let mut w = ProtoWriter::new();
        w.message(1, |h| {
            h.varint(3, 200);
        });
        let r = decode_watch_response(&w.buf).unwrap();
        assert!(r.is_progress_notify());

        let mut w = ProtoWriter::new();
        w.message(1, |h| {
            h.varint(3, 200);
        })
        .varint(3, 1);
        let r = decode_watch_response(&w.buf).unwrap();
        assert!(r.created);
        assert!(!r.is_progress_notify());

        let mut w = ProtoWriter::new();
        w.message(1, |h| {
            h.varint(3, 200);
        })
        .varint(4, 1)
        .varint(5, 150)
        .string(6, "mvcc: required revision has been compacted")
        .varint(7, 1);
        let r = decode_watch_response(&w.buf).unwrap();
        assert!(r.canceled && r.fragment);
        assert_eq!(r.compact_revision, 150);
        assert_eq!(
            r.cancel_reason,
            "mvcc: required revision has been compacted"
        );
        assert!(!r.is_progress_notify());
    }

    #[test]
    fn wrong_wire_types_are_errors() {
        // header as a varint.
        assert!(decode_watch_response(&[0x08, 1]).is_err());
        // value as a varint.
        let mut w = ProtoWriter::new();
        w.message(11, |e| {
            e.message(2, |kv| {
                kv.varint(5, 1);
            });
        });
        assert!(decode_watch_response(&w.buf).is_err());
        // Unknown fields are fine.
        let mut w = ProtoWriter::new();
        w.varint(99, 1).string(100, "x");
        assert_eq!(
            decode_watch_response(&w.buf).unwrap(),
            WatchResponseInfo::default()
        );
    }
}
