//! gzip watch bodies (`Content-Encoding: gzip`). Two ways, by the input's
//! first byte:
//! - the input as compressed bytes, split arbitrarily, with gaps: the
//!   inflater stops with a reason (never panics, never inflates past a
//!   gap), and what it inflates feeds a watch decoder that accounts for
//!   every byte;
//! - the input as a plain watch body, gzip-compressed with a sync flush at
//!   each piece as the apiserver flushes per event: inflated piece by piece
//!   it is the input again, byte for byte.
#![no_main]

mod support;

use std::io::Write as _;

use libfuzzer_sys::fuzz_target;
use watchtrace::watch::{
    DecoderConfig, WatchItem, WatchStreamDecoder, WireFormat,
    gzip::{Gunzip, GzipStop},
};

fuzz_target!(|data: &[u8]| {
    let (mode, pieces) = support::pieces(data);
    let format = match mode % 3 {
        0 => WireFormat::Json,
        1 => WireFormat::Protobuf,
        _ => WireFormat::Cbor,
    };
    let mut d = WatchStreamDecoder::from_start(format, DecoderConfig::default());
    let mut g = Gunzip::default();
    let (mut out, mut inflated): (Vec<WatchItem>, Vec<u8>) = (Vec::new(), Vec::new());
    if mode & 0x80 == 0 {
        let mut fed = 0u64;
        let mut stopped = None;
        for (i, p) in pieces.iter().enumerate() {
            if mode & 8 != 0 && i % 5 == 4 {
                g.gap();
            }
            let result = g.push(p, &mut inflated);
            // Whatever inflated before a stop is decoded as well.
            d.push(&inflated, i as u64, &mut out);
            fed += inflated.len() as u64;
            match result {
                Ok(()) => assert!(stopped.is_none(), "inflated after it stopped"),
                Err(s) => {
                    assert!(s.unread <= p.len() as u64);
                    if let Some(before) = stopped {
                        assert_eq!(s.why, before, "the reason does not change");
                        assert_eq!(s.unread, p.len() as u64, "nothing after a stop");
                        assert!(inflated.is_empty());
                    }
                    if mode & 8 == 0 {
                        assert_eq!(s.why, GzipStop::Corrupt);
                    }
                    stopped = Some(s.why);
                }
            }
        }
        d.finish(u64::MAX, &mut out);
        assert_eq!(support::accounted(d.stats()), fed);
        return;
    }
    // Round trip: compress each piece with a sync flush, inflate again.
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut plain = Vec::new();
    let mut wire = Vec::new();
    for p in &pieces {
        e.write_all(p).unwrap();
        e.flush().unwrap();
        wire.push(std::mem::take(e.get_mut()));
        plain.extend_from_slice(p);
    }
    wire.push(e.finish().unwrap());
    let mut back = Vec::new();
    for (i, w) in wire.iter().enumerate() {
        g.push(w, &mut inflated).unwrap();
        back.extend_from_slice(&inflated);
        d.push(&inflated, i as u64, &mut out);
    }
    assert_eq!(back, plain);
    assert_eq!(g.totals().1, plain.len() as u64);
    d.finish(u64::MAX, &mut out);
    assert_eq!(support::accounted(d.stats()), plain.len() as u64);
});
