//! etcd Watch gRPC streams, both directions: arbitrary bytes, split
//! arbitrarily, from the start or joined mid-way, with gaps; every byte
//! must be accounted for.
#![no_main]

use libfuzzer_sys::fuzz_target;
use watchtrace::etcd::{EtcdDecoderConfig, EtcdItem, EtcdStats, EtcdWatchDecoder, Flow};

fn pieces(data: &[u8]) -> (u8, Vec<&[u8]>) {
    let (head, body) = data.split_at(data.len().min(3));
    let mode = head.first().copied().unwrap_or(0);
    let mut seed = u32::from(head.get(1).copied().unwrap_or(1)) << 8
        | u32::from(head.get(2).copied().unwrap_or(1))
        | 1;
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let n = (seed as usize % 64 + 1).min(rest.len());
        let (a, b) = rest.split_at(n);
        out.push(a);
        rest = b;
    }
    (mode, out)
}

fn accounted(s: &EtcdStats) -> u64 {
    s.message_bytes
        + s.compressed_bytes
        + s.oversized_bytes
        + s.malformed_bytes
        + s.cut_bytes
        + s.truncated_bytes
        + s.skipped_bytes
}

fuzz_target!(|data: &[u8]| {
    let (mode, pieces) = pieces(data);
    let dir = if mode & 2 != 0 {
        Flow::ClientToServer
    } else {
        Flow::ServerToClient
    };
    let cfg = EtcdDecoderConfig {
        max_message_bytes: if mode & 4 != 0 { 300 } else { 1 << 20 },
    };
    let mut d = if mode & 1 != 0 {
        EtcdWatchDecoder::mid_stream(dir, cfg)
    } else {
        EtcdWatchDecoder::from_start(dir, cfg)
    };
    let mut out: Vec<EtcdItem> = Vec::new();
    let mut fed = 0u64;
    for (i, p) in pieces.iter().enumerate() {
        if mode & 8 != 0 && i % 5 == 4 {
            d.gap(3, i as u64, &mut out);
        }
        d.push(p, i as u64, &mut out);
        fed += p.len() as u64;
    }
    d.finish(u64::MAX, &mut out);
    assert_eq!(accounted(d.stats()), fed, "{:?}", d.stats());
});
