//! Protobuf watch bodies: arbitrary bytes (seeded with real frames),
//! split arbitrarily, decoded from the start and joined mid-way; every byte
//! must be accounted for.
#![no_main]

use libfuzzer_sys::fuzz_target;
use watchtrace::watch::{DecoderConfig, WatchItem, WatchStats, WatchStreamDecoder, WireFormat};

/// Piece lengths from a tiny PRNG seeded by the input's first bytes, so
/// that the same input always splits the same way.
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

fn accounted(s: &WatchStats) -> u64 {
    s.event_bytes
        + s.malformed_bytes
        + s.oversized_bytes
        + s.cut_bytes
        + s.truncated_bytes
        + s.skipped_bytes
}

fuzz_target!(|data: &[u8]| {
    let (mode, pieces) = pieces(data);
    let cfg = DecoderConfig {
        max_event_bytes: if mode & 4 != 0 { 200 } else { 1 << 20 },
    };
    let mut d = if mode & 1 != 0 {
        WatchStreamDecoder::mid_stream(
            if mode & 2 != 0 {
                Some(WireFormat::Protobuf)
            } else {
                None
            },
            cfg,
        )
    } else {
        WatchStreamDecoder::from_start(WireFormat::Protobuf, cfg)
    };
    let mut out: Vec<WatchItem> = Vec::new();
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
    for item in &out {
        if let WatchItem::Event(e) = item {
            assert!(e.bytes <= fed && e.t_first_byte <= e.t_last_byte);
        }
    }
});
