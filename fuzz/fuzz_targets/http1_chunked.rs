//! HTTP/1.1 chunked bodies: arbitrary bytes, split arbitrarily, through the
//! chunk decoder alone and in front of the watch decoder.
#![no_main]

mod support;

use libfuzzer_sys::fuzz_target;
use watchtrace::watch::{
    ChunkItem, ChunkedDecoder, DecoderConfig, Http1WatchDecoder, WatchItem, WireFormat,
};

fuzz_target!(|data: &[u8]| {
    let (mode, pieces) = support::pieces(data);
    let mut c = if mode & 1 != 0 {
        ChunkedDecoder::mid_stream()
    } else {
        ChunkedDecoder::from_start()
    };
    let mut data_bytes = 0u64;
    let mut fed = 0u64;
    for (i, p) in pieces.iter().enumerate() {
        if mode & 8 != 0 && i % 5 == 4 {
            c.gap();
        }
        c.push(p, |item| {
            if let ChunkItem::Data(d) = item {
                data_bytes += d.len() as u64;
            }
        });
        fed += p.len() as u64;
    }
    let s = c.stats();
    assert_eq!(s.data_bytes, data_bytes);
    assert!(s.data_bytes + s.framing_bytes + s.skipped_bytes + s.bytes_after_end <= fed);

    let format = if mode & 2 != 0 {
        WireFormat::Protobuf
    } else {
        WireFormat::Json
    };
    let mut h = if mode & 1 != 0 {
        Http1WatchDecoder::mid_stream(Some(format), DecoderConfig::default())
    } else {
        Http1WatchDecoder::from_start(format, DecoderConfig::default())
    };
    let mut out: Vec<WatchItem> = Vec::new();
    for (i, p) in pieces.iter().enumerate() {
        if mode & 8 != 0 && i % 5 == 4 {
            h.gap(3, i as u64, &mut out);
        }
        h.push(p, i as u64, &mut out);
    }
    h.finish(u64::MAX, &mut out);
});
