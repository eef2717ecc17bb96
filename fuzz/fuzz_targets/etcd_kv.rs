//! etcd KV messages (Range, Put, DeleteRange, Txn requests and responses):
//! arbitrary bytes decode to metadata or a typed error, never a panic, and
//! no value is kept (a request's key and a response's counts are all that
//! come out).
#![no_main]

use libfuzzer_sys::fuzz_target;
use watchtrace::etcd::{KvOp, decode_kv_request, decode_kv_response};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, msg)) = data.split_first() else {
        return;
    };
    let op = match mode & 3 {
        0 => KvOp::Range,
        1 => KvOp::Put,
        2 => KvOp::DeleteRange,
        _ => KvOp::Txn,
    };
    if mode & 4 == 0 {
        if let Ok(r) = decode_kv_request(op, msg) {
            assert!(r.key.len() <= msg.len() * 3, "keys come from the input");
            assert!(r.value_bytes <= msg.len() as u64);
        }
    } else if let Ok(r) = decode_kv_response(op, msg) {
        assert!(r.value_bytes <= msg.len() as u64);
        assert!(r.kvs <= msg.len() as u64);
    }
});
