//! The traced apiserver's etcd KV calls (unary gRPC: one HTTP/2 stream
//! each) give `etcd_request` lines: a Txn update's key, compared revision,
//! new revision and round trip, its conflict when the compare fails, and
//! the same lines however the capture split the bytes. Values never leave.

#[path = "record_support.rs"]
mod records;
#[path = "http2_support.rs"]
mod support;

use support::{Enc, data, headers, preface, settings};
use watchtrace::{etcd::fixture::encode_grpc, pipeline::OutputEvent, watch::fixture::ProtoWriter};

const MS: u64 = 1_000_000;
const KEY: &str = "/registry/secrets/ns-0/db";

/// `bytes` the traced apiserver wrote (`egress`) to etcd or read from it.
fn chunk(ts: u64, egress: bool, offset: u64, bytes: &[u8]) -> Vec<u8> {
    records::syscall_chunk(0xffff_8880_0000_5000, ts, egress, offset, bytes)
}

/// kube-apiserver's GuaranteedUpdate: compare mod_revision = 41, put the
/// new object; else read the key.
fn update_txn() -> Vec<u8> {
    let mut w = ProtoWriter::new();
    w.message(1, |c| {
        c.varint(2, 2).string(3, KEY).varint(6, 41);
    })
    .message(2, |op| {
        op.message(2, |p| {
            p.string(1, KEY).bytes(2, b"TOPSECRET-hunter2");
        });
    })
    .message(3, |op| {
        op.message(1, |r| {
            r.string(1, KEY);
        });
    });
    encode_grpc(&w.buf)
}

/// The Txn's response: the compare held (new revision 42) or not (the
/// failure Range read the key at 45, store at 50).
fn txn_response(succeeded: bool) -> Vec<u8> {
    let mut w = ProtoWriter::new();
    let revision = if succeeded { 42 } else { 50 };
    w.message(1, |h| {
        h.varint(3, revision);
    });
    if succeeded {
        w.varint(2, 1).message(3, |op| {
            op.message(2, |put| {
                put.message(1, |h| {
                    h.varint(3, 42);
                });
            });
        });
    } else {
        w.message(3, |op| {
            op.message(1, |range| {
                range
                    .message(2, |kv| {
                        kv.string(1, KEY).varint(3, 45).bytes(5, b"TOPSECRET");
                    })
                    .varint(4, 1);
            });
        });
    }
    encode_grpc(&w.buf)
}

/// The apiserver's bytes to etcd, and etcd's answer split at `cut`, as
/// records; the call at t=1 s, answered in 3 ms.
fn call(succeeded: bool, cut: usize) -> Vec<OutputEvent> {
    let mut out = preface();
    out.extend(settings(&[]));
    let block = Enc::default()
        .indexed(3) // :method POST
        .indexed(6) // :scheme http
        .literal(":authority", "127.0.0.1:2379")
        .literal(":path", "/etcdserverpb.KV/Txn")
        .literal("content-type", "application/grpc")
        .build();
    out.extend(headers(1, &block, false));
    out.extend(data(1, &update_txn(), true));
    let mut back = settings(&[]);
    let status = Enc::default()
        .indexed(8)
        .literal("content-type", "application/grpc");
    back.extend(headers(1, &status.build(), false));
    back.extend(data(1, &txn_response(succeeded), false));
    let trailers = Enc::default().literal("grpc-status", "0").build();
    back.extend(headers(1, &trailers, true));
    let cut = cut.min(back.len());
    let records = [
        chunk(1_000 * MS, true, 0, &out),
        chunk(1_002 * MS, false, 0, &back[..cut]),
        chunk(1_003 * MS, false, cut as u64, &back[cut..]),
    ];
    records::run_pipeline(&records)
}

#[test]
fn an_update_txn_gives_its_key_compare_new_revision_and_round_trip() {
    let line = records::the_line(&call(true, usize::MAX), "etcd_request");
    assert_eq!(line["kind"], "etcd_request");
    assert_eq!(line["op"], "txn");
    assert_eq!(line["result"], "ok");
    assert_eq!(line["key"], KEY);
    assert_eq!(line["compare_mod_revision"], 41);
    assert_eq!(line["revision"], 42);
    assert_eq!(line["succeeded"], true);
    assert_eq!(line["value_bytes_sent"], 17);
    assert_eq!(line["grpc_status"], 0);
    assert_eq!(line["t_request"], 1_000 * MS);
    assert_eq!(line["rtt_ns"], 2 * MS);
    assert!(!line.to_string().contains("hunter2"), "{line}");
}

#[test]
fn a_txn_whose_compare_failed_is_a_conflict() {
    let line = records::the_line(&call(false, usize::MAX), "etcd_request");
    assert_eq!(line["result"], "conflict");
    assert_eq!(line["revision"], 50);
    assert_eq!(line["kvs"], 1);
    assert_eq!(line["value_bytes_received"], 9);
    assert!(!line.to_string().contains("TOPSECRET"), "{line}");
}

#[test]
fn the_lines_are_the_same_however_the_capture_split_the_response() {
    let whole = records::the_line(&call(true, usize::MAX), "etcd_request");
    let len = 200;
    for cut in 1..len {
        let mut line = records::the_line(&call(true, cut), "etcd_request");
        // The response's last byte came with the second piece.
        if line["t_response"] == 1_003 * MS {
            line["t_response"] = (1_002 * MS).into();
            line["rtt_ns"] = (2 * MS).into();
            line["ts"] = (1_002 * MS).into();
        }
        assert_eq!(line, whole, "cut at {cut}");
    }
}
