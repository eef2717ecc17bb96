//! etcd's KV service (`etcdserverpb.KV`: `Range`, `Put`, `DeleteRange`,
//! `Txn`), the unary calls by which kube-apiserver's storage reads and
//! writes objects, reduced to metadata: keys, revisions, the outcome of a
//! transaction's compare, counts and value sizes. Values (the stored
//! objects, Secrets among them) are never copied; only their length is
//! kept.
//!
//! kube-apiserver writes through `Txn`: a create compares the key's
//! `mod_revision` with 0 and puts; an update compares it with the
//! revision it read and puts; a delete compares and deletes; each falls
//! back to a `Range` of the key when the compare fails (a conflict). The
//! new revision of a successful write is the response header's revision.

use super::{
    response::{KeyValueMeta, decode_header, decode_kv, lossy},
    wire::{Reader, WireError},
};

/// A KV method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KvOp {
    Range,
    Put,
    DeleteRange,
    Txn,
}

impl KvOp {
    /// The method of a gRPC `:path` (`/etcdserverpb.KV/Txn`).
    #[must_use]
    pub fn from_path(path: &str) -> Option<Self> {
        match path.strip_prefix("/etcdserverpb.KV/")? {
            "Range" => Some(Self::Range),
            "Put" => Some(Self::Put),
            "DeleteRange" => Some(Self::DeleteRange),
            "Txn" => Some(Self::Txn),
            _ => None,
        }
    }

    /// As the `op` label spells it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Range => "range",
            Self::Put => "put",
            Self::DeleteRange => "delete_range",
            Self::Txn => "txn",
        }
    }
}

impl serde::Serialize for KvOp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// What a KV request asks, as far as a trace needs it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvRequestInfo {
    /// The key the request is about: a Range's, Put's or DeleteRange's
    /// key; a Txn's first compare's key (else its first operation's).
    pub key: String,
    /// A range of keys (`range_end` set), not one key.
    pub is_range: bool,
    /// A Txn comparing the key's `mod_revision` with this (0: a create).
    pub compare_mod_revision: Option<i64>,
    /// A Txn's operations if its compare holds, and otherwise.
    pub success_ops: Vec<KvOp>,
    pub failure_ops: Vec<KvOp>,
    /// Bytes of the values put (a Put's, or a Txn's puts).
    pub value_bytes: u64,
}

/// What a KV response says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvResponseInfo {
    /// The store's revision after the call: for a successful write, the
    /// revision of the object it wrote (its new `resourceVersion`).
    pub revision: i64,
    /// A Txn's compare held (its success operations ran).
    pub succeeded: Option<bool>,
    /// Key-values a Range returned (in a Txn, all of its ranges).
    pub kvs: u64,
    /// A Range's `count`, a DeleteRange's `deleted` (summed in a Txn).
    pub count: i64,
    pub deleted: i64,
    /// Bytes of the values returned.
    pub value_bytes: u64,
}

/// The method of a KV request message when its `:path` is not known (a
/// connection joined mid-way: the path is an HPACK entry from before the
/// capture), told by its content: a Txn's first field is a Compare (or a
/// RequestOp) naming a key; a request whose first field is a key is a
/// Range, or a Put when its second field is no key but a value. `None`:
/// not a KV request as kube-apiserver sends them (a Watch stream, say).
#[must_use]
pub fn guess_kv_op(msg: &[u8]) -> Option<KvOp> {
    let is_key = |b: &[u8]| b.first() == Some(&b'/');
    let mut r = Reader::new(msg);
    let (field, value) = r.field().ok()??;
    let body = value.bytes(field).ok()?;
    match field {
        1 if is_key(body) => {
            // A Range's range_end is a key too (or `\0`); a Put's value
            // is an object (`k8s\0`, JSON).
            while let Ok(Some((f, v))) = r.field() {
                if f == 2
                    && let Ok(b) = v.bytes(f)
                {
                    return Some(if is_key(b) || b == [0] {
                        KvOp::Range
                    } else {
                        KvOp::Put
                    });
                }
            }
            Some(KvOp::Range)
        }
        1 => compare(body)
            .ok()
            .filter(|(key, _)| is_key(key.as_bytes()))
            .map(|_| KvOp::Txn),
        2 | 3 => request_op(body)
            .ok()
            .filter(|(_, key, _)| is_key(key.as_bytes()))
            .map(|_| KvOp::Txn),
        _ => None,
    }
}

