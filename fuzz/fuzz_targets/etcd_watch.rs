//! etcd Watch gRPC streams, both directions: arbitrary bytes, split
//! arbitrarily, from the start or joined mid-way, with gaps; every byte
//! must be accounted for.
#![no_main]

mod support;

use libfuzzer_sys::fuzz_target;
use watchtrace::etcd::{EtcdDecoderConfig, EtcdItem, EtcdStats, EtcdWatchDecoder, Flow};

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
    let (mode, pieces) = support::pieces(data);
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
