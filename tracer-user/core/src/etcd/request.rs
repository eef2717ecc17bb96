//! `etcdserverpb.WatchRequest`: what the apiserver asks etcd to watch.

use super::{
    response::lossy,
    wire::{Reader, Value, WireError},
};

/// `WatchCreateRequest.FilterType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WatchFilter {
    NoPut,
    NoDelete,
    Other(i32),
}

/// What `key`/`range_end` select.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyRange {
    /// `range_end` empty: the key alone.
    Single,
    /// `range_end` is the key with its last byte incremented: every key
    /// with this prefix (clientv3 `WithPrefix`, what kube-apiserver uses).
    Prefix,
    /// `range_end` is `\0`: every key from `key` on.
    FromKey,
    /// Any other `[key, range_end)`.
    Range,
}

/// `WatchCreateRequest`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchCreate {
    pub key: String,
    pub range_end: String,
    pub start_revision: i64,
    pub progress_notify: bool,
    pub filters: Vec<WatchFilter>,
    pub prev_kv: bool,
    /// 0 lets the server choose.
    pub watch_id: i64,
    pub fragment: bool,
    /// Raw bytes, for [`WatchCreate::range`].
    key_bytes: Vec<u8>,
    range_end_bytes: Vec<u8>,
}

impl WatchCreate {
    /// What the request selects.
    #[must_use]
    pub fn range(&self) -> KeyRange {
        let end = &self.range_end_bytes;
        if end.is_empty() {
            KeyRange::Single
        } else if end.as_slice() == [0] {
            KeyRange::FromKey
        } else if prefix_end(&self.key_bytes).as_deref() == Some(end.as_slice()) {
            KeyRange::Prefix
        } else {
            KeyRange::Range
        }
    }
}

/// clientv3's `GetPrefixRangeEnd`: the key with trailing 0xff bytes dropped
/// and the last byte incremented; `None` if every byte is 0xff.
fn prefix_end(key: &[u8]) -> Option<Vec<u8>> {
    let last = key.iter().rposition(|&b| b < 0xff)?;
    let mut end = key[..=last].to_vec();
    end[last] += 1;
    Some(end)
}

/// `etcdserverpb.WatchRequest` (a oneof).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchRequestInfo {
    Create(WatchCreate),
    Cancel {
        watch_id: i64,
    },
    /// Ask for a progress notification on every watch of the stream.
    Progress,
}

/// Decodes one WatchRequest; exactly one member of the oneof must be set.
pub fn decode_watch_request(msg: &[u8]) -> Result<WatchRequestInfo, WireError> {
    let mut found = None;
    let mut r = Reader::new(msg);
    while let Some((f, v)) = r.field()? {
        let req = match f {
            1 => WatchRequestInfo::Create(decode_create(v.bytes(f)?)?),
            2 => {
                let mut watch_id = 0;
                let mut c = Reader::new(v.bytes(f)?);
                while let Some((f, v)) = c.field()? {
                    if f == 1 {
                        watch_id = v.int(f)?;
                    }
                }
                WatchRequestInfo::Cancel { watch_id }
            }
            3 => {
                let mut p = Reader::new(v.bytes(f)?);
                while p.field()?.is_some() {}
                WatchRequestInfo::Progress
            }
            _ => continue,
        };
        if found.replace(req).is_some() {
            return Err(WireError::Oneof);
        }
    }
    found.ok_or(WireError::Oneof)
}