/// Decodes a KV request of `op`.
pub fn decode_kv_request(op: KvOp, msg: &[u8]) -> Result<KvRequestInfo, WireError> {
    let mut out = KvRequestInfo::default();
    match op {
        KvOp::Range | KvOp::DeleteRange => {
            let (key, is_range) = key_and_range(msg)?;
            out.key = key;
            out.is_range = is_range;
        }
        KvOp::Put => {
            let (key, value) = put(msg)?;
            out.key = key;
            out.value_bytes = value;
        }
        KvOp::Txn => txn_request(msg, &mut out)?,
    }
    Ok(out)
}

/// Decodes a KV response of `op`.
pub fn decode_kv_response(op: KvOp, msg: &[u8]) -> Result<KvResponseInfo, WireError> {
    let mut out = KvResponseInfo::default();
    response_into(op, msg, &mut out)?;
    Ok(out)
}

/// `key` (1) and `range_end` (2) of a RangeRequest or DeleteRangeRequest.
fn key_and_range(msg: &[u8]) -> Result<(String, bool), WireError> {
    let (mut key, mut is_range) = (String::new(), false);
    let mut r = Reader::new(msg);
    while let Some((f, v)) = r.field()? {
        match f {
            1 => key = lossy(v.bytes(f)?),
            2 => is_range = !v.bytes(f)?.is_empty(),
            _ => {}
        }
    }
    Ok((key, is_range))
}

/// `key` (1) and the value's length (2) of a PutRequest.
fn put(msg: &[u8]) -> Result<(String, u64), WireError> {
    let (mut key, mut value) = (String::new(), 0);
    let mut r = Reader::new(msg);
    while let Some((f, v)) = r.field()? {
        match f {
            1 => key = lossy(v.bytes(f)?),
            2 => value = v.bytes(f)?.len() as u64,
            _ => {}
        }
    }
    Ok((key, value))
}

/// TxnRequest: `compare` (1), `success` (2) and `failure` (3) RequestOps.
fn txn_request(msg: &[u8], out: &mut KvRequestInfo) -> Result<(), WireError> {
    let mut first_op_key = None;
    let mut r = Reader::new(msg);
    while let Some((f, v)) = r.field()? {
        match f {
            1 => {
                let (key, mod_revision) = compare(v.bytes(f)?)?;
                if out.key.is_empty() {
                    out.key = key;
                    out.compare_mod_revision = mod_revision;
                }
            }
            2 | 3 => {
                let (op, key, value) = request_op(v.bytes(f)?)?;
                out.value_bytes += value;
                first_op_key.get_or_insert(key);
                if f == 2 {
                    out.success_ops.push(op);
                } else {
                    out.failure_ops.push(op);
                }
            }
            _ => {}
        }
    }
    if out.key.is_empty() {
        out.key = first_op_key.unwrap_or_default();
    }
    Ok(())
}

/// Compare: `target` (2) MOD = 2, `key` (3), `mod_revision` (6).
fn compare(msg: &[u8]) -> Result<(String, Option<i64>), WireError> {
    const TARGET_MOD: u64 = 2;
    let (mut key, mut target, mut mod_revision) = (String::new(), 0, 0);
    let mut r = Reader::new(msg);
    while let Some((f, v)) = r.field()? {
        match f {
            2 => target = v.uint(f)?,
            3 => key = lossy(v.bytes(f)?),
            6 => mod_revision = v.int(f)?,
            _ => {}
        }
    }
    Ok((key, (target == TARGET_MOD).then_some(mod_revision)))
}

/// RequestOp: a oneof of `request_range` (1), `request_put` (2),
/// `request_delete_range` (3), `request_txn` (4); its key and value bytes.
fn request_op(msg: &[u8]) -> Result<(KvOp, String, u64), WireError> {
    let mut found = None;
    let mut r = Reader::new(msg);
    while let Some((f, v)) = r.field()? {
        let op = match f {
            1 => KvOp::Range,
            2 => KvOp::Put,
            3 => KvOp::DeleteRange,
            4 => KvOp::Txn,
            _ => continue,
        };
        if found.is_some() {
            return Err(WireError::Oneof);
        }
        let body = v.bytes(f)?;
        found = Some(match op {
            KvOp::Put => {
                let (key, value) = put(body)?;
                (op, key, value)
            }
            KvOp::Txn => (op, String::new(), 0),
            _ => (op, key_and_range(body)?.0, 0),
        });
    }
    found.ok_or(WireError::Oneof)
}

