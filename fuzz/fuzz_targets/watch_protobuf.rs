//! Protobuf watch bodies: arbitrary bytes (seeded with real frames),
//! split arbitrarily, decoded from the start and joined mid-way; every byte
//! must be accounted for.
#![no_main]

mod support;

use libfuzzer_sys::fuzz_target;
use watchtrace::watch::{DecoderConfig, WatchStreamDecoder, WireFormat};

fuzz_target!(|data: &[u8]| {
    let (mode, pieces) = support::pieces(data);
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
    support::feed_watch(&mut d, mode, &pieces);
});
