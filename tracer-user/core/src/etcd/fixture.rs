//! Encoders for etcd Watch messages, for tests, fuzzing and benchmarks.
//! Never used on the capture path.

use crate::watch::fixture::ProtoWriter;

/// One mvcc event to encode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventSpec {
    pub delete: bool,
    pub key: String,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    /// Stands for the stored object (opaque, possibly a Secret).
    pub value: Vec<u8>,
    pub lease: i64,
    /// Encode a `prev_kv` with this value.
    pub prev_value: Option<Vec<u8>>,
}

/// One WatchResponse to encode.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResponseSpec {
    pub cluster_id: u64,
    pub member_id: u64,
    pub revision: i64,
    pub raft_term: u64,
    pub watch_id: i64,
    pub created: bool,
    pub canceled: bool,
    pub compact_revision: i64,
    pub cancel_reason: String,
    pub fragment: bool,
    pub events: Vec<EventSpec>,
}

fn kv(
    w: &mut ProtoWriter,
    key: &str,
    create: i64,
    modr: i64,
    version: i64,
    value: &[u8],
    lease: i64,
) {
    // proto3: zero values are omitted.
    w.string(1, key);
    for (f, v) in [(2, create), (3, modr), (4, version)] {
        if v != 0 {
            w.varint(f, v as u64);
        }
    }
    if !value.is_empty() {
        w.bytes(5, value);
    }
    if lease != 0 {
        w.varint(6, lease as u64);
    }
}

/// A WatchResponse body, as etcd's gogo marshaler writes it (proto3: zero
/// fields omitted, ascending order).
#[must_use]
pub fn encode_response(r: &ResponseSpec) -> Vec<u8> {
    let mut w = ProtoWriter::new();
    w.message(1, |h| {
        for (f, v) in [
            (1, r.cluster_id),
            (2, r.member_id),
            (3, r.revision as u64),
            (4, r.raft_term),
        ] {
            if v != 0 {
                h.varint(f, v);
            }
        }
    });
    for (f, v) in [
        (2, r.watch_id as u64),
        (3, u64::from(r.created)),
        (4, u64::from(r.canceled)),
        (5, r.compact_revision as u64),
    ] {
        if v != 0 {
            w.varint(f, v);
        }
    }
    if !r.cancel_reason.is_empty() {
        w.string(6, &r.cancel_reason);
    }
    if r.fragment {
        w.varint(7, 1);
    }
    for e in &r.events {
        w.message(11, |m| {
            if e.delete {
                m.varint(1, 1);
            }
            m.message(2, |k| {
                kv(
                    k,
                    &e.key,
                    e.create_revision,
                    e.mod_revision,
                    e.version,
                    &e.value,
                    e.lease,
                );
            });
            if let Some(prev) = &e.prev_value {
                m.message(3, |k| {
                    kv(
                        k,
                        &e.key,
                        e.create_revision,
                        e.create_revision,
                        1,
                        prev,
                        e.lease,
                    );
                });
            }
        });
    }
    w.buf
}

/// A gRPC length-prefixed message (uncompressed).
#[must_use]
pub fn encode_grpc(body: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// A response with PUT events at consecutive revisions ending at
/// `revision`, as kube-apiserver's watch (with `prev_kv`) receives them.
#[must_use]
pub fn response_with_puts(watch_id: i64, revision: i64, keys: &[&str]) -> Vec<u8> {
    let n = keys.len() as i64;
    encode_response(&ResponseSpec {
        cluster_id: 0x1234_5678_9abc_def0,
        member_id: 0x0fed_cba9_8765_4321,
        revision,
        raft_term: 2,
        watch_id,
        events: keys
            .iter()
            .enumerate()
            .map(|(i, k)| EventSpec {
                delete: false,
                key: (*k).to_owned(),
                create_revision: 5,
                mod_revision: revision - n + 1 + i as i64,
                version: 2,
                value: b"k8s\0\x0a\x02v1SECRET-VALUE".to_vec(),
                lease: 0,
                prev_value: Some(b"k8s\0old".to_vec()),
            })
            .collect(),
        ..ResponseSpec::default()
    })
}

/// A WatchCreateRequest as kube-apiserver sends it: a prefix watch from
/// `start_revision` with `prev_kv` and progress notifications.
#[must_use]
pub fn encode_create_request(prefix: &str, start_revision: i64) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    let mut w = ProtoWriter::new();
    w.message(1, |c| {
        c.string(1, prefix)
            .bytes(2, &end)
            .varint(3, start_revision as u64)
            .varint(4, 1)
            .varint(6, 1);
    });
    w.buf
}