/// RangeResponse: header 1, kvs 2, more 3, count 4. PutResponse: header 1,
/// prev_kv 2. DeleteRangeResponse: header 1, deleted 2, prev_kvs 3.
/// TxnResponse: header 1, succeeded 2, responses 3 (ResponseOps, whose
/// oneof numbers follow KvOp's order).
fn response_into(op: KvOp, msg: &[u8], out: &mut KvResponseInfo) -> Result<(), WireError> {
    let mut r = Reader::new(msg);
    while let Some((f, v)) = r.field()? {
        match (op, f) {
            (_, 1) => {
                // A nested response's header repeats the Txn's.
                let revision = decode_header(v.bytes(f)?)?.revision;
                out.revision = out.revision.max(revision);
            }
            (KvOp::Range, 2) => {
                let kv: KeyValueMeta = decode_kv(v.bytes(f)?)?;
                out.kvs += 1;
                out.value_bytes += kv.value_len;
            }
            // Summed over a Txn's responses: any int64 is well-formed, so
            // the sums saturate rather than overflow.
            (KvOp::Range, 4) => out.count = out.count.saturating_add(v.int(f)?),
            (KvOp::DeleteRange, 2) => out.deleted = out.deleted.saturating_add(v.int(f)?),
            (KvOp::Txn, 2) => out.succeeded = Some(v.bool(f)?),
            (KvOp::Txn, 3) => {
                let mut ops = Reader::new(v.bytes(f)?);
                let mut seen = false;
                while let Some((g, w)) = ops.field()? {
                    let nested = match g {
                        1 => KvOp::Range,
                        2 => KvOp::Put,
                        3 => KvOp::DeleteRange,
                        4 => KvOp::Txn,
                        _ => continue,
                    };
                    if std::mem::replace(&mut seen, true) {
                        return Err(WireError::Oneof);
                    }
                    let succeeded = out.succeeded;
                    response_into(nested, w.bytes(g)?, out)?;
                    out.succeeded = succeeded;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::fixture::ProtoWriter;

    fn header(w: &mut ProtoWriter, revision: u64) {
        w.message(1, |h| {
            h.varint(1, 7).varint(2, 8).varint(3, revision).varint(4, 2);
        });
    }

    /// kube-apiserver's GuaranteedUpdate: compare mod_revision = 41, put;
    /// else get the key.
    fn update_txn(key: &str, value: &[u8]) -> Vec<u8> {
        let mut w = ProtoWriter::new();
        w.message(1, |c| {
            c.varint(1, 0).varint(2, 2).string(3, key).varint(6, 41);
        })
        .message(2, |op| {
            op.message(2, |p| {
                p.string(1, key).bytes(2, value);
            });
        })
        .message(3, |op| {
            op.message(1, |r| {
                r.string(1, key);
            });
        });
        w.buf.clone()
    }

    #[test]
    fn methods_are_named_by_their_grpc_path() {
        assert_eq!(KvOp::from_path("/etcdserverpb.KV/Txn"), Some(KvOp::Txn));
        assert_eq!(
            KvOp::from_path("/etcdserverpb.KV/DeleteRange"),
            Some(KvOp::DeleteRange)
        );
        assert_eq!(KvOp::from_path("/etcdserverpb.Watch/Watch"), None);
        assert_eq!(KvOp::from_path("/etcdserverpb.KV/Compact"), None);
    }

    #[test]
    fn an_update_txn_gives_its_key_compare_and_operations_but_no_value() {
        let msg = update_txn("/registry/secrets/ns/db", b"TOPSECRET-hunter2");
        let req = decode_kv_request(KvOp::Txn, &msg).unwrap();
        assert_eq!(req.key, "/registry/secrets/ns/db");
        assert_eq!(req.compare_mod_revision, Some(41));
        assert_eq!(req.success_ops, [KvOp::Put]);
        assert_eq!(req.failure_ops, [KvOp::Range]);
        assert_eq!(req.value_bytes, 17);
        assert!(!format!("{req:?}").contains("hunter2"));
    }

    #[test]
    fn a_txn_response_gives_the_new_revision_and_whether_the_compare_held() {
        let mut w = ProtoWriter::new();
        header(&mut w, 42);
        w.varint(2, 1).message(3, |op| {
            op.message(2, |put| header(put, 42));
        });
        let resp = decode_kv_response(KvOp::Txn, &w.buf).unwrap();
        assert_eq!(resp.revision, 42);
        assert_eq!(resp.succeeded, Some(true));

        // A conflict: the compare failed, the failure Range read the key.
        let mut w = ProtoWriter::new();
        header(&mut w, 50);
        w.message(3, |op| {
            op.message(1, |range| {
                header(range, 50);
                range
                    .message(2, |kv| {
                        kv.string(1, "/registry/secrets/ns/db")
                            .varint(3, 45)
                            .bytes(5, b"TOPSECRET");
                    })
                    .varint(4, 1);
            });
        });
        let resp = decode_kv_response(KvOp::Txn, &w.buf).unwrap();
        assert_eq!(resp.succeeded, None, "false is proto3's default: absent");
        assert_eq!((resp.kvs, resp.count, resp.value_bytes), (1, 1, 9));
        assert_eq!(resp.revision, 50);
    }

    #[test]
    fn range_put_and_delete_range_read_alike() {
        let mut w = ProtoWriter::new();
        w.string(1, "/registry/pods/")
            .string(2, "/registry/pods0")
            .varint(3, 500);
        let req = decode_kv_request(KvOp::Range, &w.buf).unwrap();
        assert_eq!((req.key.as_str(), req.is_range), ("/registry/pods/", true));

        let mut w = ProtoWriter::new();
        w.string(1, "/registry/leases/a/b")
            .bytes(2, b"v")
            .varint(3, 9);
        let req = decode_kv_request(KvOp::Put, &w.buf).unwrap();
        assert_eq!(
            (req.key.as_str(), req.value_bytes),
            ("/registry/leases/a/b", 1)
        );

        let mut w = ProtoWriter::new();
        header(&mut w, 77);
        w.varint(2, 3);
        let resp = decode_kv_response(KvOp::DeleteRange, &w.buf).unwrap();
        assert_eq!((resp.revision, resp.deleted), (77, 3));
    }

    #[test]
    fn the_method_is_told_by_content_when_the_path_is_unknown() {
        assert_eq!(
            guess_kv_op(&update_txn("/registry/a/b/c", b"x")),
            Some(KvOp::Txn)
        );
        let mut w = ProtoWriter::new();
        w.string(1, "/registry/pods/")
            .string(2, "/registry/pods0")
            .varint(3, 500);
        assert_eq!(guess_kv_op(&w.buf), Some(KvOp::Range));
        let mut w = ProtoWriter::new();
        w.string(1, "/registry/leases/a/b").bytes(2, b"k8s\0v");
        assert_eq!(guess_kv_op(&w.buf), Some(KvOp::Put));
        // A WatchRequest (create_request = 1, a message whose key is its
        // field 1, not a Compare's field 3) is no KV request.
        let mut w = ProtoWriter::new();
        w.message(1, |c| {
            c.string(1, "/registry/pods/").string(2, "/registry/pods0");
        });
        assert_eq!(guess_kv_op(&w.buf), None);
        assert_eq!(guess_kv_op(b""), None);
    }

    #[test]
    fn counts_summed_over_a_txn_saturate_instead_of_overflowing() {
        // Found by the etcd_kv fuzz target: two Range responses with
        // count i64::MAX each.
        let mut w = ProtoWriter::new();
        for _ in 0..2 {
            w.message(3, |op| {
                op.message(1, |range| {
                    range.varint(4, i64::MAX as u64);
                });
            });
        }
        let resp = decode_kv_response(KvOp::Txn, &w.buf).unwrap();
        assert_eq!(resp.count, i64::MAX);
    }

    #[test]
    fn a_request_op_with_two_members_is_an_error_not_a_guess() {
        let mut w = ProtoWriter::new();
        w.message(2, |op| {
            op.message(1, |_| {}).message(2, |_| {});
        });
        assert_eq!(decode_kv_request(KvOp::Txn, &w.buf), Err(WireError::Oneof));
    }
}
