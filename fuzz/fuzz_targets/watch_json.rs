//! JSON watch bodies: arbitrary bytes (seeded with real events), split
//! arbitrarily, decoded from the start and joined mid-way; every byte must
//! be accounted for.
#![no_main]

mod support;

use libfuzzer_sys::fuzz_target;
use watchtrace::watch::{DecoderConfig, WatchItem, WatchStreamDecoder, WireFormat};

fuzz_target!(|data: &[u8]| {
    let (mode, pieces) = support::pieces(data);
    let cfg = DecoderConfig {
        max_event_bytes: if mode & 4 != 0 { 200 } else { 1 << 20 },
    };
    let mut d = if mode & 1 != 0 {
        WatchStreamDecoder::mid_stream(
            if mode & 2 != 0 {
                Some(WireFormat::Json)
            } else {
                None
            },
            cfg,
        )
    } else {
        WatchStreamDecoder::from_start(WireFormat::Json, cfg)
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
    assert_eq!(support::accounted(d.stats()), fed, "{:?}", d.stats());
    for item in &out {
        if let WatchItem::Event(e) = item {
            assert!(e.bytes <= fed && e.t_first_byte <= e.t_last_byte);
        }
    }
});