fn decode_create(b: &[u8]) -> Result<WatchCreate, WireError> {
    let mut c = WatchCreate::default();
    let mut r = Reader::new(b);
    while let Some((f, v)) = r.field()? {
        match f {
            1 => c.key_bytes = v.bytes(f)?.to_vec(),
            2 => c.range_end_bytes = v.bytes(f)?.to_vec(),
            3 => c.start_revision = v.int(f)?,
            4 => c.progress_notify = v.bool(f)?,
            5 => match v {
                // proto3 packs repeated enums; unpacked is legal too.
                Value::Bytes(packed) => {
                    let mut p = Reader::new(packed);
                    while p.position() < packed.len() {
                        c.filters.push(filter(p.varint()?));
                    }
                }
                _ => c.filters.push(filter(v.uint(f)?)),
            },
            6 => c.prev_kv = v.bool(f)?,
            7 => c.watch_id = v.int(f)?,
            8 => c.fragment = v.bool(f)?,
            _ => {}
        }
    }
    c.key = lossy(&c.key_bytes);
    c.range_end = lossy(&c.range_end_bytes);
    Ok(c)
}

fn filter(v: u64) -> WatchFilter {
    match v {
        0 => WatchFilter::NoPut,
        1 => WatchFilter::NoDelete,
        other => WatchFilter::Other(other as i32),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::fixture::ProtoWriter;

    #[test]
    fn apiserver_create_request() {
        // clientv3.Watch(ctx, "/registry/pods/", WithRev(101), WithPrefix(),
        // WithPrevKV(), WithProgressNotify())
        let mut w = ProtoWriter::new();
        w.message(1, |c| {
            c.string(1, "/registry/pods/")
                .string(2, "/registry/pods0")
                .varint(3, 101)
                .varint(4, 1)
                .varint(6, 1);
        });
        let WatchRequestInfo::Create(c) = decode_watch_request(&w.buf).unwrap() else {
            panic!()
        };
        assert_eq!(c.key, "/registry/pods/");
        assert_eq!(c.range(), KeyRange::Prefix);
        assert_eq!(c.start_revision, 101);
        assert!(c.progress_notify && c.prev_kv);
        assert_eq!(c.watch_id, 0);
        assert!(c.filters.is_empty());
    }

    #[test]
    fn filters_packed_and_unpacked_and_ranges() {
        let mut w = ProtoWriter::new();
        w.message(1, |c| {
            c.string(1, "a")
                .bytes(2, &[0])
                .bytes(5, &[0, 1])
                .varint(5, 7)
                .varint(7, 3)
                .varint(8, 1);
        });
        let WatchRequestInfo::Create(c) = decode_watch_request(&w.buf).unwrap() else {
            panic!()
        };
        assert_eq!(
            c.filters,
            [
                WatchFilter::NoPut,
                WatchFilter::NoDelete,
                WatchFilter::Other(7)
            ]
        );
        assert_eq!(c.range(), KeyRange::FromKey);
        assert_eq!((c.watch_id, c.fragment), (3, true));

        let mut w = ProtoWriter::new();
        w.message(1, |c| {
            c.string(1, "a").string(2, "c");
        });
        let WatchRequestInfo::Create(c) = decode_watch_request(&w.buf).unwrap() else {
            panic!()
        };
        assert_eq!(c.range(), KeyRange::Range);
        let mut w = ProtoWriter::new();
        w.message(1, |c| {
            c.string(1, "a");
        });
        let WatchRequestInfo::Create(c) = decode_watch_request(&w.buf).unwrap() else {
            panic!()
        };
        assert_eq!(c.range(), KeyRange::Single);
        assert_eq!(prefix_end(b"a\xff\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff"), None);
    }

    #[test]
    fn cancel_progress_and_oneof_rules() {
        let mut w = ProtoWriter::new();
        w.message(2, |c| {
            c.varint(1, 5);
        });
        assert_eq!(
            decode_watch_request(&w.buf).unwrap(),
            WatchRequestInfo::Cancel { watch_id: 5 }
        );
        assert_eq!(
            decode_watch_request(&[0x1A, 0x00]).unwrap(),
            WatchRequestInfo::Progress
        );
        assert_eq!(decode_watch_request(&[]), Err(WireError::Oneof));
        assert_eq!(
            decode_watch_request(&[0x1A, 0x00, 0x1A, 0x00]),
            Err(WireError::Oneof)
        );
    }
}
