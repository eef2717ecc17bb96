//! HTTP/1.1 chunked bodies: arbitrary bytes, split arbitrarily, through the
//! chunk decoder alone and in front of the watch decoder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use watchtrace::watch::{
    ChunkItem, ChunkedDecoder, DecoderConfig, Http1WatchDecoder, WatchItem, WireFormat,
};

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

fuzz_target!(|data: &[u8]| {
    let (mode, pieces) = pieces(data);
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
