//! CBOR watch bodies (`application/cbor-seq`): arbitrary bytes (seeded with
//! apiserver-shaped items), split arbitrarily, decoded from the start,
//! joined mid-way with or without the format known, with gaps; every byte
//! must be accounted for, and the walker's item length must never exceed
//! its input.
#![no_main]

mod support;

use libfuzzer_sys::fuzz_target;
use watchtrace::watch::{DecoderConfig, WatchStreamDecoder, WireFormat, cbor};

fuzz_target!(|data: &[u8]| {
    // The walker on the raw input: a length within it, or an error (the
    // decoder below reads the metadata of every whole item).
    if let Ok(n) = cbor::item_len(data) {
        assert!(n <= data.len());
    }
    let (mode, pieces) = support::pieces(data);
    let cfg = DecoderConfig {
        max_event_bytes: if mode & 4 != 0 { 200 } else { 1 << 20 },
    };
    let mut d = match mode & 3 {
        0 => WatchStreamDecoder::from_start(WireFormat::Cbor, cfg),
        1 => WatchStreamDecoder::mid_stream(Some(WireFormat::Cbor), cfg),
        _ => WatchStreamDecoder::mid_stream(None, cfg),
    };
    support::feed_watch(&mut d, mode, &pieces);
});
